package fairshare

import (
	"container/heap"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/fairlease/fairlease/lease"
)

// plan is a decision before it is committed.
type plan struct {
	kind    lease.Kind
	queued  bool // deferred without a firm time
	t       int64
	allocs  []alloc
	inShare bool
	reason  lease.Reason
	msg     string
	site    string
	early   int64 // earliest local start found, for rejections and overflows
}

// Submit decides r at now and commits the decision.
func (e *Engine) Submit(now time.Time, r lease.Request) lease.Decision {
	e.setNow(now)
	x, p := e.decide(r)
	if x != nil {
		e.commit(x, &p)
	}
	return e.decision(x, p)
}

// WhatIf answers what Submit would, changing nothing.
func (e *Engine) WhatIf(now time.Time, r lease.Request) lease.Decision {
	e.setNow(now)
	_, known := e.groups[r.Group]
	x, p := e.decide(r)
	if x != nil {
		// Undo the activation decide did. Not with drop: that would open
		// the group's active window as if a lease had ended, and so change
		// everyone's shares.
		x.g.askedUntil = x.prevAsked
		x.g.count--
		e.touch(x.g)
	}
	if g, ok := e.groups[r.Group]; !known && ok {
		// Nor may a dry run add a row to Shares.
		delete(e.groups, r.Group)
		e.groupList = slices.DeleteFunc(e.groupList, func(h *group) bool { return h == g })
	}
	return e.decision(x, p)
}

func reject(reason lease.Reason, format string, args ...any) plan {
	return plan{kind: lease.Rejected, reason: reason, msg: fmt.Sprintf(format, args...)}
}

// decide works out what to do with r. A non-nil entry means the group was
// activated for the decision; commit or drop it.
func (e *Engine) decide(r lease.Request) (*entry, plan) {
	if err := r.Validate(); err != nil {
		return nil, reject(lease.ReasonInvalid, "%v", err)
	}
	if _, dup := e.leases[r.ID]; dup {
		return nil, reject(lease.ReasonInvalid, "a request with id %q exists already", r.ID)
	}
	g, err := e.groupFor(r.Group)
	if err != nil {
		return nil, reject(lease.ReasonUnknownGroup, "%v", err)
	}
	x := &entry{req: r, g: g, vm: r.Shape.Resources(), d: int64(r.Duration), submit: e.now}
	x.need = r.Total()
	x.earliest = max(e.now, toTick(r.EarliestStart))
	x.startBy = never
	if !r.StartBy.IsZero() {
		x.startBy = toTick(r.StartBy)
	} else if p := e.pol.Patience; p > 0 {
		x.startBy = x.earliest + int64(p)
	}
	// A request larger than the site never starts here: it overflows when
	// its group may, like one whose local start is past its start_by.
	tooLarge, fits := e.tooLarge(x)
	if !fits {
		if _, may := e.overflowSite(x); !may {
			return nil, reject(lease.ReasonTooLarge, "%s", tooLarge)
		}
	}
	switch {
	case g.maxLease > 0 && x.d > g.maxLease:
		return nil, reject(lease.ReasonTooLong, "%s asks for %s; group %s may lease at most %s",
			r.ID, fmtDur(r.Duration), g.id, fmtDur(time.Duration(g.maxLease)))
	case g.maxVMs > 0 && r.Count > g.maxVMs:
		return nil, reject(lease.ReasonQuota, "%d VMs asked; group %s may ask for at most %d in one request", r.Count, g.id, g.maxVMs)
	case x.need.Cores > g.limit.Cores:
		return nil, reject(lease.ReasonQuota, "%d cores asked; group %s may hold at most %d cores at once", x.need.Cores, g.id, g.limit.Cores)
	case x.need.MemoryMiB > g.limit.MemoryMiB:
		return nil, reject(lease.ReasonQuota, "%d MiB asked; group %s may hold at most %d MiB at once", x.need.MemoryMiB, g.id, g.limit.MemoryMiB)
	case x.earliest > x.startBy:
		return nil, reject(lease.ReasonStartBy, "earliest start is after start_by")
	}
	x.prevAsked = g.askedUntil
	e.ask(g, x.d)
	e.hold(g)
	if !fits {
		site, _ := e.overflowSite(x)
		return x, plan{kind: lease.Overflowed, site: site, early: never,
			msg: fmt.Sprintf("%s; runs on %s", tooLarge, site)}
	}
	if e.mech.Calendar {
		return x, e.decideCalendar(x)
	}
	return x, e.decideQueue(x)
}

// decideCalendar is the fairlease decision: in-share requests get the
// earliest slot on the calendar; others borrow now or wait.
func (e *Engine) decideCalendar(x *entry) plan {
	t, a, ok := e.search(x, x.earliest, x.startBy, e.shareLimits(x))
	if ok && t == e.now {
		return plan{kind: lease.Granted, t: t, allocs: a, inShare: true}
	}
	if x.earliest == e.now {
		if a := e.fitsNow(x, e.borrowLimits(x)); a != nil {
			return plan{kind: lease.Granted, t: e.now, allocs: a}
		}
	}
	if ok && (e.mech.PromiseHorizon == 0 || t-e.now <= int64(e.mech.PromiseHorizon)) {
		return plan{kind: lease.Deferred, t: t, allocs: a, inShare: true}
	}
	p := e.queueOrOverflow(x)
	p.inShare = e.inShareNow(x)
	return p
}

// decideQueue is the decision of the queue baselines.
func (e *Engine) decideQueue(x *entry) plan {
	p := plan{}
	if x.earliest == e.now && (e.mech.Greedy || e.mech.Backfill || e.qlive == 0) {
		// Backfill rules let an arrival start when it fits around the
		// head's reservation; greedy admits whatever fits.
		if a := e.fitsNow(x, e.queueLimits(x)); a != nil {
			return plan{kind: lease.Granted, t: e.now, allocs: a, inShare: e.inShareNow(x)}
		}
	}
	p = e.queueOrOverflow(x)
	p.inShare = e.inShareNow(x)
	return p
}

// queueOrOverflow queues x, or overflows it when its group may and the
// earliest local start estimate is past start_by.
func (e *Engine) queueOrOverflow(x *entry) plan {
	lim := e.queueLimits(x)
	if e.mech.Calendar {
		lim = e.borrowLimits(x)
	}
	// The earliest time the site as a whole has room on today's calendar:
	// an estimate, since leases end early and others may rank ahead, and
	// the cheap one (no host placement).
	t, found := e.siteEarliest(x, x.earliest, x.startBy, lim)
	if !found {
		t = never
		if site, ok := e.overflowSite(x); ok {
			return plan{kind: lease.Overflowed, site: site, early: never,
				msg: fmt.Sprintf("no local start before start_by; runs on %s", site)}
		}
	}
	return plan{kind: lease.Deferred, queued: true, reason: lease.ReasonQueued, early: t}
}

// inShareNow reports whether x keeps its group within its share now.
func (e *Engine) inShareNow(x *entry) bool {
	lim := e.shareLimit(share(x.g))
	c, m := x.g.committed.at(e.now)
	return c+x.need.Cores <= lim.Cores && (x.need.MemoryMiB == 0 || m+x.need.MemoryMiB <= lim.MemoryMiB)
}

func (e *Engine) queueLimits(x *entry) limits {
	return limits{site: e.capTotal, group: x.g.limit, lendUntil: never}
}

// shareLimits are the limits of a request within its group's share.
func (e *Engine) shareLimits(x *entry) limits {
	return limits{site: e.capTotal, group: minRes(x.g.limit, e.shareLimit(share(x.g))), lendUntil: never}
}

// borrowLimits are the limits of a request beyond its group's share: the
// reserve stays free for the groups below theirs, except that it may be
// lent until the loan limit.
func (e *Engine) borrowLimits(x *entry) limits {
	return limits{site: e.capTotal, group: x.g.limit, reserve: e.reserve(x.g), lendUntil: e.now + int64(e.pol.LoanLimit)}
}

// fitsNow returns hosts for x on [now, now+d) under lim, or nil.
func (e *Engine) fitsNow(x *entry, lim limits) []alloc {
	now := e.now
	if t, ok := e.siteEarliest(x, now, now, lim); !ok || t != now {
		return nil
	}
	c, m := x.g.committed.max(now, now+x.d)
	if c+x.need.Cores > lim.group.Cores || m+x.need.MemoryMiB > lim.group.MemoryMiB {
		return nil
	}
	return e.findHosts(x, now)
}

// tooLarge checks that x could ever run here.
func (e *Engine) tooLarge(x *entry) (string, bool) {
	if !x.vm.Fits(e.maxHost) {
		return fmt.Sprintf("one VM of %d cores / %d MiB is larger than any host (largest %d cores / %d MiB)",
			x.vm.Cores, x.vm.MemoryMiB, e.maxHost.Cores, e.maxHost.MemoryMiB), false
	}
	var fit int64
	for _, h := range e.hosts {
		if !x.vm.Fits(h.cap) {
			continue
		}
		k := h.cap.Cores / x.vm.Cores
		if x.vm.MemoryMiB > 0 {
			k = min(k, h.cap.MemoryMiB/x.vm.MemoryMiB)
		}
		if fit += k; fit >= int64(x.req.Count) {
			return "", true
		}
	}
	return fmt.Sprintf("%d VMs of this shape asked; the whole site holds at most %d", x.req.Count, fit), false
}

// commit carries out p for x.
func (e *Engine) commit(x *entry, p *plan) {
	switch {
	case p.kind == lease.Rejected || p.kind == lease.Overflowed:
		if p.kind == lease.Overflowed {
			e.spendOverflow(x)
		}
		e.drop(x.g)
		return
	}
	e.leases[x.req.ID] = x
	e.seq++
	x.seq = e.seq
	x.inShare = p.inShare
	switch {
	case p.queued:
		e.enqueue(x)
		if e.mech.Backfill || e.mech.Calendar {
			e.pass()
		}
	case p.kind == lease.Granted:
		e.start(x, p.allocs)
	default:
		x.state = stReserved
		e.place(x, p.t, p.allocs)
		e.charge(x, e.dominant(x.need)*float64(x.d)/1e9)
		x.g.reserved = append(x.g.reserved, x)
		e.reservedCount++
		e.schedule(timer{at: p.t, kind: tStart, x: x})
	}
}

// start runs x from now on allocs.
func (e *Engine) start(x *entry, allocs []alloc) {
	if x.state == stReserved {
		e.unreserve(x)
	}
	// A reservation that is due is already where it runs, even when the
	// call comes late: moved to now, its end would run past its slot onto
	// the reservations after it. Anything else moves.
	if !x.placed || x.start > e.now {
		e.unplace(x, e.now)
		x.state = stRunning
		e.place(x, e.now, allocs)
	}
	x.state = stRunning
	if x.charged == 0 {
		e.charge(x, e.dominant(x.need)*float64(x.d)/1e9)
	}
	x.gen++
	e.schedule(timer{at: x.end, kind: tEnd, x: x})
}

// unreserve takes x off its group's list of firm reservations.
func (e *Engine) unreserve(x *entry) {
	rs := x.g.reserved
	if i := slices.Index(rs, x); i >= 0 {
		x.g.reserved = slices.Delete(rs, i, i+1)
		e.reservedCount--
	}
}

func (e *Engine) decision(x *entry, p plan) lease.Decision {
	d := lease.Decision{Kind: p.kind, InShare: p.inShare, Reason: p.reason, Message: p.msg, Site: lease.LocalSite}
	switch p.kind {
	case lease.Granted, lease.Deferred:
		if !p.queued {
			d.Start = fromTick(p.t)
			d.End = fromTick(p.t + x.d)
			tmp := entry{allocs: p.allocs, req: x.req}
			d.Placement = tmp.placement(e)
			if p.kind == lease.Deferred {
				d.Message = fmt.Sprintf("starts at %s (in %s)", d.Start.Format(time.RFC3339), fmtDur(time.Duration(p.t-e.now)))
			}
		} else {
			d.Message = "waits in fair order, no firm start yet"
			if p.early != never && p.early != 0 {
				d.Message += fmt.Sprintf(": the calendar has room at %s (in %s) if nobody fairer comes first",
					fromTick(p.early).Format(time.RFC3339), fmtDur(time.Duration(p.early-e.now)))
			} else {
				d.Message += ": no room before start_by on the calendar as it stands"
			}
		}
	case lease.Overflowed:
		d.Site = p.site
	case lease.Rejected:
		d.Site = ""
	}
	if p.early != 0 && p.early != never {
		d.EarliestLocal = fromTick(p.early)
	}
	return d
}

// Release ends lease id at now.
func (e *Engine) Release(now time.Time, id lease.ID) error {
	e.setNow(now)
	x, ok := e.leases[id]
	if !ok || x.state == stDone {
		return lease.Errorf(lease.ENOTFOUND, "id", "no live lease %q", id)
	}
	// A start the caller has not been told of yet is withdrawn with the
	// lease: reported after the release, it would announce a lease that
	// no longer exists and never ends.
	e.pending = slices.DeleteFunc(e.pending, func(ev Event) bool { return ev.ID == id })
	e.finish(x)
	e.pass()
	return nil
}

// finish ends x at now and frees what it held.
func (e *Engine) finish(x *entry) {
	switch x.state {
	case stRunning:
		// Learn how much of what they ask for users use.
		r := min(1, float64(e.now-x.start)/float64(x.d))
		x.g.useRatio = (x.g.useRatio*float64(x.g.useN) + r) / float64(x.g.useN+1)
		x.g.useN = min(x.g.useN+1, 50)
		e.useRatio = 0.99*e.useRatio + 0.01*r
		if x.end > e.now {
			dom := e.dominant(x.need)
			e.charge(x, -dom*float64(x.end-e.now)/1e9)
		}
		e.unplace(x, e.now)
	case stReserved:
		e.unreserve(x)
		e.unplace(x, e.now)
		e.charge(x, -x.charged)
	case stQueued:
		e.unplace(x, e.now)
		e.dequeue(x)
	}
	x.state = stDone
	x.gen++
	delete(e.leases, x.req.ID)
	e.drop(x.g)
}

// Advance carries out what is due at or before now, in time order: a late
// call does what calls at each due time would have (starts at their
// times, start_by checked before later passes), so that a caller on a real
// clock keeps the calendar's promises.
func (e *Engine) Advance(now time.Time) []Event {
	var out []Event
	for {
		t, ok := e.Next()
		if !ok || !t.Before(now) {
			break
		}
		out = append(out, e.advance(t)...)
	}
	return append(out, e.advance(now)...)
}

func (e *Engine) advance(now time.Time) []Event {
	e.setNow(now)
	out := e.pending
	e.pending = nil
	freed := false
	var expired []*entry
	for len(e.timers) > 0 && e.timers[0].at <= e.now {
		t := heap.Pop(&e.timers).(timer)
		if e.stale(t) {
			continue
		}
		switch t.kind {
		case tStart:
			if t.x.state == stReserved {
				e.start(t.x, t.x.allocs)
				out = append(out, Event{Kind: EventStart, ID: t.x.req.ID, At: fromTick(t.x.start), Placement: t.x.placement(e)})
			} else {
				freed = true // a head reservation is due: let the pass start it
			}
		case tEnd:
			if t.x.state == stRunning {
				e.finish(t.x)
				out = append(out, Event{Kind: EventEnd, ID: t.x.req.ID, At: fromTick(t.at)})
				freed = true
			}
		case tStartBy:
			expired = append(expired, t.x)
		case tAge:
			e.age(t.x)
		case tWake:
			freed = true // it may start now: let the pass see it
		case tIdle:
			e.touch(t.g)
		}
	}
	if freed {
		e.pass()
		out = append(out, e.pending...)
		e.pending = nil
	}
	for _, x := range expired {
		if x.state != stQueued {
			continue
		}
		e.finish(x)
		if site, ok := e.overflowSite(x); ok {
			e.spendOverflow(x)
			out = append(out, Event{Kind: EventOverflow, ID: x.req.ID, At: fromTick(x.startBy), Site: site})
			continue
		}
		out = append(out, Event{Kind: EventReject, ID: x.req.ID, At: fromTick(x.startBy), Reason: lease.ReasonStartBy})
	}
	if len(expired) > 0 {
		e.pass()
		out = append(out, e.pending...)
		e.pending = nil
	}
	return out
}

// compact moves x's reservation to the earliest slot no later than its
// own under the first of lims that has one, starting x if that is now.
func (e *Engine) compact(x *entry, lims ...limits) {
	now := e.now
	oldT, old := x.start, slices.Clone(x.allocs)
	e.unplace(x, now)
	t, a := oldT, old
	if oldT > now {
		for _, lim := range lims {
			if t2, a2, ok := e.search(x, max(now, x.earliest), oldT-1, lim); ok {
				t, a = t2, a2
				break
			}
		}
	}
	switch {
	case t <= now:
		if x.state == stQueued {
			e.startQueued(x, a)
		} else {
			e.start(x, a)
			e.pending = append(e.pending, Event{Kind: EventStart, ID: x.req.ID, At: fromTick(now), Placement: x.placement(e)})
		}
	case t == oldT:
		e.place(x, t, a)
	default:
		e.place(x, t, a)
		x.gen++
		e.schedule(timer{at: t, kind: tStart, x: x})
	}
}

func (e *Engine) resAt(t int64) lease.Resources {
	c, m := e.agg.at(t)
	return lease.Resources{Cores: c, MemoryMiB: m}
}

func (e *Engine) startQueued(x *entry, a []alloc) {
	e.start(x, a)
	e.dequeue(x)
	e.pending = append(e.pending, Event{Kind: EventStart, ID: x.req.ID, At: fromTick(x.start), Placement: x.placement(e)})
}

// key is g's rank among waiting groups, lower first: decayed usage per
// unit of share (the order of Slurm's fair-share factor).
func (e *Engine) key(g *group) float64 {
	s := share(g)
	if s <= 0 {
		return math.Inf(1)
	}
	return e.decayed(g) / s
}

// rankedGroups returns the groups with firm reservations, fairest first.
func (e *Engine) rankedGroups() []*group {
	var gs []*group
	for _, g := range e.groupList {
		if len(g.reserved) > 0 {
			g.key = e.key(g)
			gs = append(gs, g)
		}
	}
	sortGroups(gs)
	return gs
}

// overflowSite returns where x may overflow, if its group may and has
// budget left.
func (e *Engine) overflowSite(x *entry) (string, bool) {
	pg, ok := e.pol.Group(x.g.id)
	if !ok || len(pg.Overflow.Sites) == 0 {
		return "", false
	}
	b := pg.Overflow.BudgetCoreHours
	if b >= 0 {
		e.rollBudget(x.g, int64(pg.Overflow.Period))
		if x.g.spent+coreHours(x) > b {
			return "", false
		}
	}
	return pg.Overflow.Sites[0], true
}

func coreHours(x *entry) float64 {
	return float64(x.need.Cores) * float64(x.d) / float64(time.Hour)
}

func (e *Engine) rollBudget(g *group, period int64) {
	if period <= 0 {
		return
	}
	if p := e.now / period; p != g.period {
		g.period, g.spent = p, 0
	}
}

func (e *Engine) spendOverflow(x *entry) { x.g.spent += coreHours(x) }

// RefundOverflow gives back to group g's overflow budget core-hours an
// overflowed lease charged at its decision (at charged) but did not run:
// it failed on every site, or ended early. A charge from an earlier
// budget period is not refunded: that period's budget is gone anyway.
func (e *Engine) RefundOverflow(now time.Time, g lease.GroupID, coreHours float64, charged time.Time) {
	e.setNow(now)
	grp, ok := e.groups[g]
	if !ok || coreHours <= 0 {
		return
	}
	if pg, ok := e.pol.Group(g); ok {
		if period := int64(pg.Overflow.Period); period > 0 {
			e.rollBudget(grp, period)
			if toTick(charged)/period != grp.period {
				return
			}
		}
	}
	grp.spent = max(0, grp.spent-coreHours)
}

// Shares reports every known group at now.
func (e *Engine) Shares(now time.Time) []GroupShare {
	e.setNow(now)
	var total float64
	for _, g := range e.groupList {
		total += e.decayed(g)
	}
	out := make([]GroupShare, 0, len(e.groups))
	for _, g := range e.groupList {
		gs := GroupShare{Group: g.id, Weight: float64(g.node.weight) / 1000, Active: g.isActive(e.now), Usage: e.decayed(g)}
		if gs.Active {
			gs.Share = share(g)
		}
		c, m := g.committed.at(e.now)
		gs.Held = lease.Resources{Cores: c, MemoryMiB: m}
		for _, x := range g.reserved {
			gs.Reserved = gs.Reserved.Add(x.need)
		}
		for _, x := range g.queue {
			if x.state == stQueued {
				gs.Queued = gs.Queued.Add(x.need)
			}
		}
		gs.Factor = 1
		if total > 0 && gs.Share > 0 {
			gs.Factor = math.Exp2(-(gs.Usage / total) / gs.Share)
		} else if total > 0 {
			gs.Factor = 0
		}
		out = append(out, gs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}
