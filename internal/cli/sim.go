package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/fairshare"
	"github.com/fairlease/fairlease/policies"
	"github.com/fairlease/fairlease/sim"
	"github.com/fairlease/fairlease/sim/metrics"
	"github.com/fairlease/fairlease/sim/netmodel"
	"github.com/fairlease/fairlease/sim/report"
	"github.com/fairlease/fairlease/sim/trace"
	"github.com/fairlease/fairlease/sim/workload"
)

// sweepPreset is the policy a --sweep varies; the others are baselines.
const sweepPreset = "fairlease"

// imageScenario is the scenario that carries an image-distribution model:
// the BiG Grid burst of DESIGN.md §7.
const imageScenario = "biggrid"

// plotSamples is how many timeline samples the plots get: enough for a
// smooth line at print size, few enough to keep the SVGs small.
const plotSamples = 600

// simFlags are the flags of `fairlease sim`, as typed.
type simFlags struct {
	trace, format     string
	scenario          string
	seed              int64
	policy            string
	compare           string
	capacity          int64
	grace, patience   string
	json, plots, sked string
	sweep             string
	quiet             bool
	// The image model's network: --image-size, --server-rate, --link-rate.
	imageSize, serverRate, linkRate string
}

// simPlan is a checked command line, ready to run.
type simPlan struct {
	f      simFlags
	format trace.Format
	gen    workload.ParamScan
	grace  time.Duration
	policy *policies.Policy
	specs  []sim.Spec
	// sweepOf holds the knob and value of each spec a sweep made.
	sweepOf map[string][2]string
	// images is the image model's network, for the image scenario; the
	// site and the burst fill in the rest once the workload is loaded.
	images *netmodel.Config
}

func newSimCmd(e *env) *cobra.Command {
	var f simFlags
	cmd := &cobra.Command{
		Use:   "sim (--trace FILE | --scenario NAME) [flags]",
		Short: "Replay a workload through several policies and compare them",
		Long: `sim replays a workload trace (SWF, Azure VM table, Alibaba GPU pods) or a
synthetic scenario through the admission engine in virtual time, once per
policy, and prints the metrics side by side.

Metrics (see DESIGN.md §4): utilization of the local capacity C;
share_deviation, the time-averaged distance of held cores from the max-min
fair target; jain, Jain's index of how much of its target each group got;
in_share_late, the fraction of requests within their group's share that
started more than --grace after submission; wait percentiles; and the
fractions of requests granted at once, deferred, overflowed and rejected.

The biggrid scenario also models how its burst of VMs gets a disk image:
from a central server on every VM start, once per node with node caches
and copy-on-write overlays, or through a swarm among node caches. It
prints each strategy's transfers, bytes the server sends and time until
the last VM has its image; --image-size, --server-rate and --link-rate
change the network (defaults: 10GB, 1gbit, 1gbit; 80 % efficiency).`,
		Example: `  fairlease sim --trace SDSC-SP2-1998-4.2-cln.swf.gz --json out.json --plots plots/
  fairlease sim --trace vmtable.csv.gz --capacity 2048 --compare easy,fairlease
  fairlease sim --trace SDSC-SP2-1998-4.2-cln.swf.gz --sweep reserve=0,0.1,0.25 --plots plots/
  fairlease sim --scenario paramscan --seed 7
  fairlease sim --scenario biggrid --image-size 10GB --server-rate 10gbit --link-rate 1gbit`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			p, err := planSim(cmd, f)
			if err != nil {
				return err
			}
			return failure(p.run(e, start), "")
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.trace, "trace", "", "workload trace `FILE` (.swf, .csv, optionally .gz)")
	fl.StringVar(&f.format, "format", "", "trace `FORMAT`: swf, azure or alibaba (default: from the file name)")
	fl.StringVar(&f.scenario, "scenario", "", "synthetic scenario `NAME` instead of a trace ("+strings.Join(workload.Scenarios(), ", ")+")")
	fl.Int64Var(&f.seed, "seed", 1, "random seed `N` of --scenario")
	fl.StringVar(&f.policy, "policy", "", "site policy TOML `FILE` (default: the built-in default policy)")
	fl.StringVar(&f.compare, "compare", strings.Join(fairshare.PolicyNames, ","), "policies to compare, comma-separated, in this order")
	fl.Int64Var(&f.capacity, "capacity", 0, "site size in `CORES` (default: the trace's, else sized to 75% mean load)")
	fl.StringVar(&f.grace, "grace", "1h", "`DURATION` an in-share request may wait before it counts as late")
	fl.StringVar(&f.patience, "patience", "", "override the policy's patience: requests wait at most this `DURATION` (e.g. 24h, 2d)")
	fl.StringVar(&f.json, "json", "", "write the results as JSON to `FILE`")
	fl.StringVar(&f.plots, "plots", "", "write SVG plots into `DIR`")
	fl.StringVar(&f.sked, "schedule", "", "write each policy's schedule as DIR/<policy>.csv into `DIR`")
	fl.StringVar(&f.sweep, "sweep", "", "run fairlease once per value of a policy knob (knobs: "+strings.Join(policies.Knobs(), ", ")+"): `KNOB=v1,v2,...`")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress bar or notes on stderr")
	fl.StringVar(&f.imageSize, "image-size", "10GB", "image model (--scenario "+imageScenario+"): image `SIZE` such as 10GB or 512MiB")
	fl.StringVar(&f.serverRate, "server-rate", "1gbit", "image model (--scenario "+imageScenario+"): image server uplink `RATE` such as 1gbit, 10Gbps or 125MB/s")
	fl.StringVar(&f.linkRate, "link-rate", "1gbit", "image model (--scenario "+imageScenario+"): each node's link `RATE`, up and down")
	return cmd
}

// planSim checks the command line before anything slow happens, so that a
// typo costs nothing. Usage errors exit 2; a policy file that cannot be
// read exits 1.
func planSim(cmd *cobra.Command, f simFlags) (*simPlan, error) {
	p := &simPlan{f: f, sweepOf: map[string][2]string{}}
	changed := cmd.Flags().Changed
	switch {
	case f.trace == "" && f.scenario == "":
		return nil, usagef("give a workload: --trace FILE or --scenario NAME (one of %s)", strings.Join(workload.Scenarios(), ", "))
	case f.trace != "" && f.scenario != "":
		return nil, usagef("--trace and --scenario exclude each other: give one")
	case f.scenario != "" && changed("format"):
		return nil, usagef("--format applies to --trace only")
	case f.trace != "" && changed("seed"):
		return nil, usagef("--seed applies to --scenario only")
	case changed("capacity") && f.capacity <= 0:
		return nil, usagef("--capacity must be > 0 cores, got %d", f.capacity)
	}
	if f.format != "" {
		ft, err := trace.ParseFormat(f.format)
		if err != nil {
			return nil, usagef("--format: %v", err)
		}
		p.format = ft
	}
	if f.scenario != "" {
		if !slices.Contains(workload.Scenarios(), f.scenario) {
			return nil, usagef("--scenario: unknown scenario %q (want one of %s)", f.scenario, strings.Join(workload.Scenarios(), ", "))
		}
		gen, err := workload.ByName(f.scenario)
		if err != nil {
			return nil, usagef("--scenario: %v", err)
		}
		p.gen = gen
	}
	if err := p.planImages(changed); err != nil {
		return nil, err
	}
	grace, err := policies.ParseDuration(f.grace)
	if err != nil || grace < 0 {
		return nil, usagef("--grace: want a duration >= 0 such as 1h or 30m, got %q", f.grace)
	}
	p.grace = grace
	compare, err := parseCompare(f.compare)
	if err != nil {
		return nil, err
	}
	var knob string
	var values []string
	if f.sweep != "" {
		if knob, values, err = parseSweep(f.sweep); err != nil {
			return nil, err
		}
	}

	p.policy = policies.Default()
	if f.policy != "" {
		if p.policy, err = policies.Load(f.policy); err != nil {
			hint := "fix the policy file (policies/examples/default.toml shows every key)"
			if errors.Is(err, fs.ErrNotExist) {
				err, hint = fmt.Errorf("%s does not exist", f.policy), "check the path"
			}
			return nil, failure(fmt.Errorf("--policy: %w", err), hint)
		}
	}
	if changed("patience") {
		if err := policies.Set(p.policy, "patience", f.patience); err != nil {
			return nil, usagef("--patience: %s", knobProblem(err))
		}
	}

	var swept []sim.Spec
	for _, v := range values {
		pol := p.policy.Clone()
		if err := policies.Set(pol, knob, v); err != nil {
			return nil, usagef("--sweep %s=%s: %s", knob, v, knobProblem(err))
		}
		name := sweepPreset + " " + knob + "=" + v
		swept = append(swept, sim.Spec{Name: name, Preset: sweepPreset, Policy: pol})
		p.sweepOf[name] = [2]string{knob, v}
	}
	// Sweep rows take the place of the plain fairlease row, or go last.
	for _, name := range compare {
		if name == sweepPreset && swept != nil {
			p.specs = append(p.specs, swept...)
			swept = nil
			continue
		}
		p.specs = append(p.specs, sim.Spec{Name: name, Preset: name, Policy: p.policy})
	}
	p.specs = append(p.specs, swept...)
	return p, nil
}

// planImages checks the image model's flags: they apply to the image
// scenario only, which always gets the model.
func (p *simPlan) planImages(changed func(string) bool) error {
	f := p.f
	if f.scenario != imageScenario {
		for _, name := range []string{"image-size", "server-rate", "link-rate"} {
			if changed(name) {
				return usagef("--%s applies to --scenario %s only (the workload with an image model)", name, imageScenario)
			}
		}
		return nil
	}
	c := netmodel.DefaultConfig()
	size, err := netmodel.ParseSize(f.imageSize)
	if err != nil {
		return usagef("--image-size: %v", err)
	}
	c.ImageBytes = size
	if c.ServerRate, err = netmodel.ParseRate(f.serverRate); err != nil {
		return usagef("--server-rate: %v", err)
	}
	if c.NodeDown, err = netmodel.ParseRate(f.linkRate); err != nil {
		return usagef("--link-rate: %v", err)
	}
	c.NodeUp = c.NodeDown
	p.images = &c
	return nil
}

// knobProblem says what is wrong with a knob's value without repeating the
// knob, which the flag already names.
func knobProblem(err error) string {
	if le, ok := errors.AsType[*policies.LoadError](err); ok {
		return le.Msg
	}
	return err.Error()
}

// parseCompare reads --compare: known policy names, each once, in order.
func parseCompare(s string) ([]string, error) {
	var names []string
	for n := range strings.SplitSeq(s, ",") {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" {
			continue
		}
		if !slices.Contains(fairshare.PolicyNames, n) {
			return nil, usagef("--compare: unknown policy %q (want some of %s)", n, strings.Join(fairshare.PolicyNames, ","))
		}
		if slices.Contains(names, n) {
			return nil, usagef("--compare: policy %q given twice", n)
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, usagef("--compare: name at least one policy (%s)", strings.Join(fairshare.PolicyNames, ","))
	}
	return names, nil
}

// parseSweep reads --sweep KNOB=v1,v2,...
func parseSweep(s string) (string, []string, error) {
	knob, list, ok := strings.Cut(s, "=")
	knob = strings.TrimSpace(knob)
	if !ok || knob == "" || strings.TrimSpace(list) == "" {
		return "", nil, usagef("--sweep: want KNOB=v1,v2,... (e.g. reserve=0,0.1,0.2), got %q", s)
	}
	if !slices.Contains(policies.Knobs(), knob) {
		return "", nil, usagef("--sweep: unknown knob %q (known knobs: %s)", knob, strings.Join(policies.Knobs(), ", "))
	}
	var values []string
	for v := range strings.SplitSeq(list, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			return "", nil, usagef("--sweep: empty value in %q", s)
		}
		if slices.Contains(values, v) {
			return "", nil, usagef("--sweep: value %s given twice", v)
		}
		values = append(values, v)
	}
	return knob, values, nil
}

// load reads the trace or generates the scenario.
func (p *simPlan) load() (*trace.Trace, error) {
	if p.f.scenario != "" {
		tr, err := p.gen.Generate(p.f.seed)
		if err != nil {
			return nil, fmt.Errorf("--scenario %s: %w", p.f.scenario, err)
		}
		if tr.Name == "" {
			tr.Name = p.f.scenario
		}
		return tr, nil
	}
	if _, err := os.Stat(p.f.trace); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, failure(fmt.Errorf("--trace: %s does not exist", p.f.trace), "check the path")
		}
		return nil, fmt.Errorf("--trace: %w", err)
	}
	format := p.format
	if format == "" {
		ft, err := trace.DetectFormat(p.f.trace)
		if err != nil {
			return nil, &exitError{code: ExitUsage, err: fmt.Errorf("--trace: %w", err), hint: "name the format with --format swf|azure|alibaba"}
		}
		format = ft
	}
	tr, err := trace.Read(p.f.trace, format)
	if err != nil {
		return nil, failure(fmt.Errorf("--trace: %w", err), "check that the file is a "+string(format)+" trace or pass the right --format")
	}
	return tr, nil
}

func (p *simPlan) run(e *env, start time.Time) error {
	tr, err := p.load()
	if err != nil {
		return err
	}
	if len(tr.Jobs) == 0 {
		return failure(fmt.Errorf("trace %s has no requests to replay (%d records, all skipped)", tr.Name, tr.Stats.Records), "check the trace and --format")
	}
	hosts, site, err := sim.SiteFor(tr, p.f.capacity)
	if err != nil {
		return err
	}
	sc := &sim.Scenario{Name: tr.Name, Hosts: hosts, Jobs: tr.Jobs, Policy: p.policy, Notice: tr.Notice}
	sum := &report.Summary{
		Trace: tr.Name, Format: string(tr.Format), Scenario: p.f.scenario, Seed: p.f.seed,
		Requests: len(tr.Jobs), Records: tr.Stats.Records, Skipped: tr.Stats.Skipped, Clamped: tr.Stats.Clamped,
		Site: site, Capacity: sc.Capacity(), Span: sim.Span(tr.Jobs), Start: tr.Start,
		Policy: p.policy.Name, Grace: p.grace, Patience: p.policy.Patience, Notice: tr.Notice,
	}
	if p.images != nil {
		// The burst runs on the site's nodes, one VM per scan task.
		c := *p.images
		c.Nodes, c.CoresPerNode, c.VMs = len(hosts), int(hosts[0].Capacity.Cores), p.gen.BurstSize[1]
		res, err := netmodel.Run(c)
		if err != nil {
			return err
		}
		sum.Images = &res
	}
	table := e.g.output == OutputTable
	if table {
		// The header first, so that a long run shows what it is doing.
		if err := sum.WriteHeader(e.stdout, p.f.json); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout)
	}
	for _, dir := range []string{p.f.plots, p.f.sked} {
		if dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return failure(err, "choose a directory you can write")
			}
		}
	}

	opts := sim.CompareOptions{Grace: p.grace}
	if p.grace == 0 {
		// Compare reads 0 as "default"; a nanosecond is no grace at all.
		opts.Grace = time.Nanosecond
	}
	if p.f.plots != "" {
		opts.Samples = plotSamples
	}
	names := make([]string, len(p.specs))
	for i, s := range p.specs {
		names[i] = s.Name
	}
	m := startMeter(e.stderr, !p.f.quiet && isTerminal(e.stderr), names, len(tr.Jobs))
	opts.Progress = m.update
	outs, err := compare(e, sc, p.specs, opts)
	elapsed := m.finish()
	if err != nil {
		return err
	}
	sum.Wall = time.Since(start)
	if !p.f.quiet && !m.shown {
		fmt.Fprintf(e.stderr, "fairlease sim: replayed %s requests through %d policies in %s\n",
			humanize.Comma(int64(len(tr.Jobs))), len(p.specs), elapsed.Round(time.Millisecond))
	}
	for _, o := range outs {
		kv := p.sweepOf[o.Spec.Name]
		sum.Runs = append(sum.Runs, report.Run{
			Name: o.Spec.Name, Preset: o.Spec.Preset, Knob: kv[0], Value: kv[1],
			Report: o.Report, Wall: o.Wall, Rows: o.Result.Rows, Series: o.Series,
		})
	}

	if table {
		if err := report.WriteTable(e.stdout, sum.Runs); err != nil {
			return err
		}
		if sum.Images != nil {
			fmt.Fprintln(e.stdout)
			if err := report.WriteImages(e.stdout, sum.Images); err != nil {
				return err
			}
		}
	} else {
		b, err := sum.JSON()
		if err != nil {
			return err
		}
		if _, err := e.stdout.Write(b); err != nil {
			return err
		}
	}
	return p.write(e, sum)
}

// compare runs the comparison, giving up (but not waiting) when the
// context ends: the runs have no way to stop early.
func compare(e *env, sc *sim.Scenario, specs []sim.Spec, o sim.CompareOptions) ([]sim.Outcome, error) {
	type result struct {
		outs []sim.Outcome
		err  error
	}
	if e.ctx.Err() != nil {
		return nil, failure(errors.New("interrupted"), "")
	}
	// Replays allocate steadily and keep little: collecting less often
	// buys a good part of the wall time, and memory is cheap here.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	done := make(chan result, 1)
	go func() {
		outs, err := sim.Compare(sc, specs, o)
		done <- result{outs, err}
	}()
	select {
	case r := <-done:
		return r.outs, r.err
	case <-e.ctx.Done():
		return nil, failure(errors.New("interrupted"), "")
	}
}

// write writes the files asked for: schedules, JSON, plots.
func (p *simPlan) write(e *env, sum *report.Summary) error {
	note := func(format string, args ...any) {
		if !p.f.quiet {
			fmt.Fprintf(e.stderr, "fairlease sim: "+format+"\n", args...)
		}
	}
	if dir := p.f.sked; dir != "" {
		for _, r := range sum.Runs {
			path := filepath.Join(dir, report.FileName(r.Name)+".csv")
			if err := report.WriteFile(path, func(w io.Writer) error { return metrics.WriteCSV(w, r.Rows) }); err != nil {
				return failure(fmt.Errorf("--schedule: %w", err), "choose a directory you can write")
			}
		}
		note("wrote %d schedules to %s", len(sum.Runs), dir)
	}
	if p.f.json != "" {
		b, err := sum.JSON()
		if err != nil {
			return err
		}
		if err := report.WriteFile(p.f.json, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
			return failure(fmt.Errorf("--json: %w", err), "choose a file you can write")
		}
		note("wrote %s", p.f.json)
	}
	if p.f.plots != "" {
		files, err := report.WritePlots(p.f.plots, sum)
		if err != nil {
			return failure(fmt.Errorf("--plots: %w", err), "")
		}
		note("wrote %d plots to %s", len(files), p.f.plots)
	}
	return nil
}
