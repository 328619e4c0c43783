package policies

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fairlease/fairlease/lease"
)

// Values of Policy.UnknownGroups.
const (
	UnknownAllow  = "allow"  // unknown groups get [defaults], parent root
	UnknownReject = "reject" // requests of unknown groups are rejected
)

// UnlimitedBudget as Overflow.BudgetCoreHours lets a group overflow without
// limit. It is explicit because 0 must mean "none": a forgotten budget must
// not mean an open cheque.
const UnlimitedBudget = -1.0

// Day is the unit "d" of durations in policy files.
const Day = 24 * time.Hour

// Policy is a site's policy. The toml tags are the file format; see the
// package documentation.
type Policy struct {
	// Name is free text shown in reports ("default", "small-site").
	Name string `toml:"name"`
	// Reserve is α in [0,1]: the fraction of below-share groups' unused
	// share kept free from borrowers, so that they can still start at once.
	Reserve float64 `toml:"reserve"`
	// ReserveArrivals is how many groups' worth of share the reserve also
	// keeps for groups that are not active yet: a group that arrives is
	// entitled at once, but without preemption it can only start on what
	// is free.
	ReserveArrivals float64 `toml:"reserve_arrivals"`
	// LoanLimit is L: how long protected capacity may be lent to borrowers.
	// A borrower may use the reserve only for the part of its lease that
	// ends within L, since without preemption lending is only safe for
	// bounded time. 0 means the reserve is never lent.
	LoanLimit time.Duration `toml:"loan_limit"`
	// Aging is the fraction of its patience (submission to start_by) after
	// which a waiting request is served before fairer ones, so that fair
	// ordering delays but does not starve it into a rejection. 0 turns it
	// off.
	Aging float64 `toml:"aging"`
	// PromiseHorizon bounds how far ahead an in-share request gets a firm
	// start time; one whose earliest slot is further away waits in fair
	// order instead, since far promises hold capacity against requests
	// that are fairer but come later. 0 means no bound.
	PromiseHorizon time.Duration `toml:"promise_horizon"`
	// HalfLife is the half-life of decayed usage (default 7 days): how
	// quickly past use stops counting against a group.
	HalfLife time.Duration `toml:"half_life"`
	// ActiveWindow keeps a group active (entitled to a share) this long
	// after its last lease ended. 0 counts only groups holding or waiting,
	// which measured best.
	ActiveWindow time.Duration `toml:"active_window"`
	// Activity says which groups count as active, among whom shares are
	// split: ActiveHeld (default) counts groups holding or waiting for
	// capacity (plus ActiveWindow); ActiveAsked counts a group from each
	// submission for the length it asked for, the interval in which it
	// wanted the capacity whether or not it got it.
	Activity string `toml:"activity"`
	// Patience gives requests without a start_by one: submit + Patience.
	Patience time.Duration `toml:"patience"`
	// UnknownGroups is UnknownAllow or UnknownReject.
	UnknownGroups string `toml:"unknown_groups"`
	// Defaults holds the weight, quota and overflow of every group that
	// does not set them (and does not inherit them from a parent). Its
	// Parent is always "".
	Defaults Group `toml:"defaults"`
	// Groups holds every configured group, flattened; the tree is in
	// Parent and Children. Callers must not modify the groups.
	Groups map[lease.GroupID]*Group `toml:"groups"`
	// Flavors are the site's instance types by name: the VM shape an EC2
	// RunInstances call gets for its InstanceType. A file's [flavors]
	// table replaces the built-in ones (DefaultFlavors) as a whole; a
	// policy without any (nil, as in one restored from an older snapshot)
	// offers the built-in ones. Callers must not modify the flavors; read
	// them through Flavor and FlavorList.
	Flavors map[string]*Flavor `toml:"flavors"`

	roots []lease.GroupID // sorted; computed by Validate
}

// Group is one node of the share tree.
type Group struct {
	// Name is the group's key in Policy.Groups; Validate fills it in.
	Name lease.GroupID `toml:"-"`
	// Parent is the enclosing group, "" for a root.
	Parent lease.GroupID `toml:"parent"`
	// Weight ranks the group among its siblings: shares split in
	// proportion to weight. > 0, default 1.
	Weight float64 `toml:"weight"`
	// Quota is written in the group's own table (max_cores = 64).
	Quota Quota
	// Overflow is written as the group's overflow table.
	Overflow Overflow `toml:"overflow"`
	// Children are the groups whose Parent this is, sorted; computed by
	// Validate.
	Children []lease.GroupID `toml:"-"`
}

// Quota bounds what a group may hold whatever its share. Zero means no limit
// in every field, so that an empty policy restricts nothing.
type Quota struct {
	// MaxCores bounds the cores held and reserved by the group at once.
	MaxCores int64 `toml:"max_cores"`
	// MaxMemoryMiB bounds memory the same way; written as a size string
	// ("512GiB") or an integer number of MiB.
	MaxMemoryMiB int64 `toml:"max_memory,size"`
	// MaxLease is the longest lease the group may ask for.
	MaxLease time.Duration `toml:"max_lease"`
	// MaxVMs is the most VMs in one request.
	MaxVMs int `toml:"max_vms"`
	// MaxImagesMiB bounds the bytes of the images the group owns.
	MaxImagesMiB int64 `toml:"max_images,size"`
}

// Overflow says where a group may run when the local site cannot take it in
// time, and how much of that it may spend.
type Overflow struct {
	// Sites the group may overflow to, in order of preference. Empty: none.
	Sites []string `toml:"sites"`
	// BudgetCoreHours is the core-hours the group may run elsewhere per
	// Period: UnlimitedBudget (-1) for no limit, 0 for none.
	BudgetCoreHours float64 `toml:"budget_core_hours"`
	// Period is the budget period, default 30 days.
	Period time.Duration `toml:"period"`
}

// Flavor is an instance type: the VM shape it names.
type Flavor struct {
	// Name is the flavor's key in Policy.Flavors ("t3.small"); Validate
	// fills it in.
	Name string `toml:"-"`
	// Cores is the VM's number of cores, > 0.
	Cores int `toml:"cores"`
	// MemoryMiB is the VM's memory, > 0; written as a size string
	// ("2GiB") or an integer number of MiB.
	MemoryMiB int64 `toml:"memory,size"`
}

// Limits of a flavor's shape: larger values are typing mistakes, and they
// keep products of counts and shapes far from overflowing.
const (
	MaxFlavorCores     = 4096
	MaxFlavorMemoryMiB = 64 << 20 // 64 TiB
	maxFlavorName      = 64
)

// DefaultFlavors returns the instance types a site offers unless its policy
// sets its own: EC2's general-purpose names, so that scripts written for
// EC2 work unchanged.
func DefaultFlavors() map[string]*Flavor {
	fl := map[string]*Flavor{}
	for _, f := range []Flavor{
		{"t3.nano", 1, 512}, {"t3.micro", 1, 1024}, {"t3.small", 1, 2048}, {"t3.medium", 2, 4096},
		{"t3.large", 2, 8192}, {"m5.large", 2, 8192}, {"m5.xlarge", 4, 16384}, {"m5.2xlarge", 8, 32768},
		{"c5.large", 2, 4096}, {"c5.xlarge", 4, 8192}, {"c5.2xlarge", 8, 16384},
	} {
		fl[f.Name] = &f
	}
	return fl
}

// flavorTable is p's flavors, or the built-in ones when p has none.
func (p *Policy) flavorTable() map[string]*Flavor {
	if p == nil || len(p.Flavors) == 0 {
		return defaultFlavors
	}
	return p.Flavors
}

var defaultFlavors = DefaultFlavors()

// Flavor returns the flavor name, with its Name set.
func (p *Policy) Flavor(name string) (Flavor, bool) {
	f := p.flavorTable()[name]
	if f == nil {
		return Flavor{}, false
	}
	c := *f
	c.Name = name
	return c, true
}

// FlavorList returns the flavors smallest first: by cores, then memory,
// then name.
func (p *Policy) FlavorList() []Flavor {
	table := p.flavorTable()
	out := make([]Flavor, 0, len(table))
	for name, f := range table {
		if f == nil {
			continue
		}
		c := *f
		c.Name = name
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Flavor) int {
		return cmp.Or(cmp.Compare(a.Cores, b.Cores), cmp.Compare(a.MemoryMiB, b.MemoryMiB), strings.Compare(a.Name, b.Name))
	})
	return out
}

// Activity rules.
const (
	ActiveHeld  = "held"
	ActiveAsked = "asked"
	ActiveUsed  = "used"
)

// Default returns the built-in policy: the knobs that measured best in the
// first prototype study, equal weights, no quotas, no overflow, unknown
// groups allowed. Parse starts from it.
func Default() *Policy {
	return &Policy{
		Name:           "default",
		Reserve:        0,
		LoanLimit:      0,
		Aging:          0.5,
		PromiseHorizon: time.Hour,
		HalfLife:       7 * Day,
		ActiveWindow:   0,
		Patience:       24 * time.Hour,
		UnknownGroups:  UnknownAllow,
		Activity:       ActiveHeld,
		Defaults: Group{
			Weight:   1,
			Overflow: Overflow{Period: 30 * Day},
		},
		Groups:  map[lease.GroupID]*Group{},
		Flavors: DefaultFlavors(),
	}
}

// Group returns the configured group id or, when unknown groups are allowed,
// a new group built from the defaults with the root as parent. It reports
// false for an unknown group under UnknownReject and for the empty id.
func (p *Policy) Group(id lease.GroupID) (*Group, bool) {
	if g := p.Groups[id]; g != nil {
		return g, true
	}
	if id == "" || p.UnknownGroups != UnknownAllow {
		return nil, false
	}
	g := p.Defaults.clone()
	g.Name, g.Parent, g.Children = id, "", nil
	return &g, true
}

// Path returns the groups from the root down to id, id last, as Fair Tree
// walks them. It returns nil when Group(id) reports false.
func (p *Policy) Path(id lease.GroupID) []lease.GroupID {
	g, ok := p.Group(id)
	if !ok {
		return nil
	}
	path := []lease.GroupID{id}
	// The bound keeps a policy with a cycle (one not yet validated) finite.
	for parent := g.Parent; parent != "" && len(path) <= len(p.Groups); {
		path = append(path, parent)
		pg := p.Groups[parent]
		if pg == nil {
			break
		}
		parent = pg.Parent
	}
	slices.Reverse(path)
	return path
}

// Roots returns the groups without a parent, sorted. It is computed by
// Validate (and so by Parse): a Policy built in code has none before.
func (p *Policy) Roots() []lease.GroupID { return p.roots }

// Clone returns a deep copy of p.
func (p *Policy) Clone() *Policy {
	if p == nil {
		return nil
	}
	q := *p
	q.Defaults = p.Defaults.clone()
	if p.Groups != nil {
		q.Groups = make(map[lease.GroupID]*Group, len(p.Groups))
		for id, g := range p.Groups {
			if g != nil {
				c := g.clone()
				g = &c
			}
			q.Groups[id] = g
		}
	}
	if p.Flavors != nil {
		q.Flavors = make(map[string]*Flavor, len(p.Flavors))
		for name, f := range p.Flavors {
			if f != nil {
				c := *f
				f = &c
			}
			q.Flavors[name] = f
		}
	}
	q.roots = slices.Clone(p.roots)
	return &q
}

func (g Group) clone() Group {
	g.Overflow.Sites = slices.Clone(g.Overflow.Sites)
	g.Children = slices.Clone(g.Children)
	return g
}

// buildTree fills in the groups' Name and Children and the roots from the
// Parent fields, and the flavors' Name.
func (p *Policy) buildTree() {
	ids := slices.Sorted(maps.Keys(p.Groups))
	for _, id := range ids {
		g := p.Groups[id]
		g.Name, g.Children = id, nil
	}
	for name, f := range p.Flavors {
		if f != nil {
			f.Name = name
		}
	}
	p.roots = nil
	// Visiting in sorted order keeps every Children list sorted.
	for _, id := range ids {
		g := p.Groups[id]
		if g.Parent == "" {
			p.roots = append(p.roots, id)
			continue
		}
		parent := p.Groups[g.Parent]
		parent.Children = append(parent.Children, id)
	}
}
