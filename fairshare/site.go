package fairshare

import (
	"fmt"
	"math"
	"slices"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// A broker's site changes while it runs: hosts join and leave, the site
// manager edits the policy. These methods change the engine in place, as
// Apply does, so every replica changes alike.

// AddHost adds a host to the site.
func (e *Engine) AddHost(h Host) error {
	if err := e.addHost(h); err != nil {
		return err
	}
	e.reindex()
	e.pass()
	return nil
}

func (e *Engine) addHost(h Host) error {
	if h.Name == "" {
		return lease.Errorf(lease.EINVALID, "name", "a host needs a name")
	}
	if h.Capacity.Cores <= 0 || h.Capacity.MemoryMiB < 0 {
		return lease.Errorf(lease.EINVALID, "capacity", "host %q: capacity must have cores > 0 and memory >= 0, got %d cores / %d MiB",
			h.Name, h.Capacity.Cores, h.Capacity.MemoryMiB)
	}
	if slices.ContainsFunc(e.hosts, func(c *hostCal) bool { return c.name == h.Name }) {
		return lease.Errorf(lease.ECONFLICT, "name", "host %q exists already", h.Name)
	}
	e.hosts = append(e.hosts, &hostCal{name: h.Name, cap: h.Capacity})
	e.sizeSite()
	return nil
}

// sizeSite recomputes what depends on the set of hosts.
func (e *Engine) sizeSite() {
	e.capTotal, e.maxHost = lease.Resources{}, lease.Resources{}
	for _, h := range e.hosts {
		e.capTotal = e.capTotal.Add(h.cap)
		e.maxHost.Cores = max(e.maxHost.Cores, h.cap.Cores)
		e.maxHost.MemoryMiB = max(e.maxHost.MemoryMiB, h.cap.MemoryMiB)
	}
	for _, g := range e.groupList {
		e.setLimits(g)
	}
}

// reindex rebuilds the host index for the current hosts.
func (e *Engine) reindex() {
	e.ix, e.dirtyHosts = nil, e.dirtyHosts[:0]
	e.hostIdx = make(map[string]int32, len(e.hosts))
	for i, h := range e.hosts {
		e.hostIdx[h.name] = int32(i)
	}
	e.mark = make([]uint32, len(e.hosts))
	for _, h := range e.hosts {
		h.dirty = false
	}
	if len(e.hosts) > indexFrom {
		e.ix = newHostIndex(len(e.hosts))
		for i := range e.hosts {
			e.refresh(i)
		}
	}
}

// RemoveHost takes an idle host out of the site. A host that holds or
// will hold a lease cannot go: leases are never revoked.
func (e *Engine) RemoveHost(name string) error {
	i := slices.IndexFunc(e.hosts, func(c *hostCal) bool { return c.name == name })
	if i < 0 {
		return lease.Errorf(lease.ENOTFOUND, "name", "no host %q", name)
	}
	if c, m := e.hosts[i].prof.max(e.now, never); c > 0 || m > 0 {
		return lease.Errorf(lease.ECONFLICT, "name", "host %q holds or will hold leases; wait until they end", name)
	}
	// Host indices in allocations shift; rewrite them.
	for _, x := range e.leases {
		for k := range x.allocs {
			if int(x.allocs[k].host) > i {
				x.allocs[k].host--
			}
		}
	}
	e.hosts = slices.Delete(e.hosts, i, i+1)
	e.sizeSite()
	e.reindex()
	return nil
}

// HostNames lists the site's hosts in order.
func (e *Engine) HostNames() []string {
	out := make([]string, len(e.hosts))
	for i, h := range e.hosts {
		out[i] = h.name
	}
	return out
}

// SetPolicy replaces the site policy: weights, tree, quotas and knobs take
// effect at once for what is decided next; nothing admitted changes.
func (e *Engine) SetPolicy(pol *policies.Policy) {
	e.pol = pol
	e.tune()
	// Rebuild the share tree with the new weights and parents, then put
	// the active groups back in it in their order.
	e.root, e.nodes = &node{}, make(map[lease.GroupID]*node)
	for _, g := range e.groupList {
		g.node = e.nodeFor(g.id)
		g.active = false
		e.setLimits(g)
	}
	for _, g := range e.groupList {
		e.touch(g)
	}
	e.pass()
}

// tune takes the product's knobs from the policy.
func (e *Engine) tune() {
	if e.tunable {
		e.mech.Aging = e.pol.Aging
		e.mech.PromiseHorizon = e.pol.PromiseHorizon
	}
}

// setLimits works out g's quotas and cap from the policy and the site.
func (e *Engine) setLimits(g *group) {
	g.limit = lease.Resources{Cores: math.MaxInt64, MemoryMiB: math.MaxInt64}
	g.maxLease, g.maxVMs = 0, 0
	if pg, ok := e.pol.Group(g.id); ok {
		g.maxLease, g.maxVMs = int64(pg.Quota.MaxLease), pg.Quota.MaxVMs
		if pg.Quota.MaxCores > 0 {
			g.limit.Cores = pg.Quota.MaxCores
		}
		if pg.Quota.MaxMemoryMiB > 0 {
			g.limit.MemoryMiB = pg.Quota.MaxMemoryMiB
		}
	}
	if f := e.mech.CapFraction; f > 0 {
		g.limit.Cores = min(g.limit.Cores, int64(f*float64(e.capTotal.Cores)))
		g.limit.MemoryMiB = min(g.limit.MemoryMiB, int64(f*float64(e.capTotal.MemoryMiB)))
	}
}

var _ = fmt.Sprintf
