// Package fairshare is the admission engine: it decides lease requests
// against a capacity calendar, without money and without revoking what it
// granted. It is pure: time comes in as an argument, there are no goroutines
// and no I/O, so the broker and the simulator run the same code.
//
// One engine implements every policy; a policy is a choice of mechanisms
// (Mechanisms). The product's policy, "fairlease", gives requests that keep
// their group within its share a firm start time on the calendar and lets
// other requests borrow idle capacity while a protected reserve stays free.
// The baselines (fcfs, easy, caps, fairorder) are queues on the same calendar.
package fairshare

import (
	"fmt"
	"strings"
	"time"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// Scheduler decides requests. Every method takes the current time; calls
// must come with non-decreasing times.
type Scheduler interface {
	// Name is the policy's name.
	Name() string
	// Submit decides r at now and commits the decision.
	Submit(now time.Time, r lease.Request) lease.Decision
	// WhatIf answers what Submit would, changing nothing.
	WhatIf(now time.Time, r lease.Request) lease.Decision
	// Release ends lease id at now: early release of a running lease,
	// cancellation of a deferred or queued one.
	Release(now time.Time, id lease.ID) error
	// Advance carries out what is due at or before now (reserved starts,
	// expiries, requests whose start_by passed) and returns it.
	Advance(now time.Time) []Event
	// Next returns when something is next due, if anything is.
	Next() (time.Time, bool)
	// Shares reports each known group's entitlement and use at now.
	Shares(now time.Time) []GroupShare
}

// EventKind says what happened to a lease outside a call that asked for it.
type EventKind uint8

// Event kinds.
const (
	EventStart    EventKind = iota + 1 // a deferred or queued lease started
	EventEnd                           // a lease reached its end time
	EventReject                        // a queued request passed its start_by
	EventOverflow                      // a queued request passed its start_by and overflowed
)

func (k EventKind) String() string {
	switch k {
	case EventStart:
		return "start"
	case EventEnd:
		return "end"
	case EventReject:
		return "reject"
	case EventOverflow:
		return "overflow"
	}
	return fmt.Sprintf("event(%d)", k)
}

// Event is something the scheduler did on its own.
type Event struct {
	Kind      EventKind
	ID        lease.ID
	At        time.Time
	Placement []lease.Placement
	Site      string
	Reason    lease.Reason
}

// Host is one machine of the local site.
type Host struct {
	Name     string
	Capacity lease.Resources
}

// GroupShare is a row of an sshare-like report.
type GroupShare struct {
	Group lease.GroupID
	// Weight is the configured weight; Share the normalized entitlement
	// among active groups (0 for inactive ones).
	Weight float64
	Share  float64
	Active bool
	// Held is what the group runs now; Reserved what it has on the calendar
	// for later; Queued what waits without a firm time.
	Held, Reserved, Queued lease.Resources
	// Usage is decayed usage in site-seconds (dominant resource).
	Usage float64
	// Factor is Slurm's fair-share factor 2^(-usage/share) over normalized usage.
	Factor float64
}

// Order is how waiting requests are ranked.
type Order uint8

// Orders.
const (
	OrderFIFO Order = iota // by submission
	OrderFair              // by decayed usage over share, then submission
)

// Mechanisms is what a policy is made of.
type Mechanisms struct {
	// Order ranks waiting requests.
	Order Order
	// Backfill lets requests behind the head of the queue start when they
	// fit around the head's reservation (EASY). Without it the queue is
	// strict: nothing passes the head.
	Backfill bool
	// Greedy starts an arriving request that fits now even while others
	// wait (admit-if-fits).
	Greedy bool
	// Calendar gives in-share requests a firm start on the calendar; other
	// requests borrow: they start now if they fit leaving the reserve free,
	// or wait in the queue.
	Calendar bool
	// Reserve applies the policy's protected reserve to borrowers.
	Reserve bool
	// Aging ranks a waiting request first (earliest start_by first) once
	// it has waited this fraction of its patience (submission to start_by),
	// so that fair order delays it but cannot starve it into a rejection.
	// 0 turns it off.
	Aging float64
	// PromiseHorizon bounds how far ahead the calendar promises a start:
	// an in-share request whose slot is further away waits in the queue
	// instead. 0 means no bound.
	PromiseHorizon time.Duration
	// InShareFirst ranks requests that keep their group within its share
	// before all others.
	InShareFirst bool
	// CapFraction caps each group at this fraction of the site (Nimbus-like
	// static caps); 0 means no cap beyond the policy's quotas.
	CapFraction float64
}

// Presets are the named policies.
var Presets = map[string]Mechanisms{
	"fcfs":      {Order: OrderFIFO, Greedy: true},
	"easy":      {Order: OrderFIFO, Backfill: true},
	"caps":      {Order: OrderFIFO, Backfill: true, CapFraction: 0.5},
	"fairorder": {Order: OrderFair, Backfill: true},
	"fairlease": {Order: OrderFair, Backfill: true, Calendar: true, Reserve: true, InShareFirst: true, Aging: 0.5, PromiseHorizon: time.Hour},
}

// PolicyNames lists the presets in the order reports show them.
var PolicyNames = []string{"fcfs", "easy", "caps", "fairorder", "fairlease"}

// New returns the named policy for a site of hosts under pol.
func New(name string, hosts []Host, pol *policies.Policy) (*Engine, error) {
	m, ok := Presets[name]
	if !ok {
		return nil, fmt.Errorf("fairshare: unknown policy %q (want one of %s)", name, strings.Join(PolicyNames, ", "))
	}
	e, err := NewEngine(name, m, hosts, pol)
	if err != nil {
		return nil, err
	}
	// The product's knobs come from the site policy; the baselines stay
	// what they are.
	e.tunable = name == "fairlease"
	e.tune()
	return e, nil
}

// NewEngine returns an engine with the given mechanisms.
func NewEngine(name string, m Mechanisms, hosts []Host, pol *policies.Policy) (*Engine, error) {
	if pol == nil {
		pol = policies.Default()
	}
	e := &Engine{
		useRatio: 1,
		name:     name,
		mech:     m,
		pol:      pol,
		leases:   make(map[lease.ID]*entry),
		groups:   make(map[lease.GroupID]*group),
		nodes:    make(map[lease.GroupID]*node),
	}
	e.root = &node{}
	for _, h := range hosts {
		if err := e.addHost(h); err != nil {
			return nil, err
		}
	}
	e.reindex()
	return e, nil
}

// Name is the policy's name.
func (e *Engine) Name() string { return e.name }

func toTick(t time.Time) int64 { return t.UnixNano() }

func fromTick(t int64) time.Time {
	if t == never {
		return time.Time{}
	}
	return time.Unix(0, t).UTC()
}
