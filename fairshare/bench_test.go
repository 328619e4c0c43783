package fairshare_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fairlease/fairlease/fairshare"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// benchSite is a large site in a steady state: 10,000 hosts of 32 cores /
// 128 GiB, 90 % of the cores held by running leases of 1-24 h, and the rest
// of 100,000 active leases waiting: advance reservations (an earliest start
// 1-24 h ahead), which are queued, or firm under fairlease when in reach.
type benchSite struct {
	e       *fairshare.Engine
	now     time.Time
	running int
	waiting int
	setup   time.Duration
}

const (
	benchHosts  = 10000
	benchLeases = 100000
	benchGroups = 20
)

func newBenchSite(tb testing.TB, preset string) *benchSite {
	tb.Helper()
	start := time.Now()
	hs := make([]fairshare.Host, benchHosts)
	for i := range hs {
		hs[i] = fairshare.Host{Name: fmt.Sprintf("n%05d", i), Capacity: lease.Resources{Cores: 32, MemoryMiB: 128 * gib}}
	}
	p := policies.Default()
	p.Activity = policies.ActiveHeld
	e := newEngine(tb, preset, hs, p)
	rng := rand.New(rand.NewPCG(1, 2))
	// Mostly small: 1-8 VMs of 1-4 cores, about 3.4 cores a lease.
	pick := func(xs []int, ws []int) int {
		n := rng.IntN(100)
		for i, w := range ws {
			if n < w {
				return xs[i]
			}
			n -= w
		}
		return xs[len(xs)-1]
	}
	req := func(i int) lease.Request {
		c := pick([]int{1, 2, 4}, []int{60, 30, 10})
		return lease.Request{
			ID:    lease.ID(fmt.Sprintf("l%06d", i)),
			Group: lease.GroupID(fmt.Sprintf("g%02d", i%benchGroups)), User: "u",
			Count:        pick([]int{1, 2, 4, 8}, []int{60, 20, 12, 8}),
			Shape:        lease.Shape{Cores: c, MemoryMiB: int64(c) * 4 * gib},
			Duration:     time.Duration(60+rng.IntN(23*60+1)) * time.Minute,
			Submitted:    t0,
			AllOrNothing: true,
		}
	}
	s := &benchSite{e: e, now: t0.Add(30 * time.Minute)}
	var held int64
	i := 0
	for ; held < benchHosts*32*9/10; i++ {
		r := req(i)
		if d := e.Submit(t0, r); d.Kind == lease.Granted {
			held += int64(r.Count * r.Shape.Cores)
			s.running++
		} else {
			s.waiting++
		}
	}
	for ; i < benchLeases; i++ {
		r := req(i)
		r.EarliestStart = t0.Add(time.Duration(60+rng.IntN(23*60)) * time.Minute)
		if d := e.Submit(t0, r); d.Kind == lease.Granted || d.Kind == lease.Deferred {
			s.waiting++
		}
	}
	e.Advance(s.now)
	if err := e.Check(); err != nil {
		tb.Fatalf("bench site: %v", err)
	}
	s.setup = time.Since(start)
	return s
}

// benchSites keeps one site per preset: the testing package runs a
// benchmark's function once per b.N it tries, and the setup takes seconds.
var benchSites = map[string]*benchSite{}

func benchSiteFor(b *testing.B, preset string) *benchSite {
	s := benchSites[preset]
	if s == nil {
		s = newBenchSite(b, preset)
		benchSites[preset] = s
		b.Logf("%s: %d running, %d waiting, set up in %s", preset, s.running, s.waiting, s.setup.Round(time.Millisecond))
	}
	return s
}

// benchRequest is the new request: 4 VMs × 2 cores (at the hosts' 4 GiB a
// core) for 3 h, from one of the site's groups.
func benchRequest(id string) lease.Request {
	r := rq(id, "g07", 4, 2, 3*time.Hour)
	r.Shape.MemoryMiB = 8 * gib
	return r
}

// benchSubmit times Submit of r's copies; each is released again outside
// the timer, so every iteration meets the same state.
func benchSubmit(b *testing.B, s *benchSite, r lease.Request) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.ID = lease.ID(fmt.Sprintf("bench%d", i))
		d := s.e.Submit(s.now, r)
		b.StopTimer()
		if i == 0 {
			b.Logf("decision: %v %s", d.Kind, d.Reason)
		}
		if d.Kind != lease.Rejected {
			if err := s.e.Release(s.now, r.ID); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
}

// BenchmarkDecision measures one Submit of the new request on the large
// site (it fits now: 10 % of the cores are free).
func BenchmarkDecision(b *testing.B) {
	for _, preset := range fairshare.PolicyNames {
		b.Run(preset, func(b *testing.B) { benchSubmit(b, benchSiteFor(b, preset), benchRequest("")) })
	}
}

// BenchmarkDecisionLater measures the same request asking to start in 2 h:
// it cannot be granted, so the decision searches the calendar and queues
// it (a pass over the waiting requests included) or promises a start.
func BenchmarkDecisionLater(b *testing.B) {
	for _, preset := range fairshare.PolicyNames {
		b.Run(preset, func(b *testing.B) {
			s := benchSiteFor(b, preset)
			r := benchRequest("")
			r.EarliestStart = s.now.Add(2 * time.Hour)
			benchSubmit(b, s, r)
		})
	}
}

// BenchmarkWhatIf measures the dry run of the new request, which changes
// nothing and so needs no release.
func BenchmarkWhatIf(b *testing.B) {
	for _, preset := range fairshare.PolicyNames {
		b.Run(preset, func(b *testing.B) {
			s := benchSiteFor(b, preset)
			r := benchRequest("whatif")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.e.WhatIf(s.now, r)
			}
		})
	}
}
