package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/server"
	"github.com/fairlease/fairlease/broker/server/servertest"
	"github.com/fairlease/fairlease/lease"
)

// TestBatchingGivesEachCallerItsResults submits concurrently from two
// actors: fewer log entries than callers are written, and every caller
// gets exactly its own requests' results, recorded under its own name.
func TestBatchingGivesEachCallerItsResults(t *testing.T) {
	c, ctx := testCluster(t, 1, true, func(cfg *server.Config) { cfg.BatchDepth = 1 })
	l, _ := c.Leader(ctx)
	addHosts(t, ctx, l.Server, 4, 64)
	before := l.Server.Raft().LastIndex()
	const callers = 200
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			actor := []string{"ada", "bob"}[i%2]
			var reqs []lease.Request
			for k := range 1 + i%3 {
				reqs = append(reqs, req(fmt.Sprintf("c%03d-%d", i, k), "physics", 1, 1, time.Hour))
			}
			res, err := l.Server.Propose(ctx, submit(t, actor, reqs...))
			if err != nil {
				errs[i] = err
				return
			}
			rs := res.([]broker.SubmitResult)
			if len(rs) != len(reqs) {
				errs[i] = fmt.Errorf("caller %d got %d results for %d requests", i, len(rs), len(reqs))
				return
			}
			for k, r := range rs {
				if r.Lease == nil || r.Lease.ID != reqs[k].ID || r.Lease.User != actor {
					errs[i] = fmt.Errorf("caller %d result %d = %+v, want lease %s of %s", i, k, r, reqs[k].ID, actor)
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if entries := l.Server.Raft().LastIndex() - before; entries >= callers {
		t.Errorf("%d callers took %d log entries: no batching", callers, entries)
	} else {
		t.Logf("%d callers, %d log entries", callers, entries)
	}
}

// TestForwardingKeepsResultTypes proposes every kind of command on the
// leader and on a follower: the follower's results have the same Go types
// and the same error codes.
func TestForwardingKeepsResultTypes(t *testing.T) {
	c, ctx := testCluster(t, 3, true, nil)
	l, _ := c.Leader(ctx)
	f := c.Followers()[0]
	addHosts(t, ctx, l.Server, 2, 8)
	tests := []struct {
		name     string
		cmd      func(node string) broker.Command
		wantCode string
	}{
		{"submit", func(n string) broker.Command { return submit(t, "ada", req("s-"+n, "physics", 1, 2, time.Hour)) }, ""},
		{"release", func(n string) broker.Command {
			return command(t, broker.CmdRelease, "ada", broker.Release{ID: lease.ID("s-" + n)})
		}, ""},
		{"release unknown", func(n string) broker.Command {
			return command(t, broker.CmdRelease, "ada", broker.Release{ID: "nope"})
		}, lease.ENOTFOUND},
		{"lease state conflict", func(n string) broker.Command {
			return command(t, broker.CmdLeaseState, "h00", broker.LeaseStateChange{ID: lease.ID("s-" + n), State: lease.StateRunning})
		}, lease.ECONFLICT},
		{"advance", func(string) broker.Command { return command(t, broker.CmdAdvance, "system", struct{}{}) }, ""},
		{"host lost", func(string) broker.Command { return command(t, broker.CmdHostLost, "system", broker.Name{Name: "h01"}) }, ""},
		{"host lost unknown", func(string) broker.Command { return command(t, broker.CmdHostLost, "system", broker.Name{Name: "zz"}) }, lease.ENOTFOUND},
		{"put user", func(n string) broker.Command {
			return command(t, broker.CmdPutUser, "root", broker.User{Name: "u-" + n, Group: "physics", Role: broker.RoleUser})
		}, ""},
		{"bad user", func(string) broker.Command {
			return command(t, broker.CmdPutUser, "root", broker.User{Name: "x", Role: "king"})
		}, lease.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lres, lerr := l.Server.Propose(ctx, tt.cmd("leader"))
			fres, ferr := f.Server.Propose(ctx, tt.cmd("follower"))
			if lease.ErrorCode(lerr) != tt.wantCode || lease.ErrorCode(ferr) != tt.wantCode {
				t.Fatalf("error codes: leader %q (%v), follower %q (%v); want %q", lease.ErrorCode(lerr), lerr, lease.ErrorCode(ferr), ferr, tt.wantCode)
			}
			var le *lease.Error
			if ferr != nil && !errors.As(ferr, &le) {
				t.Errorf("follower error %T is not a *lease.Error", ferr)
			}
			if lt, ft := reflect.TypeOf(lres), reflect.TypeOf(fres); lt != ft {
				t.Errorf("result types: leader %v, follower %v", lt, ft)
			}
		})
	}
	// The forwarded submit decided the same as the local one would have.
	res := propose(t, ctx, f.Server, submit(t, "bob", req("fwd", "biology", 1, 2, time.Hour)))
	got := res.([]broker.SubmitResult)[0].Lease
	var want *broker.Lease
	l.Server.Read(ctx, true, func(st *broker.State) error { want, _ = st.Lease("fwd"); return nil })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("forwarded result differs from the leader's record (-leader +forwarded):\n%s", diff)
	}
}

// TestProposeRefusesUnreadableCommands keeps commands that State.Apply
// would panic on out of the log.
func TestProposeRefusesUnreadableCommands(t *testing.T) {
	c, ctx := testCluster(t, 3, true, nil)
	l, _ := c.Leader(ctx)
	f := c.Followers()[0]
	tests := []struct {
		name string
		cmd  broker.Command
	}{
		{"unknown type", broker.Command{Type: 99, Actor: "x", Body: json.RawMessage(`{}`)}},
		{"unknown field", broker.Command{Type: broker.CmdPutUser, Actor: "x", Body: json.RawMessage(`{"name":"a","bogus":1}`)}},
		{"no body", broker.Command{Type: broker.CmdRelease, Actor: "x"}},
		{"wrong type", broker.Command{Type: broker.CmdSubmit, Actor: "x", Body: json.RawMessage(`{"requests":"many"}`)}},
	}
	before := l.Server.Raft().LastIndex()
	for _, tt := range tests {
		for _, n := range []*servertest.Node{l, f} {
			_, err := n.Server.Propose(ctx, tt.cmd)
			if lease.ErrorCode(err) != lease.EINVALID {
				t.Errorf("%s on %s: error %v, want code %s", tt.name, n.ID, err, lease.EINVALID)
			}
		}
	}
	if after := l.Server.Raft().LastIndex(); after != before {
		t.Errorf("log grew from %d to %d entries", before, after)
	}
}

// TestMembership joins, removes and re-joins members, from the leader and
// through a follower, and checks Status on the way.
func TestMembership(t *testing.T) {
	c, ctx := testCluster(t, 3, false, nil)
	l, _ := c.Leader(ctx)
	f := c.Followers()[0]
	n3 := c.Nodes[2]
	if n3 == l {
		n3 = c.Nodes[1]
	}
	if n3 == f {
		f = c.Followers()[1]
	}
	members := func(s *server.Server) []string {
		st, err := s.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range st.Members {
			ids = append(ids, m.ID)
		}
		return ids
	}
	if err := f.Server.Remove(ctx, n3.ID); err != nil {
		t.Fatalf("remove %s through %s: %v", n3.ID, f.ID, err)
	}
	if got := members(l.Server); len(got) != 2 || contains(got, n3.ID) {
		t.Errorf("after removing %s the members are %v", n3.ID, got)
	}
	err := servertest.WaitFor(ctx, func() error {
		return l.Server.Read(ctx, true, func(st *broker.State) error {
			for _, n := range st.Nodes() {
				if n.ID == n3.ID {
					return fmt.Errorf("%s is still in the state's nodes", n3.ID)
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Error(err)
	}
	if err := l.Server.Remove(ctx, "ghost"); lease.ErrorCode(err) != lease.ENOTFOUND {
		t.Errorf("remove an unknown member: %v, want %s", err, lease.ENOTFOUND)
	}
	if err := f.Server.Join(ctx, n3.ID, n3.RaftAddr(), n3.APIAddr()); err != nil {
		t.Fatalf("join %s through %s: %v", n3.ID, f.ID, err)
	}
	if err := l.Server.Join(ctx, n3.ID, n3.RaftAddr(), n3.APIAddr()); err != nil {
		t.Errorf("joining again: %v, want no error", err)
	}
	if got := members(f.Server); len(got) != 3 {
		t.Errorf("after re-joining the members are %v", got)
	}
	if err := l.Server.Join(ctx, "", "x", ""); lease.ErrorCode(err) != lease.EINVALID {
		t.Errorf("join without an id: %v, want %s", err, lease.EINVALID)
	}
	// The re-joined node applies new commands again.
	propose(t, ctx, l.Server, command(t, broker.CmdPutUser, "root", broker.User{Name: "late", Group: "g", Role: broker.RoleUser}))
	checkReplicas(t, ctx, c, nil)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestJoinFromConfig starts a fourth node that lists a member in Join: it
// asks to be added and then holds the cluster's state.
func TestJoinFromConfig(t *testing.T) {
	c, ctx := testCluster(t, 3, false, nil)
	l, _ := c.Leader(ctx)
	addHosts(t, ctx, l.Server, 1, 8)
	cfg := server.TestConfig(t, "n4")
	cfg.ClusterSecret = c.Secret()
	cfg.Join = []string{"http://127.0.0.1:1", c.Followers()[0].APIAddr()} // the first is down
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	err = servertest.WaitFor(ctx, func() error {
		var hosts int
		s.Read(ctx, false, func(st *broker.State) error { hosts = len(st.Hosts()); return nil })
		if hosts != 1 {
			return fmt.Errorf("n4 knows %d hosts, want 1", hosts)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := l.Server.Status(ctx)
	if err != nil || len(st.Members) != 4 {
		t.Errorf("status after n4 joined: %+v, %v", st, err)
	}
}

// TestStrongReads: a strong read on a follower names the leader; on the
// leader it sees every acknowledged write.
func TestStrongReads(t *testing.T) {
	c, ctx := testCluster(t, 3, true, nil)
	l, _ := c.Leader(ctx)
	f := c.Followers()[0]
	err := f.Server.Read(ctx, true, func(*broker.State) error { return nil })
	var nl *server.NotLeaderError
	if !errors.As(err, &nl) || !errors.Is(err, server.ErrNotLeader) || nl.LeaderID != l.ID || nl.LeaderAPI != l.APIAddr() {
		t.Errorf("strong read on a follower: %v, want a NotLeaderError naming %s at %s", err, l.ID, l.APIAddr())
	}
	for i := range 20 {
		propose(t, ctx, f.Server, command(t, broker.CmdPutUser, "root", broker.User{Name: fmt.Sprintf("u%d", i), Group: "g", Role: broker.RoleUser}))
		err := l.Server.Read(ctx, true, func(st *broker.State) error {
			if _, ok := st.User(fmt.Sprintf("u%d", i)); !ok {
				return fmt.Errorf("u%d is missing from a strong read after its write was acknowledged", i)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestInternalEndpointsNeedTheSecret refuses internal requests without the
// cluster secret.
func TestInternalEndpointsNeedTheSecret(t *testing.T) {
	c, ctx := testCluster(t, 1, true, nil)
	l, _ := c.Leader(ctx)
	b, _ := broker.Encode(command(t, broker.CmdPutUser, "root", broker.User{Name: "mallory", Role: broker.RoleAdmin}))
	for _, secret := range []string{"", "wrong"} {
		r, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.APIAddr()+"/internal/v1/propose", strings.NewReader(string(b)))
		if secret != "" {
			r.Header.Set(server.SecretHeader, secret)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("secret %q: status %d, want 401", secret, resp.StatusCode)
		}
	}
	l.Server.Read(ctx, true, func(st *broker.State) error {
		if _, ok := st.User("mallory"); ok {
			t.Error("an unauthenticated request changed the state")
		}
		return nil
	})
}

// TestTimedWork runs the leader's jobs against a clock the test moves: a
// lease ends at its expiry and a deferred one starts at its time without
// anyone proposing, and a silent host is marked lost once.
func TestTimedWork(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	c, ctx := testCluster(t, 3, true, func(cfg *server.Config) {
		cfg.Clock = clock
		cfg.HostTimeout = time.Minute
		cfg.ReconcileEvery = 50 * time.Millisecond
	})
	l, _ := c.Leader(ctx)
	addHosts(t, ctx, l.Server, 1, 4)
	rs := propose(t, ctx, l.Server, submit(t, "ada", req("now", "physics", 1, 4, time.Hour), req("later", "physics", 1, 4, time.Hour))).([]broker.SubmitResult)
	if rs[0].Lease.State != lease.StateStarting || rs[1].Lease.State != lease.StateDeferred {
		t.Fatalf("got %s and %s, want starting and deferred", rs[0].Lease.State, rs[1].Lease.State)
	}
	stateOf := func(id lease.ID) lease.State {
		var s lease.State
		l.Server.Read(ctx, false, func(st *broker.State) error {
			if x, ok := st.Lease(id); ok {
				s = x.State
			}
			return nil
		})
		return s
	}
	// Heartbeats keep the host up while time moves on.
	beat := func() {
		propose(t, ctx, l.Server, command(t, broker.CmdHeartbeat, "h00", broker.Name{Name: "h00"}))
	}
	offset.Store(int64(time.Hour + time.Second))
	beat()
	err := servertest.WaitFor(ctx, func() error {
		if a, b := stateOf("now"), stateOf("later"); a != lease.StateEnded || b != lease.StateStarting {
			return fmt.Errorf("now is %s and later is %s, want ended and starting", a, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(time.Hour + 3*time.Minute))
	err = servertest.WaitFor(ctx, func() error {
		var h broker.Host
		l.Server.Read(ctx, false, func(st *broker.State) error { h = st.Hosts()[0]; return nil })
		if h.State != broker.HostLost {
			return fmt.Errorf("host is %s, want lost", h.State)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	lines := auditLines(t, filepath.Join(l.DataDir(), "audit.log"))
	lost := 0
	for _, a := range lines {
		if a["command"] == "host-lost" {
			lost++
		}
	}
	if lost != 1 {
		t.Errorf("%d host-lost commands, want 1", lost)
	}
}

func auditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestAuditLog: every node writes one line per applied command, the same
// lines on every node, with who, what, when and how it ended.
func TestAuditLog(t *testing.T) {
	c, ctx := testCluster(t, 3, true, func(cfg *server.Config) { cfg.AdvanceEvery = time.Hour })
	l, _ := c.Leader(ctx)
	addHosts(t, ctx, l.Server, 1, 8)
	propose(t, ctx, l.Server, submit(t, "ada", req("a1", "physics", 1, 2, time.Hour)))
	if _, err := l.Server.Propose(ctx, command(t, broker.CmdRelease, "bob", broker.Release{ID: "zz"})); lease.ErrorCode(err) != lease.ENOTFOUND {
		t.Fatalf("release unknown: %v", err)
	}
	if err := c.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	var first []map[string]any
	for _, n := range c.Nodes {
		lines := auditLines(t, filepath.Join(n.DataDir(), "audit.log"))
		if first == nil {
			first = lines
		} else if diff := cmp.Diff(first, lines); diff != "" {
			t.Errorf("%s's audit log differs from %s's (-first +this):\n%s", n.ID, c.Nodes[0].ID, diff)
		}
	}
	find := func(command, actor string) map[string]any {
		for _, a := range first {
			if a["command"] == command && a["actor"] == actor {
				return a
			}
		}
		t.Fatalf("no audit line for %s by %s in %v", command, actor, first)
		return nil
	}
	sub := find("submit", "ada")
	if sub["result"] != "ok" || sub["at"] == nil || sub["index"] == nil || fmt.Sprint(sub["leases"]) != "[a1]" {
		t.Errorf("submit line = %v, want result ok, at, index and leases [a1]", sub)
	}
	if rel := find("release", "bob"); rel["result"] != lease.ENOTFOUND {
		t.Errorf("release line = %v, want result %s", rel, lease.ENOTFOUND)
	}
}

// TestMetrics exposes the Raft and proposal collectors.
func TestMetrics(t *testing.T) {
	c, ctx := testCluster(t, 1, true, nil)
	l, _ := c.Leader(ctx)
	propose(t, ctx, l.Server, submit(t, "ada", req("m1", "physics", 1, 1, time.Hour)))
	mfs, err := l.Server.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				got[mf.GetName()] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()] = float64(m.GetHistogram().GetSampleCount())
			case m.GetCounter() != nil:
				got[mf.GetName()] += m.GetCounter().GetValue()
			}
		}
	}
	for _, name := range []string{"fairlease_raft_is_leader", "fairlease_raft_term", "fairlease_raft_applied_index",
		"fairlease_raft_commit_seconds", "fairlease_proposals_total", "fairlease_submit_batch_requests"} {
		if got[name] < 1 {
			t.Errorf("%s = %v, want at least 1", name, got[name])
		}
	}
}

// TestBootstrapListedPeers starts three nodes that all bootstrap the same
// listed configuration: they elect one leader and replicate.
func TestBootstrapListedPeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := []string{"a", "b", "c"}
	var peers []server.Peer
	trans := map[string]*raft.InmemTransport{}
	for _, id := range ids {
		_, tr := raft.NewInmemTransport(raft.ServerAddress(id))
		trans[id] = tr
		peers = append(peers, server.Peer{ID: id, RaftAddr: id})
	}
	for _, a := range ids {
		for _, b := range ids {
			if a != b {
				trans[a].Connect(raft.ServerAddress(b), trans[b])
			}
		}
	}
	var nodes []*server.Server
	for _, id := range ids {
		cfg := server.TestConfig(t, id)
		cfg.Transport, cfg.Bootstrap, cfg.Peers = trans[id], true, peers
		s, err := server.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes = append(nodes, s)
	}
	var leader *server.Server
	err := servertest.WaitFor(ctx, func() error {
		leader = nil
		for _, s := range nodes {
			if s.IsLeader() {
				leader = s
			}
		}
		if leader == nil {
			return errors.New("no leader")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	propose(t, ctx, leader, command(t, broker.CmdPutUser, "root", broker.User{Name: "ada", Group: "g", Role: broker.RoleUser}))
	err = servertest.WaitFor(ctx, func() error {
		for _, s := range nodes {
			var ok bool
			s.Read(ctx, false, func(st *broker.State) error { _, ok = st.User("ada"); return nil })
			if !ok {
				return fmt.Errorf("%s lacks the user", s.ID())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := nodes[0].Status(ctx)
	if err != nil || len(st.Members) != 3 {
		t.Errorf("status = %+v, %v; want 3 members", st, err)
	}
}
