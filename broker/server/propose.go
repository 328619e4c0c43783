package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// payloads gives, for each command type this version knows, a value to
// decode its body into. A body that does not decode must never reach the
// log: State.Apply panics on it, on every replica.
var payloads = map[broker.CommandType]func() any{
	broker.CmdSubmit:      func() any { return new(broker.Submit) },
	broker.CmdAdvance:     nil, // no body
	broker.CmdRelease:     func() any { return new(broker.Release) },
	broker.CmdLeaseState:  func() any { return new(broker.LeaseStateChange) },
	broker.CmdSetPolicy:   func() any { return new(broker.SetPolicy) },
	broker.CmdSetGroup:    func() any { return new(broker.SetGroup) },
	broker.CmdPutUser:     func() any { return new(broker.User) },
	broker.CmdDeleteUser:  func() any { return new(broker.Name) },
	broker.CmdPutToken:    func() any { return new(broker.Token) },
	broker.CmdRevokeToken: func() any { return new(broker.Name) },
	broker.CmdPutHost:     func() any { return new(broker.Host) },
	broker.CmdRemoveHost:  func() any { return new(broker.Name) },
	broker.CmdHeartbeat:   func() any { return new(broker.Name) },
	broker.CmdHostLost:    func() any { return new(broker.Name) },
	broker.CmdPutNode:     func() any { return new(broker.Node) },
	broker.CmdRemoveNode:  func() any { return new(broker.Name) },
	broker.CmdVMState:     func() any { return new(broker.VMStateChange) },
	broker.CmdHostAgent:   func() any { return new(broker.HostAgent) },
	broker.CmdPutImage:    func() any { return new(broker.Image) },
	broker.CmdDelImage:    func() any { return new(broker.Name) },
	broker.CmdShareImage:  func() any { return new(broker.ImageShare) },
	broker.CmdSiteKey:     func() any { return new(broker.SiteKey) },

	broker.CmdPutAccessKey:    func() any { return new(broker.AccessKey) },
	broker.CmdRevokeAccessKey: func() any { return new(broker.Name) },
	broker.CmdPutKeyPair:      func() any { return new(broker.KeyPair) },
	broker.CmdDelKeyPair:      func() any { return new(broker.KeyPairRef) },
	broker.CmdTags:            func() any { return new(broker.TagChange) },
	broker.CmdPutSite:         func() any { return new(broker.Site) },
	broker.CmdRemoveSite:      func() any { return new(broker.Name) },
	broker.CmdRemoteAttempt:   func() any { return new(broker.RemoteStep) },
	broker.CmdRemoteLaunched:  func() any { return new(broker.RemoteStep) },
	broker.CmdRemoteFailed:    func() any { return new(broker.RemoteStep) },
	broker.CmdRemoteEnded:     func() any { return new(broker.RemoteStep) },
}

// checkCommand refuses what State.Apply would panic on: an unknown type or
// a body that does not decode strictly. It returns the decoded body.
func checkCommand(c broker.Command) (any, error) {
	mk, ok := payloads[c.Type]
	if !ok {
		return nil, lease.Errorf(lease.EINVALID, "type", "unknown command type %d", uint8(c.Type))
	}
	if mk == nil {
		return nil, nil
	}
	v := mk()
	dec := json.NewDecoder(bytes.NewReader(c.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, lease.Errorf(lease.EINVALID, "body", "%s body: %v", c.Type, err)
	}
	return v, nil
}

// mustCommand builds a command from a body this package made.
func mustCommand(t broker.CommandType, at time.Time, actor string, body any) broker.Command {
	c, err := broker.NewCommand(t, at, actor, body)
	if err != nil {
		panic(err) // only our own payload types come here
	}
	return c
}

// Propose implements Backend.
func (s *Server) Propose(ctx context.Context, c broker.Command) (res any, err error) {
	defer func() { s.m.proposals.WithLabelValues(c.Type.String(), resultCode(err)).Inc() }()
	body, err := checkCommand(c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err = s.retry(ctx, func() (bool, error) {
		if s.raft.State() == raft.Leader {
			res, err = s.proposeLocal(ctx, c, body)
			return errors.Is(err, ErrNotLeader), err
		}
		_, id := s.raft.LeaderWithID()
		api := s.fsm.api(string(id))
		if api == "" {
			return true, s.notLeader()
		}
		s.m.forwarded.WithLabelValues("propose").Inc()
		rep, err := s.fwd.forward(ctx, api, c)
		if err != nil {
			return retryable(err), err
		}
		res, err = decodeReply(c.Type, rep)
		return false, err
	})
	return res, err
}

// onLeader runs local on the leader, or sends body to the leader's path.
// An idempotent operation is also retried when its outcome is unknown.
func (s *Server) onLeader(ctx context.Context, kind string, idempotent bool, local func(context.Context) error, path string, body any) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	again := func(err error) bool {
		return retryable(err) || idempotent && errors.Is(err, ErrUnknownOutcome) && ctx.Err() == nil
	}
	return s.retry(ctx, func() (bool, error) {
		if s.raft.State() == raft.Leader {
			err := local(ctx)
			return again(err), err
		}
		_, id := s.raft.LeaderWithID()
		api := s.fsm.api(string(id))
		if api == "" {
			return true, s.notLeader()
		}
		s.m.forwarded.WithLabelValues(kind).Inc()
		_, err := s.call(ctx, api, path, jsonBody(body))
		return again(err), err
	})
}

// bound gives ctx the default deadline if it has none.
func (s *Server) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.cfg.ProposeTimeout)
}

// retry calls f until it says not to retry, backing off briefly: while
// an election runs there is no leader to go to.
func (s *Server) retry(ctx context.Context, f func() (bool, error)) error {
	delay := 2 * time.Millisecond
	for {
		again, err := f()
		if !again {
			return err
		}
		select {
		case <-s.ctx.Done():
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("server: no leader took the request in time (%v): %w", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
}

// proposeLocal commits c on this node, which should be the leader; body is
// c's decoded payload (see checkCommand).
func (s *Server) proposeLocal(ctx context.Context, c broker.Command, body any) (any, error) {
	if c.Type == broker.CmdSubmit {
		sub, _ := body.(*broker.Submit)
		if sub == nil {
			var err error
			if sub, err = decodeSubmit(c); err != nil {
				return nil, err
			}
		}
		return s.batch.submit(ctx, c.Actor, sub.Requests, c.Body)
	}
	c.Time = s.cfg.Clock().UTC()
	return s.apply(ctx, c)
}

func decodeSubmit(c broker.Command) (*broker.Submit, error) {
	v, err := checkCommand(c)
	if err != nil {
		return nil, err
	}
	return v.(*broker.Submit), nil
}

// proposeSystem commits the leader's own command, without forwarding.
func (s *Server) proposeSystem(ctx context.Context, t broker.CommandType, body any) (any, error) {
	return s.proposeLocal(ctx, mustCommand(t, s.cfg.Clock(), "system", body), nil)
}

// apply hands c to Raft and waits until it is applied here.
func (s *Server) apply(ctx context.Context, c broker.Command) (any, error) {
	data, err := broker.Encode(c)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	f := s.raft.Apply(data, s.timeout(ctx))
	if ctx.Done() == nil {
		err = f.Error()
	} else {
		err = s.wait(ctx, f)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("server: %s (%v): %w", c.Type, ctx.Err(), ErrUnknownOutcome)
		}
		return nil, s.mapRaftErr(err)
	}
	s.m.commit.Observe(time.Since(start).Seconds())
	r := f.Response().(applyResult)
	return r.res, r.err
}

// resultCode labels a proposal's outcome in metrics.
func resultCode(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNotLeader):
		return "not_leader"
	case errors.Is(err, ErrUnknownOutcome):
		return "unknown_outcome"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return lease.ErrorCode(err)
}

// Batching is group commit: while BatchDepth entries of submits are in
// flight, new submits wait, and when one commits, everything waiting goes
// in the next entry (up to MaxBatch requests; more waiting makes more
// entries at once). An idle node proposes a submit at once; under load
// each entry carries what arrived during the previous round, so
// throughput comes from concurrency: an entry costs one append (one
// fsync) and one replication round however many requests it carries.
// Requests of one actor become one CmdSubmit; several actors' commands
// share a batch entry (see entry.go).

// pending is one caller's submit waiting for its entry.
type pending struct {
	ctx   context.Context
	actor string
	reqs  []lease.Request
	body  json.RawMessage // the caller's own body, reused when it goes alone
	done  chan batchReply
}

type batchReply struct {
	res []broker.SubmitResult
	err error
}

type batcher struct {
	s  *Server
	in chan *pending
	// finished gets a token whenever an entry is done.
	finished chan struct{}
}

func newBatcher(s *Server) *batcher {
	return &batcher{s: s, in: make(chan *pending, 4096), finished: make(chan struct{}, 64)}
}

// submit queues reqs and waits for their results.
func (b *batcher) submit(ctx context.Context, actor string, reqs []lease.Request, body json.RawMessage) ([]broker.SubmitResult, error) {
	p := &pending{ctx: ctx, actor: actor, reqs: reqs, body: body, done: make(chan batchReply, 1)}
	select {
	case b.in <- p:
	case <-ctx.Done():
		return nil, fmt.Errorf("server: submit not proposed: %w", ctx.Err())
	case <-b.s.ctx.Done():
		return nil, ErrClosed
	}
	select {
	case r := <-p.done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("server: submit (%v): %w", ctx.Err(), ErrUnknownOutcome)
	}
}

func (b *batcher) run(ctx context.Context) {
	var (
		waiting  []*pending
		n        int // requests waiting
		inflight int
	)
	for {
		select {
		case p := <-b.in:
			waiting, n = append(waiting, p), n+len(p.reqs)
		case <-b.finished:
			inflight--
		case <-ctx.Done():
			for _, p := range waiting {
				p.done <- batchReply{err: ErrClosed}
			}
			b.drain()
			return
		}
		// Take whatever else is ready, without waiting.
	more:
		for {
			select {
			case p := <-b.in:
				waiting, n = append(waiting, p), n+len(p.reqs)
			case <-b.finished:
				inflight--
			default:
				break more
			}
		}
		// One timestamp for all that goes now: requests decided at one
		// instant share their calendar breakpoints, which keeps the
		// engine's searches short.
		now := b.s.cfg.Clock().UTC()
		for len(waiting) > 0 && (inflight < b.s.cfg.BatchDepth || n >= b.s.cfg.MaxBatch) {
			var ps []*pending
			ps, waiting = b.take(waiting)
			for _, p := range ps {
				n -= len(p.reqs)
			}
			inflight++
			go b.propose(now, ps)
		}
	}
}

// take splits off up to MaxBatch requests (whole callers, at least one)
// from the front of waiting.
func (b *batcher) take(waiting []*pending) (batch, rest []*pending) {
	k, i := 0, 0
	for ; i < len(waiting); i++ {
		if k > 0 && k+len(waiting[i].reqs) > b.s.cfg.MaxBatch {
			break
		}
		k += len(waiting[i].reqs)
	}
	return waiting[:i:i], waiting[i:]
}

// drain fails what is still queued at shutdown.
func (b *batcher) drain() {
	for {
		select {
		case p := <-b.in:
			p.done <- batchReply{err: ErrClosed}
		default:
			return
		}
	}
}

// propose commits ps as one entry, a CmdSubmit per actor, and hands each
// caller its slice of its actor's results.
func (b *batcher) propose(now time.Time, ps []*pending) {
	defer func() {
		select {
		case b.finished <- struct{}{}:
		case <-b.s.ctx.Done():
		}
	}()
	// Callers that gave up before their request was proposed are told so
	// and left out.
	live := ps[:0]
	for _, p := range ps {
		if err := p.ctx.Err(); err != nil {
			p.done <- batchReply{err: fmt.Errorf("server: submit not proposed: %w", err)}
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	byActor := map[string][]*pending{}
	var actors []string
	total := 0
	for _, p := range live {
		if _, ok := byActor[p.actor]; !ok {
			actors = append(actors, p.actor)
		}
		byActor[p.actor] = append(byActor[p.actor], p)
		total += len(p.reqs)
	}
	cs := make([]broker.Command, len(actors))
	for i, a := range actors {
		group := byActor[a]
		if len(group) == 1 && group[0].body != nil {
			cs[i] = broker.Command{Type: broker.CmdSubmit, Time: now, Actor: a, Body: group[0].body}
			continue
		}
		var reqs []lease.Request
		for _, p := range group {
			reqs = append(reqs, p.reqs...)
		}
		cs[i] = mustCommand(broker.CmdSubmit, now, a, broker.Submit{Requests: reqs})
	}
	b.s.m.batch.Observe(float64(total))
	results, err := b.s.applyBatch(cs)
	for i, a := range actors {
		r := applyResult{err: err}
		if err == nil {
			r = results[i]
		}
		out, _ := r.res.([]broker.SubmitResult)
		off := 0
		for _, p := range byActor[a] {
			k := len(p.reqs)
			switch {
			case r.err != nil:
				p.done <- batchReply{err: r.err}
			case off+k > len(out):
				p.done <- batchReply{err: fmt.Errorf("server: a submit of %d requests got %d results", off+k, len(out))}
			default:
				p.done <- batchReply{res: out[off : off+k : off+k]}
			}
			off += k
		}
	}
}

// applyBatch commits cs as one entry (a plain one when there is one) and
// returns each command's result.
func (s *Server) applyBatch(cs []broker.Command) ([]applyResult, error) {
	var data []byte
	var err error
	if len(cs) == 1 {
		data, err = broker.Encode(cs[0])
	} else {
		data, err = encodeBatch(cs)
	}
	if err != nil {
		return nil, err
	}
	start := time.Now()
	f := s.raft.Apply(data, s.cfg.ProposeTimeout)
	if err := f.Error(); err != nil {
		return nil, s.mapRaftErr(err)
	}
	s.m.commit.Observe(time.Since(start).Seconds())
	switch r := f.Response().(type) {
	case applyResult:
		return []applyResult{r}, nil
	case []applyResult:
		return r, nil
	}
	return nil, fmt.Errorf("server: unexpected apply response %T", f.Response())
}
