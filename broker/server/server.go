// Package server runs a broker node: hashicorp/raft over BoltDB and a file
// snapshot store, the FSM that applies the log to a broker.State, batching
// and forwarding of proposals, cluster membership, the leader's timed work
// (gocron) and Prometheus metrics. The HTTP API (broker/api) talks to a
// node through the Backend interface.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// snapshotsRetained is how many snapshots stay on disk; logCacheSize how
// many recent entries stay in memory for replication.
const (
	snapshotsRetained = 2
	logCacheSize      = 1024
)

// Server is one broker node.
type Server struct {
	cfg       Config
	log       *slog.Logger
	raft      *raft.Raft
	fsm       *fsm
	trans     raft.Transport
	store     *raftboltdb.BoltStore
	auditFile *os.File
	reg       *prometheus.Registry
	m         *metrics
	batch     *batcher
	fwd       *forwarder
	client    *http.Client
	advertise string

	// barrierTerm is the term in which this node, as leader, last applied
	// a barrier: from then on its state holds every committed entry.
	barrierTerm atomic.Uint64
	// leaderSince is when this node last became leader (unix ns): hosts
	// get a full heartbeat timeout from then before they count as lost.
	leaderSince atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	dutyMu   sync.Mutex
	dutyStop context.CancelFunc
	dutyDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// New starts a node: it opens (or creates) the data directory, restores the
// latest snapshot and log, bootstraps or joins a cluster as configured, and
// takes part in elections from then on.
func New(cfg Config) (s *Server, err error) {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("node", cfg.ID)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("server: data directory: %w", err)
	}
	s = &Server{cfg: cfg, log: log, client: cfg.HTTPClient, reg: cfg.Registry}
	ctx, cancel := context.WithCancel(context.Background())
	s.ctx, s.cancel = ctx, cancel
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.client == nil {
		s.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}
	}

	s.auditFile, err = os.OpenFile(filepath.Join(cfg.DataDir, "audit.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("server: audit log: %w", err)
	}
	s.fsm = newFSM(newAuditLogger(s.auditFile))

	hl := newRaftLogger(log, cfg.RaftLogLevel)
	s.store, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("server: open raft.db: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, snapshotsRetained, hl)
	if err != nil {
		return nil, fmt.Errorf("server: snapshot store: %w", err)
	}
	if cfg.Transport != nil {
		s.trans = cfg.Transport
	} else {
		t, err := newTransport(cfg, hl)
		if err != nil {
			return nil, err
		}
		s.trans = t
	}
	s.advertise = string(s.trans.LocalAddr())

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.Logger = hl
	rc.NoLegacyTelemetry = true
	// A removed node keeps running (and answering Status) rather than
	// shutting its Raft down under the API.
	rc.ShutdownOnRemove = false
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("server: raft config: %w", err)
	}

	existing, err := raft.HasExistingState(s.store, s.store, snaps)
	if err != nil {
		return nil, fmt.Errorf("server: read raft state: %w", err)
	}
	if cfg.Bootstrap && !existing {
		conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: raft.ServerAddress(s.advertise), Suffrage: raft.Voter}}}
		for _, p := range cfg.Peers {
			if p.ID == cfg.ID {
				continue
			}
			conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr), Suffrage: raft.Voter})
		}
		if err := raft.BootstrapCluster(rc, s.store, s.store, snaps, s.trans, conf); err != nil {
			return nil, fmt.Errorf("server: bootstrap: %w", err)
		}
		log.Info("bootstrapped a new cluster", "voters", len(conf.Servers))
	}

	ownReg := s.reg == nil
	if ownReg {
		s.reg = prometheus.NewRegistry()
	}
	s.m, err = newMetrics(s.reg, func() *raft.Raft { return s.raft }, s.fsm.index.Load, ownReg)
	if err != nil {
		return nil, err
	}
	s.fsm.applied = func(d time.Duration) { s.m.apply.Observe(d.Seconds()) }

	// Replication reads recent entries back; keep them in memory rather
	// than go to BoltDB for each.
	logs, err := raft.NewLogCache(logCacheSize, s.store)
	if err != nil {
		return nil, fmt.Errorf("server: log cache: %w", err)
	}
	s.raft, err = raft.NewRaft(rc, s.fsm, logs, s.store, snaps, s.trans)
	if err != nil {
		return nil, fmt.Errorf("server: start raft: %w", err)
	}
	s.batch, s.fwd = newBatcher(s), newForwarder(s)
	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.batch.run(s.ctx) }()
	go func() { defer s.wg.Done(); s.fwd.run(s.ctx) }()
	go func() { defer s.wg.Done(); s.watchLeadership() }()
	if len(cfg.Join) > 0 && !existing {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.joinCluster() }()
	}
	log.Info("node started", "raft_addr", s.advertise, "api_addr", cfg.APIAddr, "restored", existing)
	return s, nil
}

// newAuditLogger writes one JSON line per applied command. The line's time
// is the command's (its "at"), not the wall clock of this replica, so
// every replica writes the same lines.
func newAuditLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// Registry returns the registry holding the node's metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// ID returns the node's id.
func (s *Server) ID() string { return s.cfg.ID }

// RaftAddr returns the address peers dial.
func (s *Server) RaftAddr() string { return s.advertise }

// APIAddr returns the API address the node advertises.
func (s *Server) APIAddr() string { return s.cfg.APIAddr }

// AppliedIndex is the Raft index of the last entry applied to this node's
// state.
func (s *Server) AppliedIndex() uint64 { return s.fsm.index.Load() }

// IsLeader reports whether this node is the Raft leader now.
func (s *Server) IsLeader() bool { return s.raft != nil && s.raft.State() == raft.Leader }

// Raft exposes the Raft instance, for tests and diagnostics.
func (s *Server) Raft() *raft.Raft { return s.raft }

// Close stops the node without handing leadership over: timed work and
// batching stop, Raft shuts down, the transport and stores close. A killed
// leader looks the same to its peers.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.stopDuties()
		var errs []error
		if s.raft != nil {
			if err := s.raft.Shutdown().Error(); err != nil {
				errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
			}
		}
		s.wg.Wait()
		s.stopDuties() // in case leadership came while closing
		if c, ok := s.trans.(io.Closer); ok && s.cfg.Transport == nil {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("transport: %w", err))
			}
		}
		if s.store != nil {
			if err := s.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("raft.db: %w", err))
			}
		}
		if s.cfg.HTTPClient == nil && s.client != nil {
			s.client.CloseIdleConnections()
		}
		if s.auditFile != nil {
			if err := s.auditFile.Close(); err != nil {
				errs = append(errs, fmt.Errorf("audit log: %w", err))
			}
		}
		if len(errs) > 0 {
			s.closeErr = fmt.Errorf("server: close %s: %w", s.cfg.ID, errors.Join(errs...))
		}
	})
	return s.closeErr
}

// watchLeadership starts the leader's duties when this node wins an
// election and stops them when it loses leadership.
func (s *Server) watchLeadership() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case leader := <-s.raft.LeaderCh():
			s.stopDuties()
			if leader {
				s.startDuties()
			}
		}
	}
}

func (s *Server) startDuties() {
	ctx, stop := context.WithCancel(s.ctx)
	done := make(chan struct{})
	s.dutyMu.Lock()
	s.dutyStop, s.dutyDone = stop, done
	s.dutyMu.Unlock()
	s.leaderSince.Store(s.cfg.Clock().UnixNano())
	go func() {
		defer close(done)
		s.leaderDuties(ctx)
	}()
}

func (s *Server) stopDuties() {
	s.dutyMu.Lock()
	stop, done := s.dutyStop, s.dutyDone
	s.dutyStop, s.dutyDone = nil, nil
	s.dutyMu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// leaderDuties runs while this node leads: it first applies everything
// committed in earlier terms (a barrier), records its own addresses in the
// state so followers can forward to it, then runs the timed work.
func (s *Server) leaderDuties(ctx context.Context) {
	term := s.raft.CurrentTerm()
	if err := s.wait(ctx, s.raft.Barrier(s.cfg.ProposeTimeout)); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("barrier after election failed", "term", term, "err", err)
		}
		return
	}
	s.barrierTerm.Store(term)
	s.log.Info("leading", "term", term)
	self := broker.Node{ID: s.cfg.ID, RaftAddr: s.advertise, APIAddr: s.cfg.APIAddr}
	var known bool
	s.fsm.read(func(st *broker.State) error {
		for _, n := range st.Nodes() {
			known = known || n == self
		}
		return nil
	})
	if !known {
		if _, err := s.proposeSystem(ctx, broker.CmdPutNode, self); err != nil && ctx.Err() == nil {
			s.log.Warn("record this node's addresses", "err", err)
		}
	}
	s.runJobs(ctx)
}

// wait waits for f or for ctx to end.
func (s *Server) wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Read implements Backend.
func (s *Server) Read(ctx context.Context, strong bool, fn func(*broker.State) error) error {
	if strong {
		if s.raft.State() != raft.Leader {
			return s.notLeader()
		}
		// A new leader may not have applied entries of earlier terms yet.
		if term := s.raft.CurrentTerm(); s.barrierTerm.Load() != term {
			if err := s.wait(ctx, s.raft.Barrier(s.timeout(ctx))); err != nil {
				return s.mapRaftErr(err)
			}
			s.barrierTerm.Store(term)
		}
		// Every write acknowledged so far was applied here before it was
		// acknowledged; checking that we still lead makes the read
		// linearizable.
		if err := s.wait(ctx, s.raft.VerifyLeader()); err != nil {
			return s.mapRaftErr(err)
		}
	}
	return s.fsm.read(fn)
}

// timeout is how long raft may take to enqueue for ctx.
func (s *Server) timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return s.cfg.ProposeTimeout
}

// notLeader returns a *NotLeaderError naming the leader, if known.
func (s *Server) notLeader() error {
	_, id := s.raft.LeaderWithID()
	e := &NotLeaderError{LeaderID: string(id)}
	if id != "" {
		e.LeaderAPI = s.fsm.api(string(id))
	}
	return e
}

// mapRaftErr turns raft's errors into this package's.
func (s *Server) mapRaftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return s.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrUnknownOutcome
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	}
	return fmt.Errorf("server: raft: %w", err)
}

// Status implements Backend.
func (s *Server) Status(ctx context.Context) (broker.ClusterStatus, error) {
	_, lid := s.raft.LeaderWithID()
	st := broker.ClusterStatus{
		Self: s.cfg.ID, Leader: string(lid), State: s.raft.State().String(),
		Term: s.raft.CurrentTerm(), AppliedIndex: s.AppliedIndex(),
	}
	cf := s.raft.GetConfiguration()
	if err := s.wait(ctx, cf); err != nil {
		return st, fmt.Errorf("server: status: %w", s.mapRaftErr(err))
	}
	apis := map[string]string{}
	s.fsm.read(func(bs *broker.State) error {
		for _, n := range bs.Nodes() {
			apis[n.ID] = n.APIAddr
		}
		return nil
	})
	for _, m := range cf.Configuration().Servers {
		st.Members = append(st.Members, broker.ClusterNode{
			ID: string(m.ID), RaftAddr: string(m.Address), APIAddr: apis[string(m.ID)],
			Voter: m.Suffrage == raft.Voter, Leader: m.ID == lid,
		})
	}
	return st, nil
}

// Join implements Backend.
func (s *Server) Join(ctx context.Context, id, raftAddr, apiAddr string) error {
	if id == "" || raftAddr == "" {
		return lease.Errorf(lease.EINVALID, "id", "a member needs an id and a raft address")
	}
	req := memberRequest{ID: id, RaftAddr: raftAddr, APIAddr: apiAddr}
	// Joining twice is harmless, so a join cut short by an election is
	// tried again.
	return s.onLeader(ctx, "join", true, func(ctx context.Context) error { return s.joinLocal(ctx, req) }, pathJoin, req)
}

// Remove implements Backend.
func (s *Server) Remove(ctx context.Context, id string) error {
	if id == "" {
		return lease.Errorf(lease.EINVALID, "id", "name the member to remove")
	}
	req := memberRequest{ID: id}
	return s.onLeader(ctx, "remove", false, func(ctx context.Context) error { return s.removeLocal(ctx, id) }, pathRemove, req)
}

func (s *Server) joinLocal(ctx context.Context, m memberRequest) error {
	cf := s.raft.GetConfiguration()
	if err := s.wait(ctx, cf); err != nil {
		return s.mapRaftErr(err)
	}
	for _, srv := range cf.Configuration().Servers {
		switch {
		case string(srv.ID) == m.ID && string(srv.Address) == m.RaftAddr:
			// Already a member: only (re)record its API address.
			return s.recordNode(ctx, m)
		case string(srv.ID) == m.ID || string(srv.Address) == m.RaftAddr:
			// The same id at a new address, or a new id at an old
			// address: the old entry goes first (consul does the same).
			if err := s.wait(ctx, s.raft.RemoveServer(srv.ID, 0, s.timeout(ctx))); err != nil {
				return s.mapRaftErr(err)
			}
		}
	}
	if err := s.wait(ctx, s.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, s.timeout(ctx))); err != nil {
		return s.mapRaftErr(err)
	}
	s.log.Info("member joined", "member", m.ID, "raft_addr", m.RaftAddr)
	return s.recordNode(ctx, m)
}

func (s *Server) recordNode(ctx context.Context, m memberRequest) error {
	if m.APIAddr == "" {
		return nil
	}
	_, err := s.proposeLocal(ctx, mustCommand(broker.CmdPutNode, s.cfg.Clock(), "system", broker.Node{ID: m.ID, RaftAddr: m.RaftAddr, APIAddr: m.APIAddr}), nil)
	return err
}

func (s *Server) removeLocal(ctx context.Context, id string) error {
	cf := s.raft.GetConfiguration()
	if err := s.wait(ctx, cf); err != nil {
		return s.mapRaftErr(err)
	}
	found := false
	for _, srv := range cf.Configuration().Servers {
		found = found || string(srv.ID) == id
	}
	if !found {
		return lease.Errorf(lease.ENOTFOUND, "id", "no member %q", id)
	}
	// Record the removal first: a leader removing itself steps down once
	// the change commits and could not propose after it.
	if _, err := s.proposeLocal(ctx, mustCommand(broker.CmdRemoveNode, s.cfg.Clock(), "system", broker.Name{Name: id}), nil); err != nil {
		return err
	}
	if err := s.wait(ctx, s.raft.RemoveServer(raft.ServerID(id), 0, s.timeout(ctx))); err != nil {
		return s.mapRaftErr(err)
	}
	s.log.Info("member removed", "member", id)
	return nil
}

// joinCluster asks the members listed in Config.Join, in turn, to add this
// node, until one does or the node closes.
func (s *Server) joinCluster() {
	req := memberRequest{ID: s.cfg.ID, RaftAddr: s.advertise, APIAddr: s.cfg.APIAddr}
	delay := 100 * time.Millisecond
	for {
		for _, addr := range s.cfg.Join {
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			_, err := s.call(ctx, baseURL(addr), pathJoin, jsonBody(req))
			cancel()
			if err == nil {
				s.log.Info("joined the cluster", "via", addr)
				return
			}
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn("join", "via", addr, "err", err)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}
