package sites_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/sites"
	"github.com/fairlease/fairlease/sites/sitetest"
)

func TestSpecValidate(t *testing.T) {
	good := sites.Spec{
		Lease: "l1", Token: "l1-0", Count: 2, Duration: time.Hour,
		Shape: lease.Shape{Cores: 1, MemoryMiB: 512, Image: "ami-1"},
	}
	tests := []struct {
		name    string
		modify  func(*sites.Spec)
		wantErr string // "" for valid
	}{
		{"valid", func(*sites.Spec) {}, ""},
		{"no token", func(s *sites.Spec) { s.Token = "" }, "token"},
		{"long token", func(s *sites.Spec) { s.Token = strings.Repeat("x", 65) }, "longer than 64"},
		{"space in token", func(s *sites.Spec) { s.Token = "a b" }, "printable"},
		{"count 0", func(s *sites.Spec) { s.Count = 0 }, "count must be at least 1"},
		{"no cores", func(s *sites.Spec) { s.Shape.Cores = 0 }, "cores"},
		{"negative memory", func(s *sites.Spec) { s.Shape.MemoryMiB = -1 }, "memory"},
		{"no image", func(s *sites.Spec) { s.Shape.Image = "" }, "image"},
		{"no duration", func(s *sites.Spec) { s.Duration = 0 }, "duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.modify(&s)
			err := s.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, sites.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %v, want ErrInvalid mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestErrorUnwraps(t *testing.T) {
	cause := fmt.Errorf("InsufficientInstanceCapacity: none left")
	err := fmt.Errorf("lease l1: %w", &sites.Error{Site: "aws-eu", Op: "launch", Kind: sites.ErrCapacity, Err: cause})
	if !errors.Is(err, sites.ErrCapacity) || !errors.Is(err, cause) || sites.IsRetryable(err) {
		t.Errorf("%v: want ErrCapacity and its cause, not retryable", err)
	}
	var se *sites.Error
	if !errors.As(err, &se) || se.Site != "aws-eu" {
		t.Errorf("errors.As(%v) did not find the site", err)
	}
	if !strings.Contains(err.Error(), "site aws-eu") || !strings.Contains(err.Error(), "fail over") {
		t.Errorf("message %q should name the site and what to do", err)
	}
	if !sites.IsRetryable(&sites.Error{Site: "x", Op: "launch", Kind: sites.ErrUnavailable}) {
		t.Errorf("ErrUnavailable should be retryable")
	}
}

func TestRank(t *testing.T) {
	mk := func(name string, cost float64, lat time.Duration) sites.Site {
		return sitetest.NewFake(sitetest.FakeConfig{Name: name, Info: sites.Info{CostPerCoreHour: cost, Latency: lat}})
	}
	in := []sites.Site{
		mk("ec2-expensive", 0.05, 10*time.Millisecond),
		mk("partner-unmeasured", 0, 0),
		mk("partner-slow", 0, 200*time.Millisecond),
		mk("partner-fast", 0, 20*time.Millisecond),
		mk("ec2-cheap", 0.02, 300*time.Millisecond),
	}
	var got []string
	for _, s := range sites.Rank(in) {
		got = append(got, s.Name())
	}
	want := []string{"partner-fast", "partner-slow", "partner-unmeasured", "ec2-cheap", "ec2-expensive"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Rank (-want +got):\n%s", diff)
	}
}
