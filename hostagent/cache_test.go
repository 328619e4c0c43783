package hostagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/broker"
)

// blobs serves images from memory, counting downloads.
type blobs struct {
	mu    sync.Mutex
	data  map[string][]byte
	opens atomic.Int32
	gate  chan struct{} // if set, downloads wait for it
}

func newBlobs() *blobs { return &blobs{data: map[string][]byte{}} }

// add stores content, served as blob (content when nil).
func (b *blobs) add(name string, content, blob []byte) broker.Image {
	sum := sha256.Sum256(content)
	d := hex.EncodeToString(sum[:])
	if blob == nil {
		blob = content
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.data[d] = blob
	return broker.Image{Name: name, Digest: d, Size: int64(len(content)), Format: "raw"}
}

func (b *blobs) open(ctx context.Context, digest string) (io.ReadCloser, error) {
	b.opens.Add(1)
	if b.gate != nil {
		select {
		case <-b.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.data[digest]
	if !ok {
		return nil, errors.New("no such blob")
	}
	return io.NopCloser(bytes.NewReader(d)), nil
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestCacheConcurrentEnsureSharesOneDownload(t *testing.T) {
	dir, b := t.TempDir(), newBlobs()
	b.gate = make(chan struct{})
	im := b.add("base", []byte("some image bytes"), nil)
	c, err := OpenCache(dir, 1<<20, b.open, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	paths, errs := make([]string, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { paths[i], errs[i] = c.Ensure(t.Context(), im) })
	}
	waitFor(t, "a download", func() bool { return b.opens.Load() == 1 })
	close(b.gate)
	wg.Wait()
	want := filepath.Join(dir, im.Digest+".raw")
	for i := range n {
		if errs[i] != nil || paths[i] != want {
			t.Errorf("Ensure %d = %q, %v; want %q", i, paths[i], errs[i], want)
		}
	}
	if got := b.opens.Load(); got != 1 {
		t.Errorf("downloaded %d times, want once", got)
	}
	if got, _ := os.ReadFile(want); string(got) != "some image bytes" {
		t.Errorf("cached image holds %q", got)
	}
	if diff := cmp.Diff([]string{im.Digest + ".raw", im.Digest + ".verified"}, dirNames(t, dir)); diff != "" {
		t.Errorf("cache dir (-want +got):\n%s", diff)
	}
	if _, err := c.Ensure(t.Context(), im); err != nil || b.opens.Load() != 1 {
		t.Errorf("Ensure of a cached image: %v after %d downloads, want no new download", err, b.opens.Load())
	}
}

func TestCacheRefusesBadDownloads(t *testing.T) {
	content := []byte("the image as pushed")
	for name, tc := range map[string]struct {
		blob    []byte
		edit    func(im *broker.Image)
		wantErr string
	}{
		"checksum":   {blob: bytes.ToUpper(content), wantErr: "image base failed its checksum: got "},
		"truncated":  {blob: content[:5], wantErr: "image base is 5 bytes, want 19: the broker's copy is damaged; re-push the image"},
		"too long":   {blob: append(slices.Clone(content), "more"...), wantErr: "image base is 20 bytes, want 19"},
		"bad digest": {edit: func(im *broker.Image) { im.Digest = "../../etc/passwd" }, wantErr: `image "base" has digest "../../etc/passwd", not a SHA-256 in hex`},
		"bad format": {edit: func(im *broker.Image) { im.Format = "vmdk" }, wantErr: `image "base" has format "vmdk", not qcow2 or raw`},
	} {
		t.Run(name, func(t *testing.T) {
			dir, b := t.TempDir(), newBlobs()
			im := b.add("base", content, tc.blob)
			if tc.edit != nil {
				tc.edit(&im)
			}
			c, err := OpenCache(dir, 1<<20, b.open, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Ensure(t.Context(), im)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Ensure: %v, want an error with %q", err, tc.wantErr)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("cache dir holds %v, want nothing", names)
			}
			if inv := c.Inventory(); len(inv) != 0 {
				t.Errorf("inventory %v, want empty", inv)
			}
		})
	}
}

// TestCacheFullDisk fills a 1 MiB tmpfs with a 2 MiB image.
func TestCacheFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	b := newBlobs()
	im := b.add("big", bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16), nil)
	// A limit above the disk, so the disk is what runs out.
	c, err := OpenCache(dir, 1<<30, b.open, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Ensure(t.Context(), im)
	t.Logf("Ensure: %v", err)
	if !errors.Is(err, ErrCacheFull) || !strings.Contains(err.Error(), "cache full: image big (2.0 MiB) does not fit in "+dir+" (cache_limit 1.0 GiB, free ") {
		t.Errorf("Ensure: %v, want a cache full error naming the image, the limit and the free space", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("cache dir holds %v, want nothing", names)
	}
}

func TestCacheEvictsLeastRecentlyUsedUnpinned(t *testing.T) {
	dir, b := t.TempDir(), newBlobs()
	img := func(name string) broker.Image { return b.add(name, bytes.Repeat([]byte(name), 100), nil) }
	a, bb, c3, d := img("a"), img("b"), img("c"), img("d")
	c, err := OpenCache(dir, 250, b.open, nil)
	if err != nil {
		t.Fatal(err)
	}
	ensure := func(im broker.Image) error {
		_, err := c.Ensure(t.Context(), im)
		return err
	}
	for _, im := range []broker.Image{a, bb} {
		if err := ensure(im); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct use times
	}
	// a is the least recently used, but a VM uses it.
	c.Pin("fl-x-0", a.Digest)
	if err := ensure(c3); err != nil {
		t.Fatalf("Ensure c: %v", err)
	}
	want := []string{a.Digest, c3.Digest}
	slices.Sort(want)
	if diff := cmp.Diff(want, c.Inventory()); diff != "" {
		t.Errorf("inventory after evicting (-want +got):\n%s", diff)
	}
	c.Pin("fl-y-0", c3.Digest)
	if err := ensure(d); !errors.Is(err, ErrCacheFull) || !strings.Contains(err.Error(), "raise cache_limit or wait for leases to end") {
		t.Errorf("Ensure with every image pinned: %v, want cache full", err)
	}
	c.holdEviction(true)
	c.Unpin("fl-y-0")
	if err := ensure(d); !errors.Is(err, ErrCacheFull) {
		t.Errorf("Ensure while eviction is held: %v, want cache full", err)
	}
	c.holdEviction(false)
	if err := ensure(d); err != nil {
		t.Errorf("Ensure once c is unpinned: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, c3.Digest+".raw")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("evicted image still on disk: %v", err)
	}
}

func TestOpenCacheRecoversItsInventory(t *testing.T) {
	dir, b := t.TempDir(), newBlobs()
	good := b.add("good", []byte("good image"), nil)
	unmarked := b.add("unmarked", []byte("unmarked image"), nil)
	corrupt := b.add("corrupt", []byte("corrupt image"), nil)
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(good.Digest+".raw", "good image")
	write(good.Digest+".verified", "10\n")
	write(unmarked.Digest+".qcow2", "unmarked image") // renamed, then a crash before the marker
	write(corrupt.Digest+".raw", "CORRUPT image")
	write(".tmp-"+good.Digest+"-123", "half a downl") // an interrupted download
	write(strings.Repeat("0", 64)+".verified", "4\n") // a marker whose image went
	write("notes.txt", "the operator's")

	c, err := OpenCache(dir, 1<<20, b.open, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantInv := []string{good.Digest, unmarked.Digest}
	slices.Sort(wantInv)
	if diff := cmp.Diff(wantInv, c.Inventory()); diff != "" {
		t.Errorf("inventory (-want +got):\n%s", diff)
	}
	wantFiles := []string{good.Digest + ".raw", good.Digest + ".verified", unmarked.Digest + ".qcow2", unmarked.Digest + ".verified", "notes.txt"}
	slices.Sort(wantFiles)
	if diff := cmp.Diff(wantFiles, dirNames(t, dir)); diff != "" {
		t.Errorf("cache dir (-want +got):\n%s", diff)
	}
	if p, err := c.Ensure(t.Context(), unmarked); err != nil || p != filepath.Join(dir, unmarked.Digest+".qcow2") || b.opens.Load() != 0 {
		t.Errorf("Ensure of a re-verified image = %q, %v after %d downloads; want the cached path, no download", p, err, b.opens.Load())
	}
}
