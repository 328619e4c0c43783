package hostagent

import (
	"cmp"
	"slices"
	"time"
)

// cachedImage is a cached image as eviction sees it.
type cachedImage struct {
	Digest   string
	Size     int64
	LastUsed time.Time
	// Pinned: an overlay (a VM on this host) or a lease starting here
	// uses it.
	Pinned bool
	// NextUse is the earliest start of a lease on this host that needs
	// it (from the broker's assignments); zero when none is scheduled.
	NextUse time.Time
}

// evictionVictims chooses the cached images to evict so that need more
// bytes fit, for an image needed at by (zero: now). It never picks a pinned
// image. Images with no scheduled use go first, least recently used first;
// then those whose next use is farthest away. An image needed no later than
// by stays: evicting it would only trade one download for another sooner.
// A next use already past counts as now. When evicting every candidate
// would not make room, it chooses nothing and reports false.
func evictionVictims(imgs []cachedImage, need int64, by, now time.Time) ([]string, bool) {
	if need <= 0 {
		return nil, true
	}
	by = later(by, now)
	var cands []cachedImage
	for _, im := range imgs {
		if im.Pinned {
			continue
		}
		if !im.NextUse.IsZero() && !im.NextUse.After(by) {
			continue
		}
		cands = append(cands, im)
	}
	slices.SortFunc(cands, func(a, b cachedImage) int {
		switch {
		case a.NextUse.IsZero() != b.NextUse.IsZero():
			if a.NextUse.IsZero() {
				return -1
			}
			return 1
		case !a.NextUse.Equal(b.NextUse):
			return b.NextUse.Compare(a.NextUse) // farthest first
		case !a.LastUsed.Equal(b.LastUsed):
			return a.LastUsed.Compare(b.LastUsed)
		}
		return cmp.Compare(a.Digest, b.Digest)
	})
	var out []string
	for _, im := range cands {
		if need <= 0 {
			break
		}
		out = append(out, im.Digest)
		need -= im.Size
	}
	if need > 0 {
		return nil, false
	}
	return out, true
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
