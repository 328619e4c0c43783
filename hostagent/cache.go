package hostagent

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/fairlease/fairlease/broker"
)

// ErrCacheFull is wrapped by Ensure's error when an image does not fit.
var ErrCacheFull = errors.New("hostagent: cache full")

// OpenFunc streams an image's bytes by digest (Broker.OpenImage).
type OpenFunc func(ctx context.Context, digest string) (io.ReadCloser, error)

// Cache holds verified VM images as dir/<digest>.<format>, each with a
// dir/<digest>.verified marker written once its checksum matched, so that
// the inventory survives restarts without hashing every image again.
type Cache struct {
	dir   string
	limit int64
	open  OpenFunc
	log   *slog.Logger
	// peers, when set, fetches images from other hosts first.
	peers Peers

	mu       sync.Mutex
	images   map[string]*cached // by digest
	flights  map[string]*flight // downloads under way, by digest
	reserved int64              // bytes the flights will take
	pins     map[string]string  // digest by owner (a domain name)
	noEvict  bool
	// next is each image's next scheduled use on this host, by digest
	// (Schedule); now is the clock eviction compares it with.
	next map[string]time.Time
	now  func() time.Time
}

type cached struct {
	format string
	size   int64
	used   time.Time
	name   string // the image's name when cached, if known
}

// flight is one download that concurrent Ensure calls share.
type flight struct {
	done chan struct{}
	path string
	err  error
	// got counts the bytes downloaded so far, of size.
	got  atomic.Int64
	size int64
}

// Progress reports how much of digest's download is done, while one runs.
func (c *Cache) Progress(digest string) (done, total int64, ok bool) {
	c.mu.Lock()
	f, ok := c.flights[digest]
	c.mu.Unlock()
	if !ok {
		return 0, 0, false
	}
	return f.got.Load(), f.size, true
}

// countingWriter counts what passes into n.
type countingWriter struct{ n *atomic.Int64 }

func (w countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

func (c *Cache) path(digest, format string) string {
	return filepath.Join(c.dir, digest+"."+format)
}

func (c *Cache) marker(digest string) string {
	return filepath.Join(c.dir, digest+".verified")
}

// markerBody is what a marker holds: the image's size, then its name, so
// that after a restart the agent knows which cached image a lease's image
// name stands for before the broker answers.
func markerBody(size int64, name string) []byte {
	return []byte(strconv.FormatInt(size, 10) + "\n" + name + "\n")
}

// Ensure returns the path of image's verified copy, downloading it first
// if the cache lacks it. Concurrent calls for one digest share a download.
// A failed download leaves nothing behind.
func (c *Cache) Ensure(ctx context.Context, im broker.Image) (string, error) {
	return c.EnsureBy(ctx, im, time.Time{})
}

// EnsureBy is Ensure for an image needed at by (zero: now), as a prefetch
// for a deferred lease is: to make room it evicts only images whose next
// use is later than by.
func (c *Cache) EnsureBy(ctx context.Context, im broker.Image, by time.Time) (string, error) {
	if err := checkImage(im); err != nil {
		return "", err
	}
	c.mu.Lock()
	if e, ok := c.images[im.Digest]; ok {
		used, path := c.now(), c.path(im.Digest, e.format)
		e.used = used
		c.mu.Unlock()
		// The marker's time is the LRU order after a restart.
		_ = os.Chtimes(c.marker(im.Digest), used, used)
		return path, nil
	}
	if f, ok := c.flights[im.Digest]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.path, f.err
		case <-ctx.Done():
			return "", fmt.Errorf("wait for image %s: %w", im.Name, ctx.Err())
		}
	}
	if err := c.makeRoomLocked(im, by); err != nil {
		c.mu.Unlock()
		return "", err
	}
	f := &flight{done: make(chan struct{}), size: im.Size}
	c.flights[im.Digest] = f
	c.reserved += im.Size
	c.mu.Unlock()

	f.path, f.err = c.download(ctx, im, &f.got)

	c.mu.Lock()
	delete(c.flights, im.Digest)
	c.reserved -= im.Size
	if f.err == nil {
		c.images[im.Digest] = &cached{format: im.Format, size: im.Size, used: c.now(), name: im.Name}
	}
	c.mu.Unlock()
	close(f.done)
	return f.path, f.err
}

func checkImage(im broker.Image) error {
	if !isDigest(im.Digest) {
		return fmt.Errorf("image %q has digest %q, not a SHA-256 in hex: re-push the image", im.Name, im.Digest)
	}
	if im.Format != "qcow2" && im.Format != "raw" {
		return fmt.Errorf("image %q has format %q, not qcow2 or raw: re-push the image", im.Name, im.Format)
	}
	if im.Size <= 0 {
		return fmt.Errorf("image %q has size %d: re-push the image", im.Name, im.Size)
	}
	return nil
}

func isDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// makeRoomLocked evicts unpinned images until im, needed at by, fits
// under the limit, choosing them by their next scheduled use
// (evictionVictims).
func (c *Cache) makeRoomLocked(im broker.Image, by time.Time) error {
	used := c.reserved
	for _, e := range c.images {
		used += e.size
	}
	if used+im.Size <= c.limit {
		return nil
	}
	if c.noEvict {
		return fmt.Errorf("%w: image %s (%s) does not fit under cache_limit %s (%s used), and eviction waits until the images of adopted VMs are known: try again shortly",
			ErrCacheFull, im.Name, humanize.IBytes(uint64(im.Size)), humanize.IBytes(uint64(c.limit)), humanize.IBytes(uint64(used)))
	}
	pinned := map[string]bool{}
	for _, d := range c.pins {
		pinned[d] = true
	}
	imgs := make([]cachedImage, 0, len(c.images))
	var inUse, needed int64
	now := c.now()
	for d, e := range c.images {
		imgs = append(imgs, cachedImage{Digest: d, Size: e.size, LastUsed: e.used, Pinned: pinned[d], NextUse: c.next[d]})
		switch {
		case pinned[d]:
			inUse += e.size
		case !c.next[d].IsZero() && !c.next[d].After(later(by, now)):
			needed += e.size
		}
	}
	victims, ok := evictionVictims(imgs, used+im.Size-c.limit, by, now)
	if !ok {
		if needed > 0 {
			return fmt.Errorf("%w: image %s (%s) does not fit under cache_limit %s: images of running VMs use %s and images of leases starting here sooner %s; raise cache_limit or wait for leases to end",
				ErrCacheFull, im.Name, humanize.IBytes(uint64(im.Size)), humanize.IBytes(uint64(c.limit)), humanize.IBytes(uint64(inUse)), humanize.IBytes(uint64(needed)))
		}
		return fmt.Errorf("%w: image %s (%s) does not fit under cache_limit %s: images of running VMs use %s; raise cache_limit or wait for leases to end",
			ErrCacheFull, im.Name, humanize.IBytes(uint64(im.Size)), humanize.IBytes(uint64(c.limit)), humanize.IBytes(uint64(inUse)))
	}
	for _, d := range victims {
		e := c.images[d]
		if err := c.removeLocked(d); err != nil {
			return fmt.Errorf("%w: image %s does not fit under cache_limit %s, and evicting %s failed: %w",
				ErrCacheFull, im.Name, humanize.IBytes(uint64(c.limit)), d, err)
		}
		c.log.Info("evicted image", "digest", d, "size", e.size, "next_use", c.next[d])
	}
	return nil
}

// Schedule tells the cache when each image is next needed on this host,
// by digest: the starts of the leases assigned here. Eviction keeps the
// images needed soonest.
func (c *Cache) Schedule(next map[string]time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next = next
}

// Peers fetches images from other hosts' caches (a swarm) rather than from
// the broker alone.
type Peers interface {
	// Fetch writes im to dest (its final place: the peers go on being
	// served from it), calling progress as bytes arrive.
	Fetch(ctx context.Context, im broker.Image, dest string, progress func(done, total int64)) error
	// Forget stops serving digest, before its file goes.
	Forget(digest string)
}

// UsePeers makes the cache fetch through p first, falling back to the
// broker when p fails.
func (c *Cache) UsePeers(p Peers) {
	c.mu.Lock()
	c.peers = p
	c.mu.Unlock()
}

// fromPeers fetches im through the peers straight into place and checks
// it; on failure nothing stays.
func (c *Cache) fromPeers(ctx context.Context, p Peers, im broker.Image, got *atomic.Int64) (string, error) {
	path := c.path(im.Digest, im.Format)
	err := p.Fetch(ctx, im, path, func(done, _ int64) { got.Store(done) })
	if err == nil {
		var sum string
		if sum, err = hashFile(path); err == nil && sum != im.Digest {
			err = fmt.Errorf("image %s failed its checksum: got %s, want %s; re-push the image", im.Name, sum, im.Digest)
		}
	}
	if err == nil {
		err = writeFileAtomic(c.marker(im.Digest), markerBody(im.Size, im.Name), 0o644)
	}
	if err != nil {
		p.Forget(im.Digest)
		os.Remove(path)
		return "", err
	}
	return path, nil
}

// removeLocked deletes an image, its marker first: an image without a
// marker is verified again at start, a marker without an image is dropped.
func (c *Cache) removeLocked(digest string) error {
	e := c.images[digest]
	if c.peers != nil {
		c.peers.Forget(digest)
	}
	if err := os.Remove(c.marker(digest)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	delete(c.images, digest)
	if err := os.Remove(c.path(digest, e.format)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// download fetches im into a temporary file, checks its size and SHA-256
// and renames it into place; on any failure the temporary file goes.
func (c *Cache) download(ctx context.Context, im broker.Image, got *atomic.Int64) (path string, err error) {
	c.mu.Lock()
	peers := c.peers
	c.mu.Unlock()
	if peers != nil && im.InfoHash != "" {
		p, err := c.fromPeers(ctx, peers, im, got)
		if err == nil {
			return p, nil
		}
		if ctx.Err() != nil {
			return "", retryable{fmt.Errorf("fetch image %s: %w", im.Name, ctx.Err())}
		}
		c.log.Warn("fetch image from the swarm failed; fetching it from the broker", "image", im.Name, "err", err)
		got.Store(0)
	}
	body, err := c.open(ctx, im.Digest)
	if err != nil {
		err = fmt.Errorf("fetch image %s from the broker: %w", im.Name, err)
		if !permanent(err) {
			err = retryable{err}
		}
		return "", err
	}
	defer body.Close()
	r := &reader{r: body}
	// The space free before, since a failed write leaves none to measure.
	free := "unknown"
	if _, avail, err := diskSpace(c.dir); err == nil {
		free = humanize.IBytes(uint64(avail))
	}
	tmp, err := os.CreateTemp(c.dir, ".tmp-"+im.Digest+"-*")
	if err != nil {
		return "", c.writeError(im, free, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	// One byte past the size tells a longer stream from an exact one.
	n, err := io.Copy(io.MultiWriter(tmp, h, countingWriter{got}), io.LimitReader(r, im.Size+1))
	if r.err != nil {
		return "", retryable{fmt.Errorf("download image %s from the broker: %w", im.Name, r.err)}
	}
	if err != nil {
		return "", c.writeError(im, free, err)
	}
	if err := tmp.Sync(); err != nil {
		return "", c.writeError(im, free, err)
	}
	if err := tmp.Close(); err != nil {
		return "", c.writeError(im, free, err)
	}
	if n != im.Size {
		return "", fmt.Errorf("image %s is %d bytes, want %d: the broker's copy is damaged; re-push the image", im.Name, n, im.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != im.Digest {
		return "", fmt.Errorf("image %s failed its checksum: got %s, want %s; re-push the image", im.Name, got, im.Digest)
	}
	path = c.path(im.Digest, im.Format)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", c.writeError(im, free, err)
	}
	if err := writeFileAtomic(c.marker(im.Digest), markerBody(im.Size, im.Name), 0o644); err != nil {
		os.Remove(path)
		return "", c.writeError(im, free, err)
	}
	return path, nil
}

// reader keeps its read error, to tell a broken download from a failed
// write.
type reader struct {
	r   io.Reader
	err error
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// retryable is a failure the broker's absence explains: the VM has not
// failed, and its start is tried again later.
type retryable struct{ err error }

func (e retryable) Error() string { return e.err.Error() }
func (e retryable) Unwrap() error { return e.err }

// writeError explains a failed write: a full disk says how full.
func (c *Cache) writeError(im broker.Image, free string, err error) error {
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, io.ErrShortWrite) && !errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("write image %s to %s: %w", im.Name, c.dir, err)
	}
	return fmt.Errorf("%w: image %s (%s) does not fit in %s (cache_limit %s, free %s); free disk space there or lower cache_limit: %w",
		ErrCacheFull, im.Name, humanize.IBytes(uint64(im.Size)), c.dir, humanize.IBytes(uint64(c.limit)), free, err)
}

// Pin keeps digest from eviction while owner (a domain) uses it.
func (c *Cache) Pin(owner, digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pins[owner] = digest
}

// Unpin lets owner's image be evicted.
func (c *Cache) Unpin(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pins, owner)
}

// has reports whether digest is cached.
func (c *Cache) has(digest string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.images[digest]
	return ok
}

// pinned reports whether owner pins an image.
func (c *Cache) pinned(owner string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pins[owner]
	return ok
}

// owners lists the owners that pin images.
func (c *Cache) owners() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.pins))
	for o := range c.pins {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

// holdEviction stops eviction while some VM's image is unknown (after a
// restart, until the adopted VMs' images are resolved).
func (c *Cache) holdEviction(hold bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.noEvict = hold
}

// Names maps the names the cached images had when they were cached to
// their digests.
func (c *Cache) Names() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for d, e := range c.images {
		if e.name != "" {
			out[e.name] = d
		}
	}
	return out
}

// Inventory lists the digests of the verified images, sorted.
func (c *Cache) Inventory() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.images))
	for d := range c.images {
		out = append(out, d)
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}
