// Package swarmbench measures image distribution to N nodes over shaped
// links: one network namespace per node and one for the seed on a Linux
// bridge, each link limited by tbf, the image sent once by plain HTTP
// from the seed and once by the BitTorrent swarm, and both times set
// against the DESIGN §7 lower bound. Nodes are processes the benchmark
// starts inside the namespaces (Options.Command re-executes the binary);
// creating namespaces needs root.
package swarmbench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Methods of distribution, in the order they run.
const (
	MethodHTTP  = "http"
	MethodSwarm = "swarm"
)

// Options are one benchmark run's settings.
type Options struct {
	Nodes int
	Size  int64 // image bytes
	Rate  int64 // every link, each direction, bits per second

	// Command runs a node: the executable and the arguments before
	// "--role ROLE --spec JSON" (for fairlease: exe bench swarm-node).
	Command []string

	Methods     []string // default every method built in, HTTP first
	PieceLength int64    // swarm piece length; 0 lets the swarm choose
	WebSeed     bool     // also offer the seed's HTTP server as a BEP 19 web seed

	// Dir holds the image, the nodes' copies and their logs. Empty means
	// a temporary directory, removed after the run.
	Dir string

	// Prefix names the run's namespaces, veths and bridge; empty means
	// NewPrefix.
	Prefix string

	// Progress, if set, hears about phases and nodes finishing. It runs
	// on the benchmark's goroutine and must return quickly.
	Progress func(Progress)
}

// Progress is where a run is.
type Progress struct {
	Phase string // network, image, http, swarm, verify, cleanup
	Nodes int    // nodes in the phase
	Done  int    // nodes done
	Bytes int64  // bytes all nodes hold
	Total int64  // bytes all nodes will hold
	Node  int    // the node that just finished, if any
	Secs  float64
}

// Setup and verification steps get their own deadlines, so that a node
// that never comes up fails the run long before the overall timeout.
var (
	readyTimeout  = 2 * time.Minute
	verifyTimeout = 5 * time.Minute
)

// distributor is one way of moving the image from the seed to the nodes:
// the roles its seed and its nodes play.
type distributor interface {
	name() string
	seed(base NodeSpec) NodeSpec
	node(base NodeSpec, seedReady message) NodeSpec
}

type httpDistributor struct{}

func (httpDistributor) name() string { return MethodHTTP }
func (httpDistributor) seed(s NodeSpec) NodeSpec {
	s.Role = RoleHTTPSeed
	return s
}
func (httpDistributor) node(s NodeSpec, _ message) NodeSpec {
	s.Role = RoleHTTPGet
	return s
}

// distributors are the methods Run knows; swarm.go adds the swarm.
var distributors = map[string]distributor{MethodHTTP: httpDistributor{}}

// Check reports what is wrong with o, if anything.
func (o *Options) Check() error {
	switch {
	case o.Nodes < 1 || o.Nodes > MaxNodes:
		return fmt.Errorf("--nodes must be between 1 and %d, got %d", MaxNodes, o.Nodes)
	case o.Size < 1:
		return fmt.Errorf("--size must be positive, got %d bytes", o.Size)
	case o.Rate < 1:
		return fmt.Errorf("--rate must be positive, got %d bit/s", o.Rate)
	case o.PieceLength < 0 || o.PieceLength&(o.PieceLength-1) != 0 || (o.PieceLength > 0 && o.PieceLength < 16<<10):
		return fmt.Errorf("--piece-length must be a power of two of at least 16KiB, got %d", o.PieceLength)
	case len(o.Command) == 0:
		return errors.New("swarmbench: no command to run the nodes")
	}
	for _, m := range o.EffectiveMethods() {
		if _, ok := distributors[m]; !ok {
			return fmt.Errorf("--methods: unknown method %q (want http, swarm or both)", m)
		}
	}
	return nil
}

// EffectiveMethods are the methods a run with o uses, in order.
func (o *Options) EffectiveMethods() []string {
	if len(o.Methods) > 0 {
		return o.Methods
	}
	if HaveSwarm() {
		return []string{MethodHTTP, MethodSwarm}
	}
	return []string{MethodHTTP}
}

// bench is one run in progress.
type bench struct {
	opt    Options
	dir    string
	net    *Network
	image  string
	sum    string
	report *Report
}

// Run builds the network, creates the image at the seed, distributes it
// with each method and reports. It removes everything it created (and
// stops every process it started) before it returns, also on error or
// when ctx ends.
func Run(ctx context.Context, opt Options) (rep *Report, err error) {
	if err := opt.Check(); err != nil {
		return nil, err
	}
	if opt.Prefix == "" {
		opt.Prefix = NewPrefix()
	}
	b := &bench{opt: opt, dir: opt.Dir}
	if b.dir == "" {
		if b.dir, err = os.MkdirTemp("", "swarmbench-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(b.dir)
	} else if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return nil, err
	}
	if err := b.checkSpace(); err != nil {
		return nil, err
	}
	b.progress(Progress{Phase: "network", Nodes: opt.Nodes})
	b.net, err = Setup(ctx, opt.Prefix, opt.Nodes, opt.Rate)
	if err != nil {
		return nil, fmt.Errorf("create the benchmark network (namespaces, bridge, tc tbf): %w", err)
	}
	defer func() {
		b.progress(Progress{Phase: "cleanup"})
		if cerr := b.net.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	b.progress(Progress{Phase: "image", Total: opt.Size})
	b.image = filepath.Join(b.dir, "seed", "image")
	if b.sum, err = writeImage(b.image, opt.Size); err != nil {
		return nil, fmt.Errorf("create the image at the seed: %w", err)
	}
	b.report = newReport(opt)
	b.report.ImageSHA256 = b.sum
	for _, m := range opt.EffectiveMethods() {
		ph, err := b.runPhase(ctx, distributors[m])
		if err != nil {
			return nil, fmt.Errorf("%s distribution: %w", m, err)
		}
		b.report.add(m, ph)
		if opt.Dir == "" {
			// Free the copies before the next method writes its own.
			os.RemoveAll(filepath.Join(b.dir, m))
		}
	}
	b.report.finish()
	return b.report, b.report.Unverified()
}

func (b *bench) progress(p Progress) {
	if b.opt.Progress != nil {
		b.opt.Progress(p)
	}
}

// checkSpace refuses a run whose copies would not fit in the directory.
func (b *bench) checkSpace() error {
	copies := int64(b.opt.Nodes)
	if b.opt.Dir != "" {
		copies *= int64(len(b.opt.EffectiveMethods())) // kept, not freed between methods
	}
	need := (copies + 1) * b.opt.Size
	var st syscall.Statfs_t
	if err := syscall.Statfs(b.dir, &st); err != nil {
		return nil // cannot tell; the writes will say
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return fmt.Errorf("swarmbench: %s has %d bytes free and the run needs %d (%d copies of the image); give --dir on a larger file system or lower --nodes or --size", b.dir, free, need, copies+1)
	}
	return nil
}

// writeImage fills path with size random bytes and returns their SHA-256.
func writeImage(path string, size int64) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rand.Uint32())
	}
	src := rand.NewChaCha8(seed)
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		src.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return "", err
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// phase is what one method's run measured.
type phase struct {
	seconds    float64
	seedReady  message
	seedStats  message
	nodes      []nodeRun // [i-1] is node i
	before     []Counters
	after      []Counters
	cpu        cpuTimes // the machine's, during the timed part
	setupSecs  float64
	verifySecs float64
}

// nodeRun is one node's part of a phase.
type nodeRun struct {
	done      message
	stats     message
	doneAt    time.Duration // since go, as the parent saw it
	firstByte time.Duration
	deciles   [10]time.Duration // when it held 10 %, 20 %, … of the image
	bytes     int64
}

// runPhase distributes the image with d: seed up, nodes up, go, every node
// done, stop, every node's copy hashed.
func (b *bench) runPhase(ctx context.Context, d distributor) (*phase, error) {
	n := b.opt.Nodes
	ph := &phase{nodes: make([]nodeRun, n)}
	quit := make(chan struct{})
	events := make(chan event, 4*(n+1))
	procs := map[int]*proc{}
	defer func() {
		close(quit) // nobody reads events any more: let the readers finish
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Go(func() { p.stop(10 * time.Second) })
		}
		wg.Wait()
	}()
	base := func(i int) NodeSpec {
		h := b.net.Hosts[i]
		return NodeSpec{
			Index: i, Nodes: n, Size: b.opt.Size, Rate: b.opt.Rate,
			Addr: h.Addr, Seed: b.net.Hosts[0].Addr,
			Dir:         filepath.Join(b.dir, d.name(), fmt.Sprintf("node-%03d", i)),
			PieceLength: b.opt.PieceLength, WebSeed: b.opt.WebSeed,
		}
	}
	logs := filepath.Join(b.dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	start := func(spec NodeSpec) error {
		p, err := startProc(b.net.Hosts[spec.Index].NS, b.opt.Command, spec,
			filepath.Join(logs, fmt.Sprintf("%s-%s.log", d.name(), procLabel(spec.Index))), events, quit)
		if err != nil {
			return err
		}
		procs[spec.Index] = p
		return nil
	}
	setupStart := time.Now()
	total := int64(n) * b.opt.Size
	b.progress(Progress{Phase: d.name(), Nodes: n, Total: total})

	// The seed first: a swarm seed's ready carries the metainfo.
	seed := base(0)
	seed.Dir = filepath.Join(b.dir, d.name(), "seed")
	seed.Image = b.image
	if err := start(d.seed(seed)); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeoutCause(ctx, readyTimeout, errors.New("the seed did not come up in time"))
	err := waitFor(rctx, events, procs, map[int]bool{0: true}, func(ev event) (bool, error) {
		if ev.msg.Event == "ready" {
			ph.seedReady = ev.msg
			return true, nil
		}
		return false, nil
	})
	cancel()
	if err != nil {
		return nil, err
	}
	want := map[int]bool{}
	for i := 1; i <= n; i++ {
		if err := start(d.node(base(i), ph.seedReady)); err != nil {
			return nil, err
		}
		want[i] = true
	}
	rctx, cancel = context.WithTimeoutCause(ctx, readyTimeout, errors.New("the nodes did not come up in time"))
	err = waitFor(rctx, events, procs, want, func(ev event) (bool, error) { return ev.msg.Event == "ready", nil })
	cancel()
	if err != nil {
		return nil, err
	}
	ph.setupSecs = time.Since(setupStart).Seconds()

	// The timed part: from go to the last node's done.
	var err2 error
	if ph.before, err2 = b.counters(); err2 != nil {
		return nil, err2
	}
	cpu0 := readCPU()
	t0 := time.Now()
	for i := 0; i <= n; i++ {
		if err := procs[i].say("go"); err != nil {
			return nil, fmt.Errorf("swarmbench: tell %s to go: %w", procName(i), err)
		}
	}
	want = map[int]bool{}
	for i := 1; i <= n; i++ {
		want[i] = true
	}
	var held int64
	done := 0
	err = waitFor(ctx, events, procs, want, func(ev event) (bool, error) {
		if ev.index == 0 {
			return false, nil
		}
		r := &ph.nodes[ev.index-1]
		at := time.Duration(ev.msg.Time - t0.UnixNano())
		switch ev.msg.Event {
		case "progress", "done":
			held += ev.msg.Bytes - r.bytes
			r.note(ev.msg.Bytes, b.opt.Size, at)
		}
		if ev.msg.Event != "done" {
			b.progress(Progress{Phase: d.name(), Nodes: n, Done: done, Bytes: held, Total: total})
			return false, nil
		}
		r.done, r.doneAt = ev.msg, time.Since(t0)
		done++
		b.progress(Progress{Phase: d.name(), Nodes: n, Done: done, Bytes: held, Total: total, Node: ev.index, Secs: r.doneAt.Seconds()})
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	ph.seconds = time.Since(t0).Seconds()
	ph.cpu = readCPU().since(cpu0)
	if ph.after, err = b.counters(); err != nil {
		return nil, err
	}

	// Stop and verify: each node hashes its copy as it lies on disk.
	b.progress(Progress{Phase: "verify", Nodes: n})
	verifyStart := time.Now()
	want = map[int]bool{}
	for i, p := range procs {
		if err := p.say("stop"); err != nil {
			return nil, fmt.Errorf("swarmbench: tell %s to stop: %w", procName(i), err)
		}
		want[i] = true
	}
	vctx, cancel := context.WithTimeoutCause(ctx, verifyTimeout, errors.New("the nodes did not verify their copies in time"))
	defer cancel()
	err = waitFor(vctx, events, procs, want, func(ev event) (bool, error) {
		if ev.msg.Event != "stats" {
			return false, nil
		}
		if ev.index == 0 {
			ph.seedStats = ev.msg
		} else {
			ph.nodes[ev.index-1].stats = ev.msg
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	ph.verifySecs = time.Since(verifyStart).Seconds()
	return ph, nil
}

// note records that a node held bytes of size at time at.
func (r *nodeRun) note(bytes, size int64, at time.Duration) {
	if bytes > 0 && r.bytes == 0 {
		r.firstByte = at
	}
	for k := range r.deciles {
		if r.deciles[k] == 0 && bytes*10 >= int64(k+1)*size {
			r.deciles[k] = at
		}
	}
	r.bytes = bytes
}

func (b *bench) counters() ([]Counters, error) {
	cs := make([]Counters, len(b.net.Hosts))
	for i := range b.net.Hosts {
		c, err := b.net.Counters(i)
		if err != nil {
			return nil, err
		}
		cs[i] = c
	}
	return cs, nil
}

func procLabel(i int) string {
	if i == 0 {
		return "seed"
	}
	return fmt.Sprintf("node-%03d", i)
}

// cpuTimes are the machine's CPU counters from /proc/stat, summed over
// all CPUs, in clock ticks.
type cpuTimes struct{ busy, softirq, total uint64 }

func readCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	// cpu user nice system idle iowait irq softirq steal
	var name string
	var v [8]uint64
	fmt.Sscan(string(b), &name, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7])
	var t cpuTimes
	for i, x := range v {
		t.total += x
		if i != 3 && i != 4 { // idle, iowait
			t.busy += x
		}
	}
	t.softirq = v[6]
	return t
}

func (c cpuTimes) since(c0 cpuTimes) cpuTimes {
	return cpuTimes{busy: c.busy - c0.busy, softirq: c.softirq - c0.softirq, total: c.total - c0.total}
}

// clockTick is USER_HZ, the unit of /proc/stat: 100 on every Linux port
// Go runs on.
const clockTick = 100

// HaveSwarm reports whether the BitTorrent method is built in.
func HaveSwarm() bool {
	_, ok := distributors[MethodSwarm]
	return ok
}
