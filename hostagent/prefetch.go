package hostagent

import (
	"context"
	"strings"

	"github.com/fairlease/fairlease/broker"
)

// Leases deferred to a firm start come with Prefetch set: their images are
// fetched into the cache now and pinned, so that the VMs start on time
// with the image already here.

const prefetchOwner = "prefetch:"

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

// prefetch starts fetching the images of pre that are not on their way
// yet, and lets go of those of leases no longer waiting here.
func (a *Agent) prefetch(ctx context.Context, pre []broker.Assignment) {
	want := map[string]string{}
	for _, x := range pre {
		if x.Image != "" {
			want[prefetchOwner+string(x.Lease)] = x.Image
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for owner := range a.prefetching {
		if _, ok := want[owner]; !ok {
			delete(a.prefetching, owner)
			a.cache.Unpin(owner)
		}
	}
	for owner, name := range want {
		if _, ok := a.prefetching[owner]; ok {
			continue
		}
		a.prefetching[owner] = name
		a.workers.Go(func() { a.fetchAhead(ctx, owner, name) })
	}
}

func (a *Agent) fetchAhead(ctx context.Context, owner, name string) {
	im, err := a.broker.Image(ctx, name)
	if err != nil {
		a.log.Warn("prefetch: resolve image", "image", name, "err", err)
		a.forgetPrefetch(owner)
		return
	}
	a.mu.Lock()
	if a.prefetching[owner] != name {
		a.mu.Unlock()
		return // the lease started or went meanwhile
	}
	a.digests[name] = im.Digest
	a.cache.Pin(owner, im.Digest)
	a.mu.Unlock()
	if _, err := a.cache.Ensure(ctx, im); err != nil {
		a.log.Warn("prefetch: fetch image", "image", name, "err", err)
		a.forgetPrefetch(owner)
		return
	}
	a.log.Info("prefetched image", "image", name, "for", strings.TrimPrefix(owner, prefetchOwner))
}

// forgetPrefetch drops a failed prefetch; the next answer tries again, and
// the start fetches the image anyway.
func (a *Agent) forgetPrefetch(owner string) {
	a.mu.Lock()
	delete(a.prefetching, owner)
	a.mu.Unlock()
	a.cache.Unpin(owner)
}
