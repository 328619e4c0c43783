package cli

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// TestUpColdImageOneDownloadPerHost is the image path end to end, from the
// CLI: fairlease up with 4 host agents (libvirt's test driver, the swarm on
// loopback, each host's intake capped at 8 MiB/s), a freshly pushed 32 MiB
// image no host holds, and one 16-VM lease, 4 VMs per host. The lease
// shows the image phase while it starts, then runs; the broker handed out
// the image 4 times (a .torrent or a blob per download, from its /metrics),
// and every host holds it: one download per host, not one per VM.
func TestUpColdImageOneDownloadPerHost(t *testing.T) {
	env := startUp(t, "--driver", "test", "--hosts", "4", "--host-cores", "4", "--image-rate", "8MiB")
	cli := func(args ...string) result {
		t.Helper()
		return run(t, append([]string{"--addr", env["FAIRLEASE_ADDR"], "--token", env["FAIRLEASE_TOKEN"], "--output", "json"}, args...)...)
	}

	// Cold: pushed now, so no host has it.
	img := filepath.Join(t.TempDir(), "cold.raw")
	b := make([]byte, 32<<20)
	rand.Read(b)
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := cli("image", "push", img, "--name", "cold", "--format", "raw", "--public")
	if r.code != 0 {
		t.Fatalf("image push: %s", r.stderr)
	}
	var im broker.Image
	if err := json.Unmarshal([]byte(r.stdout), &im); err != nil {
		t.Fatalf("image push printed %q: %v", r.stdout, err)
	}
	for _, h := range siteHosts(t, cli) {
		if slices.Contains(h.Images, im.Digest) {
			t.Fatalf("host %s holds the image before any lease: not cold", h.Name)
		}
	}
	before := imageHandouts(t, env["FAIRLEASE_ADDR"])

	created := time.Now()
	r = cli("lease", "create", "--group", "physics", "--count", "16", "--cores", "1", "--memory", "256MiB",
		"--image", "cold", "--duration", "10m")
	if r.code != 0 {
		t.Fatalf("lease create: %s", r.stderr)
	}
	var l broker.Lease
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		t.Fatalf("lease create printed %q: %v", r.stdout, err)
	}
	perHost := map[string]int{}
	for _, v := range l.VMs {
		perHost[v.Host]++
	}
	if len(l.VMs) != 16 || len(perHost) != 4 {
		t.Fatalf("lease %s (%s): %d VMs on hosts %v, want 16 on 4 hosts", l.ID, l.Decision.Kind, len(l.VMs), perHost)
	}

	phases := map[string]bool{}
	var last broker.Lease
	waitUntil(t, 45*time.Second, "the lease running", func() error {
		r := cli("lease", "show", string(l.ID))
		if r.code != 0 {
			return fmt.Errorf("lease show: %s", r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &last); err != nil {
			return err
		}
		for _, v := range last.VMs {
			if strings.HasPrefix(v.Phase, "image ") && strings.HasSuffix(v.Phase, " %") {
				phases[v.Phase] = true
			}
		}
		switch last.State {
		case lease.StateRunning:
			return nil
		case lease.StateStarting, lease.StateGranted:
			return fmt.Errorf("lease is %s, VMs %v", last.State, vmStates(last))
		}
		t.Fatalf("lease is %s: %s", last.State, last.EndReason)
		return nil
	})
	took := time.Since(created)
	if len(phases) == 0 {
		t.Error("lease show never reported an image phase (\"image N %\") while the lease started")
	}
	t.Logf("create to running: %.1f s; phases seen: %v", took.Seconds(), slices.Sorted(maps.Keys(phases)))

	// Every host reports the image in its cache (heartbeats, every 2 s).
	waitUntil(t, 10*time.Second, "every host listing the image", func() error {
		var without []string
		for _, h := range siteHosts(t, cli) {
			if !slices.Contains(h.Images, im.Digest) {
				without = append(without, h.Name)
			}
		}
		if len(without) > 0 {
			return fmt.Errorf("hosts without it: %v", without)
		}
		return nil
	})
	after := imageHandouts(t, env["FAIRLEASE_ADDR"])
	downloads := after.total() - before.total()
	t.Logf("downloads for 16 VMs on 4 hosts: %d (torrents %d, blobs %d)", downloads, after.torrents-before.torrents, after.blobs-before.blobs)
	if downloads != 4 {
		t.Errorf("the broker handed out the image %d times for 16 VMs on 4 hosts, want 4 (one per host)", downloads)
	}
}

// siteHosts lists the site's hosts.
func siteHosts(t *testing.T, cli func(...string) result) []broker.Host {
	t.Helper()
	r := cli("host", "list")
	var hs []broker.Host
	if err := json.Unmarshal([]byte(r.stdout), &hs); err != nil || len(hs) == 0 {
		t.Fatalf("host list printed %q (%v): %s", r.stdout, err, r.stderr)
	}
	return hs
}

// handouts counts the broker's successful answers that start an image
// download: a host's .torrent (swarm) or the image's blob (directly).
type handouts struct{ torrents, blobs int }

func (h handouts) total() int { return h.torrents + h.blobs }

// imageHandouts reads the broker's request counters from /metrics.
func imageHandouts(t *testing.T, addr string) handouts {
	t.Helper()
	resp, err := http.Get(strings.TrimRight(addr, "/") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h handouts
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "fairlease_http_requests_total{") || !strings.Contains(line, `code="200"`) {
			continue
		}
		f := strings.Fields(line)
		n, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		switch {
		case strings.Contains(line, `route="/v1/images/{name}/torrent"`):
			h.torrents += int(n)
		case strings.Contains(line, `route="/v1/images/{digest}/blob"`):
			h.blobs += int(n)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return h
}

func vmStates(l broker.Lease) []string {
	var out []string
	for _, v := range l.VMs {
		s := v.Host + ":" + v.State
		if v.Phase != "" {
			s += "(" + v.Phase + ")"
		}
		out = append(out, s)
	}
	return out
}

// waitUntil polls cond every 100 ms until it returns nil, failing the test
// with cond's last error after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s: %v", what, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
