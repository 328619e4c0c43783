package hostagent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
)

// A lease deferred to a firm start brings its image into the cache before
// it starts, and nothing runs for it yet; when it starts, the image is not
// fetched again.
func TestPrefetchDeferredLease(t *testing.T) {
	b, hv, dir := newFakeBroker(), newFakeHV(t), t.TempDir()
	im := b.addImage("base", []byte("a qcow2 image, fetched ahead"), false)
	r := startAgent(t, testConfig(t, dir), b, hv)
	later := assignment("l-d", "base", 2, 0, 1)
	later.Prefetch, later.State, later.Start = true, "deferred", time.Now().Add(time.Hour)
	later.VMs, later.Context = nil, nil
	b.set(later)
	path := filepath.Join(dir, "cache", im.Digest+".qcow2")
	waitFor(t, "the image in the cache", func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
	r.settle(t)
	if got := hv.Starts(); len(got) != 0 {
		t.Fatalf("started %d VMs for a lease that has not started", len(got))
	}
	if !r.cache.pinned(prefetchOwner + "l-d") {
		t.Error("the prefetched image is not pinned")
	}
	// It starts: the VMs run from the cached image, without a second download.
	b.set(assignment("l-d", "base", 2, 0, 1))
	for _, i := range []int{0, 1} {
		waitFor(t, "VM running", hasReport(b, broker.VMStateChange{ID: "l-d", Index: i, State: broker.VMRunning}))
	}
	b.mu.Lock()
	opens := b.opens
	b.mu.Unlock()
	if opens != 1 {
		t.Errorf("image downloaded %d times, want once", opens)
	}
	if r.cache.pinned(prefetchOwner + "l-d") {
		t.Error("the prefetch pin outlived the lease's start")
	}
}
