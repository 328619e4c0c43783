package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"log/slog"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/server/servertest"
	"github.com/fairlease/fairlease/federation"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/sites/ec2"
)

// TestLeaderDiesMidOverflowToPartner: site A is a 3-node Raft broker,
// site B a fairlease up, between them a proxy that loses B's answer to
// the first launch. A's leader logs the attempt, B launches, the answer
// is lost and A's leader dies. The new leader's overflow loop, which
// remembers nothing, retries with the logged token: B runs one
// reservation, A records B's instances, and at the lease's end both
// sites end it — nothing orphaned.
func ec2DefaultAttempts() int { return ec2.DefaultConfig().MaxAttempts }

func TestLeaderDiesMidOverflowToPartner(t *testing.T) {
	envB := startUp(t, "--driver", "sim", "--hosts", "2", "--host-cores", "8")
	b := siteCLI(t, envB)
	key := partner(t, b, "1")
	proxy := newDropProxy(t, envB["FAIRLEASE_EC2_ENDPOINT"])

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := servertest.Start(ctx, servertest.Options{Nodes: 3, InMem: true, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	leader := func() broker.Backend {
		n, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n.Server
	}
	propose := func(typ broker.CommandType, body any) any {
		t.Helper()
		cmd, _ := broker.NewCommand(typ, time.Now(), "root", body)
		res, err := leader().Propose(ctx, cmd)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		return res
	}
	propose(broker.CmdPutHost, broker.Host{Name: "h1", Capacity: lease.Resources{Cores: 4, MemoryMiB: 8192}})
	propose(broker.CmdSetPolicy, broker.SetPolicy{Text: overflowToB})
	propose(broker.CmdPutSite, broker.Site{Name: "b", Endpoint: proxy.srv.URL, Region: "fairlease", AccessKeyID: key.AccessKeyID, Secret: key.SecretAccessKey})
	req := lease.Request{ID: "x1", Group: "physics", User: "ada", Count: 6, Shape: lease.Shape{Cores: 1, MemoryMiB: 512, Image: "mpi-base"},
		Duration: 15 * time.Second, AllOrNothing: true}
	if sr := propose(broker.CmdSubmit, broker.Submit{Requests: []lease.Request{req}}).([]broker.SubmitResult)[0]; sr.Lease == nil || sr.Lease.State != lease.StateOverflowed {
		t.Fatalf("submit: %+v, want overflowed", sr)
	}
	loop := func() *federation.Federation {
		return federation.New(federation.Config{Backend: leader(), Connect: connectSite, Log: slog.New(slog.NewTextHandler(testLog{t}, nil))})
	}
	remote := func() *broker.Lease {
		var l *broker.Lease
		leader().Read(ctx, true, func(st *broker.State) error {
			l, _ = st.Lease("x1")
			return nil
		})
		return l
	}
	// Every answer to the launch and to the SDK's retries of it (same
	// token) is lost: the outcome stays unknown.
	proxy.armed.Store(int32(ec2DefaultAttempts()))
	loop().Step(ctx)
	if l := remote(); len(l.Remote.Attempts) != 1 || l.Remote.Attempts[0].Error != "" || len(l.Remote.Instances) != 0 || proxy.runs.Load() == 0 {
		t.Fatalf("after the lost answers: %+v, %d launches sent; want one open attempt", l.Remote, proxy.runs.Load())
	}
	old, _ := c.Leader(ctx)
	for i, n := range c.Nodes {
		if n == old {
			if err := c.Stop(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	f := loop() // the new leader's
	round := func() {
		if f.Step(ctx) != nil {
			f = loop() // leadership moved again
		}
	}
	waitUntil(t, 30*time.Second, "the new leader adopts B's instances", func() error {
		round()
		if l := remote(); len(l.Remote.Instances) != 6 {
			return fmt.Errorf("%d instances recorded", len(l.Remote.Instances))
		}
		return nil
	})
	var onB []broker.Lease
	if err := json.Unmarshal([]byte(b("lease", "list").stdout), &onB); err != nil || len(onB) != 1 {
		t.Fatalf("leases on b: %+v %v, want exactly one reservation", onB, err)
	}
	waitUntil(t, 40*time.Second, "the lease ended on both sites", func() error {
		propose(broker.CmdAdvance, struct{}{})
		round()
		la, lb := remote(), leaseOn(t, b, string(onB[0].ID))
		if la.State != lease.StateEnded || la.Remote.Ended.IsZero() || lb.State != lease.StateEnded {
			return fmt.Errorf("a: %s (instances ended %v), b: %s", la.State, la.Remote.Ended, lb.State)
		}
		return nil
	})
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}
