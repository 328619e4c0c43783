// Package simhosts runs simulated hosts inside a broker process, so that
// leases go through their whole life (starting, running, ended) before real
// host agents exist: each simulated host registers, sends heartbeats, and
// reports the VMs placed on it running after a short boot delay. Every
// effect goes through the broker's log, as a real agent's would.
package simhosts

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// Backend is the part of broker.Backend simulated hosts use.
type Backend interface {
	Read(ctx context.Context, strong bool, fn func(*broker.State) error) error
	Propose(ctx context.Context, c broker.Command) (any, error)
}

// Config describes the simulated site.
type Config struct {
	// Hosts is how many hosts; Prefix names them (sim01, sim02, ...).
	Hosts  int
	Prefix string
	// Capacity is each host's size.
	Capacity lease.Resources
	// Boot is how long a VM takes to report running.
	Boot time.Duration
	// Poll is how often hosts look for work; Heartbeat how often they say
	// they are alive.
	Poll, Heartbeat time.Duration
	Logger          *slog.Logger
	// Now is the clock (tests pass their own).
	Now func() time.Time
}

// DefaultConfig is four hosts of 8 cores and 32 GiB that boot VMs in a
// second.
func DefaultConfig() Config {
	return Config{Hosts: 4, Prefix: "sim", Capacity: lease.Resources{Cores: 8, MemoryMiB: 32 * 1024},
		Boot: time.Second, Poll: 250 * time.Millisecond, Heartbeat: 5 * time.Second, Now: time.Now}
}

// Names returns the hosts' names.
func (c Config) Names() []string {
	out := make([]string, c.Hosts)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", c.Prefix, i+1)
	}
	return out
}

// Run registers the hosts and serves them until ctx ends.
func Run(ctx context.Context, b Backend, cfg Config) error {
	if cfg.Hosts < 1 || cfg.Capacity.Cores < 1 {
		return fmt.Errorf("simhosts: want at least one host with cores, got %d hosts of %d cores", cfg.Hosts, cfg.Capacity.Cores)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	names := cfg.Names()
	for _, n := range names {
		if err := propose(ctx, b, cfg, broker.CmdPutHost, n, broker.Host{Name: n, Capacity: cfg.Capacity}); err != nil {
			return fmt.Errorf("simhosts: register %s: %w", n, err)
		}
	}
	mine := make(map[string]bool, len(names))
	for _, n := range names {
		mine[n] = true
	}
	poll := time.NewTicker(cfg.Poll)
	defer poll.Stop()
	beat := time.NewTicker(cfg.Heartbeat)
	defer beat.Stop()
	seen := map[lease.ID]time.Time{} // starting leases and when they were first seen
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-beat.C:
			for _, n := range names {
				if err := propose(ctx, b, cfg, broker.CmdHeartbeat, n, broker.Name{Name: n}); err != nil && ctx.Err() == nil {
					cfg.Logger.Warn("heartbeat", "host", n, "err", err)
				}
			}
		case <-poll.C:
			var due []lease.ID
			now := cfg.Now()
			still := map[lease.ID]time.Time{}
			err := b.Read(ctx, false, func(s *broker.State) error {
				for _, l := range s.Leases(func(l *broker.Lease) bool { return l.State == lease.StateStarting }) {
					if len(l.VMs) == 0 || !mine[l.VMs[0].Host] {
						continue
					}
					first, ok := seen[l.ID]
					if !ok {
						first = now
					}
					if now.Sub(first) >= cfg.Boot {
						due = append(due, l.ID)
					} else {
						still[l.ID] = first
					}
				}
				return nil
			})
			seen = still
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				cfg.Logger.Warn("read state", "err", err)
				continue
			}
			for _, id := range due {
				err := propose(ctx, b, cfg, broker.CmdLeaseState, "simhosts",
					broker.LeaseStateChange{ID: id, State: lease.StateRunning, Note: "simulated VMs booted"})
				if err != nil && lease.ErrorCode(err) != lease.ECONFLICT && ctx.Err() == nil {
					cfg.Logger.Warn("report running", "lease", id, "err", err)
				}
			}
		}
	}
}

func propose(ctx context.Context, b Backend, cfg Config, t broker.CommandType, actor string, body any) error {
	c, err := broker.NewCommand(t, cfg.Now(), actor, body)
	if err != nil {
		return err
	}
	_, err = b.Propose(ctx, c)
	return err
}
