package metrics_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fairlease/fairlease/sim/metrics"
)

// Builders for hand-made schedules; times are in hours.

func hours(h float64) time.Duration { return time.Duration(h * float64(time.Hour)) }

// rq is a request not yet decided.
func rq(id, group string, cores int64, submit, runtime float64) metrics.Row {
	return metrics.Row{
		ID: id, Group: group, User: group + "-u1", Cores: cores,
		Submit: hours(submit), Runtime: hours(runtime),
		Decided: metrics.None, Start: metrics.None, End: metrics.None,
	}
}

func granted(r metrics.Row, start, end float64) metrics.Row {
	r.Decision, r.Start, r.End, r.Site = metrics.Granted, hours(start), hours(end), "local"
	return r
}

func deferred(r metrics.Row, start, end float64) metrics.Row {
	r.Decision, r.Start, r.End, r.Site = metrics.Deferred, hours(start), hours(end), "local"
	return r
}

// overflowed runs on site from start to end, decided when it starts (as
// the simulator records it).
func overflowed(r metrics.Row, site string, start, end float64) metrics.Row {
	r.Decision, r.Decided, r.Start, r.End, r.Site = metrics.Overflowed, hours(start), hours(start), hours(end), site
	return r
}

func rejected(r metrics.Row, at float64) metrics.Row {
	r.Decision, r.Decided = metrics.Rejected, hours(at)
	return r
}

var reportOpts = cmp.Options{cmpopts.EquateApprox(0, 1e-12), cmpopts.IgnoreUnexported(metrics.Report{})}

// TestCompute checks every metric of §4 on schedules small enough to work
// out by hand. C = 4 cores and grace = 1 h unless a case says otherwise.
// In the sums, [x,y) is a piece of the timeline in hours; dev is
// ½ Σ_g |held_g − target_g| / C on that piece.
func TestCompute(t *testing.T) {
	tests := map[string]struct {
		rows    []metrics.Row
		weights map[string]float64
		grace   time.Duration // 0 means 1 h
		want    metrics.Report
	}{
		// a alone. a1 holds 4 on [0,2); a2 (2 cores) waits [1,2) and
		// runs [2,3).
		// [0,1) demand 4, target 4, held 4: dev 0. [1,2) demand 6,
		// target min(6, C) = 4, held 4: dev 0. [2,3) 2/2/2: dev 0.
		// utilization = (4·2 + 2·1) / (4 · 3) = 10/12.
		// jain: one group, x = ∫held / ∫target = (4+4+2)/(4+4+2) = 1.
		// in-share: a1 at 0: 0+4 <= 4 yes, started at once. a2 at 1:
		// 4+2 > 4 no. 1 in-share, 0 late.
		// waits {0, 3600}: p50 = 1st of 2 = 0, p95 = p99 = 2nd = 3600.
		"one group alone holds its demand": {
			rows: []metrics.Row{
				granted(rq("a1", "a", 4, 0, 2), 0, 2),
				deferred(rq("a2", "a", 2, 1, 1), 2, 3),
			},
			want: metrics.Report{
				Utilization: 10.0 / 12, ShareDeviation: 0, Jain: 1,
				InShareLate: 0, InShareRequests: 1,
				WaitP50: 0, WaitP95: 3600, WaitP99: 3600,
				GrantedNow: 0.5, Deferred: 0.5,
			},
		},
		// a1 holds all 4 cores on [0,4); b1 (2 cores, ideal [1,2))
		// waits [1,4) and runs [4,5).
		// [0,1) a alone: target 4 = held: dev 0.
		// [1,4) demands a 4, b 2, equal weights: level 2 each, so
		// targets 2, 2; held 4, 0: dev ½(2+2)/4 = 0.5, for 3 h.
		// [4,5) b holds its target 2: dev 0.
		// share_deviation = 0.5·3 / 5 = 0.3.
		// utilization = (4·4 + 2·1) / (4·5) = 0.9.
		// jain: x_a = 16 / (4·1 + 2·3) = 1.6, x_b = 2 / (2·3 + 2·1) = 0.25;
		// (1.85)² / (2 · (1.6² + 0.25²)) = 3.4225 / 5.245.
		// in-share: a1 at 0 (active {a}, share 4): 4 <= 4 yes, on time.
		// b1 at 1 (active {a, b}, share 2): 0+2 <= 2 yes, waited 3 h > 1 h:
		// late. 1 of 2.
		"equal weights, one holds everything while the other waits": {
			rows: []metrics.Row{
				granted(rq("a1", "a", 4, 0, 4), 0, 4),
				deferred(rq("b1", "b", 2, 1, 1), 4, 5),
			},
			want: metrics.Report{
				Utilization: 0.9, ShareDeviation: 0.3, Jain: 3.4225 / 5.245,
				InShareLate: 0.5, InShareRequests: 2,
				WaitP50: 0, WaitP95: 3 * 3600, WaitP99: 3 * 3600,
				GrantedNow: 0.5, Deferred: 0.5,
			},
		},
		// As above with grace 3 h: b1 waited exactly the grace, which is
		// not "more than grace", so nobody is late.
		"a wait of exactly the grace is on time": {
			rows: []metrics.Row{
				granted(rq("a1", "a", 4, 0, 4), 0, 4),
				deferred(rq("b1", "b", 2, 1, 1), 4, 5),
			},
			grace: 3 * time.Hour,
			want: metrics.Report{
				Utilization: 0.9, ShareDeviation: 0.3, Jain: 3.4225 / 5.245,
				InShareLate: 0, InShareRequests: 2,
				WaitP50: 0, WaitP95: 3 * 3600, WaitP99: 3 * 3600,
				GrantedNow: 0.5, Deferred: 0.5,
			},
		},
		// Weights a:b = 2:1. a1 (4 cores) runs [0,2); b1 (3) waits [0,2)
		// and runs [2,4); a2 (1) runs [2,4).
		// [0,2) demands a 4, b 3. Level C/Σw = 4/3 per unit weight: a
		// gets min(4, 8/3) = 8/3, b min(3, 4/3) = 4/3. held 4, 0:
		// dev ½(4/3 + 4/3)/4 = 1/3.
		// [2,4) demands a 1, b 3. a's level 8/3 is above its demand, so a
		// gets 1 and b the remaining 3 (a plain C·w/Σw split would give
		// b only 4/3). held = target: dev 0.
		// share_deviation = (1/3)·2 / 4 = 1/6.
		// utilization = (4·2 + 3·2 + 1·2) / (4·4) = 1.
		// jain: x_a = (8 + 2) / (16/3 + 2) = 15/11, x_b = 6 / (8/3 + 6) = 9/13;
		// (294/143)² / (2 · (225/121 + 81/169)) = 86436 / 95652.
		// in-share at 0 (active {a, b}): a1 4 > 8/3 no, b1 3 > 4/3 no.
		// a2 at 2: a1 released first, a's and b's ideal intervals [0,2)
		// ended, so active {a}, share 4: 0+1 <= 4 yes, on time.
		// waits {0, 0, 7200}: p50 = 2nd = 0, p95 = p99 = 3rd = 7200.
		"weights 2:1, water-fill gives what a does not need to b": {
			rows: []metrics.Row{
				granted(rq("a1", "a", 4, 0, 2), 0, 2),
				deferred(rq("b1", "b", 3, 0, 2), 2, 4),
				granted(rq("a2", "a", 1, 2, 2), 2, 4),
			},
			weights: map[string]float64{"a": 2, "b": 1},
			want: metrics.Report{
				Utilization: 1, ShareDeviation: 1.0 / 6, Jain: 86436.0 / 95652,
				InShareLate: 0, InShareRequests: 1,
				WaitP50: 0, WaitP95: 7200, WaitP99: 7200,
				GrantedNow: 2.0 / 3, Deferred: 1.0 / 3,
			},
		},
		// a1 holds 4 on [0,4). b1 (2 cores, ideal [0,3)) waits [0,1), is
		// rejected at 1 and still demands on [1,3), the rest of its ideal
		// interval.
		// [0,3) demands a 4, b 2: targets 2, 2; held 4, 0: dev 0.5.
		// [3,4) a alone: dev 0. share_deviation = 0.5·3 / 4 = 0.375
		// (0.125 if the rejected demand were dropped).
		// utilization = 16/16. jain: x_a = 16 / (2·3 + 4) = 1.6, x_b =
		// 0 / 6 = 0: 1.6² / (2 · 1.6²) = 0.5.
		// in-share at 0 (share 2 each): a1 no, b1 yes and never started:
		// late. b1 was rejected at 1, not at submit: first deferred.
		"rejected demand runs from the decision to the ideal end": {
			rows: []metrics.Row{
				granted(rq("a1", "a", 4, 0, 4), 0, 4),
				rejected(rq("b1", "b", 2, 0, 3), 1),
			},
			want: metrics.Report{
				Utilization: 1, ShareDeviation: 0.375, Jain: 0.5,
				InShareLate: 1, InShareRequests: 1,
				GrantedNow: 0.5, Deferred: 0.5,
			},
		},
		// b1's ideal interval [0,1) ends before its rejection at 2: it
		// demands only while it waits, [0,2).
		// [0,2) dev 0.5, [2,4) dev 0: share_deviation = 0.5·2 / 4 = 0.25.
		// jain: x_a = 16 / (2·2 + 4·2) = 4/3, x_b = 0: 0.5.
		"rejected after its ideal end demands only while it waits": {
			rows: []metrics.Row{
				granted(rq("a1", "a", 4, 0, 4), 0, 4),
				rejected(rq("b1", "b", 2, 0, 1), 2),
			},
			want: metrics.Report{
				Utilization: 1, ShareDeviation: 0.25, Jain: 0.5,
				InShareLate: 1, InShareRequests: 1,
				GrantedNow: 0.5, Deferred: 0.5,
			},
		},
		// b1 overflows at once to ec2 and runs there [0,2): it holds 2
		// cores but uses none of C.
		// [0,2) demands a 4, b 2: targets 2, 2; held 4, 2: dev ½(2+0)/4 =
		// 0.25. utilization = 4·2 / (4·2) = 1 (1.5 if b1 counted).
		// overflow_core_hours = 2 cores · 2 h = 4.
		// jain: x_a = 8/4 = 2, x_b = 4/4 = 1: 9 / (2·5) = 0.9.
		// in-share at 0: a1 4 > 2 no; b1 2 <= 2 yes, started at once
		// (elsewhere): on time.
		"overflowed: held, not local": {
			rows: []metrics.Row{
				granted(rq("a1", "a", 4, 0, 2), 0, 2),
				overflowed(rq("b1", "b", 2, 0, 2), "ec2", 0, 2),
			},
			want: metrics.Report{
				Utilization: 1, ShareDeviation: 0.25, Jain: 0.9,
				InShareLate: 0, InShareRequests: 1,
				GrantedNow: 0.5, Overflowed: 0.5, OverflowCoreHours: 4,
			},
		},
		// At 1: a1 releases, b1's ideal interval [0,1) ends, a2 and a3
		// are submitted, a2 starts. The in-share tests at 1 see a1's
		// release and b1 gone from active (share_a = 4), but not a2's
		// start: a2 0+4 <= 4 yes, a3 0+1 <= 4 yes (with a2's start first
		// it would be 4+1 > 4).
		// b1 (1 core) is rejected at once at 0 and demands on [0,1).
		// [0,1) demands a 4, b 1: b gets 1, a the other 3; held 4, 0:
		// dev ½(1+1)/4 = 0.25. [1,2) a holds 4 of demand 5, target 4:
		// dev 0. [2,3) a holds its 1: dev 0. share_deviation = 0.25 / 3.
		// utilization = (4 + 4 + 1) / (4·3) = 0.75.
		// jain: x_a = 9 / (3+4+1) = 9/8, x_b = 0: 0.5.
		// in-share at 0 (share 2 each): a1 no; b1 yes, never ran: late.
		// a2, a3 in-share; a3 waited 1 h, not more: on time. 1 of 3 late.
		// waits {0, 0, 3600}.
		"same instant: the in-share test sees the release, not the start": {
			rows: []metrics.Row{
				granted(rq("a1", "a", 4, 0, 1), 0, 1),
				rejected(rq("b1", "b", 1, 0, 1), 0),
				granted(rq("a2", "a", 4, 1, 1), 1, 2),
				deferred(rq("a3", "a", 1, 1, 1), 2, 3),
			},
			want: metrics.Report{
				Utilization: 0.75, ShareDeviation: 0.25 / 3, Jain: 0.5,
				InShareLate: 1.0 / 3, InShareRequests: 3,
				WaitP50: 0, WaitP95: 3600, WaitP99: 3600,
				GrantedNow: 0.5, Deferred: 0.25, Rejected: 0.25,
			},
		},
		// a1's run ends at 2, before its ideal interval [0,4) does. After
		// b1's end at 3 nothing holds, waits or demands, so the window is
		// [0,3], not [0,4].
		// [0,2) demands a 4, b 2 (waiting): dev 0.5. [2,3) b holds its
		// target: dev 0. share_deviation = 0.5·2 / 3 = 1/3.
		// utilization = (4·2 + 2·1) / (4·3) = 10/12.
		// jain: x_a = 8 / (2·2) = 2, x_b = 2 / (2·2 + 2) = 1/3:
		// (7/3)² / (2 · (4 + 1/9)) = 49/74.
		// in-share at 0: a1 no, b1 yes, waited 2 h: late.
		"an ideal end after the last hold does not stretch the window": {
			rows: []metrics.Row{
				granted(rq("a1", "a", 4, 0, 4), 0, 2),
				deferred(rq("b1", "b", 2, 0, 1), 2, 3),
			},
			want: metrics.Report{
				Utilization: 10.0 / 12, ShareDeviation: 1.0 / 3, Jain: 49.0 / 74,
				InShareLate: 1, InShareRequests: 1,
				WaitP50: 0, WaitP95: 7200, WaitP99: 7200,
				GrantedNow: 0.5, Deferred: 0.5,
			},
		},
		// a2 runs for no time at 1: it holds nothing, so a2's in-share
		// test sees held_a = 4 (a1): 4+4 > 4, not in-share.
		// dev 0 throughout; utilization = 4·2 / (4·2) = 1; jain 1.
		"a zero-length run holds nothing at its instant": {
			rows: []metrics.Row{
				granted(rq("a1", "a", 4, 0, 2), 0, 2),
				granted(rq("a2", "a", 4, 1, 1), 1, 1),
			},
			want: metrics.Report{
				Utilization: 1, ShareDeviation: 0, Jain: 1,
				InShareLate: 0, InShareRequests: 1,
				GrantedNow: 1,
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			o := metrics.Options{Capacity: 4, Grace: tt.grace}
			if o.Grace == 0 {
				o.Grace = time.Hour
			}
			if tt.weights != nil {
				o.Weights = func(g string) float64 { return tt.weights[g] }
			}
			got, _, err := metrics.Compute(tt.rows, o)
			if err != nil {
				t.Fatalf("Compute: got error %v, want none", err)
			}
			if diff := cmp.Diff(tt.want, got, reportOpts); diff != "" {
				t.Errorf("Compute: got … want (-want +got):\n%s", diff)
			}
			// The same schedule in another order is the same schedule.
			rev := make([]metrics.Row, len(tt.rows))
			for i, r := range tt.rows {
				rev[len(rev)-1-i] = r
			}
			got2, _, err := metrics.Compute(rev, o)
			if err != nil {
				t.Fatalf("Compute reversed: %v", err)
			}
			if diff := cmp.Diff(got, got2, reportOpts); diff != "" {
				t.Errorf("Compute on reversed rows: got … want the same report (-forward +reversed):\n%s", diff)
			}
		})
	}
}

// TestWaitQuantiles: nearest rank over started leases only.
func TestWaitQuantiles(t *testing.T) {
	// Ten leases waiting 0..9 h and one rejection at once. Of the 10
	// waits, p50 is the ceil(5)th = 4 h, p95 the ceil(9.5)th = 10th = 9 h,
	// p99 the 10th = 9 h. With 100 waits of 0..99 h p95 is the 95th (94 h)
	// and p99 the 99th (98 h).
	tests := map[string]struct {
		n    int
		want [3]float64 // p50, p95, p99 in hours
	}{
		"10 waits":  {n: 10, want: [3]float64{4, 9, 9}},
		"100 waits": {n: 100, want: [3]float64{49, 94, 98}},
		"1 wait":    {n: 1, want: [3]float64{0, 0, 0}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var rows []metrics.Row
			for k := range tt.n {
				rows = append(rows, deferred(rq(fmt.Sprint("a", k), "a", 1, 0, 1), float64(k), float64(k)+1))
			}
			rows = append(rows, rejected(rq("r", "a", 1, 0, 1), 0))
			got, _, err := metrics.Compute(rows, metrics.Options{Capacity: 4, Grace: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			gotQ := [3]float64{got.WaitP50 / 3600, got.WaitP95 / 3600, got.WaitP99 / 3600}
			if gotQ != tt.want {
				t.Errorf("wait p50, p95, p99 in hours: got %v, want %v", gotQ, tt.want)
			}
		})
	}
}

// TestWaterFillTargets reads the targets of a three-group water-fill
// from the sampled series. C = 12, weights a:b:c = 2:1:1, all submitted at
// 0. On [0,1) demands are a 2, b 6 held + 3 waiting = 9, c 4.
// Round 1: level 12/4 = 3 per unit weight; a's 6 covers its 2: a = 2.
// Round 2: 10 left over weight 2, level 5; c's 5 covers its 4: c = 4.
// Round 3: 6 left for b alone: b = min(9, 6) = 6.
// On [1,2) b alone holds 3 of demand 3: target 3.
func TestWaterFillTargets(t *testing.T) {
	rows := []metrics.Row{
		granted(rq("a1", "a", 2, 0, 1), 0, 1),
		granted(rq("b1", "b", 6, 0, 1), 0, 1),
		deferred(rq("b2", "b", 3, 0, 1), 1, 2),
		granted(rq("c1", "c", 4, 0, 1), 0, 1),
	}
	w := map[string]float64{"a": 2, "b": 1, "c": 1}
	_, series, err := metrics.Compute(rows, metrics.Options{
		Capacity: 12, Weights: func(g string) float64 { return w[g] }, Grace: time.Hour, Samples: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &metrics.Series{
		T:      []time.Duration{0, time.Hour},
		Used:   []float64{12, 3},
		Held:   map[string][]float64{"a": {2, 0}, "b": {6, 3}, "c": {4, 0}},
		Target: map[string][]float64{"a": {2, 0}, "b": {6, 3}, "c": {4, 0}},
	}
	if diff := cmp.Diff(want, series, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
		t.Errorf("series: got … want (-want +got):\n%s", diff)
	}
}

// TestSeriesWindow: samples cover the averaging window and no more. Here
// a1's ideal interval [0,4) outlasts everything else, which ends at 3:
// span 3 h over 3 samples puts them at 0, 1 and 2 h.
func TestSeriesWindow(t *testing.T) {
	rows := []metrics.Row{
		granted(rq("a1", "a", 4, 0, 4), 0, 2),
		deferred(rq("b1", "b", 2, 0, 1), 2, 3),
	}
	_, series, err := metrics.Compute(rows, metrics.Options{Capacity: 4, Grace: time.Hour, Samples: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{0, time.Hour, 2 * time.Hour}
	if diff := cmp.Diff(want, series.T); diff != "" {
		t.Errorf("sample times: got … want (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{4, 4, 2}, series.Used); diff != "" {
		t.Errorf("cores used: got … want (-want +got):\n%s", diff)
	}
}

func TestComputeEdges(t *testing.T) {
	ok := []metrics.Row{granted(rq("a1", "a", 1, 0, 1), 0, 1)}
	tests := map[string]struct {
		rows     []metrics.Row
		capacity int64
		wantErr  string // "" = no error and a zero report
	}{
		"no rows":       {capacity: 4},
		"no capacity":   {rows: ok, capacity: 0, wantErr: "capacity"},
		"malformed row": {rows: []metrics.Row{deferred(rq("x", "a", 1, 2, 1), 1, 3)}, capacity: 4, wantErr: "row 1 (x)"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, _, err := metrics.Compute(tt.rows, metrics.Options{Capacity: tt.capacity})
			if tt.wantErr == "" {
				if err != nil || got != (metrics.Report{}) {
					t.Errorf("got %+v, %v; want a zero report and no error", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestFirstDecision(t *testing.T) {
	tests := map[string]struct {
		row  metrics.Row
		want metrics.Decision
	}{
		"granted":                          {row: granted(rq("x", "a", 1, 0, 1), 0, 1), want: metrics.Granted},
		"granted, started later":           {row: granted(rq("x", "a", 1, 0, 1), 2, 3), want: metrics.Granted},
		"deferred":                         {row: deferred(rq("x", "a", 1, 0, 1), 2, 3), want: metrics.Deferred},
		"deferred, started at the instant": {row: deferred(rq("x", "a", 1, 0, 1), 0, 1), want: metrics.Deferred},
		"rejected at submit":               {row: rejected(rq("x", "a", 1, 1, 1), 1), want: metrics.Rejected},
		"rejected after waiting":           {row: rejected(rq("x", "a", 1, 1, 1), 1.5), want: metrics.Deferred},
		"overflowed at submit":             {row: overflowed(rq("x", "a", 1, 1, 1), "ec2", 1, 2), want: metrics.Overflowed},
		"overflowed after waiting":         {row: overflowed(rq("x", "a", 1, 1, 1), "ec2", 3, 4), want: metrics.Deferred},
		"overflowed at submit, ran later": {row: func() metrics.Row {
			r := overflowed(rq("x", "a", 1, 1, 1), "ec2", 2, 3)
			r.Decided = r.Submit
			return r
		}(), want: metrics.Overflowed},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if err := metrics.Check([]metrics.Row{tt.row}); err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := metrics.FirstDecision(tt.row); got != tt.want {
				t.Errorf("FirstDecision: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	first := granted(rq("first", "a", 1, 0, 1), 0, 1)
	good := granted(rq("x", "a", 1, 0, 1), 0, 1)
	edit := func(r metrics.Row, f func(*metrics.Row)) metrics.Row { f(&r); return r }
	tests := map[string]struct {
		row     metrics.Row
		wantErr string // "" = valid
	}{
		"granted":             {row: good},
		"zero-length run":     {row: granted(rq("x", "a", 1, 0, 1), 1, 1)},
		"empty site is local": {row: edit(good, func(r *metrics.Row) { r.Site = "" })},
		"deferred":            {row: deferred(rq("x", "a", 1, 0, 1), 2, 3)},
		"overflowed":          {row: overflowed(rq("x", "a", 1, 0, 1), "ec2", 0, 1)},
		"rejected":            {row: rejected(rq("x", "a", 1, 0, 1), 0)},

		"duplicate id":              {row: edit(good, func(r *metrics.Row) { r.ID = "first" }), wantErr: `id "first" repeats`},
		"no cores":                  {row: edit(good, func(r *metrics.Row) { r.Cores = 0 }), wantErr: "cores must be > 0"},
		"negative cores":            {row: edit(good, func(r *metrics.Row) { r.Cores = -2 }), wantErr: "cores must be > 0"},
		"no runtime":                {row: edit(good, func(r *metrics.Row) { r.Runtime = 0 }), wantErr: "runtime must be > 0"},
		"start without end":         {row: edit(good, func(r *metrics.Row) { r.End = metrics.None }), wantErr: "start and end"},
		"end without start":         {row: edit(good, func(r *metrics.Row) { r.Start = metrics.None }), wantErr: "start and end"},
		"start before submit":       {row: granted(rq("x", "a", 1, 2, 1), 1, 3), wantErr: "submit <= start <= end"},
		"end before start":          {row: granted(rq("x", "a", 1, 0, 1), 2, 1), wantErr: "submit <= start <= end"},
		"decided before submit":     {row: rejected(rq("x", "a", 1, 2, 1), 1), wantErr: "decided before submit"},
		"granted, never started":    {row: edit(good, func(r *metrics.Row) { r.Start, r.End = metrics.None, metrics.None }), wantErr: "granted but no local start"},
		"granted on another site":   {row: edit(good, func(r *metrics.Row) { r.Site = "ec2" }), wantErr: "granted but no local start"},
		"deferred, never started":   {row: edit(rq("x", "a", 1, 0, 1), func(r *metrics.Row) { r.Decision = metrics.Deferred }), wantErr: "deferred but no local start"},
		"overflowed, run locally":   {row: overflowed(rq("x", "a", 1, 0, 1), "local", 0, 1), wantErr: "overflowed rows run on another site"},
		"overflowed, empty site":    {row: overflowed(rq("x", "a", 1, 0, 1), "", 0, 1), wantErr: "overflowed rows run on another site"},
		"overflowed, never started": {row: edit(rejected(rq("x", "a", 1, 0, 1), 0), func(r *metrics.Row) { r.Decision = metrics.Overflowed }), wantErr: "overflowed rows run on another site"},
		"rejected but started":      {row: edit(good, func(r *metrics.Row) { r.Decision, r.Decided = metrics.Rejected, 0 }), wantErr: "rejected but started"},
		"rejected, never decided":   {row: edit(rq("x", "a", 1, 0, 1), func(r *metrics.Row) { r.Decision = metrics.Rejected }), wantErr: "rejected rows need a decided time"},
		"unknown decision":          {row: edit(good, func(r *metrics.Row) { r.Decision = "maybe" }), wantErr: `unknown decision "maybe"`},
		"no decision":               {row: edit(good, func(r *metrics.Row) { r.Decision = "" }), wantErr: `unknown decision ""`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			// The row under test comes second, so errors must name row 2.
			err := metrics.Check([]metrics.Row{first, tt.row})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check: got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check: got nil, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "row 2") {
				t.Errorf("Check: got %q, want it to name row 2 and say %q", err, tt.wantErr)
			}
		})
	}
}
