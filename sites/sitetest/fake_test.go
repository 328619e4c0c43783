package sitetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/sites"
)

func TestFake(t *testing.T) {
	Run(t, Harness{
		New: func(t *testing.T) Subject {
			f := NewFake(FakeConfig{Name: "fake-a", Capacity: 20})
			return Subject{Site: f, Exhaust: f.Exhaust, LoseReply: func() { f.LoseNextReplies(1) }}
		},
		Shape: lease.Shape{Cores: 2, MemoryMiB: 4096, Image: "ubuntu-22.04-mpi"},
	})
}

func spec(token string, count int) sites.Spec {
	return sites.Spec{
		Lease: "l1", Token: token, Count: count, Duration: time.Hour,
		Shape: lease.Shape{Cores: 1, MemoryMiB: 1024, Image: "img"},
		Tags:  map[string]string{"lease": "l1"},
	}
}

func TestFakeKnobs(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 3, 1, 14, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		capacity     int
		setup        func(f *Fake)
		specs        []sites.Spec
		wantErrs     []error // per launch; nil for success
		wantLaunches int
		wantLive     int
	}{
		{
			name:         "capacity counts live instances",
			capacity:     5,
			specs:        []sites.Spec{spec("t1", 3), spec("t2", 3), spec("t3", 2)},
			wantErrs:     []error{nil, sites.ErrCapacity, nil},
			wantLaunches: 2, wantLive: 5,
		},
		{
			name:         "fail next n",
			setup:        func(f *Fake) { f.FailNext(2) },
			specs:        []sites.Spec{spec("t1", 1), spec("t1", 1), spec("t1", 1)},
			wantErrs:     []error{sites.ErrCapacity, sites.ErrCapacity, nil},
			wantLaunches: 1, wantLive: 1,
		},
		{
			name:         "lost reply then retry is one cluster",
			setup:        func(f *Fake) { f.LoseNextReplies(1) },
			specs:        []sites.Spec{spec("t1", 4), spec("t1", 4)},
			wantErrs:     []error{sites.ErrUnavailable, nil},
			wantLaunches: 1, wantLive: 4,
		},
		{
			name:         "exhausted",
			setup:        func(f *Fake) { f.Exhaust() },
			specs:        []sites.Spec{spec("t1", 1)},
			wantErrs:     []error{sites.ErrCapacity},
			wantLaunches: 0, wantLive: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake(FakeConfig{Name: "f", Capacity: tt.capacity, Now: func() time.Time { return now }})
			if tt.setup != nil {
				tt.setup(f)
			}
			for i, s := range tt.specs {
				ins, err := f.Launch(ctx, s)
				if !errors.Is(err, tt.wantErrs[i]) || (err != nil) != (tt.wantErrs[i] != nil) {
					t.Fatalf("launch %d: got error %v, want %v", i, err, tt.wantErrs[i])
				}
				for _, in := range ins {
					if !in.Launched.Equal(now) {
						t.Errorf("launch %d: Launched = %s, want the injected clock's %s", i, in.Launched, now)
					}
				}
			}
			if got := f.Launches(); got != tt.wantLaunches {
				t.Errorf("Launches() = %d, want %d", got, tt.wantLaunches)
			}
			if got := f.Live(); got != tt.wantLive {
				t.Errorf("Live() = %d, want %d", got, tt.wantLive)
			}
		})
	}
}

func TestFakeConcurrentSameToken(t *testing.T) {
	f := NewFake(FakeConfig{})
	got, errs := Concurrent(context.Background(), f, spec("t1", 3), 16)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range got {
		if diff := cmp.Diff(got[0], got[i]); diff != "" {
			t.Errorf("launch %d got another cluster (-first +this):\n%s", i, diff)
		}
	}
	if f.Launches() != 1 || f.Live() != 3 {
		t.Errorf("Launches() = %d, Live() = %d; want 1 cluster of 3", f.Launches(), f.Live())
	}
}

func TestFakeDelayHonoursContext(t *testing.T) {
	f := NewFake(FakeConfig{})
	f.SetDelay(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.Launch(ctx, spec("t1", 1))
	if !sites.IsRetryable(err) {
		t.Errorf("Launch with a cancelled context during the delay: %v, want a retryable error", err)
	}
	if f.Launches() != 0 {
		t.Errorf("a cancelled launch started a cluster")
	}
}
