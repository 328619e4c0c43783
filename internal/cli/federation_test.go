package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/client"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/sites/ec2"
	"github.com/fairlease/fairlease/sites/sitetest"
)

// dropProxy stands between a broker and a partner's EC2 endpoint. Armed,
// it forwards the next RunInstances, lets the partner act on it, and then
// drops the connection instead of answering: the caller cannot know
// whether the launch happened.
type dropProxy struct {
	srv      *httptest.Server
	armed    atomic.Int32
	runs     atomic.Int32 // RunInstances calls that reached the partner
	capacity atomic.Int32 // of those, answered InsufficientInstanceCapacity
}

func newDropProxy(t *testing.T, target string) *dropProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if !bytes.Contains(body, []byte("Action=RunInstances")) {
			rp.ServeHTTP(w, r)
			return
		}
		p.runs.Add(1)
		if p.armed.Add(-1) < 0 {
			p.armed.Store(0)
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r)
			if bytes.Contains(rec.Body.Bytes(), []byte("InsufficientInstanceCapacity")) {
				p.capacity.Add(1)
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		// The partner launches; the answer never comes back.
		rp.ServeHTTP(httptest.NewRecorder(), r)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func setPolicy(t *testing.T, env map[string]string, text string) {
	t.Helper()
	c, err := client.New(env["FAIRLEASE_ADDR"], env["FAIRLEASE_TOKEN"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetPolicy(context.Background(), text); err != nil {
		t.Fatal(err)
	}
}

// siteCLI runs the CLI against one up's API as its admin.
func siteCLI(t *testing.T, env map[string]string) func(args ...string) result {
	return func(args ...string) result {
		t.Helper()
		r := run(t, append([]string{"--addr", env["FAIRLEASE_ADDR"], "--token", env["FAIRLEASE_TOKEN"], "--output", "json"}, args...)...)
		if r.code != 0 {
			t.Fatalf("fairlease %s: %s", strings.Join(args, " "), r.stderr)
		}
		return r
	}
}

// partner sets up site B to take A's overflow: a group partner-a with
// the given weight, a user for A with an access key, and the image A's
// leases boot, public. It returns the key.
func partner(t *testing.T, b func(...string) result, weight string) api.NewAccessKey {
	b("share", "set", "partner-a", "--weight", weight)
	b("user", "create", "site-a", "--group", "partner-a")
	var k api.NewAccessKey
	if err := json.Unmarshal([]byte(b("user", "keys", "create", "--user", "site-a").stdout), &k); err != nil {
		t.Fatal(err)
	}
	pushImage(t, b, "mpi-base")
	return k
}

func pushImage(t *testing.T, c func(...string) result, name string) {
	img := filepath.Join(t.TempDir(), name+".raw")
	os.WriteFile(img, bytes.Repeat([]byte(name), 4096), 0o644)
	c("image", "push", img, "--name", name, "--format", "raw", "--public")
}

func leaseOn(t *testing.T, c func(...string) result, id string) broker.Lease {
	t.Helper()
	var l broker.Lease
	if err := json.Unmarshal([]byte(c("lease", "show", id).stdout), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

const overflowToB = `
[groups.physics.overflow]
sites = ["b"]
budget_core_hours = -1
`

// TestTwoSitesOverflow: two fairlease sites on loopback, A with B as its
// partner. A lease A cannot place overflows to B, runs there as a lease
// of A's partner group under B's fair share, shows in A's lease show with
// B's instance ids, and ends on both sites at its end. The first launch's
// answer is lost on the way back: A retries with the same token, and B
// runs one reservation, not two.
func TestTwoSitesOverflow(t *testing.T) {
	envA := startUp(t, "--driver", "sim", "--hosts", "1", "--host-cores", "4")
	envB := startUp(t, "--driver", "sim", "--hosts", "2", "--host-cores", "8")
	a, b := siteCLI(t, envA), siteCLI(t, envB)
	key := partner(t, b, "2")
	proxy := newDropProxy(t, envB["FAIRLEASE_EC2_ENDPOINT"])
	proxy.armed.Store(1)
	a("site", "add", "b", "--endpoint", proxy.srv.URL, "--region", "fairlease", "--access-key-id", key.AccessKeyID,
		"--secret-access-key", key.SecretAccessKey, "--cost", "0.05")
	setPolicy(t, envA, overflowToB)
	pushImage(t, a, "mpi-base")

	var l broker.Lease
	json.Unmarshal([]byte(a("lease", "create", "--group", "physics", "--count", "6", "--cores", "1", "--memory", "512MiB",
		"--image", "mpi-base", "--duration", "20s", "--start-by", "+1m").stdout), &l)
	if l.State != lease.StateOverflowed || l.Site != "b" {
		t.Fatalf("6 cores on a 4-core site: %s on %q, want overflowed to b", l.State, l.Site)
	}
	waitUntil(t, 30*time.Second, "the lease running on b", func() error {
		l = leaseOn(t, a, string(l.ID))
		if l.Remote == nil || len(l.Remote.Instances) != 6 {
			return fmt.Errorf("%s, remote %+v", l.State, l.Remote)
		}
		return nil
	})
	if len(l.Remote.Attempts) != 1 || proxy.runs.Load() < 2 {
		t.Errorf("attempts %+v after %d RunInstances calls: want one attempt, sent again after the lost answer", l.Remote.Attempts, proxy.runs.Load())
	}
	// B: exactly one lease of partner-a, whose instances are A's.
	var onB []broker.Lease
	json.Unmarshal([]byte(b("lease", "list").stdout), &onB)
	if len(onB) != 1 || onB[0].Group != "partner-a" || onB[0].User != "site-a" || onB[0].Request.Count != 6 {
		t.Fatalf("leases on b: %+v, want one of partner-a with 6 VMs", onB)
	}
	for i, vm := range l.VMs {
		if vm.Instance != broker.InstanceID(onB[0].ID, i) || vm.Host != "b" {
			t.Errorf("A's VM %d: instance %q on %q, want b's %s", i, vm.Instance, vm.Host, broker.InstanceID(onB[0].ID, i))
		}
	}
	// B's fair share applies: partner-a is a group of its share tree.
	var shares []api.ShareRow
	json.Unmarshal([]byte(b("share", "list").stdout), &shares)
	found := false
	for _, s := range shares {
		found = found || s.Group == "partner-a"
	}
	if !found {
		t.Errorf("b's share list has no partner-a: %+v", shares)
	}
	// lease show says where it runs and what it costs.
	r := run(t, "--addr", envA["FAIRLEASE_ADDR"], "--token", envA["FAIRLEASE_TOKEN"], "lease", "show", string(l.ID))
	if !strings.Contains(r.stdout, "6 instances on b") || !strings.Contains(r.stdout, l.VMs[0].Instance) || !strings.Contains(r.stdout, "cost so far") {
		t.Errorf("lease show on a:\n%s", r.stdout)
	}
	r = run(t, "--addr", envA["FAIRLEASE_ADDR"], "--token", envA["FAIRLEASE_TOKEN"], "lease", "list")
	if rows := fields(r.stdout); len(rows) != 2 || rows[1][len(rows[1])-1] != "b" {
		t.Errorf("lease list on a: want the lease's site b in the last column:\n%s", r.stdout)
	}
	// At its end, it ends on both sites.
	waitUntil(t, 40*time.Second, "the lease ended on both sites", func() error {
		la, lb := leaseOn(t, a, string(l.ID)), leaseOn(t, b, string(onB[0].ID))
		if la.State != lease.StateEnded || la.Remote.Ended.IsZero() || lb.State != lease.StateEnded {
			return fmt.Errorf("a: %s (instances ended %v), b: %s", la.State, la.Remote.Ended, lb.State)
		}
		return nil
	})
}

// TestPartnerWithoutRoom: B has no room. A does not storm it with
// retries: one launch, refused for capacity, and A fails the lease with
// B's reason.
func TestPartnerWithoutRoom(t *testing.T) {
	envA := startUp(t, "--driver", "sim", "--hosts", "1", "--host-cores", "4")
	envB := startUp(t, "--driver", "sim", "--hosts", "1", "--host-cores", "2")
	a, b := siteCLI(t, envA), siteCLI(t, envB)
	key := partner(t, b, "1")
	proxy := newDropProxy(t, envB["FAIRLEASE_EC2_ENDPOINT"])
	a("site", "add", "b", "--endpoint", proxy.srv.URL, "--region", "fairlease", "--access-key-id", key.AccessKeyID, "--secret-access-key", key.SecretAccessKey)
	setPolicy(t, envA, overflowToB)
	pushImage(t, a, "mpi-base")
	var l broker.Lease
	json.Unmarshal([]byte(a("lease", "create", "--group", "physics", "--count", "6", "--cores", "1", "--memory", "512MiB",
		"--image", "mpi-base", "--duration", "10m", "--start-by", "+1m").stdout), &l)
	waitUntil(t, 30*time.Second, "the lease failed", func() error {
		if l = leaseOn(t, a, string(l.ID)); l.State != lease.StateFailed {
			return fmt.Errorf("%s", l.State)
		}
		return nil
	})
	if !strings.Contains(l.EndReason, "capacity") {
		t.Errorf("end reason %q, want b's capacity answer", l.EndReason)
	}
	// sites/ec2 tries up to 3 instance types that fit, each once; the SDK
	// does not retry a capacity answer.
	time.Sleep(3 * time.Second)
	if n, c := proxy.runs.Load(), proxy.capacity.Load(); n > 3 || c != n {
		t.Errorf("b got %d RunInstances calls (%d capacity answers), want at most 3, all refused: a retry storm", n, c)
	}
}

// TestEC2SiteConformance runs the sites conformance suite against
// sites/ec2 talking to a fairlease EC2 API.
func TestEC2SiteConformance(t *testing.T) {
	env := startUp(t, "--driver", "sim", "--hosts", "2", "--host-cores", "16")
	b := siteCLI(t, env)
	key := partner(t, b, "1")
	proxy := newDropProxy(t, env["FAIRLEASE_EC2_ENDPOINT"])
	sitetest.Run(t, sitetest.Harness{
		New: func(t *testing.T) sitetest.Subject {
			s, err := ec2.New(ec2.Config{Name: "partner", Endpoint: proxy.srv.URL, Region: "fairlease",
				AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey, MaxAttempts: 2, BaseBackoff: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			// Exhaust fills the partner with another group's hour-long
			// lease: a launch can then start no sooner than in an hour,
			// which an EC2 caller is told as InsufficientInstanceCapacity.
			exhaust := func() {
				bt := siteCLI(t, env)
				var filler broker.Lease
				json.Unmarshal([]byte(bt("lease", "create", "--group", "filler", "--count", "32", "--cores", "1", "--memory", "512MiB",
					"--image", "mpi-base", "--duration", "1h").stdout), &filler)
				if filler.State != lease.StateStarting && filler.State != lease.StateRunning {
					t.Fatalf("filler lease: %s, want it holding the whole site", filler.State)
				}
				t.Cleanup(func() { bt("lease", "terminate", string(filler.ID)) })
			}
			return sitetest.Subject{Site: s, LoseReply: func() { proxy.armed.Store(1) }, Exhaust: exhaust}
		},
		Shape: lease.Shape{Cores: 1, MemoryMiB: 512, Image: broker.ImageID("mpi-base")},
		Count: 2,
	})
}
