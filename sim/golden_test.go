package sim_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/sim"
	"github.com/fairlease/fairlease/sim/metrics"
	"github.com/fairlease/fairlease/sim/workload"
)

var update = flag.Bool("update", false, "rewrite sim/testdata/*.golden from this run (go test ./sim -run Golden -update)")

// TestGolden replays synthetic scenarios through every preset and compares
// the metrics, rendered at fixed precision, with sim/testdata/*.golden. A
// change of policy, simulator or metrics shows up as a reviewable diff;
// regenerate with -update only once the diff is understood.
func TestGolden(t *testing.T) {
	tests := map[string]struct {
		scenario string
		seed     int64
		adjust   func(*workload.ParamScan)
	}{
		"biggrid-seed1": {scenario: "biggrid", seed: 1},
		// Two days of the default scan mix with smaller bursts: every
		// mechanism gets exercised in well under a second.
		"paramscan-small-seed1": {scenario: "paramscan", seed: 1, adjust: func(p *workload.ParamScan) {
			p.Span = 2 * 24 * time.Hour
			p.FirstBurstWithin = 12 * time.Hour
			p.BurstGap = 12 * time.Hour
			p.BurstSize = [2]int{64, 512}
		}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := generated(t, tt.scenario, tt.seed, tt.adjust)
			out, err := sim.Compare(s, presets(), sim.CompareOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := render(name, s, out)
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./sim -run Golden -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("metrics of %s: got … want %s (-want +got):\n%s", name, path, diff)
			}
		})
	}
}

// render writes the metrics of each run, one block per policy, at a
// precision that survives floating-point noise across platforms.
func render(name string, s *sim.Scenario, out []sim.Outcome) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (trace %s): %d requests on %d hosts, %d cores; default policy, grace 1h\n", name, s.Name, len(s.Jobs), len(s.Hosts), s.Capacity())
	for _, o := range out {
		r := o.Report
		counts := map[metrics.Decision]int{}
		for _, row := range o.Result.Rows {
			counts[metrics.FirstDecision(row)]++
		}
		fmt.Fprintf(&b, "\n%s\n", o.Spec.Name)
		line := func(name, format string, v any) { fmt.Fprintf(&b, "  %-20s "+format+"\n", name, v) }
		line("utilization", "%.4f", r.Utilization)
		line("share_deviation", "%.4f", r.ShareDeviation)
		line("jain", "%.4f", r.Jain)
		line("in_share_late", "%.4f", r.InShareLate)
		line("in_share_requests", "%d", r.InShareRequests)
		line("wait_p50_s", "%.0f", r.WaitP50)
		line("wait_p95_s", "%.0f", r.WaitP95)
		line("wait_p99_s", "%.0f", r.WaitP99)
		line("granted_now", "%.4f", r.GrantedNow)
		line("deferred", "%.4f", r.Deferred)
		line("overflowed", "%.4f", r.Overflowed)
		line("rejected", "%.4f", r.Rejected)
		line("overflow_core_hours", "%.2f", r.OverflowCoreHours)
		line("unplaceable", "%d", r.Unplaceable)
		line("first decisions", "%s", fmt.Sprintf("granted %d, deferred %d, overflowed %d, rejected %d",
			counts[metrics.Granted], counts[metrics.Deferred], counts[metrics.Overflowed], counts[metrics.Rejected]))
	}
	return b.String()
}
