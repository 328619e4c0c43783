package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/broker/server"
	"github.com/fairlease/fairlease/broker/server/bench"
)

// benchFlags are the flags every benchmark shares.
type benchFlags struct {
	nodes      int
	maxBatch   int
	depth      int
	json       bool
	dir        string
	cpuprofile string
	site       bench.Site
}

func (f *benchFlags) register(cmd *cobra.Command, nodes int) {
	d := bench.DefaultSite()
	fl := cmd.Flags()
	fl.IntVar(&f.nodes, "nodes", nodes, "broker nodes, in this process over TCP loopback")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON")
	fl.StringVar(&f.dir, "dir", "", "data directory for the nodes (default: a temporary one, removed)")
	fl.StringVar(&f.cpuprofile, "cpuprofile", "", "write a CPU profile of the timed phase to `FILE`")
	dc := server.DefaultConfig()
	fl.IntVar(&f.maxBatch, "max-batch", dc.MaxBatch, "most lease requests merged into one log entry")
	fl.IntVar(&f.depth, "batch-depth", dc.BatchDepth, "submit log entries in flight; more submits wait and go together in the next")
	fl.IntVar(&f.site.Hosts, "hosts", d.Hosts, "hosts registered before the run")
	fl.Int64Var(&f.site.HostCores, "host-cores", d.HostCores, "cores per host")
	fl.Int64Var(&f.site.HostMemoryMiB, "host-memory-mib", d.HostMemoryMiB, "memory per host, MiB")
	fl.IntVar(&f.site.Users, "users", d.Users, "users submitting (each a separate actor)")
	fl.IntVar(&f.site.Groups, "groups", d.Groups, "groups the users belong to")
}

func (f *benchFlags) check() error {
	switch {
	case f.nodes < 1:
		return usagef("--nodes must be at least 1, got %d", f.nodes)
	case f.site.Hosts < 1 || f.site.HostCores < 1 || f.site.HostMemoryMiB < 1:
		return usagef("--hosts, --host-cores and --host-memory-mib must be positive")
	case f.site.Users < 1 || f.site.Groups < 1:
		return usagef("--users and --groups must be at least 1")
	case f.maxBatch < 1 || f.depth < 1:
		return usagef("--max-batch and --batch-depth must be at least 1")
	}
	return nil
}

// cluster returns the cluster settings the flags ask for.
func (f *benchFlags) cluster() bench.Cluster {
	return bench.Cluster{Nodes: f.nodes, Dir: f.dir, Config: func(c *server.Config) {
		c.MaxBatch, c.BatchDepth = f.maxBatch, f.depth
	}}
}

// profiler returns, when --cpuprofile is set, a function that starts the
// CPU profile and returns its stop; the benchmark calls it around the
// timed phase only, so set-up stays out of the profile.
func (f *benchFlags) profiler() (func() func(), error) {
	if f.cpuprofile == "" {
		return nil, nil
	}
	out, err := os.Create(f.cpuprofile)
	if err != nil {
		return nil, failure(fmt.Errorf("--cpuprofile: %w", err), "")
	}
	return func() func() {
		if err := pprof.StartCPUProfile(out); err != nil {
			out.Close()
			return func() {}
		}
		return func() { pprof.StopCPUProfile(); out.Close() }
	}, nil
}

func newBenchCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a broker cluster run in this process",
		Long: `bench starts a broker cluster inside this process (Raft over TCP loopback,
BoltDB with fsync, data in a temporary directory) and measures it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newBenchAdmissionCmd(e), newBenchFailoverCmd(e))
	cmd.AddCommand(newBenchSwarmCmd(e), newBenchSwarmNodeCmd(e))
	return cmd
}

func newBenchAdmissionCmd(e *env) *cobra.Command {
	var (
		f                     benchFlags
		requests, concurrency int
		followerShare         float64
	)
	cmd := &cobra.Command{
		Use:   "admission [flags]",
		Short: "Admission throughput and commit latency through Raft",
		Long: `admission registers --hosts hosts and --users users, then submits --requests
one-VM lease requests from --concurrency goroutines through the nodes'
Propose (--follower-share of them on followers, which forward to the
leader) and reports decisions per second and the latency of each request
from the call until its decision is committed and applied.`,
		Example: `  fairlease bench admission --nodes 3 --requests 20000 --concurrency 256 --json`,
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if requests < 1 || concurrency < 1 {
				return usagef("--requests and --concurrency must be at least 1")
			}
			if followerShare < 0 || followerShare > 1 {
				return usagef("--follower-share must be between 0 and 1, got %v", followerShare)
			}
			measure, err := f.profiler()
			if err != nil {
				return err
			}
			rep, err := bench.Admission(e.ctx, bench.AdmissionOptions{
				Cluster: f.cluster(), Site: f.site,
				Requests: requests, Concurrency: concurrency, FollowerShare: followerShare,
				Measure: measure,
			})
			if err != nil {
				return failure(err, "")
			}
			if f.json || e.g.output == OutputJSON {
				return printReport(e, rep)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "nodes\t%d\nrequests\t%d (%d via followers)\nconcurrency\t%d\n", rep.Nodes, rep.Requests, rep.Forwarded, rep.Concurrency)
			fmt.Fprintf(tw, "decisions/s\t%.0f\ncommit p50\t%.2f ms\ncommit p99\t%.2f ms\ncommit max\t%.2f ms\n", rep.DecisionsPerSecond, rep.P50CommitMS, rep.P99CommitMS, rep.MaxCommitMS)
			fmt.Fprintf(tw, "log entries\t%d (%.1f requests each)\ndecisions\t%v\nerrors\t%d\n", rep.SubmitEntries, rep.MeanBatch, rep.Decisions, rep.Errors)
			return tw.Flush()
		},
	}
	f.register(cmd, 3)
	fl := cmd.Flags()
	fl.IntVar(&requests, "requests", 20000, "lease requests to submit")
	fl.IntVar(&concurrency, "concurrency", 256, "goroutines submitting at once")
	fl.Float64Var(&followerShare, "follower-share", 0.1, "fraction of requests submitted on followers (forwarded to the leader)")
	return cmd
}

func newBenchFailoverCmd(e *env) *cobra.Command {
	var (
		f                   benchFlags
		trials, concurrency int
		settle              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "failover [flags]",
		Short: "Leader failover under load, and what survives it",
		Long: `failover keeps --concurrency goroutines submitting lease requests through
every running node, kills the leader (its API, Raft and transport stop at
once) --trials times, and measures from the kill until a proposal made on a
surviving node commits. The killed node restarts and catches up before the
next trial. At the end every node must hold every acknowledged lease
(lost_acked_leases) and no host may be committed beyond its capacity at any
instant (overcommitted_instants, from the lease records and the engine's
calendar check).`,
		Example: `  fairlease bench failover --nodes 3 --trials 5 --json`,
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if f.nodes < 3 {
				return usagef("--nodes must be at least 3 for a failover, got %d", f.nodes)
			}
			if trials < 1 || concurrency < 1 || settle <= 0 {
				return usagef("--trials, --concurrency and --settle must be positive")
			}
			measure, err := f.profiler()
			if err != nil {
				return err
			}
			rep, err := bench.Failover(e.ctx, bench.FailoverOptions{
				Cluster: f.cluster(), Site: f.site,
				Trials: trials, Concurrency: concurrency, Settle: settle,
				Measure: measure,
			})
			if err != nil {
				return failure(err, "")
			}
			if f.json || e.g.output == OutputJSON {
				return printReport(e, rep)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "nodes\t%d\ntrials\t%d\nfailover\t%v ms\nfailover median\t%.1f ms\nfailover max\t%.1f ms\n", rep.Nodes, rep.Trials, rep.FailoverMS, rep.FailoverMSMedian, rep.FailoverMSMax)
			fmt.Fprintf(tw, "acked leases\t%d\nlost acked leases\t%d\novercommitted instants\t%d\nfailed proposals\t%d\n", rep.AckedLeases, rep.LostAckedLeases, rep.OvercommittedInstants, rep.Failed)
			return tw.Flush()
		},
	}
	f.register(cmd, 3)
	fl := cmd.Flags()
	fl.IntVar(&trials, "trials", 5, "leaders to kill")
	fl.IntVar(&concurrency, "concurrency", 32, "goroutines submitting throughout")
	fl.DurationVar(&settle, "settle", 500*time.Millisecond, "load before each kill and after each recovery")
	return cmd
}

// printReport writes v as indented JSON on stdout.
func printReport(e *env, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return failure(err, "")
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}
