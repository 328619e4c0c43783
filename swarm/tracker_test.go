package swarm

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/google/go-cmp/cmp"
)

var (
	ihA = [20]byte{0xa}
	ihB = [20]byte{0xb}
)

// fakeClock is a settable clock for expiry tests.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

type trackerFixture struct {
	tr     *Tracker
	clock  *fakeClock
	tokens map[string]grant
}

func newTrackerFixture(t *testing.T) *trackerFixture {
	f := &trackerFixture{
		clock: &fakeClock{now: time.Unix(1_700_000_000, 0)},
		tokens: map[string]grant{
			"host1": {"host1", ihA},
			"host2": {"host2", ihA},
			"host3": {"host3", ihA},
			"other": {"other", ihB},
		},
	}
	tr, err := NewTracker(TrackerConfig{
		Interval: 10 * time.Second,
		Now:      f.clock.Now,
		Authorize: func(token string, ih [20]byte) (string, bool) {
			g, ok := f.tokens[token]
			return g.peer, ok && g.ih == ih
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.tr = tr
	return f
}

type announceParams struct {
	token, ip, event string
	ih               [20]byte
	port             int
	left             int64
	compact          bool
}

// announce sends one announce from ip:port and decodes the reply.
func (f *trackerFixture) announce(t *testing.T, p announceParams) map[string]any {
	t.Helper()
	q := url.Values{}
	q.Set("info_hash", string(p.ih[:]))
	q.Set("peer_id", fmt.Sprintf("%-20s", p.token)[:20])
	q.Set("port", fmt.Sprint(p.port))
	q.Set("left", fmt.Sprint(p.left))
	q.Set("uploaded", "0")
	q.Set("downloaded", "0")
	if p.event != "" {
		q.Set("event", p.event)
	}
	if p.compact {
		q.Set("compact", "1")
	}
	r := httptest.NewRequest(http.MethodGet, "/announce/"+p.token+"?"+q.Encode(), nil)
	r.RemoteAddr = p.ip + ":55555"
	w := httptest.NewRecorder()
	f.tr.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("announce: HTTP %d, want 200 always", w.Code)
	}
	var reply map[string]any
	if err := bencode.Unmarshal(w.Body.Bytes(), &reply); err != nil {
		t.Fatalf("announce reply %q is not bencoded: %v", w.Body.String(), err)
	}
	return reply
}

// peerList decodes a reply's peers (compact or not) as "ip:port" strings.
func peerList(t *testing.T, reply map[string]any) []string {
	t.Helper()
	var out []string
	switch ps := reply["peers"].(type) {
	case string:
		if len(ps)%6 != 0 {
			t.Fatalf("compact peers has %d bytes, not a multiple of 6", len(ps))
		}
		for i := 0; i < len(ps); i += 6 {
			b := []byte(ps[i : i+6])
			out = append(out, fmt.Sprintf("%d.%d.%d.%d:%d", b[0], b[1], b[2], b[3], binary.BigEndian.Uint16(b[4:])))
		}
	case []any:
		for _, p := range ps {
			d := p.(map[string]any)
			out = append(out, fmt.Sprintf("%s:%d", d["ip"], d["port"]))
		}
	default:
		t.Fatalf("reply has no peers: %v", reply)
	}
	slices.Sort(out)
	return out
}

func TestTrackerRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		token string
		ih    [20]byte
	}{
		{"unknown token", "nobody", ihA},
		{"token for another infohash", "other", ihA},
		{"empty token", "", ihA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTrackerFixture(t)
			f.announce(t, announceParams{token: "host1", ip: "10.0.0.1", port: 6881, ih: ihA, compact: true})
			reply := f.announce(t, announceParams{token: tc.token, ip: "10.0.0.66", port: 6881, ih: tc.ih, compact: true})
			reason, _ := reply["failure reason"].(string)
			if !strings.Contains(reason, "not authorized") {
				t.Errorf("reply %v, want a failure reason saying not authorized", reply)
			}
			if _, ok := reply["peers"]; ok {
				t.Errorf("refusal lists peers: %v", reply)
			}
			// The refused peer is never handed out.
			got := peerList(t, f.announce(t, announceParams{token: "host2", ip: "10.0.0.2", port: 6881, ih: ihA, compact: true}))
			if d := cmp.Diff([]string{"10.0.0.1:6881"}, got); d != "" {
				t.Errorf("peers after refusal (-want +got):\n%s", d)
			}
		})
	}
}

func TestTrackerReplies(t *testing.T) {
	f := newTrackerFixture(t)
	f.announce(t, announceParams{token: "host1", ip: "10.0.0.1", port: 6881, ih: ihA, left: 0, compact: true, event: "started"})
	f.announce(t, announceParams{token: "host2", ip: "10.0.0.2", port: 6882, ih: ihA, left: 100, compact: true, event: "started"})
	f.announce(t, announceParams{token: "other", ip: "10.0.0.9", port: 6889, ih: ihB, left: 100, compact: true})

	for _, tc := range []struct {
		name      string
		p         announceParams
		wantPeers []string
	}{
		{"compact, self excluded", announceParams{token: "host3", ip: "10.0.0.3", port: 6883, ih: ihA, left: 5, compact: true},
			[]string{"10.0.0.1:6881", "10.0.0.2:6882"}},
		{"dictionary list", announceParams{token: "host3", ip: "10.0.0.3", port: 6883, ih: ihA, left: 5},
			[]string{"10.0.0.1:6881", "10.0.0.2:6882"}},
		{"other swarm stays apart", announceParams{token: "other", ip: "10.0.0.9", port: 6889, ih: ihB, compact: true},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply := f.announce(t, tc.p)
			if _, ok := reply["failure reason"]; ok {
				t.Fatalf("success carries a failure reason key (aria2 reads it as failure): %v", reply)
			}
			if reply["interval"] != int64(10) {
				t.Errorf("interval %v, want 10", reply["interval"])
			}
			if d := cmp.Diff(tc.wantPeers, peerList(t, reply)); d != "" {
				t.Errorf("peers (-want +got):\n%s", d)
			}
		})
	}
	reply := f.announce(t, announceParams{token: "host3", ip: "10.0.0.3", port: 6883, ih: ihA, left: 5, compact: true})
	if got, want := [2]any{reply["complete"], reply["incomplete"]}, [2]any{int64(1), int64(2)}; got != want {
		t.Errorf("complete/incomplete %v, want %v", got, want)
	}
}

func TestTrackerForgets(t *testing.T) {
	for _, tc := range []struct {
		name      string
		change    func(f *trackerFixture, t *testing.T)
		wantPeers []string
	}{
		{"stopped", func(f *trackerFixture, t *testing.T) {
			f.announce(t, announceParams{token: "host2", ip: "10.0.0.2", port: 6882, ih: ihA, event: "stopped"})
		}, []string{"10.0.0.1:6881"}},
		{"silent for 2 intervals", func(f *trackerFixture, t *testing.T) {
			f.clock.now = f.clock.now.Add(15 * time.Second)
			f.announce(t, announceParams{token: "host1", ip: "10.0.0.1", port: 6881, ih: ihA})
			f.clock.now = f.clock.now.Add(6 * time.Second) // host2 last seen 21 s ago
		}, []string{"10.0.0.1:6881"}},
		{"token revoked", func(f *trackerFixture, t *testing.T) {
			delete(f.tokens, "host1")
		}, []string{"10.0.0.2:6882"}},
		{"re-announce from a new address replaces the entry", func(f *trackerFixture, t *testing.T) {
			f.announce(t, announceParams{token: "host2", ip: "10.0.0.22", port: 7000, ih: ihA})
		}, []string{"10.0.0.1:6881", "10.0.0.22:7000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTrackerFixture(t)
			f.announce(t, announceParams{token: "host1", ip: "10.0.0.1", port: 6881, ih: ihA})
			f.announce(t, announceParams{token: "host2", ip: "10.0.0.2", port: 6882, ih: ihA})
			tc.change(f, t)
			got := peerList(t, f.announce(t, announceParams{token: "host3", ip: "10.0.0.3", port: 6883, ih: ihA, compact: true}))
			if d := cmp.Diff(tc.wantPeers, got); d != "" {
				t.Errorf("peers (-want +got):\n%s", d)
			}
		})
	}
}

func TestTrackerBadRequests(t *testing.T) {
	f := newTrackerFixture(t)
	for _, tc := range []struct {
		name, query, want string
	}{
		{"no info_hash", "peer_id=01234567890123456789&port=1", "info_hash"},
		{"short peer_id", "info_hash=" + url.QueryEscape(string(ihA[:])) + "&peer_id=x&port=1", "peer_id"},
		{"no port", "info_hash=" + url.QueryEscape(string(ihA[:])) + "&peer_id=01234567890123456789", "port"},
		{"bad event", "info_hash=" + url.QueryEscape(string(ihA[:])) + "&peer_id=01234567890123456789&port=1&event=bogus", "event"},
		{"bad escape", "info_hash=%zz", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/announce/host1", nil)
			r.URL.RawQuery = tc.query
			w := httptest.NewRecorder()
			f.tr.ServeHTTP(w, r)
			var reply map[string]any
			if err := bencode.Unmarshal(w.Body.Bytes(), &reply); err != nil || w.Code != 200 {
				t.Fatalf("HTTP %d %q (%v), want 200 and a bencoded dictionary", w.Code, w.Body.String(), err)
			}
			if reason, _ := reply["failure reason"].(string); !strings.Contains(reason, tc.want) {
				t.Errorf("failure reason %q, want it to mention %q", reason, tc.want)
			}
		})
	}
}

func FuzzAnnounce(f *testing.F) {
	ih := url.QueryEscape(string(ihA[:]))
	f.Add("info_hash="+ih+"&peer_id=01234567890123456789&port=6881&left=0&compact=1", "host1")
	f.Add("info_hash="+ih+"&peer_id=01234567890123456789&port=6881&event=stopped", "host2")
	f.Add("info_hash="+ih+"&peer_id=01234567890123456789&port=6881&numwant=-5&no_peer_id=1", "host3")
	f.Add("info_hash=%00&port=99999", "nobody")
	f.Add("a=%&&;=", "")
	tr, err := NewTracker(TrackerConfig{Authorize: func(token string, ih [20]byte) (string, bool) {
		return token, strings.HasPrefix(token, "host") && ih == ihA
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, query, token string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/announce/x", RawQuery: query}, RemoteAddr: "127.0.0.1:4242", Header: http.Header{}}
		w := httptest.NewRecorder()
		tr.ServeAnnounce(w, r, token)
		var reply map[string]any
		if err := bencode.Unmarshal(w.Body.Bytes(), &reply); err != nil {
			t.Fatalf("reply %q is not a bencoded dictionary: %v", w.Body.String(), err)
		}
		_, failed := reply["failure reason"]
		_, peers := reply["peers"]
		if failed == peers {
			t.Fatalf("reply %v must have exactly one of failure reason and peers", reply)
		}
	})
}
