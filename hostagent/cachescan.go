package hostagent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// OpenCache opens the image cache in dir, creating dir if needed. limit
// is its size in bytes (0: 80% of dir's filesystem). It removes what an
// interrupted download left, verifies again images whose marker is
// missing or disagrees, and drops markers without images.
func OpenCache(dir string, limit int64, open OpenFunc, logger *slog.Logger) (*Cache, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cache_dir: %w", err)
	}
	if limit == 0 {
		total, _, err := diskSpace(dir)
		if err != nil {
			return nil, fmt.Errorf("size the cache: %w; set cache_limit", err)
		}
		limit = total / 10 * 8
	}
	c := &Cache{dir: dir, limit: limit, open: open, log: logger,
		images: map[string]*cached{}, flights: map[string]*flight{}, pins: map[string]string{}, now: time.Now}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read cache_dir: %w", err)
	}
	markers := map[string]bool{}
	files := map[string]string{} // format by digest
	for _, e := range entries {
		name := e.Name()
		digest, ext, _ := strings.Cut(name, ".")
		switch {
		case strings.HasPrefix(name, ".tmp-"):
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("remove an interrupted download: %w", err)
			}
		case !isDigest(digest) || !e.Type().IsRegular():
			// not ours
		case ext == "verified":
			markers[digest] = true
		case ext == "qcow2" || ext == "raw":
			if _, dup := files[digest]; dup {
				logger.Warn("image cached twice, keeping one", "digest", digest)
				os.Remove(filepath.Join(dir, name))
				continue
			}
			files[digest] = ext
		}
	}
	for digest, format := range files {
		if err := c.adopt(digest, format, markers[digest]); err != nil {
			return nil, err
		}
		delete(markers, digest)
	}
	for digest := range markers {
		if err := os.Remove(c.marker(digest)); err != nil {
			return nil, fmt.Errorf("remove a stale marker: %w", err)
		}
	}
	return c, nil
}

// adopt takes a cached file into the inventory: trusted if its marker
// names its size, verified by hashing otherwise, deleted if it fails.
func (c *Cache) adopt(digest, format string, marked bool) error {
	path := c.path(digest, format)
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("read the cache: %w", err)
	}
	if marked {
		b, err := os.ReadFile(c.marker(digest))
		first, name, _ := strings.Cut(string(b), "\n")
		size, perr := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
		if err == nil && perr == nil && size == st.Size() {
			used := st.ModTime()
			if mst, err := os.Stat(c.marker(digest)); err == nil {
				used = mst.ModTime()
			}
			c.images[digest] = &cached{format: format, size: size, used: used, name: strings.TrimSpace(name)}
			return nil
		}
	}
	got, err := hashFile(path)
	if err != nil {
		return fmt.Errorf("verify cached image %s: %w", path, err)
	}
	if got != digest {
		c.log.Warn("cached image failed its checksum, removing it", "path", path, "got", got)
		os.Remove(c.marker(digest))
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove a damaged cached image: %w", err)
		}
		return nil
	}
	if err := writeFileAtomic(c.marker(digest), markerBody(st.Size(), ""), 0o644); err != nil {
		return fmt.Errorf("mark cached image verified: %w", err)
	}
	c.images[digest] = &cached{format: format, size: st.Size(), used: st.ModTime()}
	return nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
