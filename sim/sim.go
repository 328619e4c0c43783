// Package sim replays workloads through the admission engine in virtual
// time: a discrete-event loop drives a fairshare.Scheduler with the
// requests of a trace or a generator, and every request's outcome becomes
// a row from which package metrics computes the figures.
package sim

import (
	"container/heap"
	"fmt"
	"math"
	"time"

	"github.com/fairlease/fairlease/fairshare"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
	"github.com/fairlease/fairlease/sim/metrics"
	"github.com/fairlease/fairlease/sim/trace"
)

// Scenario is a site and a workload.
type Scenario struct {
	Name   string
	Hosts  []fairshare.Host
	Jobs   []trace.Job // sorted by Submit
	Policy *policies.Policy
	// Notice is what the workload's source asks to keep with results.
	Notice string
}

// Capacity is the site's cores.
func (s *Scenario) Capacity() int64 {
	var c int64
	for _, h := range s.Hosts {
		c += h.Capacity.Cores
	}
	return c
}

// Result is the schedule one policy produced.
type Result struct {
	Policy string
	Rows   []metrics.Row
	// Unplaceable counts admitted leases that found no room on their hosts
	// when they started, by the simulator's own ledger of every host.
	Unplaceable int
}

// Options tune a run.
type Options struct {
	// Progress, if set, is called now and then with jobs submitted so far.
	Progress func(done int)
}

// base anchors virtual time; offsets from it are the trace's offsets.
var base = time.Unix(0, 0).UTC()

type release struct {
	t   time.Duration
	row int32
}

type releases []release

func (h releases) Len() int           { return len(h) }
func (h releases) Less(i, j int) bool { return h[i].t < h[j].t }
func (h releases) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *releases) Push(v any)        { *h = append(*h, v.(release)) }
func (h *releases) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

// ledger is the simulator's own account of what each host runs, kept
// apart from the engine's calendar to catch an engine that overcommits.
type ledger struct {
	index map[string]int
	names []string
	cap   []lease.Resources
	used  []lease.Resources
	vm    []lease.Resources // per row: the VM shape
	where [][]int32         // per row: host index per VM
}

func (l *ledger) start(row int, vm lease.Resources, count int, p []lease.Placement) bool {
	ok := len(p) == count
	hosts := make([]int32, 0, len(p))
	h := -1
	for _, pl := range p {
		// Placements come in host order mostly: try the next host before
		// hashing the name.
		if h+1 < len(l.names) && l.names[h+1] == pl.Host {
			h++
		} else if i, found := l.index[pl.Host]; found {
			h = i
		} else {
			ok = false
			continue
		}
		l.used[h] = l.used[h].Add(vm)
		if !l.used[h].Fits(l.cap[h]) {
			ok = false
		}
		hosts = append(hosts, int32(h))
	}
	l.vm[row], l.where[row] = vm, hosts
	return ok
}

func (l *ledger) end(row int) {
	for _, h := range l.where[row] {
		l.used[h] = l.used[h].Sub(l.vm[row])
	}
	l.where[row] = nil
}

// Run replays s through the named policy.
func Run(s *Scenario, policy string, o Options) (*Result, error) {
	sched, err := fairshare.New(policy, s.Hosts, s.Policy)
	if err != nil {
		return nil, err
	}
	return RunScheduler(s, sched, o)
}

// RunScheduler replays s through sched.
func RunScheduler(s *Scenario, sched fairshare.Scheduler, o Options) (*Result, error) {
	n := len(s.Jobs)
	res := &Result{Policy: sched.Name(), Rows: make([]metrics.Row, n)}
	byID := make(map[lease.ID]int32, n)
	led := &ledger{index: make(map[string]int, len(s.Hosts)), vm: make([]lease.Resources, n), where: make([][]int32, n)}
	for i, h := range s.Hosts {
		led.index[h.Name] = i
		led.names = append(led.names, h.Name)
		led.cap = append(led.cap, h.Capacity)
	}
	led.used = make([]lease.Resources, len(s.Hosts))
	ids := make([]lease.ID, n)
	for i, j := range s.Jobs {
		ids[i] = lease.ID(j.ID)
		if _, dup := byID[ids[i]]; dup {
			// Traces may repeat an id; the row index keeps them apart.
			ids[i] = lease.ID(fmt.Sprintf("%s#%d", j.ID, i))
		}
		byID[ids[i]] = int32(i)
		res.Rows[i] = metrics.Row{
			// The lease's id, so that a repeated trace id stays apart in
			// the schedule too (metrics.Check rejects repeated ids).
			ID: string(ids[i]), Group: j.Group, User: j.User, Cores: int64(j.VMs * j.Cores),
			Submit: j.Submit, Runtime: j.Runtime,
			Decided: metrics.None, Start: metrics.None, End: metrics.None,
		}
	}
	var rel releases
	running := make([]bool, n)
	started := func(i int, at time.Duration, site string, p []lease.Placement) {
		r := &res.Rows[i]
		r.Start, r.End = at, at+s.Jobs[i].Runtime
		r.Site = site
		if site == lease.LocalSite {
			j := s.Jobs[i]
			vm := lease.Resources{Cores: int64(j.Cores), MemoryMiB: j.MemoryMiB}
			if !led.start(i, vm, j.VMs, p) {
				res.Unplaceable++
			}
			running[i] = true
		}
		heap.Push(&rel, release{t: r.End, row: int32(i)})
	}
	next := 0
	for {
		t := time.Duration(math.MaxInt64)
		if next < n {
			t = s.Jobs[next].Submit
		}
		if len(rel) > 0 {
			t = min(t, rel[0].t)
		}
		if at, ok := sched.Next(); ok {
			t = min(t, at.Sub(base))
		}
		if t == math.MaxInt64 {
			break
		}
		now := base.Add(t)
		// At one instant: releases, then submissions, then starts.
		for len(rel) > 0 && rel[0].t == t {
			r := heap.Pop(&rel).(release)
			i := int(r.row)
			if running[i] {
				running[i] = false
				led.end(i)
				if err := sched.Release(now, ids[i]); err != nil && lease.ErrorCode(err) != lease.ENOTFOUND {
					return nil, fmt.Errorf("release %s: %w", ids[i], err)
				}
			}
		}
		for ; next < n && s.Jobs[next].Submit == t; next++ {
			j := s.Jobs[next]
			req := lease.Request{
				ID: ids[next], Group: lease.GroupID(j.Group), User: lease.UserID(j.User),
				Count: j.VMs, Shape: lease.Shape{Cores: j.Cores, MemoryMiB: j.MemoryMiB},
				Duration: j.Requested, Submitted: now, AllOrNothing: true,
			}
			d := sched.Submit(now, req)
			r := &res.Rows[next]
			switch d.Kind {
			case lease.Granted:
				r.Decision = metrics.Granted
				started(next, t, lease.LocalSite, d.Placement)
			case lease.Deferred:
				r.Decision = metrics.Deferred
			case lease.Overflowed:
				r.Decision, r.Decided = metrics.Overflowed, t
				started(next, t, d.Site, nil)
			case lease.Rejected:
				r.Decision, r.Decided = metrics.Rejected, t
			}
			if o.Progress != nil && next%4096 == 0 {
				o.Progress(next)
			}
		}
		for _, ev := range sched.Advance(now) {
			i, ok := byID[ev.ID]
			if !ok {
				return nil, fmt.Errorf("sim: event for unknown lease %s", ev.ID)
			}
			r := &res.Rows[i]
			at := ev.At.Sub(base)
			switch ev.Kind {
			case fairshare.EventStart:
				r.Decision = metrics.Deferred
				started(int(i), at, lease.LocalSite, ev.Placement)
			case fairshare.EventReject:
				r.Decision, r.Decided = metrics.Rejected, at
			case fairshare.EventOverflow:
				r.Decision, r.Decided = metrics.Overflowed, at
				started(int(i), at, ev.Site, nil)
			}
		}
	}
	if o.Progress != nil {
		o.Progress(n)
	}
	for i := range res.Rows {
		r := &res.Rows[i]
		if r.Decision == metrics.Deferred && r.Start == metrics.None {
			return nil, fmt.Errorf("sim: request %s was deferred and never started or ended", r.ID)
		}
	}
	return res, nil
}
