// Package workload generates synthetic workloads for the simulator. The one
// generator so far, ParamScan, makes bursty parameter scans like the BiG Grid
// example: groups that submit hundreds to thousands of identical short
// one-VM requests at once, heavy-tailed gaps between bursts and a tail of
// stragglers, over a steady trickle of ordinary clusters from other groups.
package workload

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fairlease/fairlease/sim/trace"
)

// Format marks generated traces in trace.Trace.Format. It is not a file
// format: trace.Parse does not read it.
const Format trace.Format = "paramscan"

// ParamScan describes a site and a bursty parameter-scan workload on it.
// Start from DefaultParamScan or ByName; the zero value is not valid.
type ParamScan struct {
	Name string // the trace is called Name-seedN

	Hosts            int
	CoresPerHost     int
	MemoryMiBPerHost int64
	MemoryMiBPerCore int64 // memory of every VM is its cores times this; 0 = unknown

	Span          time.Duration // submissions happen in [0, Span]
	Load          float64       // target average offered load over Span, scans and background together, as a fraction of the site's cores
	UsersPerGroup int           // users group-u1..group-uN submit a group's work

	// Scans: each of ScanGroups groups submits bursts of one-VM requests.
	ScanGroups       int
	Bursts           int           // most bursts per group; 0 = as many as fit in Span
	FirstBurstWithin time.Duration // a group's first burst comes uniformly in [0, FirstBurstWithin]; 0 = at t=0
	BurstSize        [2]int        // min, max VMs per burst, drawn log-uniformly
	BurstGap         time.Duration // median gap between one group's bursts
	GapAlpha         float64       // Pareto shape of the gaps: lower is heavier-tailed (1.5 ~ infinite variance)
	SubmitRate       float64       // VMs per second a group's script submits; 0 = a whole burst at one instant
	ScanCores        int           // cores per scan VM
	TaskRuntime      time.Duration // median run time of one scan VM
	RuntimeSigma     float64       // lognormal spread of scan run times (sigma of the log)
	StragglerFrac    float64       // fraction of a burst's VMs that straggle
	StragglerFactor  [2]float64    // a straggler runs uniformly this many times TaskRuntime

	// RequestSlack: requested length = runtime × (1 + s), s uniform in
	// [0, RequestSlack], rounded up to 5 minutes. Users over-estimate, and
	// how much matters to schedules built on requested lengths.
	RequestSlack float64

	// Background: each of BackgroundGroups groups submits clusters as a
	// Poisson process. Their rate fills Load after the scans are drawn, but
	// never drops below BackgroundMinLoad, so busy scans still compete.
	BackgroundGroups  int
	BackgroundMinLoad float64
	BackgroundVMs     [2]int           // min, max VMs per cluster, log-uniform
	BackgroundCores   [2]int           // min, max cores per VM, log-uniform
	BackgroundRuntime [2]time.Duration // min, max run time, log-uniform
}

// DefaultParamScan is the "paramscan" scenario: three scan groups and five
// background groups on 16 hosts of 8 cores for two weeks, ~70 % loaded.
func DefaultParamScan() ParamScan {
	return ParamScan{
		Name:             "paramscan",
		Hosts:            16,
		CoresPerHost:     8,
		MemoryMiBPerHost: 32 << 10,
		MemoryMiBPerCore: 2 << 10,
		Span:             14 * 24 * time.Hour,
		Load:             0.7,
		UsersPerGroup:    3,

		ScanGroups:       3,
		FirstBurstWithin: 2 * 24 * time.Hour,
		BurstSize:        [2]int{256, 2048},
		BurstGap:         2 * 24 * time.Hour,
		GapAlpha:         1.5,
		SubmitRate:       100,
		ScanCores:        1,
		TaskRuntime:      time.Hour,
		RuntimeSigma:     0.3,
		StragglerFrac:    0.05,
		StragglerFactor:  [2]float64{4, 10},
		RequestSlack:     1.0,

		BackgroundGroups:  5,
		BackgroundMinLoad: 0.1,
		BackgroundVMs:     [2]int{1, 16},
		BackgroundCores:   [2]int{1, 4},
		BackgroundRuntime: [2]time.Duration{5 * time.Minute, 24 * time.Hour},
	}
}

// Limits that keep durations far from overflowing time.Duration (292 years)
// and a typo from asking for a billion jobs.
const (
	maxDuration = 100 * 365 * 24 * time.Hour
	maxJobs     = 20_000_000
	requestStep = 5 * time.Minute
)

// Validate reports every bad field by name. Scan fields are checked only
// when there are scan groups, background fields only with background groups.
func (p ParamScan) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("workload: %s %s", field, fmt.Sprintf(format, args...)))
	}
	// NaN fails every comparison, so ranges are written as !(ok).
	frac := func(field string, v, lo, hi float64) {
		if !(v >= lo && v <= hi) {
			bad(field, "must be in [%g, %g], got %g", lo, hi, v)
		}
	}
	dur := func(field string, v, lo time.Duration) {
		if v < lo || v > maxDuration {
			bad(field, "must be in [%v, %v], got %v", lo, maxDuration, v)
		}
	}
	intRange := func(field string, v [2]int, hi int) {
		if v[0] < 1 || v[1] < v[0] || v[1] > hi {
			bad(field, "must be min,max with 1 <= min <= max <= %d, got %d,%d", hi, v[0], v[1])
		}
	}

	if p.Name == "" {
		bad("Name", "must not be empty")
	}
	if p.Hosts < 1 {
		bad("Hosts", "must be at least 1, got %d", p.Hosts)
	}
	if p.CoresPerHost < 1 {
		bad("CoresPerHost", "must be at least 1, got %d", p.CoresPerHost)
	}
	if p.MemoryMiBPerHost < 0 {
		bad("MemoryMiBPerHost", "must not be negative, got %d", p.MemoryMiBPerHost)
	}
	if p.MemoryMiBPerCore < 0 {
		bad("MemoryMiBPerCore", "must not be negative, got %d", p.MemoryMiBPerCore)
	}
	dur("Span", p.Span, time.Second)
	frac("Load", p.Load, 0, 10)
	if p.UsersPerGroup < 1 {
		bad("UsersPerGroup", "must be at least 1, got %d", p.UsersPerGroup)
	}
	if p.ScanGroups < 0 {
		bad("ScanGroups", "must not be negative, got %d", p.ScanGroups)
	}
	if p.BackgroundGroups < 0 {
		bad("BackgroundGroups", "must not be negative, got %d", p.BackgroundGroups)
	}
	if p.ScanGroups <= 0 && p.BackgroundGroups <= 0 {
		bad("ScanGroups", "and BackgroundGroups must not both be 0")
	}
	// fits says whether n VMs of c cores can all run at once: the worst
	// shape a group may ask for must be placeable, or it waits forever.
	fits := func(field string, n, c int) {
		if p.Hosts < 1 || p.CoresPerHost < 1 || c < 1 || c > p.CoresPerHost {
			return
		}
		perHost := p.CoresPerHost / c
		if p.MemoryMiBPerCore > 0 {
			perHost = min(perHost, int(p.MemoryMiBPerHost/(int64(c)*p.MemoryMiBPerCore)))
			if perHost == 0 {
				bad("MemoryMiBPerHost", "%d is too small for a VM of %d cores at MemoryMiBPerCore %d", p.MemoryMiBPerHost, c, p.MemoryMiBPerCore)
				return
			}
		}
		if n > p.Hosts*perHost {
			bad(field, "allows %d VMs of %d cores, more than the site can hold at once (%d)", n, c, p.Hosts*perHost)
		}
	}

	if p.ScanGroups > 0 {
		if p.Bursts < 0 {
			bad("Bursts", "must not be negative, got %d", p.Bursts)
		}
		if p.FirstBurstWithin < 0 || p.FirstBurstWithin > p.Span {
			bad("FirstBurstWithin", "must be in [0, Span=%v], got %v", p.Span, p.FirstBurstWithin)
		}
		intRange("BurstSize", p.BurstSize, maxJobs)
		dur("BurstGap", p.BurstGap, time.Second)
		frac("GapAlpha", p.GapAlpha, 0.1, 10)
		frac("SubmitRate", p.SubmitRate, 0, 1e6)
		if p.ScanCores < 1 || (p.CoresPerHost >= 1 && p.ScanCores > p.CoresPerHost) {
			bad("ScanCores", "must be in [1, CoresPerHost=%d], got %d", p.CoresPerHost, p.ScanCores)
		}
		fits("ScanCores", 1, p.ScanCores)
		dur("TaskRuntime", p.TaskRuntime, time.Second)
		frac("RuntimeSigma", p.RuntimeSigma, 0, 3)
		frac("StragglerFrac", p.StragglerFrac, 0, 1)
		if f := p.StragglerFactor; !(f[0] >= 1 && f[1] >= f[0] && f[1] <= 1000) {
			bad("StragglerFactor", "must be min,max with 1 <= min <= max <= 1000, got %g,%g", f[0], f[1])
		}
	}
	if p.ScanGroups > 0 || p.BackgroundGroups > 0 {
		frac("RequestSlack", p.RequestSlack, 0, 100)
	}
	if p.BackgroundGroups > 0 {
		frac("BackgroundMinLoad", p.BackgroundMinLoad, 0, 10)
		intRange("BackgroundVMs", p.BackgroundVMs, maxJobs)
		intRange("BackgroundCores", p.BackgroundCores, max(p.CoresPerHost, 1))
		fits("BackgroundVMs", p.BackgroundVMs[1], p.BackgroundCores[1])
		if r := p.BackgroundRuntime; r[0] < time.Second || r[1] < r[0] || r[1] > maxDuration {
			bad("BackgroundRuntime", "must be min,max with 1s <= min <= max <= %v, got %v,%v", maxDuration, r[0], r[1])
		}
	}
	return errors.Join(errs...)
}

// Capacity is the site's cores.
func (p ParamScan) Capacity() int { return p.Hosts * p.CoresPerHost }

// OfferedLoad is the run-time core-seconds of tr's jobs over what its site
// offers during span: 1 means the jobs would fill the site exactly.
func OfferedLoad(tr *trace.Trace, span time.Duration) float64 {
	var work float64
	for i := range tr.Jobs {
		j := &tr.Jobs[i]
		work += float64(j.VMs*j.Cores) * j.Runtime.Seconds()
	}
	return work / (float64(tr.Hosts*tr.CoresPerHost) * span.Seconds())
}

// Random streams: every burst and every background group draws from its own
// stream, so a burst's VMs do not change when another burst grows.
const (
	streamPlan = iota + 1
	streamBurst
	streamBackground
)

func streamID(kind, group, n int) uint64 {
	// splitmix64 finaliser: nearby (group, n) give unrelated streams.
	z := uint64(kind)<<56 ^ uint64(group)<<32 ^ uint64(n)
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

type burst struct {
	group, num, user int // group and num count from 1
	start            time.Duration
	vms              int
}

// Generate draws the workload for seed. The same seed and parameters give
// the same trace on the same platform.
func (p ParamScan) Generate(seed int64) (*trace.Trace, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	src := &rand.PCG{}
	r := rand.New(src)
	span := p.Span
	capacity := float64(p.Capacity())

	// Plan the bursts first: their sizes fix the scan job count, so Jobs is
	// allocated once.
	var bursts []burst
	scanJobs := 0
	xm := p.BurstGap.Seconds() / math.Pow(2, 1/p.GapAlpha) // Pareto scale for the wanted median
	for g := 1; g <= p.ScanGroups; g++ {
		src.Seed(uint64(seed), streamID(streamPlan, g, 0))
		var t time.Duration
		if p.FirstBurstWithin > 0 {
			t = time.Duration(r.Int64N(int64(p.FirstBurstWithin/time.Second)+1)) * time.Second
		}
		for b := 1; p.Bursts == 0 || b <= p.Bursts; b++ {
			n := logUniformInt(r, p.BurstSize[0], p.BurstSize[1])
			bursts = append(bursts, burst{group: g, num: b, user: r.IntN(p.UsersPerGroup), start: t, vms: n})
			if scanJobs += n; scanJobs > maxJobs {
				return nil, fmt.Errorf("workload: %s would generate over %d jobs: fewer groups, smaller bursts, longer gaps or a shorter span", p.Name, maxJobs)
			}
			gap := math.Max(1, math.Round(xm*math.Pow(1-r.Float64(), -1/p.GapAlpha)))
			if t.Seconds()+gap > span.Seconds() {
				break
			}
			t += time.Duration(gap) * time.Second
		}
	}

	// Guess the background count from expected scan work to size Jobs;
	// the real count follows the drawn work and may differ a little.
	bgJobWork := 0.0 // expected core-seconds of one background job
	if p.BackgroundGroups > 0 {
		bgJobWork = meanLogUniformInt(p.BackgroundVMs[0], p.BackgroundVMs[1]) *
			meanLogUniformInt(p.BackgroundCores[0], p.BackgroundCores[1]) *
			meanLogUniform(p.BackgroundRuntime[0].Seconds(), p.BackgroundRuntime[1].Seconds())
	}
	bgCount := func(scanWork float64) float64 {
		if p.BackgroundGroups == 0 {
			return 0
		}
		load := math.Max(p.Load-scanWork/(capacity*span.Seconds()), p.BackgroundMinLoad)
		return load * capacity * span.Seconds() / bgJobWork
	}
	expScan := float64(scanJobs*p.ScanCores) * p.meanScanRuntime()
	guess := bgCount(expScan)
	if guess > maxJobs {
		return nil, fmt.Errorf("workload: %s would generate about %.0f background jobs, over %d: raise BackgroundRuntime or lower Load", p.Name, guess, maxJobs)
	}
	jobs := make([]trace.Job, 0, scanJobs+int(guess*1.1)+16)

	groups, users := p.names()
	scanWork := 0.0
	width := max(4, len(strconv.Itoa(max(p.BurstSize[1], 1))))
	var num [24]byte
	for _, b := range bursts {
		src.Seed(uint64(seed), streamID(streamBurst, b.group, b.num))
		// All of a burst's IDs live in one string; each job's ID is a
		// slice of it, which costs no allocation per job.
		prefix := "s" + strconv.Itoa(b.group) + "-b" + strconv.Itoa(b.num) + "-"
		idLen := len(prefix) + width
		var sb strings.Builder
		sb.Grow(b.vms * idLen)
		for i := 1; i <= b.vms; i++ {
			sb.WriteString(prefix)
			d := strconv.AppendInt(num[:0], int64(i), 10)
			for range width - len(d) {
				sb.WriteByte('0')
			}
			sb.Write(d)
		}
		ids := sb.String()
		g := b.group - 1
		stragglers := int(math.Round(p.StragglerFrac * float64(b.vms)))
		for i := range b.vms {
			var rt float64
			// Selection sampling: exactly `stragglers` of the VMs, each
			// subset equally likely, without a shuffle buffer.
			if r.IntN(b.vms-i) < stragglers {
				stragglers--
				f := p.StragglerFactor[0] + (p.StragglerFactor[1]-p.StragglerFactor[0])*r.Float64()
				rt = p.TaskRuntime.Seconds() * f
			} else {
				rt = p.TaskRuntime.Seconds() * math.Exp(p.RuntimeSigma*r.NormFloat64())
			}
			runtime := seconds(rt)
			submit := b.start
			if p.SubmitRate > 0 {
				submit += time.Duration(float64(i)/p.SubmitRate) * time.Second
			}
			jobs = append(jobs, trace.Job{
				ID:        ids[i*idLen : (i+1)*idLen],
				Submit:    min(submit, span),
				Runtime:   runtime,
				Requested: p.request(r, runtime),
				VMs:       1,
				Cores:     p.ScanCores,
				MemoryMiB: int64(p.ScanCores) * p.MemoryMiBPerCore,
				Group:     groups[g],
				User:      users[g*p.UsersPerGroup+b.user],
			})
			scanWork += float64(p.ScanCores) * runtime.Seconds()
		}
	}

	if p.BackgroundGroups > 0 {
		rate := bgCount(scanWork) / float64(p.BackgroundGroups) / span.Seconds() // jobs per second per group
		for bg := 1; bg <= p.BackgroundGroups; bg++ {
			src.Seed(uint64(seed), streamID(streamBackground, bg, 0))
			g := p.ScanGroups + bg - 1
			first := len(jobs)
			var sb strings.Builder
			prefix := "bg" + strconv.Itoa(bg) + "-"
			t := 0.0
			for i := 1; ; i++ {
				if t += r.ExpFloat64() / rate; t > span.Seconds() {
					break
				}
				if len(jobs) >= maxJobs {
					return nil, fmt.Errorf("workload: %s would generate over %d jobs: raise BackgroundRuntime or lower Load", p.Name, maxJobs)
				}
				sb.WriteString(prefix)
				sb.Write(strconv.AppendInt(num[:0], int64(i), 10))
				vms := logUniformInt(r, p.BackgroundVMs[0], p.BackgroundVMs[1])
				cores := logUniformInt(r, p.BackgroundCores[0], p.BackgroundCores[1])
				lo, hi := p.BackgroundRuntime[0].Seconds(), p.BackgroundRuntime[1].Seconds()
				runtime := seconds(lo * math.Pow(hi/lo, r.Float64()))
				// Whole seconds, and after t=0: t=0 belongs to the scans
				// (biggrid's burst), which makes ties there unambiguous.
				submit := min(time.Duration(math.Max(1, math.Ceil(t)))*time.Second, span)
				jobs = append(jobs, trace.Job{
					Submit:    submit,
					Runtime:   runtime,
					Requested: p.request(r, runtime),
					VMs:       vms,
					Cores:     cores,
					MemoryMiB: int64(cores) * p.MemoryMiBPerCore,
					Group:     groups[g],
					User:      users[g*p.UsersPerGroup+r.IntN(p.UsersPerGroup)],
				})
			}
			ids, off := sb.String(), 0
			for k := first; k < len(jobs); k++ {
				n := len(prefix) + len(strconv.AppendInt(num[:0], int64(k-first+1), 10))
				jobs[k].ID = ids[off : off+n]
				off += n
			}
		}
	}

	sortJobs(jobs)
	return &trace.Trace{
		Name:             p.Name + "-seed" + strconv.FormatInt(seed, 10),
		Format:           Format,
		Hosts:            p.Hosts,
		CoresPerHost:     p.CoresPerHost,
		MemoryMiBPerHost: p.MemoryMiBPerHost,
		Notice: fmt.Sprintf("Synthetic workload %q, seed %d, from fairlease sim/workload (bursty parameter scans over background clusters); not measured on any real system.",
			p.Name, seed),
		Jobs:  jobs,
		Stats: trace.Stats{Records: len(jobs), Skipped: map[string]int{}},
	}, nil
}

// names returns group names, scans first, and users indexed by
// group*UsersPerGroup + user.
func (p ParamScan) names() (groups, users []string) {
	for g := 1; g <= p.ScanGroups; g++ {
		groups = append(groups, "scan"+strconv.Itoa(g))
	}
	for g := 1; g <= p.BackgroundGroups; g++ {
		groups = append(groups, "bg"+strconv.Itoa(g))
	}
	users = make([]string, 0, len(groups)*p.UsersPerGroup)
	for _, g := range groups {
		for u := 1; u <= p.UsersPerGroup; u++ {
			users = append(users, g+"-u"+strconv.Itoa(u))
		}
	}
	return groups, users
}

// request is what the user asks for: the run time padded by a random slack,
// rounded up to whole 5-minute steps as people do.
func (p ParamScan) request(r *rand.Rand, runtime time.Duration) time.Duration {
	padded := seconds(runtime.Seconds() * (1 + p.RequestSlack*r.Float64()))
	padded = max(padded, runtime)
	return (padded + requestStep - 1) / requestStep * requestStep
}

// meanScanRuntime is the expected run time of one scan VM in seconds.
func (p ParamScan) meanScanRuntime() float64 {
	normal := p.TaskRuntime.Seconds() * math.Exp(p.RuntimeSigma*p.RuntimeSigma/2)
	straggler := p.TaskRuntime.Seconds() * (p.StragglerFactor[0] + p.StragglerFactor[1]) / 2
	return (1-p.StragglerFrac)*normal + p.StragglerFrac*straggler
}

// seconds rounds s to whole seconds, at least 1 and at most maxDuration.
func seconds(s float64) time.Duration {
	s = math.Min(math.Max(math.Round(s), 1), maxDuration.Seconds())
	return time.Duration(s) * time.Second
}

// logUniformInt draws n in [lo, hi] with P(n >= k) = 1 - ln(k/lo)/ln((hi+1)/lo):
// small values are common, large ones rare but not negligible.
func logUniformInt(r *rand.Rand, lo, hi int) int {
	if lo >= hi {
		return lo
	}
	n := int(float64(lo) * math.Exp(r.Float64()*math.Log(float64(hi+1)/float64(lo))))
	return min(max(n, lo), hi)
}

// meanLogUniformInt is the mean of logUniformInt(lo, hi): lo plus the sum of
// P(n >= k) over k above lo.
func meanLogUniformInt(lo, hi int) float64 {
	if lo >= hi {
		return float64(lo)
	}
	l := math.Log(float64(hi+1) / float64(lo))
	mean := float64(lo)
	for k := lo + 1; k <= hi; k++ {
		mean += 1 - math.Log(float64(k)/float64(lo))/l
	}
	return mean
}

// meanLogUniform is the mean of a log-uniform draw in [lo, hi].
func meanLogUniform(lo, hi float64) float64 {
	if lo >= hi {
		return lo
	}
	return (hi - lo) / math.Log(hi/lo)
}

// sortJobs orders jobs by Submit, ties in generation order. It sorts small
// keys and then permutes the jobs in place, since moving 112-byte jobs in
// the sort costs far more and a copy would double the memory.
func sortJobs(jobs []trace.Job) {
	if slices.IsSortedFunc(jobs, func(a, b trace.Job) int { return cmp.Compare(a.Submit, b.Submit) }) {
		return
	}
	type key struct {
		submit time.Duration
		i      int
	}
	keys := make([]key, len(jobs))
	for i := range jobs {
		keys[i] = key{jobs[i].Submit, i}
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.submit, b.submit), cmp.Compare(a.i, b.i))
	})
	// Position i must receive jobs[keys[i].i]; follow each cycle once,
	// marking done positions with -1.
	for i := range keys {
		if keys[i].i < 0 || keys[i].i == i {
			continue
		}
		tmp := jobs[i]
		j := i
		for {
			k := keys[j].i
			keys[j].i = -1
			if k == i {
				jobs[j] = tmp
				break
			}
			jobs[j] = jobs[k]
			j = k
		}
	}
}
