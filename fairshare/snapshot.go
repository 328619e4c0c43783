package fairshare

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// State is the engine's state as plain data, what a broker's snapshot
// keeps. Restore, given the same preset, hosts and policy, returns an
// engine that decides exactly as the original would from then on: the
// Raft log may be cut at a snapshot and replayed from it on any replica.
type State struct {
	Now      int64        `json:"now"`
	Seq      uint64       `json:"seq"`
	UseRatio float64      `json:"use_ratio"`
	Groups   []GroupState `json:"groups"`
	// Leases are the live ones, in admission order.
	Leases []LeaseState `json:"leases"`
	Queue  []lease.ID   `json:"queue"` // waiting, in submission order
	Aged   []lease.ID   `json:"aged"`  // past their aging point, by start_by
	Head   lease.ID     `json:"head,omitempty"`
	// Pending holds what happened but was not reported yet (a Release
	// that started a waiting lease, before the next Advance).
	Pending []Event `json:"pending,omitempty"`
	// Timers are what is due later, or due and not yet carried out.
	Timers []TimerState `json:"timers,omitempty"`
}

// TimerState is something due at a time: a lease's start or end, a
// waiting request's start_by, aging or earliest start, a group's end of
// activity.
type TimerState struct {
	At    int64         `json:"at"`
	Kind  uint8         `json:"kind"`
	Lease lease.ID      `json:"lease,omitempty"`
	Group lease.GroupID `json:"group,omitempty"`
}

// GroupState is one group's accounts.
type GroupState struct {
	ID         lease.GroupID `json:"id"`
	Usage      float64       `json:"usage"`
	UsageAt    int64         `json:"usage_at"`
	IdleUntil  int64         `json:"idle_until"`
	AskedUntil int64         `json:"asked_until"`
	UseRatio   float64       `json:"use_ratio"`
	UseN       int           `json:"use_n"`
	Spent      float64       `json:"spent"`
	Period     int64         `json:"period"`
	// Active is whether it counts among the active groups now; kept as
	// it stands, since it changes only when the engine looks.
	Active bool `json:"active"`
}

// LeaseState is one live request: waiting, reserved or running.
type LeaseState struct {
	Seq      uint64        `json:"seq"`
	Request  lease.Request `json:"request"`
	Submit   int64         `json:"submit"`
	Earliest int64         `json:"earliest"`
	StartBy  int64         `json:"start_by"`
	State    string        `json:"state"` // queued, reserved, running
	Start    int64         `json:"start"`
	Placed   bool          `json:"placed"`
	Allocs   []HostAlloc   `json:"allocs,omitempty"`
	InShare  bool          `json:"in_share"`
	Charged  float64       `json:"charged"`
}

// HostAlloc is how many VMs of a lease sit on a host.
type HostAlloc struct {
	Host string `json:"host"`
	N    int    `json:"n"`
}

var stateNames = map[entryState]string{stQueued: "queued", stReserved: "reserved", stRunning: "running"}

// Export returns the engine's state. It changes nothing.
func (e *Engine) Export() *State {
	st := &State{Now: e.now, Seq: e.seq, UseRatio: e.useRatio}
	for _, g := range e.groupList {
		st.Groups = append(st.Groups, GroupState{
			ID: g.id, Usage: g.usage, UsageAt: g.usageAt, IdleUntil: g.idleUntil, AskedUntil: g.askedUntil,
			UseRatio: g.useRatio, UseN: g.useN, Spent: g.spent, Period: g.period, Active: g.active,
		})
	}
	live := make([]*entry, 0, len(e.leases))
	for _, x := range e.leases {
		if x.state != stDone {
			live = append(live, x)
		}
	}
	slices.SortFunc(live, func(a, b *entry) int { return cmpU64(a.seq, b.seq) })
	for _, x := range live {
		ls := LeaseState{
			Seq: x.seq, Request: x.req, Submit: x.submit, Earliest: x.earliest, StartBy: x.startBy,
			State: stateNames[x.state], Placed: x.placed, InShare: x.inShare, Charged: x.charged,
		}
		if x.placed {
			ls.Start = x.start
			for _, a := range x.allocs {
				ls.Allocs = append(ls.Allocs, HostAlloc{Host: e.hosts[a.host].name, N: int(a.n)})
			}
		}
		st.Leases = append(st.Leases, ls)
	}
	for _, x := range e.queue {
		if x.state == stQueued {
			st.Queue = append(st.Queue, x.req.ID)
		}
	}
	for _, x := range e.agedQ {
		if x.state == stQueued {
			st.Aged = append(st.Aged, x.req.ID)
		}
	}
	if e.head != nil && e.head.state == stQueued && e.head.placed {
		st.Head = e.head.req.ID
	}
	if len(e.pending) > 0 {
		st.Pending = slices.Clone(e.pending)
	}
	for _, t := range e.timers {
		if e.stale(t) {
			continue
		}
		ts := TimerState{At: t.at, Kind: uint8(t.kind)}
		if t.x != nil {
			ts.Lease = t.x.req.ID
		} else {
			ts.Group = t.g.id
		}
		st.Timers = append(st.Timers, ts)
	}
	// The heap's layout is history; its content is state.
	slices.SortFunc(st.Timers, func(a, b TimerState) int {
		if a.At != b.At {
			return cmpI64(a.At, b.At)
		}
		if a.Kind != b.Kind {
			return int(a.Kind) - int(b.Kind)
		}
		if a.Lease != b.Lease {
			return strings.Compare(string(a.Lease), string(b.Lease))
		}
		return strings.Compare(string(a.Group), string(b.Group))
	})
	return st
}

func cmpI64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Restore rebuilds the named preset's engine from st.
func Restore(name string, hosts []Host, pol *policies.Policy, st *State) (*Engine, error) {
	e, err := New(name, hosts, pol)
	if err != nil {
		return nil, err
	}
	if err := e.restore(st); err != nil {
		return nil, fmt.Errorf("fairshare: restore: %w", err)
	}
	return e, nil
}

func (e *Engine) restore(st *State) error {
	e.now, e.seq, e.useRatio = st.Now, st.Seq, st.UseRatio
	e.pending = slices.Clone(st.Pending)
	for _, gs := range st.Groups {
		if _, dup := e.groups[gs.ID]; dup {
			return fmt.Errorf("group %q twice", gs.ID)
		}
		g := e.newGroup(gs.ID)
		g.usage, g.usageAt, g.idleUntil, g.askedUntil = gs.Usage, gs.UsageAt, gs.IdleUntil, gs.AskedUntil
		g.useRatio, g.useN, g.spent, g.period = gs.UseRatio, gs.UseN, gs.Spent, gs.Period
	}
	hostIx := make(map[string]int32, len(e.hosts))
	for i, h := range e.hosts {
		hostIx[h.name] = int32(i)
	}
	for _, ls := range st.Leases {
		g, ok := e.groups[ls.Request.Group]
		if !ok {
			return fmt.Errorf("lease %s: unknown group %q", ls.Request.ID, ls.Request.Group)
		}
		if _, dup := e.leases[ls.Request.ID]; dup {
			return fmt.Errorf("lease %s twice", ls.Request.ID)
		}
		x := &entry{req: ls.Request, g: g, vm: ls.Request.Shape.Resources(), need: ls.Request.Total(), d: int64(ls.Request.Duration),
			submit: ls.Submit, earliest: ls.Earliest, startBy: ls.StartBy, inShare: ls.InShare, charged: ls.Charged, seq: ls.Seq}
		switch ls.State {
		case "queued":
			x.state = stQueued
		case "reserved":
			x.state = stReserved
		case "running":
			x.state = stRunning
		default:
			return fmt.Errorf("lease %s: unknown state %q", x.req.ID, ls.State)
		}
		e.leases[x.req.ID] = x
		g.count++
		if ls.Placed {
			var allocs []alloc
			n := 0
			for _, a := range ls.Allocs {
				i, ok := hostIx[a.Host]
				if !ok {
					return fmt.Errorf("lease %s: unknown host %q", x.req.ID, a.Host)
				}
				allocs = append(allocs, alloc{host: i, n: int32(a.N)})
				n += a.N
			}
			if n != x.req.Count {
				return fmt.Errorf("lease %s: %d VMs placed, %d asked", x.req.ID, n, x.req.Count)
			}
			e.place(x, ls.Start, allocs)
		} else if x.state != stQueued {
			return fmt.Errorf("lease %s: %s but not placed", x.req.ID, ls.State)
		}
		if x.state == stReserved {
			g.reserved = append(g.reserved, x)
			e.reservedCount++
		}
	}
	find := func(id lease.ID) (*entry, error) {
		x, ok := e.leases[id]
		if !ok || x.state != stQueued {
			return nil, fmt.Errorf("queue names %s, which does not wait", id)
		}
		return x, nil
	}
	aged := make(map[*entry]bool, len(st.Aged))
	for _, id := range st.Aged {
		x, err := find(id)
		if err != nil {
			return err
		}
		e.agedQ = append(e.agedQ, x)
		aged[x] = true
	}
	for _, id := range st.Queue {
		x, err := find(id)
		if err != nil {
			return err
		}
		e.queue = append(e.queue, x)
		e.qlive++
		x.g.queue = append(x.g.queue, x)
		if x.g.qlive++; x.g.qlive == 1 {
			x.g.listed = true
			e.qgroups = append(e.qgroups, x.g)
		}
	}
	if st.Head != "" {
		x, err := find(st.Head)
		if err != nil {
			return err
		}
		if !x.placed {
			return fmt.Errorf("head %s holds no reservation", st.Head)
		}
		e.head = x
	}
	for i, g := range e.groupList {
		if st.Groups[i].Active {
			g.active = true
			setActive(g, 1)
		}
	}
	for _, ts := range st.Timers {
		t := timer{at: ts.At, kind: timerKind(ts.Kind)}
		switch {
		case t.kind == tIdle:
			g, ok := e.groups[ts.Group]
			if !ok {
				return fmt.Errorf("timer for unknown group %q", ts.Group)
			}
			t.g = g
		default:
			x, ok := e.leases[ts.Lease]
			if !ok || t.kind < tStart || t.kind > tWake {
				return fmt.Errorf("timer %d for lease %q: unknown", ts.Kind, ts.Lease)
			}
			t.x = x
		}
		e.schedule(t)
	}
	return nil
}
