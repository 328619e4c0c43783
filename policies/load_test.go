package policies_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

const day = 24 * time.Hour

// allowRoots compares the unexported list of roots too.
var allowRoots = cmp.AllowUnexported(policies.Policy{})

func parse(t *testing.T, doc string) *policies.Policy {
	t.Helper()
	p, err := policies.Parse("site.toml", strings.NewReader(doc))
	if err != nil {
		t.Fatalf("Parse: got error %v, want none", err)
	}
	return p
}

// group returns a group with the built-in defaults and the given name and
// parent, for building wanted values.
func group(name, parent lease.GroupID, edit func(g *policies.Group)) policies.Group {
	g := policies.Group{
		Name:     name,
		Parent:   parent,
		Weight:   1,
		Overflow: policies.Overflow{Period: 30 * day},
	}
	if edit != nil {
		edit(&g)
	}
	return g
}

func groupsOf(p *policies.Policy) map[lease.GroupID]policies.Group {
	out := map[lease.GroupID]policies.Group{}
	for id, g := range p.Groups {
		out[id] = *g
	}
	return out
}

func TestExamplesLoad(t *testing.T) {
	names, err := fs.Glob(policies.Examples, "*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"default.toml", "guarantee.toml", "small-site.toml"}, names); diff != "" {
		t.Errorf("example files (-want +got):\n%s", diff)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			p, err := policies.LoadFS(policies.Examples, name)
			if err != nil {
				t.Fatalf("LoadFS(%s): got %v, want no error", name, err)
			}
			if err := p.Validate(); err != nil {
				t.Errorf("Validate after load: got %v, want nil", err)
			}
			// The file on disk is the one embedded.
			fromDisk, err := policies.Load(filepath.Join("examples", name))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(p, fromDisk, allowRoots); diff != "" {
				t.Errorf("Load and LoadFS differ (-fs +disk):\n%s", diff)
			}
		})
	}
}

// default.toml writes out Default(); they must not drift apart.
func TestDefaultFileIsDefault(t *testing.T) {
	got, err := policies.LoadFS(policies.Examples, "default.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := policies.Default()
	if err := want.Validate(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, allowRoots); diff != "" {
		t.Errorf("default.toml differs from Default() (-Default +file):\n%s", diff)
	}
}

func TestSmallSite(t *testing.T) {
	p, err := policies.LoadFS(policies.Examples, "small-site.toml")
	if err != nil {
		t.Fatal(err)
	}
	top := *p
	top.Defaults, top.Groups = policies.Group{}, nil
	wantTop := policies.Policy{
		Name: "small-site", Reserve: 0.1, LoanLimit: time.Hour, HalfLife: 7 * day, Patience: 24 * time.Hour,
		Aging: 0.5, PromiseHorizon: time.Hour, Activity: policies.ActiveHeld,
		UnknownGroups: policies.UnknownReject,
	}
	top.Flavors = nil
	if diff := cmp.Diff(wantTop, top, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "roots" }, cmp.Ignore()), allowRoots); diff != "" {
		t.Errorf("top-level knobs (-want +got):\n%s", diff)
	}
	want := map[lease.GroupID]policies.Group{
		"science": group("science", "", func(g *policies.Group) {
			g.Weight = 2
			g.Quota = policies.Quota{MaxMemoryMiB: 384 << 10, MaxLease: 72 * time.Hour, MaxVMs: 64}
			g.Children = []lease.GroupID{"biology", "physics"}
		}),
		"physics": group("physics", "science", func(g *policies.Group) {
			g.Quota = policies.Quota{MaxCores: 64, MaxMemoryMiB: 256 << 10, MaxLease: 72 * time.Hour, MaxVMs: 32}
			g.Overflow = policies.Overflow{Sites: []string{"ec2"}, BudgetCoreHours: 500, Period: 30 * day}
		}),
		"biology": group("biology", "science", func(g *policies.Group) {
			g.Quota = policies.Quota{MaxCores: 48, MaxMemoryMiB: 384 << 10, MaxLease: 72 * time.Hour, MaxVMs: 64}
		}),
		"engineering": group("engineering", "", func(g *policies.Group) {
			g.Quota = policies.Quota{MaxLease: 7 * day, MaxVMs: 16}
		}),
		"teaching": group("teaching", "", func(g *policies.Group) {
			g.Weight = 0.5
			g.Quota = policies.Quota{MaxCores: 32, MaxMemoryMiB: 64 << 10, MaxLease: 4 * time.Hour, MaxVMs: 64}
		}),
	}
	if diff := cmp.Diff(want, groupsOf(p)); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	wantFlavors := []policies.Flavor{
		{Name: "t3.small", Cores: 1, MemoryMiB: 2 << 10},
		{Name: "t3.medium", Cores: 2, MemoryMiB: 4 << 10},
		{Name: "m5.xlarge", Cores: 4, MemoryMiB: 16 << 10},
		{Name: "hpc.8x32", Cores: 8, MemoryMiB: 32 << 10},
	}
	if diff := cmp.Diff(wantFlavors, p.FlavorList()); diff != "" {
		t.Errorf("flavors (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]lease.GroupID{"engineering", "science", "teaching"}, p.Roots()); diff != "" {
		t.Errorf("Roots (-want +got):\n%s", diff)
	}
}

func TestParseValid(t *testing.T) {
	tests := map[string]struct {
		doc  string
		want map[lease.GroupID]policies.Group
	}{
		"empty document": {
			doc:  "",
			want: map[lease.GroupID]policies.Group{},
		},
		"table headers": {
			doc: `
[groups.science]
weight = 2
[groups.physics]
parent = "science"
max_cores = 64
max_memory = "256GiB"
max_vms = 32
max_lease = "1d12h"
[groups.physics.overflow]
sites = ["ec2", "partner"]
budget_core_hours = 500
period = "7d"
`,
			want: map[lease.GroupID]policies.Group{
				"science": group("science", "", func(g *policies.Group) {
					g.Weight = 2
					g.Children = []lease.GroupID{"physics"}
				}),
				"physics": group("physics", "science", func(g *policies.Group) {
					g.Quota = policies.Quota{MaxCores: 64, MaxMemoryMiB: 256 << 10, MaxLease: 36 * time.Hour, MaxVMs: 32}
					g.Overflow = policies.Overflow{Sites: []string{"ec2", "partner"}, BudgetCoreHours: 500, Period: 7 * day}
				}),
			},
		},
		"dotted keys": {
			doc: `
groups.science.weight = 2
groups.physics.parent = "science"
groups.physics.overflow.sites = ["ec2"]
groups.physics.overflow.budget_core_hours = -1
`,
			want: map[lease.GroupID]policies.Group{
				"science": group("science", "", func(g *policies.Group) {
					g.Weight = 2
					g.Children = []lease.GroupID{"physics"}
				}),
				"physics": group("physics", "science", func(g *policies.Group) {
					g.Overflow = policies.Overflow{Sites: []string{"ec2"}, BudgetCoreHours: policies.UnlimitedBudget, Period: 30 * day}
				}),
			},
		},
		"inline tables": {
			doc: `
[groups]
science = {}
physics = { parent = "science", max_memory = 4096, overflow = { sites = ["ec2"], budget_core_hours = 10.5 } }
`,
			want: map[lease.GroupID]policies.Group{
				"science": group("science", "", func(g *policies.Group) { g.Children = []lease.GroupID{"physics"} }),
				"physics": group("physics", "science", func(g *policies.Group) {
					g.Quota.MaxMemoryMiB = 4096
					g.Overflow = policies.Overflow{Sites: []string{"ec2"}, BudgetCoreHours: 10.5, Period: 30 * day}
				}),
			},
		},
		"quotas inherit down the tree, an explicit 0 stops them": {
			doc: `
[defaults]
max_lease = "72h"
max_vms = 8

[groups.org]
max_cores = 100
max_vms = 50

[groups.dept]
parent = "org"

[groups.team]
parent = "dept"
max_cores = 0
`,
			want: map[lease.GroupID]policies.Group{
				"org": group("org", "", func(g *policies.Group) {
					g.Quota = policies.Quota{MaxCores: 100, MaxLease: 72 * time.Hour, MaxVMs: 50}
					g.Children = []lease.GroupID{"dept"}
				}),
				"dept": group("dept", "org", func(g *policies.Group) {
					g.Quota = policies.Quota{MaxCores: 100, MaxLease: 72 * time.Hour, MaxVMs: 50}
					g.Children = []lease.GroupID{"team"}
				}),
				"team": group("team", "dept", func(g *policies.Group) {
					g.Quota = policies.Quota{MaxCores: 0, MaxLease: 72 * time.Hour, MaxVMs: 50}
				}),
			},
		},
		"overflow inherits key by key": {
			doc: `
[defaults.overflow]
period = "7d"

[groups.org.overflow]
sites = ["ec2"]
budget_core_hours = 1000

[groups.dept]
parent = "org"
overflow = { budget_core_hours = 10 }
`,
			want: map[lease.GroupID]policies.Group{
				"org": group("org", "", func(g *policies.Group) {
					g.Overflow = policies.Overflow{Sites: []string{"ec2"}, BudgetCoreHours: 1000, Period: 7 * day}
					g.Children = []lease.GroupID{"dept"}
				}),
				"dept": group("dept", "org", func(g *policies.Group) {
					g.Overflow = policies.Overflow{Sites: []string{"ec2"}, BudgetCoreHours: 10, Period: 7 * day}
				}),
			},
		},
		"weight comes from defaults, not the parent": {
			doc: `
[defaults]
weight = 3
[groups.org]
weight = 10
[groups.dept]
parent = "org"
`,
			want: map[lease.GroupID]policies.Group{
				"org": group("org", "", func(g *policies.Group) {
					g.Weight = 10
					g.Children = []lease.GroupID{"dept"}
				}),
				"dept": group("dept", "org", func(g *policies.Group) { g.Weight = 3 }),
			},
		},
		"children declared before parents": {
			doc: `
[groups.c]
parent = "b"
[groups.b]
parent = "a"
max_vms = 3
[groups.a]
`,
			want: map[lease.GroupID]policies.Group{
				"a": group("a", "", func(g *policies.Group) { g.Children = []lease.GroupID{"b"} }),
				"b": group("b", "a", func(g *policies.Group) {
					g.Quota.MaxVMs = 3
					g.Children = []lease.GroupID{"c"}
				}),
				"c": group("c", "b", func(g *policies.Group) { g.Quota.MaxVMs = 3 }),
			},
		},
		"sizes and durations": {
			doc: `
[groups.a]
max_memory = "1TB"
max_lease = "90m"
[groups.b]
max_memory = "1.5GiB"
max_lease = 0
[groups.c]
max_memory = "4096 MiB"
max_lease = "1.5d"
`,
			want: map[lease.GroupID]policies.Group{
				"a": group("a", "", func(g *policies.Group) {
					g.Quota.MaxMemoryMiB = 953674 // 10^12 / 2^20, rounded down
					g.Quota.MaxLease = 90 * time.Minute
				}),
				"b": group("b", "", func(g *policies.Group) { g.Quota.MaxMemoryMiB = 1536 }),
				"c": group("c", "", func(g *policies.Group) {
					g.Quota.MaxMemoryMiB = 4096
					g.Quota.MaxLease = 36 * time.Hour
				}),
			},
		},
		"quoted group names": {
			doc: `
[groups."partner:siteB"]
weight = 0.5
`,
			want: map[lease.GroupID]policies.Group{
				"partner:siteB": group("partner:siteB", "", func(g *policies.Group) { g.Weight = 0.5 }),
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p := parse(t, tt.doc)
			if diff := cmp.Diff(tt.want, groupsOf(p)); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFlavors(t *testing.T) {
	tests := map[string]struct {
		doc  string
		want map[string]*policies.Flavor
	}{
		"none: the built-in ones": {doc: "reserve = 0.1\n", want: policies.DefaultFlavors()},
		"tables, inline tables and dotted keys": {
			doc: `
[flavors.small]
cores = 1
memory = "2GiB"

[flavors]
"hpc.16x64" = { cores = 16, memory = "64GiB" }
mib = { cores = 2, memory = 3000 }
si.cores = 4
si.memory = "8GB"
`,
			want: map[string]*policies.Flavor{
				"small":     {Name: "small", Cores: 1, MemoryMiB: 2048},
				"hpc.16x64": {Name: "hpc.16x64", Cores: 16, MemoryMiB: 64 << 10},
				"mib":       {Name: "mib", Cores: 2, MemoryMiB: 3000},
				"si":        {Name: "si", Cores: 4, MemoryMiB: 7629}, // 8·10^9 / 2^20, rounded down
			},
		},
		"a table replaces the built-in ones": {
			doc:  "[flavors]\n\"t3.small\" = { cores = 2, memory = \"1GiB\" }\n",
			want: map[string]*policies.Flavor{"t3.small": {Name: "t3.small", Cores: 2, MemoryMiB: 1024}},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p := parse(t, tt.doc)
			if diff := cmp.Diff(tt.want, p.Flavors); diff != "" {
				t.Errorf("Flavors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTopLevel(t *testing.T) {
	p := parse(t, `
name = "sweep"
reserve = 0.25
loan_limit = "2h"
half_life = "14d"
active_window = "1d12h"
patience = "36h"
unknown_groups = "reject"
`)
	want := policies.Default()
	want.Name, want.Reserve, want.LoanLimit, want.HalfLife = "sweep", 0.25, 2*time.Hour, 14*day
	want.ActiveWindow, want.Patience, want.UnknownGroups = 36*time.Hour, 36*time.Hour, policies.UnknownReject
	if diff := cmp.Diff(want, p, allowRoots); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]struct {
		doc      string
		wantLine int
		wantKey  string
		wantMsg  string // a substring of Msg
	}{
		// Syntax, reported by the toml library.
		"syntax error":  {doc: "reserve = 0.1\nreserve =\n", wantLine: 2, wantKey: "reserve", wantMsg: "expected value"},
		"duplicate key": {doc: "[groups.a]\nweight = 1\nweight = 2\n", wantLine: 3, wantKey: "groups.a.weight", wantMsg: "already been defined"},

		// Top-level knobs.
		"reserve above 1":          {doc: "name = \"x\"\nreserve = 1.5\n", wantLine: 2, wantKey: "reserve", wantMsg: "must be in [0,1], got 1.5"},
		"reserve negative":         {doc: "reserve = -0.1\n", wantLine: 1, wantKey: "reserve", wantMsg: "must be in [0,1], got -0.1"},
		"reserve nan":              {doc: "reserve = nan\n", wantLine: 1, wantKey: "reserve", wantMsg: "got NaN"},
		"reserve string":           {doc: "reserve = \"0.1\"\n", wantLine: 1, wantKey: "reserve", wantMsg: `must be a number, got string "0.1"`},
		"loan_limit negative":      {doc: "\nloan_limit = \"-2h\"\n", wantLine: 2, wantKey: "loan_limit", wantMsg: "must be >= 0 (0s = the reserve is never lent), got -2h"},
		"half_life zero":           {doc: "half_life = \"0s\"\n", wantLine: 1, wantKey: "half_life", wantMsg: "must be > 0, got 0s"},
		"half_life negative":       {doc: "half_life = \"-7d\"\n", wantLine: 1, wantKey: "half_life", wantMsg: "must be > 0, got -7d"},
		"active_window negative":   {doc: "active_window = \"-1s\"\n", wantLine: 1, wantKey: "active_window", wantMsg: "must be >= 0, got -1s"},
		"patience negative":        {doc: "patience = \"-1h\"\n", wantLine: 1, wantKey: "patience", wantMsg: "must be >= 0, got -1h"},
		"unknown_groups bad":       {doc: "unknown_groups = \"deny\"\n", wantLine: 1, wantKey: "unknown_groups", wantMsg: `must be "allow" or "reject", got "deny"`},
		"name not a string":        {doc: "name = 3\n", wantLine: 1, wantKey: "name", wantMsg: "must be a string, got integer 3"},
		"duration integer":         {doc: "patience = 3600\n", wantLine: 1, wantKey: "patience", wantMsg: "got integer 3600 (durations need a unit)"},
		"duration bad unit":        {doc: "patience = \"3w\"\n", wantLine: 1, wantKey: "patience", wantMsg: `unknown unit "w"`},
		"duration missing unit":    {doc: "patience = \"36\"\n", wantLine: 1, wantKey: "patience", wantMsg: "missing unit"},
		"duration boolean":         {doc: "patience = true\n", wantLine: 1, wantKey: "patience", wantMsg: "got boolean true"},
		"duration datetime":        {doc: "patience = 2024-01-01T00:00:00Z\n", wantLine: 1, wantKey: "patience", wantMsg: "got datetime"},
		"defaults weight zero":     {doc: "[defaults]\nweight = 0\n", wantLine: 2, wantKey: "defaults.weight", wantMsg: "must be > 0, got 0"},
		"defaults with parent":     {doc: "[groups.a]\n[defaults]\nparent = \"a\"\n", wantLine: 3, wantKey: "defaults.parent", wantMsg: "defaults cannot have a parent"},
		"defaults not a table":     {doc: "defaults = 1\n", wantLine: 1, wantKey: "defaults", wantMsg: "must be a table, got integer 1"},
		"defaults overflow period": {doc: "[defaults.overflow]\nperiod = \"0s\"\n", wantLine: 2, wantKey: "defaults.overflow.period", wantMsg: "must be > 0, got 0s"},

		// Group values.
		"weight negative":          {doc: "[groups.physics]\n\nweight = -1\n", wantLine: 3, wantKey: "groups.physics.weight", wantMsg: "must be > 0, got -1"},
		"weight infinite":          {doc: "[groups.physics]\nweight = inf\n", wantLine: 2, wantKey: "groups.physics.weight", wantMsg: "must be > 0, got +Inf"},
		"weight string":            {doc: "[groups.physics]\nweight = \"2\"\n", wantLine: 2, wantKey: "groups.physics.weight", wantMsg: "must be a number"},
		"max_cores negative":       {doc: "[groups.a]\nmax_cores = -1\n", wantLine: 2, wantKey: "groups.a.max_cores", wantMsg: "must be >= 0 (0 = no limit), got -1"},
		"max_cores float":          {doc: "[groups.a]\nmax_cores = 64.0\n", wantLine: 2, wantKey: "groups.a.max_cores", wantMsg: "must be an integer, got float 64"},
		"max_cores string":         {doc: "[groups.a]\nmax_cores = \"64\"\n", wantLine: 2, wantKey: "groups.a.max_cores", wantMsg: `must be an integer, got string "64"`},
		"max_vms out of range":     {doc: "[groups.a]\nmax_vms = -1\n", wantLine: 2, wantKey: "groups.a.max_vms", wantMsg: "must be >= 0"},
		"max_memory negative":      {doc: "[groups.a]\nmax_memory = -5\n", wantLine: 2, wantKey: "groups.a.max_memory", wantMsg: "must be >= 0 (0 = no limit), got -5MiB"},
		"max_memory bad unit":      {doc: "[groups.a]\nmax_memory = \"12XB\"\n", wantLine: 2, wantKey: "groups.a.max_memory", wantMsg: `invalid size "12XB"`},
		"max_memory no unit":       {doc: "[groups.a]\nmax_memory = \"4096\"\n", wantLine: 2, wantKey: "groups.a.max_memory", wantMsg: "missing unit"},
		"max_memory below 1MiB":    {doc: "[groups.a]\nmax_memory = \"512KiB\"\n", wantLine: 2, wantKey: "groups.a.max_memory", wantMsg: "less than 1MiB"},
		"max_memory float":         {doc: "[groups.a]\nmax_memory = 1.5\n", wantLine: 2, wantKey: "groups.a.max_memory", wantMsg: "got float 1.5"},
		"max_lease negative":       {doc: "[groups.a]\nmax_lease = \"-1h\"\n", wantLine: 2, wantKey: "groups.a.max_lease", wantMsg: "must be >= 0 (0s = no limit), got -1h"},
		"max_lease bad unit":       {doc: "[groups.a]\nmax_lease = \"1y\"\n", wantLine: 2, wantKey: "groups.a.max_lease", wantMsg: `unknown unit "y"`},
		"sites empty string":       {doc: "[groups.a.overflow]\nsites = [\"ec2\", \"\"]\n", wantLine: 2, wantKey: "groups.a.overflow.sites", wantMsg: "site 2 is empty"},
		"sites duplicate":          {doc: "[groups.a.overflow]\nsites = [\"ec2\", \"ec2\"]\n", wantLine: 2, wantKey: "groups.a.overflow.sites", wantMsg: `lists "ec2" twice`},
		"sites not strings":        {doc: "[groups.a.overflow]\nsites = [\n  \"ec2\",\n  3,\n]\n", wantLine: 2, wantKey: "groups.a.overflow.sites", wantMsg: "element 2 must be a string, got integer 3"},
		"sites not an array":       {doc: "[groups.a.overflow]\nsites = \"ec2\"\n", wantLine: 2, wantKey: "groups.a.overflow.sites", wantMsg: `must be an array of strings, got string "ec2"`},
		"budget below -1":          {doc: "[groups.a.overflow]\nbudget_core_hours = -2\n", wantLine: 2, wantKey: "groups.a.overflow.budget_core_hours", wantMsg: "must be -1 (unlimited), 0 (none) or more, got -2"},
		"period zero":              {doc: "[groups.a]\noverflow = { period = \"0s\" }\n", wantLine: 2, wantKey: "groups.a.overflow.period", wantMsg: "must be > 0"},
		"group not a table":        {doc: "[groups]\na = 1\n", wantLine: 2, wantKey: "groups.a", wantMsg: "must be a table, got integer 1"},
		"groups not a table":       {doc: "groups = [1, 2]\n", wantLine: 1, wantKey: "groups", wantMsg: "must be a table, got array"},
		"groups as array of table": {doc: "[[groups]]\nname = \"a\"\n", wantLine: 1, wantKey: "groups", wantMsg: "must be a table, got array of tables"},
		"overflow not a table":     {doc: "[groups.a]\noverflow = [\"ec2\"]\n", wantLine: 2, wantKey: "groups.a.overflow", wantMsg: "must be a table, got array"},
		"empty group name":         {doc: "[groups.\"\"]\n", wantLine: 1, wantKey: `groups.""`, wantMsg: "must not be empty"},

		// Flavors.
		"flavor cores zero":      {doc: "[flavors]\n\"t3.small\" = { cores = 0, memory = \"2GiB\" }\n", wantLine: 2, wantKey: `flavors."t3.small".cores`, wantMsg: "missing: every flavor needs cores"},
		"flavor cores negative":  {doc: "[flavors.a]\ncores = -2\nmemory = 512\n", wantLine: 2, wantKey: "flavors.a.cores", wantMsg: "must be in 1..4096, got -2"},
		"flavor cores too many":  {doc: "[flavors.a]\nmemory = 512\ncores = 5000\n", wantLine: 3, wantKey: "flavors.a.cores", wantMsg: "must be in 1..4096, got 5000"},
		"flavor cores string":    {doc: "[flavors]\na = { cores = \"2\", memory = 512 }\n", wantLine: 2, wantKey: "flavors.a.cores", wantMsg: `must be an integer, got string "2"`},
		"flavor cores missing":   {doc: "name = \"x\"\n\n[flavors]\nsmall = { memory = \"2GiB\" }\n", wantLine: 4, wantKey: "flavors.small.cores", wantMsg: "missing: every flavor needs cores"},
		"flavor memory missing":  {doc: "[flavors.small]\ncores = 1\n", wantLine: 1, wantKey: "flavors.small.memory", wantMsg: "missing: every flavor needs memory"},
		"flavor memory no unit":  {doc: "[flavors]\nsmall = { cores = 1, memory = \"2048\" }\n", wantLine: 2, wantKey: "flavors.small.memory", wantMsg: "missing unit"},
		"flavor memory bad unit": {doc: "[flavors]\nsmall = { cores = 1, memory = \"2GB!\" }\n", wantLine: 2, wantKey: "flavors.small.memory", wantMsg: `invalid size "2GB!"`},
		"flavor memory too much": {doc: "[flavors]\nbig = { cores = 1, memory = \"65TiB\" }\n", wantLine: 2, wantKey: "flavors.big.memory", wantMsg: "must be in 1MiB..64TiB"},
		"flavor memory negative": {doc: "[flavors]\nbig = { cores = 1, memory = -1 }\n", wantLine: 2, wantKey: "flavors.big.memory", wantMsg: "must be in 1MiB..64TiB, got -1MiB"},
		"flavor unknown key":     {doc: "[flavors]\nsmall = { cores = 1, memory = 512, cpus = 2 }\n", wantLine: 2, wantKey: "flavors.small.cpus", wantMsg: "unknown key (known keys: cores, memory)"},
		"flavor misspelt key":    {doc: "[flavors.small]\ncores = 1\nmemroy = 512\n", wantLine: 3, wantKey: "flavors.small.memroy", wantMsg: "did you mean memory?"},
		"flavor not a table":     {doc: "[flavors]\nsmall = \"1c2g\"\n", wantLine: 2, wantKey: "flavors.small", wantMsg: `must be a table, got string "1c2g"`},
		"flavors not a table":    {doc: "flavors = [\"t3.small\"]\n", wantLine: 1, wantKey: "flavors", wantMsg: "must be a table, got array"},
		"flavors empty":          {doc: "reserve = 0\nflavors = {}\n", wantLine: 2, wantKey: "flavors", wantMsg: "is empty"},
		"flavor name with space": {doc: "[flavors]\n\"t3 small\" = { cores = 1, memory = 512 }\n", wantLine: 2, wantKey: `flavors."t3 small"`, wantMsg: "use letters, digits"},
		"flavor name empty":      {doc: "[flavors]\n\"\" = { cores = 1, memory = 512 }\n", wantLine: 2, wantKey: `flavors.""`, wantMsg: "must have 1 to 64 characters"},
		"second flavor bad": {
			doc:      "[flavors]\n\"t3.small\" = { cores = 1, memory = \"2GiB\" }\n\"hpc.16x64\" = { cores = 16 }\n",
			wantLine: 3, wantKey: `flavors."hpc.16x64".memory`, wantMsg: "missing",
		},

		// Unknown keys.
		"unknown key at top level": {doc: "reserve = 0.1\nreserv = 0.2\n", wantLine: 2, wantKey: "reserv", wantMsg: "unknown key (did you mean reserve? known keys: name, reserve,"},
		"unknown table":            {doc: "\n[sites.ec2]\nregion = \"x\"\n", wantLine: 2, wantKey: "sites", wantMsg: "unknown key (known keys: name,"},
		"unknown key in a group":   {doc: "[groups.physics]\nweight = 1\nwieght = 2\n", wantLine: 3, wantKey: "groups.physics.wieght", wantMsg: "unknown key (did you mean weight? known keys: parent, weight, max_cores"},
		"unknown key in defaults":  {doc: "[defaults]\nmax_leases = \"1h\"\n", wantLine: 2, wantKey: "defaults.max_leases", wantMsg: "did you mean max_lease?"},
		"unknown key in overflow":  {doc: "[groups.a.overflow]\nsites = []\nbudget = 5\n", wantLine: 3, wantKey: "groups.a.overflow.budget", wantMsg: "known keys: sites, budget_core_hours, period"},
		"unknown sub-table of overflow": {
			doc: "[groups.a]\n[groups.a.overflow.ec2]\nx = 1\n", wantLine: 2, wantKey: "groups.a.overflow.ec2", wantMsg: "unknown key",
		},
		"unknown key in an inline table": {
			doc: "[groups]\nphysics = { weight = 1, foo = 2 }\n", wantLine: 2, wantKey: "groups.physics.foo", wantMsg: "unknown key",
		},
		"unknown key in a nested inline table": {
			doc: "[groups]\nphysics = { overflow = { sites = [\"ec2\"], budgt = 2 } }\n", wantLine: 2, wantKey: "groups.physics.overflow.budgt", wantMsg: "unknown key",
		},
		"unknown key in a multi-line inline table": {
			doc: "[groups]\nphysics = {\n  weight = 1,\n  foo = 2\n}\n", wantLine: 4, wantKey: "groups.physics.foo", wantMsg: "unknown key",
		},
		"unknown dotted key": {
			doc: "reserve = 0.1\ngroups.physics.overflow.site = \"ec2\"\n", wantLine: 2, wantKey: "groups.physics.overflow.site", wantMsg: "did you mean sites?",
		},
		"unknown dotted table at top level": {
			doc: "\n\nfoo.bar.baz = 1\n", wantLine: 3, wantKey: "foo", wantMsg: "unknown key",
		},

		// The tree.
		"missing parent": {doc: "[groups.a]\n[groups.b]\nparent = \"sciense\"\n", wantLine: 3, wantKey: "groups.b.parent", wantMsg: `no group "sciense" is defined (groups: a, b)`},
		"parent is self": {doc: "[groups.a]\nparent = \"a\"\n", wantLine: 2, wantKey: "groups.a.parent", wantMsg: "makes a cycle: a → a"},
		"two-group cycle": {
			doc:      "[groups.b]\nparent = \"a\"\n\n[groups.a]\nparent = \"b\"\n",
			wantLine: 2, wantKey: "groups.b.parent", wantMsg: `parent "a" makes a cycle: b → a → b`,
		},
		"three-group cycle below a root": {
			doc:      "[groups.root]\n[groups.z]\nparent = \"x\"\n[groups.x]\nparent = \"y\"\n[groups.y]\nparent = \"z\"\n[groups.leaf]\nparent = \"z\"\n",
			wantLine: 3, wantKey: "groups.z.parent", wantMsg: "makes a cycle: z → x → y → z",
		},

		// Which problem is reported.
		"first problem in the file, not in key order": {
			doc:      "[groups.z]\nweight = 0\n[groups.a]\nmax_cores = -1\n",
			wantLine: 2, wantKey: "groups.z.weight", wantMsg: "must be > 0",
		},
		"inherited bad value reported where it is written": {
			doc:      "[groups.c]\nparent = \"p\"\n[groups.a]\nparent = \"c\"\n[groups.p]\nmax_lease = \"-1h\"\n",
			wantLine: 6, wantKey: "groups.p.max_lease", wantMsg: "must be >= 0",
		},
		"bad default reported in defaults": {
			doc:      "[groups.a]\n[groups.b]\n[defaults]\nmax_vms = -3\n",
			wantLine: 4, wantKey: "defaults.max_vms", wantMsg: "got -3",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := policies.Parse("site.toml", strings.NewReader(tt.doc))
			if p != nil {
				t.Errorf("Parse: got a policy, want nil")
			}
			var le *policies.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Parse: got error %v (%T), want a *LoadError", err, err)
			}
			got := struct {
				File string
				Line int
				Key  string
			}{le.File, le.Line, le.Key}
			want := got
			want.File, want.Line, want.Key = "site.toml", tt.wantLine, tt.wantKey
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Parse: %v\nlocation (-want +got):\n%s", err, diff)
			}
			if !strings.Contains(le.Msg, tt.wantMsg) {
				t.Errorf("Parse: got message %q, want one containing %q", le.Msg, tt.wantMsg)
			}
		})
	}
}

func TestLoadErrorFormat(t *testing.T) {
	tests := map[string]struct {
		err  policies.LoadError
		want string
	}{
		"file, line and key": {
			err:  policies.LoadError{File: "site.toml", Line: 9, Key: "groups.physics.weight", Msg: "must be > 0, got -1"},
			want: "site.toml:9: groups.physics.weight: must be > 0, got -1",
		},
		"no line":       {err: policies.LoadError{File: "site.toml", Msg: "open: no such file"}, want: "site.toml: open: no such file"},
		"built in code": {err: policies.LoadError{Key: "reserve", Msg: "must be in [0,1], got 2"}, want: "reserve: must be in [0,1], got 2"},
		"line only":     {err: policies.LoadError{Line: 3, Msg: "bad"}, want: "line 3: bad"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "site.toml")
	if err := os.WriteFile(path, []byte("reserve = 0.3\n[groups.a]\nweight = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := policies.Load(path)
	if err != nil {
		t.Fatalf("Load: got %v, want no error", err)
	}
	if p.Reserve != 0.3 || p.Groups["a"].Weight != 2 {
		t.Errorf("Load: got reserve %v, weight %v; want 0.3, 2", p.Reserve, p.Groups["a"].Weight)
	}

	if err := os.WriteFile(path, []byte("\n[groups.a]\nweight = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = policies.Load(path)
	if want := path + ":3: groups.a.weight: must be > 0, got 0"; err == nil || err.Error() != want {
		t.Errorf("Load: got error %v, want %q", err, want)
	}

	missing := filepath.Join(dir, "missing.toml")
	_, err = policies.Load(missing)
	var le *policies.LoadError
	if !errors.As(err, &le) || le.File != missing || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing): got %v, want a *LoadError naming the file that wraps fs.ErrNotExist", err)
	}
}
