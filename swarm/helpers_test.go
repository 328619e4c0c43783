package swarm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"
)

// randomFile writes size pseudo-random bytes (from seed) to dir/name.
func randomFile(t testing.TB, dir, name string, size int64, seed uint64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
	if _, err := io.CopyN(f, r, size); err != nil {
		t.Fatal(err)
	}
	return p
}

func fileSHA256(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// testLogger logs warnings and errors to t until the test ends (anacrolix
// goroutines may still log after Close).
func testLogger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(b))
	}
	return len(b), nil
}

// testSwarm is a tracker whose tokens the test mints, on 127.0.0.1.
type testSwarm struct {
	t       testing.TB
	tracker *Tracker
	srv     *httptest.Server

	mu      sync.Mutex
	tokens  map[string]grant
	refused []string // tokens the tracker refused
}

type grant struct {
	peer string
	ih   [20]byte
}

func newTestSwarm(t testing.TB) *testSwarm {
	s := &testSwarm{t: t, tokens: map[string]grant{}}
	cfg := DefaultTrackerConfig()
	cfg.Interval = time.Second
	cfg.Authorize = func(token string, ih [20]byte) (string, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		g, ok := s.tokens[token]
		return g.peer, ok && g.ih == ih
	}
	cfg.OnRefuse = func(token string, _ [20]byte, _ string) {
		s.mu.Lock()
		s.refused = append(s.refused, token)
		s.mu.Unlock()
	}
	tr, err := NewTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.tracker = tr
	mux := http.NewServeMux()
	mux.Handle("/announce/", tr)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// grant mints a token entitling peer to the swarm of infoHash (hex).
func (s *testSwarm) grant(peer, infoHash string) string {
	var ih metainfo.Hash
	if err := ih.FromHexString(infoHash); err != nil {
		s.t.Fatal(err)
	}
	tok := fmt.Sprintf("tok-%s-%x", peer, rand.Uint64())
	s.mu.Lock()
	s.tokens[tok] = grant{peer, ih}
	s.mu.Unlock()
	return tok
}

func (s *testSwarm) announceURL(token string) string { return s.srv.URL + "/announce/" + token }

func (s *testSwarm) wasRefused(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.refused {
		if r == token {
			return true
		}
	}
	return false
}

// torrentFor returns m's .torrent with a fresh token for peer.
func (s *testSwarm) torrentFor(m Manifest, peer string, webSeeds ...string) []byte {
	b, err := m.TorrentFor(s.announceURL(s.grant(peer, m.InfoHash)), webSeeds)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

var nextLoopback atomic.Uint32

// loopbackAddr gives each node its own 127.0.0.x: anacrolix bans by IP, so
// nodes sharing 127.0.0.1 would be banned together.
func loopbackAddr() string {
	n := nextLoopback.Add(1)
	return fmt.Sprintf("127.0.%d.%d:0", 1+n/250, 2+n%250)
}

func startNode(t testing.TB, cfg NodeConfig) *Node {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = loopbackAddr()
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustStats(t testing.TB, n *Node, ih string) Stats {
	t.Helper()
	st, err := n.Stats(ih)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
