package broker

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/lease"
)

const overflowPolicy = `
[groups.physics.overflow]
sites = ["partner"]
budget_core_hours = -1
`

// fedScript is a log that exercises the EC2 API's and overflow's commands.
func fedScript(t testing.TB) []Command {
	big := req("x1", "physics", 20, 1, time.Hour)
	big.StartBy = t0.Add(10 * time.Minute)
	return []Command{
		cmd(t, CmdPutUser, 0, "system", User{Name: "root", Role: RoleAdmin}),
		cmd(t, CmdPutUser, 0, "root", User{Name: "ada", Group: "physics", Role: RoleUser}),
		cmd(t, CmdPutHost, 0, "system", Host{Name: "h1", Capacity: lease.Resources{Cores: 8, MemoryMiB: 32768}}),
		cmd(t, CmdPutHost, 0, "system", Host{Name: "h2", Capacity: lease.Resources{Cores: 8, MemoryMiB: 32768}}),
		cmd(t, CmdSetPolicy, 0, "root", SetPolicy{Text: overflowPolicy}),
		cmd(t, CmdPutAccessKey, time.Second, "root", AccessKey{ID: "AKIAEXAMPLE000000001", User: "ada", Secret: "0123456789abcdef0123456789abcdef"}),
		cmd(t, CmdPutKeyPair, time.Second, "ada", KeyPair{ID: "key-0123456789abcdef0", User: "ada", Name: "laptop", Type: "ed25519", Fingerprint: "SHA256:x", PublicKey: "ssh-ed25519 AAAA ada"}),
		cmd(t, CmdPutSite, time.Second, "root", Site{Name: "partner", Region: "eu-1", Endpoint: "http://127.0.0.1:8773", AccessKeyID: "AKIAPARTNER", Secret: "s3cret", CostPerCoreHour: 0.05}),
		cmd(t, CmdSubmit, time.Minute, "ada", Submit{
			Requests: []lease.Request{req("e1", "physics", 2, 1, time.Hour)},
			Launches: []*Launch{{ClientToken: "tok-1", Params: "p1", Reservation: "r-1", Tags: map[string]string{"Name": "mpi"}}},
		}),
		// The same call again: the same lease, nothing new.
		cmd(t, CmdSubmit, 2*time.Minute, "ada", Submit{
			Requests: []lease.Request{req("e2", "physics", 2, 1, time.Hour)},
			Launches: []*Launch{{ClientToken: "tok-1", Params: "p1", Reservation: "r-2"}},
		}),
		cmd(t, CmdTags, 3*time.Minute, "ada", TagChange{Resources: []string{InstanceID("e1", 1)}, Tags: []Tag{{Key: "role", Value: "head"}}}),
		cmd(t, CmdSubmit, 4*time.Minute, "ada", Submit{Requests: []lease.Request{big}}),
		cmd(t, CmdRemoteAttempt, 5*time.Minute, "system", RemoteStep{ID: "x1", Site: "partner", Token: AttemptToken("b", "x1", 0)}),
		cmd(t, CmdRemoteFailed, 5*time.Minute, "system", RemoteStep{ID: "x1", Site: "partner", Error: "connection reset"}),
		cmd(t, CmdRemoteAttempt, 6*time.Minute, "system", RemoteStep{ID: "x1", Site: "partner", Token: AttemptToken("b", "x1", 0)}),
		cmd(t, CmdRemoteLaunched, 7*time.Minute, "system", RemoteStep{ID: "x1", Site: "partner", Instances: instances(20)}),
		cmd(t, CmdAdvance, 2*time.Hour, "system", struct{}{}),
		cmd(t, CmdRemoteEnded, 2*time.Hour+time.Minute, "system", RemoteStep{ID: "x1", Site: "partner"}),
		cmd(t, CmdRevokeAccessKey, 3*time.Hour, "root", Name{Name: "AKIAEXAMPLE000000001"}),
		cmd(t, CmdDelKeyPair, 3*time.Hour, "ada", KeyPairRef{User: "ada", Name: "laptop"}),
	}
}

func instances(n int) []RemoteInstance {
	out := make([]RemoteInstance, n)
	for i := range out {
		out[i] = RemoteInstance{ID: "i-remote" + itoa(i), Address: "192.0.2." + itoa(i+1)}
	}
	return out
}

func apply1(t *testing.T, s *State, c Command) (any, error) {
	t.Helper()
	return s.Apply(s.Index()+1, c)
}

func TestClientTokens(t *testing.T) {
	s := NewState()
	log := fedScript(t)
	applyAll(t, s, log[:8], 1)
	res, err := apply1(t, s, log[8])
	if err != nil {
		t.Fatal(err)
	}
	first := res.([]SubmitResult)[0]
	res, _ = apply1(t, s, log[9])
	again := res.([]SubmitResult)[0]
	if !again.Replayed || again.Lease == nil || again.Lease.ID != first.Lease.ID {
		t.Fatalf("the same client token again: %+v; want lease %s replayed", again, first.Lease.ID)
	}
	if _, ok := s.Lease("e2"); ok {
		t.Error("a replayed call made a second lease")
	}
	if got := s.Tags(InstanceID("e1", 0)); !cmp.Equal(got, map[string]string{"Name": "mpi"}) {
		t.Errorf("tags from the launch on instance 0: %v", got)
	}
	before := snapshot(t, s)
	res, _ = apply1(t, s, cmd(t, CmdSubmit, 3*time.Minute, "ada", Submit{
		Requests: []lease.Request{req("e3", "physics", 1, 1, time.Hour)},
		Launches: []*Launch{{ClientToken: "tok-1", Params: "other"}},
	}))
	if e := res.([]SubmitResult)[0].Error; e == nil || e.Code != lease.ECONFLICT || e.Field != "client_token" {
		t.Errorf("token reused with other parameters: %+v, want a conflict on client_token", e)
	}
	// Only the index moved: no lease, no token.
	s2, _ := ReadSnapshot(bytes.NewReader(before))
	if _, ok := s.Lease("e3"); ok || len(s.Leases(nil)) != len(s2.Leases(nil)) {
		t.Error("a refused call left a lease behind")
	}
	// Another user's same token is theirs.
	apply1(t, s, cmd(t, CmdPutUser, 4*time.Minute, "root", User{Name: "bea", Group: "physics", Role: RoleUser}))
	res, _ = apply1(t, s, cmd(t, CmdSubmit, 4*time.Minute, "bea", Submit{
		Requests: []lease.Request{req("e4", "physics", 1, 1, time.Hour)},
		Launches: []*Launch{{ClientToken: "tok-1", Params: "p1"}},
	}))
	if r := res.([]SubmitResult)[0]; r.Replayed || r.Lease == nil || r.Lease.ID != "e4" {
		t.Errorf("another user's call with the same token: %+v, want a new lease e4", r)
	}
}

func TestInstanceIDs(t *testing.T) {
	seen := map[string]bool{}
	for _, id := range []lease.ID{"a", "b", "l-1", "l-10"} {
		for i := range 50 {
			x := InstanceID(id, i)
			if len(x) != 19 || x[:2] != "i-" {
				t.Fatalf("InstanceID(%s, %d) = %q, want i- and 17 hex digits", id, i, x)
			}
			if seen[x] {
				t.Fatalf("InstanceID(%s, %d) = %q twice", id, i, x)
			}
			seen[x] = true
		}
	}
	s := NewState()
	applyAll(t, s, fedScript(t)[:9], 1)
	if r, ok := s.Instance(InstanceID("e1", 1)); !ok || r != (InstanceRef{Lease: "e1", Index: 1}) {
		t.Errorf("Instance(e1/1) = %+v, %v", r, ok)
	}
	if _, ok := s.Instance(InstanceID("e1", 2)); ok {
		t.Error("a lease of 2 VMs resolves a third instance")
	}
}

func TestTagsAndKeys(t *testing.T) {
	s := NewState()
	applyAll(t, s, fedScript(t)[:9], 1)
	inst := InstanceID("e1", 0)
	bad := []struct {
		name string
		c    Command
		code string
	}{
		{"reserved prefix", cmd(t, CmdTags, time.Hour, "ada", TagChange{Resources: []string{inst}, Tags: []Tag{{Key: "aws:x", Value: "1"}}}), lease.EINVALID},
		{"no such resource", cmd(t, CmdTags, time.Hour, "ada", TagChange{Resources: []string{inst, "i-00000000000000000"}, Tags: []Tag{{Key: "k", Value: "v"}}}), lease.ENOTFOUND},
		{"empty key", cmd(t, CmdTags, time.Hour, "ada", TagChange{Resources: []string{inst}, Tags: []Tag{{Key: "", Value: "v"}}}), lease.EINVALID},
		{"duplicate key pair", cmd(t, CmdPutKeyPair, time.Hour, "ada", KeyPair{ID: "key-2", User: "ada", Name: "laptop", PublicKey: "ssh-ed25519 BBBB"}), lease.ECONFLICT},
		{"not a public key", cmd(t, CmdPutKeyPair, time.Hour, "ada", KeyPair{ID: "key-3", User: "ada", Name: "other", PublicKey: "-----BEGIN"}), lease.EINVALID},
		{"short secret", cmd(t, CmdPutAccessKey, time.Hour, "root", AccessKey{ID: "AKIAEXAMPLE000000002", User: "ada", Secret: "short"}), lease.EINVALID},
		{"access key of nobody", cmd(t, CmdPutAccessKey, time.Hour, "root", AccessKey{ID: "AKIAEXAMPLE000000003", User: "zed", Secret: "0123456789abcdef0123"}), lease.ENOTFOUND},
		{"site without keys", cmd(t, CmdPutSite, time.Hour, "root", Site{Name: "aws", Region: "us-east-1"}), lease.EINVALID},
		{"site named local", cmd(t, CmdPutSite, time.Hour, "root", Site{Name: "local", Region: "r", AccessKeyID: "a", Secret: "b"}), lease.EINVALID},
		{"site endpoint not a URL", cmd(t, CmdPutSite, time.Hour, "root", Site{Name: "x", Region: "r", AccessKeyID: "a", Secret: "b", Endpoint: "ftp:/x"}), lease.EINVALID},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			_, err := apply1(t, s, tc.c)
			if got := lease.ErrorCode(err); got != tc.code {
				t.Fatalf("error %v (code %q), want code %q", err, got, tc.code)
			}
			// The refused command changed nothing but the index and clock.
			r, _ := ReadSnapshot(bytes.NewReader(before))
			if !cmp.Equal(r.AccessKeys(""), s.AccessKeys("")) || !cmp.Equal(r.KeyPairs("ada"), s.KeyPairs("ada")) ||
				!cmp.Equal(r.Tags(inst), s.Tags(inst)) || !cmp.Equal(r.Sites(), s.Sites()) {
				t.Error("a refused command changed the state")
			}
		})
	}
	apply1(t, s, cmd(t, CmdTags, time.Hour, "ada", TagChange{Resources: []string{inst}, Tags: []Tag{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}}))
	apply1(t, s, cmd(t, CmdTags, time.Hour, "ada", TagChange{Resources: []string{inst}, Tags: []Tag{{Key: "a", Value: "wrong"}, {Key: "b"}, {Key: "Name", Value: "mpi"}}, Delete: true}))
	if diff := cmp.Diff(map[string]string{"a": "1"}, s.Tags(inst)); diff != "" {
		t.Errorf("after deleting b (any value), Name (its value) and a (another value) (-want +got):\n%s", diff)
	}
	// Removing the user removes their keys.
	apply1(t, s, cmd(t, CmdDeleteUser, time.Hour, "root", Name{Name: "ada"}))
	if len(s.AccessKeys("ada")) != 0 || len(s.KeyPairs("ada")) != 0 {
		t.Errorf("ada removed, her keys remain: %v %v", s.AccessKeys("ada"), s.KeyPairs("ada"))
	}
}

func TestOverflowLifecycle(t *testing.T) {
	s := NewState()
	log := fedScript(t)
	applyAll(t, s, log[:12], 1)
	l, _ := s.Lease("x1")
	if l.State != lease.StateOverflowed || l.Site != "partner" || l.Remote == nil {
		t.Fatalf("x1 (20 cores on a 16-core site, start by 10 min): %s on %q, remote %+v; want overflowed to partner", l.State, l.Site, l.Remote)
	}
	if got := s.Remote(); len(got) != 1 || got[0].ID != "x1" {
		t.Fatalf("Remote() = %v, want x1", got)
	}
	// Once e1 (local) has ended, x1's end is what is due next.
	apply1(t, s, cmd(t, CmdAdvance, time.Hour+2*time.Minute, "system", struct{}{}))
	if next, ok := s.Next(); !ok || !next.Equal(l.End) {
		t.Errorf("Next() = %s %v, want x1's end %s", next, ok, l.End)
	}
	// Instances for an attempt on another site than the last are refused.
	if _, err := apply1(t, s, cmd(t, CmdRemoteLaunched, 5*time.Minute, "system", RemoteStep{ID: "x1", Site: "partner", Instances: instances(20)})); lease.ErrorCode(err) != lease.ECONFLICT {
		t.Errorf("launched without an attempt: %v, want a conflict", err)
	}
	applyAll(t, s, log[12:16], s.Index()+1)
	l, _ = s.Lease("x1")
	if len(l.Remote.Attempts) != 2 || l.Remote.Attempts[0].Error != "connection reset" || len(l.VMs) != 20 || l.VMs[3].Instance != "i-remote3" || l.VMs[3].Host != "partner" {
		t.Fatalf("after two attempts and a launch: %+v, VMs %+v", l.Remote, l.VMs)
	}
	// A second launch cannot be attempted while instances run.
	if _, err := apply1(t, s, cmd(t, CmdRemoteAttempt, 8*time.Minute, "system", RemoteStep{ID: "x1", Site: "partner", Token: "t"})); lease.ErrorCode(err) != lease.ECONFLICT {
		t.Errorf("attempt with instances running: %v, want a conflict", err)
	}
	applyAll(t, s, log[16:17], s.Index()+1) // advance past the end
	l, _ = s.Lease("x1")
	if l.State != lease.StateEnded || l.EndReason != "expired" {
		t.Errorf("x1 after its hour: %s (%s), want ended (expired)", l.State, l.EndReason)
	}
	if len(s.Remote()) != 1 {
		t.Error("an ended lease whose instances are not confirmed gone left the federation's list")
	}
	applyAll(t, s, log[17:18], s.Index()+1)
	if len(s.Remote()) != 0 {
		t.Error("confirmed gone, the lease is still listed as remote")
	}
	if _, ok := s.Next(); ok {
		t.Error("nothing is due, yet Next() says something is")
	}
}

func TestOverflowFailsAndReleases(t *testing.T) {
	s := NewState()
	log := fedScript(t)
	applyAll(t, s, log[:13], 1)
	apply1(t, s, cmd(t, CmdRemoteFailed, 6*time.Minute, "system", RemoteStep{ID: "x1", Site: "partner", Error: "InsufficientInstanceCapacity", Final: true}))
	l, _ := s.Lease("x1")
	if l.State != lease.StateFailed || len(s.Remote()) != 0 {
		t.Errorf("final failure: %s, remote %d; want failed and nothing to clean up", l.State, len(s.Remote()))
	}
	// A user ends an overflowed lease early: ended at once, still listed
	// until its instances are confirmed gone.
	y := req("y1", "physics", 20, 1, time.Hour)
	y.StartBy = t0.Add(20 * time.Minute)
	apply1(t, s, cmd(t, CmdSubmit, 7*time.Minute, "ada", Submit{Requests: []lease.Request{y}}))
	apply1(t, s, cmd(t, CmdRemoteAttempt, 8*time.Minute, "system", RemoteStep{ID: "y1", Site: "partner", Token: "t1"}))
	if _, err := apply1(t, s, cmd(t, CmdRelease, 9*time.Minute, "ada", Release{ID: "y1"})); err != nil {
		t.Fatalf("releasing an overflowed lease: %v", err)
	}
	l, _ = s.Lease("y1")
	if l.State != lease.StateEnded || !l.End.Equal(t0.Add(9*time.Minute)) || len(s.Remote()) != 1 {
		t.Errorf("released: %s until %s, remote %d; want ended at 9 min, still to clean up", l.State, l.End, len(s.Remote()))
	}
	if _, err := apply1(t, s, cmd(t, CmdRemoveSite, 10*time.Minute, "root", Name{Name: "partner"})); lease.ErrorCode(err) != lease.ECONFLICT {
		t.Errorf("removing a site a lease still uses: %v, want a conflict", err)
	}
}

func TestFederationDeterminismAndSnapshots(t *testing.T) {
	log := fedScript(t)
	a, b := NewState(), NewState()
	applyAll(t, a, log, 1)
	applyAll(t, b, log, 1)
	want := snapshot(t, a)
	if !bytes.Equal(want, snapshot(t, b)) {
		t.Fatal("two states applying the same log wrote different snapshots")
	}
	for cut := 0; cut <= len(log); cut++ {
		s := NewState()
		applyAll(t, s, log[:cut], 1)
		r, err := ReadSnapshot(bytes.NewReader(snapshot(t, s)))
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if diff := cmp.Diff(s.Remote(), r.Remote()); diff != "" {
			t.Fatalf("cut %d: restored remote leases differ:\n%s", cut, diff)
		}
		applyAll(t, r, log[cut:], uint64(cut)+1)
		if !bytes.Equal(snapshot(t, r), want) {
			t.Fatalf("cut %d: restored and continued, the state differs from the straight one", cut)
		}
	}
}

// TestOverflowBudgetRefunds: a lease that overflowed and then failed on
// every site, or ended early, gives its group's budget back what it did
// not run.
func TestOverflowBudgetRefunds(t *testing.T) {
	s := NewState()
	log := fedScript(t)
	applyAll(t, s, log[:8], 1)
	apply1(t, s, cmd(t, CmdSetPolicy, time.Minute, "root", SetPolicy{Text: "[groups.physics.overflow]\nsites = [\"partner\"]\nbudget_core_hours = 30\nperiod = \"30d\"\n"}))
	big := func(id string) lease.Request {
		r := req(id, "physics", 20, 1, time.Hour) // 20 core-hours
		r.StartBy = t0.Add(time.Hour)
		return r
	}
	submit := func(id string) lease.State {
		res, _ := apply1(t, s, cmd(t, CmdSubmit, 2*time.Minute, "ada", Submit{Requests: []lease.Request{big(id)}}))
		return res.([]SubmitResult)[0].Lease.State
	}
	if st := submit("o1"); st != lease.StateOverflowed {
		t.Fatalf("o1 (20 of 30 core-hours): %s", st)
	}
	if st := submit("o2"); st == lease.StateOverflowed {
		t.Fatal("o2 overflowed with 10 core-hours left")
	}
	apply1(t, s, cmd(t, CmdRemoteAttempt, 3*time.Minute, "system", RemoteStep{ID: "o1", Site: "partner", Token: "t"}))
	apply1(t, s, cmd(t, CmdRemoteFailed, 3*time.Minute, "system", RemoteStep{ID: "o1", Site: "partner", Error: "no capacity", Final: true}))
	if st := submit("o3"); st != lease.StateOverflowed {
		t.Fatalf("o3 after o1 failed everywhere (its 20 core-hours refunded): %s, want overflowed", st)
	}
	// o3 ends after a quarter of its hour: 15 core-hours come back, so a
	// fourth lease of 20 fits the 30 again (30 − 20 + 15 = 25 left).
	apply1(t, s, cmd(t, CmdRelease, 2*time.Minute+15*time.Minute, "ada", Release{ID: "o3"}))
	if st := submit("o4"); st != lease.StateOverflowed {
		t.Fatalf("o4 after o3 ended early: %s, want overflowed", st)
	}
}
