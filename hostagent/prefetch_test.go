package hostagent

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// deferred is lease id deferred to start, with VMs 0 and 1 placed here.
func deferred(id lease.ID, image string, start time.Time) broker.Assignment {
	x := assignment(id, image, 2, 0, 1)
	x.Prefetch, x.State, x.Start = true, lease.StateDeferred, start
	x.VMs, x.Context = nil, nil
	return x
}

func (b *fakeBroker) openCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opens
}

// prefetched waits until no prefetch runs.
func (r *testAgent) prefetched(t *testing.T) {
	t.Helper()
	waitFor(t, "prefetches done", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, j := range r.prefetching {
			if j.busy {
				return false
			}
		}
		return true
	})
}

// A lease deferred to a firm start brings its image into the cache before
// it starts, and nothing runs for it yet; when it starts, the image is not
// fetched again.
func TestPrefetchDeferredLease(t *testing.T) {
	b, hv, dir := newFakeBroker(), newFakeHV(t), t.TempDir()
	im := b.addImage("base", []byte("a qcow2 image, fetched ahead"), false)
	r := startAgent(t, testConfig(t, dir), b, hv)
	start := time.Now().Add(time.Hour).Truncate(time.Second)
	b.set(deferred("l-d", "base", start))
	path := filepath.Join(dir, "cache", im.Digest+".qcow2")
	waitFor(t, "the image in the cache", func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
	r.settle(t)
	if got := hv.Starts(); len(got) != 0 {
		t.Fatalf("started %d VMs for a lease that has not started", len(got))
	}
	r.cache.mu.Lock()
	next := r.cache.next[im.Digest]
	r.cache.mu.Unlock()
	if !next.Equal(start) {
		t.Errorf("the cache expects the image's next use at %v, want the lease's start %v", next, start)
	}
	// It starts: the VMs run from the cached image, without a second download.
	b.set(assignment("l-d", "base", 2, 0, 1))
	for _, i := range []int{0, 1} {
		waitFor(t, "VM running", hasReport(b, broker.VMStateChange{ID: "l-d", Index: i, State: broker.VMRunning}))
	}
	if n := b.openCount(); n != 1 {
		t.Errorf("image downloaded %d times, want once", n)
	}
}

// With room for two images, a third deferred lease's image evicts the one
// needed farthest ahead, not the least recently used one; images needed
// sooner are not evicted for it, and after a restart nothing is fetched
// again.
func TestPrefetchEvictsTheImageNeededFarthestAhead(t *testing.T) {
	b, hv, dir := newFakeBroker(), newFakeHV(t), t.TempDir()
	content := func(c byte) []byte { return slices.Repeat([]byte{c}, 100) }
	soon, far, next := b.addImage("soon", content('s'), false), b.addImage("far", content('f'), false), b.addImage("next", content('n'), false)
	cfg := testConfig(t, dir)
	cfg.CacheLimit = 250
	r := startAgent(t, cfg, b, hv)
	now := time.Now()
	lSoon, lFar, lNext := deferred("l-soon", "soon", now.Add(time.Hour)), deferred("l-far", "far", now.Add(72*time.Hour)), deferred("l-next", "next", now.Add(2*time.Hour))
	cached := func(im broker.Image) func() bool { return func() bool { return r.cache.has(im.Digest) } }

	// soon first, so that it is the least recently used.
	b.set(lSoon)
	waitFor(t, "soon cached", cached(soon))
	time.Sleep(10 * time.Millisecond)
	b.set(lSoon, lFar)
	waitFor(t, "far cached", cached(far))
	b.set(lSoon, lFar, lNext)
	waitFor(t, "next cached", cached(next))
	r.sync(t, b)
	want := []string{soon.Digest, next.Digest}
	slices.Sort(want)
	if diff := cmp.Diff(want, r.cache.Inventory()); diff != "" {
		t.Errorf("inventory: want soon and next, far (needed in 72 h) evicted (-want +got):\n%s", diff)
	}
	// far's prefetch is tried again, but evicting an image needed sooner
	// for it would only move a download: nothing more is fetched.
	b.set(lSoon, lFar, lNext)
	r.sync(t, b)
	r.prefetched(t)
	if n := b.openCount(); n != 3 {
		t.Errorf("%d downloads, want 3", n)
	}

	r.stop()
	r = startAgent(t, cfg, b, hv)
	b.set(lSoon, lFar, lNext)
	r.sync(t, b)
	r.prefetched(t)
	if diff := cmp.Diff(want, r.cache.Inventory()); diff != "" {
		t.Errorf("inventory after a restart (-want +got):\n%s", diff)
	}
	if n := b.openCount(); n != 3 {
		t.Errorf("%d downloads after a restart, want still 3", n)
	}
}
