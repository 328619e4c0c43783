package hostagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/swarm"
)

// swarmPeers fetches images over the site's BitTorrent swarm: the host's
// .torrent comes from the broker (its announce URL carries the host's
// swarm token), its info hash must be the one in the image's signed
// manifest, and what the node fetched it keeps seeding to other hosts
// from the cache, across agent restarts too.
type swarmPeers struct {
	node   *swarm.Node
	broker func() Broker
	dir    string // cache_dir: torrents sit next to their images

	mu sync.Mutex
	ih map[string]string // info hash by digest
}

func newSwarmPeers(cfg Config, broker func() Broker) (*swarmPeers, error) {
	nc := swarm.DefaultNodeConfig()
	nc.DataDir, nc.ListenAddr, nc.ID = filepath.Join(cfg.StateDir, "swarm"), cfg.SwarmListen, cfg.Host
	nc.DownloadRate = cfg.SwarmDownloadRate
	if err := os.MkdirAll(nc.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("swarm: %w", err)
	}
	n, err := swarm.NewNode(nc)
	if err != nil {
		return nil, fmt.Errorf("swarm: %w; change swarm_listen", err)
	}
	return &swarmPeers{node: n, broker: broker, dir: cfg.CacheDir, ih: map[string]string{}}, nil
}

func (p *swarmPeers) torrentPath(digest string) string {
	return filepath.Join(p.dir, digest+".torrent")
}

func (p *swarmPeers) Fetch(ctx context.Context, im broker.Image, dest string, progress func(done, total int64)) error {
	t, err := p.broker().Torrent(ctx, im.Name)
	if err != nil {
		return err
	}
	ti, err := swarm.ParseTorrent(t)
	if err != nil {
		return err
	}
	if ti.InfoHash != im.InfoHash || ti.Size != im.Size {
		return fmt.Errorf("the torrent of image %s is not the one its signed manifest names (info hash %s, want %s)", im.Name, ti.InfoHash, im.InfoHash)
	}
	if err := writeFileAtomic(p.torrentPath(im.Digest), t, 0o600); err != nil {
		return err
	}
	p.mu.Lock()
	p.ih[im.Digest] = ti.InfoHash
	p.mu.Unlock()
	return p.node.Fetch(ctx, t, dest, progress)
}

func (p *swarmPeers) Forget(digest string) {
	p.mu.Lock()
	ih, ok := p.ih[digest]
	delete(p.ih, digest)
	p.mu.Unlock()
	if ok {
		p.node.Drop(ih)
	}
	os.Remove(p.torrentPath(digest))
}

// seedCached seeds again, after a restart, the cached images fetched
// through the swarm.
func (p *swarmPeers) seedCached(ctx context.Context, c *Cache) error {
	var errs []error
	for _, digest := range c.Inventory() {
		t, err := os.ReadFile(p.torrentPath(digest))
		if err != nil {
			continue // fetched from the broker: nothing to seed from
		}
		c.mu.Lock()
		e, ok := c.images[digest]
		c.mu.Unlock()
		if !ok {
			continue
		}
		ti, err := swarm.ParseTorrent(t)
		if err == nil {
			err = p.node.Seed(ctx, t, c.path(digest, e.format))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("seed %s: %w", digest[:12], err))
			continue
		}
		p.mu.Lock()
		p.ih[digest] = ti.InfoHash
		p.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (p *swarmPeers) close() error { return p.node.Close() }
