package bench

import (
	"testing"
	"time"

	"github.com/fairlease/fairlease/lease"
)

func TestOvercommitted(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	cores := func(n int64) lease.Resources { return lease.Resources{Cores: n, MemoryMiB: n * 1024} }
	caps := map[string]lease.Resources{"h1": cores(4), "h2": cores(4)}
	tests := []struct {
		name string
		uses []use
		want int
	}{
		{"fits", []use{{"h1", at(0), at(2), cores(2)}, {"h1", at(1), at(3), cores(2)}}, 0},
		{"back to back", []use{{"h1", at(0), at(1), cores(4)}, {"h1", at(1), at(2), cores(4)}}, 0},
		{"overlap", []use{{"h1", at(0), at(2), cores(3)}, {"h1", at(1), at(3), cores(3)}}, 1},
		{"other host", []use{{"h1", at(0), at(2), cores(3)}, {"h2", at(1), at(3), cores(3)}}, 0},
		{"memory", []use{{"h1", at(0), at(2), lease.Resources{Cores: 1, MemoryMiB: 5000}}}, 1},
		{"two instants", []use{{"h1", at(0), at(4), cores(3)}, {"h1", at(1), at(2), cores(2)}, {"h1", at(3), at(4), cores(2)}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := overcommitted(caps, tt.uses); got != tt.want {
				t.Errorf("overcommitted = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p50, p99 := percentile(ds, 50), percentile(ds, 99); p50 != 50 || p99 != 99 {
		t.Errorf("p50, p99 = %v, %v; want 50, 99", p50, p99)
	}
	if percentile(nil, 99) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}
