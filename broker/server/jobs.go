package server

import (
	"context"
	"time"

	"github.com/go-co-op/gocron/v2"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// Timed work runs only on the leader, from when it has applied everything
// committed until it loses leadership, and changes the state only through
// the log:
//
//   - advance: every AdvanceEvery, if the engine has something due (a
//     deferred lease's start, a lease's end, a start_by passing), propose
//     CmdAdvance; lease starts and expiries happen this way.
//   - host expiry: every 5 AdvanceEvery (at most a quarter of HostTimeout),
//     hosts not heard from for HostTimeout get CmdHostLost,
//     once (the command marks them lost). A new leader gives every host a
//     full timeout from its election, since heartbeats sent to the old
//     leader during the election may be lost.
//   - reconcile: every ReconcileEvery, propose CmdAdvance whatever Next
//     says, then check the calendar and the leases and log anything
//     inconsistent.
//
// Usage decay needs no job: the engine decays usage lazily from the time
// of the last charge whenever it reads it (fairshare's decayed), so there
// is nothing to write on a timer.

// runJobs runs the scheduler until ctx ends.
func (s *Server) runJobs(ctx context.Context) {
	sch, err := gocron.NewScheduler(gocron.WithStopTimeout(5 * time.Second))
	if err != nil {
		s.log.Error("start timed work", "err", err)
		return
	}
	type job struct {
		name  string
		every time.Duration
		run   func(context.Context)
	}
	jobs := []job{
		{"advance", s.cfg.AdvanceEvery, s.advanceIfDue},
		{"reconcile", s.cfg.ReconcileEvery, s.reconcile},
	}
	if s.cfg.HostTimeout > 0 {
		// Often enough that a host is marked lost soon after its timeout.
		jobs = append(jobs, job{"host-expiry", min(s.cfg.HostTimeout/4, 5*s.cfg.AdvanceEvery), s.expireHosts})
	}
	for _, lj := range s.cfg.LeaderJobs {
		if lj.Every > 0 && lj.Run != nil {
			run := lj.Run
			jobs = append(jobs, job{lj.Name, lj.Every, func(ctx context.Context) { run(ctx, s) }})
		}
	}
	for _, j := range jobs {
		_, err := sch.NewJob(gocron.DurationJob(j.every), gocron.NewTask(j.run), gocron.WithContext(ctx),
			gocron.WithName(j.name), gocron.WithSingletonMode(gocron.LimitModeReschedule))
		if err != nil {
			s.log.Error("schedule timed work", "job", j.name, "err", err)
		}
	}
	sch.Start()
	<-ctx.Done()
	if err := sch.Shutdown(); err != nil {
		s.log.Warn("stop timed work", "err", err)
	}
}

// advanceIfDue proposes CmdAdvance when the engine has something due.
func (s *Server) advanceIfDue(ctx context.Context) {
	var next time.Time
	var ok bool
	s.fsm.read(func(st *broker.State) error {
		next, ok = st.Next()
		return nil
	})
	if !ok || next.After(s.cfg.Clock()) {
		return
	}
	if _, err := s.proposeSystem(ctx, broker.CmdAdvance, struct{}{}); err != nil && ctx.Err() == nil {
		s.log.Warn("advance", "due", next, "err", err)
	}
}

// expireHosts marks hosts lost that missed their heartbeats.
func (s *Server) expireHosts(ctx context.Context) {
	now := s.cfg.Clock()
	since := time.Unix(0, s.leaderSince.Load())
	var lost []string
	s.fsm.read(func(st *broker.State) error {
		for _, h := range st.Hosts() {
			seen := h.LastSeen
			if since.After(seen) {
				seen = since
			}
			if h.State == broker.HostUp && now.Sub(seen) > s.cfg.HostTimeout {
				lost = append(lost, h.Name)
			}
		}
		return nil
	})
	for _, name := range lost {
		if ctx.Err() != nil {
			return
		}
		res, err := s.proposeSystem(ctx, broker.CmdHostLost, broker.Name{Name: name})
		if err != nil {
			s.log.Warn("mark host lost", "host", name, "err", err)
			continue
		}
		r, _ := res.(broker.HostLostResult)
		s.log.Warn("host lost: no heartbeat", "host", name, "timeout", s.cfg.HostTimeout, "leases", r.Affected)
	}
}

// reconcile advances the state and logs what does not add up.
func (s *Server) reconcile(ctx context.Context) {
	if _, err := s.proposeSystem(ctx, broker.CmdAdvance, struct{}{}); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("reconcile: advance", "err", err)
		}
		return
	}
	s.fsm.read(func(st *broker.State) error {
		if err := st.CheckCalendar(); err != nil {
			s.log.Error("reconcile: calendar inconsistent", "err", err)
		}
		now := st.Now()
		lost := map[string]bool{}
		for _, h := range st.Hosts() {
			lost[h.Name] = h.State == broker.HostLost
		}
		for _, l := range st.Leases(func(l *broker.Lease) bool { return l.Live() }) {
			switch {
			case !l.End.IsZero() && l.End.Before(now):
				s.log.Error("reconcile: lease past its end is still live", "lease", l.ID, "state", l.State, "end", l.End)
			case l.State == lease.StateStarting || l.State == lease.StateRunning:
				for _, vm := range l.VMs {
					if lost[vm.Host] {
						s.log.Warn("reconcile: lease has a VM on a lost host", "lease", l.ID, "host", vm.Host)
						break
					}
				}
			}
		}
		return nil
	})
}
