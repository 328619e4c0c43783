package hostagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/hostagent/virt"
	"github.com/fairlease/fairlease/lease"
)

const (
	testJoin = "join-secret"
	testCred = "host-credential"
	testHost = "h1"
)

var errDown = errors.New("fake broker: connection refused")

// fakeBroker is the broker as one host's agent sees it: it keeps the
// assignments, applies VM reports to them as the broker's state would,
// and can be taken down.
type fakeBroker struct {
	mu          sync.Mutex
	changed     chan struct{} // closed on every change
	index       uint64
	assignments []broker.Assignment
	reports     []broker.VMStateChange
	registers   int
	heartbeats  []Registration
	sinces      []uint64 // the since of every Assignments call
	dialed      []string
	images      map[string]broker.Image
	blobs       map[string][]byte // by digest
	opens       int
	down        bool
	noAnswers   bool             // Assignments fails, the rest works
	keepFailed  bool             // a failed VM does not end its lease
	openFails   int              // so many OpenImage calls fail as if the broker were away
	refuse      map[string]error // by report state: a permanent refusal
}

func newFakeBroker() *fakeBroker {
	return &fakeBroker{changed: make(chan struct{}), images: map[string]broker.Image{}, blobs: map[string][]byte{}}
}

func (f *fakeBroker) dial(token string) Broker {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dialed = append(f.dialed, token)
	return &fakeConn{f: f, token: token}
}

// addImage stores content as image name; bad makes the digest lie.
func (f *fakeBroker) addImage(name string, content []byte, bad bool) broker.Image {
	sum := sha256.Sum256(content)
	digest := hex.EncodeToString(sum[:])
	blob := content
	if bad {
		blob = bytes.Repeat([]byte{'x'}, len(content))
	}
	im := broker.Image{Name: name, Digest: digest, Size: int64(len(content)), Format: "qcow2"}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[name] = im
	f.blobs[digest] = blob
	return im
}

// set replaces the host's assignments, as a new applied index.
func (f *fakeBroker) set(as ...broker.Assignment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.assignments = as
	f.bumpLocked()
}

func (f *fakeBroker) bumpLocked() {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

// setDown makes every call fail (or succeed again); calls waiting for
// assignments fail at once.
func (f *fakeBroker) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeBroker) Reports() []broker.VMStateChange {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reports)
}

func (f *fakeBroker) Sinces() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sinces)
}

type fakeConn struct {
	f     *fakeBroker
	token string
}

func (c *fakeConn) check(want string) error {
	if c.f.down {
		return errDown
	}
	if c.token != want {
		return lease.Errorf(lease.EUNAUTHORIZED, "", "token %q is not %q", c.token, want)
	}
	return nil
}

func (c *fakeConn) Register(ctx context.Context, r Registration) (string, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if err := c.check(testJoin); err != nil {
		return "", err
	}
	c.f.registers++
	c.f.heartbeats = append(c.f.heartbeats, r)
	return testCred, nil
}

func (c *fakeConn) Heartbeat(ctx context.Context, r Registration) error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if err := c.check(testCred); err != nil {
		return err
	}
	c.f.heartbeats = append(c.f.heartbeats, r)
	return nil
}

func (c *fakeConn) Assignments(ctx context.Context, since uint64, wait time.Duration) (uint64, []broker.Assignment, error) {
	c.f.mu.Lock()
	c.f.sinces = append(c.f.sinces, since)
	if err := c.check(testCred); err != nil {
		c.f.mu.Unlock()
		return 0, nil, err
	}
	if c.f.noAnswers {
		c.f.mu.Unlock()
		return 0, nil, errDown
	}
	for c.f.index <= since {
		ch := c.f.changed
		c.f.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-time.After(wait):
			c.f.mu.Lock()
			defer c.f.mu.Unlock()
			if c.f.down {
				return 0, nil, errDown
			}
			return c.f.index, cloneAssignments(c.f.assignments), nil
		case <-ch:
		}
		c.f.mu.Lock()
		if c.f.down {
			c.f.mu.Unlock()
			return 0, nil, errDown
		}
	}
	defer c.f.mu.Unlock()
	return c.f.index, cloneAssignments(c.f.assignments), nil
}

func cloneAssignments(as []broker.Assignment) []broker.Assignment {
	out := slices.Clone(as)
	for i := range out {
		out[i].VMs = slices.Clone(out[i].VMs)
		out[i].Mine = slices.Clone(out[i].Mine)
	}
	return out
}

// ReportVM records c and, like the broker's state, sets the VM's state;
// a failed VM ends its lease.
func (c *fakeConn) ReportVM(ctx context.Context, ch broker.VMStateChange) error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if err := c.check(testCred); err != nil {
		return err
	}
	if err := c.f.refuse[ch.State]; err != nil {
		return err
	}
	c.f.reports = append(c.f.reports, ch)
	for i, a := range c.f.assignments {
		if a.Lease != ch.ID {
			continue
		}
		if ch.State == broker.VMFailed && !c.f.keepFailed {
			c.f.assignments = slices.Delete(slices.Clone(c.f.assignments), i, i+1)
			break
		}
		for j, v := range a.VMs {
			if v.Index == ch.Index {
				vms := slices.Clone(a.VMs)
				vms[j].State = ch.State
				c.f.assignments[i].VMs = vms
			}
		}
		break
	}
	c.f.bumpLocked()
	return nil
}

func (c *fakeConn) Image(ctx context.Context, name string) (broker.Image, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if err := c.check(testCred); err != nil {
		return broker.Image{}, err
	}
	im, ok := c.f.images[name]
	if !ok {
		return broker.Image{}, lease.Errorf(lease.ENOTFOUND, "name", "no image %q", name)
	}
	return im, nil
}

func (c *fakeConn) Torrent(ctx context.Context, name string) ([]byte, error) {
	return nil, errors.New("this broker runs no swarm")
}

func (c *fakeConn) OpenImage(ctx context.Context, digest string) (io.ReadCloser, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if err := c.check(testCred); err != nil {
		return nil, err
	}
	if c.f.openFails > 0 {
		c.f.openFails--
		return nil, errDown
	}
	b, ok := c.f.blobs[digest]
	if !ok {
		return nil, lease.Errorf(lease.ENOTFOUND, "digest", "no blob %s", digest)
	}
	c.f.opens++
	return io.NopCloser(bytes.NewReader(b)), nil
}

// fakeHV is a hypervisor whose domains outlive the agents using it, as
// libvirt's do.
type fakeHV struct {
	mu       sync.Mutex
	domains  map[string]virt.Domain
	starts   []virt.Spec
	stops    []string
	startErr error
	events   chan virt.Event
	logDir   string
}

func newFakeHV(t *testing.T) *fakeHV {
	return &fakeHV{domains: map[string]virt.Domain{}, events: make(chan virt.Event, 16), logDir: t.TempDir()}
}

func (h *fakeHV) Start(ctx context.Context, s virt.Spec) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.starts = append(h.starts, s)
	if h.startErr != nil {
		return h.startErr
	}
	if _, ok := h.domains[s.Name]; ok {
		return fmt.Errorf("domain %s exists", s.Name)
	}
	if _, err := os.Stat(s.BaseImage); err != nil {
		return fmt.Errorf("base image: %w", err)
	}
	h.domains[s.Name] = virt.Domain{Name: s.Name, Lease: s.Lease, Index: s.Index, Host: s.Host, State: virt.Running}
	return nil
}

func (h *fakeHV) Stop(ctx context.Context, name string, grace time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stops = append(h.stops, name)
	delete(h.domains, name)
	return nil
}

func (h *fakeHV) List(ctx context.Context) ([]virt.Domain, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]virt.Domain, 0, len(h.domains))
	for _, d := range h.domains {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b virt.Domain) int { return cmpString(a.Name, b.Name) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (h *fakeHV) Events() <-chan virt.Event { return h.events }

func (h *fakeHV) ConsoleLog(name string) (string, error) {
	return filepath.Join(h.logDir, name+".log"), nil
}

func (h *fakeHV) Capacity(ctx context.Context) (lease.Resources, error) {
	return lease.Resources{Cores: 16, MemoryMiB: 65536}, nil
}

func (h *fakeHV) Kind() string { return "test" }
func (h *fakeHV) Close() error { return nil }

// setState changes a domain behind the agent's back and says so.
func (h *fakeHV) setState(name string, s virt.State, reason string) {
	h.mu.Lock()
	d := h.domains[name]
	d.State = s
	h.domains[name] = d
	h.mu.Unlock()
	h.events <- virt.Event{Domain: d, Reason: reason}
}

func (h *fakeHV) add(d virt.Domain) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.domains[d.Name] = d
}

func (h *fakeHV) Starts() []virt.Spec {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.starts)
}

func (h *fakeHV) Stops() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.stops)
}

func (h *fakeHV) Names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for n := range h.domains {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// testConfig is a valid configuration in t's temporary directories.
func testConfig(t *testing.T, stateDir string) Config {
	c := DefaultConfig()
	c.Brokers = []string{"http://broker.test:7070"}
	c.JoinToken = testJoin
	c.Host = testHost
	c.StateDir = stateDir
	c.CacheLimit = 1 << 30
	c.Heartbeat = 50 * time.Millisecond
	c.ShutdownGrace = time.Second
	return c
}

// testAgent is an agent under test.
type testAgent struct {
	*Agent
	stop func()
}

// startAgent runs an agent until the test ends (or stop), and waits until
// it is ready.
func startAgent(t *testing.T, cfg Config, b *fakeBroker, hv Hypervisor, opts ...func(*Agent)) *testAgent {
	t.Helper()
	a, err := New(cfg, b.dial, hv, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	a.retryMin, a.retryMax, a.pollWait = 5*time.Millisecond, 20*time.Millisecond, 2*time.Second
	for _, o := range opts {
		o(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return 10s after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-a.Ready():
	case err := <-errc:
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("agent not ready after 10s")
	}
	return &testAgent{Agent: a, stop: stop}
}

// testWriter sends the agent's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// settle waits for two more reconciles than now, so that whatever the
// agent would do about the current state is done or under way, then for
// its workers.
func (r *testAgent) settle(t *testing.T) {
	t.Helper()
	n := r.passes.Load()
	r.kick()
	waitFor(t, "a reconcile", func() bool { return r.passes.Load() >= n+1 })
	r.kick()
	waitFor(t, "a second reconcile", func() bool { return r.passes.Load() >= n+2 })
	waitFor(t, "idle workers", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range r.mem {
			if m.Busy {
				return false
			}
		}
		return true
	})
}

// sync waits until the agent has the broker's latest assignments (it asks
// for what comes after them), then settles.
func (r *testAgent) sync(t *testing.T, b *fakeBroker) {
	t.Helper()
	waitFor(t, "the agent to catch up with the broker", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.sinces) > 0 && b.sinces[len(b.sinces)-1] == b.index
	})
	r.settle(t)
}
