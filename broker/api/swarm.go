package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/swarm"
)

// Images travel between host caches over BitTorrent: this node's image
// store seeds every image it holds, the API is the tracker, and each
// caller's .torrent names it by a swarm token (identity + HMAC under the
// site key), which the tracker and the web seed check: hosts may join every
// swarm, users only those of images their group may use, strangers none.

// swarmPeers runs the seed and the tracker of a node.
type swarmPeers struct {
	tracker *swarm.Tracker
	seed    *swarm.Node
	log     *slog.Logger

	mu     sync.Mutex
	seeded map[string]bool // digests seeded
}

func (a *API) startSwarm() error {
	if a.cfg.SwarmListen == "" || a.cfg.ImageDir == "" {
		return nil
	}
	t, err := swarm.NewTracker(swarm.TrackerConfig{Authorize: a.swarmAuthorize, Logger: a.log, Interval: a.cfg.SwarmInterval})
	if err != nil {
		return err
	}
	cfg := swarm.DefaultNodeConfig()
	cfg.DataDir, cfg.ListenAddr, cfg.Logger, cfg.ID = filepath.Join(a.cfg.ImageDir, ".swarm"), a.cfg.SwarmListen, a.log, "store"
	cfg.Origin = true // the image server: the gate keeps its repeats for peers
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("swarm: %w", err)
	}
	n, err := swarm.NewNode(cfg)
	if err != nil {
		return fmt.Errorf("swarm: the image store's seed: %w", err)
	}
	a.swarm = &swarmPeers{tracker: t, seed: n, log: a.log, seeded: map[string]bool{}}
	return nil
}

// Close stops the image store's seed.
func (a *API) Close() error {
	if a.swarm != nil {
		return a.swarm.seed.Close()
	}
	return nil
}

// swarmToken is the token of identity: "identity.mac".
func swarmToken(key []byte, identity string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("fairlease-swarm-v1\n" + identity))
	return identity + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// swarmIdentity checks token's MAC and returns its identity.
func swarmIdentity(key []byte, token string) (string, bool) {
	i := strings.LastIndexByte(token, '.')
	if i <= 0 || key == nil {
		return "", false
	}
	id := token[:i]
	return id, hmac.Equal([]byte(swarmToken(key, id)), []byte(token))
}

// swarmAuthorize is the tracker's entitlement check.
func (a *API) swarmAuthorize(token string, ih [20]byte) (string, bool) {
	var peer string
	var ok bool
	a.read(context.Background(), false, func(st *broker.State) error {
		peer, ok = entitled(st, token, hex.EncodeToString(ih[:]), "")
		return nil
	})
	return peer, ok
}

// entitled says whether token may have the image of infoHash (or, when
// infoHash is empty, of digest).
func entitled(st *broker.State, token, infoHash, digest string) (string, bool) {
	k := st.SiteKey()
	if k == nil {
		return "", false
	}
	id, ok := swarmIdentity(k.Seed(), token)
	if !ok {
		return "", false
	}
	var im broker.Image
	found := false
	for _, x := range st.Images() {
		if (infoHash != "" && x.InfoHash == infoHash) || (infoHash == "" && x.Digest == digest) {
			im, found = x, true
		}
	}
	if !found {
		return "", false
	}
	switch kind, name, _ := strings.Cut(id, ":"); kind {
	case "seed":
		return id, true
	case "host":
		for _, h := range st.Hosts() {
			if h.Name == name && h.State != broker.HostLost {
				return id, true
			}
		}
	case "user":
		if u, ok := st.User(name); ok && (u.Role == broker.RoleAdmin || im.UsableBy(u.Group)) {
			return id, true
		}
	}
	return "", false
}

// seedImage has the store seed im (idempotent); the manifest's info is
// kept next to the image.
func (a *API) seedImage(ctx context.Context, im broker.Image) error {
	if a.swarm == nil || im.InfoHash == "" {
		return nil
	}
	a.swarm.mu.Lock()
	done := a.swarm.seeded[im.Digest]
	a.swarm.mu.Unlock()
	if done {
		return nil
	}
	info, err := os.ReadFile(filepath.Join(a.cfg.ImageDir, im.Digest+".info"))
	if err != nil {
		return fmt.Errorf("swarm: %s: %w", im.Name, err)
	}
	var key []byte
	a.read(ctx, false, func(st *broker.State) error {
		if k := st.SiteKey(); k != nil {
			key = k.Seed()
		}
		return nil
	})
	t, err := swarm.MakeTorrent(info, a.swarmBase()+"/v1/swarm/announce/"+swarmToken(key, "seed"), nil)
	if err != nil {
		return err
	}
	if err := a.swarm.seed.Seed(ctx, t, filepath.Join(a.cfg.ImageDir, im.Digest)); err != nil {
		return err
	}
	a.swarm.mu.Lock()
	a.swarm.seeded[im.Digest] = true
	a.swarm.mu.Unlock()
	return nil
}

// swarmBase is the URL peers reach this node's API at.
func (a *API) swarmBase() string { return strings.TrimRight(a.cfg.PublicURL, "/") }

// SeedAll seeds every image this node stores; a node calls it once it
// serves, so that images pushed before a restart are seeded again.
func (a *API) SeedAll(ctx context.Context) {
	if a.swarm == nil {
		return
	}
	var ims []broker.Image
	a.read(ctx, false, func(st *broker.State) error {
		ims = st.Images()
		return nil
	})
	for _, im := range ims {
		if _, err := os.Stat(filepath.Join(a.cfg.ImageDir, im.Digest)); err != nil {
			continue // pushed to another node
		}
		if err := a.seedImage(ctx, im); err != nil {
			a.log.Warn("swarm: seed image", "image", im.Name, "err", err)
		}
	}
}

type torrentInput struct {
	Name string `path:"name" maxLength:"128" doc:"Image name"`
}

// imageTorrent answers the caller's .torrent of an image: its announce URL
// and web seed carry the caller's swarm token.
func (a *API) imageTorrent(w http.ResponseWriter, r *http.Request) {
	u, ok := a.plainUser(w, r)
	if !ok {
		return
	}
	im, err := a.image(r.Context(), u, r.PathValue("name"))
	if err != nil {
		a.writePlainErr(w, r, err)
		return
	}
	if a.swarm == nil || im.InfoHash == "" {
		a.writePlainErr(w, r, lease.Errorf(lease.ENOTFOUND, "name", "image %q has no torrent here (this node runs no swarm, or holds no copy): fetch its blob", im.Name))
		return
	}
	info, err := os.ReadFile(filepath.Join(a.cfg.ImageDir, im.Digest+".info"))
	if err != nil {
		a.writePlainErr(w, r, lease.Errorf(lease.ENOTFOUND, "name", "this broker node holds no copy of image %q; ask the node it was pushed to", im.Name))
		return
	}
	if err := a.seedImage(r.Context(), im); err != nil {
		a.writePlainErr(w, r, err)
		return
	}
	var key []byte
	a.read(r.Context(), false, func(st *broker.State) error {
		key = st.SiteKey().Seed()
		return nil
	})
	id := "user:" + u.Name
	if name, ok := strings.CutPrefix(u.Name, "host:"); ok && u.Role == broker.RoleAgent {
		id = "host:" + name
	}
	tok := swarmToken(key, id)
	base := a.swarmBase()
	t, err := swarm.MakeTorrent(info, base+"/v1/swarm/announce/"+tok, []string{base + "/v1/swarm/webseed/" + tok + "/" + im.Digest})
	if err != nil {
		a.writePlainErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-bittorrent")
	w.Write(t)
}

func (a *API) announce(w http.ResponseWriter, r *http.Request) {
	if a.swarm == nil {
		a.writePlainErr(w, r, lease.Errorf(lease.ENOTFOUND, "", "this broker node runs no tracker"))
		return
	}
	a.swarm.tracker.ServeAnnounce(w, r, r.PathValue("token"))
}

func (a *API) webSeed(w http.ResponseWriter, r *http.Request) {
	digest := r.PathValue("digest")
	var ok bool
	if digestRE.MatchString(digest) && a.cfg.ImageDir != "" {
		a.read(r.Context(), false, func(st *broker.State) error {
			_, ok = entitled(st, r.PathValue("token"), "", digest)
			return nil
		})
	}
	if !ok {
		a.writePlainErr(w, r, lease.Errorf(lease.ENOTFOUND, "digest", "no image %s for this token", digest))
		return
	}
	swarm.ServeWebSeed(w, r, filepath.Join(a.cfg.ImageDir, digest))
}
