package fairshare

import (
	"slices"
	"sort"

	"github.com/fairlease/fairlease/lease"
)

// The queue holds requests that wait without a firm time. A pass runs it
// in policy order whenever capacity may have come free. Passes must stay
// cheap with thousands waiting (a parameter scan queues thousands of VMs
// at once), so a pass walks groups rather than requests where it can,
// stops once nothing more can start, and finished entries are swept
// lazily instead of being cut out one by one.

// enqueue puts x in the queue.
func (e *Engine) enqueue(x *entry) {
	x.state = stQueued
	e.queue = append(e.queue, x)
	e.qlive++
	x.g.queue = append(x.g.queue, x)
	if x.g.qlive++; x.g.qlive == 1 && !x.g.listed {
		x.g.listed = true
		e.qgroups = append(e.qgroups, x.g)
	}
	// Without a start_by (patience 0) there is nothing to expire: a timer
	// at never would make Next report the zero time.
	if x.startBy != never {
		e.schedule(timer{at: x.startBy, kind: tStartBy, x: x})
	}
	// Nothing else need happen when a request asked to start later does
	// become startable (an idle site, or one behind no head): wake a pass.
	if x.earliest > e.now {
		e.schedule(timer{at: x.earliest, kind: tWake, x: x})
	}
	if a := e.mech.Aging; a > 0 && x.startBy != never {
		e.schedule(timer{at: x.submit + int64(a*float64(x.startBy-x.submit)), kind: tAge, x: x})
	}
}

// dequeue notes that x, once queued, no longer waits.
func (e *Engine) dequeue(x *entry) {
	e.qlive--
	x.g.qlive--
	if x == e.head {
		e.head = nil
	}
	if e.inPass {
		// A pass is walking these slices; it sweeps when it is done.
		e.dirty = append(e.dirty, x.g)
		return
	}
	e.sweepQueues(x.g)
}

// sweepQueues drops finished entries from the queues once they are many.
func (e *Engine) sweepQueues(gs ...*group) {
	e.queue = sweep(e.queue, e.qlive)
	for _, g := range gs {
		g.queue = sweep(g.queue, g.qlive)
	}
	if len(e.agedQ) > 0 {
		e.agedQ = slices.DeleteFunc(e.agedQ, func(x *entry) bool { return x.state != stQueued })
	}
}

// sweep drops entries that no longer wait once they are half of q.
func sweep(q []*entry, live int) []*entry {
	if len(q) < 32 || live*2 > len(q) {
		return q
	}
	return slices.DeleteFunc(q, func(x *entry) bool { return x.state != stQueued })
}

// age moves x among the requests at risk of missing their start_by.
func (e *Engine) age(x *entry) {
	i := sort.Search(len(e.agedQ), func(i int) bool { return e.agedQ[i].startBy > x.startBy })
	e.agedQ = slices.Insert(e.agedQ, i, x)
}

// passState is what one pass knows as it goes.
type passState struct {
	free   lease.Resources
	headed bool
	stop   bool
	old    *entry // the head when the pass began
}

// pass starts what can start now: calendar reservations move as early as
// they can (conservative backfill's compression, never later), fairest
// group first; then the queue runs in policy order, and the first request
// that cannot start gets a reservation the ones after it may not delay.
func (e *Engine) pass() {
	now := e.now
	if e.reservedCount > 0 {
		for _, g := range e.rankedGroups() {
			for _, x := range slices.Clone(g.reserved) {
				if x.start > now && x.earliest < x.start {
					e.compact(x, e.shareLimits(x), e.borrowLimits(x))
				}
			}
		}
	}
	if h := e.head; h != nil && h.placed && h.start <= now {
		// Its time has come: it starts where it was kept, whatever the
		// limits say now (and keeps its slot if the call comes late).
		e.head = nil
		e.startQueued(h, h.allocs)
	}
	if e.qlive == 0 {
		return
	}
	e.passID++
	e.inPass = true
	st := &passState{free: sub(e.capTotal, e.resAt(now)), old: e.head}
	defer func() {
		// A head that lost its place to a fairer request gives up its
		// reservation.
		if h := st.old; h != nil && h != e.head && h.state == stQueued && h.placed {
			e.unplace(h, now)
			h.gen++
		}
		e.inPass = false
		e.sweepQueues(e.dirty...)
		e.dirty = e.dirty[:0]
	}()
	if e.mech.Order == OrderFIFO {
		for _, x := range e.queue {
			if e.visit(x, st); st.stop {
				break
			}
		}
		return
	}
	groups := e.queuedGroups()
	if e.mech.InShareFirst {
		for _, g := range groups {
			room := e.shareLimit(share(g))
			c, m := g.committed.at(now)
			room = sub(room, lease.Resources{Cores: c, MemoryMiB: m})
			for _, x := range g.queue {
				if x.state == stQueued && x.need.Fits(room) {
					if e.visit(x, st); st.stop {
						return
					}
				}
			}
		}
	}
	if e.mech.Aging > 0 {
		for _, x := range slices.Clone(e.agedQ) {
			if e.visit(x, st); st.stop {
				return
			}
		}
	}
	for _, g := range groups {
		if g.qlive == 0 {
			continue
		}
		for _, x := range g.queue {
			if e.visit(x, st); st.stop {
				return
			}
		}
	}
}

// visit gives waiting x its turn in a pass.
func (e *Engine) visit(x *entry, st *passState) {
	if x.state != stQueued || x.seen == e.passID {
		return
	}
	x.seen = e.passID
	if x.earliest <= e.now && x.need.Fits(st.free) {
		if x.placed {
			// The head: free its slot to see whether it fits now.
			oldT, old := x.start, slices.Clone(x.allocs)
			e.unplace(x, e.now)
			if a, in := e.startLimits(x); a != nil {
				e.head = nil
				x.inShare = x.inShare || in
				e.startQueued(x, a)
				st.free = sub(st.free, x.need)
				st.stop = st.headed && st.free.Cores <= 0
				return
			}
			e.place(x, oldT, old)
		} else if a, in := e.startLimits(x); a != nil {
			x.inShare = x.inShare || in
			e.startQueued(x, a)
			st.free = sub(st.free, x.need)
			st.stop = st.headed && st.free.Cores <= 0
			return
		}
	}
	if !st.headed {
		if !e.mech.Backfill {
			st.headed, st.stop = true, true // a strict queue: nothing passes its head
			return
		}
		// The first request that cannot start holds the reservation. The
		// head keeps the one it has; a new head takes over from the old.
		// Under the calendar a request that cannot start before its
		// start_by passes the role on rather than drain capacity for
		// nothing.
		if x.placed {
			st.headed = true
		} else {
			if h := st.old; h != nil && h.placed && h.state == stQueued {
				e.unplace(h, e.now)
				h.gen++
			}
			e.head = nil
			st.headed = e.reserveHead(x) || !e.mech.Calendar
			st.free = sub(e.capTotal, e.resAt(e.now))
		}
	} else if x.placed {
		// An old head overtaken by a fairer one.
		e.unplace(x, e.now)
		x.gen++
	}
	st.stop = st.free.Cores <= 0
}

// queuedGroups returns the groups with waiting requests, fairest first.
func (e *Engine) queuedGroups() []*group {
	e.qgroups = slices.DeleteFunc(e.qgroups, func(g *group) bool {
		g.listed = g.qlive > 0
		return !g.listed
	})
	for _, g := range e.qgroups {
		g.key = e.key(g)
	}
	sortGroups(e.qgroups)
	return slices.Clone(e.qgroups)
}

func sortGroups(gs []*group) {
	sort.Slice(gs, func(i, j int) bool {
		if gs[i].key != gs[j].key {
			return gs[i].key < gs[j].key
		}
		return gs[i].id < gs[j].id
	})
}

// reserveHead gives the queue's head a reservation so that requests behind
// it cannot starve it (EASY's shadow time).
func (e *Engine) reserveHead(x *entry) bool {
	lim, horizon := e.queueLimits(x), int64(never)
	if e.mech.Calendar {
		lim, horizon = e.borrowLimits(x), x.startBy
	}
	t, a, ok := e.search(x, max(e.now, x.earliest), horizon, lim)
	if !ok {
		return false
	}
	e.place(x, t, a)
	e.head = x
	x.gen++
	e.schedule(timer{at: t, kind: tStart, x: x})
	return true
}

// startLimits finds hosts for x to start now: within its group's share if
// it can (no reserve applies), else as a borrower.
func (e *Engine) startLimits(x *entry) ([]alloc, bool) {
	if !e.mech.Calendar && !e.mech.Reserve {
		return e.fitsNow(x, e.queueLimits(x)), false
	}
	if a := e.fitsNow(x, e.shareLimits(x)); a != nil {
		return a, true
	}
	return e.fitsNow(x, e.borrowLimits(x)), false
}
