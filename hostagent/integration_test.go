package hostagent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/broker/api/apitest"
	"github.com/fairlease/fairlease/broker/server"
	"github.com/fairlease/fairlease/broker/server/servertest"
	"github.com/fairlease/fairlease/client"
	"github.com/fairlease/fairlease/hostagent"
	"github.com/fairlease/fairlease/hostagent/httpbroker"
	"github.com/fairlease/fairlease/hostagent/virt"
	"github.com/fairlease/fairlease/lease"
)

// These tests run the real pieces together: the broker's API (on a fake
// backend, or a three-node Raft cluster), the agent's HTTP broker client,
// and libvirt's test driver.

// baseImage makes a small qcow2 to push.
func baseImage(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is needed (Debian: qemu-utils; make deps installs it)")
	}
	p := filepath.Join(t.TempDir(), "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	return p
}

func push(t *testing.T, c *client.Client, path, name string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if _, err := c.PushImage(t.Context(), name, "qcow2", true, f, st.Size()); err != nil {
		t.Fatal(err)
	}
}

// runningAgent is an agent running until stop.
type runningAgent struct {
	agent *hostagent.Agent
	stop  func()
	done  chan error
}

func startAgent(t *testing.T, brokers []string, join, host, dir string) *runningAgent {
	t.Helper()
	return startAgentCores(t, brokers, join, host, dir, 8)
}

func startAgentCores(t *testing.T, brokers []string, join, host, dir string, cores int64) *runningAgent {
	t.Helper()
	return startAgentWith(t, brokers, join, host, dir, cores, "")
}

func startAgentWith(t *testing.T, brokers []string, join, host, dir string, cores int64, swarmListen string) *runningAgent {
	t.Helper()
	cfg := hostagent.DefaultConfig()
	cfg.Brokers, cfg.JoinToken, cfg.Host, cfg.StateDir = brokers, join, host, dir
	cfg.Heartbeat, cfg.ShutdownGrace = 200*time.Millisecond, time.Second
	cfg.Cores, cfg.MemoryMiB = cores, 8192
	cfg.SwarmListen = swarmListen
	dial, err := httpbroker.Dialer(brokers)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hv, err := virt.Open(ctx, virt.Options{URI: "test:///default", Host: host, Dir: filepath.Join(dir, "vms"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	a, err := hostagent.New(cfg, dial, hv, logger)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &runningAgent{agent: a, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	r.stop = func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("agent %s: %v", host, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("agent %s did not stop within 10 s", host)
		}
		hv.Close()
	}
	select {
	case <-a.Ready():
	case err := <-r.done:
		t.Fatalf("agent %s ended: %v", host, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("agent %s did not register within 10 s", host)
	}
	return r
}

// waitFor polls cond for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func leaseRunning(t *testing.T, c *client.Client, id lease.ID) func() error {
	return func() error {
		l, err := c.Lease(t.Context(), id)
		if err != nil {
			return err
		}
		if l.State != lease.StateRunning {
			return fmt.Errorf("lease %s is %s", id, l.State)
		}
		return nil
	}
}

// inode identifies a file: a VM started anew gets a new overlay.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func TestAgentRestartAdoptsRunningVMs(t *testing.T) {
	s := apitest.NewServer(t)
	admin, _ := client.New(s.URL, s.Fake.AddUser(t, "root", "", broker.RoleAdmin))
	ada, _ := client.New(s.URL, s.Fake.AddUser(t, "ada", "physics", broker.RoleUser))
	push(t, admin, baseImage(t), "base")
	jt, err := admin.JoinToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	host := fmt.Sprintf("restart-%d", time.Now().UnixNano())
	dir := t.TempDir()
	// libvirt's test driver forgets its domains when its last connection
	// closes; a hypervisor keeps them. This connection stands for that.
	keeper, err := virt.Open(t.Context(), virt.Options{URI: "test:///default", Host: "keeper", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer keeper.Close()
	a1 := startAgent(t, []string{s.URL}, jt.Token, host, dir)
	l, err := ada.CreateLease(t.Context(), api.LeaseRequest{Count: 2, Cores: 2, MemoryMiB: 512, Image: "base", Duration: "10m"})
	if err != nil || l.Decision.Kind != lease.Granted {
		t.Fatalf("create: %v %+v", err, l)
	}
	waitFor(t, 10*time.Second, "lease running", leaseRunning(t, ada, l.ID))
	overlay := func(i int) string {
		return filepath.Join(dir, "vms", virt.DomainName(l.ID, i), "overlay.qcow2")
	}
	before := []uint64{inode(t, overlay(0)), inode(t, overlay(1))}
	proposed := s.Fake.Proposed

	a1.stop()
	// The VMs outlive their agent.
	if _, err := os.Stat(overlay(0)); err != nil {
		t.Fatalf("stopping the agent removed a VM: %v", err)
	}
	a2 := startAgent(t, []string{s.URL}, "", host, dir) // no join token: the saved credential
	defer a2.stop()
	// Let the new agent see its assignments and its domains a few times.
	time.Sleep(time.Second)
	after := []uint64{inode(t, overlay(0)), inode(t, overlay(1))}
	if !slices.Equal(before, after) {
		t.Errorf("VMs were started again: overlays %v, then %v", before, after)
	}
	got, err := ada.Lease(t.Context(), l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != lease.StateRunning {
		t.Errorf("after the restart the lease is %s", got.State)
	}
	for _, v := range got.VMs {
		if v.State != broker.VMRunning {
			t.Errorf("VM %d is %s", v.Index, v.State)
		}
	}
	// The lease's history has no step since it ran: nothing failed or
	// stopped across the restart.
	if last := got.History[len(got.History)-1]; last.State != lease.StateRunning {
		t.Errorf("last step of the lease: %+v", last)
	}
	if s.Fake.Proposed == proposed {
		t.Error("the new agent did not beat")
	}

	// At the end the domains go, files and all.
	if _, err := ada.TerminateLease(t.Context(), l.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "VM files removed", func() error {
		if _, err := os.Stat(filepath.Dir(overlay(0))); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s still there (%v)", filepath.Dir(overlay(0)), err)
		}
		return nil
	})
}

// TestAgentFollowsNewLeader kills the broker leader while an agent runs:
// the agent carries on through another node, and a lease granted by the
// new leader starts on its host.
func TestAgentFollowsNewLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-node Raft cluster: not in -short")
	}
	ctx := t.Context()
	cl, err := servertest.Start(ctx, servertest.Options{
		Nodes: 3, Dir: t.TempDir(),
		Config: func(string) server.Config {
			c := server.DefaultConfig()
			c.Logger, c.RaftLogLevel = slog.New(slog.DiscardHandler), "off"
			return c
		},
		Handler: func(p server.APIParams) (http.Handler, error) {
			a, err := api.New(api.Config{Backend: p.Backend, Internal: p.Internal, Registerer: p.Registry, Gatherer: p.Registry,
				Logger: slog.New(slog.DiscardHandler), Unavailable: server.Unavailable, LeaderAPI: server.LeaderAPI,
				ImageDir: filepath.Join(p.DataDir, "images"), Timeout: 3 * time.Second})
			if err != nil {
				return nil, err
			}
			return a.Handler(), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	leader, err := cl.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Users and the image, through the leader.
	root := addUser(t, leader.Server, "root", "", broker.RoleAdmin)
	adaTok := addUser(t, leader.Server, "ada", "physics", broker.RoleUser)
	admin, _ := client.New(leader.APIAddr(), root)
	push(t, admin, baseImage(t), "base")
	jt, err := admin.JoinToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, n := range cl.Nodes {
		addrs = append(addrs, n.APIAddr())
	}
	host := fmt.Sprintf("follow-%d", time.Now().UnixNano())
	ag := startAgent(t, addrs, jt.Token, host, t.TempDir())
	defer ag.stop()

	// Kill the leader; the image's bytes live on it, so the lease after
	// the failover uses an image pushed to the new leader.
	idx := slices.Index(cl.Nodes, leader)
	if err := cl.Stop(idx); err != nil {
		t.Fatal(err)
	}
	newLeader, err := cl.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admin2, _ := client.New(newLeader.APIAddr(), root)
	push(t, admin2, baseImage(t), "base2")
	ada, _ := client.New(newLeader.APIAddr(), adaTok)
	ada.Consistent = true
	l, err := ada.CreateLease(ctx, api.LeaseRequest{Count: 2, Cores: 1, MemoryMiB: 256, Image: "base2", Duration: "10m"})
	if err != nil || l.Decision.Kind != lease.Granted {
		t.Fatalf("create after failover: %v %+v", err, l)
	}
	waitFor(t, 15*time.Second, "lease running after failover", leaseRunning(t, ada, l.ID))
	// The host kept beating through the new leader.
	err = newLeader.Server.Read(ctx, true, func(st *broker.State) error {
		for _, h := range st.Hosts() {
			if h.Name == host && h.State != broker.HostUp {
				return fmt.Errorf("host %s is %s", host, h.State)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func addUser(t *testing.T, s *server.Server, name string, group lease.GroupID, role broker.Role) string {
	t.Helper()
	for _, c := range []struct {
		typ  broker.CommandType
		body any
	}{{broker.CmdPutUser, broker.User{Name: name, Group: group, Role: role}}} {
		cmd, err := broker.NewCommand(c.typ, time.Now(), "test", c.body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Propose(t.Context(), cmd); err != nil {
			t.Fatal(err)
		}
	}
	id, secret, tok := api.NewToken()
	cmd, _ := broker.NewCommand(broker.CmdPutToken, time.Now(), "test", broker.Token{ID: id, User: name, Hash: api.Hash(secret)})
	if _, err := s.Propose(t.Context(), cmd); err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestCorruptImageFailsTheLease: bytes that do not match the image's
// digest (corrupted at the broker, or on the way) fail the lease with the
// reason, and leave nothing on the host.
func TestCorruptImageFailsTheLease(t *testing.T) {
	s := apitest.NewServer(t)
	admin, _ := client.New(s.URL, s.Fake.AddUser(t, "root", "", broker.RoleAdmin))
	ada, _ := client.New(s.URL, s.Fake.AddUser(t, "ada", "physics", broker.RoleUser))
	push(t, admin, baseImage(t), "base")
	im, err := admin.Image(t.Context(), "base")
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(s.ImageDir, im.Digest)
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	jt, _ := admin.JoinToken(t.Context())
	dir := t.TempDir()
	ag := startAgent(t, []string{s.URL}, jt.Token, fmt.Sprintf("corrupt-%d", time.Now().UnixNano()), dir)
	defer ag.stop()
	l, err := ada.CreateLease(t.Context(), api.LeaseRequest{Count: 2, Cores: 1, MemoryMiB: 256, Image: "base", Duration: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "lease failed", func() error {
		got, err := ada.Lease(t.Context(), l.ID)
		if err != nil {
			return err
		}
		if got.State != lease.StateFailed {
			return fmt.Errorf("lease is %s", got.State)
		}
		if !strings.Contains(got.EndReason, "checksum") {
			t.Errorf("the lease failed for %q; want the checksum named", got.EndReason)
		}
		return nil
	})
	// Nothing on the host: no VM directories, nothing in the cache.
	waitFor(t, 5*time.Second, "host clean", func() error {
		for _, pat := range []string{filepath.Join(dir, "vms", "*"), filepath.Join(dir, "cache", "*")} {
			if left, _ := filepath.Glob(pat); len(left) > 0 {
				return fmt.Errorf("left behind: %v", left)
			}
		}
		return nil
	})
}

// slowBlobs lets image bytes through at rate bytes/s and counts the image
// downloads per host credential.
type slowBlobs struct {
	next      http.Handler
	rate      int64
	mu        sync.Mutex
	downloads map[string]int
}

func (s *slowBlobs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/blob") {
		s.next.ServeHTTP(w, r)
		return
	}
	s.mu.Lock()
	s.downloads[r.Header.Get("Authorization")]++
	s.mu.Unlock()
	s.next.ServeHTTP(&throttled{ResponseWriter: w, rate: s.rate}, r)
}

type throttled struct {
	http.ResponseWriter
	rate  int64
	start time.Time
	sent  int64
}

// Write sends p, then waits until the bytes sent so far fit the rate.
func (t *throttled) Write(p []byte) (int, error) {
	if t.start.IsZero() {
		t.start = time.Now()
	}
	n, err := t.ResponseWriter.Write(p)
	t.sent += int64(n)
	if ahead := time.Duration(t.sent*int64(time.Second)/t.rate) - time.Since(t.start); ahead > 0 {
		time.Sleep(ahead)
	}
	return n, err
}

// TestClusterOnFourHostsColdImage: a 16-VM lease on 4 agents with an image
// no host has: the lease shows the image phase while it downloads, and
// each host downloads the image once, not once per VM.
func TestClusterOnFourHostsColdImage(t *testing.T) {
	f := apitest.NewFake()
	a, err := api.New(api.Config{Backend: f, Logger: slog.New(slog.DiscardHandler), ImageDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	blobs := &slowBlobs{next: a.Handler(), rate: 16 << 20, downloads: map[string]int{}}
	srv := httptest.NewServer(blobs)
	defer srv.Close()
	admin, _ := client.New(srv.URL, f.AddUser(t, "root", "", broker.RoleAdmin))
	ada, _ := client.New(srv.URL, f.AddUser(t, "ada", "physics", broker.RoleUser))
	// 32 MiB of incompressible bytes: two seconds at 16 MiB/s per host.
	img := filepath.Join(t.TempDir(), "cold.raw")
	data := make([]byte, 32<<20)
	rand.Read(data)
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fh, _ := os.Open(img)
	if _, err := admin.PushImage(t.Context(), "cold", "raw", true, fh, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	jt, _ := admin.JoinToken(t.Context())
	keeper, err := virt.Open(t.Context(), virt.Options{URI: "test:///default", Host: "keeper", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer keeper.Close()
	tag := time.Now().UnixNano()
	for i := range 4 {
		ag := startAgentCores(t, []string{srv.URL}, jt.Token, fmt.Sprintf("four-%d-%d", tag, i), t.TempDir(), 4)
		defer ag.stop()
	}
	l, err := ada.CreateLease(t.Context(), api.LeaseRequest{Count: 16, Cores: 1, MemoryMiB: 256, Image: "cold", Duration: "10m"})
	if err != nil || l.Decision.Kind != lease.Granted {
		t.Fatalf("create: %v %+v", err, l)
	}
	hosts := map[string]bool{}
	for _, v := range l.VMs {
		hosts[v.Host] = true
	}
	if len(hosts) != 4 {
		t.Fatalf("the 16 VMs landed on %d hosts, want 4", len(hosts))
	}
	var phase string
	waitFor(t, 30*time.Second, "lease running", func() error {
		got, err := ada.Lease(t.Context(), l.ID)
		if err != nil {
			return err
		}
		for _, v := range got.VMs {
			if strings.HasPrefix(v.Phase, "image ") {
				phase = v.Phase
			}
		}
		if got.State != lease.StateRunning {
			var vs []string
			for _, v := range got.VMs {
				vs = append(vs, v.Host+":"+v.State+"/"+v.Phase)
			}
			return fmt.Errorf("lease is %s: %v", got.State, vs)
		}
		return nil
	})
	if phase == "" {
		t.Error("the lease never showed an image phase while its hosts downloaded")
	}
	t.Logf("phase seen: %q", phase)
	blobs.mu.Lock()
	defer blobs.mu.Unlock()
	if len(blobs.downloads) != 4 {
		t.Errorf("%d hosts downloaded the image, want 4", len(blobs.downloads))
	}
	for who, n := range blobs.downloads {
		if n != 1 {
			t.Errorf("a host downloaded the image %d times (%s…)", n, who[:min(len(who), 20)])
		}
	}
}

// TestClusterOverSwarm: with the image store seeding and agents in the
// swarm, four hosts fetch a cold image from each other and the store, not
// from the broker's blob route, and the cluster runs.
func TestClusterOverSwarm(t *testing.T) {
	f := apitest.NewFake()
	srv := httptest.NewUnstartedServer(nil)
	url := "http://" + srv.Listener.Addr().String()
	a, err := api.New(api.Config{Backend: f, Logger: slog.New(slog.DiscardHandler), ImageDir: t.TempDir(),
		SwarmListen: "127.0.0.1:0", SwarmInterval: time.Second, PublicURL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	counts := &slowBlobs{next: a.Handler(), rate: 1 << 40, downloads: map[string]int{}}
	srv.Config.Handler = counts
	srv.Start()
	defer srv.Close()
	admin, _ := client.New(url, f.AddUser(t, "root", "", broker.RoleAdmin))
	ada, _ := client.New(url, f.AddUser(t, "ada", "physics", broker.RoleUser))
	data := make([]byte, 24<<20)
	rand.Read(data)
	im, err := admin.PushImage(t.Context(), "cold", "raw", true, bytes.NewReader(data), int64(len(data)))
	if err != nil || im.InfoHash == "" {
		t.Fatalf("push: %v %+v", err, im)
	}
	jt, _ := admin.JoinToken(t.Context())
	keeper, err := virt.Open(t.Context(), virt.Options{URI: "test:///default", Host: "keeper", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer keeper.Close()
	tag := time.Now().UnixNano()
	var dirs []string
	for i := range 4 {
		dir := t.TempDir()
		dirs = append(dirs, dir)
		ag := startAgentWith(t, []string{url}, jt.Token, fmt.Sprintf("swarm-%d-%d", tag, i), dir, 4, "127.0.0.1:0")
		defer ag.stop()
	}
	l, err := ada.CreateLease(t.Context(), api.LeaseRequest{Count: 16, Cores: 1, MemoryMiB: 256, Image: "cold", Duration: "10m"})
	if err != nil || l.Decision.Kind != lease.Granted {
		t.Fatalf("create: %v %+v", err, l)
	}
	waitFor(t, 60*time.Second, "lease running", leaseRunning(t, ada, l.ID))
	for _, dir := range dirs {
		got, err := os.ReadFile(filepath.Join(dir, "cache", im.Digest+".raw"))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("host cache %s: %v, %d bytes", dir, err, len(got))
		}
	}
	counts.mu.Lock()
	defer counts.mu.Unlock()
	if len(counts.downloads) != 0 {
		t.Errorf("hosts fell back to the broker's blob route: %v", counts.downloads)
	}
}
