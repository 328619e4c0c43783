package fairshare_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fairlease/fairlease/fairshare"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// t0 anchors every test's virtual time; tests speak in offsets from it.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const gib = 1024

// hosts returns n hosts of 4 cores / 8 GiB named h0, h1, ...
func hosts(n int) []fairshare.Host {
	out := make([]fairshare.Host, n)
	for i := range out {
		out[i] = fairshare.Host{Name: fmt.Sprintf("h%d", i), Capacity: lease.Resources{Cores: 4, MemoryMiB: 8 * gib}}
	}
	return out
}

// pol returns the default policy with the given changes, validated.
func pol(tb testing.TB, change ...func(*policies.Policy)) *policies.Policy {
	tb.Helper()
	p := policies.Default()
	p.Activity = policies.ActiveHeld // Validate wants it set; Default may leave it empty
	for _, c := range change {
		c(p)
	}
	if err := p.Validate(); err != nil {
		tb.Fatalf("test policy: %v", err)
	}
	return p
}

// withGroup adds group id with weight 1 and lets change adjust it.
func withGroup(id lease.GroupID, change func(*policies.Group)) func(*policies.Policy) {
	return func(p *policies.Policy) {
		g := &policies.Group{Weight: 1, Overflow: policies.Overflow{Period: 30 * policies.Day}}
		if change != nil {
			change(g)
		}
		p.Groups[id] = g
	}
}

func newEngine(tb testing.TB, preset string, hs []fairshare.Host, p *policies.Policy) *fairshare.Engine {
	tb.Helper()
	s, err := fairshare.New(preset, hs, p)
	if err != nil {
		tb.Fatalf("New(%s): %v", preset, err)
	}
	return s
}

// rq is a request for n VMs of c cores and 2 GiB per core (the hosts'
// ratio) for d, submitted at t0; opts adjust it.
func rq(id string, g lease.GroupID, n, c int, d time.Duration, opts ...func(*lease.Request)) lease.Request {
	r := lease.Request{
		ID: lease.ID(id), Group: g, User: "u", Count: n,
		Shape:    lease.Shape{Cores: c, MemoryMiB: int64(c) * 2 * gib},
		Duration: d, Submitted: t0, AllOrNothing: true,
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func startBy(t time.Time) func(*lease.Request) { return func(r *lease.Request) { r.StartBy = t } }

// outcome is the part of a decision a scenario pins down: times as offsets
// from t0 so that a diff reads in minutes, placements as VMs per host
// (which VM lands where is first-fit detail, the spread is what matters).
type outcome struct {
	Kind   lease.Kind
	Reason lease.Reason
	Start  time.Duration // -1: no start time
	Site   string
	Hosts  map[string]int
}

func summarize(d lease.Decision) outcome {
	o := outcome{Kind: d.Kind, Reason: d.Reason, Start: -1, Site: d.Site}
	if !d.Start.IsZero() {
		o.Start = d.Start.Sub(t0)
	}
	if len(d.Placement) > 0 {
		o.Hosts = perHost(d.Placement)
	}
	return o
}

func perHost(ps []lease.Placement) map[string]int {
	m := map[string]int{}
	for _, p := range ps {
		m[p.Host]++
	}
	return m
}

// ev is an event with its time as an offset from t0.
type ev struct {
	Kind  fairshare.EventKind
	ID    lease.ID
	At    time.Duration
	Hosts map[string]int
	Site  string
}

func evs(es []fairshare.Event) []ev {
	out := make([]ev, 0, len(es))
	for _, e := range es {
		x := ev{Kind: e.Kind, ID: e.ID, At: e.At.Sub(t0), Site: e.Site}
		if len(e.Placement) > 0 {
			x.Hosts = perHost(e.Placement)
		}
		out = append(out, x)
	}
	return out
}

// only keeps the events of the given kinds.
func only(es []ev, kinds ...fairshare.EventKind) []ev {
	return slices.DeleteFunc(slices.Clone(es), func(e ev) bool { return !slices.Contains(kinds, e.Kind) })
}

// check fails the test if the engine's calendar is inconsistent.
func check(tb testing.TB, e *fairshare.Engine, after string) {
	tb.Helper()
	if err := e.Check(); err != nil {
		tb.Fatalf("after %s: Check: %v", after, err)
	}
}

// drain advances e through everything due up to and including until (or
// until nothing is due when until is zero) and returns the events.
func drain(tb testing.TB, e *fairshare.Engine, until time.Time) []fairshare.Event {
	tb.Helper()
	var out []fairshare.Event
	for i := 0; ; i++ {
		next, ok := e.Next()
		if !ok || (!until.IsZero() && next.After(until)) {
			break
		}
		if i > 10000 {
			tb.Fatalf("drain: Next keeps reporting %s", next)
		}
		out = append(out, e.Advance(next)...)
		check(tb, e, "Advance("+next.Sub(t0).String()+")")
	}
	if !until.IsZero() {
		out = append(out, e.Advance(until)...)
		check(tb, e, "Advance("+until.Sub(t0).String()+")")
	}
	return out
}
