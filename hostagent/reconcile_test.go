package hostagent

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/hostagent/virt"
)

func TestDecide(t *testing.T) {
	now := testEnd.Add(-time.Hour)
	a := assignment("l-a", "base", 2, 0, 1)
	dom := func(name string, i int, s virt.State) virt.Domain {
		return virt.Domain{Name: name, Lease: "l-a", Index: i, Host: testHost, State: s}
	}
	withStates := func(a broker.Assignment, states ...string) broker.Assignment {
		a.VMs = append([]broker.VM(nil), a.VMs...)
		for i, s := range states {
			a.VMs[i].State = s
		}
		return a
	}
	bothImages := map[string]string{"fl-l-a-0": "base", "fl-l-a-1": "base"}
	rep := func(i int, state, note string) report {
		return report{Name: virt.DomainName("l-a", i), Change: broker.VMStateChange{ID: "l-a", Index: i, State: state, Note: note}}
	}
	for name, tc := range map[string]struct {
		at     time.Time // default now
		as     []broker.Assignment
		actual []virt.Domain
		mem    map[string]vmMemory
		want   plan
	}{
		"nothing assigned, nothing runs": {want: plan{}},
		"assigned and absent: start": {
			as: []broker.Assignment{a},
			want: plan{Starts: []startVM{{Name: "fl-l-a-0", Index: 0, Assignment: a}, {Name: "fl-l-a-1", Index: 1, Assignment: a}},
				Images: bothImages, Wake: testEnd},
		},
		"running and known: adopt quietly": {
			as:     []broker.Assignment{withStates(a, broker.VMRunning, broker.VMRunning)},
			actual: []virt.Domain{dom("fl-l-a-0", 0, virt.Running), dom("fl-l-a-1", 1, virt.Running)},
			want:   plan{Images: bothImages, Wake: testEnd},
		},
		"running, the broker lags: report running": {
			as:     []broker.Assignment{withStates(a, broker.VMRunning, broker.VMStarting)},
			actual: []virt.Domain{dom("fl-l-a-0", 0, virt.Running), dom("fl-l-a-1", 1, virt.Running)},
			want:   plan{Reports: []report{rep(1, broker.VMRunning, "")}, Images: bothImages, Wake: testEnd},
		},
		"running, already reported: quiet": {
			as:     []broker.Assignment{a},
			actual: []virt.Domain{dom("fl-l-a-0", 0, virt.Running), dom("fl-l-a-1", 1, virt.Starting)},
			mem:    map[string]vmMemory{"fl-l-a-0": {Reported: broker.VMRunning}},
			want:   plan{Images: bothImages, Wake: testEnd},
		},
		"crashed: failed with the event's reason": {
			as:     []broker.Assignment{withStates(a, broker.VMRunning, broker.VMRunning)},
			actual: []virt.Domain{dom("fl-l-a-0", 0, virt.Crashed), dom("fl-l-a-1", 1, virt.Crashed)},
			mem:    map[string]vmMemory{"fl-l-a-0": {Reason: "domain fl-l-a-0 crashed: oops"}, "fl-l-a-1": {Reported: broker.VMFailed}},
			want:   plan{Reports: []report{rep(0, broker.VMFailed, "domain fl-l-a-0 crashed: oops")}, Images: bothImages, Wake: testEnd},
		},
		"guest shut down: stopped, not restarted": {
			as:     []broker.Assignment{withStates(a, broker.VMRunning, broker.VMStopped)},
			actual: []virt.Domain{dom("fl-l-a-0", 0, virt.Stopped), dom("fl-l-a-1", 1, virt.Stopped)},
			want:   plan{Reports: []report{rep(0, broker.VMStopped, "the guest shut down")}, Images: bothImages, Wake: testEnd},
		},
		"running VM vanished: failed, never started twice": {
			as:   []broker.Assignment{withStates(a, broker.VMRunning, broker.VMFailed)},
			want: plan{Reports: []report{rep(0, broker.VMFailed, "domain fl-l-a-0 vanished from the hypervisor")}, Images: bothImages, Wake: testEnd},
		},
		"start retried later": {
			as:   []broker.Assignment{a},
			mem:  map[string]vmMemory{"fl-l-a-0": {RetryAt: now.Add(time.Second)}, "fl-l-a-1": {RetryAt: now}},
			want: plan{Starts: []startVM{{Name: "fl-l-a-1", Index: 1, Assignment: a}}, Images: bothImages, Wake: now.Add(time.Second)},
		},
		"start or stop under way: hands off": {
			as:     []broker.Assignment{a},
			actual: []virt.Domain{dom("fl-l-a-1", 1, virt.Running), dom("fl-old-0", 0, virt.Running)},
			mem:    map[string]vmMemory{"fl-l-a-0": {Busy: true}, "fl-l-a-1": {Busy: true}, "fl-old-0": {Busy: true}},
			want:   plan{Images: bothImages, Wake: testEnd},
		},
		"orphan: stop": {
			actual: []virt.Domain{{Name: "fl-old-3", Lease: "old", Index: 3, State: virt.Crashed}},
			want:   plan{Stops: []stopVM{{Name: "fl-old-3", Lease: "old", Index: 3, Note: "no live lease assigns it to host h1"}}},
		},
		"lease over before the broker says: stop": {
			at:     testEnd,
			as:     []broker.Assignment{withStates(a, broker.VMRunning, broker.VMRunning)},
			actual: []virt.Domain{dom("fl-l-a-0", 0, virt.Running)},
			mem:    map[string]vmMemory{"fl-l-a-1": {Reported: broker.VMStopped}},
			want:   plan{Stops: []stopVM{{Name: "fl-l-a-0", Lease: "l-a", Index: 0, Note: "the lease ended at 2030-01-02T03:04:05Z"}}},
		},
		"malformed: failed once, running domain stopped": {
			as:     []broker.Assignment{func() broker.Assignment { b := withStates(a); b.Shape.Cores = 0; return b }()},
			actual: []virt.Domain{dom("fl-l-a-0", 0, virt.Running)},
			mem:    map[string]vmMemory{"fl-l-a-0": {Reported: broker.VMFailed}},
			want: plan{
				Stops:   []stopVM{{Name: "fl-l-a-0", Lease: "l-a", Index: 0, Note: "host h1 refused the assignment: shape has 0 cores"}},
				Reports: []report{rep(1, broker.VMFailed, "host h1 refused the assignment: shape has 0 cores")},
			},
		},
		"forget what is gone": {
			mem:  map[string]vmMemory{"fl-old-0": {Reported: broker.VMStopped}, "fl-old-1": {Busy: true}},
			want: plan{Forget: []string{"fl-old-0"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			at := tc.at
			if at.IsZero() {
				at = now
			}
			got := decide(at, testHost, tc.as, tc.actual, tc.mem)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("decide (-want +got):\n%s", diff)
			}
		})
	}
}
