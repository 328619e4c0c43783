package virt

import (
	"fmt"

	"libvirt.org/go/libvirt"
)

// eventState maps a lifecycle event to the domain's new state and a
// reason; ok is false for events that change no state (defined,
// shutdown begun).
func eventState(e *libvirt.DomainEventLifecycle) (s State, reason string, ok bool) {
	switch e.Event {
	case libvirt.DOMAIN_EVENT_STARTED:
		return Running, "started: " + detail(e.Detail, map[int]string{
			int(libvirt.DOMAIN_EVENT_STARTED_BOOTED):        "booted",
			int(libvirt.DOMAIN_EVENT_STARTED_MIGRATED):      "migrated",
			int(libvirt.DOMAIN_EVENT_STARTED_RESTORED):      "restored",
			int(libvirt.DOMAIN_EVENT_STARTED_FROM_SNAPSHOT): "from snapshot",
			int(libvirt.DOMAIN_EVENT_STARTED_WAKEUP):        "wakeup",
		}), true
	case libvirt.DOMAIN_EVENT_SUSPENDED:
		return Running, "paused", true
	case libvirt.DOMAIN_EVENT_RESUMED:
		return Running, "resumed", true
	case libvirt.DOMAIN_EVENT_STOPPED:
		reason := "stopped: " + detail(e.Detail, map[int]string{
			int(libvirt.DOMAIN_EVENT_STOPPED_SHUTDOWN):      "shutdown",
			int(libvirt.DOMAIN_EVENT_STOPPED_DESTROYED):     "destroyed",
			int(libvirt.DOMAIN_EVENT_STOPPED_CRASHED):       "crashed",
			int(libvirt.DOMAIN_EVENT_STOPPED_MIGRATED):      "migrated",
			int(libvirt.DOMAIN_EVENT_STOPPED_SAVED):         "saved",
			int(libvirt.DOMAIN_EVENT_STOPPED_FAILED):        "failed",
			int(libvirt.DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT): "from snapshot",
		})
		switch libvirt.DomainEventStoppedDetailType(e.Detail) {
		case libvirt.DOMAIN_EVENT_STOPPED_CRASHED, libvirt.DOMAIN_EVENT_STOPPED_FAILED:
			return Crashed, reason, true
		}
		return Stopped, reason, true
	case libvirt.DOMAIN_EVENT_CRASHED:
		return Crashed, "crashed", true
	case libvirt.DOMAIN_EVENT_UNDEFINED:
		return Stopped, "undefined", true
	}
	return "", "", false
}

func detail(d int, names map[int]string) string {
	if n, ok := names[d]; ok {
		return n
	}
	return fmt.Sprintf("detail %d", d)
}

// onLifecycle runs on libvirt's event loop: it must not block.
func (d *Driver) onLifecycle(_ *libvirt.Connect, dom *libvirt.Domain, e *libvirt.DomainEventLifecycle) {
	state, reason, ok := eventState(e)
	if !ok {
		return
	}
	name, err := dom.GetName()
	if err != nil {
		d.log.Warn("virt: event for a domain without a name", "err", err)
		return
	}
	d.mu.Lock()
	meta, known := d.meta[name]
	d.mu.Unlock()
	if !known {
		// Started elsewhere (another agent on a shared test driver, or
		// before this agent ran): ask libvirt whose it is.
		m, ours, err := readMeta(dom)
		if err != nil {
			d.log.Warn("virt: event: read metadata", "domain", name, "err", err)
		}
		if !ours || m.Host != d.opts.Host {
			return
		}
		meta = m
	}
	ev := Event{Domain: meta.domain(name, state), Reason: reason}

	d.mu.Lock()
	defer d.mu.Unlock()
	if state != Running {
		for _, w := range d.waiters[name] {
			close(w)
		}
		delete(d.waiters, name)
	}
	if e.Event == libvirt.DOMAIN_EVENT_UNDEFINED {
		delete(d.meta, name)
	} else if !known {
		d.meta[name] = meta
	}
	if d.closed {
		return
	}
	select {
	case d.events <- ev:
	default:
		d.log.Warn("virt: event buffer full, dropping event (the agent should list domains)", "domain", name, "state", state, "reason", reason)
	}
}

// remember records a domain of this host so its events are recognized
// after it is undefined.
func (d *Driver) remember(name string, m leaseMeta) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.meta[name] = m
}

func (d *Driver) forget(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.meta, name)
}

// await returns a channel closed when the named domain next stops.
func (d *Driver) await(name string) chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := make(chan struct{})
	d.waiters[name] = append(d.waiters[name], c)
	return c
}

func (d *Driver) unwait(name string, c chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ws := d.waiters[name]
	for i, w := range ws {
		if w == c {
			d.waiters[name] = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	if len(d.waiters[name]) == 0 {
		delete(d.waiters, name)
	}
}
