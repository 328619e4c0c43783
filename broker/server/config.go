package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fairlease/fairlease/broker"
)

// Peer is a voter of the initial cluster that Bootstrap writes.
type Peer struct {
	ID       string `toml:"id" json:"id"`
	RaftAddr string `toml:"raft_addr" json:"raft_addr"`
}

// Config configures one broker node. Libraries never read files or the
// environment; the CLI fills this from TOML and flags.
type Config struct {
	// ID names the node in the Raft configuration; it must stay the same
	// across restarts.
	ID string
	// DataDir holds raft.db (log and stable store), snapshots/ and
	// audit.log.
	DataDir string
	// RaftAddr is the address the Raft transport binds; AdvertiseAddr the
	// one peers dial (default RaftAddr, which then must not be 0.0.0.0).
	RaftAddr      string
	AdvertiseAddr string
	// APIAddr is this node's HTTP API as other nodes reach it ("host:port"
	// means http://host:port). It is stored in the replicated state so
	// that followers can forward writes to the leader.
	APIAddr string

	// Bootstrap makes a new cluster of this node and Peers when the data
	// directory holds no Raft state yet; it is a no-op on restart. Every
	// node of a listed set must bootstrap with the same Peers.
	Bootstrap bool
	Peers     []Peer
	// Join lists API addresses of existing members; a node without Raft
	// state asks them, in turn, to add it as a voter.
	Join []string
	// ClusterSecret authenticates forwarding and joining between nodes
	// (/internal/v1/...). Empty refuses every internal request.
	ClusterSecret string

	// Raft timing. The defaults suit a LAN; see DefaultConfig.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// Snapshots: taken every SnapshotInterval when SnapshotThreshold new
	// entries exist; TrailingLogs entries stay behind for slow followers.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64

	// MaxBatch caps the lease requests merged into one log entry;
	// BatchDepth is how many entries of submits may be in flight: more
	// submits wait and go together in the next entry.
	MaxBatch   int
	BatchDepth int
	// ProposeTimeout bounds a Propose whose context has no deadline.
	ProposeTimeout time.Duration

	// Timed work on the leader. HostTimeout 0 turns heartbeat expiry off.
	AdvanceEvery   time.Duration
	HostTimeout    time.Duration
	ReconcileEvery time.Duration
	// LeaderJobs is more timed work for the leader (the overflow loop):
	// each runs every Every while this node leads, one run at a time.
	LeaderJobs []LeaderJob

	// TLS, when set, secures Raft traffic between peers: it must hold
	// this node's certificate and the CAs to verify peers with (both
	// ways: set ClientAuth to tls.RequireAndVerifyClientCert).
	TLS *tls.Config
	// HTTPClient forwards to the leader's API (nil: a default client; set
	// one with the CA when the API serves TLS from a private CA).
	HTTPClient *http.Client
	// Transport replaces the TCP transport (tests use raft's in-memory
	// one); RaftAddr and TLS are then ignored.
	Transport raft.Transport

	// Registry receives the node's metrics (nil: a new registry, see
	// Server.Registry).
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// RaftLogLevel filters hashicorp/raft's own log: trace, debug, info,
	// warn or error.
	RaftLogLevel string
	// Clock stamps commands on the leader (default time.Now).
	Clock func() time.Time
}

// LeaderJob is timed work the leader runs besides its own; Run gets this
// node as the Backend to read and propose through.
type LeaderJob struct {
	Name  string
	Every time.Duration
	Run   func(ctx context.Context, b broker.Backend)
}

// DefaultConfig returns defaults for a LAN. Raft's own defaults (1 s
// heartbeat and election timeouts) give ~2.2 s failover. A follower calls
// an election after hearing nothing for one to two heartbeat timeouts, so
// with 150 ms a dead leader is replaced in ~0.3–0.5 s (measured: median
// 0.34 s, max 0.5 s over TCP loopback under load, bench failover), well
// under a second, while 150 ms is still far above a LAN round trip and
// the few-ms stalls of fsync and GC: no spurious elections were seen with
// two cores saturated by three nodes (bench admission). Across a WAN,
// raise all three timeouts.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   150 * time.Millisecond,
		ElectionTimeout:    150 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		// Followers learn of commits on the next append or after this:
		// short, so that their local reads lag little.
		CommitTimeout:     20 * time.Millisecond,
		SnapshotThreshold: 8192,
		SnapshotInterval:  2 * time.Minute,
		// Submit entries carry up to MaxBatch requests, so keep fewer
		// trailing entries than raft's 10,240.
		TrailingLogs:   2048,
		MaxBatch:       512,
		BatchDepth:     1,
		ProposeTimeout: 10 * time.Second,
		AdvanceEvery:   200 * time.Millisecond,
		HostTimeout:    30 * time.Second,
		ReconcileEvery: time.Minute,
		RaftLogLevel:   "warn",
	}
}

// Validate checks c and names the first field at fault.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.ID == "" {
		bad("id: a node needs an id")
	}
	if c.DataDir == "" {
		bad("data_dir: a node needs a data directory")
	}
	if c.Transport == nil && c.RaftAddr == "" {
		bad("raft_addr: a node needs an address to bind Raft to")
	}
	if c.Transport == nil && c.AdvertiseAddr == "" && isUnspecified(c.RaftAddr) {
		bad("advertise_addr: raft_addr %s binds every interface; say which address peers dial", c.RaftAddr)
	}
	if c.HeartbeatTimeout < 5*time.Millisecond || c.ElectionTimeout < 5*time.Millisecond {
		bad("heartbeat_timeout, election_timeout: at least 5ms, got %s and %s", c.HeartbeatTimeout, c.ElectionTimeout)
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		bad("election_timeout: %s is below heartbeat_timeout %s", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.LeaderLeaseTimeout < 5*time.Millisecond || c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		bad("leader_lease_timeout: between 5ms and heartbeat_timeout %s, got %s", c.HeartbeatTimeout, c.LeaderLeaseTimeout)
	}
	if c.CommitTimeout < time.Millisecond {
		bad("commit_timeout: at least 1ms, got %s", c.CommitTimeout)
	}
	if c.SnapshotInterval < 5*time.Millisecond {
		bad("snapshot_interval: at least 5ms, got %s", c.SnapshotInterval)
	}
	if c.SnapshotThreshold < 1 {
		bad("snapshot_threshold: at least 1")
	}
	if c.MaxBatch < 1 {
		bad("max_batch: at least 1, got %d", c.MaxBatch)
	}
	if c.BatchDepth < 1 {
		bad("batch_depth: at least 1, got %d", c.BatchDepth)
	}
	if c.ProposeTimeout <= 0 {
		bad("propose_timeout: must be positive, got %s", c.ProposeTimeout)
	}
	if c.AdvanceEvery <= 0 || c.ReconcileEvery <= 0 || c.HostTimeout < 0 {
		bad("advance_every, reconcile_every, host_timeout: got %s, %s and %s", c.AdvanceEvery, c.ReconcileEvery, c.HostTimeout)
	}
	if len(c.Peers) > 0 && !c.Bootstrap {
		bad("peers: only a bootstrapping node lists the initial peers")
	}
	if c.Bootstrap && len(c.Join) > 0 {
		bad("join: a node either bootstraps a cluster or joins one")
	}
	if len(c.Join) > 0 && c.ClusterSecret == "" {
		bad("cluster_secret: joining needs the cluster secret")
	}
	for i, p := range c.Peers {
		if p.ID == "" || p.RaftAddr == "" {
			bad("peers[%d]: a peer needs an id and a raft_addr", i)
		}
	}
	switch strings.ToLower(c.RaftLogLevel) {
	case "", "trace", "debug", "info", "warn", "error", "off":
	default:
		bad("raft_log_level: trace, debug, info, warn, error or off, got %q", c.RaftLogLevel)
	}
	if len(errs) > 0 {
		return fmt.Errorf("server: config: %w", errors.Join(errs...))
	}
	return nil
}

func isUnspecified(addr string) bool {
	host := addr
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		host = addr[:i]
	}
	host = strings.Trim(host, "[]")
	return host == "" || host == "0.0.0.0" || host == "::"
}
