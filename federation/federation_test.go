package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/server"
	"github.com/fairlease/fairlease/broker/server/servertest"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/sites"
	"github.com/fairlease/fairlease/sites/sitetest"
)

// rig is a real Raft broker cluster with one 4-core host, a policy that
// lets physics overflow to the fake sites, and those sites.
type rig struct {
	c     *servertest.Cluster
	sites map[string]*sitetest.Fake
}

func newRig(t *testing.T, nodes int, policy string, fakes ...*sitetest.Fake) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := servertest.Start(ctx, servertest.Options{Nodes: nodes, Dir: t.TempDir(), InMem: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rig{c: c, sites: map[string]*sitetest.Fake{}}
	r.propose(t, broker.CmdPutHost, broker.Host{Name: "h1", Capacity: lease.Resources{Cores: 4, MemoryMiB: 8192}})
	r.propose(t, broker.CmdSetPolicy, broker.SetPolicy{Text: policy})
	for _, f := range fakes {
		r.sites[f.Name()] = f
		r.propose(t, broker.CmdPutSite, broker.Site{Name: f.Name(), Region: "r", AccessKeyID: "AKIA" + f.Name(), Secret: "s", CostPerCoreHour: f.Info().CostPerCoreHour})
	}
	return r
}

func (r *rig) leader(t *testing.T) broker.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := r.c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n.Server
}

func (r *rig) propose(t *testing.T, typ broker.CommandType, body any) any {
	t.Helper()
	c, err := broker.NewCommand(typ, time.Now(), "root", body)
	if err != nil {
		t.Fatal(err)
	}
	// Right after an election a command may meet a leader change: the
	// rig's commands are safe to send again (a repeated submit finds its
	// lease exists).
	var res any
	for range 5 {
		if res, err = r.leader(t).Propose(context.Background(), c); err == nil || !errors.Is(err, server.ErrUnknownOutcome) {
			break
		}
	}
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	return res
}

// fed is a Federation on the current leader, as the server's job makes it.
func (r *rig) fed(t *testing.T, grace time.Duration) *Federation {
	return New(Config{
		Backend: r.leader(t),
		Connect: func(s broker.Site) (sites.Site, error) {
			f, ok := r.sites[s.Name]
			if !ok {
				return nil, fmt.Errorf("no fake %s", s.Name)
			}
			return f, nil
		},
		Grace: grace, Cooldown: time.Hour,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
}

// submit asks for n one-core VMs for d: more than the 4-core site holds,
// so the lease overflows.
func (r *rig) submit(t *testing.T, id string, n int, d time.Duration) *broker.Lease {
	t.Helper()
	req := lease.Request{ID: lease.ID(id), Group: "physics", User: "ada", Count: n, Shape: lease.Shape{Cores: 1, MemoryMiB: 512, Image: "ubuntu"}, Duration: d, AllOrNothing: true}
	res := r.propose(t, broker.CmdSubmit, broker.Submit{Requests: []lease.Request{req}})
	sr := res.([]broker.SubmitResult)[0]
	if sr.Error != nil && sr.Error.Code == lease.ECONFLICT {
		return r.lease(t, id)
	}
	if sr.Error != nil {
		t.Fatalf("submit %s: %v", id, sr.Error)
	}
	return sr.Lease
}

func (r *rig) lease(t *testing.T, id string) *broker.Lease {
	t.Helper()
	var l *broker.Lease
	err := r.leader(t).Read(context.Background(), true, func(st *broker.State) error {
		var ok bool
		if l, ok = st.Lease(lease.ID(id)); !ok {
			return fmt.Errorf("no lease %s", id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (r *rig) remote(t *testing.T) []*broker.Lease {
	var out []*broker.Lease
	r.leader(t).Read(context.Background(), true, func(st *broker.State) error {
		out = st.Remote()
		return nil
	})
	return out
}

func step(t *testing.T, f *Federation) {
	t.Helper()
	if err := f.Step(context.Background()); err != nil {
		t.Fatalf("step: %v", err)
	}
}

const twoSites = `
[groups.physics.overflow]
sites = ["dear", "cheap"]
budget_core_hours = -1
`

func fakes() (*sitetest.Fake, *sitetest.Fake) {
	return sitetest.NewFake(sitetest.FakeConfig{Name: "dear", Info: sites.Info{CostPerCoreHour: 0.10}}),
		sitetest.NewFake(sitetest.FakeConfig{Name: "cheap", Info: sites.Info{CostPerCoreHour: 0.02}})
}

func TestOverflowRunsOnTheCheapestSiteAndEnds(t *testing.T) {
	dear, cheap := fakes()
	r := newRig(t, 1, twoSites, dear, cheap)
	l := r.submit(t, "x1", 8, 3*time.Second)
	if l.State != lease.StateOverflowed {
		t.Fatalf("8 VMs on a 4-core site: %s, want overflowed", l.State)
	}
	f := r.fed(t, time.Hour)
	step(t, f)
	l = r.lease(t, "x1")
	if l.Site != "cheap" || len(l.Remote.Instances) != 8 || cheap.Live() != 8 || dear.Launches() != 0 {
		t.Fatalf("after a step: on %q with %d instances; cheap runs %d, dear launched %d; want 8 on cheap", l.Site, len(l.Remote.Instances), cheap.Live(), dear.Launches())
	}
	for _, vm := range l.VMs {
		if vm.Instance == "" || vm.Host != "cheap" {
			t.Fatalf("VM %+v: want an instance id on cheap", vm)
		}
	}
	// Steps while it runs change nothing.
	step(t, f)
	if cheap.Launches() != 1 {
		t.Errorf("a running lease was launched again: %d launches", cheap.Launches())
	}
	// At its end, the broker ends it and the federation ends its instances.
	err := servertest.WaitFor(context.Background(), func() error {
		r.propose(t, broker.CmdAdvance, struct{}{})
		step(t, f)
		if n := len(r.remote(t)); n != 0 || cheap.Live() != 0 {
			return fmt.Errorf("%d leases to clean up, %d instances alive", n, cheap.Live())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if l = r.lease(t, "x1"); l.State != lease.StateEnded || l.EndReason != "expired" {
		t.Errorf("x1 at its end: %s (%s), want ended (expired)", l.State, l.EndReason)
	}
}

func TestCapacityFailsOverWithoutRetries(t *testing.T) {
	dear, cheap := fakes()
	cheap.Exhaust()
	r := newRig(t, 1, twoSites, dear, cheap)
	r.submit(t, "x1", 8, time.Hour)
	f := r.fed(t, time.Hour)
	step(t, f)
	step(t, f)
	l := r.lease(t, "x1")
	if l.Site != "dear" || dear.Live() != 8 {
		t.Fatalf("cheap is full: lease on %q, dear runs %d; want 8 on dear", l.Site, dear.Live())
	}
	if len(l.Remote.Attempts) != 2 || !strings.Contains(l.Remote.Attempts[0].Error, "capacity") {
		t.Errorf("attempts %+v: want cheap's capacity failure, then dear", l.Remote.Attempts)
	}
	// A second lease skips cheap while it cools down: no retry storm.
	before := cheap.Launches()
	r.submit(t, "x2", 8, time.Hour)
	step(t, f)
	if l := r.lease(t, "x2"); l.Site != "dear" || len(l.Remote.Attempts) != 1 {
		t.Errorf("x2 while cheap cools down: on %q after %d attempts; want dear at once", l.Site, len(l.Remote.Attempts))
	}
	if cheap.Launches() != before {
		t.Error("a site cooling down after a capacity error was asked again")
	}
}

func TestEverySiteFullFailsTheLease(t *testing.T) {
	dear, cheap := fakes()
	dear.Exhaust()
	cheap.Exhaust()
	r := newRig(t, 1, twoSites, dear, cheap)
	r.submit(t, "x1", 8, time.Hour)
	f := r.fed(t, time.Hour)
	for range 4 {
		step(t, f)
	}
	l := r.lease(t, "x1")
	if l.State != lease.StateFailed || !strings.Contains(l.EndReason, "capacity") || len(l.Remote.Attempts) != 2 {
		t.Errorf("both sites full: %s (%s) after %d attempts; want failed, with the reason, after one attempt per site", l.State, l.EndReason, len(l.Remote.Attempts))
	}
	if len(r.remote(t)) != 0 {
		t.Error("a failed lease is still listed as remote")
	}
}

// TestLostReplyRetriesWithTheSameToken: the site started the cluster but
// the reply was lost; the next round asks again with the same token and
// gets the same cluster, not a second one.
func TestLostReplyRetriesWithTheSameToken(t *testing.T) {
	dear, cheap := fakes()
	cheap.LoseNextReplies(1)
	r := newRig(t, 1, twoSites, dear, cheap)
	r.submit(t, "x1", 8, time.Hour)
	f := r.fed(t, time.Hour)
	step(t, f)
	if l := r.lease(t, "x1"); len(l.Remote.Instances) != 0 || len(l.Remote.Attempts) != 1 || l.Remote.Attempts[0].Error != "" {
		t.Fatalf("reply lost: %+v; want one open attempt and no instances recorded", l.Remote)
	}
	// The retry comes later: it must still send the same parameters (the
	// lease's remaining time among them), or the site refuses the token.
	time.Sleep(1100 * time.Millisecond)
	step(t, f)
	l := r.lease(t, "x1")
	if len(l.Remote.Instances) != 8 || cheap.Launches() != 1 || cheap.Live() != 8 || len(l.Remote.Attempts) != 1 {
		t.Errorf("after the retry: %d instances recorded, %d launches, %d alive, %d attempts; want 8, 1, 8, 1",
			len(l.Remote.Instances), cheap.Launches(), cheap.Live(), len(l.Remote.Attempts))
	}
}

// TestLeaderDiesMidOverflow: the leader records the attempt and sends it,
// then dies before recording the instances. The new leader's federation,
// which remembers nothing, adopts the cluster; nothing runs twice and
// nothing is orphaned.
func TestLeaderDiesMidOverflow(t *testing.T) {
	dear, cheap := fakes()
	r := newRig(t, 3, twoSites, dear, cheap)
	r.submit(t, "x1", 8, 4*time.Second)
	cheap.LoseNextReplies(1) // the launch happens; its reply never arrives
	step(t, r.fed(t, time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	old, err := r.c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range r.c.Nodes {
		if n == old {
			if err := r.c.Stop(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The loop runs on whichever node leads (the server starts it on each
	// new leader); rounds right after an election may fail to commit and
	// run again, as here, until the cluster is adopted.
	f := r.fed(t, time.Hour)
	round := func() error {
		if err := f.Step(ctx); err != nil {
			f = r.fed(t, time.Hour) // leadership moved again
			return err
		}
		return nil
	}
	err = servertest.WaitFor(ctx, func() error {
		if err := round(); err != nil {
			return err
		}
		if l := r.lease(t, "x1"); len(l.Remote.Instances) != 8 {
			return fmt.Errorf("%d instances recorded", len(l.Remote.Instances))
		}
		return nil
	})
	if err != nil || cheap.Launches() != 1 || cheap.Live() != 8 {
		t.Fatalf("new leader: %v; cheap launched %d and runs %d; want the one cluster adopted", err, cheap.Launches(), cheap.Live())
	}
	err = servertest.WaitFor(ctx, func() error {
		r.propose(t, broker.CmdAdvance, struct{}{})
		if err := round(); err != nil {
			return err
		}
		if cheap.Live() != 0 || dear.Live() != 0 || len(r.remote(t)) != 0 {
			return fmt.Errorf("at the end: %d + %d instances alive, %d leases to clean up", cheap.Live(), dear.Live(), len(r.remote(t)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOrphansAreTerminatedAfterTheGracePeriod(t *testing.T) {
	dear, cheap := fakes()
	r := newRig(t, 1, twoSites, dear, cheap)
	f := r.fed(t, 300*time.Millisecond)
	id, err := f.BrokerID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	spec := sites.Spec{Token: "stray", Count: 2, Shape: lease.Shape{Cores: 1, Image: "ami-x"}, Duration: time.Hour,
		Tags: map[string]string{TagBroker: id, TagLease: "gone"}}
	if _, err := cheap.Launch(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	other := spec
	other.Token, other.Tags = "theirs", map[string]string{TagBroker: "fl-another", TagLease: "x"}
	if _, err := cheap.Launch(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	step(t, f)
	if cheap.Live() != 4 {
		t.Fatalf("within the grace period: %d alive, want all 4", cheap.Live())
	}
	time.Sleep(400 * time.Millisecond)
	step(t, f)
	if cheap.Live() != 2 {
		t.Errorf("after the grace period: %d alive, want only the other broker's 2", cheap.Live())
	}
}

func TestSpentBudgetIsNotOverflowed(t *testing.T) {
	dear, cheap := fakes()
	r := newRig(t, 1, `
[groups.physics.overflow]
sites = ["cheap"]
budget_core_hours = 10
period = "30d"
`, dear, cheap)
	if l := r.submit(t, "x1", 8, time.Hour); l.State != lease.StateOverflowed {
		t.Fatalf("8 core-hours of a 10 budget: %s, want overflowed", l.State)
	}
	l := r.submit(t, "x2", 8, time.Hour)
	if l.State == lease.StateOverflowed {
		t.Fatalf("8 more core-hours with 2 left: overflowed")
	}
	if l.State != lease.StateRejected || l.EndReason != string(lease.ReasonTooLarge) {
		t.Errorf("x2: %s (%s), want rejected as too large for this site", l.State, l.EndReason)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
