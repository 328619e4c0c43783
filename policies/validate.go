package policies

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"

	"github.com/fairlease/fairlease/lease"
)

// LoadError is a problem with a policy, located so that a person can fix it:
// the file and line (when the policy came from a file) and the TOML key.
type LoadError struct {
	File string // the name given to Parse or the path given to Load; "" for a Policy built in code
	Line int    // 1-based; 0 when unknown
	Key  string // TOML key path, e.g. groups.physics.weight; "" when none applies
	Msg  string
	Err  error // the underlying error, if any
}

// Error formats as file:line: key: message, leaving out what is unknown.
func (e *LoadError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *LoadError) Unwrap() error { return e.Err }

// Validate checks p, returning the first problem as a *LoadError (without a
// line: a Policy built in code has none), and on success computes each
// group's Name and Children and the Roots.
func (p *Policy) Validate() error {
	if errs := p.problems(); len(errs) > 0 {
		return errs[0]
	}
	p.buildTree()
	return nil
}

// problems lists every problem of p, keyed by TOML key, in a fixed order:
// top-level knobs, defaults, groups by name, cycles. Parse reports the one
// that comes first in the file instead.
func (p *Policy) problems() []*LoadError {
	var errs []*LoadError
	add := func(key toml.Key, format string, args ...any) {
		errs = append(errs, &LoadError{Key: key.String(), Msg: fmt.Sprintf(format, args...)})
	}
	if !(p.Reserve >= 0 && p.Reserve <= 1) {
		add(toml.Key{"reserve"}, "must be in [0,1], got %v", p.Reserve)
	}
	if !(p.ReserveArrivals >= 0 && p.ReserveArrivals <= 100) {
		add(toml.Key{"reserve_arrivals"}, "must be in [0,100], got %v", p.ReserveArrivals)
	}
	nonNegative(add, toml.Key{"loan_limit"}, p.LoanLimit, "0s = the reserve is never lent")
	if !(p.Aging >= 0 && p.Aging <= 1) {
		add(toml.Key{"aging"}, "must be in [0,1], got %v", p.Aging)
	}
	nonNegative(add, toml.Key{"promise_horizon"}, p.PromiseHorizon, "0s = no bound")
	if p.HalfLife <= 0 {
		add(toml.Key{"half_life"}, "must be > 0, got %s", FormatDuration(p.HalfLife))
	}
	nonNegative(add, toml.Key{"active_window"}, p.ActiveWindow, "")
	nonNegative(add, toml.Key{"patience"}, p.Patience, "")
	if p.Activity != ActiveHeld && p.Activity != ActiveAsked && p.Activity != ActiveUsed {
		add(toml.Key{"activity"}, "must be %q, %q or %q, got %q", ActiveHeld, ActiveAsked, ActiveUsed, p.Activity)
	}
	if p.UnknownGroups != UnknownAllow && p.UnknownGroups != UnknownReject {
		add(toml.Key{"unknown_groups"}, "must be %q or %q, got %q", UnknownAllow, UnknownReject, p.UnknownGroups)
	}

	if p.Defaults.Parent != "" {
		add(toml.Key{"defaults", "parent"}, "defaults cannot have a parent, got %q", p.Defaults.Parent)
	}
	p.Defaults.check(add, toml.Key{"defaults"})

	ids := slices.Sorted(maps.Keys(p.Groups))
	for _, id := range ids {
		g, key := p.Groups[id], toml.Key{"groups", string(id)}
		switch {
		case g == nil:
			add(key, "group is nil")
			continue
		case id == "":
			add(key, "group name must not be empty")
		case strings.ContainsFunc(string(id), unicode.IsControl):
			add(key, "group name must not contain control characters")
		case g.Name != "" && g.Name != id:
			add(key, "Name %q differs from the group's key", g.Name)
		}
		if _, ok := p.Groups[g.Parent]; g.Parent != "" && !ok {
			add(append(key, "parent"), "no group %q is defined%s", g.Parent, known(ids))
		}
		g.check(add, key)
	}

	if p.Flavors != nil && len(p.Flavors) == 0 {
		add(toml.Key{"flavors"}, "is empty: list at least one flavor, or leave the table out to offer the built-in ones")
	}
	for _, name := range slices.Sorted(maps.Keys(p.Flavors)) {
		checkFlavor(add, name, p.Flavors[name])
	}

	// A cycle is reported at the parent key of each group on it, so that
	// Parse can point at the one that comes first in the file.
	for _, id := range ids {
		if g := p.Groups[id]; g != nil && g.Parent != "" {
			if cycle := p.cycleFrom(id); cycle != nil {
				add(toml.Key{"groups", string(id), "parent"}, "parent %q makes a cycle: %s", g.Parent, strings.Join(cycle, " → "))
			}
		}
	}
	return errs
}

// cycleFrom returns the cycle from id back to id through parents, or nil if
// id is not on one.
func (p *Policy) cycleFrom(id lease.GroupID) []string {
	path := []string{string(id)}
	seen := map[lease.GroupID]bool{id: true}
	for cur := p.Groups[id].Parent; cur != ""; {
		path = append(path, string(cur))
		if cur == id {
			return path
		}
		g := p.Groups[cur]
		if g == nil || seen[cur] {
			return nil // ends at the root, at a missing parent, or loops elsewhere
		}
		seen[cur] = true
		cur = g.Parent
	}
	return nil
}

// check validates the values of a group or of the defaults.
func (g *Group) check(add func(toml.Key, string, ...any), key toml.Key) {
	k := func(parts ...string) toml.Key { return append(key[:len(key):len(key)], parts...) }
	if !(g.Weight > 0) || math.IsInf(g.Weight, 0) {
		add(k("weight"), "must be > 0, got %v", g.Weight)
	}
	q := g.Quota
	if q.MaxCores < 0 {
		add(k("max_cores"), "must be >= 0 (0 = no limit), got %d", q.MaxCores)
	}
	if q.MaxMemoryMiB < 0 {
		add(k("max_memory"), "must be >= 0 (0 = no limit), got %dMiB", q.MaxMemoryMiB)
	}
	nonNegative(add, k("max_lease"), q.MaxLease, "0s = no limit")
	if q.MaxVMs < 0 {
		add(k("max_vms"), "must be >= 0 (0 = no limit), got %d", q.MaxVMs)
	}
	if q.MaxImagesMiB < 0 {
		add(k("max_images"), "must be >= 0 (0 = no limit), got %dMiB", q.MaxImagesMiB)
	}
	o := g.Overflow
	for i, s := range o.Sites {
		switch {
		case strings.TrimSpace(s) == "":
			add(k("overflow", "sites"), "site %d is empty", i+1)
		case slices.Index(o.Sites, s) < i:
			add(k("overflow", "sites"), "lists %q twice", s)
		}
	}
	if !(o.BudgetCoreHours >= UnlimitedBudget) || math.IsInf(o.BudgetCoreHours, 0) {
		add(k("overflow", "budget_core_hours"), "must be -1 (unlimited), 0 (none) or more, got %v", o.BudgetCoreHours)
	}
	if o.Period <= 0 {
		add(k("overflow", "period"), "must be > 0, got %s", FormatDuration(o.Period))
	}
}

// checkFlavor validates the flavor name of a policy's table.
func checkFlavor(add func(toml.Key, string, ...any), name string, f *Flavor) {
	key := toml.Key{"flavors", name}
	k := func(part string) toml.Key { return append(key[:len(key):len(key)], part) }
	switch {
	case f == nil:
		add(key, "flavor is nil")
		return
	case name == "" || len(name) > maxFlavorName:
		add(key, "a flavor name must have 1 to %d characters, got %d", maxFlavorName, len(name))
	case !validFlavorName(name):
		add(key, "flavor name %q: use letters, digits, '.', '-' and '_', starting with a letter or digit", name)
	case f.Name != "" && f.Name != name:
		add(key, "Name %q differs from the flavor's key", f.Name)
	}
	switch {
	case f.Cores == 0:
		add(k("cores"), "missing: every flavor needs cores = N, N > 0")
	case f.Cores < 0 || f.Cores > MaxFlavorCores:
		add(k("cores"), "must be in 1..%d, got %d", MaxFlavorCores, f.Cores)
	}
	switch {
	case f.MemoryMiB == 0:
		add(k("memory"), "missing: every flavor needs memory, a size like \"4GiB\" or an integer number of MiB")
	case f.MemoryMiB < 0 || f.MemoryMiB > MaxFlavorMemoryMiB:
		add(k("memory"), "must be in 1MiB..64TiB, got %dMiB", f.MemoryMiB)
	}
}

// validFlavorName accepts names like EC2's instance types ("t3.small",
// "hpc.16x64"): letters, digits, '.', '-' and '_', starting with a letter or
// digit.
func validFlavorName(name string) bool {
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '.' || r == '-' || r == '_')
		if !ok {
			return false
		}
	}
	return true
}

func nonNegative(add func(toml.Key, string, ...any), key toml.Key, d time.Duration, note string) {
	if d >= 0 {
		return
	}
	if note != "" {
		add(key, "must be >= 0 (%s), got %s", note, FormatDuration(d))
		return
	}
	add(key, "must be >= 0, got %s", FormatDuration(d))
}

// known lists the defined groups for a message, when there are few enough
// to read.
func known(ids []lease.GroupID) string {
	if len(ids) == 0 || len(ids) > 20 {
		return ""
	}
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = string(id)
	}
	return " (groups: " + strings.Join(names, ", ") + ")"
}
