package sim_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/fairshare"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/sim"
	"github.com/fairlease/fairlease/sim/metrics"
	"github.com/fairlease/fairlease/sim/trace"
	"github.com/fairlease/fairlease/sim/workload"
)

// presets is one spec per fairshare preset, in report order.
func presets() []sim.Spec {
	var specs []sim.Spec
	for _, p := range fairshare.PolicyNames {
		specs = append(specs, sim.Spec{Name: p, Preset: p})
	}
	return specs
}

// generated builds the scenario of a built-in workload, adjusted, on the
// site its trace names; the policy is left to Compare's default.
func generated(t testing.TB, name string, seed int64, adjust func(*workload.ParamScan)) *sim.Scenario {
	t.Helper()
	p, err := workload.ByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if adjust != nil {
		adjust(&p)
	}
	tr, err := p.Generate(seed)
	if err != nil {
		t.Fatal(err)
	}
	return scenarioOf(t, tr)
}

func scenarioOf(t testing.TB, tr *trace.Trace) *sim.Scenario {
	t.Helper()
	hosts, _, err := sim.SiteFor(tr, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &sim.Scenario{Name: tr.Name, Hosts: hosts, Jobs: tr.Jobs, Notice: tr.Notice}
}

// sdscJobs is how much of the bundled SDSC SP2 trace the tests replay.
const sdscJobs = 3000

func sdscExcerpt(t testing.TB) *sim.Scenario {
	t.Helper()
	tr, err := trace.Read("../testdata/SDSC-SP2-1998-4.2-cln.swf.gz", trace.SWF)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Jobs) < sdscJobs {
		t.Fatalf("trace has %d jobs, want at least %d", len(tr.Jobs), sdscJobs)
	}
	tr.Jobs = tr.Jobs[:sdscJobs]
	return scenarioOf(t, tr)
}

// checkSchedule checks what every schedule the simulator writes must
// satisfy, whatever the policy: one valid row per job, nothing
// unplaceable, grants start at once, deferred leases never before their
// submit, runs last their run time, and the local site is never
// overcommitted in cores.
func checkSchedule(t *testing.T, s *sim.Scenario, res *sim.Result) {
	t.Helper()
	if res.Unplaceable != 0 {
		t.Errorf("%s: got %d unplaceable leases, want 0", res.Policy, res.Unplaceable)
	}
	if err := metrics.Check(res.Rows); err != nil {
		t.Errorf("%s: rows fail Check: %v", res.Policy, err)
	}
	if len(res.Rows) != len(s.Jobs) {
		t.Fatalf("%s: got %d rows, want one per job (%d)", res.Policy, len(res.Rows), len(s.Jobs))
	}
	type change struct {
		t     time.Duration
		cores int64
	}
	var changes []change
	for i, r := range res.Rows {
		j := s.Jobs[i]
		if (r.ID != j.ID && r.ID != fmt.Sprintf("%s#%d", j.ID, i)) || r.Cores != int64(j.VMs*j.Cores) || r.Submit != j.Submit || r.Runtime != j.Runtime {
			t.Fatalf("%s: row %d is %+v, want job %+v", res.Policy, i, r, j)
		}
		switch r.Decision {
		case metrics.Granted:
			if r.Start != r.Submit {
				t.Errorf("%s: granted row %s starts at %v, want its submit %v", res.Policy, r.ID, r.Start, r.Submit)
			}
		case metrics.Deferred:
			if r.Start < r.Submit {
				t.Errorf("%s: deferred row %s starts at %v, before its submit %v", res.Policy, r.ID, r.Start, r.Submit)
			}
		}
		if r.Start != metrics.None && r.End-r.Start != r.Runtime {
			t.Errorf("%s: row %s runs %v, want its run time %v", res.Policy, r.ID, r.End-r.Start, r.Runtime)
		}
		if r.Local() {
			changes = append(changes, change{r.Start, r.Cores}, change{r.End, -r.Cores})
		}
	}
	// Releases before starts at one instant, as the simulator applies them.
	slices.SortFunc(changes, func(a, b change) int {
		switch {
		case a.t < b.t:
			return -1
		case a.t > b.t:
			return 1
		}
		return int(a.cores - b.cores)
	})
	var used int64
	for _, c := range changes {
		if used += c.cores; used > s.Capacity() {
			t.Fatalf("%s: %d cores in use at %v, more than the site's %d", res.Policy, used, c.t, s.Capacity())
		}
	}
}

// TestDeterministic: the same paramscan seed, generated and replayed
// twice through every preset, gives identical schedules and metrics.
func TestDeterministic(t *testing.T) {
	shorten := func(p *workload.ParamScan) {
		if testing.Short() {
			p.Span = 3 * 24 * time.Hour
		}
	}
	var runs [2][]sim.Outcome
	for i := range runs {
		s := generated(t, "paramscan", 7, shorten)
		out, err := sim.Compare(s, presets(), sim.CompareOptions{})
		if err != nil {
			t.Fatal(err)
		}
		runs[i] = out
	}
	for k, a := range runs[0] {
		b := runs[1][k]
		if diff := cmp.Diff(a.Result, b.Result); diff != "" {
			t.Errorf("%s: second replay got … want the first's schedule (-first +second):\n%s", a.Spec.Name, diff)
		}
		if diff := cmp.Diff(a.Report, b.Report, cmp.AllowUnexported(metrics.Report{})); diff != "" {
			t.Errorf("%s: second replay got … want the first's metrics (-first +second):\n%s", a.Spec.Name, diff)
		}
	}
}

// TestSDSCExcerpt replays the first jobs of the bundled SDSC SP2 trace
// through every preset.
func TestSDSCExcerpt(t *testing.T) {
	s := sdscExcerpt(t)
	out, err := sim.Compare(s, presets(), sim.CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		t.Run(o.Spec.Name, func(t *testing.T) {
			checkSchedule(t, s, o.Result)
			if o.Report.Unplaceable != 0 {
				t.Errorf("report: got unplaceable %d, want 0", o.Report.Unplaceable)
			}
			if sum := o.Report.GrantedNow + o.Report.Deferred + o.Report.Overflowed + o.Report.Rejected; sum < 1-1e-9 || sum > 1+1e-9 {
				t.Errorf("decision fractions: got sum %v, want 1", sum)
			}
		})
	}
}

// TestCompareParallel: running the policies one at a time or side by side
// changes nothing but the wall time.
func TestCompareParallel(t *testing.T) {
	s := sdscExcerpt(t)
	var runs [2][]sim.Outcome
	for i, par := range []int{1, 2} {
		out, err := sim.Compare(s, presets(), sim.CompareOptions{Parallel: par, Samples: 64})
		if err != nil {
			t.Fatalf("Parallel %d: %v", par, err)
		}
		runs[i] = out
	}
	opts := cmp.Options{cmp.AllowUnexported(metrics.Report{}), cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".Wall"
	}, cmp.Ignore())}
	if diff := cmp.Diff(runs[0], runs[1], opts); diff != "" {
		t.Errorf("Parallel 2 got … want the outcomes of Parallel 1 (-1 +2):\n%s", diff)
	}
	for k, o := range runs[0] {
		if o.Spec.Name != presets()[k].Name {
			t.Errorf("outcome %d: got %s, want %s: outcomes must keep the order of the specs", k, o.Spec.Name, presets()[k].Name)
		}
	}
}

// TestCompareSamplesChangeNothing: asking for plot samples leaves the
// metrics alone.
func TestCompareSamplesChangeNothing(t *testing.T) {
	s := generated(t, "biggrid", 1, nil)
	var reports [2][]metrics.Report
	for i, n := range []int{0, 500} {
		out, err := sim.Compare(s, presets(), sim.CompareOptions{Samples: n})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out {
			reports[i] = append(reports[i], o.Report)
		}
	}
	if diff := cmp.Diff(reports[0], reports[1], cmp.AllowUnexported(metrics.Report{})); diff != "" {
		t.Errorf("with samples got … want the reports without (-without +with):\n%s", diff)
	}
}

// TestRepeatedTraceIDs: a trace may repeat a job id; the schedule keeps
// the rows apart (the second becomes "1#1") so that it passes Check and
// can be measured. Before sim.go used the lease id for rows, Compare
// failed with `row 2: id "1" repeats`.
func TestRepeatedTraceIDs(t *testing.T) {
	job := trace.Job{ID: "1", Runtime: time.Hour, Requested: time.Hour, VMs: 1, Cores: 1, MemoryMiB: 1024, Group: "a", User: "a-u1"}
	later := job
	later.Submit = time.Minute
	s := &sim.Scenario{
		Name:  "repeated ids",
		Hosts: []fairshare.Host{{Name: "h0", Capacity: lease.Resources{Cores: 4, MemoryMiB: 8192}}},
		Jobs:  []trace.Job{job, later},
	}
	out, err := sim.Compare(s, presets(), sim.CompareOptions{})
	if err != nil {
		t.Fatalf("Compare: got %v, want no error", err)
	}
	for _, o := range out {
		checkSchedule(t, s, o.Result)
		got := []string{o.Result.Rows[0].ID, o.Result.Rows[1].ID}
		if want := []string{"1", "1#1"}; !slices.Equal(got, want) {
			t.Errorf("%s: row ids: got %q, want %q", o.Spec.Name, got, want)
		}
	}
}
