package fairshare_test

import (
	"cmp"
	"container/heap"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/fairshare"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// The harness replays a workload through an engine the way the simulator
// does (at one instant: the user's releases, then submissions, then what
// the engine has due) and checks every answer against its own ledger,
// built only from Decisions and Events, never from the engine's state.

// workload is a site, a policy and requests with what their users do
// after the decision.
type workload struct {
	hosts []fairshare.Host
	pol   *policies.Policy
	reqs  []wreq
}

type wreq struct {
	r lease.Request // Submitted is the submission time
	// hold releases the lease this long after it starts when shorter than
	// its duration (0: it runs to its end).
	hold time.Duration
	// cancel withdraws the request this long after submission if it still
	// waits then (0: never).
	cancel time.Duration
}

// failer is what the harness needs of *testing.T and *rapid.T.
type failer interface {
	Helper()
	Fatalf(format string, args ...any)
}

// step is one call and its answer; a run's steps are its observable
// behaviour, which determinism compares.
type step struct {
	At       time.Duration
	Op       string
	ID       lease.ID
	Decision lease.Decision
	Err      string
	Events   []fairshare.Event
}

type lstate uint8

const (
	lNone lstate = iota
	lQueued
	lFirm
	lRunning
	lEnded
	lRejected
	lOverflowed
	lCancelled
)

var lnames = [...]string{"none", "queued", "firm", "running", "ended", "rejected", "overflowed", "cancelled"}

func (s lstate) String() string { return lnames[s] }

type track struct {
	w        wreq
	startBy  time.Time // effective: explicit, or earliest + patience; zero: none
	earliest time.Time
	state    lstate
	promise  time.Time
	start    time.Time
	end      time.Time // planned end while running, actual end after
	hosts    map[int]int
}

// result is what a run leaves for tests that compare runs.
type result struct {
	steps []step
	// maxHeld is the most cores (memory) each group held at any instant.
	maxHeld map[lease.GroupID]lease.Resources
	// stuck counts requests without a start_by left waiting for ever.
	stuck int
}

type op struct {
	at   time.Time
	kind int // 0 release, 1 cancel, 2 submit: the simulator's order at one instant
	seq  int
	i    int
}

type ops []op

func (h ops) Len() int { return len(h) }
func (h ops) Less(i, j int) bool {
	if c := h[i].at.Compare(h[j].at); c != 0 {
		return c < 0
	}
	return cmp.Or(cmp.Compare(h[i].kind, h[j].kind), cmp.Compare(h[i].seq, h[j].seq)) < 0
}
func (h ops) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *ops) Push(v any)   { *h = append(*h, v.(op)) }
func (h *ops) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

type harness struct {
	t      failer
	preset string
	o      options
	w      workload
	e      *fairshare.Engine
	hostIx map[string]int
	tr     []*track
	byID   map[lease.ID]int
	ops    ops
	seq    int
	now    time.Time
	res    result
	spent  map[lease.GroupID]map[int64]float64 // overflow core-hours by budget period
}

// options vary how replay drives the engine.
type options struct {
	// whatIf asks WhatIf before every Submit and checks that Submit then
	// answers the same.
	whatIf bool
	// lazy calls Advance only when the user does something, catching up
	// on whatever fell due since, as a broker on a real clock does.
	lazy bool
	// stale (with lazy) advances only after the user's call, so that
	// Submit and Release meet overdue timers.
	stale bool
	// restore swaps the engine for one restored from its exported state
	// (through JSON) after every step, as a replica restoring a snapshot.
	restore bool
}

// replay runs w through a fresh engine of preset, checking as it goes.
func replay(t failer, preset string, w workload) result {
	t.Helper()
	return replayWith(t, preset, w, options{})
}

func replayWith(t failer, preset string, w workload, o options) result {
	t.Helper()
	s, err := fairshare.New(preset, w.hosts, w.pol)
	if err != nil {
		t.Fatalf("New(%s): %v", preset, err)
	}
	h := &harness{
		t: t, preset: preset, w: w, e: s, o: o,
		hostIx: map[string]int{}, byID: map[lease.ID]int{},
		spent: map[lease.GroupID]map[int64]float64{},
		res:   result{maxHeld: map[lease.GroupID]lease.Resources{}},
	}
	for i, x := range w.hosts {
		h.hostIx[x.Name] = i
	}
	for i, wr := range w.reqs {
		tr := &track{w: wr}
		tr.earliest = wr.r.Submitted
		if wr.r.EarliestStart.After(tr.earliest) {
			tr.earliest = wr.r.EarliestStart
		}
		switch {
		case !wr.r.StartBy.IsZero():
			tr.startBy = wr.r.StartBy
		case w.pol.Patience > 0:
			tr.startBy = tr.earliest.Add(w.pol.Patience)
		}
		h.tr = append(h.tr, tr)
		h.byID[wr.r.ID] = i
		h.push(wr.r.Submitted, 2, i)
	}
	h.run()
	return h.res
}

// reserveApplies says whether the policy's reserve can keep borrowers out.
func (h *harness) reserveApplies() bool {
	return fairshare.Presets[h.preset].Reserve && (h.w.pol.Reserve > 0 || h.w.pol.ReserveArrivals > 0)
}

func (h *harness) push(at time.Time, kind, i int) {
	h.seq++
	heap.Push(&h.ops, op{at: at, kind: kind, seq: h.seq, i: i})
}

func (h *harness) fatalf(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("%s at %s: %s\nworkload:\n%v\nsteps:\n%s", h.preset, h.now.Sub(t0), fmt.Sprintf(format, args...), h.w, fmtSteps(h.res.steps))
}

func fmtSteps(ss []step) string {
	var b strings.Builder
	for _, s := range ss {
		switch s.Op {
		case "submit":
			fmt.Fprintf(&b, "  %s submit %s: %v %s start %v %v %s\n", s.At, s.ID, s.Decision.Kind, s.Decision.Reason, s.Decision.Start.Sub(t0), perHost(s.Decision.Placement), s.Decision.Message)
		case "release":
			fmt.Fprintf(&b, "  %s release %s: %s\n", s.At, s.ID, s.Err)
		default:
			fmt.Fprintf(&b, "  %s advance: %+v\n", s.At, evs(s.Events))
		}
	}
	return b.String()
}

func (h *harness) run() {
	h.t.Helper()
	for iter := 0; ; iter++ {
		if iter > 100000 {
			h.fatalf("the run does not drain")
		}
		next, due := h.e.Next()
		if due && next.Before(h.now) {
			if !h.o.stale {
				h.fatalf("Next says %s, before the last call", next.Sub(t0))
			}
			next = h.now // overdue: calls may not go back in time
		}
		if len(h.ops) > 0 && (!due || !next.Before(h.ops[0].at) || h.o.lazy) {
			o := heap.Pop(&h.ops).(op)
			if o.at.Before(h.now) {
				// A lazy caller hears of a start late and acts after.
				o.at = h.now
			}
			advance := func() {
				es := h.e.Advance(h.now)
				h.res.steps = append(h.res.steps, step{At: h.now.Sub(t0), Op: "advance", Events: es})
				h.events(es)
				if err := h.e.Check(); err != nil {
					h.fatalf("Check: %v", err)
				}
			}
			late := h.o.lazy && o.at.After(h.now)
			h.now = o.at
			if late && !h.o.stale {
				advance()
			}
			h.do(o)
			if late && h.o.stale {
				advance()
			}
		} else if due {
			h.now = next
			es := h.e.Advance(next)
			h.res.steps = append(h.res.steps, step{At: next.Sub(t0), Op: "advance", Events: es})
			h.events(es)
		} else {
			break
		}
		if err := h.e.Check(); err != nil {
			h.fatalf("Check: %v", err)
		}
		if h.o.restore {
			h.swap()
		}
	}
	for _, tr := range h.tr {
		switch tr.state {
		case lEnded, lRejected, lOverflowed, lCancelled:
		case lQueued:
			if tr.startBy.IsZero() && h.reserveApplies() {
				// Known: borrowers larger than their share can keep each
				// other out through the reserve forever (see
				// TestReserveDeadlock); without a start_by nothing ends it.
				h.res.stuck++
				break
			}
			fallthrough
		default:
			h.fatalf("%s is %s after the queue drained (want ended, rejected, overflowed or cancelled)", tr.w.r.ID, tr.state)
		}
	}
	for _, s := range h.e.Shares(h.now) {
		if h.res.stuck > 0 {
			break
		}
		if s.Held != (lease.Resources{}) || s.Reserved != (lease.Resources{}) || s.Queued != (lease.Resources{}) {
			h.fatalf("group %s still holds %+v, reserves %+v, queues %+v after the queue drained", s.Group, s.Held, s.Reserved, s.Queued)
		}
	}
}

func (h *harness) do(o op) {
	h.t.Helper()
	tr := h.tr[o.i]
	id := tr.w.r.ID
	switch o.kind {
	case 2:
		var wd lease.Decision
		if h.o.whatIf {
			wd = h.e.WhatIf(h.now, tr.w.r)
		}
		d := h.e.Submit(h.now, tr.w.r)
		if h.o.whatIf {
			if diff := gocmp.Diff(wd, d); diff != "" {
				h.fatalf("%s: WhatIf and Submit differ (-whatif +submit):\n%s", id, diff)
			}
		}
		h.res.steps = append(h.res.steps, step{At: h.now.Sub(t0), Op: "submit", ID: id, Decision: d})
		h.decided(o.i, d)
	case 0, 1:
		// The user releases a running lease (hold) or withdraws a
		// waiting request (cancel); otherwise there is nothing to do.
		want := lRunning
		if o.kind == 1 {
			want = lQueued
		}
		if tr.state != want && !(o.kind == 1 && tr.state == lFirm) {
			return
		}
		err := h.e.Release(h.now, id)
		h.res.steps = append(h.res.steps, step{At: h.now.Sub(t0), Op: "release", ID: id, Err: fmt.Sprint(err)})
		if err != nil {
			h.fatalf("Release(%s) of a %s lease: %v", id, tr.state, err)
		}
		if tr.state == lRunning {
			tr.state, tr.end = lEnded, h.now
		} else {
			tr.state = lCancelled
		}
		// A second release must find nothing.
		if err := h.e.Release(h.now, id); lease.ErrorCode(err) != lease.ENOTFOUND {
			h.fatalf("second Release(%s) = %v, want a not_found error", id, err)
		}
	}
}

func (h *harness) decided(i int, d lease.Decision) {
	h.t.Helper()
	tr := h.tr[i]
	r := tr.w.r
	switch d.Kind {
	case lease.Granted:
		if !d.Start.Equal(h.now) || !d.End.Equal(h.now.Add(r.Duration)) {
			h.fatalf("%s granted for [%s, %s), want [now, now+%s)", r.ID, d.Start.Sub(t0), d.End.Sub(t0), r.Duration)
		}
		h.started(i, h.now, d.Placement)
	case lease.Deferred:
		if d.Start.IsZero() {
			if d.Reason != lease.ReasonQueued || len(d.Placement) != 0 {
				h.fatalf("%s deferred without a start: reason %q, %d placements; want queued, none", r.ID, d.Reason, len(d.Placement))
			}
			tr.state = lQueued
		} else {
			if !d.Start.After(h.now) || d.Start.Before(tr.earliest) {
				h.fatalf("%s promised %s: want after now and not before its earliest start %s", r.ID, d.Start.Sub(t0), tr.earliest.Sub(t0))
			}
			if !tr.startBy.IsZero() && d.Start.After(tr.startBy) {
				h.fatalf("%s promised %s, after its start_by %s", r.ID, d.Start.Sub(t0), tr.startBy.Sub(t0))
			}
			if !fairshare.Presets[h.preset].Calendar {
				h.fatalf("%s promised a start by a preset without a calendar", r.ID)
			}
			// New takes the product's horizon from the policy.
			if ph := h.w.pol.PromiseHorizon; ph > 0 && d.Start.Sub(h.now) > ph {
				h.fatalf("%s promised %s ahead, beyond the promise horizon %s", r.ID, d.Start.Sub(h.now), ph)
			}
			if len(d.Placement) != r.Count {
				h.fatalf("%s promised with %d placements, want %d", r.ID, len(d.Placement), r.Count)
			}
			tr.state, tr.promise = lFirm, d.Start
		}
		if tr.w.cancel > 0 {
			h.push(h.now.Add(tr.w.cancel), 1, i)
		}
	case lease.Overflowed:
		h.overflowed(i, d.Site)
	case lease.Rejected:
		if d.Reason == "" || d.Message == "" {
			h.fatalf("%s rejected without a reason (%q) or message (%q)", r.ID, d.Reason, d.Message)
		}
		tr.state = lRejected
	default:
		h.fatalf("%s: decision kind %v", r.ID, d.Kind)
	}
}

func (h *harness) overflowed(i int, site string) {
	h.t.Helper()
	tr := h.tr[i]
	g, ok := h.w.pol.Group(tr.w.r.Group)
	if !ok || len(g.Overflow.Sites) == 0 || site != g.Overflow.Sites[0] {
		h.fatalf("%s overflowed to %q; its group may overflow to %v", tr.w.r.ID, site, g.Overflow.Sites)
	}
	ch := float64(tr.w.r.Count*tr.w.r.Shape.Cores) * tr.w.r.Duration.Hours()
	period := h.now.UnixNano() / int64(g.Overflow.Period)
	if h.spent[tr.w.r.Group] == nil {
		h.spent[tr.w.r.Group] = map[int64]float64{}
	}
	h.spent[tr.w.r.Group][period] += ch
	if b := g.Overflow.BudgetCoreHours; b >= 0 && h.spent[tr.w.r.Group][period] > b+1e-9 {
		h.fatalf("%s overflowed: group %s spent %.2f core-hours this period, budget %.2f", tr.w.r.ID, tr.w.r.Group, h.spent[tr.w.r.Group][period], b)
	}
	tr.state = lOverflowed
}

// started checks a start at t on placement against the ledger: every VM
// placed once on a known host, and no host or group over its limit at t.
func (h *harness) started(i int, t time.Time, ps []lease.Placement) {
	h.t.Helper()
	tr := h.tr[i]
	r := tr.w.r
	if len(ps) != r.Count {
		h.fatalf("%s starts with %d placements, want %d", r.ID, len(ps), r.Count)
	}
	// A caller that acts before it advances can make a pass run late.
	if t.Before(tr.earliest) || (!tr.startBy.IsZero() && t.After(tr.startBy) && !h.o.stale) {
		h.fatalf("%s starts at %s, outside [earliest %s, start_by %s]", r.ID, t.Sub(t0), tr.earliest.Sub(t0), tr.startBy.Sub(t0))
	}
	tr.hosts = map[int]int{}
	seen := map[int]bool{}
	for _, p := range ps {
		hi, ok := h.hostIx[p.Host]
		if !ok || p.Index < 0 || p.Index >= r.Count || seen[p.Index] {
			h.fatalf("%s: bad placement %+v", r.ID, p)
		}
		seen[p.Index] = true
		tr.hosts[hi]++
	}
	tr.state, tr.start, tr.end = lRunning, t, t.Add(r.Duration)
	if tr.w.hold > 0 && tr.w.hold < r.Duration {
		h.push(t.Add(tr.w.hold), 0, i)
	}
	// Usage only grows at starts, so checking there checks every instant.
	used := make([]lease.Resources, len(h.w.hosts))
	held := map[lease.GroupID]lease.Resources{}
	for _, x := range h.tr {
		if x.state != lRunning || t.Before(x.start) || !t.Before(x.end) {
			continue
		}
		vm := x.w.r.Shape.Resources()
		for hi, n := range x.hosts {
			used[hi] = used[hi].Add(vm.Scale(int64(n)))
		}
		held[x.w.r.Group] = held[x.w.r.Group].Add(x.w.r.Total())
	}
	for hi, u := range used {
		if !u.Fits(h.w.hosts[hi].Capacity) {
			h.fatalf("%s starts: host %s runs %+v, capacity %+v", r.ID, h.w.hosts[hi].Name, u, h.w.hosts[hi].Capacity)
		}
	}
	for g, u := range held {
		if lim := groupLimit(h.w, h.preset, g); !u.Fits(lim) {
			h.fatalf("%s starts: group %s holds %+v, its limit is %+v", r.ID, g, u, lim)
		}
		m := h.res.maxHeld[g]
		h.res.maxHeld[g] = lease.Resources{Cores: max(m.Cores, u.Cores), MemoryMiB: max(m.MemoryMiB, u.MemoryMiB)}
	}
}

// groupLimit is what group g may hold at once: its quota, the preset's
// static cap, and the site.
func groupLimit(w workload, preset string, g lease.GroupID) lease.Resources {
	var total lease.Resources
	for _, x := range w.hosts {
		total = total.Add(x.Capacity)
	}
	lim := total
	if pg, ok := w.pol.Group(g); ok {
		if q := pg.Quota.MaxCores; q > 0 {
			lim.Cores = min(lim.Cores, q)
		}
		if q := pg.Quota.MaxMemoryMiB; q > 0 {
			lim.MemoryMiB = min(lim.MemoryMiB, q)
		}
	}
	if f := fairshare.Presets[preset].CapFraction; f > 0 {
		lim.Cores = min(lim.Cores, int64(f*float64(total.Cores)))
		lim.MemoryMiB = min(lim.MemoryMiB, int64(f*float64(total.MemoryMiB)))
	}
	return lim
}

func (h *harness) events(es []fairshare.Event) {
	h.t.Helper()
	// The order of events at one instant does not matter to the ledger:
	// a start is checked against the leases whose [start, end) holds it.
	for _, e := range es {
		i, ok := h.byID[e.ID]
		if !ok {
			h.fatalf("event %v for unknown lease %s", e.Kind, e.ID)
		}
		tr := h.tr[i]
		if e.At.After(h.now) {
			h.fatalf("event %v of %s at %s, after the Advance time", e.Kind, e.ID, e.At.Sub(t0))
		}
		switch e.Kind {
		case fairshare.EventStart:
			switch tr.state {
			case lFirm:
				if e.At.After(tr.promise) {
					h.fatalf("%s starts at %s, promised %s", e.ID, e.At.Sub(t0), tr.promise.Sub(t0))
				}
			case lQueued:
			default:
				h.fatalf("%s starts while %s", e.ID, tr.state)
			}
			h.started(i, e.At, e.Placement)
		case fairshare.EventEnd:
			if tr.state != lRunning || !e.At.Equal(tr.end) {
				h.fatalf("%s ends at %s while %s (planned end %s)", e.ID, e.At.Sub(t0), tr.state, tr.end.Sub(t0))
			}
			tr.state = lEnded
		case fairshare.EventReject, fairshare.EventOverflow:
			if tr.state != lQueued {
				h.fatalf("%s: %v while %s (only queued requests may expire)", e.ID, e.Kind, tr.state)
			}
			if tr.startBy.IsZero() || !e.At.Equal(tr.startBy) {
				h.fatalf("%s: %v at %s, want its start_by %s", e.ID, e.Kind, e.At.Sub(t0), tr.startBy.Sub(t0))
			}
			if e.Kind == fairshare.EventReject {
				if e.Reason != lease.ReasonStartBy {
					h.fatalf("%s rejected with reason %q, want %q", e.ID, e.Reason, lease.ReasonStartBy)
				}
				tr.state = lRejected
			} else {
				h.overflowed(i, e.Site)
			}
		default:
			h.fatalf("event kind %v", e.Kind)
		}
	}
}

// String describes w for failure messages.
func (w workload) String() string {
	s := fmt.Sprintf("  hosts %v\n  policy %+v\n", w.hosts, *w.pol)
	for id, g := range w.pol.Groups {
		s += fmt.Sprintf("  group %s %+v\n", id, *g)
	}
	off := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Sub(t0).String()
	}
	for _, r := range w.reqs {
		s += fmt.Sprintf("  %s %s %dx%dc/%dMiB %s at %s earliest %s start_by %s hold %s cancel %s\n",
			r.r.ID, r.r.Group, r.r.Count, r.r.Shape.Cores, r.r.Shape.MemoryMiB, r.r.Duration, r.r.Submitted.Sub(t0),
			off(r.r.EarliestStart), off(r.r.StartBy), r.hold, r.cancel)
	}
	return s
}

// swap replaces the engine with one restored from its state, and checks
// that the restored engine's state is the same.
func (h *harness) swap() {
	st := h.e.Export()
	b, err := json.Marshal(st)
	if err != nil {
		h.fatalf("encode state: %v", err)
	}
	var back fairshare.State
	if err := json.Unmarshal(b, &back); err != nil {
		h.fatalf("decode state: %v", err)
	}
	e, err := fairshare.Restore(h.preset, h.w.hosts, h.w.pol, &back)
	if err != nil {
		h.fatalf("Restore: %v", err)
	}
	if diff := gocmp.Diff(st, e.Export()); diff != "" {
		h.fatalf("restored state differs (-exported +restored):\n%s", diff)
	}
	if err := e.Check(); err != nil {
		h.fatalf("Check after restore: %v", err)
	}
	h.e = e
}
