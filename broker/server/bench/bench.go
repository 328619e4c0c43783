// Package bench measures a broker cluster running in this process:
// admission throughput and commit latency through Raft, and failover
// under load with the safety checks that must hold across it (no
// acknowledged lease lost, no host overcommitted). `fairlease bench`
// prints its reports.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/server"
	"github.com/fairlease/fairlease/broker/server/servertest"
	"github.com/fairlease/fairlease/lease"
)

// Site is the simulated site and population the benchmarks register.
type Site struct {
	Hosts         int
	HostCores     int64
	HostMemoryMiB int64
	Users         int
	Groups        int
}

// DefaultSite is 1,000 hosts of 64 cores and 256 GiB, so that every
// one-core request of a 20,000-request run is granted, and 16 users in 8
// groups.
func DefaultSite() Site {
	return Site{Hosts: 1000, HostCores: 64, HostMemoryMiB: 256 * 1024, Users: 16, Groups: 8}
}

// Cluster settings shared by both benchmarks.
type Cluster struct {
	Nodes int
	// Dir holds the nodes' data; empty means a new temporary directory,
	// removed afterwards.
	Dir string
	// Config adjusts each node's config (nil: server.DefaultConfig with
	// logs off).
	Config func(*server.Config)
	Logger *slog.Logger
}

func (c Cluster) start(ctx context.Context) (*servertest.Cluster, func(), error) {
	if c.Nodes < 1 {
		return nil, nil, fmt.Errorf("bench: --nodes must be at least 1, got %d", c.Nodes)
	}
	dir, cleanup := c.Dir, func() {}
	if dir == "" {
		d, err := os.MkdirTemp("", "fairlease-bench-")
		if err != nil {
			return nil, nil, fmt.Errorf("bench: %w", err)
		}
		dir, cleanup = d, func() { os.RemoveAll(d) }
	}
	cl, err := servertest.Start(ctx, servertest.Options{Nodes: c.Nodes, Dir: dir, Config: func(string) server.Config {
		cfg := server.DefaultConfig()
		cfg.Logger = slog.New(slog.DiscardHandler)
		cfg.RaftLogLevel = "off"
		// Registered hosts send no heartbeats here.
		cfg.HostTimeout = 0
		if c.Config != nil {
			c.Config(&cfg)
		}
		return cfg
	}})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return cl, func() { cl.Close(); cleanup() }, nil
}

// register adds the site's hosts and users through the leader.
func register(ctx context.Context, cl *servertest.Cluster, s Site) error {
	l, err := cl.Leader(ctx)
	if err != nil {
		return err
	}
	var cmds []broker.Command
	for i := range s.Hosts {
		c, err := broker.NewCommand(broker.CmdPutHost, time.Now(), "bench", broker.Host{
			Name: fmt.Sprintf("h%04d", i), Capacity: lease.Resources{Cores: s.HostCores, MemoryMiB: s.HostMemoryMiB}})
		if err != nil {
			return err
		}
		cmds = append(cmds, c)
	}
	for i := range s.Users {
		c, err := broker.NewCommand(broker.CmdPutUser, time.Now(), "bench", broker.User{
			Name: userName(i), Group: groupOf(s, i), Role: broker.RoleUser})
		if err != nil {
			return err
		}
		cmds = append(cmds, c)
	}
	return parallel(ctx, 64, len(cmds), func(i int) error {
		_, err := l.Server.Propose(ctx, cmds[i])
		if err != nil {
			return fmt.Errorf("bench: register: %w", err)
		}
		return nil
	})
}

func userName(i int) string { return fmt.Sprintf("u%03d", i) }

func groupOf(s Site, user int) lease.GroupID {
	return lease.GroupID(fmt.Sprintf("g%02d", user%max(s.Groups, 1)))
}

// request is the i-th benchmark request: one VM of one core and 2 GiB for
// an hour, from user i mod Users.
func request(s Site, prefix string, i int) (broker.Command, error) {
	u := i % max(s.Users, 1)
	r := lease.Request{
		ID: lease.ID(fmt.Sprintf("%s%07d", prefix, i)), Group: groupOf(s, u), User: lease.UserID(userName(u)),
		Count: 1, Shape: lease.Shape{Cores: 1, MemoryMiB: 2048}, Duration: time.Hour, AllOrNothing: true,
	}
	return broker.NewCommand(broker.CmdSubmit, time.Now(), userName(u), broker.Submit{Requests: []lease.Request{r}})
}

// parallel runs f(0..n-1) on c goroutines and returns the first error.
func parallel(ctx context.Context, c, n int, f func(int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(c, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// percentile returns the p-th percentile (0..100) of sorted ds, in ms.
func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(ds)))) - 1
	i = min(max(i, 0), len(ds)-1)
	return ms(ds[i])
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

// AdmissionOptions configure the admission benchmark.
type AdmissionOptions struct {
	Cluster
	Site
	Requests    int
	Concurrency int
	// FollowerShare is the fraction of requests submitted on followers,
	// which forward them to the leader.
	FollowerShare float64
	// Measure, if set, is called when the timed phase starts; the
	// function it returns when it ends (the CLI profiles just that).
	Measure func() func()
}

// AdmissionReport is the admission benchmark's JSON (the first six
// fields are the CLI contract).
type AdmissionReport struct {
	DecisionsPerSecond float64 `json:"decisions_per_second"`
	P50CommitMS        float64 `json:"p50_commit_ms"`
	P99CommitMS        float64 `json:"p99_commit_ms"`
	Requests           int     `json:"requests"`
	Nodes              int     `json:"nodes"`
	Concurrency        int     `json:"concurrency"`

	MaxCommitMS float64 `json:"max_commit_ms"`
	// Latency of the requests made on the leader and on followers apart.
	P99LeaderMS    float64        `json:"p99_leader_ms"`
	P99ForwardedMS float64        `json:"p99_forwarded_ms"`
	WallSeconds    float64        `json:"wall_seconds"`
	Forwarded      int            `json:"forwarded"`
	Decisions      map[string]int `json:"decisions"`
	Errors         int            `json:"errors"`
	SubmitEntries  uint64         `json:"submit_entries"`
	MeanBatch      float64        `json:"mean_batch"`
	Hosts          int            `json:"hosts"`
	Users          int            `json:"users"`
}

// Admission submits Requests one-request proposals from Concurrency
// goroutines and times each from the call to its decision.
func Admission(ctx context.Context, o AdmissionOptions) (AdmissionReport, error) {
	rep := AdmissionReport{Requests: o.Requests, Nodes: o.Nodes, Concurrency: o.Concurrency, Hosts: o.Hosts, Users: o.Users, Decisions: map[string]int{}}
	if o.Requests < 1 || o.Concurrency < 1 || o.FollowerShare < 0 || o.FollowerShare > 1 {
		return rep, fmt.Errorf("bench: want requests and concurrency ≥ 1 and a follower share in [0,1], got %d, %d, %v", o.Requests, o.Concurrency, o.FollowerShare)
	}
	cl, stop, err := o.Cluster.start(ctx)
	if err != nil {
		return rep, err
	}
	defer stop()
	if err := register(ctx, cl, o.Site); err != nil {
		return rep, err
	}
	leader, err := cl.Leader(ctx)
	if err != nil {
		return rep, err
	}
	followers := cl.Followers()
	cmds := make([]broker.Command, o.Requests)
	for i := range cmds {
		if cmds[i], err = request(o.Site, "a", i); err != nil {
			return rep, err
		}
	}
	before := leader.Server.Raft().LastIndex()
	lat := make([]time.Duration, o.Requests)
	viaFollower := make([]bool, o.Requests)
	kinds := make([]lease.Kind, o.Requests)
	var forwarded, failed atomic.Int64
	// Every n-th request goes to a follower, spread evenly through the run.
	every := 0
	if o.FollowerShare > 0 && len(followers) > 0 {
		every = max(int(math.Round(1/o.FollowerShare)), 1)
	}
	done := func() {}
	if o.Measure != nil {
		done = o.Measure()
	}
	start := time.Now()
	err = parallel(ctx, o.Concurrency, o.Requests, func(i int) error {
		node := leader
		if every > 0 && i%every == every-1 {
			node = followers[(i/every)%len(followers)]
			forwarded.Add(1)
			viaFollower[i] = true
		}
		t0 := time.Now()
		res, err := node.Server.Propose(ctx, cmds[i])
		lat[i] = time.Since(t0)
		if err != nil {
			failed.Add(1)
			return nil
		}
		if rs, _ := res.([]broker.SubmitResult); len(rs) == 1 && rs[0].Lease != nil {
			kinds[i] = rs[0].Lease.Decision.Kind
		} else {
			failed.Add(1)
		}
		return nil
	})
	wall := time.Since(start)
	done()
	if err != nil {
		return rep, err
	}
	after := leader.Server.Raft().LastIndex()
	var onLeader, onFollower []time.Duration
	for i, d := range lat {
		if viaFollower[i] {
			onFollower = append(onFollower, d)
		} else {
			onLeader = append(onLeader, d)
		}
	}
	slices.Sort(onLeader)
	slices.Sort(onFollower)
	rep.P99LeaderMS, rep.P99ForwardedMS = percentile(onLeader, 99), percentile(onFollower, 99)
	slices.Sort(lat)
	rep.DecisionsPerSecond = math.Round(float64(o.Requests) / wall.Seconds())
	rep.P50CommitMS, rep.P99CommitMS, rep.MaxCommitMS = percentile(lat, 50), percentile(lat, 99), ms(lat[len(lat)-1])
	rep.WallSeconds = math.Round(wall.Seconds()*1000) / 1000
	rep.Forwarded, rep.Errors = int(forwarded.Load()), int(failed.Load())
	for _, k := range kinds {
		if k != 0 {
			rep.Decisions[k.String()]++
		}
	}
	// Entries appended during the run: submits, plus the odd advance.
	rep.SubmitEntries = after - before
	if rep.SubmitEntries > 0 {
		rep.MeanBatch = math.Round(float64(o.Requests)/float64(rep.SubmitEntries)*10) / 10
	}
	return rep, nil
}

// FailoverOptions configure the failover benchmark.
type FailoverOptions struct {
	Cluster
	Site
	Trials int
	// Concurrency is how many goroutines keep submitting throughout.
	Concurrency int
	// Settle is how long the load runs before each kill and after each
	// recovery.
	Settle time.Duration
	// Measure is as in AdmissionOptions: around the trials.
	Measure func() func()
}

// FailoverReport is the failover benchmark's JSON (the first five fields
// are the CLI contract).
type FailoverReport struct {
	FailoverMSMedian      float64 `json:"failover_ms_median"`
	FailoverMSMax         float64 `json:"failover_ms_max"`
	AckedLeases           int     `json:"acked_leases"`
	LostAckedLeases       int     `json:"lost_acked_leases"`
	OvercommittedInstants int     `json:"overcommitted_instants"`

	Nodes       int       `json:"nodes"`
	Trials      int       `json:"trials"`
	FailoverMS  []float64 `json:"failover_ms"`
	Concurrency int       `json:"concurrency"`
	// Failed are proposals that returned an error (not acknowledged; the
	// lease may or may not exist).
	Failed int `json:"failed"`
	// CalendarErrors counts nodes whose final calendar fails its check.
	CalendarErrors int `json:"calendar_errors"`
}

// Failover runs a steady submit load, kills the leader Trials times, and
// measures from each kill until a proposal made on a surviving node right
// after the kill commits; the killed node restarts and catches up before
// the next trial. At the end every node must hold every acknowledged
// lease, and no host may be committed beyond its capacity at any instant.
func Failover(ctx context.Context, o FailoverOptions) (FailoverReport, error) {
	rep := FailoverReport{Nodes: o.Nodes, Trials: o.Trials, Concurrency: o.Concurrency}
	if o.Nodes < 3 || o.Trials < 1 || o.Concurrency < 1 {
		return rep, fmt.Errorf("bench: failover needs at least 3 nodes, 1 trial and concurrency 1, got %d, %d, %d", o.Nodes, o.Trials, o.Concurrency)
	}
	if o.Settle <= 0 {
		o.Settle = 500 * time.Millisecond
	}
	cl, stop, err := o.Cluster.start(ctx)
	if err != nil {
		return rep, err
	}
	defer stop()
	if err := register(ctx, cl, o.Site); err != nil {
		return rep, err
	}

	// The load: each worker submits through the running nodes in turn.
	var (
		mu     sync.Mutex
		acked  []lease.ID
		failed atomic.Int64
		seq    atomic.Int64
		nodeMu sync.RWMutex // held for writing while a node stops or starts
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; loadCtx.Err() == nil; k++ {
				nodeMu.RLock()
				var srv *server.Server
				for j := range cl.Nodes {
					if n := cl.Nodes[(k+j)%len(cl.Nodes)]; n.Running() {
						srv = n.Server
						break
					}
				}
				nodeMu.RUnlock()
				c, err := request(o.Site, "f", int(seq.Add(1)))
				if err != nil || srv == nil {
					continue
				}
				pctx, cancel := context.WithTimeout(loadCtx, 5*time.Second)
				res, err := srv.Propose(pctx, c)
				cancel()
				rs, _ := res.([]broker.SubmitResult)
				if err != nil || len(rs) != 1 || rs[0].Lease == nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				acked = append(acked, rs[0].Lease.ID)
				mu.Unlock()
			}
		}()
	}
	defer func() { stopLoad(); wg.Wait() }()
	sleep := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}

	done := func() {}
	if o.Measure != nil {
		done = o.Measure()
	}
	defer done()
	for trial := range o.Trials {
		if err := sleep(o.Settle); err != nil {
			return rep, err
		}
		l, err := cl.Leader(ctx)
		if err != nil {
			return rep, err
		}
		idx := slices.Index(cl.Nodes, l)
		var survivor *server.Server
		for _, n := range cl.Nodes {
			if n != l && n.Running() {
				survivor = n.Server
			}
		}
		nodeMu.Lock()
		killed := time.Now()
		err = cl.Stop(idx)
		nodeMu.Unlock()
		if err != nil {
			return rep, fmt.Errorf("bench: kill %s: %w", l.ID, err)
		}
		if err := probeLeader(ctx, survivor, o.Site, trial); err != nil {
			return rep, fmt.Errorf("bench: trial %d: no new leader took a proposal: %w", trial+1, err)
		}
		rep.FailoverMS = append(rep.FailoverMS, ms(time.Since(killed)))
		if err := sleep(o.Settle); err != nil {
			return rep, err
		}
		nodeMu.Lock()
		err = cl.Restart(idx)
		nodeMu.Unlock()
		if err != nil {
			return rep, fmt.Errorf("bench: restart %s: %w", l.ID, err)
		}
		if err := cl.Converge(ctx); err != nil {
			return rep, err
		}
	}
	stopLoad()
	wg.Wait()
	if err := cl.Converge(ctx); err != nil {
		return rep, err
	}

	rep.AckedLeases, rep.Failed = len(acked), int(failed.Load())
	lost := map[lease.ID]bool{}
	for _, n := range cl.Nodes {
		err := n.Server.Read(ctx, false, func(st *broker.State) error {
			for _, id := range acked {
				if _, ok := st.Lease(id); !ok {
					lost[id] = true
				}
			}
			if st.CheckCalendar() != nil {
				rep.CalendarErrors++
			}
			rep.OvercommittedInstants += Overcommitted(st)
			return nil
		})
		if err != nil {
			return rep, err
		}
	}
	rep.LostAckedLeases = len(lost)
	rep.OvercommittedInstants += rep.CalendarErrors
	ds := slices.Clone(rep.FailoverMS)
	slices.Sort(ds)
	rep.FailoverMSMedian, rep.FailoverMSMax = median(ds), ds[len(ds)-1]
	return rep, nil
}

// probeLeader proposes through survivor until a leader commits it. A
// proposal forwarded to the killed leader just before it died fails with an
// unknown outcome; that is part of the failover, so the probe is sent again
// (under a fresh name, since the lost one may yet have been applied).
func probeLeader(ctx context.Context, survivor *server.Server, site Site, trial int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for attempt := 0; ; attempt++ {
		probe, err := request(site, fmt.Sprintf("p%d.%d-", trial, attempt), 0)
		if err != nil {
			return err
		}
		_, err = survivor.Propose(ctx, probe)
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// Overcommitted counts the (host, instant) pairs at which the VMs of the
// state's leases, over their [Start, End) intervals, need more cores or
// memory than the host has. It reads the lease records, independently of
// the engine's calendar.
func Overcommitted(st *broker.State) int {
	caps := map[string]lease.Resources{}
	for _, h := range st.Hosts() {
		caps[h.Name] = h.Capacity
	}
	var uses []use
	for _, l := range st.Leases(func(l *broker.Lease) bool { return len(l.VMs) > 0 && !l.Start.IsZero() }) {
		if !l.End.After(l.Start) {
			continue
		}
		for _, vm := range l.VMs {
			uses = append(uses, use{host: vm.Host, from: l.Start, to: l.End,
				need: lease.Resources{Cores: int64(l.Request.Shape.Cores), MemoryMiB: l.Request.Shape.MemoryMiB}})
		}
	}
	return overcommitted(caps, uses)
}

// use is one VM on a host over [from, to).
type use struct {
	host     string
	from, to time.Time
	need     lease.Resources
}

// overcommitted sweeps each host's uses in time order and counts the
// instants after which the host holds more than its capacity.
func overcommitted(caps map[string]lease.Resources, uses []use) int {
	type edge struct {
		at    time.Time
		delta lease.Resources
	}
	edges := map[string][]edge{}
	for _, u := range uses {
		edges[u.host] = append(edges[u.host], edge{u.from, u.need}, edge{u.to, lease.Resources{Cores: -u.need.Cores, MemoryMiB: -u.need.MemoryMiB}})
	}
	bad := 0
	for host, es := range edges {
		slices.SortStableFunc(es, func(a, b edge) int { return a.at.Compare(b.at) })
		capa := caps[host]
		var held lease.Resources
		for i, e := range es {
			held = held.Add(e.delta)
			// All changes at one instant first: an end and a start at
			// the same time do not overlap.
			if i+1 < len(es) && es[i+1].at.Equal(e.at) {
				continue
			}
			if held.Cores > capa.Cores || held.MemoryMiB > capa.MemoryMiB {
				bad++
			}
		}
	}
	return bad
}
