package fairshare

import (
	"container/heap"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// Engine is the admission engine. It is not safe for concurrent use: the
// broker drives it from its apply loop, the simulator from its event loop.
type Engine struct {
	name    string
	mech    Mechanisms
	pol     *policies.Policy
	tunable bool // the policy's knobs set the mechanisms (the fairlease preset)

	hosts    []*hostCal
	capTotal lease.Resources
	maxHost  lease.Resources
	agg      profile // used capacity of the whole site over time
	ix       *hostIndex
	// dirtyHosts changed since the index last looked.
	dirtyHosts []int32
	useRatio   float64 // the site's average of used / requested lease length

	leases map[lease.ID]*entry
	groups map[lease.GroupID]*group
	// groupList holds the groups in the order they came, so that sums over
	// groups come out the same on every replica.
	groupList []*group
	nodes     map[lease.GroupID]*node
	root      *node
	// queue holds the requests waiting without a firm time in submission
	// order; entries that started or ended linger until swept.
	queue []*entry
	qlive int
	// aged holds waiting requests past their aging point, by start_by.
	agedQ []*entry
	// head is the waiting request holding EASY's reservation.
	head   *entry
	passID uint64
	inPass bool
	dirty  []*group // groups whose queues lost entries during a pass
	// qgroups lists groups with waiting requests (and, lazily, some that
	// have none left).
	qgroups []*group
	// reservedCount counts firm reservations not yet started.
	reservedCount int

	timers  timerHeap
	seq     uint64  // requests admitted so far: numbers them in order
	pending []Event // what Release caused, reported by the next Advance
	now     int64
	scratch []alloc
	// hostIdx finds a host by name; mark[i] == gen marks host i as
	// already tried in the current findHosts.
	hostIdx map[string]int32
	mark    []uint32
	gen     uint32
}

type hostCal struct {
	name  string
	cap   lease.Resources
	prof  profile
	dirty bool // its index entry waits for a refresh
}

type alloc struct {
	host int32
	n    int32
}

type entryState uint8

const (
	stQueued   entryState = iota + 1 // waiting without a firm time
	stReserved                       // on the calendar with a firm start in the future
	stRunning
	stDone
)

type entry struct {
	req      lease.Request
	g        *group
	vm       lease.Resources
	need     lease.Resources
	d        int64
	submit   int64
	earliest int64
	startBy  int64
	state    entryState
	// start/end/allocs describe the calendar slot: the lease's own for
	// reserved and running entries, the head reservation for a queued one.
	start, end int64
	allocs     []alloc
	placed     bool
	inShare    bool
	charged    float64
	gen        uint32
	seen       uint64 // the pass that last looked at it
	prevAsked  int64
	seq        uint64 // admission order
}

// group is a leaf of the share tree that has asked for something.
type group struct {
	id         lease.GroupID
	node       *node
	limit      lease.Resources // quota and static cap on what it holds at once
	maxLease   int64
	maxVMs     int
	committed  profile // running and reserved leases, and its queue head's reservation
	usage      float64 // decayed, in site-seconds of the dominant resource
	usageAt    int64
	reserved   []*entry // firm future starts
	queue      []*entry // waiting, in submission order; swept like Engine.queue
	qlive      int
	listed     bool    // in Engine.qgroups
	count      int     // live entries
	idleUntil  int64   // active window after the last lease (ActiveHeld)
	askedUntil int64   // end of the latest requested interval (ActiveAsked)
	useRatio   float64 // how much of their requested length its leases use, averaged
	useN       int
	active     bool
	key        float64
	spent      float64 // overflow core-hours in the current budget period
	period     int64
	seq        uint64 // order of arrival among groups
}

// node is a node of the share tree; activeWeight sums the weights of its
// active children so a share is a product along the path.
type node struct {
	id           lease.GroupID
	parent       *node
	weight       int64 // in thousandths, so that sums are exact on every replica
	active       int
	activeWeight int64
}

func (e *Engine) groupFor(id lease.GroupID) (*group, error) {
	if g, ok := e.groups[id]; ok {
		return g, nil
	}
	if _, ok := e.pol.Group(id); !ok {
		return nil, lease.Errorf(lease.EINVALID, "group", "group %q is not in the site policy", id)
	}
	return e.newGroup(id), nil
}

// newGroup adds group id to the engine's accounts.
func (e *Engine) newGroup(id lease.GroupID) *group {
	g := &group{id: id, node: e.nodeFor(id)}
	e.setLimits(g)
	g.seq = uint64(len(e.groupList))
	e.groups[id] = g
	e.groupList = append(e.groupList, g)
	return g
}

func (e *Engine) nodeFor(id lease.GroupID) *node {
	if n, ok := e.nodes[id]; ok {
		return n
	}
	n := &node{id: id, parent: e.root, weight: milli(1)}
	if pg, ok := e.pol.Group(id); ok {
		n.weight = milli(pg.Weight)
		if pg.Parent != "" {
			n.parent = e.nodeFor(pg.Parent)
		}
	}
	e.nodes[id] = n
	return n
}

func (g *group) isActive(now int64) bool { return g.active }

// wantActive says whether g should count among the active groups now.
func (e *Engine) wantActive(g *group) bool {
	if e.pol.Activity != policies.ActiveHeld {
		return e.now < g.askedUntil
	}
	return g.count > 0 || e.now < g.idleUntil
}

// touch brings g's place in the active set up to date.
func (e *Engine) touch(g *group) {
	if want := e.wantActive(g); want != g.active {
		g.active = want
		if want {
			setActive(g, 1)
		} else {
			setActive(g, -1)
		}
	}
}

// ask marks that g asked for capacity over [now, now+d).
func (e *Engine) ask(g *group, d int64) {
	if e.pol.Activity == policies.ActiveUsed {
		// Users ask for more than they use: count the group for the part
		// of its request its leases have been using.
		r := g.useRatio
		if g.useN == 0 {
			r = e.useRatio
		}
		d = int64(float64(d) * r)
	}
	if e.now+d > g.askedUntil {
		g.askedUntil = e.now + d
		if e.pol.Activity != policies.ActiveHeld {
			e.schedule(timer{at: g.askedUntil, kind: tIdle, g: g})
		}
	}
	e.touch(g)
}

// hold marks a new live entry of g at now.
func (e *Engine) hold(g *group) {
	g.count++
	e.touch(g)
}

// drop marks a live entry of g as gone at now.
func (e *Engine) drop(g *group) {
	g.count--
	if g.count == 0 && e.pol.Activity == policies.ActiveHeld {
		if w := int64(e.pol.ActiveWindow); w > 0 {
			g.idleUntil = e.now + w
			e.schedule(timer{at: g.idleUntil, kind: tIdle, g: g})
		}
	}
	e.touch(g)
}

// milli converts a policy weight to thousandths.
func milli(w float64) int64 { return max(1, int64(math.Round(w*1000))) }

// setActive adds (+1) or removes (-1) g from the active set, keeping the
// active weights along its path.
func setActive(g *group, delta int) {
	for n := g.node; n.parent != nil; n = n.parent {
		was := n.active > 0
		n.active += delta
		if now := n.active > 0; now != was {
			if now {
				n.parent.activeWeight += n.weight
			} else {
				n.parent.activeWeight -= n.weight
			}
		}
	}
}

// share is g's entitlement as a fraction of the site among active groups
// (Slurm Fair Tree: the product of weight shares down the path).
func share(g *group) float64 {
	s := 1.0
	for n := g.node; n.parent != nil; n = n.parent {
		if n.parent.activeWeight <= 0 {
			return 0
		}
		s *= float64(n.weight) / float64(n.parent.activeWeight)
	}
	return s
}

// decayed returns g's usage decayed to now.
// It changes nothing: usage is stored only when a charge changes it, so
// that reading it (a what-if, a share report on the leader) cannot make
// one replica's figures drift from another's by a rounding.
func (e *Engine) decayed(g *group) float64 {
	if g.usage == 0 || g.usageAt >= e.now {
		return g.usage
	}
	h := float64(e.pol.HalfLife)
	if h <= 0 {
		return g.usage
	}
	return g.usage * math.Exp2(-float64(e.now-g.usageAt)/h)
}

// dominant returns the dominant share of r in the site, per second.
func (e *Engine) dominant(r lease.Resources) float64 {
	d := float64(r.Cores) / float64(e.capTotal.Cores)
	if e.capTotal.MemoryMiB > 0 {
		d = max(d, float64(r.MemoryMiB)/float64(e.capTotal.MemoryMiB))
	}
	return d
}

func (e *Engine) charge(x *entry, amount float64) {
	x.g.usage = max(0, e.decayed(x.g)+amount)
	x.g.usageAt = e.now
	x.charged += amount
}

// place puts x on the calendar at t on allocs.
func (e *Engine) place(x *entry, t int64, allocs []alloc) {
	x.start, x.end = t, t+x.d
	x.allocs = append(x.allocs[:0], allocs...)
	x.placed = true
	// Profiles forget their past where they grow, so their length stays
	// what is live and the cost of a decision does not grow with history.
	for _, a := range allocs {
		n := int64(a.n)
		p := &e.hosts[a.host].prof
		p.prune(e.now)
		p.add(t, x.end, n*x.vm.Cores, n*x.vm.MemoryMiB)
		e.touchHost(int(a.host))
	}
	e.agg.prune(e.now)
	e.agg.add(t, x.end, x.need.Cores, x.need.MemoryMiB)
	// A queue head's reservation counts too: it starts on it whatever the
	// limits say then, so the group's other requests must leave it room.
	x.g.committed.prune(e.now)
	x.g.committed.add(t, x.end, x.need.Cores, x.need.MemoryMiB)
}

// unplace takes x off the calendar from `from` on.
func (e *Engine) unplace(x *entry, from int64) {
	if !x.placed {
		return
	}
	a, b := max(from, x.start), x.end
	if a < b {
		for _, al := range x.allocs {
			n := int64(al.n)
			e.hosts[al.host].prof.add(a, b, -n*x.vm.Cores, -n*x.vm.MemoryMiB)
			e.touchHost(int(al.host))
		}
		e.agg.add(a, b, -x.need.Cores, -x.need.MemoryMiB)
		x.g.committed.add(a, b, -x.need.Cores, -x.need.MemoryMiB)
	}
	x.placed = false
}

// findHosts places n VMs of x on hosts free on [t, t+d): first fit, so
// low-numbered hosts fill up and large gangs find empty ones.
func (e *Engine) findHosts(x *entry, t int64) []alloc {
	out := e.scratch[:0]
	left := int64(x.req.Count)
	take := func(i int, h *hostCal) bool {
		mc, mm := h.prof.max(t, t+x.d)
		k := (h.cap.Cores - mc) / x.vm.Cores
		if x.vm.MemoryMiB > 0 {
			k = min(k, (h.cap.MemoryMiB-mm)/x.vm.MemoryMiB)
		}
		if k <= 0 {
			return false
		}
		k = min(k, left)
		out = append(out, alloc{host: int32(i), n: int32(k)})
		left -= k
		return left == 0
	}
	done := false
	// Preferred hosts first (they hold the image); then the rest, as usual.
	if len(x.req.PreferHosts) > 0 {
		if e.gen++; e.gen == 0 { // wrapped: old marks would read as new
			clear(e.mark)
			e.gen = 1
		}
		for _, name := range x.req.PreferHosts {
			i, ok := e.hostIdx[name]
			if !ok || e.mark[i] == e.gen {
				continue
			}
			e.mark[i] = e.gen
			if h := e.hosts[i]; x.vm.Fits(h.cap) {
				if done = take(int(i), h); done {
					break
				}
			}
		}
	}
	skip := func(i int) bool { return len(x.req.PreferHosts) > 0 && e.mark[i] == e.gen }
	switch {
	case done: // the preferred hosts took it all
	case t == e.now && e.ix != nil:
		// Only hosts with room now can hold a lease that starts now.
		e.advanceIndex()
		for i := e.ix.first(0, x.vm.Cores, x.vm.MemoryMiB); i >= 0 && !done; i = e.ix.first(i+1, x.vm.Cores, x.vm.MemoryMiB) {
			if !skip(i) {
				done = take(i, e.hosts[i])
			}
		}
	default:
		for i, h := range e.hosts {
			if x.vm.Fits(h.cap) && !skip(i) {
				if done = take(i, h); done {
					break
				}
			}
		}
	}
	e.scratch = out
	if !done {
		return nil
	}
	return slices.Clone(out)
}

// limits bound a search: the site's used capacity and the group's
// committed capacity must stay within them over the lease. From lendUntil
// on, the site limit shrinks by reserve: protected capacity may be lent,
// but only until then.
type limits struct {
	site      lease.Resources
	group     lease.Resources
	reserve   lease.Resources
	lendUntil int64
}

// siteEarliest finds the first T >= from at which x fits the site limits.
func (e *Engine) siteEarliest(x *entry, from, horizon int64, lim limits) (int64, bool) {
	sc, sm := lim.site.Cores-x.need.Cores, lim.site.MemoryMiB-x.need.MemoryMiB
	return e.agg.earliestSplit(from, x.d, sc, sm, lim.lendUntil, sc-lim.reserve.Cores, sm-lim.reserve.MemoryMiB, horizon)
}

// search finds the earliest slot for x at or after from and no later than
// horizon under lim.
func (e *Engine) search(x *entry, from, horizon int64, lim limits) (int64, []alloc, bool) {
	gc, gm := lim.group.Cores-x.need.Cores, lim.group.MemoryMiB-x.need.MemoryMiB
	t := from
	for {
		t1, ok := e.siteEarliest(x, t, horizon, lim)
		if !ok {
			return 0, nil, false
		}
		t2, ok := x.g.committed.earliest(t1, x.d, gc, gm, horizon)
		if !ok {
			return 0, nil, false
		}
		if t2 != t1 {
			t = t2
			continue
		}
		if a := e.findHosts(x, t1); a != nil {
			return t1, a, true
		}
		// Enough capacity in total but not on whole hosts: try the next
		// time anything changes.
		t = min(e.agg.next(t1), x.g.committed.next(t1))
		if t == never || t > horizon {
			return 0, nil, false
		}
	}
}

func (e *Engine) timeOf(t int64) time.Time { return fromTick(t) }

// sub returns a-b without going below zero in any dimension.
func sub(a, b lease.Resources) lease.Resources {
	return lease.Resources{Cores: max(0, a.Cores-b.Cores), MemoryMiB: max(0, a.MemoryMiB-b.MemoryMiB)}
}

func minRes(a, b lease.Resources) lease.Resources {
	return lease.Resources{Cores: min(a.Cores, b.Cores), MemoryMiB: min(a.MemoryMiB, b.MemoryMiB)}
}

// shareLimit is what share s of the site allows.
func (e *Engine) shareLimit(s float64) lease.Resources {
	return lease.Resources{
		Cores:     int64(s*float64(e.capTotal.Cores) + 1e-9),
		MemoryMiB: int64(s*float64(e.capTotal.MemoryMiB) + 1e-9),
	}
}

// reserve is what borrowers must leave free for g's sake: a fraction α of
// the unused shares of the other active groups below their share.
func (e *Engine) reserve(g *group) lease.Resources {
	if !e.mech.Reserve || (e.pol.Reserve <= 0 && e.pol.ReserveArrivals <= 0) {
		return lease.Resources{}
	}
	var def [2]float64
	kg := e.key(g)
	for _, h := range e.groupList {
		if h == g || !h.isActive(e.now) {
			continue
		}
		// A group that waits behind g in fair order would be served after
		// g anyway: keeping its share from g only stalls both.
		if h.qlive > 0 && e.key(h) > kg {
			continue
		}
		lim := e.shareLimit(share(h))
		c, m := h.committed.at(e.now)
		def[0] += float64(max(0, lim.Cores-c))
		def[1] += float64(max(0, lim.MemoryMiB-m))
	}
	a := e.pol.Reserve
	r := lease.Resources{Cores: int64(a * def[0]), MemoryMiB: int64(a * def[1])}
	if n := e.pol.ReserveArrivals; n > 0 {
		// A group that arrives now would be entitled at once to what a
		// new root group weighs against the active ones.
		w := e.pol.Defaults.Weight
		if w <= 0 {
			w = 1
		}
		s := n * w / (float64(e.root.activeWeight)/1000 + w)
		r = r.Add(e.shareLimit(min(s, 1)))
	}
	return r
}

// timers

type timerKind uint8

const (
	tStart   timerKind = iota + 1 // a reservation's start (firm or head)
	tEnd                          // a running lease's end
	tStartBy                      // a queued request's start_by
	tIdle                         // a group's active window closes
	tAge                          // a queued request has waited its aging fraction
	tWake                         // a queued request's earliest start has come
)

type timer struct {
	at   int64
	kind timerKind
	x    *entry
	gen  uint32
	g    *group
	seq  uint64
}

type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	if h[i].kind != h[j].kind {
		return h[i].kind < h[j].kind
	}
	// In the order their owners came (requests by admission, groups by
	// first request), not in whatever order the heap's history leaves
	// them: what is due together must happen in the same order on every
	// replica and after a restore (which of two expiring requests gets the
	// last of an overflow budget, say).
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(v any)   { *h = append(*h, v.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

func (e *Engine) schedule(t timer) {
	if t.x != nil {
		t.gen, t.seq = t.x.gen, t.x.seq
	} else {
		t.seq = t.g.seq
	}
	heap.Push(&e.timers, t)
}

// stale reports whether a timer no longer applies.
func (e *Engine) stale(t timer) bool {
	switch t.kind {
	case tIdle:
		return t.at != t.g.idleUntil && t.at != t.g.askedUntil
	case tStartBy, tAge, tWake:
		// Head reservations come and go; these hold while it waits.
		return t.x.state != stQueued
	default:
		return t.x.gen != t.gen
	}
}

// Next returns when something is next due.
func (e *Engine) Next() (time.Time, bool) {
	for len(e.timers) > 0 && e.stale(e.timers[0]) {
		heap.Pop(&e.timers)
	}
	if len(e.pending) > 0 {
		return fromTick(e.now), true
	}
	if len(e.timers) == 0 {
		return time.Time{}, false
	}
	return fromTick(e.timers[0].at), true
}

// SetNow moves the engine's clock forward to now without doing what is
// due (Advance does that). A broker calls it for every command it applies,
// so that reads at the applied time never move the clock of one replica
// alone.
func (e *Engine) SetNow(now time.Time) { e.setNow(now) }

func (e *Engine) setNow(now time.Time) {
	if t := toTick(now); t > e.now {
		e.now = t
	}
}

func (x *entry) placement(e *Engine) []lease.Placement {
	out := make([]lease.Placement, 0, x.req.Count)
	for _, a := range x.allocs {
		for range a.n {
			out = append(out, lease.Placement{Index: len(out), Host: e.hosts[a.host].name})
		}
	}
	return out
}

func fmtDur(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

var _ = fmt.Sprintf

// Check verifies the calendar's invariants: no host is committed beyond
// its capacity at any time, and the site profile is the sum of the hosts'.
// Tests call it after every step.
func (e *Engine) Check() error {
	var sum profile
	for _, h := range e.hosts {
		for i := range h.prof.ts {
			if h.prof.ts[i] < e.now && i+1 < len(h.prof.ts) && h.prof.ts[i+1] <= e.now {
				continue
			}
			if h.prof.cores[i] > h.cap.Cores || h.prof.mem[i] > h.cap.MemoryMiB || h.prof.cores[i] < 0 || h.prof.mem[i] < 0 {
				return fmt.Errorf("fairshare: host %s holds %d cores / %d MiB from %s, capacity %d / %d",
					h.name, h.prof.cores[i], h.prof.mem[i], fromTick(h.prof.ts[i]), h.cap.Cores, h.cap.MemoryMiB)
			}
		}
		for i := range h.prof.ts {
			end := int64(never)
			if i+1 < len(h.prof.ts) {
				end = h.prof.ts[i+1]
			}
			sum.add(h.prof.ts[i], end, h.prof.cores[i], h.prof.mem[i])
		}
	}
	for _, t := range append(slices.Clone(sum.ts), e.agg.ts...) {
		if t < e.now {
			continue
		}
		c1, m1 := sum.at(t)
		c2, m2 := e.agg.at(t)
		if c1 != c2 || m1 != m2 {
			return fmt.Errorf("fairshare: site profile says %d cores / %d MiB at %s, hosts sum to %d / %d", c2, m2, fromTick(t), c1, m1)
		}
	}
	return nil
}
