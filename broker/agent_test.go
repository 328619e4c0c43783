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
