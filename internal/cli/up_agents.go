package cli

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/broker/server"
	"github.com/fairlease/fairlease/hostagent"
	"github.com/fairlease/fairlease/lease"
)

// startAgents runs n host agents in this process, each with its own state
// directory, enrolled with a fresh join token: the local site of
// fairlease up with real libvirt domains.
func startAgents(ctx context.Context, s *server.Server, fl upFlags, apiAddr string, capacity lease.Resources, log *slog.Logger) (<-chan error, error) {
	join, err := joinToken(ctx, s)
	if err != nil {
		return nil, err
	}
	errs := make(chan error, fl.hosts)
	ready := make(chan struct{}, fl.hosts)
	// Agents find their domains by host name. libvirt's test driver is
	// private to this process, but qemu:///system is shared by the
	// machine: another up's agents there must not take these domains for
	// orphans, so qemu hosts carry a tag of the data directory.
	prefix := fl.driver
	if fl.driver == "qemu" {
		abs, _ := filepath.Abs(fl.data)
		sum := sha256.Sum256([]byte(abs))
		prefix = fmt.Sprintf("qemu-%x-", sum[:2])
	}
	for i := range fl.hosts {
		cfg := hostagent.DefaultConfig()
		cfg.Brokers, cfg.JoinToken = []string{apiAddr}, join
		cfg.Host = fmt.Sprintf("%s%02d", prefix, i+1)
		cfg.Driver = fl.driver
		cfg.StateDir = filepath.Join(fl.data, "agents", cfg.Host)
		cfg.Cores, cfg.MemoryMiB = capacity.Cores, capacity.MemoryMiB
		cfg.Heartbeat = 2 * time.Second
		cfg.SwarmListen = "127.0.0.1:0"
		cfg.SwarmDownloadRate = fl.imageBytes
		cfg.ShutdownGrace = 10 * time.Second
		go func() {
			errs <- runAgent(ctx, cfg, log.With("host", cfg.Host), func(*hostagent.Agent) { ready <- struct{}{} })
		}()
	}
	for range fl.hosts {
		select {
		case <-ready:
		case err := <-errs:
			return nil, err
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("the host agents did not register within 30 s")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return errs, nil
}

// joinToken makes a join token for up's own agents.
func joinToken(ctx context.Context, s *server.Server) (string, error) {
	now := time.Now()
	c, _ := broker.NewCommand(broker.CmdPutUser, now, "up", broker.User{Name: api.EnrollUser, Role: broker.RoleAgent})
	if _, err := s.Propose(ctx, c); err != nil {
		return "", fmt.Errorf("create the enrolment identity: %w", err)
	}
	id, secret, token := api.NewToken()
	c, _ = broker.NewCommand(broker.CmdPutToken, now, "up", broker.Token{ID: id, User: api.EnrollUser, Hash: api.Hash(secret), Name: "fairlease up agents"})
	if _, err := s.Propose(ctx, c); err != nil {
		return "", fmt.Errorf("create the join token: %w", err)
	}
	return token, nil
}
