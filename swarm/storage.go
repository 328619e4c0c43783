package swarm

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// nodeStorage is the storage of one Node: each torrent's single file lives
// at the path its Fetch or Seed named (not under DataDir), written in place
// (no .part files, whose renaming would forget completion on restart), and
// piece completion is kept in one bolt database in DataDir, so a restarted
// node resumes without re-downloading verified pieces. bolt needs no cgo.
type nodeStorage struct {
	completion storage.PieceCompletion
	logger     *slog.Logger

	mu    sync.Mutex
	slots map[metainfo.Hash]*slot
}

// slot is what a torrent's storage needs to know beyond the file.
type slot struct {
	path string
	gate *seedGate // origin seeds only
	// corrupt flips the bytes of the listed pieces when they are read for
	// upload (never when hashed): tests use it to play a lying peer.
	corrupt func(piece int) bool
}

func (s *nodeStorage) register(ih metainfo.Hash, sl *slot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.slots[ih]; ok && old.path != sl.path {
		return fmt.Errorf("swarm: torrent %s is already stored at %s; drop it before using %s", ih.HexString(), old.path, sl.path)
	}
	s.slots[ih] = sl
	return nil
}

func (s *nodeStorage) unregister(ih metainfo.Hash) {
	s.mu.Lock()
	delete(s.slots, ih)
	s.mu.Unlock()
}

func (s *nodeStorage) slot(ih metainfo.Hash) *slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slots[ih]
}

// OpenTorrent implements storage.ClientImpl.
func (s *nodeStorage) OpenTorrent(ctx context.Context, info *metainfo.Info, ih metainfo.Hash) (storage.TorrentImpl, error) {
	sl := s.slot(ih)
	if sl == nil {
		return storage.TorrentImpl{}, fmt.Errorf("swarm: no path registered for torrent %s; add torrents with Node.Fetch or Node.Seed", ih.HexString())
	}
	dir, base := filepath.Dir(sl.path), filepath.Base(sl.path)
	fc := storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir:   dir,
		TorrentDirMaker: func(baseDir string, _ *metainfo.Info, _ metainfo.Hash) string { return baseDir },
		FilePathMaker:   func(storage.FilePathMakerOpts) string { return base },
		PieceCompletion: s.completion,
		UsePartFiles:    g.Some(false),
		Logger:          s.logger,
	})
	// fc is not closed: closing it would close the shared completion DB.
	ti, err := fc.OpenTorrent(ctx, info, ih)
	if err != nil {
		return storage.TorrentImpl{}, fmt.Errorf("swarm: open storage at %s: %w", sl.path, err)
	}
	wrap := func(p metainfo.Piece, pi storage.PieceImpl) storage.PieceImpl {
		return &piece{PieceImpl: pi, index: p.Index(), offset: p.Offset(), length: p.Length(), slot: sl}
	}
	// Only Piece and Close are passed on: a whole-torrent reader (NewReader)
	// would let uploads bypass the piece wrapper, and with it the seed gate.
	out := storage.TorrentImpl{Close: ti.Close}
	if ti.PieceWithHash != nil {
		out.PieceWithHash = func(p metainfo.Piece, h g.Option[[]byte]) storage.PieceImpl {
			return wrap(p, ti.PieceWithHash(p, h))
		}
	}
	if ti.Piece != nil {
		out.Piece = func(p metainfo.Piece) storage.PieceImpl { return wrap(p, ti.Piece(p)) }
	}
	return out, nil
}

// piece wraps a file piece. anacrolix reads a piece through ReadAt only to
// upload it and through WriteTo only to hash it, so ReadAt is where the seed
// gate and the corruption hook apply.
type piece struct {
	storage.PieceImpl
	index  int
	offset int64
	length int64
	slot   *slot
}

func (p *piece) ReadAt(b []byte, off int64) (int, error) {
	if gt := p.slot.gate; gt != nil {
		gt.admit(p.index, p.offset+off)
	}
	n, err := p.PieceImpl.ReadAt(b, off)
	if c := p.slot.corrupt; c != nil && c(p.index) {
		for i := range b[:n] {
			b[i] ^= 0x5a
		}
	}
	return n, err
}

// WriteTo serves hashing straight from the file, ungated and uncorrupted.
func (p *piece) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := p.PieceImpl.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, io.NewSectionReader(p.PieceImpl, 0, p.length))
}
