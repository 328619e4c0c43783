package simhosts

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// local applies commands straight to a state: a fake of one broker node,
// enough to test the hosts' side.
type local struct {
	mu sync.Mutex
	s  *broker.State
	i  uint64
}

func (l *local) Read(_ context.Context, _ bool, fn func(*broker.State) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fn(l.s)
}

func (l *local) Propose(_ context.Context, c broker.Command) (any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.i++
	return l.s.Apply(l.i, c)
}

func TestLeaseRunsThenEnds(t *testing.T) {
	b := &local{s: broker.NewState()}
	cfg := DefaultConfig()
	cfg.Hosts, cfg.Boot, cfg.Poll = 2, 20*time.Millisecond, 5*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, b, cfg) }()

	waitFor(t, ctx, b, func(s *broker.State) bool { return len(s.Hosts()) == 2 })
	c, _ := broker.NewCommand(broker.CmdSubmit, time.Now(), "ada", broker.Submit{Requests: []lease.Request{{
		ID: "l1", Group: "g", Count: 3, Shape: lease.Shape{Cores: 2, MemoryMiB: 1024}, Duration: 300 * time.Millisecond,
	}}})
	res, err := b.Propose(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.([]broker.SubmitResult)[0].Lease.State; got != lease.StateStarting {
		t.Fatalf("submitted lease is %s, want starting", got)
	}
	waitFor(t, ctx, b, func(s *broker.State) bool { l, _ := s.Lease("l1"); return l.State == lease.StateRunning })
	// The broker ends it at its end time (the server's timed work proposes
	// advances; here the test does).
	time.Sleep(300 * time.Millisecond)
	adv, _ := broker.NewCommand(broker.CmdAdvance, time.Now(), "system", struct{}{})
	b.Propose(ctx, adv)
	waitFor(t, ctx, b, func(s *broker.State) bool { l, _ := s.Lease("l1"); return l.State == lease.StateEnded })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestBadConfig(t *testing.T) {
	if err := Run(context.Background(), &local{s: broker.NewState()}, Config{}); err == nil {
		t.Fatal("Run with no hosts: got nil error")
	}
}

func waitFor(t *testing.T, ctx context.Context, b *local, cond func(*broker.State) bool) {
	t.Helper()
	for {
		var ok bool
		b.Read(ctx, false, func(s *broker.State) error { ok = cond(s); return nil })
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("timed out waiting")
		case <-time.After(5 * time.Millisecond):
		}
	}
}
