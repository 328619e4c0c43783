package hostagent

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fairlease/fairlease/broker"
)

func TestValidateAssignment(t *testing.T) {
	for name, tc := range map[string]struct {
		edit    func(a *broker.Assignment)
		want    []string
		wantVMs []int
	}{
		"valid": {edit: func(*broker.Assignment) {}, wantVMs: []int{0, 2}},
		"lease ID with a slash": {edit: func(a *broker.Assignment) { a.Lease = "a/b" },
			want: []string{`lease ID "a/b" cannot name a domain (want 1-64 letters, digits, '.', '-' or '_')`}, wantVMs: []int{0, 2}},
		"no cores, no memory, no image": {edit: func(a *broker.Assignment) { a.Shape.Cores, a.Shape.MemoryMiB, a.Image = -1, 0, "" },
			want: []string{"shape has -1 cores", "shape has 0 MiB of memory", "no image"}, wantVMs: []int{0, 2}},
		"nothing mine": {edit: func(a *broker.Assignment) { a.Mine = nil; a.VMs[0].Host, a.VMs[2].Host = "h2", "h2" },
			want: []string{"no VM on this host"}},
		"mine twice and missing": {edit: func(a *broker.Assignment) { a.Mine = []int{0, 0, 5, -1} },
			want:    []string{"VM index 0 is mine twice", "VM index 5 is mine but not among the lease's VMs", "VM index -1 is mine but not among the lease's VMs"},
			wantVMs: []int{0, 2, 5}},
		"someone else's VM": {edit: func(a *broker.Assignment) { a.Mine = []int{0, 1} },
			want: []string{`VM 1 is mine but placed on host "h2"`}, wantVMs: []int{0, 1, 2}},
		"index listed twice": {edit: func(a *broker.Assignment) { a.VMs[1].Index = 2 },
			want: []string{"VM index 2 listed twice"}, wantVMs: []int{0, 2}},
		"peer without an address": {edit: func(a *broker.Assignment) { a.VMs[1].Address = "" },
			want: []string{`VM 1 has address "", not an IP address`}, wantVMs: []int{0, 2}},
		"own VM outside the VM network, nameless": {edit: func(a *broker.Assignment) { a.VMs[0].Address, a.VMs[2].Name = "10.128.0.1", "" },
			want: []string{`VM 0 has address "10.128.0.1", outside 10.64.0.0/10`, `VM 2 has name "", not a host name`}, wantVMs: []int{0, 2}},
	} {
		t.Run(name, func(t *testing.T) {
			a := assignment("l-a", "base", 3, 0, 2)
			tc.edit(&a)
			if diff := cmp.Diff(tc.want, validateAssignment(testHost, a), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantVMs, identifiable(testHost, a), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("identifiable VMs (-want +got):\n%s", diff)
			}
		})
	}
}
