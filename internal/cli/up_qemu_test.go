package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// TestUpQEMUCluster is the host agent end to end, from the CLI: fairlease
// up --driver qemu, push the test image, ask for a 3-VM cluster; every VM
// boots under QEMU and its console shows its own name, both peers' names
// and addresses and the cluster key; at expiry the domains are gone.
//
// It needs libvirtd (scripts/libvirt/start.sh) and the test image (make
// testimage) in FAIRLEASE_TEST_IMAGE; .ci/run provides both.
func TestUpQEMUCluster(t *testing.T) {
	image := os.Getenv("FAIRLEASE_TEST_IMAGE")
	if image == "" {
		t.Skip("FAIRLEASE_TEST_IMAGE is not set (make testimage prints the path)")
	}
	if out, err := exec.Command("virsh", "-c", "qemu:///system", "version").CombinedOutput(); err != nil {
		t.Skipf("libvirtd does not answer on qemu:///system (scripts/libvirt/start.sh): %v %s", err, out)
	}
	// QEMU runs as its own user: every directory down to the VM files
	// must let it through.
	data, err := os.MkdirTemp("", "fl-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(data)
	if err := os.Chmod(data, 0o711); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var upOut, upErr bytes.Buffer
	upDone := make(chan int, 1)
	go func() {
		upDone <- Run(ctx, []string{"up", "--driver", "qemu", "--data", data, "--listen", "127.0.0.1:0", "--raft", "127.0.0.1:0", "--ec2-listen", "127.0.0.1:0"}, &upOut, &upErr)
	}()
	defer func() {
		cancel()
		select {
		case code := <-upDone:
			if code != 0 {
				t.Errorf("up exited %d: %s", code, lastLines(upErr.String(), 10))
			}
		case <-time.After(30 * time.Second):
			t.Error("up did not stop within 30 s")
		}
	}()
	envFile := filepath.Join(data, "up.env")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(envFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("up wrote no up.env within 60 s: %s", lastLines(upErr.String(), 10))
		}
		time.Sleep(100 * time.Millisecond)
	}
	env := readEnv(envFile)
	cli := func(args ...string) result {
		t.Helper()
		return run(t, append([]string{"--addr", env["FAIRLEASE_ADDR"], "--token", env["FAIRLEASE_TOKEN"]}, args...)...)
	}
	if r := cli("image", "push", image, "--name", "fltest", "--public"); r.code != 0 {
		t.Fatalf("image push: %s", r.stderr)
	}
	granted := time.Now()
	r := cli("--output", "json", "lease", "create", "--group", "physics", "--count", "3", "--cores", "1", "--memory", "256MiB",
		"--image", "fltest", "--duration", "75s", "--wait", "running", "--wait-timeout", "60s")
	if r.code != 0 {
		t.Fatalf("lease create: %s", r.stderr)
	}
	var l broker.Lease
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || len(l.VMs) != 3 {
		t.Fatalf("lease create printed %q (%v)", r.stdout, err)
	}

	// Each console: wait for "ready", then check the facts.
	logs := map[int]string{}
	lastErr := ""
	deadline = time.Now().Add(90 * time.Second)
	for len(logs) < 3 {
		for _, v := range l.VMs {
			if _, ok := logs[v.Index]; ok {
				continue
			}
			r := cli("vm", "log", fmt.Sprintf("%s/%d", l.ID, v.Index))
			if r.code == 0 && strings.Contains(r.stdout, "fairlease-context: ready") {
				logs[v.Index] = r.stdout
			}
			lastErr = r.stderr + lastLines(r.stdout, 3)
		}
		if time.Now().After(deadline) {
			show := cli("lease", "show", string(l.ID))
			t.Fatalf("after 90 s only VMs %v printed their context; last: %s\n%s\nup: %s", keys(logs), lastErr, show.stdout, lastLines(upErr.String(), 5))
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("grant to the last VM's context: %.1f s", time.Since(granted).Seconds())
	var keyLine string
	for _, v := range l.VMs {
		got := contextLines(logs[v.Index])
		want := []string{"hostname=" + v.Name}
		for _, p := range l.VMs {
			if p.Index != v.Index {
				want = append(want, fmt.Sprintf("peer=%s %s", p.Name, p.Address))
			}
		}
		for _, w := range want {
			if !contains(got, w) {
				t.Errorf("VM %d's console lacks %q; it has %q", v.Index, w, got)
			}
		}
		k := ""
		for _, g := range got {
			if strings.HasPrefix(g, "cluster-key=SHA256:") {
				k = g
			}
		}
		if k == "" || (keyLine != "" && k != keyLine) {
			t.Errorf("VM %d's cluster key %q, others %q: want one key for the cluster", v.Index, k, keyLine)
		}
		keyLine = k
	}

	// At expiry: domains gone, files gone, the cores free.
	deadline = l.End.Add(45 * time.Second)
	for {
		left := domainsOf(t, l.ID)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("45 s after the lease's end, domains %v still exist", left)
		}
		time.Sleep(time.Second)
	}
	vms, _ := filepath.Glob(filepath.Join(data, "agents", "*", "vms", "fl-"+string(l.ID)+"-*"))
	if len(vms) != 0 {
		t.Errorf("VM files left behind: %v", vms)
	}
	r = cli("--output", "json", "lease", "show", string(l.ID))
	var ended broker.Lease
	if err := json.Unmarshal([]byte(r.stdout), &ended); err != nil || ended.State != lease.StateEnded {
		t.Errorf("after expiry: %s %v", r.stdout, err)
	}
	r = cli("--output", "json", "lease", "whatif", "--group", "physics", "--count", "8", "--cores", "1", "--memory", "128MiB",
		"--image", "fltest", "--duration", "1m")
	if !strings.Contains(r.stdout, `"granted"`) {
		t.Errorf("after expiry the host's 8 cores are not free: %s %s", r.stdout, r.stderr)
	}
}

var contextLine = regexp.MustCompile(`fairlease-context: (.*?)\r?$`)

func contextLines(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if m := contextLine.FindStringSubmatch(line); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func keys(m map[int]string) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	return out
}

// domainsOf lists the libvirt domains of lease id.
func domainsOf(t *testing.T, id lease.ID) []string {
	t.Helper()
	out, err := exec.Command("virsh", "-c", "qemu:///system", "list", "--all", "--name").Output()
	if err != nil {
		t.Fatalf("virsh list: %v", err)
	}
	var left []string
	for _, n := range strings.Fields(string(out)) {
		if strings.HasPrefix(n, "fl-"+string(id)+"-") {
			left = append(left, n)
		}
	}
	return left
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
