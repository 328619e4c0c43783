package api

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// EncodePolicy writes p as a policy file that policies.Parse reads back to
// the same policy. Every value is written out, inherited ones included:
// the state keeps the parsed policy, not the text it came from.
func EncodePolicy(p *policies.Policy) string {
	var b strings.Builder
	kv := func(k string, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	kv("name", tomlString(p.Name))
	kv("reserve", tomlFloat(p.Reserve))
	kv("reserve_arrivals", tomlFloat(p.ReserveArrivals))
	kv("loan_limit", tomlDuration(p.LoanLimit))
	kv("aging", tomlFloat(p.Aging))
	kv("promise_horizon", tomlDuration(p.PromiseHorizon))
	kv("half_life", tomlDuration(p.HalfLife))
	kv("active_window", tomlDuration(p.ActiveWindow))
	kv("activity", tomlString(p.Activity))
	kv("patience", tomlDuration(p.Patience))
	kv("unknown_groups", tomlString(p.UnknownGroups))
	writeGroup(&b, "defaults", &p.Defaults, false)
	ids := make([]lease.GroupID, 0, len(p.Groups))
	for id := range p.Groups {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		writeGroup(&b, "groups."+tomlKey(string(id)), p.Groups[id], true)
	}
	// Without flavors the policy offers the built-in ones, as a file
	// without the table does.
	if len(p.Flavors) > 0 {
		b.WriteString("\n[flavors]\n")
		for _, f := range p.FlavorList() {
			fmt.Fprintf(&b, "%s = { cores = %d, memory = %d }\n", tomlKey(f.Name), f.Cores, f.MemoryMiB)
		}
	}
	return b.String()
}

func writeGroup(b *strings.Builder, table string, g *policies.Group, parent bool) {
	fmt.Fprintf(b, "\n[%s]\n", table)
	if parent && g.Parent != "" {
		fmt.Fprintf(b, "parent = %s\n", tomlString(string(g.Parent)))
	}
	fmt.Fprintf(b, "weight = %s\n", tomlFloat(g.Weight))
	fmt.Fprintf(b, "max_cores = %d\n", g.Quota.MaxCores)
	fmt.Fprintf(b, "max_memory = %d\n", g.Quota.MaxMemoryMiB)
	fmt.Fprintf(b, "max_lease = %s\n", tomlDuration(g.Quota.MaxLease))
	fmt.Fprintf(b, "max_vms = %d\n", g.Quota.MaxVMs)
	fmt.Fprintf(b, "\n[%s.overflow]\n", table)
	sites := make([]string, len(g.Overflow.Sites))
	for i, s := range g.Overflow.Sites {
		sites[i] = tomlString(s)
	}
	fmt.Fprintf(b, "sites = [%s]\n", strings.Join(sites, ", "))
	fmt.Fprintf(b, "budget_core_hours = %s\n", tomlFloat(g.Overflow.BudgetCoreHours))
	fmt.Fprintf(b, "period = %s\n", tomlDuration(g.Overflow.Period))
}

func tomlFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func tomlDuration(d time.Duration) string { return tomlString(policies.FormatDuration(d)) }

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlKey writes a key bare when TOML allows it, quoted otherwise.
func tomlKey(k string) string {
	if k != "" && strings.IndexFunc(k, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) < 0 {
		return k
	}
	return tomlString(k)
}
