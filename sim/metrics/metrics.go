// Package metrics computes the simulation metrics of a schedule: one row
// per request saying when it was submitted, decided, started and ended.
// It knows nothing of the policy that produced the schedule, so anyone can
// recompute the figures from the CSV files the simulator writes.
package metrics

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

// Decision is the final outcome of a request.
type Decision string

// Final outcomes.
const (
	Granted    Decision = "granted"    // started at once, locally
	Deferred   Decision = "deferred"   // waited, then started locally
	Overflowed Decision = "overflowed" // ran on another site
	Rejected   Decision = "rejected"   // never ran
)

// None marks a time that does not apply (never decided, never started).
const None = time.Duration(-1)

// Row is one request of a schedule. Times are offsets from the trace start.
type Row struct {
	ID       string
	Group    string
	User     string
	Cores    int64
	Submit   time.Duration
	Runtime  time.Duration
	Decision Decision
	// Decided is when the request stopped waiting without a local start
	// (rejection or overflow); None otherwise.
	Decided time.Duration
	// Start and End bound the run, locally or on Site; None if it never ran.
	Start, End time.Duration
	Site       string
}

// Local reports whether the row ran on the local site.
func (r Row) Local() bool { return r.Start != None && (r.Site == "" || r.Site == "local") }

// Report holds the metrics of one schedule; field names are the contract.
type Report struct {
	Utilization       float64 `json:"utilization"`
	ShareDeviation    float64 `json:"share_deviation"`
	Jain              float64 `json:"jain"`
	InShareLate       float64 `json:"in_share_late"`
	InShareRequests   int     `json:"in_share_requests"`
	WaitP50           float64 `json:"wait_p50_s"`
	WaitP95           float64 `json:"wait_p95_s"`
	WaitP99           float64 `json:"wait_p99_s"`
	GrantedNow        float64 `json:"granted_now"`
	Deferred          float64 `json:"deferred"`
	Overflowed        float64 `json:"overflowed"`
	Rejected          float64 `json:"rejected"`
	OverflowCoreHours float64 `json:"overflow_core_hours"`
	Unplaceable       int     `json:"unplaceable"`

	idleDev float64
}

// IdleDeviation is the part of share_deviation that comes from capacity
// left idle while groups demanded it: ½ (Σ target − Σ held) / C, averaged.
func (r Report) IdleDeviation() float64 { return r.idleDev }

// Options are the parameters of the metrics.
type Options struct {
	// Capacity is C, the local capacity in cores.
	Capacity int64
	// Weights maps a group to its weight; missing groups weigh 1.
	Weights func(group string) float64
	// Grace is how long an in-share request may wait before it is late.
	Grace time.Duration
	// Samples, when > 0, asks for that many evenly spaced samples of the
	// timeline in Series.
	Samples int
}

// Series is the timeline sampled for plots.
type Series struct {
	T      []time.Duration
	Used   []float64            // cores used locally
	Held   map[string][]float64 // per group, anywhere
	Target map[string][]float64
}

// FirstDecision derives the first decision of a row from its times: a
// request started at submission was granted, one rejected or overflowed at
// submission was decided at once, everything else was first deferred.
func FirstDecision(r Row) Decision {
	switch {
	case r.Decision == Granted:
		return Granted
	case (r.Decision == Rejected || r.Decision == Overflowed) && r.Decided == r.Submit:
		return r.Decision
	}
	return Deferred
}

// Check validates rows before computing anything from them.
func Check(rows []Row) error {
	seen := make(map[string]bool, len(rows))
	for i, r := range rows {
		switch {
		case seen[r.ID]:
			return fmt.Errorf("row %d: id %q repeats", i+1, r.ID)
		case r.Cores <= 0:
			return fmt.Errorf("row %d (%s): cores must be > 0", i+1, r.ID)
		case r.Runtime <= 0:
			return fmt.Errorf("row %d (%s): runtime must be > 0", i+1, r.ID)
		case (r.Start == None) != (r.End == None):
			return fmt.Errorf("row %d (%s): start and end must both be set or both be empty", i+1, r.ID)
		case r.Start != None && (r.Start < r.Submit || r.End < r.Start):
			return fmt.Errorf("row %d (%s): needs submit <= start <= end", i+1, r.ID)
		case r.Decided != None && r.Decided < r.Submit:
			return fmt.Errorf("row %d (%s): decided before submit", i+1, r.ID)
		}
		switch r.Decision {
		case Granted, Deferred:
			if !r.Local() {
				return fmt.Errorf("row %d (%s): %s but no local start", i+1, r.ID, r.Decision)
			}
		case Overflowed:
			if r.Start == None || r.Local() {
				return fmt.Errorf("row %d (%s): overflowed rows run on another site", i+1, r.ID)
			}
		case Rejected:
			if r.Start != None {
				return fmt.Errorf("row %d (%s): rejected but started", i+1, r.ID)
			}
			// Without a decision time the request would wait, and
			// demand, for ever.
			if r.Decided == None {
				return fmt.Errorf("row %d (%s): rejected rows need a decided time", i+1, r.ID)
			}
		default:
			return fmt.Errorf("row %d (%s): unknown decision %q", i+1, r.ID, r.Decision)
		}
		seen[r.ID] = true
	}
	return nil
}

// event kinds in the order they apply at one instant: releases first,
// then the in-share test of requests submitted at that instant, then starts.
const (
	evEnd      = iota // held -
	evIdealEnd        // active -
	evWaitEnd         // waiting - (start or decision)
	evRejEnd          // rejected demand -
	evIdeal           // active +
	evSubmit          // in-share test, waiting +
	evRejStart        // rejected demand +
	evStart           // held +
)

type event struct {
	t    time.Duration
	kind int8
	row  int32
}

// key orders events by time, then kind, in one integer.
func (e event) key() int64 { return int64(e.t)<<3 | int64(e.kind) }

type groupState struct {
	w                       float64
	held, wait, rej         int64
	ideal                   int
	heldInt, targetInt, min float64
	pos                     int // index in the demanding list, -1 if absent
}

func (g *groupState) demand() int64 { return g.held + g.wait + g.rej }

// Compute returns the metrics of rows.
func Compute(rows []Row, o Options) (Report, *Series, error) {
	var rep Report
	if err := Check(rows); err != nil {
		return rep, nil, err
	}
	if o.Capacity <= 0 {
		return rep, nil, fmt.Errorf("metrics: capacity must be > 0")
	}
	if len(rows) == 0 {
		return rep, nil, nil
	}
	weight := o.Weights
	if weight == nil {
		weight = func(string) float64 { return 1 }
	}
	C := float64(o.Capacity)

	var lastLocal time.Duration // utilization's span ends at the last local end
	gi := make(map[string]int)
	var gs []*groupState
	gidx := make([]int32, len(rows))
	evs := make([]event, 0, 6*len(rows))
	for i, r := range rows {
		k, ok := gi[r.Group]
		if !ok {
			k = len(gs)
			gi[r.Group] = k
			gs = append(gs, &groupState{w: weight(r.Group), pos: -1})
		}
		gidx[i] = int32(k)
		ri := int32(i)
		evs = append(evs, event{r.Submit, evSubmit, ri}, event{r.Submit, evIdeal, ri}, event{r.Submit + r.Runtime, evIdealEnd, ri})
		waitEnd := r.Decided
		if r.Start != None {
			waitEnd = r.Start
			// A zero-length run holds nothing; its end event would come
			// before its start at that instant and lower held for the
			// in-share test of requests submitted then.
			if r.End > r.Start {
				evs = append(evs, event{r.Start, evStart, ri}, event{r.End, evEnd, ri})
			}
		}
		if r.Local() {
			lastLocal = max(lastLocal, r.End)
		}
		if waitEnd != None {
			evs = append(evs, event{waitEnd, evWaitEnd, ri})
		}
		if r.Decision == Rejected && r.Decided != None && r.Decided < r.Submit+r.Runtime {
			evs = append(evs, event{r.Decided, evRejStart, ri}, event{r.Submit + r.Runtime, evRejEnd, ri})
		}
	}
	slices.SortFunc(evs, func(a, b event) int { return cmp.Compare(a.key(), b.key()) })

	var (
		first      = evs[0].t
		activeW    float64
		usedLocal  float64 // core-seconds
		devInt     float64
		inShare    int
		late       int
		series     *Series
		nextSample time.Duration
		step       time.Duration
		localHeld  int64
		span       time.Duration
	)
	// The averaging window ends at the last moment anything holds, waits
	// or demands cores. An ideal end alone is none of these: a run that
	// ended before its ideal interval did demands nothing after its end.
	last := first
	for _, e := range evs {
		if e.kind != evIdealEnd {
			last = max(last, e.t)
		}
	}
	span = last - first
	if o.Samples > 0 && span > 0 {
		series = &Series{Held: map[string][]float64{}, Target: map[string][]float64{}}
		step = max(span/time.Duration(o.Samples), 1)
		nextSample = first
	}
	demands := make([]float64, len(gs))
	targets := make([]float64, len(gs))
	var demanding []int
	prev := first
	i := 0
	for i < len(evs) {
		t := evs[i].t
		if dt := (t - prev).Seconds(); dt > 0 {
			// Integrate the segment [prev, t).
			for _, k := range demanding {
				demands[k] = float64(gs[k].demand())
			}
			waterFill(C, demanding, demands, gs, targets)
			var dev float64
			for _, k := range demanding {
				g := gs[k]
				h := float64(g.held)
				dev += math.Abs(h - targets[k])
				g.heldInt += h * dt
				g.targetInt += targets[k] * dt
				g.min += min(h, demands[k]) * dt
			}
			devInt += dev / 2 / C * dt
			var sh, st float64
			for _, k := range demanding {
				sh += float64(gs[k].held)
				st += targets[k]
			}
			rep.idleDev += max(0, st-sh) / 2 / C * dt
			usedLocal += float64(localHeld) * dt
			for series != nil && nextSample < t && nextSample < last {
				series.T = append(series.T, nextSample)
				series.Used = append(series.Used, float64(localHeld))
				for name, k := range gi {
					series.Held[name] = append(series.Held[name], float64(gs[k].held))
					tg := 0.0
					if gs[k].pos >= 0 {
						tg = targets[k]
					}
					series.Target[name] = append(series.Target[name], tg)
				}
				nextSample += step
			}
			for _, k := range demanding {
				targets[k] = 0
			}
		}
		prev = t
		for ; i < len(evs) && evs[i].t == t; i++ {
			e := evs[i]
			r := &rows[e.row]
			k := int(gidx[e.row])
			g := gs[k]
			before := g.demand() > 0
			switch e.kind {
			case evEnd:
				g.held -= r.Cores
				if r.Local() {
					localHeld -= r.Cores
				}
			case evIdealEnd:
				if g.ideal--; g.ideal == 0 {
					activeW -= g.w
				}
			case evWaitEnd:
				g.wait -= r.Cores
			case evRejEnd:
				g.rej -= r.Cores
			case evIdeal:
				if g.ideal == 0 {
					activeW += g.w
				}
				g.ideal++
			case evSubmit:
				g.wait += r.Cores
				share := C * g.w / activeW
				if float64(g.held+r.Cores) <= share+1e-9 {
					inShare++
					if r.Start == None || r.Start-r.Submit > o.Grace {
						late++
					}
				}
			case evRejStart:
				g.rej += r.Cores
			case evStart:
				g.held += r.Cores
				if r.Local() {
					localHeld += r.Cores
				}
			}
			// Keep the list of groups with demand current, so a segment
			// costs what is demanded, not how many groups exist.
			if after := g.demand() > 0; after != before {
				if after {
					g.pos = len(demanding)
					demanding = append(demanding, k)
				} else {
					j := g.pos
					lastK := demanding[len(demanding)-1]
					demanding[j] = lastK
					gs[lastK].pos = j
					demanding = demanding[:len(demanding)-1]
					g.pos = -1
				}
			}
		}
	}

	// Utilization spans first submit to last local end.
	firstSubmit := first
	if lastLocal > firstSubmit {
		rep.Utilization = usedLocal / (C * (lastLocal - firstSubmit).Seconds())
	}
	if span > 0 {
		rep.idleDev /= span.Seconds()
		rep.ShareDeviation = devInt / span.Seconds()
	}
	var xs []float64
	for _, g := range gs {
		if g.targetInt > 0 {
			xs = append(xs, g.min/g.targetInt)
		}
	}
	rep.Jain = jain(xs)
	rep.InShareRequests = inShare
	if inShare > 0 {
		rep.InShareLate = float64(late) / float64(inShare)
	}
	var waits []float64
	n := float64(len(rows))
	for _, r := range rows {
		if r.Start != None {
			waits = append(waits, (r.Start - r.Submit).Seconds())
		}
		switch FirstDecision(r) {
		case Granted:
			rep.GrantedNow++
		case Deferred:
			rep.Deferred++
		case Overflowed:
			rep.Overflowed++
		case Rejected:
			rep.Rejected++
		}
		if r.Decision == Overflowed {
			rep.OverflowCoreHours += float64(r.Cores) * (r.End - r.Start).Hours()
		}
	}
	rep.GrantedNow /= n
	rep.Deferred /= n
	rep.Overflowed /= n
	rep.Rejected /= n
	sort.Float64s(waits)
	rep.WaitP50 = quantile(waits, 0.50)
	rep.WaitP95 = quantile(waits, 0.95)
	rep.WaitP99 = quantile(waits, 0.99)
	return rep, series, nil
}

// waterFill computes the weighted max-min fair split of c over the
// demands of groups ks into targets.
func waterFill(c float64, ks []int, demands []float64, gs []*groupState, targets []float64) {
	if len(ks) == 0 {
		return
	}
	// Fill in order of demand per weight: a group whose demand is below
	// its weighted level gets all of it, the rest share what is left.
	order := slices.Clone(ks)
	slices.SortFunc(order, func(a, b int) int {
		x, y := demands[a]/gs[a].w, demands[b]/gs[b].w
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	var wsum float64
	for _, k := range order {
		wsum += gs[k].w
	}
	left := c
	for _, k := range order {
		level := left / wsum
		w := gs[k].w
		t := min(demands[k], level*w)
		targets[k] = t
		left -= t
		wsum -= w
	}
}

func jain(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s, s2 float64
	for _, x := range xs {
		s += x
		s2 += x * x
	}
	if s2 == 0 {
		return 0
	}
	return s * s / (float64(len(xs)) * s2)
}

// quantile returns the q-quantile of sorted xs by the nearest-rank method.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}
