package swarmbench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fairlease/fairlease/swarm"
)

// peerPort is where every swarm node listens for peers, on its own
// namespace's address.
const peerPort = "6881"

func init() {
	distributors[MethodSwarm] = swarmDistributor{}
	roles[RoleSwarmSeed] = runSwarmSeed
	roles[RoleSwarmFetch] = runSwarmFetch
}

type swarmDistributor struct{}

func (swarmDistributor) name() string { return MethodSwarm }
func (swarmDistributor) seed(s NodeSpec) NodeSpec {
	s.Role = RoleSwarmSeed
	return s
}
func (swarmDistributor) node(s NodeSpec, ready message) NodeSpec {
	s.Role = RoleSwarmFetch
	s.Torrent = torrentPath(ready.Torrent, s.Index)
	return s
}

// torrentPath is node i's .torrent in the seed's directory: each carries
// the node's own tracker token, as the broker would hand out.
func torrentPath(dir string, i int) string {
	return filepath.Join(dir, procLabel(i)+".torrent")
}

// SwarmDetail is what a swarm node says about its traffic, in payload
// bytes: the part of the report that shows who uploaded what to whom.
type SwarmDetail struct {
	FromPeers    int64        `json:"from_peers"`
	FromWebSeeds int64        `json:"from_web_seeds"`
	Wasted       int64        `json:"wasted"`
	HashFailures int64        `json:"hash_failures"`
	SeedFirst    int64        `json:"seed_chunks_first,omitempty"` // chunk reads the seed gate passed as a first copy
	SeedHeld     int64        `json:"seed_chunks_held,omitempty"`  // repeat reads it held back
	Peers        []PeerDetail `json:"peers,omitempty"`             // connections open at the end
}

// PeerDetail is the traffic with one peer: "seed", "node-003" or a web seed.
type PeerDetail struct {
	Peer       string `json:"peer"`
	Uploaded   int64  `json:"uploaded"`
	Downloaded int64  `json:"downloaded"`
}

func swarmDetail(st swarm.Stats) SwarmDetail {
	d := SwarmDetail{
		FromPeers: st.FromPeers, FromWebSeeds: st.FromWebSeeds, Wasted: st.Wasted,
		HashFailures: st.HashFailures, SeedFirst: st.SeedFirst, SeedHeld: st.SeedHeld,
	}
	for _, p := range st.Peers {
		name := p.Addr
		if p.WebSeed {
			name = "web seed " + p.Addr
		} else if i, ok := hostIndex(p.Addr); ok {
			name = procLabel(i)
		}
		d.Peers = append(d.Peers, PeerDetail{Peer: name, Uploaded: p.Uploaded, Downloaded: p.Downloaded})
	}
	return d
}

// hostIndex maps a peer address in Subnet back to the host it belongs to.
func hostIndex(addr string) (int, bool) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	last, ok := strings.CutPrefix(host, Subnet+".")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(last)
	return n - 1, err == nil && n >= 1
}

func nodeLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// runSwarmSeed builds the manifest, runs the tracker (and the web seed,
// if asked) on the seed's address, and seeds until the parent says stop.
func runSwarmSeed(ctx context.Context, spec NodeSpec, c *conn) error {
	base := "http://" + net.JoinHostPort(spec.Addr, httpPort)
	var webSeeds []string
	if spec.WebSeed {
		webSeeds = []string{base + "/image"}
	}
	m, err := swarm.Build(spec.Image, "image", spec.PieceLength, base+"/announce/"+procLabel(0), webSeeds)
	if err != nil {
		return err
	}
	tdir := filepath.Join(spec.Dir, "torrents")
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		return err
	}
	var seedTorrent []byte
	for i := 0; i <= spec.Nodes; i++ {
		t, err := m.TorrentFor(base+"/announce/"+procLabel(i), webSeeds)
		if err != nil {
			return err
		}
		if i == 0 {
			seedTorrent = t
		}
		if err := os.WriteFile(torrentPath(tdir, i), t, 0o644); err != nil {
			return err
		}
	}

	// Every token is good; each names its node, so the tracker keeps one
	// entry per node.
	tcfg := swarm.DefaultTrackerConfig()
	tcfg.Authorize = func(token string, _ [20]byte) (string, bool) { return token, token != "" }
	// Short, so that a peer that lost its connections finds the others
	// again within a run; a cold burst does not depend on it (later
	// announcers dial the earlier ones).
	tcfg.Interval = 5 * time.Second
	tcfg.MaxPeers = max(50, spec.Nodes+1)
	tcfg.Logger = nodeLogger()
	tr, err := swarm.NewTracker(tcfg)
	if err != nil {
		return err
	}
	var web atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("/announce/", tr)
	mux.Handle("/image", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		swarm.ServeWebSeed(&countingWriter{ResponseWriter: w, n: &web}, r, spec.Image)
	}))
	ln, err := net.Listen("tcp", net.JoinHostPort(spec.Addr, httpPort))
	if err != nil {
		return fmt.Errorf("swarmbench: serve the tracker: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	cfg := swarm.DefaultNodeConfig()
	cfg.DataDir = filepath.Join(spec.Dir, "data")
	cfg.ListenAddr = net.JoinHostPort(spec.Addr, peerPort)
	cfg.ID = procLabel(0)
	cfg.Origin = true // the image server: peers tell it apart, its gate holds repeats
	cfg.Logger = nodeLogger()
	node, err := swarm.NewNode(cfg)
	if err != nil {
		return err
	}
	defer node.Close()
	if err := node.Seed(ctx, seedTorrent, spec.Image); err != nil {
		return err
	}
	if err := c.send(message{Event: "ready", Torrent: tdir, Pieces: m.NumPieces, PieceLength: m.PieceLength}); err != nil {
		return err
	}
	if err := c.wait(ctx, "go"); err != nil {
		return err
	}
	cpu0 := cpuSeconds()
	if err := c.wait(ctx, "stop"); err != nil {
		return err
	}
	st, err := node.Stats(m.InfoHash)
	if err != nil {
		return err
	}
	return c.send(message{Event: "stats", Uploaded: st.Uploaded, WebSeedBytes: web.Load(),
		CPUSeconds: cpuSeconds() - cpu0, Detail: swarmDetail(st)})
}

// runSwarmFetch fetches the image from the swarm once the parent says go
// and keeps seeding it to the others until the parent says stop.
func runSwarmFetch(ctx context.Context, spec NodeSpec, c *conn) error {
	torrent, err := os.ReadFile(spec.Torrent)
	if err != nil {
		return err
	}
	ti, err := swarm.ParseTorrent(torrent)
	if err != nil {
		return err
	}
	cfg := swarm.DefaultNodeConfig()
	cfg.DataDir = filepath.Join(spec.Dir, "data")
	cfg.ListenAddr = net.JoinHostPort(spec.Addr, peerPort)
	cfg.ID = procLabel(spec.Index)
	// The benchmark knows the burst, as the broker would: node i of N
	// starts on its own slice of the pieces.
	cfg.Index, cfg.Count = spec.Index-1, spec.Nodes
	cfg.Logger = nodeLogger()
	node, err := swarm.NewNode(cfg)
	if err != nil {
		return err
	}
	defer node.Close()
	dest := filepath.Join(spec.Dir, "image")
	if err := c.send(message{Event: "ready"}); err != nil {
		return err
	}
	if err := c.wait(ctx, "go"); err != nil {
		return err
	}
	start, cpu0 := time.Now(), cpuSeconds()
	var first bool
	err = node.Fetch(ctx, torrent, dest, func(done, _ int64) {
		if done > 0 || first {
			first = true
			c.send(message{Event: "progress", Bytes: done})
		}
	})
	if err != nil {
		return err
	}
	if err := c.send(message{Event: "done", Bytes: ti.Size, Seconds: time.Since(start).Seconds()}); err != nil {
		return err
	}
	if err := c.wait(ctx, "stop"); err != nil {
		return err
	}
	cpu := cpuSeconds() - cpu0
	st, err := node.Stats(ti.InfoHash)
	if err != nil {
		return err
	}
	node.Close() // before hashing: nobody needs our pieces any more
	sum, size, err := fileSHA256(dest)
	if err != nil {
		return err
	}
	return c.send(message{Event: "stats", Bytes: size, SHA256: sum, CPUSeconds: cpu,
		Uploaded: st.Uploaded, Downloaded: st.Downloaded, WebSeedBytes: st.FromWebSeeds, Detail: swarmDetail(st)})
}
