package workload

import (
	"fmt"
	"strings"
	"time"
)

// scenarios are the built-in workloads, in the order Scenarios lists them.
var scenarios = []struct {
	name string
	make func() ParamScan
}{
	{"paramscan", DefaultParamScan},
	{"paramscan-heavy", heavy},
	{"biggrid", bigGrid},
}

// heavy has four scan groups bursting twice as often, in bursts of at most
// 1024 VMs: scans carry most of the 85 % load, bursts of different groups
// overlap, and the background shrinks towards its floor.
func heavy() ParamScan {
	p := DefaultParamScan()
	p.Name = "paramscan-heavy"
	p.ScanGroups = 4
	p.BurstSize = [2]int{256, 1024}
	p.BurstGap = 24 * time.Hour
	p.FirstBurstWithin = 24 * time.Hour
	p.Load = 0.85
	p.BackgroundMinLoad = 0.05
	return p
}

// bigGrid is the BiG Grid example (DESIGN.md §7): 1024 one-core one-hour
// VMs at t=0 on 16 × 8 cores, eight hours of work for the whole site, over
// a light background. Requests are exactly one hour: the scan's length is
// known.
func bigGrid() ParamScan {
	p := DefaultParamScan()
	p.Name = "biggrid"
	p.Span = 24 * time.Hour
	p.Load = 0.5
	p.UsersPerGroup = 1

	p.ScanGroups = 1
	p.Bursts = 1
	p.FirstBurstWithin = 0
	p.BurstSize = [2]int{1024, 1024}
	p.SubmitRate = 0
	p.TaskRuntime = time.Hour
	p.RuntimeSigma = 0
	p.StragglerFrac = 0
	p.RequestSlack = 0

	p.BackgroundGroups = 2
	p.BackgroundVMs = [2]int{1, 4}
	p.BackgroundCores = [2]int{1, 2}
	p.BackgroundRuntime = [2]time.Duration{5 * time.Minute, 4 * time.Hour}
	return p
}

// Scenarios names the built-in workloads; "paramscan" is the default.
func Scenarios() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}

// ByName returns a built-in scenario's parameters, to generate as they are
// or to adjust first.
func ByName(name string) (ParamScan, error) {
	for _, s := range scenarios {
		if s.name == name {
			return s.make(), nil
		}
	}
	return ParamScan{}, fmt.Errorf("workload: unknown scenario %q (known: %s)", name, strings.Join(Scenarios(), ", "))
}
