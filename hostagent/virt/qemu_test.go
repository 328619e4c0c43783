package virt_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/fairlease/fairlease/hostagent/virt"
)

const systemURI = "qemu:///system"

// openQEMU opens qemu:///system, skipping the test where libvirtd does
// not answer.
func openQEMU(t *testing.T, bridge string) (*virt.Driver, string) {
	t.Helper()
	if out, err := exec.Command("virsh", "-c", systemURI, "version").CombinedOutput(); err != nil {
		t.Skipf("libvirtd does not answer on %s (run scripts/libvirt/start.sh as root): %v\n%s", systemURI, err, out)
	}
	needQemuImg(t)
	return open(t, systemURI, "host-"+string(testID(t)), bridge)
}

// TestQEMUBootsSeed boots the test image (make testimage) with the seed
// of VM 0 of a two-VM cluster and reads what its init prints.
func TestQEMUBootsSeed(t *testing.T) {
	image := os.Getenv("FAIRLEASE_TEST_IMAGE")
	if image == "" {
		t.Skip("FAIRLEASE_TEST_IMAGE is not set: build the image with make testimage and set it to the printed path")
	}
	image, err := filepath.Abs(image)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(image); err != nil {
		t.Fatalf("FAIRLEASE_TEST_IMAGE: %v (build it with make testimage)", err)
	}
	d, vms := openQEMU(t, "")
	// A second driver of the same host has not seen the domain start, so
	// it reads the domain's metadata from inside libvirt's event callback.
	watcher, _ := openQEMU(t, "")
	if k := d.Kind(); k != "qemu" && k != "kvm" {
		t.Errorf("Kind() = %q, want qemu or kvm", k)
	}
	ctx := context.Background()
	s := spec(testID(t), 0, 2, "host-"+string(testID(t)), image)
	d.Stop(ctx, s.Name, 0) // a leftover of an interrupted run
	start := time.Now()
	if err := d.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			d.Stop(context.Background(), s.Name, 0)
		}
	})
	if got := list(t, d); len(got) != 1 || got[0].State != virt.Running {
		t.Errorf("List after Start = %+v, want the domain running", got)
	}
	log, err := d.ConsoleLog(s.Name)
	if err != nil {
		t.Fatal(err)
	}
	var console []byte
	waitFor(t, 60*time.Second, "fairlease-context: ready on the console", func() bool {
		console, _ = os.ReadFile(log)
		return bytes.Contains(console, []byte("fairlease-context: ready"))
	})
	t.Logf("%s: ready %v after Start (kind %s)", s.Name, time.Since(start).Round(100*time.Millisecond), d.Kind())

	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.Seed.ClusterPublicKey))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(string(console), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "fairlease-context: "); ok {
			got = append(got, rest)
		}
	}
	want := []string{
		"hostname=node-0",
		"peer=node-1 10.77.0.11",
		"cluster-key=" + ssh.FingerprintSHA256(pub),
		"ready",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("console: -want +got:\n%s\nwhole console:\n%s", diff, console)
	}

	// The image powers off on the ACPI power button, well within grace.
	stopStart := time.Now()
	if err := d.Stop(ctx, s.Name, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	stopped = true
	t.Logf("%s: stopped in %v", s.Name, time.Since(stopStart).Round(100*time.Millisecond))
	if got := list(t, d); len(got) != 0 {
		t.Errorf("List after Stop = %+v, want none", got)
	}
	if got := entries(t, vms); len(got) != 0 {
		t.Errorf("files left after Stop: %v", got)
	}
	if out, err := exec.Command("virsh", "-c", systemURI, "dominfo", s.Name).CombinedOutput(); err == nil {
		t.Errorf("virsh still knows %s after Stop:\n%s", s.Name, out)
	}
	for _, d := range []*virt.Driver{d, watcher} {
		var reasons []string
		for _, e := range drain(t, d, s.Name, func(e virt.Event) bool { return e.Reason == "undefined" }) {
			if e.Reason != "resumed" { // libvirt starts QEMU paused, then resumes it
				reasons = append(reasons, string(e.State)+" "+e.Reason)
			}
		}
		// Powered off by the guest, not destroyed.
		wantReasons := []string{"running started: booted", "stopped stopped: shutdown", "stopped undefined"}
		if diff := cmp.Diff(wantReasons, reasons); diff != "" {
			t.Errorf("events: -want +got:\n%s", diff)
		}
	}
}

// TestQEMUStartFailureLeavesNothing starts a domain whose NIC's bridge
// does not exist: QEMU refuses to start after the domain is defined.
func TestQEMUStartFailureLeavesNothing(t *testing.T) {
	d, vms := openQEMU(t, "flnobr0")
	s := spec(testID(t), 0, 1, "host-"+string(testID(t)), baseImage(t))
	d.Stop(context.Background(), s.Name, 0) // a leftover of an interrupted run
	err := d.Start(context.Background(), s)
	if err == nil {
		d.Stop(context.Background(), s.Name, 0)
		t.Fatal("Start with a missing bridge succeeded")
	}
	t.Logf("Start: %v", err)
	if !strings.Contains(err.Error(), "start domain") {
		t.Errorf("Start: %v, want an error from starting the domain", err)
	}
	if got := list(t, d); len(got) != 0 {
		t.Errorf("domains left after failed Start: %+v", got)
	}
	if got := entries(t, vms); len(got) != 0 {
		t.Errorf("files left after failed Start: %v", got)
	}
	if out, err := exec.Command("virsh", "-c", systemURI, "dominfo", s.Name).CombinedOutput(); err == nil {
		t.Errorf("virsh still knows %s after the failed Start:\n%s", s.Name, out)
	}
}
