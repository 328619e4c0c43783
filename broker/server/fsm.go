package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// fsm applies the log to a broker.State. Apply only decodes and calls
// State.Apply, so the simulator and tests can run the same code without
// Raft.
type fsm struct {
	// mu guards st. Apply and Restore hold it exclusively; Snapshot
	// shares it. Reads through Server.Read hold it exclusively too:
	// State's read methods (Next, WhatIf, Shares) move the engine's
	// scratch state, so two of them must not run at once.
	mu    sync.RWMutex
	st    *broker.State
	audit *slog.Logger
	// applied is called with each applied entry's timing (metrics).
	applied func(time.Duration)
	// index is the Raft index of the last entry applied to st; Raft's own
	// applied index runs ahead of it by what is queued for the FSM.
	index atomic.Uint64
	// apis maps node ids to their API base URLs, copied from the state
	// whenever nodes change, so that forwarding needs no lock.
	apis atomic.Pointer[map[string]string]
}

// applyResult is what FSM.Apply returns through raft's ApplyFuture.
type applyResult struct {
	res any
	err error
}

func newFSM(audit *slog.Logger) *fsm {
	return &fsm{st: broker.NewState(), audit: audit}
}

// Apply implements raft.FSM. A batch entry's commands are applied in
// order, the first at the entry's index and the rest at index 0 (State's
// "no new index"), so the state's index stays the entry's; its result is
// one applyResult per command.
func (f *fsm) Apply(l *raft.Log) any {
	cs, err := DecodeEntry(l.Data)
	if err != nil {
		// Every replica would fail alike: stop rather than diverge.
		panic(fmt.Sprintf("server: log entry %d: %v", l.Index, err))
	}
	start := time.Now()
	out := make([]applyResult, len(cs))
	nodes := false
	f.mu.Lock()
	for i, c := range cs {
		index := l.Index
		if i > 0 {
			index = 0
		}
		out[i].res, out[i].err = f.st.Apply(index, c)
		nodes = nodes || c.Type == broker.CmdPutNode || c.Type == broker.CmdRemoveNode
	}
	if nodes {
		f.noteNodes()
	}
	f.index.Store(l.Index)
	f.mu.Unlock()
	if f.applied != nil {
		f.applied(time.Since(start))
	}
	for i, c := range cs {
		f.record(l.Index, c, out[i].res, out[i].err)
	}
	if l.Data[0] == entryBatch {
		return out
	}
	return out[0]
}

// record writes the audit line of one applied command: who, what, when,
// and how it ended.
func (f *fsm) record(index uint64, c broker.Command, res any, err error) {
	if f.audit == nil {
		return
	}
	attrs := []slog.Attr{
		slog.Uint64("index", index),
		slog.Time("at", c.Time),
		slog.String("actor", c.Actor),
		slog.String("command", c.Type.String()),
	}
	if err != nil {
		attrs = append(attrs, slog.String("result", lease.ErrorCode(err)), slog.String("error", err.Error()))
	} else {
		attrs = append(attrs, slog.String("result", "ok"))
	}
	switch r := res.(type) {
	case []broker.SubmitResult:
		kinds := map[string]int{}
		ids := make([]string, 0, len(r))
		for _, x := range r {
			switch {
			case x.Error != nil:
				kinds["error:"+x.Error.Code]++
			case x.Lease != nil:
				kinds[x.Lease.Decision.Kind.String()]++
				ids = append(ids, string(x.Lease.ID))
			}
		}
		attrs = append(attrs, slog.Int("requests", len(r)), slog.Any("decisions", kinds), slog.Any("leases", ids))
	case *broker.Lease:
		if r != nil {
			attrs = append(attrs, slog.String("lease", string(r.ID)), slog.String("state", string(r.State)))
		}
	case broker.AdvanceResult:
		attrs = append(attrs, slog.Int("events", len(r.Events)))
	case broker.HostLostResult:
		attrs = append(attrs, slog.Int("affected", len(r.Affected)))
	}
	f.audit.LogAttrs(context.Background(), slog.LevelInfo, "apply", attrs...)
}

// Snapshot implements raft.FSM: the state is written to memory under the
// shared lock, and to disk later, outside it.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	var buf bytes.Buffer
	f.mu.RLock()
	err := f.st.Snapshot(&buf)
	f.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("server: snapshot: %w", err)
	}
	return &fsmSnapshot{b: buf.Bytes()}, nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := broker.ReadSnapshot(rc)
	if err != nil {
		return fmt.Errorf("server: restore: %w", err)
	}
	f.mu.Lock()
	f.st = st
	f.noteNodes()
	f.index.Store(st.Index())
	f.mu.Unlock()
	return nil
}

// noteNodes refreshes apis; the caller holds mu.
func (f *fsm) noteNodes() {
	m := map[string]string{}
	for _, n := range f.st.Nodes() {
		m[n.ID] = baseURL(n.APIAddr)
	}
	f.apis.Store(&m)
}

// api returns node id's API base URL, or "" if unknown.
func (f *fsm) api(id string) string {
	if m := f.apis.Load(); m != nil && id != "" {
		return (*m)[id]
	}
	return ""
}

// read runs fn on the state under the exclusive lock (see mu).
func (f *fsm) read(fn func(*broker.State) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(f.st)
}

type fsmSnapshot struct{ b []byte }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.b); err != nil {
		sink.Cancel()
		return fmt.Errorf("server: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
