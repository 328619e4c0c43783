package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/swarm/swarmbench"
)

// geteuid is a variable so that tests can play a user without root.
var geteuid = os.Geteuid

// swarmFlags are bench swarm's flags as typed.
type swarmFlags struct {
	nodes       int
	size        string
	rate        string
	pieceLength string
	methods     string
	timeout     time.Duration
	dir         string
	webSeed     bool
	json        bool
}

// options checks the flags and turns them into the benchmark's options.
func (f *swarmFlags) options() (swarmbench.Options, error) {
	var o swarmbench.Options
	size, err := humanize.ParseBytes(f.size)
	if err != nil || size == 0 {
		return o, usagef("--size: %q is not a size; give bytes with a unit, like 256MiB or 1GiB", f.size)
	}
	rate, err := swarmbench.ParseRate(f.rate)
	if err != nil {
		return o, usagef("--rate: %v", err)
	}
	var piece uint64
	if f.pieceLength != "" && f.pieceLength != "0" {
		if piece, err = humanize.ParseBytes(f.pieceLength); err != nil {
			return o, usagef("--piece-length: %q is not a size; give a power of two like 256KiB", f.pieceLength)
		}
	}
	o = swarmbench.Options{
		Nodes: f.nodes, Size: int64(size), Rate: rate, PieceLength: int64(piece),
		WebSeed: f.webSeed, Dir: f.dir,
	}
	for m := range strings.SplitSeq(f.methods, ",") {
		if m = strings.TrimSpace(m); m != "" {
			o.Methods = append(o.Methods, m)
		}
	}
	o.Command = []string{"fairlease"} // replaced by the executable at run time
	if err := o.Check(); err != nil {
		return o, usagef("%v", err)
	}
	if f.timeout <= 0 {
		return o, usagef("--timeout must be positive, got %v", f.timeout)
	}
	// Refuse a run that cannot finish: HTTP alone needs N·S/R.
	l := swarmbench.EqualLinks(rate)
	var least float64
	for _, m := range o.EffectiveMethods() {
		if m == swarmbench.MethodHTTP {
			least += swarmbench.HTTPBound(o.Nodes, o.Size, l)
		} else {
			least += swarmbench.LowerBound(o.Nodes, o.Size, l, 0).Seconds
		}
	}
	if need := time.Duration(least * float64(time.Second)); need >= f.timeout {
		return o, usagef("--timeout %v is shorter than the links allow the run to take (at least %v at %s); raise --timeout or lower --nodes or --size",
			f.timeout, need.Round(time.Second), swarmbench.FormatRate(rate))
	}
	return o, nil
}

func newBenchSwarmCmd(e *env) *cobra.Command {
	var f swarmFlags
	cmd := &cobra.Command{
		Use:   "swarm [flags]",
		Short: "Image distribution to N nodes over shaped links: HTTP against the swarm",
		Long: `swarm builds one network namespace per node and one for the seed, joined by a
bridge, and shapes every link to --rate in both directions with tc tbf. It
creates a random image of --size at the seed and distributes it to every
node twice: by plain HTTP (every node GETs the whole file from the seed at
once) and by the BitTorrent swarm (the seed runs the tracker and seeds). It
reports both times against the lower bound of DESIGN §7 with every link at
R:

  T_LB = max(S/U_s, S/d, N·S/(U_s + Σu))

and eta = T_LB/swarm_s, seed_egress_ratio (bytes off the seed's link during
the swarm run over S, headers included), speedup_vs_http = http_s/swarm_s.
The pipeline-fill estimate ⌊log₂N⌋·L/u is reported apart (pipeline_fill_s).

It needs root (namespaces, bridge, tc) and removes everything it created
when it ends, also on error, timeout or interrupt. Namespaces and links are
named fsb<6 hex>-…, so a killed run's leftovers show in 'ip netns list'.`,
		Example: `  sudo fairlease bench swarm --nodes 8 --size 256MiB --rate 100mbit --json
  sudo fairlease bench swarm --nodes 16 --methods swarm --piece-length 1MiB`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt, err := f.options()
			if err != nil {
				return err
			}
			if geteuid() != 0 {
				return failure(fmt.Errorf("bench swarm needs root to create network namespaces; run it as root (sudo)"), "")
			}
			for _, tool := range []string{"ip", "tc"} {
				if _, err := exec.LookPath(tool); err != nil {
					return failure(fmt.Errorf("bench swarm needs %s from iproute2: %w", tool, err), "install it (apt-get install iproute2)")
				}
			}
			exe, err := os.Executable()
			if err != nil {
				return failure(fmt.Errorf("find this program to run the nodes: %w", err), "")
			}
			opt.Command = []string{exe, "bench", "swarm-node"}
			if isTerminal(e.stderr) {
				opt.Progress = newSwarmProgress(e.stderr).update
			}
			ctx, cancel := context.WithTimeoutCause(e.ctx, f.timeout, fmt.Errorf("--timeout %v reached", f.timeout))
			defer cancel()
			rep, err := swarmbench.Run(ctx, opt)
			if rep == nil {
				return failure(err, "")
			}
			if f.json || e.g.output == OutputJSON {
				if perr := printReport(e, rep); perr != nil {
					return perr
				}
			} else if perr := printSwarmTable(e.stdout, rep); perr != nil {
				return perr
			}
			return failure(err, "")
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.nodes, "nodes", 8, "nodes receiving the image, one network namespace each")
	fl.StringVar(&f.size, "size", "256MiB", "image size (KiB, MiB, GiB; MB is 10⁶)")
	fl.StringVar(&f.rate, "rate", "100mbit", "every link's rate, each direction, in tc units (kbit, mbit, gbit)")
	fl.StringVar(&f.pieceLength, "piece-length", "", "swarm piece length, a power of two (default: the swarm's choice)")
	fl.StringVar(&f.methods, "methods", "", "distributions to run, comma-separated: http, swarm (default: both)")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Minute, "bound on the whole run, set-up and clean-up included")
	fl.StringVar(&f.dir, "dir", "", "directory for the image, the nodes' copies and logs (default: a temporary one, removed)")
	fl.BoolVar(&f.webSeed, "web-seed", false, "also offer the seed's HTTP server to the swarm as a web seed (BEP 19)")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON")
	return cmd
}

// newBenchSwarmNodeCmd is the process bench swarm starts inside each
// namespace: it re-executes this binary there.
func newBenchSwarmNodeCmd(e *env) *cobra.Command {
	var role, spec string
	cmd := &cobra.Command{
		Use:    "swarm-node --role ROLE --spec JSON",
		Short:  "One node of bench swarm (started by it, inside a namespace)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(*cobra.Command, []string) error {
			var s swarmbench.NodeSpec
			if err := json.Unmarshal([]byte(spec), &s); err != nil {
				return usagef("--spec: %v", err)
			}
			s.Role = role
			return failure(swarmbench.RunNode(e.ctx, s, os.Stdin, e.stdout), "")
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "http-seed, http-get, swarm-seed or swarm-fetch")
	cmd.Flags().StringVar(&spec, "spec", "{}", "the node's settings, as JSON")
	return cmd
}

// swarmProgress tells a terminal which phase runs and draws a bar of the
// bytes all nodes hold.
type swarmProgress struct {
	w     io.Writer
	phase string
	start time.Time
	bar   *progressbar.ProgressBar
}

func newSwarmProgress(w io.Writer) *swarmProgress { return &swarmProgress{w: w} }

func (p *swarmProgress) update(pr swarmbench.Progress) {
	if pr.Phase != p.phase {
		p.endBar()
		p.phase, p.start = pr.Phase, time.Now()
		switch pr.Phase {
		case "network":
			fmt.Fprintf(p.w, "network: %d namespaces on a bridge, tbf on every link\n", pr.Nodes+1)
		case "image":
			fmt.Fprintf(p.w, "image: %s of random bytes at the seed\n", humanize.IBytes(uint64(pr.Total)))
		case "verify":
			fmt.Fprintf(p.w, "verify: %d nodes hash their copies\n", pr.Nodes)
		case "cleanup":
			fmt.Fprintln(p.w, "cleanup: namespaces, veths, bridge")
		default:
			fmt.Fprintf(p.w, "%s: starting the seed and %d nodes\n", pr.Phase, pr.Nodes)
			p.bar = progressbar.NewOptions64(pr.Total,
				progressbar.OptionSetWriter(p.w),
				progressbar.OptionSetDescription(pr.Phase),
				progressbar.OptionShowBytes(true),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(200*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
		}
	}
	if p.bar == nil {
		return
	}
	p.bar.Describe(fmt.Sprintf("%s %d/%d done", pr.Phase, pr.Done, pr.Nodes))
	p.bar.Set64(pr.Bytes)
	if pr.Node > 0 && pr.Done == pr.Nodes {
		p.endBar()
		fmt.Fprintf(p.w, "%s: all %d nodes done in %.1f s\n", pr.Phase, pr.Nodes, pr.Secs)
	}
}

func (p *swarmProgress) endBar() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}

// printSwarmTable prints the report for people: sizes and times in their
// units, then one row per node.
func printSwarmTable(w io.Writer, r *swarmbench.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	size := humanize.IBytes(uint64(r.SizeBytes))
	fmt.Fprintf(tw, "nodes\t%d\nimage\t%s (sha256 %.12s…)\nlinks\t%s each way (tc tbf)\n", r.Nodes, size, r.ImageSHA256, humanize.SI(float64(r.RateBitsPerSecond), "bit/s"))
	fmt.Fprintf(tw, "lower bound\t%s\tmax(S/U_s, S/d, N·S/(U_s+Σu)); pipeline fill +%s\n", secs(r.LowerBoundS), secs(r.PipelineFillS))
	if r.Swarm != nil {
		fmt.Fprintf(tw, "swarm\t%s\teta %.2f\n", secs(r.SwarmS), r.Eta)
		fmt.Fprintf(tw, "seed egress\t%.2f × image\t%s off the seed's link (payload %.2f ×)\n", r.SeedEgressRatio, humanize.IBytes(uint64(r.Swarm.SeedSentBytes)), r.SeedUploadRatio)
		if r.Pieces > 0 {
			fmt.Fprintf(tw, "pieces\t%d × %s\n", r.Pieces, humanize.IBytes(uint64(r.PieceLength)))
		}
		if r.WebSeedBytes > 0 {
			fmt.Fprintf(tw, "web seed\t%s\n", humanize.IBytes(uint64(r.WebSeedBytes)))
		}
	}
	if r.HTTP != nil {
		fmt.Fprintf(tw, "http\t%s\tbound N·S/U_s %s\n", secs(r.HTTPS), secs(r.HTTPLowerBoundS))
	}
	if r.SpeedupVsHTTP > 0 {
		fmt.Fprintf(tw, "speedup vs http\t%.1f×\n", r.SpeedupVsHTTP)
	}
	fmt.Fprintf(tw, "verified\t%v\n", r.AllVerified)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHTTP\tSWARM\tSWARM 50%\tSWARM SENT\tSWARM CPU")
	for i := range r.Nodes {
		row := []string{fmt.Sprint(i + 1), "-", "-", "-", "-", "-"}
		if r.HTTP != nil {
			row[1] = secs(r.HTTP.Nodes[i].Seconds)
		}
		if r.Swarm != nil {
			n := r.Swarm.Nodes[i]
			row[2], row[3] = secs(n.Seconds), secs(n.DecilesS[4])
			row[4], row[5] = humanize.IBytes(uint64(n.SentBytes)), secs(n.CPUS)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func secs(s float64) string { return fmt.Sprintf("%.1f s", s) }
