package policies_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// tree builds a policy in code: science{physics, biology}, teaching.
func tree() *policies.Policy {
	p := policies.Default()
	p.Groups = map[lease.GroupID]*policies.Group{
		"science":  {Weight: 2},
		"physics":  {Parent: "science", Weight: 1, Overflow: policies.Overflow{Sites: []string{"ec2"}, BudgetCoreHours: 5, Period: time.Hour}},
		"biology":  {Parent: "science", Weight: 1, Overflow: policies.Overflow{Period: time.Hour}},
		"teaching": {Weight: 0.5, Overflow: policies.Overflow{Period: time.Hour}},
	}
	p.Groups["science"].Overflow.Period = time.Hour
	return p
}

func TestValidateInCode(t *testing.T) {
	p := tree()
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate: got %v, want nil", err)
	}
	if diff := cmp.Diff([]lease.GroupID{"science", "teaching"}, p.Roots()); diff != "" {
		t.Errorf("Roots (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]lease.GroupID{"biology", "physics"}, p.Groups["science"].Children); diff != "" {
		t.Errorf("science.Children (-want +got):\n%s", diff)
	}
	if got := p.Groups["physics"].Name; got != "physics" {
		t.Errorf("physics.Name = %q, want %q", got, "physics")
	}
}

func TestValidateErrors(t *testing.T) {
	tests := map[string]struct {
		edit func(p *policies.Policy)
		want string // the whole error: a Policy built in code has no file or line
	}{
		"reserve":          {func(p *policies.Policy) { p.Reserve = 2 }, "reserve: must be in [0,1], got 2"},
		"reserve NaN":      {func(p *policies.Policy) { p.Reserve = math.NaN() }, "reserve: must be in [0,1], got NaN"},
		"loan limit":       {func(p *policies.Policy) { p.LoanLimit = -time.Hour }, "loan_limit: must be >= 0 (0s = the reserve is never lent), got -1h"},
		"half-life":        {func(p *policies.Policy) { p.HalfLife = 0 }, "half_life: must be > 0, got 0s"},
		"active window":    {func(p *policies.Policy) { p.ActiveWindow = -time.Minute }, "active_window: must be >= 0, got -1m"},
		"patience":         {func(p *policies.Policy) { p.Patience = -day }, "patience: must be >= 0, got -1d"},
		"unknown groups":   {func(p *policies.Policy) { p.UnknownGroups = "" }, `unknown_groups: must be "allow" or "reject", got ""`},
		"defaults weight":  {func(p *policies.Policy) { p.Defaults.Weight = 0 }, "defaults.weight: must be > 0, got 0"},
		"defaults parent":  {func(p *policies.Policy) { p.Defaults.Parent = "science" }, `defaults.parent: defaults cannot have a parent, got "science"`},
		"group weight":     {func(p *policies.Policy) { p.Groups["physics"].Weight = -1 }, "groups.physics.weight: must be > 0, got -1"},
		"group zero value": {func(p *policies.Policy) { p.Groups["new"] = &policies.Group{} }, "groups.new.weight: must be > 0, got 0"},
		"nil group":        {func(p *policies.Policy) { p.Groups["new"] = nil }, "groups.new: group is nil"},
		"name mismatch":    {func(p *policies.Policy) { p.Groups["physics"].Name = "chemistry" }, `groups.physics: Name "chemistry" differs from the group's key`},
		"empty name": {func(p *policies.Policy) {
			p.Groups[""] = &policies.Group{Weight: 1, Overflow: policies.Overflow{Period: 1}}
		}, `groups."": group name must not be empty`},
		"control in name": {func(p *policies.Policy) {
			p.Groups["a\nb"] = &policies.Group{Weight: 1, Overflow: policies.Overflow{Period: 1}}
		}, `groups."a\nb": group name must not contain control characters`},
		"missing parent": {func(p *policies.Policy) { p.Groups["physics"].Parent = "sciense" }, `groups.physics.parent: no group "sciense" is defined (groups: biology, physics, science, teaching)`},
		"cycle": {
			func(p *policies.Policy) { p.Groups["science"].Parent = "physics" },
			`groups.physics.parent: parent "science" makes a cycle: physics → science → physics`,
		},
		"max cores":  {func(p *policies.Policy) { p.Groups["physics"].Quota.MaxCores = -1 }, "groups.physics.max_cores: must be >= 0 (0 = no limit), got -1"},
		"max memory": {func(p *policies.Policy) { p.Groups["physics"].Quota.MaxMemoryMiB = -1 }, "groups.physics.max_memory: must be >= 0 (0 = no limit), got -1MiB"},
		"max lease":  {func(p *policies.Policy) { p.Groups["physics"].Quota.MaxLease = -1 }, "groups.physics.max_lease: must be >= 0 (0s = no limit), got -1ns"},
		"max vms":    {func(p *policies.Policy) { p.Groups["physics"].Quota.MaxVMs = -1 }, "groups.physics.max_vms: must be >= 0 (0 = no limit), got -1"},
		"empty site": {func(p *policies.Policy) { p.Groups["physics"].Overflow.Sites = []string{" "} }, "groups.physics.overflow.sites: site 1 is empty"},
		"budget":     {func(p *policies.Policy) { p.Groups["physics"].Overflow.BudgetCoreHours = math.Inf(1) }, "groups.physics.overflow.budget_core_hours: must be -1 (unlimited), 0 (none) or more, got +Inf"},
		"period":     {func(p *policies.Policy) { p.Groups["physics"].Overflow.Period = 0 }, "groups.physics.overflow.period: must be > 0, got 0s"},
		"empty flavors": {func(p *policies.Policy) { p.Flavors = map[string]*policies.Flavor{} },
			"flavors: is empty: list at least one flavor, or leave the table out to offer the built-in ones"},
		"nil flavor":       {func(p *policies.Policy) { p.Flavors["x1"] = nil }, "flavors.x1: flavor is nil"},
		"flavor no cores":  {func(p *policies.Policy) { p.Flavors["x1"] = &policies.Flavor{MemoryMiB: 1} }, "flavors.x1.cores: missing: every flavor needs cores = N, N > 0"},
		"flavor no memory": {func(p *policies.Policy) { p.Flavors["x1"] = &policies.Flavor{Cores: 1} }, `flavors.x1.memory: missing: every flavor needs memory, a size like "4GiB" or an integer number of MiB`},
		"flavor name mismatch": {func(p *policies.Policy) { p.Flavors["t3.small"].Name = "t3.big" },
			`flavors."t3.small": Name "t3.big" differs from the flavor's key`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p := tree()
			tt.edit(p)
			err := p.Validate()
			var le *policies.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Validate: got %v, want a *LoadError", err)
			}
			if le.Line != 0 || le.File != "" {
				t.Errorf("Validate: got file %q line %d, want neither", le.File, le.Line)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Validate:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestGroupAndPath(t *testing.T) {
	p := tree()
	p.Defaults.Quota.MaxVMs = 7
	p.Defaults.Overflow.Sites = []string{"ec2"}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		unknown   string
		id        lease.GroupID
		wantOK    bool
		wantGroup *policies.Group
		wantPath  []lease.GroupID
	}{
		"configured leaf":   {unknown: policies.UnknownReject, id: "physics", wantOK: true, wantGroup: p.Groups["physics"], wantPath: []lease.GroupID{"science", "physics"}},
		"configured root":   {unknown: policies.UnknownAllow, id: "teaching", wantOK: true, wantGroup: p.Groups["teaching"], wantPath: []lease.GroupID{"teaching"}},
		"unknown, rejected": {unknown: policies.UnknownReject, id: "chemistry"},
		"unknown, allowed": {
			unknown: policies.UnknownAllow, id: "chemistry", wantOK: true,
			wantGroup: &policies.Group{Name: "chemistry", Weight: 1, Quota: policies.Quota{MaxVMs: 7}, Overflow: policies.Overflow{Sites: []string{"ec2"}, Period: 30 * day}},
			wantPath:  []lease.GroupID{"chemistry"},
		},
		"empty id": {unknown: policies.UnknownAllow, id: ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p.UnknownGroups = tt.unknown
			g, ok := p.Group(tt.id)
			if ok != tt.wantOK {
				t.Fatalf("Group(%q): got ok %v, want %v", tt.id, ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.wantGroup, g); diff != "" {
				t.Errorf("Group(%q) (-want +got):\n%s", tt.id, diff)
			}
			if diff := cmp.Diff(tt.wantPath, p.Path(tt.id)); diff != "" {
				t.Errorf("Path(%q) (-want +got):\n%s", tt.id, diff)
			}
		})
	}

	// A group built from the defaults is a copy.
	p.UnknownGroups = policies.UnknownAllow
	g, _ := p.Group("chemistry")
	g.Overflow.Sites[0] = "changed"
	if got := p.Defaults.Overflow.Sites[0]; got != "ec2" {
		t.Errorf("after changing an unknown group: defaults sites[0] = %q, want %q", got, "ec2")
	}
}

func TestPathOfUnvalidatedCycle(t *testing.T) {
	p := tree()
	p.Groups["science"].Parent = "physics"
	if got := len(p.Path("physics")); got > len(p.Groups)+1 {
		t.Errorf("Path on a cycle: got %d entries, want at most %d", got, len(p.Groups)+1)
	}
}

func TestClone(t *testing.T) {
	p, err := policies.LoadFS(policies.Examples, "small-site.toml")
	if err != nil {
		t.Fatal(err)
	}
	c := p.Clone()
	if diff := cmp.Diff(p, c, allowRoots); diff != "" {
		t.Fatalf("Clone (-orig +clone):\n%s", diff)
	}
	want := p.Clone()

	c.Reserve = 0.9
	c.Defaults.Overflow.Sites = append(c.Defaults.Overflow.Sites, "x")
	c.Groups["physics"].Overflow.Sites[0] = "changed"
	c.Groups["physics"].Weight = 9
	c.Groups["science"].Children[0] = "changed"
	c.Groups["new"] = &policies.Group{}
	c.Roots()[0] = "changed"
	c.Flavors["t3.small"].Cores = 99
	c.Flavors["new"] = &policies.Flavor{Cores: 1, MemoryMiB: 1}
	if diff := cmp.Diff(want, p, allowRoots); diff != "" {
		t.Errorf("changing the clone changed the original (-want +got):\n%s", diff)
	}
	if (*policies.Policy)(nil).Clone() != nil {
		t.Errorf("nil.Clone(): got non-nil, want nil")
	}
}

func TestKnobs(t *testing.T) {
	want := []string{"name", "reserve", "reserve_arrivals", "loan_limit", "aging", "promise_horizon", "half_life", "active_window", "activity", "patience", "unknown_groups"}
	if diff := cmp.Diff(want, policies.Knobs()); diff != "" {
		t.Errorf("Knobs (-want +got):\n%s", diff)
	}
}

func TestSet(t *testing.T) {
	tests := map[string]struct {
		key, value string
		edit       func(p *policies.Policy) // the expected change to Default()
	}{
		"reserve":                 {"reserve", "0.2", func(p *policies.Policy) { p.Reserve = 0.2 }},
		"reserve zero":            {"reserve", "0", func(p *policies.Policy) { p.Reserve = 0 }},
		"reserve one":             {"reserve", "1", func(p *policies.Policy) { p.Reserve = 1 }},
		"loan_limit unquoted":     {"loan_limit", "2h", func(p *policies.Policy) { p.LoanLimit = 2 * time.Hour }},
		"loan_limit quoted":       {"loan_limit", `"2h"`, func(p *policies.Policy) { p.LoanLimit = 2 * time.Hour }},
		"loan_limit zero":         {"loan_limit", "0", func(p *policies.Policy) { p.LoanLimit = 0 }},
		"half_life days":          {"half_life", "14d", func(p *policies.Policy) { p.HalfLife = 14 * day }},
		"half_life mixed":         {"half_life", "1d12h", func(p *policies.Policy) { p.HalfLife = 36 * time.Hour }},
		"active_window":           {"active_window", "30m", func(p *policies.Policy) { p.ActiveWindow = 30 * time.Minute }},
		"patience":                {"patience", "36h", func(p *policies.Policy) { p.Patience = 36 * time.Hour }},
		"unknown_groups":          {"unknown_groups", "reject", func(p *policies.Policy) { p.UnknownGroups = policies.UnknownReject }},
		"unknown_groups quoted":   {"unknown_groups", `"reject"`, func(p *policies.Policy) { p.UnknownGroups = policies.UnknownReject }},
		"name":                    {"name", "sweep reserve=0.2", func(p *policies.Policy) { p.Name = "sweep reserve=0.2" }},
		"name that reads as bool": {"name", "true", func(p *policies.Policy) { p.Name = "true" }},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p := policies.Default()
			if err := policies.Set(p, tt.key, tt.value); err != nil {
				t.Fatalf("Set(%s, %q): got %v, want nil", tt.key, tt.value, err)
			}
			want := policies.Default()
			tt.edit(want)
			if diff := cmp.Diff(want, p, allowRoots); diff != "" {
				t.Errorf("Set(%s, %q) (-want +got):\n%s", tt.key, tt.value, diff)
			}
		})
	}
}

func TestSetErrors(t *testing.T) {
	tests := map[string]struct {
		key, value string
		want       string
	}{
		"reserve too large":    {"reserve", "2", "reserve: must be in [0,1], got 2"},
		"reserve negative":     {"reserve", "-0.1", "reserve: must be in [0,1], got -0.1"},
		"reserve not a number": {"reserve", "abc", `reserve: must be a number, got string "abc"`},
		"reserve empty":        {"reserve", "", `reserve: must be a number, got string ""`},
		"half_life zero":       {"half_life", "0", "half_life: must be > 0, got 0s"},
		"half_life no unit":    {"half_life", "5", "half_life: must be a duration like \"36h\" or \"7d\", got integer 5 (durations need a unit)"},
		"loan_limit negative":  {"loan_limit", "-1h", "loan_limit: must be >= 0 (0s = the reserve is never lent), got -1h"},
		"loan_limit bad unit":  {"loan_limit", "2y", `loan_limit: invalid duration "2y": unknown unit "y" (use ns, us, ms, s, m, h or d)`},
		"patience bool":        {"patience", "false", "patience: must be a duration like \"36h\" or \"7d\", got boolean false"},
		"active_window float":  {"active_window", "1.5", "active_window: must be a duration like \"36h\" or \"7d\", got float 1.5"},
		"unknown_groups":       {"unknown_groups", "maybe", `unknown_groups: must be "allow" or "reject", got "maybe"`},
		"a second key":         {"reserve", "0.2\nhalf_life = \"1h\"", `reserve: must be a number, got string "0.2\nhalf_life = \"1h\""`},
		"invalid UTF-8":        {"name", "\xff", `name: cannot read "\xff" as a value`},
		"unknown knob":         {"resrve", "0.2", "resrve: unknown knob (known knobs: name, reserve, reserve_arrivals, loan_limit, aging, promise_horizon, half_life, active_window, activity, patience, unknown_groups)"},
		"a table is no knob":   {"groups", "{}", "groups: unknown knob (known knobs: name, reserve, reserve_arrivals, loan_limit, aging, promise_horizon, half_life, active_window, activity, patience, unknown_groups)"},
		"defaults is no knob":  {"defaults", "{ weight = 2 }", "defaults: unknown knob (known knobs: name, reserve, reserve_arrivals, loan_limit, aging, promise_horizon, half_life, active_window, activity, patience, unknown_groups)"},
		"a group key is none":  {"weight", "2", "weight: unknown knob (known knobs: name, reserve, reserve_arrivals, loan_limit, aging, promise_horizon, half_life, active_window, activity, patience, unknown_groups)"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p := policies.Default()
			err := policies.Set(p, tt.key, tt.value)
			var le *policies.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Set(%s, %q): got %v, want a *LoadError", tt.key, tt.value, err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Set(%s, %q):\n got %s\nwant %s", tt.key, tt.value, got, tt.want)
			}
			if diff := cmp.Diff(policies.Default(), p, allowRoots); diff != "" {
				t.Errorf("Set failed but changed the policy (-want +got):\n%s", diff)
			}
		})
	}
}

// Set keeps pointers to groups valid: it changes one field, not the policy.
func TestSetKeepsGroups(t *testing.T) {
	p, err := policies.LoadFS(policies.Examples, "small-site.toml")
	if err != nil {
		t.Fatal(err)
	}
	physics := p.Groups["physics"]
	if err := policies.Set(p, "reserve", "0.3"); err != nil {
		t.Fatal(err)
	}
	if p.Groups["physics"] != physics || p.Reserve != 0.3 {
		t.Errorf("Set: got group pointer changed %v, reserve %v; want unchanged, 0.3", p.Groups["physics"] != physics, p.Reserve)
	}
}

func TestParseDuration(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		"go duration":       {in: "36h", want: 36 * time.Hour},
		"minutes":           {in: "1h30m", want: 90 * time.Minute},
		"days":              {in: "7d", want: 7 * day},
		"days and hours":    {in: "1d12h", want: 36 * time.Hour},
		"hours then days":   {in: "12h1d", want: 36 * time.Hour},
		"fractional days":   {in: "1.5d", want: 36 * time.Hour},
		"zero":              {in: "0", want: 0},
		"zero seconds":      {in: "0s", want: 0},
		"negative":          {in: "-2d", want: -2 * day},
		"plus sign":         {in: "+1d", want: day},
		"microseconds":      {in: "3µs", want: 3 * time.Microsecond},
		"empty":             {in: "", wantErr: `invalid duration ""`},
		"no unit":           {in: "36", wantErr: "missing unit"},
		"bad unit":          {in: "3w", wantErr: `unknown unit "w"`},
		"bad unit after d":  {in: "1d2x", wantErr: `unknown unit "x"`},
		"unit only":         {in: "d", wantErr: "want a number and a unit"},
		"double sign":       {in: "--1d", wantErr: "want a number and a unit"},
		"bad number":        {in: "1.2.3h", wantErr: `invalid duration "1.2.3h"`},
		"overflowing days":  {in: "1000000000d", wantErr: `invalid duration "1000000000d"`},
		"overflowing total": {in: "100000d100000d", wantErr: "out of range"},
		"space":             {in: "1d 2h", wantErr: `unknown unit "d "`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := policies.ParseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseDuration(%q): got %v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseDuration(%q): got %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := map[time.Duration]string{
		0:                                     "0s",
		7 * day:                               "7d",
		36 * time.Hour:                        "1d12h",
		90 * time.Minute:                      "1h30m",
		time.Hour:                             "1h",
		time.Minute:                           "1m",
		1500 * time.Millisecond:               "1.5s",
		-2 * day:                              "-2d",
		day + time.Second:                     "1d1s",
		day + time.Hour + time.Second:         "1d1h0m1s",
		math.MinInt64:                         time.Duration(math.MinInt64).String(),
		30*day + 10*time.Hour + 5*time.Minute: "30d10h5m",
	}
	for d, want := range tests {
		if got := policies.FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%d) = %q, want %q", int64(d), got, want)
		}
		if d == math.MinInt64 {
			continue
		}
		if back, err := policies.ParseDuration(want); err != nil || back != d {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v; want %v", d, back, err, d)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    int64
		wantErr string
	}{
		"GiB":             {in: "512GiB", want: 512 << 10},
		"MiB":             {in: "4096MiB", want: 4096},
		"TB rounds down":  {in: "1TB", want: 953674},
		"TiB":             {in: "1TiB", want: 1 << 20},
		"lower case":      {in: "2gib", want: 2048},
		"space":           {in: "2 GiB", want: 2048},
		"fraction":        {in: "1.5GiB", want: 1536},
		"short SI":        {in: "1G", want: 953},
		"zero":            {in: "0MiB", want: 0},
		"no unit":         {in: "4096", wantErr: "missing unit"},
		"empty":           {in: "", wantErr: "missing unit"},
		"bad unit":        {in: "12XB", wantErr: `invalid size "12XB"`},
		"negative":        {in: "-1GiB", wantErr: `invalid size "-1GiB"`},
		"comma":           {in: "1,5GiB", wantErr: "decimals with a dot"},
		"below 1MiB":      {in: "512KiB", wantErr: "less than 1MiB"},
		"out of range":    {in: "100000000000000000QB", wantErr: "out of range"},
		"unit only":       {in: "GiB", wantErr: `invalid size "GiB"`},
		"non-ascii digit": {in: "٣GiB", wantErr: "invalid size"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := policies.ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseSize(%q): got %v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseSize(%q): got %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFlavors(t *testing.T) {
	tests := map[string]struct {
		policy   *policies.Policy
		wantList []string // names, smallest first
		wantGet  map[string]policies.Flavor
	}{
		"built in": {
			policy:   policies.Default(),
			wantList: []string{"t3.nano", "t3.micro", "t3.small", "c5.large", "t3.medium", "m5.large", "t3.large", "c5.xlarge", "m5.xlarge", "c5.2xlarge", "m5.2xlarge"},
			wantGet:  map[string]policies.Flavor{"t3.small": {Name: "t3.small", Cores: 1, MemoryMiB: 2048}, "hpc.16x64": {}},
		},
		"none offers the built-in ones": {
			policy:   &policies.Policy{},
			wantList: []string{"t3.nano", "t3.micro", "t3.small", "c5.large", "t3.medium", "m5.large", "t3.large", "c5.xlarge", "m5.xlarge", "c5.2xlarge", "m5.2xlarge"},
			wantGet:  map[string]policies.Flavor{"m5.large": {Name: "m5.large", Cores: 2, MemoryMiB: 8192}},
		},
		"nil policy": {
			policy:   nil,
			wantList: []string{"t3.nano", "t3.micro", "t3.small", "c5.large", "t3.medium", "m5.large", "t3.large", "c5.xlarge", "m5.xlarge", "c5.2xlarge", "m5.2xlarge"},
		},
		"own table": {
			policy: &policies.Policy{Flavors: map[string]*policies.Flavor{
				"hpc.16x64": {Cores: 16, MemoryMiB: 64 << 10},
				"b":         {Cores: 1, MemoryMiB: 2048},
				"a":         {Cores: 1, MemoryMiB: 2048},
				"tiny":      {Cores: 1, MemoryMiB: 512},
			}},
			wantList: []string{"tiny", "a", "b", "hpc.16x64"},
			wantGet: map[string]policies.Flavor{
				"hpc.16x64": {Name: "hpc.16x64", Cores: 16, MemoryMiB: 64 << 10},
				"t3.small":  {}, // the table replaces the built-in ones
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, f := range tt.policy.FlavorList() {
				got = append(got, f.Name)
			}
			if diff := cmp.Diff(tt.wantList, got); diff != "" {
				t.Errorf("FlavorList names (-want +got):\n%s", diff)
			}
			for n, want := range tt.wantGet {
				got, ok := tt.policy.Flavor(n)
				if ok != (want != policies.Flavor{}) {
					t.Errorf("Flavor(%q): ok = %v, want %v", n, ok, !ok)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("Flavor(%q) (-want +got):\n%s", n, diff)
				}
			}
		})
	}
}
