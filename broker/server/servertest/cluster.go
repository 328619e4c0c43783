// Package servertest runs broker clusters inside one process, over TCP
// loopback or raft's in-memory transport, for tests and benchmarks. Each
// node serves its internal HTTP endpoints (forwarding, joining) on a
// loopback port, as the API would.
package servertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/server"
)

// Options describe a cluster.
type Options struct {
	// Nodes is how many voters (n1, n2, ...).
	Nodes int
	// Dir holds one data directory per node.
	Dir string
	// InMem uses raft.InmemTransport instead of TCP on 127.0.0.1.
	InMem bool
	// Config returns a node's base config (default server.DefaultConfig
	// with a quiet logger); the cluster sets ID, DataDir, addresses,
	// Bootstrap and the secret.
	Config func(id string) server.Config
	// Handler, when set, makes what each node serves on its API address
	// (the whole REST API, say); default: only the internal endpoints.
	Handler func(server.APIParams) (http.Handler, error)
}

// Node is one member. Server is nil while the node is stopped.
type Node struct {
	ID     string
	Server *server.Server

	cfg      server.Config
	raftAddr string
	apiLn    net.Listener
	apiAddr  string
	http     *http.Server
	inmem    *raft.InmemTransport
}

// APIAddr is the base URL of the node's internal endpoints.
func (n *Node) APIAddr() string { return n.apiAddr }

// DataDir is the node's data directory.
func (n *Node) DataDir() string { return n.cfg.DataDir }

// RaftAddr is the address the node's Raft listens on.
func (n *Node) RaftAddr() string { return n.raftAddr }

// Running reports whether the node runs.
func (n *Node) Running() bool { return n.Server != nil }

// Cluster is a set of nodes in this process.
type Cluster struct {
	Nodes []*Node

	opts   Options
	secret string
	mu     sync.Mutex // guards the in-memory transports' wiring
}

// Start starts a cluster: n1 bootstraps it, the others join through the
// leader, and Start returns once every node is a member.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Nodes < 1 {
		return nil, errors.New("servertest: a cluster needs at least one node")
	}
	if o.Config == nil {
		o.Config = func(string) server.Config {
			c := server.DefaultConfig()
			c.Logger = slog.New(slog.DiscardHandler)
			c.RaftLogLevel = "off"
			return c
		}
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	c := &Cluster{opts: o, secret: hex.EncodeToString(secret)}
	for i := range o.Nodes {
		c.Nodes = append(c.Nodes, &Node{ID: fmt.Sprintf("n%d", i+1)})
	}
	for i, n := range c.Nodes {
		if err := c.start(n, i == 0); err != nil {
			c.Close()
			return nil, err
		}
		if i == 0 {
			if _, err := c.Leader(ctx); err != nil {
				c.Close()
				return nil, err
			}
			continue
		}
		l, err := c.Leader(ctx)
		if err == nil {
			err = l.Server.Join(ctx, n.ID, n.raftAddr, n.apiAddr)
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("servertest: join %s: %w", n.ID, err)
		}
	}
	return c, nil
}

func (c *Cluster) start(n *Node, bootstrap bool) error {
	cfg := c.opts.Config(n.ID)
	cfg.ID = n.ID
	cfg.DataDir = filepath.Join(c.opts.Dir, n.ID)
	cfg.Bootstrap = bootstrap
	cfg.ClusterSecret = c.secret
	cfg.Join = nil
	// The API listener first: its address goes into the config.
	apiAddr := "127.0.0.1:0"
	if n.apiAddr != "" {
		apiAddr = n.apiAddr[len("http://"):]
	}
	ln, err := net.Listen("tcp", apiAddr)
	if err != nil {
		return fmt.Errorf("servertest: %s API listener: %w", n.ID, err)
	}
	n.apiLn, n.apiAddr = ln, "http://"+ln.Addr().String()
	cfg.APIAddr = n.apiAddr
	if c.opts.InMem {
		c.mu.Lock()
		_, t := raft.NewInmemTransport(raft.ServerAddress(n.ID))
		n.inmem, cfg.Transport = t, t
		for _, o := range c.Nodes {
			if o != n && o.inmem != nil && o.Running() {
				t.Connect(o.inmem.LocalAddr(), o.inmem)
				o.inmem.Connect(t.LocalAddr(), t)
			}
		}
		c.mu.Unlock()
	} else if n.raftAddr != "" {
		cfg.RaftAddr = n.raftAddr // a restart keeps its address
	} else {
		cfg.RaftAddr = "127.0.0.1:0"
	}
	s, err := server.New(cfg)
	if err != nil {
		ln.Close()
		return fmt.Errorf("servertest: start %s: %w", n.ID, err)
	}
	n.Server, n.cfg, n.raftAddr = s, cfg, s.RaftAddr()
	var h http.Handler = s.InternalHandler()
	if c.opts.Handler != nil {
		if h, err = c.opts.Handler(server.APIParams{Backend: s, Internal: s.InternalHandler(), Registry: s.Registry(), DataDir: cfg.DataDir}); err != nil {
			s.Close()
			ln.Close()
			return fmt.Errorf("servertest: %s API: %w", n.ID, err)
		}
	}
	n.http = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go n.http.Serve(ln)
	return nil
}

// Stop kills node i as a crash would look to its peers: its API stops
// answering, Raft shuts down without handing leadership over, and its
// transport closes.
func (c *Cluster) Stop(i int) error {
	n := c.Nodes[i]
	if !n.Running() {
		return nil
	}
	n.http.Close()
	if n.inmem != nil {
		c.mu.Lock()
		for _, o := range c.Nodes {
			if o != n && o.inmem != nil {
				o.inmem.Disconnect(n.inmem.LocalAddr())
			}
		}
		n.inmem.DisconnectAll()
		c.mu.Unlock()
	}
	err := n.Server.Close()
	n.Server = nil
	if n.inmem != nil {
		n.inmem.Close()
		n.inmem = nil
	}
	return err
}

// Restart starts a stopped node again on its data directory and addresses;
// it rejoins by itself, being in the cluster's configuration.
func (c *Cluster) Restart(i int) error {
	n := c.Nodes[i]
	if n.Running() {
		return nil
	}
	return c.start(n, false)
}

// Secret is the cluster secret the nodes share.
func (c *Cluster) Secret() string { return c.secret }

// Close stops every node.
func (c *Cluster) Close() error {
	var errs []error
	for i := range c.Nodes {
		errs = append(errs, c.Stop(i))
	}
	return errors.Join(errs...)
}

// Leader waits for a running node to lead and have applied every entry of
// earlier terms, and returns it.
func (c *Cluster) Leader(ctx context.Context) (*Node, error) {
	var leader *Node
	err := WaitFor(ctx, func() error {
		leader = nil
		for _, n := range c.Nodes {
			if n.Running() && n.Server.IsLeader() {
				leader = n
			}
		}
		if leader == nil {
			return errors.New("no leader")
		}
		return leader.Server.Read(ctx, true, func(*broker.State) error { return nil })
	})
	if err != nil {
		return nil, fmt.Errorf("servertest: wait for a leader: %w", err)
	}
	return leader, nil
}

// Followers returns the running nodes that do not lead.
func (c *Cluster) Followers() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Running() && !n.Server.IsLeader() {
			out = append(out, n)
		}
	}
	return out
}

// Converge waits until every running node's state holds everything the
// leader's held when Converge was called.
func (c *Cluster) Converge(ctx context.Context) error {
	l, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	if err := l.Server.Raft().Barrier(time.Minute).Error(); err != nil {
		return fmt.Errorf("servertest: barrier on %s: %w", l.ID, err)
	}
	want := l.Server.AppliedIndex()
	return WaitFor(ctx, func() error {
		for _, n := range c.Nodes {
			if n.Running() && n.Server.AppliedIndex() < want {
				return fmt.Errorf("%s applied %d of %d", n.ID, n.Server.AppliedIndex(), want)
			}
		}
		return nil
	})
}

// WaitFor polls cond until it returns nil or ctx ends, and then returns
// cond's last error. It is the one polling helper of the broker's tests.
func WaitFor(ctx context.Context, cond func() error) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}
