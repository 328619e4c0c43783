package broker

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/lease"
)

var update = flag.Bool("update", false, "rewrite testdata fixtures")

var t0 = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

func cmd(t testing.TB, typ CommandType, at time.Duration, actor string, body any) Command {
	t.Helper()
	c, err := NewCommand(typ, t0.Add(at), actor, body)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func req(id string, group lease.GroupID, n, cores int, d time.Duration) lease.Request {
	return lease.Request{ID: lease.ID(id), Group: group, User: "u", Count: n, Shape: lease.Shape{Cores: cores, MemoryMiB: int64(cores) * 2048}, Duration: d, AllOrNothing: true}
}

// script is a log that exercises every command type.
func script(t testing.TB) []Command {
	h := sha256.Sum256([]byte("secret"))
	return []Command{
		cmd(t, CmdPutNode, 0, "system", Node{ID: "n1", RaftAddr: "127.0.0.1:7001", APIAddr: "127.0.0.1:7401"}),
		cmd(t, CmdPutUser, 0, "system", User{Name: "root", Role: RoleAdmin}),
		cmd(t, CmdPutUser, 0, "root", User{Name: "ada", Group: "physics", Role: RoleUser}),
		cmd(t, CmdPutUser, 0, "root", User{Name: "bob", Group: "biology", Role: RoleManager}),
		cmd(t, CmdPutToken, 0, "root", Token{ID: "t1", User: "ada", Hash: h[:]}),
		cmd(t, CmdPutHost, 0, "system", Host{Name: "h1", Capacity: lease.Resources{Cores: 8, MemoryMiB: 32768}}),
		cmd(t, CmdPutHost, 0, "system", Host{Name: "h2", Capacity: lease.Resources{Cores: 8, MemoryMiB: 32768}}),
		cmd(t, CmdSetGroup, time.Second, "root", SetGroup{Group: "physics", Weight: 2}),
		cmd(t, CmdSubmit, time.Minute, "ada", Submit{Requests: []lease.Request{req("a1", "physics", 3, 2, time.Hour), req("a2", "physics", 2, 4, 2*time.Hour)}}),
		cmd(t, CmdSubmit, 2*time.Minute, "bob", Submit{Requests: []lease.Request{req("b1", "biology", 4, 2, time.Hour), req("b2", "biology", 100, 1, time.Hour)}}),
		cmd(t, CmdLeaseState, 3*time.Minute, "h1", LeaseStateChange{ID: "a1", State: lease.StateRunning}),
		cmd(t, CmdHeartbeat, 4*time.Minute, "h1", Name{Name: "h1"}),
		cmd(t, CmdRelease, 30*time.Minute, "ada", Release{ID: "a1"}),
		cmd(t, CmdAdvance, 90*time.Minute, "system", struct{}{}),
		cmd(t, CmdHostLost, 91*time.Minute, "system", Name{Name: "h2"}),
		cmd(t, CmdRevokeToken, 92*time.Minute, "root", Name{Name: "t1"}),
		cmd(t, CmdSetPolicy, 93*time.Minute, "root", SetPolicy{Text: "reserve = 0.1\n[groups.physics]\nweight = 3\n"}),
		cmd(t, CmdSubmit, 94*time.Minute, "ada", Submit{Requests: []lease.Request{req("a3", "physics", 1, 1, time.Hour)}}),
		cmd(t, CmdAdvance, 3*time.Hour, "system", struct{}{}),
	}
}

func applyAll(t testing.TB, s *State, log []Command, from uint64) {
	t.Helper()
	for i, c := range log {
		// Encode and decode, as the log does.
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		s.Apply(from+uint64(i), back)
	}
}

func snapshot(t testing.TB, s *State) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestLifecycle(t *testing.T) {
	s := NewState()
	log := script(t)
	applyAll(t, s, log[:10], 1)
	states := func() map[lease.ID]lease.State {
		out := map[lease.ID]lease.State{}
		for _, l := range s.Leases(nil) {
			out[l.ID] = l.State
		}
		return out
	}
	want := map[lease.ID]lease.State{
		"a1": lease.StateStarting, "a2": lease.StateStarting, // 6 + 8 cores of 16
		"b1": lease.StateDeferred, // 8 more cores: waits for a1 or a2
		"b2": lease.StateRejected, // 100 VMs: larger than the site
	}
	if diff := cmp.Diff(want, states()); diff != "" {
		t.Fatalf("after the submits (-want +got):\n%s", diff)
	}
	if l, _ := s.Lease("a1"); len(l.VMs) != 3 || l.VMs[0].Address == "" || l.VMs[0].Host == "" || l.VMs[0].Name != "a1-0" {
		t.Errorf("a1's VMs: got %+v, want 3 named, addressed and placed", l.VMs)
	}
	if l, _ := s.Lease("b2"); l.EndReason != string(lease.ReasonTooLarge) {
		t.Errorf("b2: end reason %q, want %q", l.EndReason, lease.ReasonTooLarge)
	}
	applyAll(t, s, log[10:13], 11)
	got := states()
	if got["a1"] != lease.StateEnded || got["b1"] != lease.StateStarting {
		t.Errorf("after releasing a1: a1 %s, b1 %s; want ended, starting (b1 takes the freed cores)", got["a1"], got["b1"])
	}
	applyAll(t, s, log[13:], 14)
	if l, _ := s.Lease("a2"); l.State != lease.StateEnded || l.EndReason != "expired" {
		t.Errorf("a2 after its 2 h: %s (%s), want ended (expired)", l.State, l.EndReason)
	}
	if _, ok := s.Token("t1"); ok {
		t.Error("token t1 still there after its revocation")
	}
	if w := s.Policy().Groups["physics"].Weight; w != 3 {
		t.Errorf("physics weight after set-policy: %v, want 3", w)
	}
}

func TestApplyErrors(t *testing.T) {
	s := NewState()
	applyAll(t, s, script(t)[:10], 1)
	before := snapshot(t, s)
	tests := map[string]struct {
		c        Command
		wantCode string
	}{
		"release unknown":     {cmd(t, CmdRelease, time.Hour, "ada", Release{ID: "nope"}), lease.ENOTFOUND},
		"release rejected":    {cmd(t, CmdRelease, time.Hour, "ada", Release{ID: "b2"}), lease.ECONFLICT},
		"running twice":       {cmd(t, CmdLeaseState, time.Hour, "h1", LeaseStateChange{ID: "b2", State: lease.StateRunning}), lease.ECONFLICT},
		"bad lease state":     {cmd(t, CmdLeaseState, time.Hour, "h1", LeaseStateChange{ID: "a1", State: lease.StateEnded}), lease.EINVALID},
		"user without role":   {cmd(t, CmdPutUser, time.Hour, "root", User{Name: "x", Group: "g", Role: "boss"}), lease.EINVALID},
		"user without group":  {cmd(t, CmdPutUser, time.Hour, "root", User{Name: "x", Role: RoleUser}), lease.EINVALID},
		"token short hash":    {cmd(t, CmdPutToken, time.Hour, "root", Token{ID: "t9", User: "ada", Hash: []byte{1}}), lease.EINVALID},
		"token unknown user":  {cmd(t, CmdPutToken, time.Hour, "root", Token{ID: "t9", User: "zed", Hash: make([]byte, 32)}), lease.ENOTFOUND},
		"host twice, changed": {cmd(t, CmdPutHost, time.Hour, "system", Host{Name: "h1", Capacity: lease.Resources{Cores: 4}}), lease.ECONFLICT},
		"host zero cores":     {cmd(t, CmdPutHost, time.Hour, "system", Host{Name: "h9"}), lease.EINVALID},
		"remove busy host":    {cmd(t, CmdRemoveHost, time.Hour, "root", Name{Name: "h1"}), lease.ECONFLICT},
		"bad policy":          {cmd(t, CmdSetPolicy, time.Hour, "root", SetPolicy{Text: "reserve = 2\n"}), lease.EINVALID},
		"negative weight":     {cmd(t, CmdSetGroup, time.Hour, "root", SetGroup{Group: "g", Weight: -1}), lease.EINVALID},
		"unknown parent":      {cmd(t, CmdSetGroup, time.Hour, "root", SetGroup{Group: "g", Parent: "nowhere"}), lease.EINVALID},
		"heartbeat unknown":   {cmd(t, CmdHeartbeat, time.Hour, "h9", Name{Name: "h9"}), lease.ENOTFOUND},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			st, err := ReadSnapshot(bytes.NewReader(before))
			if err != nil {
				t.Fatal(err)
			}
			idx := st.Index() + 1
			_, err = st.Apply(idx, tt.c)
			if got := lease.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("Apply: got %v (code %q), want code %q", err, got, tt.wantCode)
			}
			// A refused command changes nothing but the clock and index.
			st2, _ := ReadSnapshot(bytes.NewReader(before))
			st2.Apply(idx, cmd(t, CmdHeartbeat, time.Hour, "nobody", Name{Name: "-"}))
			if !bytes.Equal(snapshot(t, st), snapshot(t, st2)) {
				t.Errorf("a refused %s changed the state", tt.c.Type)
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	a, b := NewState(), NewState()
	applyAll(t, a, script(t), 1)
	applyAll(t, b, script(t), 1)
	if !bytes.Equal(snapshot(t, a), snapshot(t, b)) {
		t.Fatal("two states applying the same log wrote different snapshots")
	}
}

// TestSnapshotRestore: at every point of the log, a state restored from a
// snapshot writes the same snapshot and, given the rest of the log, ends
// where the original ends.
func TestSnapshotRestore(t *testing.T) {
	log := script(t)
	full := NewState()
	applyAll(t, full, log, 1)
	want := snapshot(t, full)
	for cut := 0; cut <= len(log); cut++ {
		s := NewState()
		applyAll(t, s, log[:cut], 1)
		snap := snapshot(t, s)
		r, err := ReadSnapshot(bytes.NewReader(snap))
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if got := snapshot(t, r); !bytes.Equal(got, snap) {
			t.Fatalf("cut %d: the restored state writes another snapshot", cut)
		}
		applyAll(t, r, log[cut:], uint64(cut)+1)
		if got := snapshot(t, r); !bytes.Equal(got, want) {
			t.Fatalf("cut %d: restored and continued, the state differs from the straight one", cut)
		}
	}
}

// TestSnapshotFixtures restores every snapshot written by an earlier
// version: every later version must read them.
func TestSnapshotFixtures(t *testing.T) {
	path := filepath.Join("testdata", fmt.Sprintf("snapshot-v%d.bin", SnapshotVersion))
	if *update {
		s := NewState()
		applyAll(t, s, script(t), 1)
		if err := os.WriteFile(path, snapshot(t, s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob("testdata/snapshot-v*.bin")
	if len(files) == 0 {
		t.Fatal("no snapshot fixtures in testdata (run go test ./broker -run Fixtures -update)")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ReadSnapshot(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if s.Index() == 0 || len(s.Leases(nil)) == 0 || len(s.Users()) == 0 || len(s.Hosts()) == 0 {
			t.Errorf("%s: restored state is empty (index %d, %d leases)", f, s.Index(), len(s.Leases(nil)))
		}
		// It must still work: a new request is decided.
		res, err := s.Apply(s.Index()+1, cmd(t, CmdSubmit, 5*time.Hour, "ada", Submit{Requests: []lease.Request{req("new", "physics", 1, 1, time.Hour)}}))
		if err != nil || res.([]SubmitResult)[0].Lease.State != lease.StateStarting {
			t.Errorf("%s: a request after restore: %+v, %v; want it started", f, res, err)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	s := NewState()
	if _, err := s.Apply(1, Command{Type: 99 | IgnoreUnknownFlag, Time: t0}); err != nil {
		t.Errorf("an ignorable unknown command: got %v, want it skipped", err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "unknown to this version") {
			t.Errorf("an unknown command: got panic %v, want one saying to upgrade", r)
		}
	}()
	s.Apply(2, Command{Type: 99, Time: t0})
}

func TestEncodeDecode(t *testing.T) {
	c := cmd(t, CmdSubmit, time.Minute, "ada", Submit{Requests: []lease.Request{req("a1", "physics", 3, 2, time.Hour)}})
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	b[0] = byte(CmdRelease)
	if _, err := Decode(b); err == nil {
		t.Error("Decode of a header that disagrees with the body: got nil error")
	}
	if _, err := Decode(nil); err == nil {
		t.Error("Decode(nil): got nil error")
	}
}

func TestTimeNeverRunsBack(t *testing.T) {
	s := NewState()
	s.Apply(1, cmd(t, CmdHeartbeat, time.Hour, "x", Name{Name: "-"}))
	s.Apply(2, cmd(t, CmdHeartbeat, time.Minute, "x", Name{Name: "-"}))
	if got := s.Now(); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("Now after an older command: got %s, want %s", got, t0.Add(time.Hour))
	}
}
