package swarm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"
)

// freePort returns a TCP port free on 127.0.0.1 (for aria2c's listener).
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runAria2 runs aria2c on a .torrent, on loopback only, and returns its
// error and output.
func runAria2(t *testing.T, ctx context.Context, torrentBytes []byte, dir string, stopAfter time.Duration) (string, error) {
	aria2, err := exec.LookPath("aria2c")
	if err != nil {
		t.Skip("aria2c not installed (Debian package aria2: apt-get install -y aria2)")
	}
	tf := filepath.Join(dir, "job.torrent")
	if err := os.WriteFile(tf, torrentBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, aria2,
		"--dir="+dir,
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--disable-ipv6=true",
		fmt.Sprintf("--listen-port=%d", freePort(t)),
		"--seed-time=0",
		"--bt-tracker-connect-timeout=5", "--bt-tracker-timeout=5",
		fmt.Sprintf("--bt-stop-timeout=%d", int(stopAfter.Seconds())),
		"--summary-interval=0", "--console-log-level=warn", "--download-result=hide",
		"--file-allocation=none", "--allow-overwrite=true", "--auto-file-renaming=false",
		"--no-conf=true",
		tf)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAria2Interop: a third-party client (Debian's aria2c) fetches from our
// seed through our tracker with a valid token, and is refused with a bad one.
func TestAria2Interop(t *testing.T) {
	dir := t.TempDir()
	img := randomFile(t, dir, "img.qcow2", 4<<20, 3)
	m, err := Build(img, "img.qcow2", 256<<10, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	sw := newTestSwarm(t)
	ctx := testContext(t, 60*time.Second)
	seed := startNode(t, NodeConfig{ID: "store", Origin: true})
	if err := seed.Seed(ctx, sw.torrentFor(m, "store"), img); err != nil {
		t.Fatal(err)
	}

	t.Run("valid token", func(t *testing.T) {
		out := t.TempDir()
		start := time.Now()
		log, err := runAria2(t, ctx, sw.torrentFor(m, "aria2"), out, 20*time.Second)
		if err != nil {
			t.Fatalf("aria2c: %v\n%s", err, log)
		}
		if got := fileSHA256(t, filepath.Join(out, "img.qcow2")); got != m.SHA256 {
			t.Fatalf("aria2c got sha256 %s, want %s", got, m.SHA256)
		}
		st := mustStats(t, seed, m.InfoHash)
		t.Logf("aria2c fetched %d MiB in %v; seed uploaded %d bytes", m.Size>>20, time.Since(start).Round(time.Millisecond), st.Uploaded)
		if st.Uploaded < m.Size {
			t.Errorf("seed uploaded %d bytes, want ≥ %d (aria2c had no other source)", st.Uploaded, m.Size)
		}
	})

	t.Run("bad token", func(t *testing.T) {
		out := t.TempDir()
		bad, err := m.TorrentFor(sw.announceURL("forged-token"), nil)
		if err != nil {
			t.Fatal(err)
		}
		log, err := runAria2(t, ctx, bad, out, 3*time.Second)
		if err == nil {
			t.Errorf("aria2c with a forged token succeeded; want it to fail\n%s", log)
		}
		if !sw.wasRefused("forged-token") {
			t.Errorf("tracker never refused the forged token\n%s", log)
		}
		if _, err := os.Stat(filepath.Join(out, "img.qcow2")); err == nil {
			if fileSHA256(t, filepath.Join(out, "img.qcow2")) == m.SHA256 {
				t.Errorf("aria2c got the image with a forged token")
			}
		}
		for _, p := range sw.tracker.Peers(mustInfoHash(t, m.InfoHash)) {
			if p.Peer != "store" && p.Peer != "aria2" {
				t.Errorf("tracker lists %v, who was never granted", p)
			}
		}
	})
}

func mustInfoHash(t testing.TB, hexHash string) [20]byte {
	t.Helper()
	var ih metainfo.Hash
	if err := ih.FromHexString(hexHash); err != nil {
		t.Fatal(err)
	}
	return ih
}

// TestCorruptPeer: a peer serving flipped bytes for some pieces is caught by
// the piece hashes and banned, and every honest node still gets the image.
func TestCorruptPeer(t *testing.T) {
	dir := t.TempDir()
	const size = 8 << 20
	img := randomFile(t, dir, "img.qcow2", size, 4)
	m, err := Build(img, "img.qcow2", 256<<10, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	sw := newTestSwarm(t)
	ctx := testContext(t, 60*time.Second)

	// The store's seed is slow, so the fetchers get much from the liar.
	seed := startNode(t, NodeConfig{ID: "store", Origin: true, UploadRate: 4 << 20})
	if err := seed.Seed(ctx, sw.torrentFor(m, "store"), img); err != nil {
		t.Fatal(err)
	}
	liar := startNode(t, NodeConfig{ID: "liar", NoSeedDedup: true, corrupt: func(p int) bool { return p%3 == 0 }})
	if err := liar.Seed(ctx, sw.torrentFor(m, "liar"), img); err != nil {
		t.Fatal(err)
	}
	liarIP := liar.Addr().(*net.TCPAddr).IP.String()

	const n = 3
	nodes := make([]*Node, n)
	for i := range nodes {
		nodes[i] = startNode(t, NodeConfig{ID: fmt.Sprintf("host%d", i), Index: i, Count: n})
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, nd := range nodes {
		wg.Go(func() {
			dest := filepath.Join(dir, fmt.Sprintf("host%d", i), "img.qcow2")
			if errs[i] = nd.Fetch(ctx, sw.torrentFor(m, fmt.Sprintf("host%d", i)), dest, nil); errs[i] == nil {
				if got := fileSHA256(t, dest); got != m.SHA256 {
					errs[i] = fmt.Errorf("sha256 %s, want %s", got, m.SHA256)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	honest := map[string]bool{seed.Addr().(*net.TCPAddr).IP.String(): true}
	for _, nd := range nodes {
		honest[nd.Addr().(*net.TCPAddr).IP.String()] = true
	}
	var failures int64
	banners := 0
	for i, nd := range nodes {
		st := mustStats(t, nd, m.InfoHash)
		failures += st.HashFailures
		t.Logf("host%d: %d hash failures, banned %v, %d bytes wasted", i, st.HashFailures, st.Banned, st.Wasted)
		for _, ip := range st.Banned {
			if honest[ip] {
				t.Errorf("host%d banned honest %s", i, ip)
			}
			if ip == liarIP {
				banners++
			}
		}
	}
	if failures == 0 {
		t.Errorf("no piece failed its hash: the liar served nothing, the test proves nothing")
	}
	if banners == 0 {
		t.Errorf("no node banned the liar at %s", liarIP)
	}
}

// TestRestartResumes: a node closed halfway and started again on the same
// DataDir keeps its verified pieces.
func TestRestartResumes(t *testing.T) {
	dir := t.TempDir()
	const size = 16 << 20
	img := randomFile(t, dir, "img.qcow2", size, 5)
	m, err := Build(img, "img.qcow2", 256<<10, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	sw := newTestSwarm(t)
	ctx := testContext(t, 60*time.Second)
	seed := startNode(t, NodeConfig{ID: "store", Origin: true, UploadRate: 4 << 20})
	if err := seed.Seed(ctx, sw.torrentFor(m, "store"), img); err != nil {
		t.Fatal(err)
	}

	dataDir := t.TempDir()
	dest := filepath.Join(dir, "host", "img.qcow2")
	first, err := NewNode(NodeConfig{ID: "host", DataDir: dataDir, ListenAddr: loopbackAddr(), Count: 1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	halfway, cancel := context.WithCancel(ctx)
	var before int64 // verified bytes when stopped
	err = first.Fetch(halfway, sw.torrentFor(m, "host"), dest, func(_, total int64) {
		if st, err := first.Stats(m.InfoHash); err == nil && st.Completed >= total/2 && before == 0 {
			before = st.Completed
			cancel()
		}
	})
	cancel()
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("first fetch: %v, want it cancelled halfway", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if before == 0 || before == size {
		t.Fatalf("stopped at %d of %d bytes, want halfway", before, size)
	}

	second := startNode(t, NodeConfig{ID: "host", DataDir: dataDir, Count: 1})
	var resumed int64 = -1 // verified bytes at the first progress report
	if err := second.Fetch(ctx, sw.torrentFor(m, "host"), dest, func(_, _ int64) {
		if resumed < 0 {
			resumed = mustStats(t, second, m.InfoHash).Completed
		}
	}); err != nil {
		t.Fatal(err)
	}
	if got := fileSHA256(t, dest); got != m.SHA256 {
		t.Fatalf("sha256 %s, want %s", got, m.SHA256)
	}
	st := mustStats(t, second, m.InfoHash)
	t.Logf("stopped at %d of %d bytes; resumed at %d, downloaded %d", before, size, resumed, st.Downloaded)
	if resumed < before {
		t.Errorf("resumed with %d verified bytes, want ≥ %d as before the restart", resumed, before)
	}
	// Pieces verified between the stop and the close are not counted in before: 1 MiB of slack.
	if st.Downloaded >= size || st.Downloaded > size-before+1<<20 {
		t.Errorf("after restart downloaded %d bytes, want about %d (the %d verified before stay)", st.Downloaded, size-before, before)
	}
}

// TestWebSeed: with no peer at all, a node fetches from the BEP 19 web seed.
func TestWebSeed(t *testing.T) {
	dir := t.TempDir()
	const size = 4 << 20
	img := randomFile(t, dir, "img.qcow2", size, 6)
	m, err := Build(img, "img.qcow2", 256<<10, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws := httptest.NewServer(WebSeedHandler(img, func(tok string) bool { return tok == "good" }))
	t.Cleanup(ws.Close)
	sw := newTestSwarm(t)
	ctx := testContext(t, 60*time.Second)

	t.Run("handler", func(t *testing.T) {
		for _, tc := range []struct {
			name, path string
			want       int
		}{
			{"good token, range", "/webseed/good", http.StatusPartialContent},
			{"bad token", "/webseed/bad", http.StatusForbidden},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodGet, ws.URL+tc.path, nil)
				req.Header.Set("Range", "bytes=100-199")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.want)
				}
			})
		}
	})

	t.Run("fetch", func(t *testing.T) {
		nd := startNode(t, NodeConfig{ID: "host", Count: 1})
		dest := filepath.Join(dir, "host", "img.qcow2")
		if err := nd.Fetch(ctx, sw.torrentFor(m, "host", ws.URL+"/webseed/good"), dest, nil); err != nil {
			t.Fatal(err)
		}
		if got := fileSHA256(t, dest); got != m.SHA256 {
			t.Fatalf("sha256 %s, want %s", got, m.SHA256)
		}
		st := mustStats(t, nd, m.InfoHash)
		if st.FromWebSeeds != size || st.FromPeers != 0 {
			t.Errorf("got %d bytes from web seeds and %d from peers, want all %d from web seeds", st.FromWebSeeds, st.FromPeers, size)
		}
	})
}

// TestSeedChecksFile: Seed refuses a file that does not match the torrent.
func TestSeedChecksFile(t *testing.T) {
	dir := t.TempDir()
	img := randomFile(t, dir, "img.qcow2", 1<<20, 8)
	other := randomFile(t, dir, "other.qcow2", 1<<20, 9)
	short := randomFile(t, dir, "short.qcow2", 1000, 9)
	m, err := Build(img, "img.qcow2", 256<<10, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	nd := startNode(t, NodeConfig{ID: "store", Origin: true})
	ctx := testContext(t, 30*time.Second)
	for _, tc := range []struct {
		name, path, wantErr string
	}{
		{"other content", other, "fail their piece hash"},
		{"other size", short, "has 1000 bytes"},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := nd.Seed(ctx, m.Torrent, tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Seed: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	if err := nd.Seed(ctx, m.Torrent, img); err != nil {
		t.Errorf("Seed of the right file after failures: %v", err)
	}
}
