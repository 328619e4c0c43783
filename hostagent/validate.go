package hostagent

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/fairlease/fairlease/broker"
)

// vmNet is where the broker places VM addresses; Seed.Prefix is its length.
var vmNet = netip.MustParsePrefix("10.64.0.0/10")

// validateAssignment lists what is wrong with a: anything that would make
// the agent start a VM it cannot name, size, boot or place. An assignment
// with problems is not acted on.
func validateAssignment(host string, a broker.Assignment) []string {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if !validName(string(a.Lease), 64) {
		add("lease ID %q cannot name a domain (want 1-64 letters, digits, '.', '-' or '_')", a.Lease)
	}
	if a.Shape.Cores <= 0 {
		add("shape has %d cores", a.Shape.Cores)
	}
	if a.Shape.MemoryMiB <= 0 {
		add("shape has %d MiB of memory", a.Shape.MemoryMiB)
	}
	if a.Image == "" {
		add("no image")
	}
	if len(a.Mine) == 0 {
		add("no VM on this host")
	}
	byIndex := map[int]broker.VM{}
	for _, v := range a.VMs {
		if _, dup := byIndex[v.Index]; dup {
			add("VM index %d listed twice", v.Index)
		}
		byIndex[v.Index] = v
		if _, err := netip.ParseAddr(v.Address); err != nil {
			add("VM %d has address %q, not an IP address", v.Index, v.Address)
		}
	}
	seen := map[int]bool{}
	for _, i := range a.Mine {
		if seen[i] {
			add("VM index %d is mine twice", i)
			continue
		}
		seen[i] = true
		v, ok := byIndex[i]
		switch {
		case !ok:
			add("VM index %d is mine but not among the lease's VMs", i)
		case v.Host != host:
			add("VM %d is mine but placed on host %q", i, v.Host)
		case v.Name == "" || strings.ContainsAny(v.Name, " \t\r\n/"):
			add("VM %d has name %q, not a host name", i, v.Name)
		case !isVMAddr(v.Address):
			add("VM %d has address %q, outside %s", i, v.Address, vmNet)
		}
	}
	return probs
}

func isVMAddr(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && vmNet.Contains(a)
}

// identifiable returns the indices of a's VMs that are this host's, as
// far as a malformed assignment tells: those listed in Mine and those
// placed on host, each once, sorted. They are the ones to report failed.
func identifiable(host string, a broker.Assignment) []int {
	var out []int
	for _, i := range a.Mine {
		if i >= 0 {
			out = append(out, i)
		}
	}
	for _, v := range a.VMs {
		if v.Host == host && v.Index >= 0 {
			out = append(out, v.Index)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
