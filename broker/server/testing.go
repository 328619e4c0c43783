package server

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"
)

// TestConfig returns a config for a node in a test: data in t.TempDir(),
// Raft on a free loopback port, a cluster secret, quiet logs, and timings
// short enough for tests to elect and fail over in well under a second.
func TestConfig(t testing.TB, id string) Config {
	c := DefaultConfig()
	c.ID = id
	c.DataDir = filepath.Join(t.TempDir(), id)
	c.RaftAddr = "127.0.0.1:0"
	c.ClusterSecret = "test-cluster-secret"
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.AdvanceEvery = 20 * time.Millisecond
	c.HostTimeout = 0
	c.Logger = slog.New(slog.DiscardHandler)
	c.RaftLogLevel = "off"
	return c
}
