package hostagent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/hostagent/virt"
	"github.com/fairlease/fairlease/lease"
)

// reconcileLoop reconciles when asked (new assignments, a domain event,
// a start or stop done), when a lease ends, and every heartbeat in case
// an event was missed.
func (a *Agent) reconcileLoop(ctx context.Context) {
	resync := time.NewTicker(a.cfg.Heartbeat)
	defer resync.Stop()
	ends := time.NewTimer(time.Hour)
	defer ends.Stop()
	for {
		if next := a.reconcile(ctx); !next.IsZero() {
			ends.Reset(max(next.Sub(a.now()), 0))
		} else {
			ends.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case <-resync.C:
		case <-ends.C:
		}
	}
}

// reconcile runs decide on the latest assignments and the hypervisor's
// domains and sets its plan going: reports queued, starts and stops in
// their own goroutines. It returns when the next lease ends.
func (a *Agent) reconcile(ctx context.Context) time.Time {
	a.mu.Lock()
	if !a.have {
		// Before the broker's first answer every domain would look
		// orphaned.
		a.mu.Unlock()
		return time.Time{}
	}
	as, mem := a.desired, maps.Clone(a.mem)
	a.mu.Unlock()
	actual, err := a.hv.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("list domains; will retry", "err", err)
		}
		return time.Time{}
	}
	p := decide(a.now(), a.cfg.Host, as, actual, mem)

	a.mu.Lock()
	for _, r := range p.Reports {
		m := a.mem[r.Name]
		m.Reported = r.Change.State
		a.mem[r.Name] = m
		a.out.put(r.Change)
		a.log.Info("VM state", "domain", r.Name, "state", r.Change.State, "note", r.Change.Note)
	}
	for _, name := range p.Forget {
		if !a.mem[name].Busy {
			delete(a.mem, name)
		}
	}
	for _, s := range p.Starts {
		a.markBusy(s.Name)
	}
	for _, s := range p.Stops {
		a.markBusy(s.Name)
	}
	a.mu.Unlock()

	for _, s := range p.Starts {
		a.workers.Go(func() { a.start(ctx, s) })
	}
	for _, s := range p.Stops {
		a.workers.Go(func() { a.stop(ctx, s) })
	}
	a.pin(ctx, p.Images)
	live := map[lease.ID]bool{}
	for _, x := range as {
		live[x.Lease] = true
	}
	// A report on a lease no longer assigned is moot, except a stop.
	a.out.prune(func(c broker.VMStateChange) bool { return c.State == broker.VMStopped || live[c.ID] })
	a.passes.Add(1)
	return p.Wake
}

func (a *Agent) markBusy(name string) {
	m := a.mem[name]
	m.Busy = true
	a.mem[name] = m
}

// done records the end of a start or stop: the state to report, if any.
func (a *Agent) done(name string, c *broker.VMStateChange) {
	a.mu.Lock()
	m := a.mem[name]
	m.Busy = false
	if c != nil {
		m.Reported = c.State
		a.out.put(*c)
		a.log.Info("VM state", "domain", name, "state", c.State, "note", c.Note)
	}
	a.mem[name] = m
	a.mu.Unlock()
	a.kick()
}

func (a *Agent) start(ctx context.Context, s startVM) {
	err := a.startVM(ctx, s)
	switch {
	case err == nil:
		a.done(s.Name, &broker.VMStateChange{ID: s.Assignment.Lease, Index: s.Index, State: broker.VMRunning})
	case ctx.Err() != nil:
		// The agent is stopping, not the VM failing: the next agent
		// adopts the domain or starts it.
		a.done(s.Name, nil)
	case errors.As(err, new(retryable)):
		a.log.Warn("start VM; will retry", "domain", s.Name, "err", err)
		a.mu.Lock()
		m := a.mem[s.Name]
		m.RetryAt = a.now().Add(a.retryMax)
		a.mem[s.Name] = m
		a.mu.Unlock()
		a.done(s.Name, nil)
	default:
		a.log.Warn("start VM", "domain", s.Name, "err", err)
		a.done(s.Name, &broker.VMStateChange{ID: s.Assignment.Lease, Index: s.Index, State: broker.VMFailed, Note: err.Error()})
	}
}

// startVM resolves and caches the image, then starts the domain. The
// image stays pinned while the VM runs.
func (a *Agent) startVM(ctx context.Context, s startVM) error {
	im, err := a.broker.Image(ctx, s.Assignment.Image)
	if err != nil {
		err = fmt.Errorf("resolve image %q: %w", s.Assignment.Image, err)
		if !permanent(err) {
			err = retryable{err}
		}
		return err
	}
	a.mu.Lock()
	a.digests[s.Assignment.Image] = im.Digest
	a.mu.Unlock()
	a.schedule()
	a.cache.Pin(s.Name, im.Digest)
	stop := a.reportProgress(ctx, s, im)
	path, err := a.cache.Ensure(ctx, im)
	stop()
	if err != nil {
		a.cache.Unpin(s.Name)
		return err
	}
	if err := a.hv.Start(ctx, buildSpec(a.cfg.Host, s, path, im.Format)); err != nil {
		a.cache.Unpin(s.Name)
		return fmt.Errorf("start domain %s: %w", s.Name, err)
	}
	return nil
}

// progressEvery is how often a VM waiting for its image reports how far
// the download got.
var progressEvery = time.Second

// reportProgress reports, while the VM's image downloads, how much of it
// is here ("image 63 %"), so that the lease shows what it waits for. The
// returned stop waits until no more reports come: the final one must not
// be overwritten by a late progress report.
func (a *Agent) reportProgress(ctx context.Context, s startVM, im broker.Image) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		last := int64(-1)
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			got, total, ok := a.cache.Progress(im.Digest)
			if !ok || total <= 0 {
				continue
			}
			pct := 100 * got / total
			if pct == last {
				continue
			}
			last = pct
			a.out.put(broker.VMStateChange{ID: s.Assignment.Lease, Index: s.Index, State: broker.VMStarting,
				Note: fmt.Sprintf("image %d %%", pct)})
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// buildSpec is the domain of VM s.Index of s.Assignment, on base image path.
func buildSpec(host string, s startVM, path, format string) virt.Spec {
	as := s.Assignment
	var self broker.VM
	peers := make([]virt.Peer, 0, len(as.VMs))
	for _, v := range as.VMs {
		peers = append(peers, virt.Peer{Name: v.Name, Address: v.Address})
		if v.Index == s.Index {
			self = v
		}
	}
	seed := virt.Seed{InstanceID: s.Name, Hostname: self.Name, Address: self.Address, Prefix: vmNet.Bits(), Peers: peers,
		UserData: as.UserData}
	if c := as.Context; c != nil {
		seed.ClusterPublicKey, seed.ClusterPrivateKey = c.PublicKey, c.PrivateKey
		seed.UserKeys = append([]string(nil), c.UserKeys...)
	}
	return virt.Spec{
		Name: s.Name, Lease: as.Lease, Index: s.Index, Host: host,
		Cores: as.Shape.Cores, MemoryMiB: as.Shape.MemoryMiB,
		BaseImage: path, BaseFormat: format, Seed: seed, End: as.End,
	}
}

func (a *Agent) stop(ctx context.Context, s stopVM) {
	if err := a.hv.Stop(ctx, s.Name, a.cfg.ShutdownGrace); err != nil {
		if ctx.Err() == nil {
			a.log.Warn("stop VM; will retry", "domain", s.Name, "err", err)
		}
		a.done(s.Name, nil)
		return
	}
	a.cache.Unpin(s.Name)
	var c *broker.VMStateChange
	if s.Lease != "" {
		c = &broker.VMStateChange{ID: s.Lease, Index: s.Index, State: broker.VMStopped, Note: s.Note}
	}
	a.done(s.Name, c)
}

// pin keeps the images of the VMs to keep (images, by domain) from
// eviction. An adopted VM's image is resolved first; until every one is
// known, nothing is evicted.
func (a *Agent) pin(ctx context.Context, images map[string]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, owner := range a.cache.owners() {
		if _, keep := images[owner]; !keep && !a.mem[owner].Busy {
			a.cache.Unpin(owner)
		}
	}
	unknown := false
	for owner, name := range images {
		if a.cache.pinned(owner) || a.mem[owner].Busy {
			continue
		}
		if d, ok := a.digests[name]; ok {
			a.cache.Pin(owner, d)
			continue
		}
		unknown = true
		if !a.resolving[name] {
			a.resolving[name] = true
			a.workers.Go(func() { a.resolve(ctx, name) })
		}
	}
	a.cache.holdEviction(unknown)
}

// resolve learns the digest of image name.
func (a *Agent) resolve(ctx context.Context, name string) {
	im, err := a.broker.Image(ctx, name)
	a.mu.Lock()
	delete(a.resolving, name)
	if err == nil {
		a.digests[name] = im.Digest
	}
	a.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("resolve the image of an adopted VM; will retry", "image", name, "err", err)
		}
		return
	}
	a.schedule()
	a.kick()
}
