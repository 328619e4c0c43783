package hostagent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/hostagent/virt"
	"github.com/fairlease/fairlease/lease"
)

var testEnd = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

var testContext = &broker.ClusterContext{
	PublicKey:  "ssh-ed25519 AAAAcluster cluster",
	PrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\ncluster\n-----END OPENSSH PRIVATE KEY-----\n",
	UserKeys:   []string{"ssh-ed25519 AAAAada ada@laptop"},
}

// assignment is lease id of n VMs on image, those in mine on testHost
// and the others on h2.
func assignment(id lease.ID, image string, n int, mine ...int) broker.Assignment {
	a := broker.Assignment{Lease: id, State: lease.StateStarting, Image: image, End: testEnd, Mine: mine, Context: testContext,
		Shape: lease.Shape{Cores: 2, MemoryMiB: 1024, Image: image}}
	for i := range n {
		host := "h2"
		if slices.Contains(mine, i) {
			host = testHost
		}
		a.VMs = append(a.VMs, broker.VM{Index: i, Name: fmt.Sprintf("%s-%d", id, i), Address: fmt.Sprintf("10.64.0.%d", i+1), Host: host, State: broker.VMStarting})
	}
	return a
}

func hasReport(b *fakeBroker, want broker.VMStateChange) func() bool {
	return func() bool { return slices.Contains(b.Reports(), want) }
}

// reportsOf lists the reports on lease id, without notes.
func reportsOf(b *fakeBroker, id lease.ID) []broker.VMStateChange {
	var out []broker.VMStateChange
	for _, r := range b.Reports() {
		if r.ID == id {
			r.Note = ""
			out = append(out, r)
		}
	}
	return out
}

func TestRegistrationSavesCredentialAndRestartReusesIt(t *testing.T) {
	b, hv, dir := newFakeBroker(), newFakeHV(t), t.TempDir()
	cfg := testConfig(t, dir)
	r := startAgent(t, cfg, b, hv)
	path := filepath.Join(dir, credentialFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("credential not saved: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("credential mode = %o, want 600", st.Mode().Perm())
	}
	if got, _ := os.ReadFile(path); strings.TrimSpace(string(got)) != testCred {
		t.Errorf("credential file holds %q, want %q", got, testCred)
	}
	waitFor(t, "a heartbeat", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.heartbeats) >= 2 })
	b.mu.Lock()
	first := b.heartbeats[0]
	b.mu.Unlock()
	want := Registration{Host: testHost, Capacity: lease.Resources{Cores: 16, MemoryMiB: 65536}, Addr: r.Addr(), LogKey: first.LogKey, Driver: "test", Images: []string{}}
	if diff := cmp.Diff(want, first); diff != "" || len(first.LogKey) != 64 {
		t.Errorf("registration (-want +got):\n%s(log key %q)", diff, first.LogKey)
	}
	r.stop()

	// The restarted agent needs no join token: it has the credential.
	cfg.JoinToken = ""
	cfg.Cores = 4
	b.mu.Lock()
	b.heartbeats = nil
	b.mu.Unlock()
	startAgent(t, cfg, b, hv)
	waitFor(t, "a heartbeat", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.heartbeats) >= 1 })
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.registers != 1 {
		t.Errorf("registered %d times, want once", b.registers)
	}
	if diff := cmp.Diff([]string{testJoin, testCred, testCred}, b.dialed); diff != "" {
		t.Errorf("tokens dialled (-want +got):\n%s", diff)
	}
	if got := b.heartbeats[0]; got.LogKey != first.LogKey || got.Capacity != (lease.Resources{Cores: 4, MemoryMiB: 65536}) {
		t.Errorf("after restart: log key %q, capacity %+v; want the same key %q and 4 configured cores", got.LogKey, got.Capacity, first.LogKey)
	}
}

func TestRegistrationRefusedEndsRun(t *testing.T) {
	b, hv := newFakeBroker(), newFakeHV(t)
	cfg := testConfig(t, t.TempDir())
	cfg.JoinToken = "stale"
	a, err := New(cfg, b.dial, hv, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(t.Context())
	if lease.ErrorCode(err) != lease.EUNAUTHORIZED || !strings.Contains(err.Error(), "check join_token") {
		t.Errorf("Run with a refused join token: %v, want an unauthorized error that says to check join_token", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, credentialFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a credential file exists after a refused registration: %v", err)
	}
}

func TestStartsAssignedVMsWithTheirSpecs(t *testing.T) {
	b, hv, dir := newFakeBroker(), newFakeHV(t), t.TempDir()
	im := b.addImage("base", []byte("a qcow2 image"), false)
	r := startAgent(t, testConfig(t, dir), b, hv)
	b.set(assignment("l-a", "base", 3, 0, 2), assignment("l-b", "base", 1, 0))
	for _, want := range []broker.VMStateChange{{ID: "l-a", Index: 0, State: broker.VMRunning}, {ID: "l-a", Index: 2, State: broker.VMRunning}, {ID: "l-b", Index: 0, State: broker.VMRunning}} {
		waitFor(t, fmt.Sprintf("%+v", want), hasReport(b, want))
	}
	r.settle(t)

	base := filepath.Join(dir, "cache", im.Digest+".qcow2")
	peers := func(id lease.ID, n int) []virt.Peer {
		var out []virt.Peer
		for i := range n {
			out = append(out, virt.Peer{Name: fmt.Sprintf("%s-%d", id, i), Address: fmt.Sprintf("10.64.0.%d", i+1)})
		}
		return out
	}
	spec := func(id lease.ID, i, n int) virt.Spec {
		name := virt.DomainName(id, i)
		return virt.Spec{Name: name, Lease: id, Index: i, Host: testHost, Cores: 2, MemoryMiB: 1024,
			BaseImage: base, BaseFormat: "qcow2", End: testEnd,
			Seed: virt.Seed{InstanceID: name, Hostname: fmt.Sprintf("%s-%d", id, i), Address: fmt.Sprintf("10.64.0.%d", i+1), Prefix: 10,
				Peers: peers(id, n), ClusterPublicKey: testContext.PublicKey, ClusterPrivateKey: testContext.PrivateKey, UserKeys: testContext.UserKeys}}
	}
	want := []virt.Spec{spec("l-a", 0, 3), spec("l-a", 2, 3), spec("l-b", 0, 1)}
	got := hv.Starts()
	slices.SortFunc(got, func(a, b virt.Spec) int { return cmpString(a.Name, b.Name) })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("specs started (-want +got):\n%s", diff)
	}
	b.mu.Lock()
	if b.opens != 1 {
		t.Errorf("image downloaded %d times, want once", b.opens)
	}
	b.mu.Unlock()
	if diff := cmp.Diff([]broker.VMStateChange{{ID: "l-a", Index: 0, State: broker.VMRunning}, {ID: "l-a", Index: 2, State: broker.VMRunning}}, sorted(reportsOf(b, "l-a"))); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	waitFor(t, "a heartbeat listing the image", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return slices.Equal(b.heartbeats[len(b.heartbeats)-1].Images, []string{im.Digest})
	})
}

func sorted(cs []broker.VMStateChange) []broker.VMStateChange {
	slices.SortFunc(cs, func(a, b broker.VMStateChange) int {
		if c := cmpString(string(a.ID), string(b.ID)); c != 0 {
			return c
		}
		return a.Index - b.Index
	})
	return cs
}

func TestLeaseGoneStopsVM(t *testing.T) {
	b, hv := newFakeBroker(), newFakeHV(t)
	b.addImage("base", []byte("image"), false)
	r := startAgent(t, testConfig(t, t.TempDir()), b, hv)
	b.set(assignment("l-a", "base", 1, 0))
	waitFor(t, "running", hasReport(b, broker.VMStateChange{ID: "l-a", Index: 0, State: broker.VMRunning}))
	if !r.cache.pinned("fl-l-a-0") {
		t.Errorf("the running VM's image is not pinned")
	}
	b.set()
	waitFor(t, "stopped", hasReport(b, broker.VMStateChange{ID: "l-a", Index: 0, State: broker.VMStopped, Note: "no live lease assigns it to host h1"}))
	r.settle(t)
	if diff := cmp.Diff([]string{"fl-l-a-0"}, hv.Stops()); diff != "" {
		t.Errorf("stops (-want +got):\n%s", diff)
	}
	if len(hv.Names()) != 0 || r.cache.pinned("fl-l-a-0") {
		t.Errorf("after the lease: domains %v, image pinned %v; want none, unpinned", hv.Names(), r.cache.pinned("fl-l-a-0"))
	}
}

func TestLeaseEndStopsVMBeforeTheBrokerCatchesUp(t *testing.T) {
	b, hv := newFakeBroker(), newFakeHV(t)
	b.addImage("base", []byte("image"), false)
	var now atomic.Int64
	now.Store(testEnd.Add(-time.Hour).UnixNano())
	r := startAgent(t, testConfig(t, t.TempDir()), b, hv, func(a *Agent) {
		a.now = func() time.Time { return time.Unix(0, now.Load()) }
	})
	b.set(assignment("l-a", "base", 1, 0))
	waitFor(t, "running", hasReport(b, broker.VMStateChange{ID: "l-a", Index: 0, State: broker.VMRunning}))
	now.Store(testEnd.UnixNano())
	r.kick()
	waitFor(t, "stopped", hasReport(b, broker.VMStateChange{ID: "l-a", Index: 0, State: broker.VMStopped, Note: "the lease ended at 2030-01-02T03:04:05Z"}))
	r.settle(t)
	if len(hv.Names()) != 0 || len(hv.Starts()) != 1 {
		t.Errorf("domains %v after %d starts; want none after 1", hv.Names(), len(hv.Starts()))
	}
}

func TestRestartAdoptsRunningVMs(t *testing.T) {
	for name, tc := range map[string]struct {
		// lag makes the broker forget the running reports, as if they
		// were lost with the first agent.
		lag         bool
		wantReports []broker.VMStateChange
	}{
		"broker up to date": {},
		"broker lagging": {lag: true, wantReports: []broker.VMStateChange{
			{ID: "l-a", Index: 0, State: broker.VMRunning}, {ID: "l-a", Index: 1, State: broker.VMRunning}}},
	} {
		t.Run(name, func(t *testing.T) {
			b, hv, dir := newFakeBroker(), newFakeHV(t), t.TempDir()
			b.addImage("base", []byte("image"), false)
			r := startAgent(t, testConfig(t, dir), b, hv)
			b.set(assignment("l-a", "base", 2, 0, 1))
			waitFor(t, "running", func() bool { return len(b.Reports()) == 2 })
			r.settle(t)
			r.stop()
			if tc.lag {
				b.set(assignment("l-a", "base", 2, 0, 1))
			}
			before := len(b.Reports())
			domains := hv.Names()

			r2 := startAgent(t, testConfig(t, dir), b, hv)
			waitFor(t, "a reconcile", func() bool { return r2.passes.Load() > 0 })
			r2.settle(t)
			waitFor(t, "the adopted VMs' images pinned", func() bool { return r2.cache.pinned("fl-l-a-0") && r2.cache.pinned("fl-l-a-1") })
			if n := len(hv.Starts()); n != 2 {
				t.Errorf("Start called %d times over both agents, want 2", n)
			}
			if len(hv.Stops()) != 0 || !slices.Equal(hv.Names(), domains) {
				t.Errorf("after restart: stops %v, domains %v; want none stopped, %v", hv.Stops(), hv.Names(), domains)
			}
			if diff := cmp.Diff(tc.wantReports, sorted(b.Reports()[before:]), cmpEmpty); diff != "" {
				t.Errorf("reports after restart (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpEmpty makes nil and empty slices equal.
var cmpEmpty = cmp.FilterValues(func(a, b []broker.VMStateChange) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())

func TestOrphanDomainStoppedOnlyOnceTheBrokerAnswers(t *testing.T) {
	b, hv := newFakeBroker(), newFakeHV(t)
	hv.add(virt.Domain{Name: "fl-old-0", Lease: "old", Index: 0, Host: testHost, State: virt.Running})
	b.noAnswers = true
	r := startAgent(t, testConfig(t, t.TempDir()), b, hv)
	waitFor(t, "a few failed polls", func() bool { return len(b.Sinces()) >= 3 })
	if len(hv.Stops()) != 0 {
		t.Fatalf("stopped %v before the broker said what the host must run", hv.Stops())
	}
	b.mu.Lock()
	b.noAnswers = false
	b.mu.Unlock()
	b.set()
	waitFor(t, "stopped", hasReport(b, broker.VMStateChange{ID: "old", Index: 0, State: broker.VMStopped, Note: "no live lease assigns it to host h1"}))
	r.settle(t)
	if diff := cmp.Diff([]string{"fl-old-0"}, hv.Stops()); diff != "" {
		t.Errorf("stops (-want +got):\n%s", diff)
	}
}

func TestMalformedAssignmentFailsItsVMs(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(a *broker.Assignment) []broker.Assignment
		// want are the VMs reported failed; note a part of every note.
		want []int
		note string
	}{
		"bad lease ID": {edit: func(a *broker.Assignment) []broker.Assignment { a.Lease = "l a/../b"; return nil },
			want: []int{0, 1}, note: `lease ID "l a/../b" cannot name a domain`},
		"index not in VMs": {edit: func(a *broker.Assignment) []broker.Assignment { a.Mine = []int{0, 1, 7}; return nil },
			want: []int{0, 1, 7}, note: "VM index 7 is mine but not among the lease's VMs"},
		"VM on another host": {edit: func(a *broker.Assignment) []broker.Assignment { a.VMs[1].Host = "h2"; return nil },
			want: []int{0, 1}, note: `VM 1 is mine but placed on host "h2"`},
		"zero cores": {edit: func(a *broker.Assignment) []broker.Assignment { a.Shape.Cores = 0; return nil },
			want: []int{0, 1}, note: "shape has 0 cores"},
		"zero memory": {edit: func(a *broker.Assignment) []broker.Assignment { a.Shape.MemoryMiB = 0; return nil },
			want: []int{0, 1}, note: "shape has 0 MiB of memory"},
		"missing image": {edit: func(a *broker.Assignment) []broker.Assignment { a.Image = ""; return nil },
			want: []int{0, 1}, note: "no image"},
		"duplicate indices": {edit: func(a *broker.Assignment) []broker.Assignment { a.VMs[1].Index = 0; return nil },
			want: []int{0, 1}, note: "VM index 0 listed twice"},
		"address outside the VM network": {edit: func(a *broker.Assignment) []broker.Assignment { a.VMs[0].Address = "192.168.1.1"; return nil },
			want: []int{0, 1}, note: `VM 0 has address "192.168.1.1", outside 10.64.0.0/10`},
		"lease assigned twice": {edit: func(a *broker.Assignment) []broker.Assignment { return []broker.Assignment{*a, *a} },
			want: []int{0, 1}, note: "lease l-a is assigned 2 times"},
		"no lease ID": {edit: func(a *broker.Assignment) []broker.Assignment { a.Lease = ""; return nil }},
	} {
		t.Run(name, func(t *testing.T) {
			b, hv := newFakeBroker(), newFakeHV(t)
			b.addImage("base", []byte("image"), false)
			b.keepFailed = true // so that every report reaches the broker
			r := startAgent(t, testConfig(t, t.TempDir()), b, hv)
			a := assignment("l-a", "base", 2, 0, 1)
			as := tc.edit(&a)
			if as == nil {
				as = []broker.Assignment{a}
			}
			b.set(as...)
			waitFor(t, "the failures", func() bool { return len(b.Reports()) >= len(tc.want) })
			r.sync(t, b)
			var got []int
			for _, c := range b.Reports() {
				if c.State != broker.VMFailed || c.ID != a.Lease || !strings.Contains(c.Note, tc.note) || !strings.HasPrefix(c.Note, "host h1 refused the assignment: ") {
					t.Errorf("report %+v, want failed with a note saying %q", c, tc.note)
				}
				got = append(got, c.Index)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("VMs reported failed (-want +got):\n%s", diff)
			}
			if n := len(hv.Starts()); n != 0 {
				t.Errorf("started %d VMs of a malformed assignment", n)
			}
		})
	}
}

func TestImageFailingItsChecksumFailsTheVMs(t *testing.T) {
	b, hv, dir := newFakeBroker(), newFakeHV(t), t.TempDir()
	b.addImage("base", []byte("the real image"), true)
	r := startAgent(t, testConfig(t, dir), b, hv)
	b.set(assignment("l-a", "base", 2, 0, 1))
	waitFor(t, "the failures", func() bool { return len(b.Reports()) >= 1 })
	r.settle(t)
	// The first failure fails the lease at the broker; the second VM's
	// report may be moot by then.
	for _, c := range b.Reports() {
		if c.State != broker.VMFailed || !strings.Contains(c.Note, "image base failed its checksum: got ") {
			t.Errorf("report %+v, want failed with a checksum note", c)
		}
	}
	if n := len(hv.Starts()); n != 0 {
		t.Errorf("started %d VMs without their image", n)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "cache"))
	if err != nil || len(entries) != 0 {
		t.Errorf("cache holds %v (%v), want nothing", entries, err)
	}
	if inv := r.cache.Inventory(); len(inv) != 0 {
		t.Errorf("inventory %v, want empty", inv)
	}
}

func TestStartFailingFailsTheVM(t *testing.T) {
	b, hv := newFakeBroker(), newFakeHV(t)
	b.addImage("base", []byte("image"), false)
	hv.startErr = errors.New("libvirt: no room for the domain")
	r := startAgent(t, testConfig(t, t.TempDir()), b, hv)
	b.set(assignment("l-a", "base", 1, 0))
	waitFor(t, "failed", hasReport(b, broker.VMStateChange{ID: "l-a", Index: 0, State: broker.VMFailed, Note: "start domain fl-l-a-0: libvirt: no room for the domain"}))
	r.settle(t)
	if len(hv.Names()) != 0 || len(hv.Starts()) != 1 || r.cache.pinned("fl-l-a-0") {
		t.Errorf("domains %v after %d starts, pinned %v; want none after one try, unpinned", hv.Names(), len(hv.Starts()), r.cache.pinned("fl-l-a-0"))
	}
}

func TestImageDownloadRetriedWhileTheBrokerIsAway(t *testing.T) {
	b, hv := newFakeBroker(), newFakeHV(t)
	b.addImage("base", []byte("image"), false)
	b.openFails = 3
	r := startAgent(t, testConfig(t, t.TempDir()), b, hv)
	b.set(assignment("l-a", "base", 1, 0))
	waitFor(t, "running", hasReport(b, broker.VMStateChange{ID: "l-a", Index: 0, State: broker.VMRunning}))
	r.settle(t)
	if diff := cmp.Diff([]broker.VMStateChange{{ID: "l-a", Index: 0, State: broker.VMRunning}}, b.Reports()); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if n := len(hv.Starts()); n != 1 {
		t.Errorf("Start called %d times, want once", n)
	}
}

func TestBrokerOutageResumesAndDeliversQueuedReports(t *testing.T) {
	b, hv := newFakeBroker(), newFakeHV(t)
	b.addImage("base", []byte("image"), false)
	r := startAgent(t, testConfig(t, t.TempDir()), b, hv)
	b.set(assignment("l-a", "base", 1, 0))
	waitFor(t, "running", hasReport(b, broker.VMStateChange{ID: "l-a", Index: 0, State: broker.VMRunning}))
	b.mu.Lock()
	last := b.index
	b.mu.Unlock()
	waitFor(t, "the agent waiting at the last index", func() bool { s := b.Sinces(); return s[len(s)-1] == last })

	b.setDown(true)
	from := len(b.Sinces())
	hv.setState("fl-l-a-0", virt.Crashed, "guest panicked")
	waitFor(t, "the failure queued", func() bool { return r.out.len() == 1 })
	waitFor(t, "polls failing", func() bool { return len(b.Sinces()) >= from+5 })
	// The broker moves on while the agent cannot see it.
	b.mu.Lock()
	b.assignments = append(b.assignments, assignment("l-b", "base", 1, 0))
	b.bumpLocked()
	b.mu.Unlock()
	to := len(b.Sinces())
	b.setDown(false)

	waitFor(t, "the queued failure", hasReport(b, broker.VMStateChange{ID: "l-a", Index: 0, State: broker.VMFailed, Note: "domain fl-l-a-0 crashed: guest panicked"}))
	waitFor(t, "the lease that came during the outage", hasReport(b, broker.VMStateChange{ID: "l-b", Index: 0, State: broker.VMRunning}))
	waitFor(t, "the crashed domain stopped", hasReport(b, broker.VMStateChange{ID: "l-a", Index: 0, State: broker.VMStopped, Note: "no live lease assigns it to host h1"}))
	for i, s := range b.Sinces()[from:to] {
		if s != last {
			t.Errorf("poll %d during the outage asked since %d, want the last index %d", from+i, s, last)
		}
	}
	if diff := cmp.Diff([]broker.VMStateChange{
		{ID: "l-a", Index: 0, State: broker.VMRunning},
		{ID: "l-a", Index: 0, State: broker.VMFailed},
		{ID: "l-a", Index: 0, State: broker.VMStopped},
	}, reportsOf(b, "l-a")); diff != "" {
		t.Errorf("reports on l-a (-want +got):\n%s", diff)
	}
}
