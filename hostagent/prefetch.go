package hostagent

import (
	"context"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// Leases deferred to a firm start come with Prefetch set and their Start:
// their images are fetched into the cache now, so that the VMs start on
// time with the image already here. They are not pinned: the cache knows
// when each is needed (Schedule) and, when full, evicts the image needed
// farthest ahead, never one needed sooner than the image it makes room
// for. An evicted prefetch is fetched again with the next answer.

// prefetchJob is one deferred lease's image on its way into the cache.
type prefetchJob struct {
	image string
	start time.Time
	busy  bool // a fetch runs
}

// splitPrefetch separates the leases to run from those to prefetch for.
func splitPrefetch(as []broker.Assignment) (run, pre []broker.Assignment) {
	for _, x := range as {
		if x.Prefetch {
			pre = append(pre, x)
		} else {
			run = append(run, x)
		}
	}
	return run, pre
}

// prefetch starts fetching the images of pre that are not cached or on
// their way, forgets the leases no longer waiting here, and tells the
// cache when each image is needed next.
func (a *Agent) prefetch(ctx context.Context, pre []broker.Assignment) {
	want := map[lease.ID]broker.Assignment{}
	for _, x := range pre {
		if x.Image != "" {
			want[x.Lease] = x
		}
	}
	var start []broker.Assignment
	a.mu.Lock()
	for id := range a.prefetching {
		if _, ok := want[id]; !ok {
			delete(a.prefetching, id)
		}
	}
	for id, x := range want {
		j, ok := a.prefetching[id]
		if !ok {
			j = &prefetchJob{}
			a.prefetching[id] = j
		}
		j.image, j.start = x.Image, x.Start
		if j.busy {
			continue
		}
		if d, ok := a.digests[x.Image]; ok && a.cache.has(d) {
			continue
		}
		j.busy = true
		start = append(start, x)
	}
	// The cache learns the schedule before any fetch makes room.
	a.cache.Schedule(nextUses(a.desired, a.prefetching, a.digests, a.now()))
	a.mu.Unlock()
	for _, x := range start {
		a.workers.Go(func() { a.fetchAhead(ctx, x.Lease, x.Image, x.Start) })
	}
}

func (a *Agent) fetchAhead(ctx context.Context, id lease.ID, name string, start time.Time) {
	defer func() {
		a.mu.Lock()
		if j, ok := a.prefetching[id]; ok {
			j.busy = false
		}
		a.mu.Unlock()
	}()
	im, err := a.broker.Image(ctx, name)
	if err != nil {
		a.log.Warn("prefetch: resolve image", "image", name, "err", err)
		return
	}
	a.mu.Lock()
	_, waiting := a.prefetching[id]
	a.digests[name] = im.Digest
	a.mu.Unlock()
	if !waiting {
		return // the lease started or went meanwhile
	}
	a.schedule()
	if _, err := a.cache.EnsureBy(ctx, im, start); err != nil {
		// The next answer tries again, and the start fetches it anyway.
		a.log.Warn("prefetch: fetch image", "image", name, "lease", id, "err", err)
		return
	}
	a.log.Info("prefetched image", "image", name, "for", id, "start", start)
}

// schedule tells the cache when each image is needed next on this host:
// now for the leases that run here, the start for the deferred ones.
func (a *Agent) schedule() {
	a.mu.Lock()
	next := nextUses(a.desired, a.prefetching, a.digests, a.now())
	a.mu.Unlock()
	a.cache.Schedule(next)
}

// nextUses maps the digest of each image the host's leases need to the
// earliest time one needs it: now for running or starting leases, the
// start for deferred ones. Images whose digest is not known yet are left
// out; they are not in the cache.
func nextUses(run []broker.Assignment, pre map[lease.ID]*prefetchJob, digests map[string]string, now time.Time) map[string]time.Time {
	out := map[string]time.Time{}
	add := func(name string, at time.Time) {
		d, ok := digests[name]
		if !ok || name == "" {
			return
		}
		if t, ok := out[d]; !ok || at.Before(t) {
			out[d] = at
		}
	}
	for _, x := range run {
		add(x.Image, now)
	}
	for _, j := range pre {
		add(j.image, later(j.start, now))
	}
	return out
}
