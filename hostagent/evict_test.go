package hostagent

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

func TestEvictionVictims(t *testing.T) {
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	none := time.Time{}
	img := func(d string, size int64, lastUsed time.Duration, next time.Time) cachedImage {
		return cachedImage{Digest: d, Size: size, LastUsed: now.Add(-lastUsed), NextUse: next}
	}
	pinned := func(c cachedImage) cachedImage { c.Pinned = true; return c }
	tests := map[string]struct {
		imgs   []cachedImage
		need   int64
		by     time.Time
		want   []string
		wantOK bool
	}{
		"nothing to free": {
			imgs: []cachedImage{img("a", 10, time.Hour, none)},
			need: 0, want: nil, wantOK: true,
		},
		// Plain LRU would evict a, whose lease starts in an hour.
		"farthest next use goes before the least recently used": {
			imgs: []cachedImage{
				img("a", 10, 3*time.Hour, at(time.Hour)),
				img("b", 10, time.Minute, at(72*time.Hour)),
			},
			need: 10, want: []string{"b"}, wantOK: true,
		},
		"images with no scheduled use first, least recently used first": {
			imgs: []cachedImage{
				img("soon", 10, 5*time.Hour, at(time.Hour)),
				img("far", 10, 4*time.Hour, at(48*time.Hour)),
				img("idle-new", 10, time.Minute, none),
				img("idle-old", 10, 2*time.Hour, none),
			},
			need: 25, want: []string{"idle-old", "idle-new", "far"}, wantOK: true,
		},
		"never a pinned image, however old": {
			imgs: []cachedImage{
				pinned(img("running", 10, 9*time.Hour, none)),
				img("later", 10, time.Minute, at(24*time.Hour)),
			},
			need: 10, want: []string{"later"}, wantOK: true,
		},
		"equal next uses: least recently used first": {
			imgs: []cachedImage{
				img("x", 10, time.Minute, at(2*time.Hour)),
				img("y", 10, time.Hour, at(2*time.Hour)),
			},
			need: 5, want: []string{"y"}, wantOK: true,
		},
		"an image needed sooner than the incoming one stays": {
			imgs: []cachedImage{
				img("sooner", 10, time.Hour, at(30*time.Minute)),
				img("later", 10, time.Minute, at(5*time.Hour)),
			},
			need: 10, by: at(2 * time.Hour), want: []string{"later"}, wantOK: true,
		},
		"not enough room without images needed sooner: evict nothing": {
			imgs: []cachedImage{
				img("sooner", 10, time.Hour, at(30*time.Minute)),
				img("idle", 10, time.Minute, none),
			},
			need: 15, by: at(2 * time.Hour), want: nil, wantOK: false,
		},
		"a start already past counts as now": {
			imgs: []cachedImage{
				img("overdue", 10, time.Hour, at(-time.Minute)),
				img("tomorrow", 10, 2*time.Hour, at(24*time.Hour)),
			},
			need: 10, want: []string{"tomorrow"}, wantOK: true,
		},
		"every image pinned": {
			imgs: []cachedImage{pinned(img("a", 10, time.Hour, none)), pinned(img("b", 10, time.Hour, none))},
			need: 1, want: nil, wantOK: false,
		},
		"one large image frees enough": {
			imgs: []cachedImage{
				img("small-idle", 5, time.Hour, none),
				img("big-far", 50, time.Minute, at(10*time.Hour)),
				img("big-near", 50, time.Minute, at(time.Hour)),
			},
			need: 40, want: []string{"small-idle", "big-far"}, wantOK: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := evictionVictims(tc.imgs, tc.need, tc.by, now)
			if diff := cmp.Diff(tc.want, got); diff != "" || ok != tc.wantOK {
				t.Errorf("evictionVictims(need %d) = %v, %v; want %v, %v (-want +got):\n%s", tc.need, got, ok, tc.want, tc.wantOK, diff)
			}
		})
	}
}

func TestNextUses(t *testing.T) {
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	digests := map[string]string{"ubuntu": "d-ubuntu", "debian": "d-debian", "alpine": "d-alpine"}
	tests := map[string]struct {
		run  []broker.Assignment
		pre  map[lease.ID]*prefetchJob
		want map[string]time.Time
	}{
		"running leases need their image now": {
			run:  []broker.Assignment{{Lease: "l1", Image: "ubuntu"}},
			want: map[string]time.Time{"d-ubuntu": now},
		},
		"deferred leases at their start, the earliest one": {
			pre: map[lease.ID]*prefetchJob{
				"l2": {image: "debian", start: now.Add(3 * time.Hour)},
				"l3": {image: "debian", start: now.Add(time.Hour)},
				"l4": {image: "alpine", start: now.Add(-time.Minute)},
			},
			want: map[string]time.Time{"d-debian": now.Add(time.Hour), "d-alpine": now},
		},
		"running beats deferred; unresolved names left out": {
			run:  []broker.Assignment{{Lease: "l1", Image: "ubuntu"}, {Lease: "l5", Image: "unknown"}, {Lease: "l6"}},
			pre:  map[lease.ID]*prefetchJob{"l2": {image: "ubuntu", start: now.Add(time.Hour)}},
			want: map[string]time.Time{"d-ubuntu": now},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := nextUses(tc.run, tc.pre, digests, now)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("nextUses (-want +got):\n%s", diff)
			}
		})
	}
}
