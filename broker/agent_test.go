package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/lease"
)

func agentSite(t *testing.T) *State {
	t.Helper()
	s := NewState()
	ctx := &ClusterContext{PublicKey: "ssh-ed25519 AAAA cluster", PrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n", UserKeys: []string{"ssh-ed25519 BBBB ada"}}
	r := req("c1", "physics", 3, 4, time.Hour)
	r.Shape.Image = "tiny"
	applyAll(t, s, []Command{
		cmd(t, CmdPutHost, 0, "system", Host{Name: "h1", Capacity: lease.Resources{Cores: 8, MemoryMiB: 32768}}),
		cmd(t, CmdPutHost, 0, "system", Host{Name: "h2", Capacity: lease.Resources{Cores: 8, MemoryMiB: 32768}}),
		cmd(t, CmdHostAgent, 0, "host:h1", HostAgent{Name: "h1", Addr: "http://127.0.0.1:9001", LogKey: "k", Driver: "test", Images: []string{strings.Repeat("a", 64)}}),
		cmd(t, CmdPutImage, 0, "ada", Image{Name: "tiny", Digest: strings.Repeat("a", 64), Size: 1 << 20, Format: "qcow2", Group: "physics"}),
		cmd(t, CmdSubmit, time.Minute, "ada", Submit{Requests: []lease.Request{r}, Contexts: []*ClusterContext{ctx}}),
	}, 1)
	return s
}

func TestAssignmentsAndVMStates(t *testing.T) {
	s := agentSite(t)
	l, _ := s.Lease("c1")
	if l.State != lease.StateStarting || len(l.VMs) != 3 || l.Context != nil {
		t.Fatalf("c1: %s, %d VMs, context %v; want starting, 3 VMs, no context shown", l.State, len(l.VMs), l.Context)
	}
	perHost := map[string][]int{}
	for _, v := range l.VMs {
		perHost[v.Host] = append(perHost[v.Host], v.Index)
	}
	for host, want := range perHost {
		as := s.Assignments(host)
		if len(as) != 1 {
			t.Fatalf("%s: %d assignments, want 1", host, len(as))
		}
		a := as[0]
		if diff := cmp.Diff(want, a.Mine); diff != "" {
			t.Errorf("%s: its VMs (-want +got):\n%s", host, diff)
		}
		if len(a.VMs) != 3 || a.Context == nil || a.Context.PublicKey == "" || a.Image != "tiny" {
			t.Errorf("%s: assignment lacks peers, the cluster key or the image: %+v", host, a)
		}
	}
	next := uint64(6)
	report := func(i int, st string) *Lease {
		t.Helper()
		res, err := s.Apply(next, cmd(t, CmdVMState, 2*time.Minute, "agent", VMStateChange{ID: "c1", Index: i, State: st}))
		next++
		if err != nil {
			t.Fatal(err)
		}
		return res.(*Lease)
	}
	report(0, VMRunning)
	if got := report(1, VMRunning).State; got != lease.StateStarting {
		t.Errorf("two of three VMs running: lease %s, want starting (all or nothing)", got)
	}
	if got := report(2, VMRunning).State; got != lease.StateRunning {
		t.Errorf("all VMs running: lease %s, want running", got)
	}
	if got := report(1, VMFailed).State; got != lease.StateFailed {
		t.Errorf("a VM failed: lease %s, want failed", got)
	}
	if len(s.Assignments("h1"))+len(s.Assignments("h2")) != 0 {
		t.Error("a failed lease is still assigned")
	}
	if hs := s.Hosts(); hs[0].Agent != "http://127.0.0.1:9001" || hs[0].Driver != "test" {
		t.Errorf("h1's agent: %+v", hs[0])
	}
}

func TestImages(t *testing.T) {
	s := agentSite(t)
	tests := map[string]struct {
		c        Command
		wantCode string
	}{
		"bad digest":           {cmd(t, CmdPutImage, time.Hour, "ada", Image{Name: "x", Digest: "abc", Size: 1, Format: "qcow2"}), lease.EINVALID},
		"bad format":           {cmd(t, CmdPutImage, time.Hour, "ada", Image{Name: "x", Digest: strings.Repeat("b", 64), Size: 1, Format: "vmdk"}), lease.EINVALID},
		"same name, new bytes": {cmd(t, CmdPutImage, time.Hour, "ada", Image{Name: "tiny", Digest: strings.Repeat("b", 64), Size: 1, Format: "qcow2"}), lease.ECONFLICT},
		"in use":               {cmd(t, CmdDelImage, time.Hour, "ada", Name{Name: "tiny"}), lease.ECONFLICT},
		"unknown":              {cmd(t, CmdDelImage, time.Hour, "ada", Name{Name: "nope"}), lease.ENOTFOUND},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			st := agentSite(t)
			_, err := st.Apply(st.Index()+1, tt.c)
			if got := lease.ErrorCode(err); got != tt.wantCode {
				t.Errorf("got %v, want code %s", err, tt.wantCode)
			}
		})
	}
	r := req("c2", "physics", 1, 1, time.Hour)
	r.Shape.Image = "nope"
	res, _ := s.Apply(s.Index()+1, cmd(t, CmdSubmit, time.Hour, "ada", Submit{Requests: []lease.Request{r}}))
	if e := res.([]SubmitResult)[0].Error; e == nil || e.Field != "image" {
		t.Errorf("a lease of an unknown image: got %+v, want an error on the image", res)
	}
}

func TestImageSharingAndQuota(t *testing.T) {
	s := agentSite(t)
	submit := func(id string, group lease.GroupID) *lease.Error {
		t.Helper()
		r := req(id, group, 1, 1, time.Hour)
		r.Shape.Image = "tiny"
		res, err := s.Apply(s.Index()+1, cmd(t, CmdSubmit, time.Hour, "someone", Submit{Requests: []lease.Request{r}}))
		if err != nil {
			t.Fatal(err)
		}
		return res.([]SubmitResult)[0].Error
	}
	// Private to physics: biology's lease of it is as of an unknown image.
	if e := submit("b1", "biology"); e == nil || e.Code != lease.ENOTFOUND {
		t.Errorf("biology leased physics' private image: %v", e)
	}
	applyAll(t, s, []Command{cmd(t, CmdShareImage, time.Hour, "ada", ImageShare{Name: "tiny", Groups: []lease.GroupID{"biology", "biology"}})}, s.Index()+1)
	im, _ := s.Image("tiny")
	if diff := cmp.Diff([]lease.GroupID{"biology"}, im.SharedWith); diff != "" || im.Public {
		t.Errorf("shared with (-want +got):\n%s public %v", diff, im.Public)
	}
	if e := submit("b2", "biology"); e != nil {
		t.Errorf("biology cannot lease an image shared with it: %v", e)
	}
	if e := submit("c9", "chemistry"); e == nil {
		t.Error("chemistry leased an image not shared with it")
	}

	// Quota: physics may own 2 MiB of images; tiny takes 1.
	applyAll(t, s, []Command{cmd(t, CmdSetPolicy, time.Hour, "root", SetPolicy{Text: "[groups.physics]\nmax_images = \"2MiB\"\n"})}, s.Index()+1)
	put := func(name string, size int64, digit string) error {
		_, err := s.Apply(s.Index()+1, cmd(t, CmdPutImage, time.Hour, "ada", Image{Name: name, Digest: strings.Repeat(digit, 64), Size: size, Format: "raw", Group: "physics"}))
		return err
	}
	if err := put("big", 2<<20, "c"); lease.ErrorCode(err) != lease.EFORBIDDEN {
		t.Errorf("over quota: %v", err)
	}
	if _, ok := s.Image("big"); ok {
		t.Error("a refused image was recorded")
	}
	if err := put("small", 1<<20, "d"); err != nil {
		t.Errorf("within quota: %v", err)
	}

	// The site key is set once; a snapshot keeps it.
	seed := make([]byte, 32)
	seed[0] = 7
	other := make([]byte, 32)
	applyAll(t, s, []Command{
		cmd(t, CmdSiteKey, time.Hour, "system", SiteKey{Seed: seed}),
		cmd(t, CmdSiteKey, time.Hour, "system", SiteKey{Seed: other}),
	}, s.Index()+1)
	k := s.SiteKey()
	if k == nil || k.Seed()[0] != 7 {
		t.Fatalf("site key %v, want the first one set", k)
	}
	r := NewState()
	if err := r.Restore(strings.NewReader(string(snapshot(t, s)))); err != nil {
		t.Fatal(err)
	}
	if !r.SiteKey().Equal(k) {
		t.Error("the restored state lost the site key")
	}
}

func TestVMPhase(t *testing.T) {
	s := agentSite(t)
	report := func(st, note string) *Lease {
		t.Helper()
		res, err := s.Apply(s.Index()+1, cmd(t, CmdVMState, 2*time.Minute, "agent", VMStateChange{ID: "c1", Index: 0, State: st, Note: note}))
		if err != nil {
			t.Fatal(err)
		}
		return res.(*Lease)
	}
	if got := report(VMStarting, "image 63 %"); got.VMs[0].Phase != "image 63 %" || got.VMs[0].State != VMStarting || got.State != lease.StateStarting {
		t.Errorf("after progress: %+v, lease %s", got.VMs[0], got.State)
	}
	if got := report(VMRunning, ""); got.VMs[0].Phase != "" || got.VMs[0].State != VMRunning {
		t.Errorf("running VM keeps a phase: %+v", got.VMs[0])
	}
	// A late progress report does not take a running VM back.
	if got := report(VMStarting, "image 99 %"); got.VMs[0].State != VMRunning || got.VMs[0].Phase != "" {
		t.Errorf("late progress changed a running VM: %+v", got.VMs[0])
	}
}

func TestAssignmentsPrefetchDeferred(t *testing.T) {
	s := NewState()
	first := req("now", "physics", 1, 8, 10*time.Minute)
	first.Shape.Image = "tiny"
	next := req("next", "physics", 1, 8, 10*time.Minute)
	next.Shape.Image = "tiny"
	applyAll(t, s, []Command{
		cmd(t, CmdPutHost, 0, "system", Host{Name: "h1", Capacity: lease.Resources{Cores: 8, MemoryMiB: 32768}}),
		cmd(t, CmdPutImage, 0, "ada", Image{Name: "tiny", Digest: strings.Repeat("a", 64), Size: 1 << 20, Format: "qcow2", Group: "physics"}),
		cmd(t, CmdSubmit, time.Minute, "ada", Submit{Requests: []lease.Request{first, next}}),
	}, 1)
	l, _ := s.Lease("next")
	if l.State != lease.StateDeferred || len(l.Decision.Placement) != 1 {
		t.Fatalf("next is %s with placement %v; want deferred, placed", l.State, l.Decision.Placement)
	}
	var pre []Assignment
	for _, a := range s.Assignments("h1") {
		if a.Prefetch {
			pre = append(pre, a)
		} else if a.Lease != "now" {
			t.Errorf("assignment to run %s", a.Lease)
		}
	}
	if len(pre) != 1 || pre[0].Lease != "next" || pre[0].Image != "tiny" || pre[0].Context != nil || !pre[0].Start.Equal(l.Decision.Start) {
		t.Errorf("prefetch assignments %+v", pre)
	}
}

// A lease goes first to hosts whose agents hold its image.
func TestPlacementPrefersHostsWithTheImage(t *testing.T) {
	s := NewState()
	digest := strings.Repeat("a", 64)
	r := req("c", "physics", 2, 2, time.Hour)
	r.Shape.Image = "tiny"
	plain := req("p", "physics", 1, 2, time.Hour)
	plain.Shape.Image = "other"
	applyAll(t, s, []Command{
		cmd(t, CmdPutHost, 0, "system", Host{Name: "h1", Capacity: lease.Resources{Cores: 8, MemoryMiB: 32768}}),
		cmd(t, CmdPutHost, 0, "system", Host{Name: "h2", Capacity: lease.Resources{Cores: 8, MemoryMiB: 32768}}),
		cmd(t, CmdHostAgent, 0, "host:h1", HostAgent{Name: "h1", Driver: "test"}),
		cmd(t, CmdHostAgent, 0, "host:h2", HostAgent{Name: "h2", Driver: "test", Images: []string{digest}}),
		cmd(t, CmdPutImage, 0, "ada", Image{Name: "tiny", Digest: digest, Size: 1 << 20, Format: "qcow2", Group: "physics"}),
		cmd(t, CmdPutImage, 0, "ada", Image{Name: "other", Digest: strings.Repeat("b", 64), Size: 1 << 20, Format: "qcow2", Group: "physics"}),
		cmd(t, CmdSubmit, time.Minute, "ada", Submit{Requests: []lease.Request{r, plain}}),
	}, 1)
	for id, want := range map[lease.ID]string{"c": "h2", "p": "h1"} {
		l, _ := s.Lease(id)
		for _, v := range l.VMs {
			if v.Host != want {
				t.Errorf("lease %s: VM %d on %s, want %s", id, v.Index, v.Host, want)
			}
		}
	}
}
