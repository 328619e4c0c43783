package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/broker/api/apitest"
	"github.com/fairlease/fairlease/client"
	"github.com/fairlease/fairlease/swarm"
)

// swarmSite is an API whose image store seeds over BitTorrent on
// loopback, with ada (physics), bob (biology), an admin and host a1.
type swarmSite struct {
	url, dir            string
	ada, bob, admin, a1 *client.Client
	tokens              map[*client.Client]string
	fake                *apitest.Fake
}

func newSwarmSite(t *testing.T) *swarmSite {
	t.Helper()
	f := apitest.NewFake()
	srv := httptest.NewUnstartedServer(nil)
	url := "http://" + srv.Listener.Addr().String()
	dir := t.TempDir()
	a, err := api.New(api.Config{Backend: f, Logger: apitest.Logger(t), ImageDir: dir,
		SwarmListen: "127.0.0.1:0", SwarmInterval: time.Second, PublicURL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srv.Config.Handler = a.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	s := &swarmSite{url: url, dir: dir, fake: f, tokens: map[*client.Client]string{}}
	mk := func(tok string) *client.Client {
		c, _ := client.New(url, tok)
		s.tokens[c] = tok
		return c
	}
	s.ada = mk(f.AddUser(t, "ada", "physics", broker.RoleUser))
	s.bob = mk(f.AddUser(t, "bob", "biology", broker.RoleUser))
	s.admin = mk(f.AddUser(t, "root", "", broker.RoleAdmin))
	jt, err := s.admin.JoinToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := mk(jt.Token).AgentRegister(t.Context(), api.AgentRegistration{Host: "a1", Cores: 4, MemoryMiB: 4096})
	if err != nil {
		t.Fatal(err)
	}
	s.a1 = mk(cred.Token)
	return s
}

func (s *swarmSite) torrent(t *testing.T, c *client.Client, name string) ([]byte, int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", s.url+"/v1/images/"+name+"/torrent", nil)
	req.Header.Set("Authorization", "Bearer "+s.tokens[c])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b, resp.StatusCode
}

func TestImageSwarm(t *testing.T) {
	s := newSwarmSite(t)
	data := make([]byte, 3<<20)
	rand.Read(data)
	im, err := s.ada.PushImage(t.Context(), "img", "raw", false, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if im.InfoHash == "" || im.PieceLength <= 0 {
		t.Fatalf("pushed image has no torrent: %+v", im)
	}

	tor, code := s.torrent(t, s.a1, "img")
	if code != 200 {
		t.Fatalf("host torrent: %d %s", code, tor)
	}
	ti, err := swarm.ParseTorrent(tor)
	if err != nil || ti.InfoHash != im.InfoHash || !ti.Private || !strings.Contains(ti.Announce, "/v1/swarm/announce/host:a1.") || len(ti.WebSeeds) != 1 {
		t.Fatalf("host torrent %+v, %v", ti, err)
	}
	if _, code := s.torrent(t, s.bob, "img"); code != 404 {
		t.Errorf("biology got physics' private torrent: %d", code)
	}

	// A host fetches it over the swarm: the store seeds it.
	cfg := swarm.DefaultNodeConfig()
	cfg.DataDir, cfg.ListenAddr, cfg.ID = t.TempDir(), "127.0.0.1:0", "a1"
	n, err := swarm.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	dest := filepath.Join(t.TempDir(), "img")
	ctx, cancel := context30(t)
	defer cancel()
	if err := n.Fetch(ctx, tor, dest, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dest)
	if sum := sha256.Sum256(got); hex.EncodeToString(sum[:]) != im.Digest {
		t.Fatal("fetched bytes differ")
	}

	// Forged or stolen-looking tokens get nothing: the tracker refuses, the
	// web seed does not serve.
	forged := strings.Replace(ti.Announce, "host:a1.", "host:a1.AAAA", 1)
	resp, err := http.Get(forged + "?info_hash=" + urlBytes(im.InfoHash) + "&peer_id=-XX0001-000000000000&port=6881&uploaded=0&downloaded=0&left=1&compact=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "failure reason") {
		t.Errorf("forged token announce answered %q", body)
	}
	ws := strings.Replace(ti.WebSeeds[0], "host:a1.", "user:bob.", 1)
	if resp, err := http.Get(ws); err != nil || resp.StatusCode != 404 {
		t.Errorf("web seed with a forged token: %v %v", resp.StatusCode, err)
	}
	if resp, err := http.Get(ti.WebSeeds[0]); err != nil || resp.StatusCode != 200 {
		t.Errorf("web seed with the host's token: %v %v", resp.StatusCode, err)
	}
}

// TestAria2Interop: a third-party client (aria2c) given a user's torrent
// downloads the image from the running swarm; with a forged token the
// tracker refuses it.
func TestAria2Interop(t *testing.T) {
	if _, err := exec.LookPath("aria2c"); err != nil {
		t.Skip("aria2c not installed (Debian: aria2; .ci/run installs it)")
	}
	s := newSwarmSite(t)
	data := make([]byte, 2<<20)
	rand.Read(data)
	im, err := s.ada.PushImage(t.Context(), "img", "raw", false, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	tor, code := s.torrent(t, s.ada, "img")
	if code != 200 {
		t.Fatalf("torrent: %d", code)
	}
	ti, _ := swarm.ParseTorrent(tor)
	// No web seed: the bytes must come over the peer protocol.
	noWeb, err := swarm.MakeTorrent(mustInfo(t, s, im), ti.Announce, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := func(tor []byte) (string, error) {
		dir := t.TempDir()
		tf := filepath.Join(dir, "img.torrent")
		os.WriteFile(tf, tor, 0o644)
		ctx, cancel := context30(t)
		defer cancel()
		out, err := exec.CommandContext(ctx, "aria2c", "--dir", dir, "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
			"--enable-peer-exchange=false", "--seed-time=0", "--listen-port=49152-49200", "--bt-stop-timeout=6",
			"--summary-interval=0", "--console-log-level=warn", "--disable-ipv6=true", tf).CombinedOutput()
		got, _ := os.ReadFile(filepath.Join(dir, "img"))
		sum := sha256.Sum256(got)
		if err == nil && hex.EncodeToString(sum[:]) != im.Digest {
			return string(out), io.ErrUnexpectedEOF
		}
		return string(out), err
	}
	if out, err := run(noWeb); err != nil {
		t.Fatalf("aria2c with a valid token: %v\n%s", err, out)
	}
	forged, _ := swarm.MakeTorrent(mustInfo(t, s, im), strings.Replace(ti.Announce, "user:ada.", "user:ada.x", 1), nil)
	if out, err := run(forged); err == nil {
		t.Errorf("aria2c with a forged token got the image:\n%s", out)
	}
}

func context30(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), 30*time.Second)
}

// urlBytes percent-encodes the bytes of a hex string, as announces carry
// info hashes.
func urlBytes(h string) string {
	b, _ := hex.DecodeString(h)
	return url.QueryEscape(string(b))
}

// mustInfo reads the info dictionary the store keeps for im.
func mustInfo(t *testing.T, s *swarmSite, im *broker.Image) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, im.Digest+".info"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
