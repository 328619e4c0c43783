package swarmbench

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// needNetAdmin skips unless the test can create namespaces.
func needNetAdmin(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s from iproute2: %v", tool, err)
		}
	}
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, b)
	}
	return string(b)
}

// TestSetupAndClose builds a two-node network, checks the shaping on both
// ends of each link, and that Close leaves nothing behind.
func TestSetupAndClose(t *testing.T) {
	needNetAdmin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prefix := NewPrefix()
	n, err := Setup(ctx, prefix, 2, 100e6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if got := len(n.Hosts); got != 3 {
		t.Fatalf("%d hosts, want 3 (seed and two nodes)", got)
	}
	ns := output(t, "ip", "netns", "list")
	for _, h := range n.Hosts {
		if !strings.Contains(ns, h.NS) {
			t.Errorf("namespace %s missing from %q", h.NS, ns)
		}
		for _, q := range []string{
			output(t, "tc", "-n", h.NS, "qdisc", "show", "dev", h.NSVeth),
			output(t, "tc", "qdisc", "show", "dev", h.HostVeth),
		} {
			if !strings.Contains(q, "tbf") || !strings.Contains(q, "100Mbit") {
				t.Errorf("%s: qdisc %q, want tbf at 100Mbit", h.NS, q)
			}
		}
		if _, err := n.Counters(0); err != nil {
			t.Error(err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if ns := output(t, "ip", "netns", "list"); strings.Contains(ns, prefix) {
		t.Errorf("namespaces left after Close: %q", ns)
	}
	if links := output(t, "ip", "link"); strings.Contains(links, prefix) {
		t.Errorf("links left after Close: %q", links)
	}
}

// TestSetupFailureCleansUp makes Setup fail half-way (a namespace of the
// run already exists) and checks that it removes what it made and only
// that.
func TestSetupFailureCleansUp(t *testing.T) {
	needNetAdmin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prefix := NewPrefix()
	output(t, "ip", "netns", "add", prefix+"-2")
	t.Cleanup(func() { exec.Command("ip", "netns", "del", prefix+"-2").Run() })
	if n, err := Setup(ctx, prefix, 3, 100e6); err == nil {
		n.Close()
		t.Fatal("Setup succeeded over an existing namespace")
	}
	ns := output(t, "ip", "netns", "list")
	if !strings.Contains(ns, prefix+"-2") {
		t.Errorf("failed Setup removed a namespace it did not make: %q", ns)
	}
	output(t, "ip", "netns", "del", prefix+"-2")
	if ns := output(t, "ip", "netns", "list"); strings.Contains(ns, prefix) {
		t.Errorf("namespaces left after a failed Setup: %q", ns)
	}
	if links := output(t, "ip", "link"); strings.Contains(links, prefix) {
		t.Errorf("links left after a failed Setup: %q", links)
	}
}
