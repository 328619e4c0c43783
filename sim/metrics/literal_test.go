package metrics_test

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"

	"github.com/fairlease/fairlease/sim/metrics"
)

// literal computes the metrics of DESIGN.md §4 the slow way, as a second
// opinion on Compute: no event queue, no running state. It cuts time at
// every instant where anything changes and, on each piece, asks every row
// afresh whether it holds, waits or demands. O(rows²) and proud of it.
//
// Readings the contract leaves to us, written down once:
//   - a run holds cores on [start, end); an ideal interval is [submit, submit+runtime);
//   - a request waits from its submit until it starts (anywhere) or, if it never
//     starts, until decided;
//   - a rejected request demands its cores from its decision to submit+runtime;
//   - quantiles are nearest-rank: the smallest wait w with #{waits <= w} >= q·n.
func literal(rows []metrics.Row, o metrics.Options) metrics.Report {
	var rep metrics.Report
	if len(rows) == 0 {
		return rep
	}
	C := float64(o.Capacity)
	weight := func(g string) float64 {
		if o.Weights == nil {
			return 1
		}
		return o.Weights(g)
	}
	none := metrics.None
	started := func(r metrics.Row) bool { return r.Start != none }
	local := func(r metrics.Row) bool { return started(r) && (r.Site == "" || r.Site == "local") }
	idealAt := func(r metrics.Row, t time.Duration) bool { return r.Submit <= t && t < r.Submit+r.Runtime }
	holdsAt := func(r metrics.Row, t time.Duration) bool { return started(r) && r.Start <= t && t < r.End }
	waitEnd := func(r metrics.Row) time.Duration {
		if started(r) {
			return r.Start
		}
		return r.Decided
	}
	waitsAt := func(r metrics.Row, t time.Duration) bool { return r.Submit <= t && t < waitEnd(r) }
	rejectedAt := func(r metrics.Row, t time.Duration) bool {
		return r.Decision == metrics.Rejected && r.Decided <= t && idealAt(r, t)
	}

	var groups []string
	for _, r := range rows {
		if !slices.Contains(groups, r.Group) {
			groups = append(groups, r.Group)
		}
	}
	slices.Sort(groups)

	// The window: first submit to the last moment anything holds, waits or
	// demands.
	first, last := rows[0].Submit, rows[0].Submit
	var cuts []time.Duration
	for _, r := range rows {
		first = min(first, r.Submit)
		last = max(last, waitEnd(r))
		if started(r) {
			last = max(last, r.End)
		}
		if r.Decision == metrics.Rejected && r.Decided < r.Submit+r.Runtime {
			last = max(last, r.Submit+r.Runtime)
		}
		cuts = append(cuts, r.Submit, r.Submit+r.Runtime, r.Start, r.End, r.Decided)
	}
	cuts = slices.DeleteFunc(cuts, func(t time.Duration) bool { return t < first || t > last })
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)

	var dev float64
	heldInt := map[string]float64{}
	targetInt := map[string]float64{}
	for i := 0; i+1 < len(cuts); i++ {
		t := cuts[i]
		dt := (cuts[i+1] - t).Seconds()
		held := map[string]float64{}
		demand := map[string]float64{}
		for _, r := range rows {
			c := float64(r.Cores)
			if holdsAt(r, t) {
				held[r.Group] += c
				demand[r.Group] += c
			}
			if waitsAt(r, t) || rejectedAt(r, t) {
				demand[r.Group] += c
			}
		}
		target := fill(C, groups, demand, weight)
		var sum float64
		for _, g := range groups {
			sum += math.Abs(held[g] - target[g])
			heldInt[g] += min(held[g], demand[g]) * dt
			targetInt[g] += target[g] * dt
		}
		dev += sum / 2 / C * dt
	}
	if last > first {
		rep.ShareDeviation = dev / (last - first).Seconds()
	}

	var used float64
	lastLocal := first
	for _, r := range rows {
		if local(r) {
			used += float64(r.Cores) * (r.End - r.Start).Seconds()
			lastLocal = max(lastLocal, r.End)
		}
	}
	if lastLocal > first {
		rep.Utilization = used / (C * (lastLocal - first).Seconds())
	}

	var xs []float64
	for _, g := range groups {
		if targetInt[g] > 0 {
			xs = append(xs, heldInt[g]/targetInt[g])
		}
	}
	var s, s2 float64
	for _, x := range xs {
		s += x
		s2 += x * x
	}
	if s2 > 0 {
		rep.Jain = s * s / (float64(len(xs)) * s2)
	}

	// In-share at submission: at that instant releases have happened and
	// starts have not, so a run held then began strictly before and ends
	// strictly after.
	late := 0
	for _, r := range rows {
		t := r.Submit
		var activeW float64
		for _, g := range groups {
			if slices.ContainsFunc(rows, func(q metrics.Row) bool { return q.Group == g && idealAt(q, t) }) {
				activeW += weight(g)
			}
		}
		var held float64
		for _, q := range rows {
			if q.Group == r.Group && started(q) && q.Start < t && t < q.End {
				held += float64(q.Cores)
			}
		}
		if held+float64(r.Cores) <= C*weight(r.Group)/activeW+1e-9 {
			rep.InShareRequests++
			if !started(r) || r.Start-r.Submit > o.Grace {
				late++
			}
		}
	}
	if rep.InShareRequests > 0 {
		rep.InShareLate = float64(late) / float64(rep.InShareRequests)
	}

	var waits []time.Duration
	for _, r := range rows {
		if started(r) {
			waits = append(waits, r.Start-r.Submit)
		}
		if !local(r) && started(r) {
			rep.OverflowCoreHours += float64(r.Cores) * (r.End - r.Start).Hours()
		}
	}
	rep.WaitP50 = nearestRank(waits, 50)
	rep.WaitP95 = nearestRank(waits, 95)
	rep.WaitP99 = nearestRank(waits, 99)

	n := float64(len(rows))
	for _, r := range rows {
		// The first answer: a grant is never revisited; a rejection or
		// overflow decided at the submit instant was the first answer;
		// anything else was told to wait first.
		atOnce := r.Decided != none && r.Decided == r.Submit
		switch {
		case r.Decision == metrics.Granted:
			rep.GrantedNow += 1 / n
		case r.Decision == metrics.Rejected && atOnce:
			rep.Rejected += 1 / n
		case r.Decision == metrics.Overflowed && atOnce:
			rep.Overflowed += 1 / n
		default:
			rep.Deferred += 1 / n
		}
	}
	return rep
}

// fill is the weighted max-min fair split of c over demands, by rounds: a
// group whose demand fits under the current level gets all of it and
// leaves; when none fits, the rest split what is left by weight.
func fill(c float64, groups []string, demand map[string]float64, weight func(string) float64) map[string]float64 {
	target := map[string]float64{}
	var open []string
	for _, g := range groups {
		if demand[g] > 0 {
			open = append(open, g)
		}
	}
	left := c
	for len(open) > 0 {
		var ws float64
		for _, g := range open {
			ws += weight(g)
		}
		level := left / ws
		var rest []string
		for _, g := range open {
			if demand[g] <= level*weight(g) {
				target[g] = demand[g]
				left -= demand[g]
			} else {
				rest = append(rest, g)
			}
		}
		if len(rest) == len(open) {
			for _, g := range open {
				target[g] = level * weight(g)
			}
			break
		}
		open = rest
	}
	return target
}

// nearestRank returns the smallest x in xs with at least p % of xs <= x,
// in seconds, counting in integers so that no rounding moves a rank.
func nearestRank(xs []time.Duration, p int) float64 {
	sorted := slices.Sorted(slices.Values(xs))
	for i, x := range sorted {
		if 100*(i+1) >= p*len(sorted) {
			return x.Seconds()
		}
	}
	return 0
}

// genSchedule draws a small schedule that passes Check: a few groups,
// times on a 10-minute grid so that instants coincide often, runs that
// may be shorter or longer than their runtime, zero-length runs, and
// every decision. Capacity is not respected: the metrics must not care.
func genSchedule(t *rapid.T) ([]metrics.Row, metrics.Options) {
	const unit = 10 * time.Minute
	at := func(label string, lo, hi int) time.Duration {
		return time.Duration(rapid.IntRange(lo, hi).Draw(t, label)) * unit
	}
	capacity := rapid.Int64Range(1, 12).Draw(t, "capacity")
	ngroups := rapid.IntRange(1, 4).Draw(t, "groups")
	weights := map[string]float64{}
	for g := range ngroups {
		weights[fmt.Sprint("g", g)] = rapid.SampledFrom([]float64{1, 1, 2, 3, 0.5}).Draw(t, "weight")
	}
	n := rapid.IntRange(1, 12).Draw(t, "rows")
	rows := make([]metrics.Row, n)
	for i := range rows {
		r := metrics.Row{
			ID:      fmt.Sprint("r", i),
			Group:   fmt.Sprint("g", rapid.IntRange(0, ngroups-1).Draw(t, "group")),
			Cores:   rapid.Int64Range(1, capacity+2).Draw(t, "cores"),
			Submit:  at("submit", 0, 20),
			Runtime: at("runtime", 1, 10),
			Decided: metrics.None, Start: metrics.None, End: metrics.None,
		}
		r.User = r.Group + "-u"
		run := func(wait time.Duration) {
			r.Start = r.Submit + wait
			r.End = r.Start + at("length", 0, 12)
		}
		switch rapid.IntRange(0, 3).Draw(t, "decision") {
		case 0:
			r.Decision = metrics.Granted
			run(0)
			r.Site = rapid.SampledFrom([]string{"", "local"}).Draw(t, "site")
		case 1:
			r.Decision = metrics.Deferred
			run(at("wait", 0, 12))
			r.Site = "local"
		case 2:
			// Like the simulator: an overflow is decided when it starts
			// on the other site.
			r.Decision = metrics.Overflowed
			run(at("wait", 0, 8))
			r.Decided = r.Start
			r.Site = rapid.SampledFrom([]string{"ec2", "partner"}).Draw(t, "site")
		case 3:
			r.Decision = metrics.Rejected
			r.Decided = r.Submit + at("decided", 0, 14)
		}
		rows[i] = r
	}
	o := metrics.Options{
		Capacity: capacity,
		Weights:  func(g string) float64 { return weights[g] },
		Grace:    at("grace", 0, 8),
	}
	if rapid.Bool().Draw(t, "default weights") {
		o.Weights = nil // equal weights
	}
	return rows, o
}

// TestComputeMatchesLiteral: Compute agrees with the literal reading of
// §4 on random small schedules.
func TestComputeMatchesLiteral(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		rows, o := genSchedule(t)
		if err := metrics.Check(rows); err != nil {
			t.Fatalf("generator made an invalid schedule: %v", err)
		}
		got, _, err := metrics.Compute(rows, o)
		if err != nil {
			t.Fatalf("Compute: %v", err)
		}
		want := literal(rows, o)
		opts := cmp.Options{cmpopts.EquateApprox(0, 1e-9), cmpopts.IgnoreUnexported(metrics.Report{})}
		if diff := cmp.Diff(want, got, opts); diff != "" {
			t.Fatalf("Compute(%d rows, C=%d, grace %v) differs from the literal definition (-want +got):\n%s\nrows:\n%s",
				len(rows), o.Capacity, o.Grace, diff, dump(rows))
		}
	})
}

// dump prints rows in hours for a failure message.
func dump(rows []metrics.Row) string {
	h := func(d time.Duration) string {
		if d == metrics.None {
			return "-"
		}
		return fmt.Sprintf("%gh", d.Hours())
	}
	var s string
	for _, r := range rows {
		s += fmt.Sprintf("  %s %s cores=%d submit=%s runtime=%s %s decided=%s start=%s end=%s site=%q\n",
			r.ID, r.Group, r.Cores, h(r.Submit), h(r.Runtime), r.Decision, h(r.Decided), h(r.Start), h(r.End), r.Site)
	}
	return s
}
