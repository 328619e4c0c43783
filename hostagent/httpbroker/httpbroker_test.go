package httpbroker_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api/apitest"
	"github.com/fairlease/fairlease/client"
	"github.com/fairlease/fairlease/hostagent"
	"github.com/fairlease/fairlease/hostagent/httpbroker"
	"github.com/fairlease/fairlease/lease"
)

// deadAddr is a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestFollowsLiveNode(t *testing.T) {
	s := apitest.NewServer(t)
	root := s.Fake.AddUser(t, "root", "", broker.RoleAdmin)
	admin, _ := client.New(s.URL, root)
	jt, err := admin.JoinToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The first node is down: every call moves on to the second.
	dial, err := httpbroker.Dialer([]string{deadAddr(t), s.URL})
	if err != nil {
		t.Fatal(err)
	}
	reg := hostagent.Registration{Host: "a1", Capacity: lease.Resources{Cores: 4, MemoryMiB: 4096}, Driver: "test"}
	cred, err := dial(jt.Token).Register(t.Context(), reg)
	if err != nil {
		t.Fatal(err)
	}
	b := dial(cred)
	if err := b.Heartbeat(t.Context(), reg); err != nil {
		t.Fatal(err)
	}
	idx, as, err := b.Assignments(t.Context(), 0, time.Second)
	if err != nil || idx == 0 || len(as) != 0 {
		t.Fatalf("assignments %d %v %v", idx, as, err)
	}
	// A request the broker refuses is not retried elsewhere, and says why.
	err = b.ReportVM(t.Context(), broker.VMStateChange{ID: "none", State: broker.VMRunning})
	if lease.ErrorCode(err) != lease.ENOTFOUND && lease.ErrorCode(err) != lease.EFORBIDDEN {
		t.Errorf("report for no lease: %v", err)
	}
	if _, err := b.OpenImage(t.Context(), "00"); err == nil {
		t.Error("opened an image that does not exist")
	}
	// A join token used as a credential gets the broker's refusal.
	if err := dial(jt.Token).Heartbeat(t.Context(), reg); lease.ErrorCode(err) != lease.EFORBIDDEN {
		t.Errorf("heartbeat with a join token: %v", err)
	}
	var le *lease.Error
	if _, err := httpbroker.Dialer(nil); err == nil || errors.As(err, &le) {
		t.Errorf("no addresses: %v", err)
	}
}

// An image record the site key did not sign is refused, whoever put it in
// the state.
func TestImageManifestChecked(t *testing.T) {
	s := apitest.NewServer(t)
	root := s.Fake.AddUser(t, "root", "", broker.RoleAdmin)
	admin, _ := client.New(s.URL, root)
	data := strings.Repeat("image bytes ", 100)
	if _, err := admin.PushImage(t.Context(), "good", "raw", true, strings.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	good, _ := admin.Image(t.Context(), "good")
	forged := *good
	forged.Name, forged.Size = "forged", good.Size+1
	s.Fake.Apply(t, broker.CmdPutImage, "system", forged)

	jt, _ := admin.JoinToken(t.Context())
	dial, _ := httpbroker.Dialer([]string{s.URL})
	reg := hostagent.Registration{Host: "a1", Capacity: lease.Resources{Cores: 1, MemoryMiB: 1024}}
	cred, err := dial(jt.Token).Register(t.Context(), reg)
	if err != nil {
		t.Fatal(err)
	}
	b := dial(cred)
	if _, err := b.Image(t.Context(), "good"); err != nil {
		t.Errorf("the pushed image: %v", err)
	}
	if _, err := b.Image(t.Context(), "forged"); err == nil || !strings.Contains(err.Error(), "not signed by this site's key") {
		t.Errorf("a record with another size and the old signature: %v", err)
	}
}
