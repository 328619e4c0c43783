package sim

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
	"github.com/fairlease/fairlease/sim/metrics"
)

// Spec names one policy run of a comparison.
type Spec struct {
	// Name labels the run in reports ("easy", "fairlease", "reserve=0.2").
	Name string
	// Preset is the fairshare policy ("fcfs", "easy", "caps", "fairorder",
	// "fairlease").
	Preset string
	// Policy is the site policy; nil means the scenario's.
	Policy *policies.Policy
}

// Outcome is what one run produced.
type Outcome struct {
	Spec   Spec
	Result *Result
	Report metrics.Report
	Series *metrics.Series
	Wall   time.Duration
}

// CompareOptions tune a comparison.
type CompareOptions struct {
	Grace   time.Duration // in_share_late grace; default 1 h
	Samples int           // timeline samples for plots; 0 for none
	// Parallel bounds how many runs go at once; default GOMAXPROCS.
	Parallel int
	// Progress, if set, is called with a run's name and jobs submitted so
	// far; it may be called from several goroutines.
	Progress func(name string, done int)
}

// Weights returns the metric weight of each group under pol: the weight of
// its leaf in the share tree.
func Weights(pol *policies.Policy) func(string) float64 {
	return func(g string) float64 {
		if pg, ok := pol.Group(lease.GroupID(g)); ok && pg.Weight > 0 {
			return pg.Weight
		}
		return 1
	}
}

// Compare replays s through every spec, in parallel, and computes the
// metrics of each schedule. Runs share nothing but the read-only scenario.
func Compare(s *Scenario, specs []Spec, o CompareOptions) ([]Outcome, error) {
	if o.Grace == 0 {
		o.Grace = time.Hour
	}
	par := o.Parallel
	if par <= 0 {
		par = runtime.GOMAXPROCS(0)
	}
	out := make([]Outcome, len(specs))
	errs := make([]error, len(specs))
	// Workers take the costliest runs first so that the last one to
	// finish is a short one.
	order := make(chan int, len(specs))
	idx := make([]int, len(specs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cost(specs[b].Preset) - cost(specs[a].Preset) })
	for _, i := range idx {
		order <- i
	}
	close(order)
	var wg sync.WaitGroup
	for range min(par, len(specs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range order {
				out[i], errs[i] = runOne(s, specs[i], o)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", specs[i].Name, err)
		}
	}
	return out, nil
}

// cost ranks presets by how long a replay takes, roughly.
func cost(preset string) int {
	switch preset {
	case "fairlease":
		return 4
	case "fairorder":
		return 3
	case "easy", "caps":
		return 2
	}
	return 1
}

func runOne(s *Scenario, sp Spec, o CompareOptions) (Outcome, error) {
	sc := *s
	if sp.Policy != nil {
		sc.Policy = sp.Policy
	}
	if sc.Policy == nil {
		sc.Policy = policies.Default()
	}
	var ro Options
	if o.Progress != nil {
		ro.Progress = func(done int) { o.Progress(sp.Name, done) }
	}
	t0 := time.Now()
	res, err := Run(&sc, sp.Preset, ro)
	if err != nil {
		return Outcome{}, err
	}
	rep, series, err := metrics.Compute(res.Rows, metrics.Options{
		Capacity: sc.Capacity(), Weights: Weights(sc.Policy), Grace: o.Grace, Samples: o.Samples,
	})
	if err != nil {
		return Outcome{}, err
	}
	rep.Unplaceable = res.Unplaceable
	return Outcome{Spec: sp, Result: res, Report: rep, Series: series, Wall: time.Since(t0)}, nil
}
