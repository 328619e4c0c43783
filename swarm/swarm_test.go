package swarm

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// burst is one cold-burst run: a seed and n nodes fetch one file at once.
type burst struct {
	nodes       int
	size        int64
	pieceLength int64
	rate        int64 // upload cap of every node and the seed, bytes/s
	stagger     bool
	gate        bool
}

type burstResult struct {
	originRatio float64 // (seed upload + web seed bytes) / file size
	took        time.Duration
}

// countingHandler counts the body bytes h writes.
func countingHandler(h http.Handler, n *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(countingWriter{w, n}, r)
	})
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

func runBurst(t *testing.T, b burst) burstResult {
	t.Helper()
	dir := t.TempDir()
	img := randomFile(t, dir, "img.qcow2", b.size, 7)
	m, err := Build(img, "img.qcow2", b.pieceLength, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	sw := newTestSwarm(t)
	ctx := testContext(t, 90*time.Second)
	// Every node's .torrent lists the image server's web seed, as the
	// broker's do; what it serves counts as origin egress too.
	var webSeedBytes atomic.Int64
	ws := httptest.NewServer(countingHandler(WebSeedHandler(img, nil), &webSeedBytes))
	t.Cleanup(ws.Close)

	seed := startNode(t, NodeConfig{ID: "store", Origin: true, UploadRate: b.rate, NoSeedDedup: !b.gate})
	if err := seed.Seed(ctx, sw.torrentFor(m, "store"), img); err != nil {
		t.Fatal(err)
	}
	nodes := make([]*Node, b.nodes)
	for i := range nodes {
		nodes[i] = startNode(t, NodeConfig{ID: fmt.Sprintf("host%d", i), Index: i, Count: b.nodes, NoStagger: !b.stagger, UploadRate: b.rate})
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, b.nodes)
	for i, n := range nodes {
		wg.Go(func() {
			dest := filepath.Join(dir, fmt.Sprintf("host%d", i), "img.qcow2")
			errs[i] = n.Fetch(ctx, sw.torrentFor(m, fmt.Sprintf("host%d", i), ws.URL+"/img.qcow2"), dest, nil)
			if errs[i] == nil {
				if got := fileSHA256(t, dest); got != m.SHA256 {
					errs[i] = fmt.Errorf("sha256 %s, want %s", got, m.SHA256)
				}
			}
		})
	}
	stop := make(chan struct{})
	if testing.Verbose() {
		go watchBurst(t, stop, start, seed, nodes, m)
	}
	wg.Wait()
	close(stop)
	took := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("host%d: %v", i, err)
		}
	}
	st := mustStats(t, seed, m.InfoHash)
	res := burstResult{originRatio: float64(st.Uploaded+webSeedBytes.Load()) / float64(b.size), took: took}
	for i, n := range nodes {
		ns := mustStats(t, n, m.InfoHash)
		t.Logf("host%d: got %d from peers, %d from web seeds; uploaded %d; wasted %d", i, ns.FromPeers, ns.FromWebSeeds, ns.Uploaded, ns.Wasted)
	}
	t.Logf("%d nodes × %d MiB (%d KiB pieces, %d MiB/s up each), stagger %v, seed gate %v: origin egress %.2f× the file (seed %d, web seed %d bytes), took %v (gate: %d chunks first, %d held)",
		b.nodes, b.size>>20, m.PieceLength>>10, b.rate>>20, b.stagger, b.gate, res.originRatio, st.Uploaded, webSeedBytes.Load(),
		took.Round(10*time.Millisecond), st.SeedFirst, st.SeedHeld)
	return res
}

// watchBurst logs every node's progress twice a second (with -v).
func watchBurst(t *testing.T, stop <-chan struct{}, start time.Time, seed *Node, nodes []*Node, m Manifest) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		line := fmt.Sprintf("t=%v", time.Since(start).Round(100*time.Millisecond))
		for _, n := range nodes {
			if st, err := n.Stats(m.InfoHash); err == nil {
				line += fmt.Sprintf(" %3d%%", 100*st.Completed/m.Size)
			}
		}
		if st, err := seed.Stats(m.InfoHash); err == nil {
			line += fmt.Sprintf(" seed sent %.2f×, held %d", float64(st.Uploaded)/float64(m.Size), st.SeedHeld)
		}
		t.Log(line)
	}
}

// TestSwarmBurst: 1 seed + 6 nodes fetch 32 MiB at once over loopback, each
// uploading at most 16 MiB/s (so the seed's uplink, not the CPU, is the
// bottleneck, as on a real network: the lower bound is 2 s). With the
// staggered piece order and the seed gate the image server (seed + web
// seed) must send at most 1.3 copies; the other variants are logged for
// comparison.
func TestSwarmBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("swarm over loopback: a few seconds per variant")
	}
	for _, tc := range []struct {
		name          string
		stagger, gate bool
		maxRatio      float64 // 0: report only
	}{
		{"staggered with seed gate", true, true, 1.3},
		{"stock anacrolix order", false, false, 0},
		{"staggered only", true, false, 0},
		{"seed gate only", false, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runBurst(t, burst{nodes: 6, size: 32 << 20, pieceLength: 256 << 10, rate: 16 << 20, stagger: tc.stagger, gate: tc.gate})
			if tc.maxRatio > 0 && res.originRatio > tc.maxRatio {
				t.Errorf("image server sent %.2f× the file, want ≤ %.2f×", res.originRatio, tc.maxRatio)
			}
		})
	}
}
