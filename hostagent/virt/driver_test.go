package virt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kdomanski/iso9660"

	"github.com/fairlease/fairlease/hostagent"
	"github.com/fairlease/fairlease/hostagent/seed/seedtest"
	"github.com/fairlease/fairlease/hostagent/virt"
	"github.com/fairlease/fairlease/lease"
)

var _ hostagent.Hypervisor = (*virt.Driver)(nil)

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testID makes a lease ID unique to the test, since every test shares
// the process-wide test:///default driver.
func testID(t *testing.T) lease.ID {
	return lease.ID(strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")))
}

func needQemuImg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils): Start makes overlays with it")
	}
}

// open connects a driver for a host of its own, with Dir in a directory
// the qemu user can reach.
func open(t *testing.T, uri, host string, bridge string) (*virt.Driver, string) {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir's directories are 0700; qemu:///system runs QEMU as
	// libvirt-qemu, which must reach the files below.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	vms := filepath.Join(dir, "vms")
	d, err := virt.Open(context.Background(), virt.Options{URI: uri, Host: host, Dir: vms, Bridge: bridge})
	if errors.Is(err, virt.ErrNoLibvirt) {
		t.Skipf("no libvirt here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d, vms
}

// openTest opens the test driver; it returns the driver's Dir too.
func openTest(t *testing.T, host string) (*virt.Driver, string) {
	t.Helper()
	needQemuImg(t)
	return open(t, "test:///default", host, "")
}

// baseImage makes a small empty qcow2 image.
func baseImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", path, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// spec is VM index of a cluster of n VMs of lease id.
func spec(id lease.ID, index, n int, host, base string) virt.Spec {
	clusterPub, clusterPriv := seedtest.KeyPair(1)
	userKey, _ := seedtest.KeyPair(2)
	var peers []virt.Peer
	for i := range n {
		peers = append(peers, virt.Peer{Name: fmt.Sprintf("node-%d", i), Address: fmt.Sprintf("10.77.0.%d", 10+i)})
	}
	return virt.Spec{
		Name:       virt.DomainName(id, index),
		Lease:      id,
		Index:      index,
		Host:       host,
		Cores:      1,
		MemoryMiB:  128,
		BaseImage:  base,
		BaseFormat: "qcow2",
		End:        time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		Seed: virt.Seed{
			InstanceID:        virt.DomainName(id, index),
			Hostname:          peers[index].Name,
			Address:           peers[index].Address,
			Prefix:            24,
			Peers:             peers,
			ClusterPublicKey:  clusterPub,
			ClusterPrivateKey: clusterPriv,
			UserKeys:          []string{userKey},
		},
	}
}

func list(t *testing.T, d *virt.Driver) []virt.Domain {
	t.Helper()
	doms, err := d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return doms
}

// entries lists a directory, nil if it does not exist.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestKindAndCapacity(t *testing.T) {
	t.Parallel()
	d, _ := openTest(t, "host-"+string(testID(t)))
	if d.Kind() != "test" {
		t.Errorf("Kind() = %q, want test", d.Kind())
	}
	got, err := d.Capacity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The test driver's fake node: 16 CPUs, 3 GiB.
	if want := (lease.Resources{Cores: 16, MemoryMiB: 3072}); got != want {
		t.Errorf("Capacity() = %+v, want %+v", got, want)
	}
}

func TestStartListStop(t *testing.T) {
	t.Parallel()
	host := "host-" + string(testID(t))
	d, vms := openTest(t, host)
	ctx := context.Background()
	s := spec(testID(t), 1, 2, host, baseImage(t))
	if err := d.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	want := []virt.Domain{{Name: s.Name, Lease: s.Lease, Index: 1, Host: host, State: virt.Running}}
	if diff := cmp.Diff(want, list(t, d)); diff != "" {
		t.Errorf("List after Start: -want +got:\n%s", diff)
	}
	dir := filepath.Join(vms, s.Name)
	if log, err := d.ConsoleLog(s.Name); err != nil || log != filepath.Join(dir, "console.log") {
		t.Errorf("ConsoleLog = %q, %v; want %s", log, err, filepath.Join(dir, "console.log"))
	}
	if diff := cmp.Diff([]string{"console.log", "overlay.qcow2", "seed.iso"}, entries(t, dir)); diff != "" {
		t.Errorf("work directory: -want +got:\n%s", diff)
	}
	out, err := exec.Command("qemu-img", "info", filepath.Join(dir, "overlay.qcow2")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "backing file: "+s.BaseImage) {
		t.Errorf("overlay is not backed by %s: %v\n%s", s.BaseImage, err, out)
	}
	f, err := os.Open(filepath.Join(dir, "seed.iso"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := iso9660.OpenImage(f)
	if err != nil {
		t.Fatal(err)
	}
	if label, err := img.Label(); err != nil || label != "cidata" {
		t.Errorf("seed label %q, %v; want cidata", label, err)
	}

	if err := d.Stop(ctx, s.Name, time.Second); err != nil {
		t.Fatal(err)
	}
	if got := list(t, d); len(got) != 0 {
		t.Errorf("List after Stop = %+v, want none", got)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("work directory %s after Stop: %v, want it gone", dir, err)
	}
	if _, err := d.ConsoleLog(s.Name); err == nil {
		t.Error("ConsoleLog after Stop: no error")
	}
}

func TestHostsSeeOnlyTheirOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := baseImage(t)
	hostA, hostB := "a-"+string(testID(t)), "b-"+string(testID(t))
	a, _ := openTest(t, hostA)
	b, _ := openTest(t, hostB)
	sa := spec(testID(t)+"-a", 0, 1, hostA, base)
	sb := spec(testID(t)+"-b", 0, 1, hostB, base)
	if err := a.Start(ctx, sa); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx, sb); err != nil {
		t.Fatal(err)
	}
	wantA := []virt.Domain{{Name: sa.Name, Lease: sa.Lease, Host: hostA, State: virt.Running}}
	wantB := []virt.Domain{{Name: sb.Name, Lease: sb.Lease, Host: hostB, State: virt.Running}}
	if diff := cmp.Diff(wantA, list(t, a)); diff != "" {
		t.Errorf("host a lists: -want +got:\n%s", diff)
	}
	if diff := cmp.Diff(wantB, list(t, b)); diff != "" {
		t.Errorf("host b lists: -want +got:\n%s", diff)
	}
	if err := a.Stop(ctx, sb.Name, 0); err == nil {
		t.Error("host a stopped host b's domain")
	}
	if diff := cmp.Diff(wantB, list(t, b)); diff != "" {
		t.Errorf("host b lists after a tried to stop its domain: -want +got:\n%s", diff)
	}
	for _, c := range []struct {
		d    *virt.Driver
		name string
	}{{a, sa.Name}, {b, sb.Name}} {
		if err := c.d.Stop(ctx, c.name, 0); err != nil {
			t.Error(err)
		}
	}
	// Each saw only its own domain's events.
	for _, c := range []struct {
		d    *virt.Driver
		name string
	}{{a, sa.Name}, {b, sb.Name}} {
		drain(t, c.d, c.name, func(e virt.Event) bool { return e.Reason == "undefined" })
	}
}

// drain reads events until last holds for one, failing on any event of
// a domain other than name.
func drain(t *testing.T, d *virt.Driver, name string, last func(virt.Event) bool) []virt.Event {
	t.Helper()
	var got []virt.Event
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-d.Events():
			if e.Name != name {
				t.Errorf("event of another domain: %+v", e)
			}
			got = append(got, e)
			if last(e) {
				return got
			}
		case <-timeout:
			t.Fatalf("timed out waiting for an event; got %+v", got)
		}
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	host := "host-" + string(testID(t))
	d, _ := openTest(t, host)
	s := spec(testID(t), 0, 1, host, baseImage(t))
	if err := d.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	dom := virt.Domain{Name: s.Name, Lease: s.Lease, Index: 0, Host: host}
	running, stopped := dom, dom
	running.State, stopped.State = virt.Running, virt.Stopped
	got := drain(t, d, s.Name, func(e virt.Event) bool { return e.State == virt.Running })
	if diff := cmp.Diff([]virt.Event{{Domain: running, Reason: "started: booted"}}, got); diff != "" {
		t.Errorf("events after Start: -want +got:\n%s", diff)
	}
	if err := d.Stop(ctx, s.Name, time.Second); err != nil {
		t.Fatal(err)
	}
	got = drain(t, d, s.Name, func(e virt.Event) bool { return e.Reason == "undefined" })
	want := []virt.Event{{Domain: stopped, Reason: "stopped: shutdown"}, {Domain: stopped, Reason: "undefined"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events after Stop: -want +got:\n%s", diff)
	}
}

func TestStartFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	host := "host-" + string(testID(t))
	d, vms := openTest(t, host)
	base := baseImage(t)
	notQcow2 := filepath.Join(t.TempDir(), "plain.img")
	if err := os.WriteFile(notQcow2, []byte("not a disk image"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		change  func(*virt.Spec)
		wantErr string
	}{
		{"no cores", func(s *virt.Spec) { s.Cores = 0 }, "cores 0"},
		{"no memory", func(s *virt.Spec) { s.MemoryMiB = 0 }, "memory 0"},
		{"bad base format", func(s *virt.Spec) { s.BaseFormat = "vmdk" }, "base image format"},
		{"other host", func(s *virt.Spec) { s.Host = "elsewhere" }, "is for host"},
		{"name leaving Dir", func(s *virt.Spec) { s.Name = "../x" }, "domain name"},
		{"bad seed", func(s *virt.Spec) { s.Seed.Hostname = "no spaces" }, "hostname"},
		{"missing base image", func(s *virt.Spec) { s.BaseImage = "/nonexistent/base.qcow2" }, "base image"},
		{"base image not qcow2", func(s *virt.Spec) { s.BaseImage = notQcow2 }, "create overlay"},
		// The test driver refuses this size when the domain is defined.
		{"absurd memory", func(s *virt.Spec) { s.MemoryMiB = 1 << 44 }, "define domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec(testID(t), 0, 1, host, base)
			tt.change(&s)
			err := d.Start(context.Background(), s)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Start: got error %v, want one saying %q", err, tt.wantErr)
			}
			if got := list(t, d); len(got) != 0 {
				t.Errorf("domains left after failed Start: %+v", got)
			}
			if got := entries(t, vms); len(got) != 0 {
				t.Errorf("files left after failed Start: %v", got)
			}
		})
	}
}

func TestStartTwiceKeepsTheFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	host := "host-" + string(testID(t))
	d, vms := openTest(t, host)
	s := spec(testID(t), 0, 1, host, baseImage(t))
	if err := d.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, s); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second Start: got error %v, want one saying the domain exists", err)
	}
	if got := list(t, d); len(got) != 1 || got[0].State != virt.Running {
		t.Errorf("after second Start: List = %+v, want the first domain running", got)
	}
	if diff := cmp.Diff([]string{"console.log", "overlay.qcow2", "seed.iso"}, entries(t, filepath.Join(vms, s.Name))); diff != "" {
		t.Errorf("work directory after second Start: -want +got:\n%s", diff)
	}
	if err := d.Stop(ctx, s.Name, 0); err != nil {
		t.Fatal(err)
	}
}

func TestStopUnknownDomain(t *testing.T) {
	t.Parallel()
	d, vms := openTest(t, "host-"+string(testID(t)))
	name := virt.DomainName(testID(t), 0)
	// A leftover work directory of a domain that is gone goes too.
	if err := os.MkdirAll(filepath.Join(vms, name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(context.Background(), name, time.Second); err != nil {
		t.Errorf("Stop of an unknown domain: %v, want nil", err)
	}
	if got := entries(t, vms); len(got) != 0 {
		t.Errorf("files left after Stop: %v", got)
	}
	if err := d.Stop(context.Background(), "../etc", time.Second); err == nil {
		t.Error("Stop of a name leaving Dir: no error")
	}
}
