package cli

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api/apitest"
	"github.com/fairlease/fairlease/lease"
)

// t0 is the fixed "now" of the client command tests, in UTC.
var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// site is a broker API on a fake backend with two 8-core hosts, an admin
// (root), ada of physics and bob of biology; the clock stands at t0.
type site struct {
	srv    *apitest.Server
	tokens map[string]string
}

func newSite(t *testing.T) *site {
	t.Helper()
	oldNow, oldZone, oldMin := timeNow, localZone, pollMin
	timeNow, localZone, pollMin = func() time.Time { return t0 }, time.UTC, 5*time.Millisecond
	t.Cleanup(func() { timeNow, localZone, pollMin = oldNow, oldZone, oldMin })
	s := &site{srv: apitest.NewServer(t), tokens: map[string]string{}}
	s.srv.Fake.Clock = func() time.Time { return t0 }
	s.srv.Fake.AddHost(t, "h01", 8, 32768)
	s.srv.Fake.AddHost(t, "h02", 8, 32768)
	for _, u := range []struct {
		name  string
		group lease.GroupID
		role  broker.Role
	}{{"root", "", broker.RoleAdmin}, {"ada", "physics", broker.RoleUser}, {"bob", "biology", broker.RoleUser}} {
		s.tokens[u.name] = s.srv.Fake.AddUser(t, u.name, u.group, u.role)
	}
	return s
}

// run runs the command line as user who.
func (s *site) run(t *testing.T, who string, args ...string) result {
	t.Helper()
	return run(t, append([]string{"--addr", s.srv.URL, "--token", s.tokens[who]}, args...)...)
}

var leaseLine = regexp.MustCompile(`(?m)^lease: (\S+)$`)

// TestLeaseCommands goes through a lease's life as a person would:
// create, show, list, terminate.
func TestLeaseCommands(t *testing.T) {
	s := newSite(t)
	r := s.run(t, "ada", "lease", "create", "--count", "3", "--cores", "2", "--memory", "4GiB", "--image", "ubuntu-22.04-mpi", "--duration", "3h")
	if r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	m := leaseLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("create printed no lease id:\n%s", r.stdout)
	}
	id := m[1]
	if want := "granted: 3 VMs on h01, running until 12:00 (in 3h)\nlease: " + id + "\n"; r.stdout != want {
		t.Errorf("create printed\n%s\nwant\n%s", r.stdout, want)
	}

	r = s.run(t, "ada", "lease", "show", id)
	for _, want := range []string{"lease     " + id, "state     starting", "group     physics (asked by ada)", "shape     3 × 2 cores, 4 GiB, ubuntu-22.04-mpi",
		"end       12:00 (in 3h)", "INDEX  NAME", id + "-2", "h01"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}

	r = s.run(t, "ada", "lease", "list")
	want := [][]string{
		{"ID", "STATE", "GROUP", "USER", "VMS", "SHAPE", "START", "END", "SITE"},
		{id, "starting", "physics", "ada", "3", "2", "cores,", "4", "GiB,", "ubuntu-22.04-mpi", "09:00", "12:00", "local"},
	}
	if diff := cmp.Diff(want, fields(r.stdout)); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	if r := s.run(t, "bob", "lease", "list"); len(fields(r.stdout)) != 1 {
		t.Errorf("bob sees ada's lease:\n%s", r.stdout)
	}

	r = s.run(t, "ada", "--output", "json", "lease", "show", id)
	var obj map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &obj); err != nil {
		t.Fatalf("show --output json: %v\n%s", err, r.stdout)
	}
	for _, k := range []string{"id", "state", "site", "start", "end", "vms"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("the lease object lacks %q: %s", k, r.stdout)
		}
	}
	if vms := obj["vms"].([]any); len(vms) != 3 || vms[0].(map[string]any)["address"] == "" {
		t.Errorf("vms: %v", vms)
	}

	if r := s.run(t, "bob", "lease", "terminate", id); r.code != ExitFailure || !strings.Contains(r.stderr, "no lease") {
		t.Errorf("bob ends ada's lease: %d %s", r.code, r.stderr)
	}
	r = s.run(t, "ada", "lease", "terminate", id)
	if r.stdout != "ended: lease "+id+" (terminated by ada)\n" {
		t.Errorf("terminate printed %q (%s)", r.stdout, r.stderr)
	}
	if r := s.run(t, "ada", "--output", "json", "lease", "list", "--state", "ended"); !strings.Contains(r.stdout, `"state": "ended"`) {
		t.Errorf("list --state ended --output json:\n%s", r.stdout)
	}
}

// TestCreateDecisions checks how lease create tells each decision.
func TestCreateDecisions(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, s *site)
		args     []string
		wantCode int
		want     string
	}{
		{"granted", nil, []string{"--count", "2", "--cores", "8", "--duration", "90m"}, 0,
			"granted: 2 VMs on h01, h02, running until 10:30 (in 1h 30m)"},
		{"deferred", func(t *testing.T, s *site) {
			s.srv.Fake.Submit(t, "bob", lease.Request{ID: "big", Group: "biology", User: "bob", Count: 2, Shape: lease.Shape{Cores: 8, MemoryMiB: 1024}, Duration: 40 * time.Minute, AllOrNothing: true})
		}, []string{"--cores", "4", "--duration", "2h"}, 0,
			"deferred: starts at 09:40 (in 40 min), 1 VM for 2h"},
		{"too large", nil, []string{"--count", "40", "--cores", "2", "--duration", "1h"}, ExitFailure,
			"rejected: too large for this site (40 VMs of this shape asked; the whole site holds at most 8) — the site has 16 cores / 64 GiB in all on 2 hosts, the largest 8 cores / 32 GiB; ask for fewer or smaller VMs"},
		{"over quota", func(t *testing.T, s *site) {
			s.srv.Fake.Apply(t, broker.CmdSetGroup, "root", broker.SetGroup{Group: "physics", Quota: &broker.QuotaSpec{MaxCores: 4, MaxMemoryMiB: 65536, MaxLease: 36 * time.Hour}})
		}, []string{"--count", "3", "--cores", "2", "--duration", "1h"}, ExitFailure,
			"rejected: over the group's quota (6 cores asked; group physics may hold at most 4 cores at once) — group physics may hold at most 4 cores / 64 GiB, lease at most 1d12h"},
		{"start_by passed", nil, []string{"--duration", "1h", "--start-by", "2026-11-02T08:30:00Z"}, ExitFailure,
			"rejected: cannot start by the time asked (earliest start is after start_by) — ask with a later --start-by, or none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t)
			if tt.setup != nil {
				tt.setup(t, s)
			}
			// What-if first: it must not change what create gets.
			w := s.run(t, "ada", append([]string{"lease", "whatif"}, tt.args...)...)
			if w.code != 0 || !strings.HasPrefix(w.stdout, "would be "+tt.want[:strings.Index(tt.want, ":")]) {
				t.Errorf("whatif: %d %q %s", w.code, w.stdout, w.stderr)
			}
			r := s.run(t, "ada", append([]string{"lease", "create"}, tt.args...)...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr %s", r.code, tt.wantCode, r.stderr)
			}
			first, _, _ := strings.Cut(r.stdout, "\n")
			if diff := cmp.Diff(tt.want, first); diff != "" {
				t.Errorf("decision line (-want +got):\n%s", diff)
			}
			if tt.wantCode != 0 && !strings.Contains(r.stderr, "was rejected") {
				t.Errorf("stderr %q does not say it was rejected", r.stderr)
			}
		})
	}
}

// TestDescribe covers the decisions the broker rarely gives on creation.
func TestDescribe(t *testing.T) {
	req := lease.Request{Count: 4, Duration: 2 * time.Hour}
	tests := []struct {
		name string
		l    broker.Lease
		want string
	}{
		{"queued", broker.Lease{Request: req, Decision: lease.Decision{Kind: lease.Deferred, Reason: lease.ReasonQueued, Message: "waits in fair order, no firm start yet"}},
			"queued: waits in fair order, no firm start yet"},
		{"overflowed", broker.Lease{Request: req, End: t0.Add(2 * time.Hour), Decision: lease.Decision{Kind: lease.Overflowed, Site: "ec2"}},
			"overflowed: runs on ec2 until 11:00 (in 2h)"},
		{"deferred to tomorrow", broker.Lease{Request: req, Decision: lease.Decision{Kind: lease.Deferred, Start: t0.Add(26 * time.Hour)}},
			"deferred: starts at Tue 11:00 (in 1d 2h), 4 VMs for 2h"},
		{"start_by missed, with the earliest start", broker.Lease{Request: req, Decision: lease.Decision{Kind: lease.Rejected, Reason: lease.ReasonStartBy, EarliestLocal: t0.Add(70 * time.Minute)}},
			"rejected: cannot start by the time asked — the earliest local start is 10:10 (in 1h 10m): ask with --start-by 10:10 or later"},
		{"unknown group", broker.Lease{Group: "chem", Request: req, Decision: lease.Decision{Kind: lease.Rejected, Reason: lease.ReasonUnknownGroup, Message: "unknown group chem"}},
			"rejected: unknown group (unknown group chem) — ask an admin to add it (fairlease share set chem --weight 1)"},
	}
	oldNow, oldZone := timeNow, localZone
	timeNow, localZone = func() time.Time { return t0 }, time.UTC
	defer func() { timeNow, localZone = oldNow, oldZone }()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describe(&tt.l, t0, helpFor(t.Context(), nil, &tt.l)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestWaitRunning waits for a lease whose VMs a fake host starts, and for
// one whose host fails it.
func TestWaitRunning(t *testing.T) {
	for _, tt := range []struct {
		name     string
		to       lease.State
		wantCode int
		want     string
	}{
		{"runs", lease.StateRunning, 0, "running: 2 VMs on h01 until 10:00 (in 1h)"},
		{"fails", lease.StateFailed, ExitFailure, "lease l-w is failed without having run: disk full"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t)
			done := make(chan struct{})
			go func() {
				defer close(done)
				// The host reports once the client has started polling.
				for {
					var st lease.State
					s.srv.Fake.State(func(bs *broker.State) {
						if l, ok := bs.Lease("l-w"); ok {
							st = l.State
						}
					})
					if st == lease.StateStarting {
						time.Sleep(20 * time.Millisecond)
						s.srv.Fake.Apply(t, broker.CmdLeaseState, "h01", broker.LeaseStateChange{ID: "l-w", State: tt.to, Note: "disk full"})
						return
					}
					time.Sleep(2 * time.Millisecond)
				}
			}()
			r := s.run(t, "ada", "lease", "create", "--id", "l-w", "--count", "2", "--duration", "1h", "--wait", "running")
			<-done
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr %s", r.code, tt.wantCode, r.stderr)
			}
			if !strings.Contains(r.stdout+r.stderr, tt.want) {
				t.Errorf("output lacks %q:\nstdout: %s\nstderr: %s", tt.want, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, "starting 2 VMs on h01") {
				t.Errorf("no progress line on stderr: %q", r.stderr)
			}
		})
	}
}

func TestLeaseUsageErrors(t *testing.T) {
	s := newSite(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no duration", []string{"lease", "create"}, "--duration is required"},
		{"bare memory", []string{"lease", "create", "--duration", "1h", "--memory", "4096"}, `--memory: "4096" needs a unit`},
		{"bad start-by", []string{"lease", "create", "--duration", "1h", "--start-by", "teatime"}, `--start-by: "teatime"`},
		{"bad wait", []string{"lease", "create", "--duration", "1h", "--wait", "ended"}, "the only state to wait for is running"},
		{"show without id", []string{"lease", "show"}, "missing argument: the lease id"},
		{"unknown subcommand", []string{"lease", "frobnicate"}, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkError(t, s.run(t, "ada", tt.args...), ExitUsage, tt.want)
		})
	}
	t.Setenv(EnvAddr, "")
	checkError(t, run(t, "lease", "list"), ExitUsage, "no broker address: set --addr or $FAIRLEASE_ADDR")
	checkError(t, run(t, "--addr", s.srv.URL, "--token", "flt_x_y", "lease", "list"), ExitFailure, "check --token or $FAIRLEASE_TOKEN")
	checkError(t, s.run(t, "ada", "lease", "show", "l-nope"), ExitFailure, `id: no lease "l-nope"`)
	checkError(t, s.run(t, "ada", "lease", "create", "--duration", "1h", "--group", "biology"), ExitFailure, "ada may ask for leases of group physics only")
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 11, 2, 15, 30, 0, 0, time.UTC)
	oldZone := localZone
	localZone = time.UTC
	defer func() { localZone = oldZone }()
	tests := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"+2h", now.Add(2 * time.Hour)},
		{"+1d", now.Add(24 * time.Hour)},
		{"16:00", time.Date(2026, 11, 2, 16, 0, 0, 0, time.UTC)},
		{"14:00", time.Date(2026, 11, 3, 14, 0, 0, 0, time.UTC)}, // passed today: tomorrow
		{"2026-11-04T10:00:00+01:00", time.Date(2026, 11, 4, 9, 0, 0, 0, time.UTC)},
		{"2026-11-04 10:00", time.Date(2026, 11, 4, 10, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got, err := parseWhen("--start-by", tt.in, now)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"soon", "+", "+-1h", "25:00"} {
		if _, err := parseWhen("--start-by", bad, now); err == nil {
			t.Errorf("parseWhen(%q) accepted", bad)
		}
	}
}

func TestSpan(t *testing.T) {
	for d, want := range map[time.Duration]string{
		18 * time.Minute: "18 min", 3 * time.Hour: "3h", 2*time.Hour + 5*time.Minute: "2h 5m",
		50 * time.Hour: "2d 2h", 48 * time.Hour: "2d", 59*time.Minute + 50*time.Second: "1h",
	} {
		if got := span(d); got != want {
			t.Errorf("span(%s) = %q, want %q", d, got, want)
		}
	}
}

// fields splits a table into its lines' words.
func fields(s string) [][]string {
	var out [][]string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		out = append(out, strings.Fields(l))
	}
	return out
}
