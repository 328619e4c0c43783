package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/server"
	"github.com/fairlease/fairlease/broker/server/bench"
	"github.com/fairlease/fairlease/broker/server/servertest"
	"github.com/fairlease/fairlease/lease"
)

// testCluster starts n nodes with test timings; tune adjusts each config.
// The context bounds the whole test.
func testCluster(t *testing.T, n int, inmem bool, tune func(*server.Config)) (*servertest.Cluster, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	c, err := servertest.Start(ctx, servertest.Options{Nodes: n, Dir: t.TempDir(), InMem: inmem, Config: func(id string) server.Config {
		cfg := server.TestConfig(t, id)
		if tune != nil {
			tune(&cfg)
		}
		return cfg
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, ctx
}

func command(t testing.TB, typ broker.CommandType, actor string, body any) broker.Command {
	t.Helper()
	c, err := broker.NewCommand(typ, time.Time{}, actor, body)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func req(id string, group lease.GroupID, n, cores int, d time.Duration) lease.Request {
	return lease.Request{ID: lease.ID(id), Group: group, User: "u", Count: n,
		Shape: lease.Shape{Cores: cores, MemoryMiB: int64(cores) * 1024}, Duration: d, AllOrNothing: true}
}

func submit(t testing.TB, actor string, reqs ...lease.Request) broker.Command {
	return command(t, broker.CmdSubmit, actor, broker.Submit{Requests: reqs})
}

func propose(t testing.TB, ctx context.Context, s *server.Server, c broker.Command) any {
	t.Helper()
	res, err := s.Propose(ctx, c)
	if err != nil {
		t.Fatalf("propose %s: %v", c.Type, err)
	}
	return res
}

// submitOnce submits lease id through whichever node leads. Two of three
// nodes on a loaded machine may change leaders mid-test; a submit whose
// outcome is then unknown is checked on the new leader before it is sent
// again, so that it applies exactly once.
func submitOnce(t testing.TB, ctx context.Context, c *servertest.Cluster, id string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		l, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.Server.Propose(ctx, submit(t, "ada", req(id, "physics", 1, 1, time.Hour)))
		if err == nil {
			return
		}
		if attempt == 5 || !(errors.Is(err, server.ErrUnknownOutcome) || errors.Is(err, server.ErrNotLeader)) {
			t.Fatalf("submit %s: %v", id, err)
		}
		l, err = c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var applied bool
		if err := l.Server.Read(ctx, true, func(st *broker.State) error {
			_, applied = st.Lease(lease.ID(id))
			return nil
		}); err == nil && applied {
			return
		}
	}
}

func addHosts(t testing.TB, ctx context.Context, s *server.Server, n int, cores int64) {
	t.Helper()
	for i := range n {
		propose(t, ctx, s, command(t, broker.CmdPutHost, "admin", broker.Host{
			Name: fmt.Sprintf("h%02d", i), Capacity: lease.Resources{Cores: cores, MemoryMiB: cores * 4096}}))
	}
}

func snapshotOf(t testing.TB, ctx context.Context, s *server.Server) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Read(ctx, false, func(st *broker.State) error { return st.Snapshot(&buf) }); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkReplicas waits until every running node holds the same state (work
// still in flight when the load stopped may land a little later), then
// checks that they hold every lease in acked and a sound calendar.
func checkReplicas(t *testing.T, ctx context.Context, c *servertest.Cluster, acked []lease.ID) {
	t.Helper()
	if err := c.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	err := servertest.WaitFor(ctx, func() error {
		var first []byte
		var firstID string
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			snap := snapshotOf(t, ctx, n.Server)
			if first == nil {
				first, firstID = snap, n.ID
			} else if !bytes.Equal(first, snap) {
				return fmt.Errorf("%s's state differs from %s's (%d and %d bytes of snapshot)", n.ID, firstID, len(snap), len(first))
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		err := n.Server.Read(ctx, false, func(st *broker.State) error {
			missing := 0
			for _, id := range acked {
				if _, ok := st.Lease(id); !ok {
					missing++
				}
			}
			if missing > 0 {
				t.Errorf("%s lacks %d of %d acknowledged leases", n.ID, missing, len(acked))
			}
			if err := st.CheckCalendar(); err != nil {
				t.Errorf("%s: calendar: %v", n.ID, err)
			}
			if k := bench.Overcommitted(st); k > 0 {
				t.Errorf("%s: %d overcommitted instants", n.ID, k)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestClusterFormsAndApplies runs three nodes over TCP loopback: they
// elect a leader, see each other as members, and apply the same commands.
func TestClusterFormsAndApplies(t *testing.T) {
	c, ctx := testCluster(t, 3, false, nil)
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addHosts(t, ctx, l.Server, 2, 8)
	res := propose(t, ctx, l.Server, submit(t, "ada", req("a1", "physics", 2, 2, time.Hour), req("a2", "physics", 8, 2, time.Hour)))
	rs := res.([]broker.SubmitResult)
	if len(rs) != 2 || rs[0].Lease == nil || rs[0].Lease.State != lease.StateStarting || rs[1].Lease == nil || rs[1].Lease.State != lease.StateDeferred {
		t.Fatalf("submit results = %+v, want a1 starting and a2 deferred", rs)
	}
	checkReplicas(t, ctx, c, []lease.ID{"a1", "a2"})
	for _, n := range c.Nodes {
		st, err := n.Server.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Self != n.ID || st.Leader != l.ID || len(st.Members) != 3 {
			t.Errorf("%s status = %+v, want itself, leader %s and 3 members", n.ID, st, l.ID)
		}
		for _, m := range st.Members {
			if !m.Voter || m.APIAddr == "" || m.Leader != (m.ID == l.ID) {
				t.Errorf("%s sees member %+v: want a voter with an API address, leader only if %s", n.ID, m, l.ID)
			}
		}
	}
}

// TestLeaderLossDuringSubmissions kills the leader while submissions
// stream in through every node: afterwards every acknowledged lease is on
// every node, the replicas agree, and no host is overcommitted.
func TestLeaderLossDuringSubmissions(t *testing.T) {
	c, ctx := testCluster(t, 3, true, nil)
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A small site, so that requests also get deferred and rejected and
	// the calendar has work to do.
	addHosts(t, ctx, l.Server, 4, 16)

	var (
		mu     sync.Mutex
		acked  []lease.ID
		seq    atomic.Int64
		nodeMu sync.RWMutex
	)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	loadCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; loadCtx.Err() == nil; k++ {
				nodeMu.RLock()
				n := c.Nodes[k%len(c.Nodes)]
				s := n.Server
				nodeMu.RUnlock()
				if s == nil {
					continue
				}
				i := seq.Add(1)
				r := req(fmt.Sprintf("l%05d", i), lease.GroupID(fmt.Sprintf("g%d", i%3)), 1+int(i%3), 1+int(i%4), time.Duration(1+i%5)*time.Hour)
				pctx, cancel := context.WithTimeout(loadCtx, 5*time.Second)
				res, err := s.Propose(pctx, submit(t, fmt.Sprintf("user%d", w), r))
				cancel()
				if rs, _ := res.([]broker.SubmitResult); err == nil && len(rs) == 1 && rs[0].Lease != nil {
					mu.Lock()
					acked = append(acked, rs[0].Lease.ID)
					mu.Unlock()
				}
			}
		}()
	}
	waitMore := func(n int) {
		t.Helper()
		want := count() + n
		if err := servertest.WaitFor(ctx, func() error {
			if got := count(); got < want {
				return fmt.Errorf("%d acknowledged, want %d", got, want)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitMore(100)
	idx := slices.Index(c.Nodes, l)
	nodeMu.Lock()
	err = c.Stop(idx)
	nodeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitMore(100)
	nl, err := c.Leader(ctx)
	if err != nil || nl == l {
		t.Fatalf("after killing %s the leader is %v (%v)", l.ID, nl, err)
	}
	nodeMu.Lock()
	err = c.Restart(idx)
	nodeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitMore(100)
	stop()
	wg.Wait()
	t.Logf("%d leases acknowledged across the loss of %s", len(acked), l.ID)
	checkReplicas(t, ctx, c, acked)
}

// TestFollowerCatchesUpFromSnapshot stops a follower, lets the leader
// compact its log past what the follower has, and restarts it: it catches
// up by installing the leader's snapshot.
func TestFollowerCatchesUpFromSnapshot(t *testing.T) {
	c, ctx := testCluster(t, 3, true, func(cfg *server.Config) {
		cfg.SnapshotThreshold = 16
		cfg.TrailingLogs = 4
	})
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addHosts(t, ctx, l.Server, 2, 64)
	f := c.Followers()[0]
	fi := slices.Index(c.Nodes, f)
	if err := c.Stop(fi); err != nil {
		t.Fatal(err)
	}
	var acked []lease.ID
	for i := range 60 {
		id := fmt.Sprintf("s%03d", i)
		submitOnce(t, ctx, c, id)
		acked = append(acked, lease.ID(id))
	}
	// Every running node compacts its log, so that whichever leads when
	// the follower returns no longer has the entries it lacks.
	if err := c.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		if n.Running() {
			if err := n.Server.Raft().Snapshot().Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	snapIndex := l.Server.Raft().AppliedIndex()
	if err := c.Restart(fi); err != nil {
		t.Fatal(err)
	}
	checkReplicas(t, ctx, c, acked)
	// Raft records the installed snapshot just after the FSM restores it.
	err = servertest.WaitFor(ctx, func() error {
		var installed uint64
		fmt.Sscan(f.Server.Raft().Stats()["last_snapshot_index"], &installed)
		if installed+4 < snapIndex {
			return fmt.Errorf("%s's last snapshot is at %d, want the leader's (about %d): it did not catch up by snapshot", f.ID, installed, snapIndex)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestSnapshotRestartRestores restarts every node of a cluster whose state
// is in snapshots and logs: the state after restart equals the one before.
func TestSnapshotRestartRestores(t *testing.T) {
	c, ctx := testCluster(t, 3, false, func(cfg *server.Config) { cfg.SnapshotThreshold = 8; cfg.TrailingLogs = 2 })
	l, _ := c.Leader(ctx)
	addHosts(t, ctx, l.Server, 3, 8)
	for i := range 30 {
		propose(t, ctx, l.Server, submit(t, "ada", req(fmt.Sprintf("r%02d", i), "physics", 1+i%3, 2, time.Hour)))
	}
	if err := c.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Server.Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	before := snapshotOf(t, ctx, l.Server)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes {
		if err := c.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Leader(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		err := servertest.WaitFor(ctx, func() error {
			if after := snapshotOf(t, ctx, n.Server); !bytes.Equal(before, after) {
				return fmt.Errorf("%s restored a different state (%d bytes, want %d)", n.ID, len(after), len(before))
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
}

// TestLogReplayIsDeterministic replays a node's Raft log from its BoltDB
// into two fresh states: both give the node's own snapshot, byte for byte.
func TestLogReplayIsDeterministic(t *testing.T) {
	c, ctx := testCluster(t, 3, false, nil)
	l, _ := c.Leader(ctx)
	addHosts(t, ctx, l.Server, 3, 8)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				id := fmt.Sprintf("d%d-%02d", w, i)
				l.Server.Propose(ctx, submit(t, fmt.Sprintf("user%d", w), req(id, lease.GroupID(fmt.Sprintf("g%d", w%2)), 1+i%3, 2, time.Duration(1+i%4)*time.Hour)))
				if i%7 == 0 {
					l.Server.Propose(ctx, command(t, broker.CmdRelease, fmt.Sprintf("user%d", w), broker.Release{ID: lease.ID(id)}))
				}
			}
		}()
	}
	wg.Wait()
	propose(t, ctx, l.Server, command(t, broker.CmdSetGroup, "admin", broker.SetGroup{Group: "g1", Weight: 3}))
	if err := c.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	want := snapshotOf(t, ctx, l.Server)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		db := filepath.Join(n.DataDir(), "raft.db")
		for run := range 2 {
			if got := replay(t, db); !bytes.Equal(got, want) {
				t.Errorf("replay %d of %s's log gives a %d-byte snapshot that differs from the leader's %d bytes", run+1, n.ID, len(got), len(want))
			}
		}
	}
}

// replay applies the command entries of a node's log to a fresh state.
func replay(t *testing.T, dbPath string) []byte {
	t.Helper()
	store, err := raftboltdb.New(raftboltdb.Options{Path: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	st := broker.NewState()
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		cs, err := server.DecodeEntry(l.Data)
		if err != nil {
			t.Fatal(err)
		}
		for k, c := range cs {
			index := l.Index
			if k > 0 {
				index = 0 // a batch's later commands, as the FSM applies them
			}
			st.Apply(index, c)
		}
	}
	var buf bytes.Buffer
	if err := st.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
