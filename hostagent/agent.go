package hostagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/hostagent/virt"
	"github.com/fairlease/fairlease/lease"
)

// Agent runs one host's VMs as its broker assigns them.
type Agent struct {
	cfg    Config
	dial   Dialer
	hv     Hypervisor
	log    *slog.Logger
	cache  *Cache
	logKey string

	// Seams for tests: the clock, the retry delays and the long poll.
	now      func() time.Time
	retryMin time.Duration
	retryMax time.Duration
	pollWait time.Duration

	running atomic.Bool
	ready   chan struct{}
	addr    atomic.Pointer[string]
	broker  Broker // set once, before ready closes
	reg     Registration
	out     *outbox
	workers sync.WaitGroup

	wake chan struct{} // asks for a reconcile
	// passes counts finished reconciles, so tests can wait for one.
	passes atomic.Int64

	mu        sync.Mutex
	desired   []broker.Assignment
	have      bool // the broker answered at least once
	mem       map[string]vmMemory
	digests   map[string]string // image digest by image name, once resolved
	resolving map[string]bool   // image names being resolved
	// prefetching holds the leases deferred to a start here whose images
	// are fetched ahead.
	prefetching map[lease.ID]*prefetchJob
	// peers fetches and serves images over the swarm (nil: broker only).
	peers *swarmPeers
}

// New checks cfg, creates the state and cache directories, opens the
// image cache and loads (or makes) the log key. dial makes the broker
// clients; hv runs the VMs. Nothing talks to the broker before Run.
func New(cfg Config, dial Dialer, hv Hypervisor, logger *slog.Logger) (*Agent, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("hostagent: no host configured and the hostname is unknown: set host: %w", err)
		}
		cfg.Host = h
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("hostagent: %w", err)
	}
	if dial == nil || hv == nil {
		return nil, errors.New("hostagent: New needs a Dialer and a Hypervisor")
	}
	// Others may pass through but not list: QEMU runs as its own user and
	// must reach the VM files below; the secrets here are 0600 files.
	if err := os.MkdirAll(cfg.StateDir, 0o711); err != nil {
		return nil, fmt.Errorf("hostagent: create state_dir: %w", err)
	}
	if err := os.Chmod(cfg.StateDir, 0o711); err != nil {
		return nil, fmt.Errorf("hostagent: state_dir: %w", err)
	}
	key, err := loadLogKey(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("hostagent: %w", err)
	}
	a := &Agent{
		cfg: cfg, dial: dial, hv: hv, log: logger.With("host", cfg.Host), logKey: key,
		now: time.Now, retryMin: 100 * time.Millisecond, retryMax: 5 * time.Second, pollWait: 30 * time.Second,
		ready: make(chan struct{}), wake: make(chan struct{}, 1), out: newOutbox(logger.With("host", cfg.Host)),
		mem: map[string]vmMemory{}, digests: map[string]string{}, resolving: map[string]bool{}, prefetching: map[lease.ID]*prefetchJob{},
	}
	open := func(ctx context.Context, digest string) (io.ReadCloser, error) {
		return a.broker.OpenImage(ctx, digest)
	}
	if a.cache, err = OpenCache(cfg.CacheDir, cfg.CacheLimit, open, a.log); err != nil {
		return nil, fmt.Errorf("hostagent: %w", err)
	}
	a.cache.now = func() time.Time { return a.now() }
	// The names the cached images were fetched under: eviction knows at
	// once which images the host's leases need, before the broker answers
	// for each name (an answer replaces a stale one).
	maps.Copy(a.digests, a.cache.Names())
	if cfg.SwarmListen != "" {
		if a.peers, err = newSwarmPeers(cfg, func() Broker { return a.broker }); err != nil {
			return nil, fmt.Errorf("hostagent: %w", err)
		}
		a.cache.UsePeers(a.peers)
	}
	return a, nil
}

// Addr is the console log server's base URL once Run listens, else "".
func (a *Agent) Addr() string {
	if p := a.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Ready is closed once the host is registered and Addr is set.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Run listens, registers (once: the credential is kept in state_dir),
// then beats, follows the assignments and reconciles until ctx ends. It
// stops its goroutines before returning, but not the VMs: they run on
// without the agent, and the next agent adopts them. It returns nil when
// ctx ends and an error only when the agent cannot start.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("hostagent: Run called twice")
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("hostagent: listen on %s: %w; change listen", a.cfg.Listen, err)
	}
	addr := advertise(ln.Addr(), a.cfg.Host)
	a.addr.Store(&addr)
	srv := &http.Server{Handler: a.logHandler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("log server", "err", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-served
	}()

	if a.peers != nil {
		defer a.peers.close()
	}
	if err := a.register(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if a.peers != nil {
		a.workers.Go(func() {
			if err := a.peers.seedCached(ctx, a.cache); err != nil {
				a.log.Warn("swarm: seed cached images", "err", err)
			}
		})
	}
	close(a.ready)
	a.log.Info("agent ready", "addr", addr, "brokers", a.cfg.Brokers)

	var wg sync.WaitGroup
	wg.Go(func() { a.beat(ctx) })
	wg.Go(func() { a.poll(ctx) })
	wg.Go(func() { a.out.send(ctx, a.broker, a.backoff()) })
	wg.Go(func() { a.watch(ctx) })
	wg.Go(func() { a.reconcileLoop(ctx) })
	wg.Wait()
	a.workers.Wait() // after the loop that adds to it has returned
	return nil
}

func (a *Agent) backoff() backoff { return backoff{min: a.retryMin, max: a.retryMax} }

// advertise turns the listener's address into the URL the broker uses:
// a wildcard address becomes the host's name.
func advertise(addr net.Addr, host string) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String()
	}
	h := ta.IP.String()
	if ta.IP.IsUnspecified() {
		h = host
	}
	return "http://" + net.JoinHostPort(h, fmt.Sprint(ta.Port))
}

// register sets a.broker: dialled with the saved credential, or else with
// the join token, whose credential is saved before anything else happens.
func (a *Agent) register(ctx context.Context) error {
	capacity, err := a.capacity(ctx)
	if err != nil {
		return err
	}
	a.reg = Registration{Host: a.cfg.Host, Capacity: capacity, Addr: a.Addr(), LogKey: a.logKey, Driver: a.cfg.Driver}
	path := filepath.Join(a.cfg.StateDir, credentialFile)
	cred, err := readSecret(path)
	if err != nil {
		return fmt.Errorf("hostagent: %w", err)
	}
	if cred == "" {
		if a.cfg.JoinToken == "" {
			return fmt.Errorf("hostagent: %s holds no credential and join_token is not set: set join_token (an admin makes one with `fairlease host join-token`)", a.cfg.StateDir)
		}
		if cred, err = a.enrol(ctx); err != nil {
			return err
		}
		// A join token may work once only: lose this and the host is locked out.
		if err := writeFileAtomic(path, []byte(cred+"\n"), 0o600); err != nil {
			return fmt.Errorf("hostagent: save the credential the broker issued: %w; it cannot be issued again, so revoke it and register with a new join token", err)
		}
		a.log.Info("registered with the broker", "credential", path)
	}
	a.broker = a.dial(cred)
	return nil
}

// enrol registers with the join token, retrying while the broker is away.
func (a *Agent) enrol(ctx context.Context) (string, error) {
	b := a.dial(a.cfg.JoinToken)
	bo := a.backoff()
	for {
		r := a.reg
		r.Images = a.cache.Inventory()
		cred, err := b.Register(ctx, r)
		switch {
		case err == nil && cred != "":
			return cred, nil
		case err == nil:
			return "", errors.New("hostagent: the broker issued an empty credential")
		case ctx.Err() != nil:
			return "", ctx.Err()
		}
		switch lease.ErrorCode(err) {
		case lease.EUNAUTHORIZED, lease.EFORBIDDEN, lease.EINVALID:
			return "", fmt.Errorf("hostagent: the broker refused to register host %s: %w; check join_token and host", a.cfg.Host, err)
		}
		a.log.Warn("register; will retry", "err", err)
		if !sleep(ctx, bo.next()) {
			return "", ctx.Err()
		}
	}
}

// capacity is what the host offers: configured, or the hypervisor's.
func (a *Agent) capacity(ctx context.Context) (lease.Resources, error) {
	r := lease.Resources{Cores: a.cfg.Cores, MemoryMiB: a.cfg.MemoryMiB}
	if r.Cores > 0 && r.MemoryMiB > 0 {
		return r, nil
	}
	hc, err := a.hv.Capacity(ctx)
	if err != nil {
		return r, fmt.Errorf("hostagent: ask the hypervisor for its capacity: %w; or set cores and memory", err)
	}
	if r.Cores == 0 {
		r.Cores = hc.Cores
	}
	if r.MemoryMiB == 0 {
		r.MemoryMiB = hc.MemoryMiB
	}
	return r, nil
}

// beat sends a heartbeat now and every cfg.Heartbeat; errors are logged
// and the next beat tries again.
func (a *Agent) beat(ctx context.Context) {
	t := time.NewTicker(a.cfg.Heartbeat)
	defer t.Stop()
	for {
		r := a.reg
		r.Images = a.cache.Inventory()
		if err := a.broker.Heartbeat(ctx, r); err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// poll follows the host's assignments: each answer is the whole set. On
// errors it backs off and asks again from the last index it saw.
func (a *Agent) poll(ctx context.Context) {
	var since uint64
	bo := a.backoff()
	for {
		idx, as, err := a.broker.Assignments(ctx, since, a.pollWait)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			a.log.Warn("get assignments; will retry", "since", since, "err", err)
			if !sleep(ctx, bo.next()) {
				return
			}
			continue
		}
		bo.reset()
		since = idx
		run, pre := splitPrefetch(as)
		a.mu.Lock()
		a.desired, a.have = run, true
		a.mu.Unlock()
		a.prefetch(ctx, pre)
		a.kick()
	}
}

// kick asks for a reconcile.
func (a *Agent) kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// watch turns the hypervisor's events into reconciles; a crash's reason
// becomes the note of the VM's failure.
func (a *Agent) watch(ctx context.Context) {
	events := a.hv.Events()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				a.log.Warn("the hypervisor's events stopped; relying on periodic reconciles")
				events = nil
				continue
			}
			a.log.Info("domain event", "domain", ev.Name, "state", ev.State, "reason", ev.Reason)
			if ev.State == virt.Crashed {
				a.mu.Lock()
				m := a.mem[ev.Name]
				m.Reason = fmt.Sprintf("domain %s crashed", ev.Name)
				if ev.Reason != "" {
					m.Reason += ": " + ev.Reason
				}
				a.mem[ev.Name] = m
				a.mu.Unlock()
				a.out.amend(broker.VMStateChange{ID: ev.Lease, Index: ev.Index, State: broker.VMFailed, Note: m.Reason})
			}
			a.kick()
		}
	}
}
