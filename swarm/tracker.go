package swarm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/tracker"
)

// AuthorizeFunc says whether the holder of token may join the swarm of
// infoHash, and under which identity (e.g. the host name). The tracker keeps
// one entry per identity and swarm, so a token cannot flood a swarm.
type AuthorizeFunc func(token string, infoHash [20]byte) (peer string, ok bool)

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	// Authorize is required. It is called for the announcing peer and again
	// for every peer listed in a reply, so a revoked token drops out of
	// replies at once.
	Authorize AuthorizeFunc
	// Interval is the announce interval given to peers, in whole seconds
	// (at least 1 s). Peers that have not announced for 2×Interval are
	// dropped.
	Interval time.Duration
	// MaxPeers caps the peers in one reply (numwant is honoured below it).
	MaxPeers int
	// RequestHost gives the announcing peer's IP. Nil means the request's
	// RemoteAddr; set it behind a reverse proxy. The "ip" query parameter is
	// ignored: a peer cannot announce someone else's address.
	RequestHost func(r *http.Request) (netip.Addr, error)
	// OnRefuse, if set, is called for every refused announce (for audit logs,
	// metrics and tests).
	OnRefuse func(token string, infoHash [20]byte, reason string)
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultTrackerConfig returns the defaults; callers set Authorize.
func DefaultTrackerConfig() TrackerConfig {
	return TrackerConfig{Interval: time.Minute, MaxPeers: 50}
}

// Tracker is an HTTP BitTorrent tracker (BEP 3, compact replies BEP 23,
// peers6 BEP 7) for private swarms: every announce carries a token that
// Authorize checks, and replies list only peers that are themselves
// authorized for the same infohash.
type Tracker struct {
	cfg    TrackerConfig
	mu     sync.Mutex
	swarms map[[20]byte]map[string]*trackedPeer // infohash → identity → peer
	swept  time.Time
}

type trackedPeer struct {
	token  string
	id     [20]byte
	addr   netip.AddrPort
	seeder bool
	seen   time.Time
}

// TrackedPeer is one peer as the tracker last heard of it.
type TrackedPeer struct {
	Peer   string // identity from Authorize
	Addr   netip.AddrPort
	Seeder bool
	Seen   time.Time
}

// NewTracker checks cfg and returns a tracker.
func NewTracker(cfg TrackerConfig) (*Tracker, error) {
	if cfg.Authorize == nil {
		return nil, errors.New("swarm: tracker: nil Authorize; set TrackerConfig.Authorize to the broker's entitlement check")
	}
	d := DefaultTrackerConfig()
	if cfg.Interval <= 0 {
		cfg.Interval = d.Interval
	}
	// Intervals go on the wire in whole seconds; expiry must use the same.
	cfg.Interval = max(cfg.Interval.Round(time.Second), time.Second)
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = d.MaxPeers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Tracker{cfg: cfg, swarms: map[[20]byte]map[string]*trackedPeer{}}, nil
}

// ServeHTTP serves an announce whose token is the last path segment, e.g.
// mounted at /swarm/announce/ for URLs /swarm/announce/<token>.
func (t *Tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.ServeAnnounce(w, r, lastSegment(r.URL.Path))
}

// lastSegment is the token of URLs like .../announce/<token>.
func lastSegment(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// ServeAnnounce serves one announce for token (taken from the URL by the
// caller's router). Every reply is a bencoded dictionary with HTTP 200, a
// refusal included, as BEP 3 asks: clients show the failure reason.
func (t *Tracker) ServeAnnounce(w http.ResponseWriter, r *http.Request, token string) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-store")
	reply := t.announce(r, token)
	b, err := bencode.Marshal(reply)
	if err != nil {
		// Only maps of strings, ints and lists of those: cannot fail.
		panic(fmt.Sprintf("swarm: tracker: encode reply: %v", err))
	}
	w.Write(b)
}

// Peers lists the live peers of a swarm (for status pages and tests).
func (t *Tracker) Peers(infoHash [20]byte) []TrackedPeer {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	var out []TrackedPeer
	for name, p := range t.swarms[infoHash] {
		if now.Sub(p.seen) < 2*t.cfg.Interval {
			out = append(out, TrackedPeer{Peer: name, Addr: p.addr, Seeder: p.seeder, Seen: p.seen})
		}
	}
	return out
}

type announceRequest struct {
	infoHash [20]byte
	peerID   [20]byte
	port     uint16
	left     int64
	event    tracker.AnnounceEvent
	compact  bool
	noPeerID bool
	numWant  int
	remoteIP netip.Addr
}

// announce returns the reply dictionary. Refusals are
// {"failure reason": ...} only: a success never carries that key, because
// aria2 treats its mere presence as failure.
func (t *Tracker) announce(r *http.Request, token string) map[string]any {
	req, err := t.parse(r)
	if err != nil {
		return map[string]any{"failure reason": err.Error()}
	}
	name, ok := t.cfg.Authorize(token, req.infoHash)
	if !ok || name == "" {
		reason := "token not authorized for this torrent; ask the broker for a fresh .torrent"
		t.cfg.Logger.Info("swarm tracker: refused announce",
			"infohash", fmt.Sprintf("%x", req.infoHash), "addr", req.remoteIP, "reason", reason)
		if t.cfg.OnRefuse != nil {
			t.cfg.OnRefuse(token, req.infoHash, reason)
		}
		return map[string]any{"failure reason": reason}
	}
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	sw := t.swarms[req.infoHash]
	if req.event == tracker.Stopped {
		delete(sw, name)
		if len(sw) == 0 {
			delete(t.swarms, req.infoHash)
		}
	} else {
		if sw == nil {
			sw = map[string]*trackedPeer{}
			t.swarms[req.infoHash] = sw
		}
		sw[name] = &trackedPeer{
			token:  token,
			id:     req.peerID,
			addr:   netip.AddrPortFrom(req.remoteIP, req.port),
			seeder: req.left == 0 || req.event == tracker.Completed,
			seen:   now,
		}
	}
	var (
		others               []*trackedPeer
		complete, incomplete int
	)
	for other, p := range sw {
		if now.Sub(p.seen) >= 2*t.cfg.Interval {
			delete(sw, other)
			continue
		}
		// Re-check the listed peer's own token: its lease may have ended.
		if other2, ok := t.cfg.Authorize(p.token, req.infoHash); !ok || other2 != other {
			delete(sw, other)
			continue
		}
		if p.seeder {
			complete++
		} else {
			incomplete++
		}
		if other != name {
			others = append(others, p)
		}
	}
	want := t.cfg.MaxPeers
	if req.numWant >= 0 && req.numWant < want {
		want = req.numWant
	}
	if req.event == tracker.Stopped {
		want = 0
	}
	rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	if len(others) > want {
		others = others[:want]
	}
	secs := int64(t.cfg.Interval / time.Second)
	reply := map[string]any{
		"interval":     secs,
		"min interval": max(secs/2, 1),
		"complete":     complete,
		"incomplete":   incomplete,
	}
	if req.compact {
		var v4, v6 []byte
		for _, p := range others {
			a := p.addr.Addr().Unmap()
			if a.Is4() {
				v4 = append(v4, a.AsSlice()...)
				v4 = binary.BigEndian.AppendUint16(v4, p.addr.Port())
			} else {
				v6 = append(v6, a.AsSlice()...)
				v6 = binary.BigEndian.AppendUint16(v6, p.addr.Port())
			}
		}
		reply["peers"] = string(v4)
		if len(v6) > 0 {
			reply["peers6"] = string(v6)
		}
	} else {
		list := make([]any, 0, len(others))
		for _, p := range others {
			d := map[string]any{"ip": p.addr.Addr().Unmap().String(), "port": int64(p.addr.Port())}
			if !req.noPeerID {
				d["peer id"] = string(p.id[:])
			}
			list = append(list, d)
		}
		reply["peers"] = list
	}
	return reply
}

// sweepLocked drops expired peers of every swarm, at most once an interval,
// so swarms nobody announces to any more do not keep their peers.
func (t *Tracker) sweepLocked(now time.Time) {
	if now.Sub(t.swept) < t.cfg.Interval {
		return
	}
	t.swept = now
	for ih, sw := range t.swarms {
		for name, p := range sw {
			if now.Sub(p.seen) >= 2*t.cfg.Interval {
				delete(sw, name)
			}
		}
		if len(sw) == 0 {
			delete(t.swarms, ih)
		}
	}
}

// parse reads the BEP 3 query. Errors are sent back as failure reasons, so
// they say what the client sent wrong.
func (t *Tracker) parse(r *http.Request) (announceRequest, error) {
	var req announceRequest
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return req, fmt.Errorf("malformed query: %v", err)
	}
	ih := q.Get("info_hash")
	if len(ih) != 20 {
		return req, fmt.Errorf("info_hash is %d bytes, want 20", len(ih))
	}
	copy(req.infoHash[:], ih)
	id := q.Get("peer_id")
	if len(id) != 20 {
		return req, fmt.Errorf("peer_id is %d bytes, want 20", len(id))
	}
	copy(req.peerID[:], id)
	port, err := strconv.ParseUint(q.Get("port"), 10, 16)
	if err != nil || port == 0 {
		return req, fmt.Errorf("port %q is not a port number", q.Get("port"))
	}
	req.port = uint16(port)
	req.left = -1
	if s := q.Get("left"); s != "" {
		if req.left, err = strconv.ParseInt(s, 10, 64); err != nil || req.left < 0 {
			return req, fmt.Errorf("left %q is not a byte count", s)
		}
	}
	// BEP 21 "paused" is a plain re-announce here.
	if ev := q.Get("event"); ev == "paused" {
		req.event = tracker.None
	} else if err := req.event.UnmarshalText([]byte(ev)); err != nil {
		return req, fmt.Errorf("event %q is not started, stopped, completed or empty", q.Get("event"))
	}
	req.compact = q.Get("compact") == "1"
	req.noPeerID = q.Get("no_peer_id") == "1"
	req.numWant = -1
	if s := q.Get("numwant"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return req, fmt.Errorf("numwant %q is not a number", s)
		}
		req.numWant = n
	}
	if t.cfg.RequestHost != nil {
		req.remoteIP, err = t.cfg.RequestHost(r)
		if err != nil {
			return req, fmt.Errorf("cannot tell your address: %v", err)
		}
	} else {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return req, fmt.Errorf("cannot tell your address from %q", r.RemoteAddr)
		}
		if req.remoteIP, err = netip.ParseAddr(host); err != nil {
			return req, fmt.Errorf("cannot tell your address from %q", r.RemoteAddr)
		}
	}
	req.remoteIP = req.remoteIP.Unmap()
	return req, nil
}
