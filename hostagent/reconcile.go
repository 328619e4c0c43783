package hostagent

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/hostagent/virt"
	"github.com/fairlease/fairlease/lease"
)

// vmMemory is what the agent remembers of one VM (by domain name) across
// reconciles: the state it last reported (or queued) to the broker, the
// reason of the domain's last event, and whether a start or stop of it
// is under way.
type vmMemory struct {
	Reported string
	Reason   string
	Busy     bool
	// RetryAt is when a start that failed for want of the broker may be
	// tried again.
	RetryAt time.Time
}

// plan is what one reconcile decides.
type plan struct {
	Starts  []startVM
	Stops   []stopVM
	Reports []report
	// Forget are the VMs the agent need not remember any more: neither
	// assigned nor present nor busy.
	Forget []string
	// Images are the image names of the VMs to keep, by domain name.
	Images map[string]string
	// Wake is when something is due (a lease ends, a start may be tried
	// again), zero if nothing is: the agent reconciles again then.
	Wake time.Time
}

type startVM struct {
	Name       string
	Index      int
	Assignment broker.Assignment
}

type stopVM struct {
	Name  string
	Lease lease.ID
	Index int
	Note  string // why, for the report
}

type report struct {
	Name   string
	Change broker.VMStateChange
}

// wanted is one VM the host must run.
type wanted struct {
	a  broker.Assignment
	vm broker.VM
}

// decide compares what the broker wants of host (as, the full set) with
// what the hypervisor runs (actual) and the agent's memory, as of now. It
// starts a VM only if the broker has never seen it running: a VM that was
// running and vanished is failed, never started twice.
func decide(now time.Time, host string, as []broker.Assignment, actual []virt.Domain, mem map[string]vmMemory) plan {
	d := desire(now, host, as, mem)
	p := plan{Reports: d.reports, Images: d.images, Wake: d.nextEnd}
	present := map[string]bool{}
	for _, dom := range actual {
		present[dom.Name] = true
		m := mem[dom.Name]
		if m.Busy {
			continue
		}
		w, ok := d.want[dom.Name]
		if !ok {
			note, ok := d.why[dom.Name]
			if !ok {
				note = "no live lease assigns it to host " + host
			}
			p.Stops = append(p.Stops, stopVM{Name: dom.Name, Lease: dom.Lease, Index: dom.Index, Note: note})
			continue
		}
		if r, ok := adopt(dom, w, m); ok {
			p.Reports = append(p.Reports, r)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.want)) {
		m := mem[name]
		if present[name] || m.Busy {
			continue
		}
		w := d.want[name]
		switch known(m, w.vm) {
		case "", broker.VMStarting:
			if now.Before(m.RetryAt) {
				p.Wake = earliest(p.Wake, m.RetryAt)
				continue
			}
			p.Starts = append(p.Starts, startVM{Name: name, Index: w.vm.Index, Assignment: w.a})
		case broker.VMRunning:
			p.Reports = append(p.Reports, failed(name, w.a.Lease, w.vm.Index, "domain "+name+" vanished from the hypervisor"))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(mem)) {
		_, assigned := d.why[name]
		if _, ok := d.want[name]; ok {
			assigned = true
		}
		if !present[name] && !assigned && !mem[name].Busy {
			p.Forget = append(p.Forget, name)
		}
	}
	return p
}

// desired is what the assignments ask of the host.
type desired struct {
	want map[string]wanted
	// why says, for each VM assigned but not wanted, why not.
	why     map[string]string
	reports []report // failures of malformed assignments
	images  map[string]string
	nextEnd time.Time
}

// desire sorts the assignments' VMs into those to run and those not to
// (their lease is over, or their assignment malformed); it reports the
// VMs of a malformed assignment failed, once.
func desire(now time.Time, host string, as []broker.Assignment, mem map[string]vmMemory) desired {
	d := desired{want: map[string]wanted{}, why: map[string]string{}, images: map[string]string{}}
	times := map[lease.ID]int{}
	for _, a := range as {
		times[a.Lease]++
	}
	for _, a := range as {
		probs := validateAssignment(host, a)
		if times[a.Lease] > 1 {
			// Which copy is right is unknowable: refuse them all.
			probs = append(probs, fmt.Sprintf("lease %s is assigned %d times", a.Lease, times[a.Lease]))
		}
		if len(probs) > 0 {
			note := "host " + host + " refused the assignment: " + strings.Join(probs, "; ")
			for _, i := range identifiable(host, a) {
				name := virt.DomainName(a.Lease, i)
				if _, dup := d.why[name]; !dup && a.Lease != "" && mem[name].Reported != broker.VMFailed {
					d.reports = append(d.reports, failed(name, a.Lease, i, note))
				}
				d.why[name] = note
			}
			continue
		}
		for _, i := range a.Mine {
			name := virt.DomainName(a.Lease, i)
			if !a.End.IsZero() && !now.Before(a.End) {
				// Over, even if the broker has not caught up.
				d.why[name] = "the lease ended at " + a.End.UTC().Format(time.RFC3339)
				continue
			}
			vm := a.VMs[slices.IndexFunc(a.VMs, func(v broker.VM) bool { return v.Index == i })]
			d.want[name] = wanted{a: a, vm: vm}
			d.images[name] = a.Image
			d.nextEnd = earliest(d.nextEnd, a.End)
		}
	}
	return d
}

// earliest returns the earlier of a and b, a zero time meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// known is the VM's state as the broker knows it: what the agent last
// reported, or else what the assignment says.
func known(m vmMemory, vm broker.VM) string {
	if m.Reported != "" {
		return m.Reported
	}
	return vm.State
}

// adopt decides what to report of a wanted domain already present: its
// state, if the broker does not know it yet. A failed VM stays failed.
func adopt(d virt.Domain, w wanted, m vmMemory) (report, bool) {
	k := known(m, w.vm)
	if k == broker.VMFailed {
		return report{}, false
	}
	switch d.State {
	case virt.Running:
		if k != broker.VMRunning {
			return running(d.Name, w.a.Lease, w.vm.Index), true
		}
	case virt.Crashed:
		note := m.Reason
		if note == "" {
			note = "domain " + d.Name + " crashed"
		}
		return failed(d.Name, w.a.Lease, w.vm.Index, note), true
	case virt.Stopped:
		// The guest shut itself down: not a failure of the host, and not
		// restarted, since the user may have meant it.
		if k != broker.VMStopped {
			return report{Name: d.Name, Change: broker.VMStateChange{ID: w.a.Lease, Index: w.vm.Index, State: broker.VMStopped, Note: "the guest shut down"}}, true
		}
	}
	return report{}, false
}

func running(name string, id lease.ID, i int) report {
	return report{Name: name, Change: broker.VMStateChange{ID: id, Index: i, State: broker.VMRunning}}
}

func failed(name string, id lease.ID, i int, note string) report {
	return report{Name: name, Change: broker.VMStateChange{ID: id, Index: i, State: broker.VMFailed, Note: note}}
}
