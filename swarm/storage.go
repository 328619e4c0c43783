package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
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
//
// anacrolix's file storage writes chunks with pwrite; everything that reads
// (uploads and piece hashing) goes through the piece wrapper below, which
// reads with pread from a descriptor of its own rather than through
// anacrolix's mmap of the file. Reading a fresh, sparse image through the
// mapping faulted every page in and made the kernel read ahead into the
// holes around it, zero-filling pages that the download then overwrote:
// about a third of a fetching node's CPU time went to page faults, hole
// zeroing and per-piece msync.
type nodeStorage struct {
	completion storage.PieceCompletion
	logger     *slog.Logger

	mu    sync.Mutex
	slots map[metainfo.Hash]*slot
}

// slot is what a torrent's storage needs to know beyond the file.
type slot struct {
	path string
	ih   metainfo.Hash
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
	f := &sharedFile{path: sl.path}
	wrap := func(p metainfo.Piece, pi storage.PieceImpl) storage.PieceImpl {
		return &piece{PieceImpl: pi, index: p.Index(), offset: p.Offset(), length: p.Length(), slot: sl, file: f, completion: s.completion}
	}
	// Only Piece and Close are passed on: a whole-torrent reader (NewReader)
	// would let uploads bypass the piece wrapper, and with it the seed gate.
	out := storage.TorrentImpl{Close: func() error { return errors.Join(f.close(), ti.Close()) }}
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

// sharedFile is a torrent's file opened once for reading, by all of its
// pieces.
type sharedFile struct {
	path string

	mu     sync.Mutex
	f      *os.File
	closed bool
}

func (s *sharedFile) get() (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("swarm: storage closed")
	}
	if s.f == nil {
		f, err := os.Open(s.path)
		if err != nil {
			return nil, err
		}
		s.f = f
	}
	return s.f, nil
}

func (s *sharedFile) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// hashBufs are the buffers piece hashing reads into.
var hashBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// piece wraps a file piece. anacrolix reads a piece through ReadAt only to
// upload it and through WriteTo only to hash it, so ReadAt is where the seed
// gate and the corruption hook apply. Both read with pread (see
// nodeStorage); writes stay anacrolix's.
type piece struct {
	storage.PieceImpl
	index      int
	offset     int64
	length     int64
	slot       *slot
	file       *sharedFile
	completion storage.PieceCompletion
}

func (p *piece) ReadAt(b []byte, off int64) (int, error) {
	if gt := p.slot.gate; gt != nil {
		gt.admit(p.index, p.offset+off, int64(len(b)))
	}
	if off >= p.length {
		return 0, io.EOF
	}
	f, err := p.file.get()
	if err != nil {
		return 0, err
	}
	want := b
	if rest := p.length - off; int64(len(want)) > rest {
		want = want[:rest]
	}
	n, err := f.ReadAt(want, p.offset+off)
	if err == nil && n < len(b) {
		err = io.EOF
	}
	if c := p.slot.corrupt; c != nil && c(p.index) {
		for i := range b[:n] {
			b[i] ^= 0x5a
		}
	}
	return n, err
}

// WriteTo serves hashing straight from the file, ungated and uncorrupted.
func (p *piece) WriteTo(w io.Writer) (int64, error) {
	f, err := p.file.get()
	if err != nil {
		return 0, err
	}
	bp := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(bp)
	buf := *bp
	var done int64
	for done < p.length {
		n := min(int64(len(buf)), p.length-done)
		m, err := f.ReadAt(buf[:n], p.offset+done)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return done, werr
			}
			done += int64(m)
		}
		if err != nil {
			if errors.Is(err, io.EOF) && done < p.length {
				err = io.ErrUnexpectedEOF
			}
			return done, err
		}
	}
	return done, nil
}

// MarkComplete records the verified piece in the completion database and
// starts writing its pages back without waiting for them. anacrolix's file
// storage waits for each piece to reach the disk (msync) and then reads
// the completion of every piece before it (to promote .part files, which
// we do not use); Fetch syncs the whole file once instead, before it
// returns, so a completed fetch is on disk. A piece recorded complete whose
// data a power failure lost fails the cache's SHA-256 check of the image.
func (p *piece) MarkComplete() error {
	if err := p.completion.Set(metainfo.PieceKey{InfoHash: p.slot.ih, Index: p.index}, true); err != nil {
		return err
	}
	if f, err := p.file.get(); err == nil {
		startWriteback(f, p.offset, p.length)
	}
	return nil
}
