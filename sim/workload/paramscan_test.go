package workload

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/fairlease/fairlease/sim/trace"
)

// tb is what both *testing.T and *rapid.T offer.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

// checkInvariants is what the simulator relies on from every generated trace.
func checkInvariants(t tb, p ParamScan, seed int64, tr *trace.Trace) {
	t.Helper()
	gotSite := [4]any{tr.Format, tr.Hosts, tr.CoresPerHost, tr.MemoryMiBPerHost}
	wantSite := [4]any{Format, p.Hosts, p.CoresPerHost, p.MemoryMiBPerHost}
	if gotSite != wantSite {
		t.Fatalf("format and site: got %v, want %v", gotSite, wantSite)
	}
	if want := p.Name + "-seed" + strconv.FormatInt(seed, 10); tr.Name != want {
		t.Fatalf("Name: got %q, want %q", tr.Name, want)
	}
	if !strings.Contains(tr.Notice, "Synthetic") {
		t.Fatalf("Notice: got %q, want it to say the trace is synthetic", tr.Notice)
	}
	if tr.Stats.Records != len(tr.Jobs) || tr.Stats.Skipped == nil {
		t.Fatalf("Stats: got %+v, want Records = %d and a Skipped map", tr.Stats, len(tr.Jobs))
	}
	ids := make(map[string]bool, len(tr.Jobs))
	for i, j := range tr.Jobs {
		if j.VMs < 1 || j.Cores < 1 || j.Cores > p.CoresPerHost || j.Runtime <= 0 || j.Requested < j.Runtime ||
			j.Submit < 0 || j.Submit > p.Span || j.MemoryMiB != int64(j.Cores)*p.MemoryMiBPerCore {
			t.Fatalf("job %d: got %+v, want VMs >= 1, 1 <= Cores <= %d, Runtime > 0, Requested >= Runtime, Submit in [0, %v], MemoryMiB = Cores × %d",
				i, j, p.CoresPerHost, p.Span, p.MemoryMiBPerCore)
		}
		if j.Requested%requestStep != 0 || j.Runtime%time.Second != 0 || j.Submit%time.Second != 0 {
			t.Fatalf("job %d: got %+v, want whole seconds and requests in 5-minute steps", i, j)
		}
		if i > 0 && j.Submit < tr.Jobs[i-1].Submit {
			t.Fatalf("job %d: got submit %v after %v, want jobs sorted by submit", i, j.Submit, tr.Jobs[i-1].Submit)
		}
		if i > 0 && j.Submit == tr.Jobs[i-1].Submit {
			// Ties keep generation order: a burst's or group's jobs by number.
			prev := tr.Jobs[i-1].ID
			cut, pcut := strings.LastIndexByte(j.ID, '-'), strings.LastIndexByte(prev, '-')
			n, _ := strconv.Atoi(j.ID[cut+1:])
			pn, _ := strconv.Atoi(prev[pcut+1:])
			if j.ID[:cut] == prev[:pcut] && n <= pn {
				t.Fatalf("job %d: got %q after %q at the same time, want generation order", i, j.ID, prev)
			}
		}
		if ids[j.ID] {
			t.Fatalf("job %d: got ID %q twice, want unique IDs", i, j.ID)
		}
		ids[j.ID] = true
		if !strings.HasPrefix(j.User, j.Group+"-u") {
			t.Fatalf("job %d: got group %q user %q, want the user named after the group", i, j.Group, j.User)
		}
		scan := strings.HasPrefix(j.Group, "scan")
		if wantPrefix := "s" + strings.TrimPrefix(j.Group, "scan") + "-b"; scan && (!strings.HasPrefix(j.ID, wantPrefix) || j.VMs != 1) {
			t.Fatalf("job %d: got %+v, want a one-VM job with an ID starting %q", i, j, wantPrefix)
		}
		if !scan && !strings.HasPrefix(j.ID, j.Group+"-") {
			t.Fatalf("job %d: got ID %q in group %q, want it to start with the group", i, j.ID, j.Group)
		}
	}
}

// burstsOf groups scan jobs by burst ("s1-b3"), in order of first appearance.
func burstsOf(tr *trace.Trace) (keys []string, jobs map[string][]trace.Job) {
	jobs = map[string][]trace.Job{}
	for _, j := range tr.Jobs {
		if !strings.HasPrefix(j.Group, "scan") {
			continue
		}
		k := j.ID[:strings.LastIndexByte(j.ID, '-')]
		if _, ok := jobs[k]; !ok {
			keys = append(keys, k)
		}
		jobs[k] = append(jobs[k], j)
	}
	return keys, jobs
}

func mustByName(t *testing.T, name string) ParamScan {
	t.Helper()
	p, err := ByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestScenarios(t *testing.T) {
	tests := map[string]struct {
		wantLoad [2]float64 // band for seeds 1..20
	}{
		"paramscan":       {wantLoad: [2]float64{0.5, 1.0}},
		"paramscan-heavy": {wantLoad: [2]float64{0.6, 1.1}},
		"biggrid":         {wantLoad: [2]float64{0.4, 0.6}},
	}
	if diff := cmp.Diff(slices.Sorted(func(yield func(string) bool) {
		for name := range tests {
			yield(name)
		}
	}), slices.Sorted(slices.Values(Scenarios()))); diff != "" {
		t.Errorf("Scenarios() mismatch (-tested +got):\n%s", diff)
	}
	if got := Scenarios()[0]; got != "paramscan" {
		t.Errorf("Scenarios()[0]: got %q, want the default %q first", got, "paramscan")
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p := mustByName(t, name)
			if p.Name != name {
				t.Errorf("Name: got %q, want %q", p.Name, name)
			}
			for seed := int64(1); seed <= 20; seed++ {
				tr, err := p.Generate(seed)
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				checkInvariants(t, p, seed, tr)
				if got := OfferedLoad(tr, p.Span); got < tt.wantLoad[0] || got > tt.wantLoad[1] {
					t.Errorf("seed %d: offered load: got %.3f, want in [%g, %g]", seed, got, tt.wantLoad[0], tt.wantLoad[1])
				}
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	for _, name := range Scenarios() {
		t.Run(name, func(t *testing.T) {
			p := mustByName(t, name)
			a, err := p.Generate(42)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := p.Generate(42)
			if diff := cmp.Diff(a, b); diff != "" {
				t.Errorf("same seed: got a different trace (-first +second):\n%s", diff)
			}
			c, _ := p.Generate(43)
			if slices.Equal(a.Jobs, c.Jobs) { // a diff of two unrelated traces is slow and unread

				t.Errorf("seeds 42 and 43: got identical jobs, want different")
			}
		})
	}
}

// TestBurstStructure: every burst is one scan group's script submitting
// identical one-VM requests within a minute, with its stragglers.
func TestBurstStructure(t *testing.T) {
	for _, name := range Scenarios() {
		t.Run(name, func(t *testing.T) {
			p := mustByName(t, name)
			tr, err := p.Generate(7)
			if err != nil {
				t.Fatal(err)
			}
			keys, bursts := burstsOf(tr)
			if len(keys) == 0 {
				t.Fatalf("got no bursts, want at least one")
			}
			for _, k := range keys {
				jobs := bursts[k]
				if n := len(jobs); n < p.BurstSize[0] || n > p.BurstSize[1] {
					t.Errorf("burst %s: got %d VMs, want %d..%d", k, n, p.BurstSize[0], p.BurstSize[1])
				}
				first := jobs[0]
				stragglers := 0
				for _, j := range jobs {
					if j.Group != first.Group || j.User != first.User || j.VMs != 1 || j.Cores != p.ScanCores || j.MemoryMiB != first.MemoryMiB {
						t.Fatalf("burst %s: got %+v and %+v, want identical requests from one user", k, first, j)
					}
					if d := j.Submit - first.Submit; d > time.Minute {
						t.Fatalf("burst %s: got submissions %v apart, want within a minute", k, d)
					}
					if float64(j.Runtime) >= p.StragglerFactor[0]*float64(p.TaskRuntime) {
						stragglers++
					}
				}
				// A lognormal run time can reach 4× the median but hardly ever.
				if want := int(math.Round(p.StragglerFrac * float64(len(jobs)))); stragglers < want || stragglers > want+2 {
					t.Errorf("burst %s: got %d stragglers of %d, want %d", k, stragglers, len(jobs), want)
				}
			}
		})
	}
}

// TestHeavyTailGaps: gaps between a group's bursts are Pareto around
// BurstGap, so over a long span the longest gap is many medians.
func TestHeavyTailGaps(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Int64().Draw(t, "seed")
		p := DefaultParamScan()
		p.Span = 365 * 24 * time.Hour
		p.BurstSize = [2]int{8, 32} // the gaps matter here, not the bursts
		p.BackgroundGroups = 0
		tr, err := p.Generate(seed)
		if err != nil {
			t.Fatal(err)
		}
		keys, bursts := burstsOf(tr)
		last := map[string]time.Duration{}
		var gaps []float64
		for _, k := range keys {
			g, start := bursts[k][0].Group, bursts[k][0].Submit
			if prev, ok := last[g]; ok {
				gaps = append(gaps, (start - prev).Hours())
			}
			last[g] = start
		}
		if len(gaps) < 100 {
			t.Fatalf("got %d gaps over a year, want at least 100", len(gaps))
		}
		slices.Sort(gaps)
		median, longest := gaps[len(gaps)/2], gaps[len(gaps)-1]
		if want := p.BurstGap.Hours(); median < 0.75*want || median > 1.33*want {
			t.Fatalf("median gap: got %.1f h, want about %.1f h", median, want)
		}
		if longest < 4*median {
			t.Fatalf("longest gap: got %.1f h = %.1f medians, want at least 4", longest, longest/median)
		}
	})
}

// TestInvariantsProperty: any valid parameters give a trace the simulator
// can replay.
func TestInvariantsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := ParamScan{Name: "prop"}
		p.Hosts = rapid.IntRange(1, 8).Draw(t, "hosts")
		p.CoresPerHost = rapid.IntRange(1, 8).Draw(t, "coresPerHost")
		p.MemoryMiBPerCore = rapid.SampledFrom([]int64{0, 1024, 2048}).Draw(t, "memPerCore")
		p.MemoryMiBPerHost = int64(p.CoresPerHost) * p.MemoryMiBPerCore * rapid.Int64Range(1, 2).Draw(t, "memFactor")
		p.Span = time.Duration(rapid.Int64Range(3600, 30*86400).Draw(t, "span")) * time.Second
		p.Load = rapid.Float64Range(0, 1.5).Draw(t, "load")
		p.UsersPerGroup = rapid.IntRange(1, 4).Draw(t, "users")
		p.ScanGroups = rapid.IntRange(0, 3).Draw(t, "scanGroups")
		p.BackgroundGroups = rapid.IntRange(0, 3).Draw(t, "bgGroups")
		if p.ScanGroups+p.BackgroundGroups == 0 {
			p.ScanGroups = 1
		}
		p.Bursts = rapid.IntRange(0, 5).Draw(t, "bursts")
		p.FirstBurstWithin = time.Duration(rapid.Float64Range(0, 1).Draw(t, "first") * float64(p.Span))
		lo := rapid.IntRange(1, 200).Draw(t, "burstMin")
		p.BurstSize = [2]int{lo, lo + rapid.IntRange(0, 200).Draw(t, "burstExtra")}
		p.BurstGap = max(time.Second, time.Duration(rapid.Float64Range(0.05, 2).Draw(t, "gap")*float64(p.Span)))
		p.GapAlpha = rapid.Float64Range(0.8, 3).Draw(t, "alpha")
		p.SubmitRate = rapid.SampledFrom([]float64{0, 1, 100, 1e4}).Draw(t, "rate")
		p.ScanCores = rapid.IntRange(1, p.CoresPerHost).Draw(t, "scanCores")
		p.TaskRuntime = time.Duration(rapid.Int64Range(1, 36000).Draw(t, "task")) * time.Second
		p.RuntimeSigma = rapid.Float64Range(0, 2).Draw(t, "sigma")
		p.StragglerFrac = rapid.Float64Range(0, 1).Draw(t, "stragglers")
		f := rapid.Float64Range(1, 20).Draw(t, "factor")
		p.StragglerFactor = [2]float64{f, f * rapid.Float64Range(1, 3).Draw(t, "factorSpread")}
		p.RequestSlack = rapid.Float64Range(0, 3).Draw(t, "slack")
		p.BackgroundMinLoad = rapid.Float64Range(0, 0.5).Draw(t, "bgMin")
		c := rapid.IntRange(1, p.CoresPerHost).Draw(t, "bgCoresMax")
		p.BackgroundCores = [2]int{rapid.IntRange(1, c).Draw(t, "bgCoresMin"), c}
		n := rapid.IntRange(1, p.Hosts*(p.CoresPerHost/c)).Draw(t, "bgVMsMax")
		p.BackgroundVMs = [2]int{rapid.IntRange(1, n).Draw(t, "bgVMsMin"), n}
		rlo := max(time.Second, time.Duration(rapid.Float64Range(0.005, 0.1).Draw(t, "bgRunMin")*float64(p.Span)))
		p.BackgroundRuntime = [2]time.Duration{rlo, rlo * time.Duration(rapid.IntRange(1, 100).Draw(t, "bgRunSpread"))}
		if err := p.Validate(); err != nil {
			t.Fatalf("Validate: got %v, want nil for %+v", err, p)
		}
		seed := rapid.Int64().Draw(t, "seed")
		tr, err := p.Generate(seed)
		if err != nil {
			t.Fatalf("Generate: got %v, want nil", err)
		}
		checkInvariants(t, p, seed, tr)
		keys, _ := burstsOf(tr)
		if p.ScanGroups > 0 && len(keys) < p.ScanGroups {
			t.Fatalf("got %d bursts, want at least one per scan group (%d)", len(keys), p.ScanGroups)
		}
	})
}

func TestBigGrid(t *testing.T) {
	p := mustByName(t, "biggrid")
	tr, err := p.Generate(1)
	if err != nil {
		t.Fatal(err)
	}
	want := trace.Job{Submit: 0, Runtime: time.Hour, Requested: time.Hour, VMs: 1, Cores: 1, MemoryMiB: 2048, Group: "scan1", User: "scan1-u1"}
	atZero, scan := 0, 0
	for _, j := range tr.Jobs {
		if j.Submit == 0 {
			atZero++
			got := j
			got.ID = ""
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("job %s at t=0 (-want +got):\n%s", j.ID, diff)
			}
		}
		if j.Group == "scan1" {
			scan++
		}
	}
	if atZero != 1024 || scan != 1024 {
		t.Errorf("got %d jobs at t=0 and %d scan jobs, want 1024 and 1024", atZero, scan)
	}
	if got, want := tr.Jobs[0].ID, "s1-b1-0001"; got != want {
		t.Errorf("first ID: got %q, want %q", got, want)
	}
	if bg := len(tr.Jobs) - scan; bg == 0 {
		t.Errorf("got no background jobs, want a light background")
	}
}

// TestScansIgnoreBackground: scan streams are drawn apart from the
// background, so changing the background leaves the scans as they were.
func TestScansIgnoreBackground(t *testing.T) {
	p := DefaultParamScan()
	scans := func(p ParamScan) []trace.Job {
		tr, err := p.Generate(3)
		if err != nil {
			t.Fatal(err)
		}
		return slices.DeleteFunc(tr.Jobs, func(j trace.Job) bool { return !strings.HasPrefix(j.Group, "scan") })
	}
	a := scans(p)
	p.BackgroundGroups = 0
	if diff := cmp.Diff(a, scans(p)); diff != "" {
		t.Errorf("scan jobs changed with the background (-with +without):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	tests := map[string]struct {
		change    func(*ParamScan)
		wantField string // "" = valid
	}{
		"default":              {change: func(*ParamScan) {}},
		"no scans, bad scans":  {change: func(p *ParamScan) { p.ScanGroups, p.BurstSize, p.TaskRuntime = 0, [2]int{}, 0 }},
		"no background, bad":   {change: func(p *ParamScan) { p.BackgroundGroups, p.BackgroundVMs = 0, [2]int{} }},
		"Name":                 {change: func(p *ParamScan) { p.Name = "" }, wantField: "Name"},
		"Hosts":                {change: func(p *ParamScan) { p.Hosts = 0 }, wantField: "Hosts"},
		"CoresPerHost":         {change: func(p *ParamScan) { p.CoresPerHost = 0 }, wantField: "CoresPerHost"},
		"MemoryMiBPerHost":     {change: func(p *ParamScan) { p.MemoryMiBPerHost = -1 }, wantField: "MemoryMiBPerHost"},
		"MemoryMiBPerHost fit": {change: func(p *ParamScan) { p.MemoryMiBPerHost = 4096 }, wantField: "MemoryMiBPerHost"},
		"MemoryMiBPerCore":     {change: func(p *ParamScan) { p.MemoryMiBPerCore = -1 }, wantField: "MemoryMiBPerCore"},
		"Span":                 {change: func(p *ParamScan) { p.Span = 0 }, wantField: "Span"},
		"Load":                 {change: func(p *ParamScan) { p.Load = -0.1 }, wantField: "Load"},
		"Load NaN":             {change: func(p *ParamScan) { p.Load = math.NaN() }, wantField: "Load"},
		"UsersPerGroup":        {change: func(p *ParamScan) { p.UsersPerGroup = 0 }, wantField: "UsersPerGroup"},
		"ScanGroups":           {change: func(p *ParamScan) { p.ScanGroups = -1 }, wantField: "ScanGroups"},
		"no groups":            {change: func(p *ParamScan) { p.ScanGroups, p.BackgroundGroups = 0, 0 }, wantField: "BackgroundGroups"},
		"BackgroundGroups":     {change: func(p *ParamScan) { p.BackgroundGroups = -1 }, wantField: "BackgroundGroups"},
		"Bursts":               {change: func(p *ParamScan) { p.Bursts = -1 }, wantField: "Bursts"},
		"FirstBurstWithin":     {change: func(p *ParamScan) { p.FirstBurstWithin = p.Span + time.Second }, wantField: "FirstBurstWithin"},
		"BurstSize zero":       {change: func(p *ParamScan) { p.BurstSize = [2]int{0, 10} }, wantField: "BurstSize"},
		"BurstSize reversed":   {change: func(p *ParamScan) { p.BurstSize = [2]int{10, 5} }, wantField: "BurstSize"},
		"BurstGap":             {change: func(p *ParamScan) { p.BurstGap = 0 }, wantField: "BurstGap"},
		"GapAlpha":             {change: func(p *ParamScan) { p.GapAlpha = 0 }, wantField: "GapAlpha"},
		"SubmitRate":           {change: func(p *ParamScan) { p.SubmitRate = -1 }, wantField: "SubmitRate"},
		"ScanCores zero":       {change: func(p *ParamScan) { p.ScanCores = 0 }, wantField: "ScanCores"},
		"ScanCores too big":    {change: func(p *ParamScan) { p.ScanCores = 9 }, wantField: "ScanCores"},
		"TaskRuntime":          {change: func(p *ParamScan) { p.TaskRuntime = 0 }, wantField: "TaskRuntime"},
		"RuntimeSigma":         {change: func(p *ParamScan) { p.RuntimeSigma = -1 }, wantField: "RuntimeSigma"},
		"StragglerFrac":        {change: func(p *ParamScan) { p.StragglerFrac = 1.5 }, wantField: "StragglerFrac"},
		"StragglerFactor":      {change: func(p *ParamScan) { p.StragglerFactor = [2]float64{0.5, 2} }, wantField: "StragglerFactor"},
		"RequestSlack":         {change: func(p *ParamScan) { p.RequestSlack = -1 }, wantField: "RequestSlack"},
		"BackgroundMinLoad":    {change: func(p *ParamScan) { p.BackgroundMinLoad = -1 }, wantField: "BackgroundMinLoad"},
		"BackgroundVMs":        {change: func(p *ParamScan) { p.BackgroundVMs = [2]int{0, 1} }, wantField: "BackgroundVMs"},
		"BackgroundVMs fit":    {change: func(p *ParamScan) { p.BackgroundVMs = [2]int{1, 33} }, wantField: "BackgroundVMs"},
		"BackgroundCores":      {change: func(p *ParamScan) { p.BackgroundCores = [2]int{1, 9} }, wantField: "BackgroundCores"},
		"BackgroundRuntime":    {change: func(p *ParamScan) { p.BackgroundRuntime = [2]time.Duration{0, time.Hour} }, wantField: "BackgroundRuntime"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p := DefaultParamScan()
			tt.change(&p)
			err := p.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantField) {
				t.Fatalf("got %v, want an error naming %s", err, tt.wantField)
			}
			if _, gerr := p.Generate(1); gerr == nil || gerr.Error() != err.Error() {
				t.Fatalf("Generate: got %v, want the Validate error %v", gerr, err)
			}
		})
	}
}

func TestByNameUnknown(t *testing.T) {
	_, err := ByName("nope")
	if err == nil {
		t.Fatalf("got nil, want an error")
	}
	for _, name := range Scenarios() {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("got %q, want it to list %q", err, name)
		}
	}
}

// TestTooManyJobs: a typo that asks for billions of jobs fails fast.
func TestTooManyJobs(t *testing.T) {
	p := DefaultParamScan()
	p.Span = 10 * 365 * 24 * time.Hour
	p.BurstGap = time.Second
	if _, err := p.Generate(1); err == nil || !strings.Contains(err.Error(), "jobs") {
		t.Errorf("got %v, want an error about too many jobs", err)
	}
}

// TestAllocations: generation allocates per burst and per group, not per
// job, so big traces stay cheap.
func TestAllocations(t *testing.T) {
	p := DefaultParamScan()
	tr, err := p.Generate(1)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := burstsOf(tr)
	allocs := testing.AllocsPerRun(3, func() { p.Generate(1) })
	if limit := float64(2*len(keys) + 128); allocs > limit {
		t.Errorf("got %.0f allocations for %d jobs in %d bursts, want at most %.0f", allocs, len(tr.Jobs), len(keys), limit)
	}
}

// BenchmarkGenerate300k generates a year of the default workload, about
// 300,000 jobs.
func BenchmarkGenerate300k(b *testing.B) {
	p := DefaultParamScan()
	p.Span = 365 * 24 * time.Hour
	var jobs int
	for b.Loop() {
		tr, err := p.Generate(1)
		if err != nil {
			b.Fatal(err)
		}
		jobs = len(tr.Jobs)
	}
	b.ReportMetric(float64(jobs), "jobs")
}
