package swarm

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// Piece length bounds for PieceLengthFor. Below 256 KiB the per-piece
// overhead (hash, have messages, request bookkeeping) dominates; above 4 MiB
// a piece takes too long to reach a first peer, so the swarm fills slowly.
const (
	MinPieceLength = 256 << 10
	MaxPieceLength = 4 << 20
	// targetPieces is how many pieces PieceLengthFor aims for: enough for
	// 16 hosts to start on distinct slots of 16 pieces each. Every piece
	// costs each node a have message to every peer, and each have a
	// rebuild of that peer's request queue in anacrolix, so more pieces
	// cost CPU on every node; fewer, longer pieces lengthen the pipeline
	// fill (⌊log₂N⌋ piece times: 0.34 s for 1 MiB pieces, 16 nodes, 100
	// Mbit/s). With 16 nodes on 2 cores, 256 MiB in 1 MiB pieces against
	// 256 KiB ones took 5.5 CPU-s per node instead of 6.8, and the seed
	// sent 1.52 copies instead of 1.63.
	targetPieces = 256
)

// Manifest describes one image as a single-file, private torrent. The broker
// stores it next to the image; Info is enough to make the .torrent again for
// any announce URL (see Manifest.TorrentFor) without reading the image.
type Manifest struct {
	Name        string
	Size        int64
	SHA256      string // hex, of the whole file
	PieceLength int64
	NumPieces   int
	InfoHash    string // hex, v1 (SHA-1 of Info)
	Info        []byte // bencoded info dictionary
	Torrent     []byte // bencoded .torrent for the announce and web seeds given to Build
}

// PieceLengthFor returns the piece length Build uses when given 0: the
// smallest power of two that cuts size into at most ~256 pieces, clamped to
// [MinPieceLength, MaxPieceLength]. A 10 GiB image gets 4 MiB pieces (2560
// pieces), a 1 GiB image 4 MiB pieces, a 256 MiB image 1 MiB pieces, a 32
// MiB test file 256 KiB pieces (128).
func PieceLengthFor(size int64) int64 {
	l := int64(MinPieceLength)
	for l < MaxPieceLength && size > l*targetPieces {
		l *= 2
	}
	return l
}

// Build reads the file at path once, computing its SHA-256 and the torrent
// piece hashes in the same pass, and returns its manifest. name is the name
// inside the torrent (what aria2c saves it as); pieceLength 0 means
// PieceLengthFor(size). announce and webSeeds go into Manifest.Torrent.
func Build(path, name string, pieceLength int64, announce string, webSeeds []string) (Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Manifest{}, fmt.Errorf("swarm: build manifest: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Manifest{}, fmt.Errorf("swarm: build manifest: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Manifest{}, fmt.Errorf("swarm: build manifest: %s is not a regular file; pass the image file itself", path)
	}
	return BuildFrom(bufio.NewReaderSize(f, 1<<20), fi.Size(), name, pieceLength, announce, webSeeds)
}

// BuildFrom is Build over a reader of exactly size bytes, for callers that
// already stream the image (e.g. while storing an upload).
func BuildFrom(r io.Reader, size int64, name string, pieceLength int64, announce string, webSeeds []string) (Manifest, error) {
	if name == "" {
		return Manifest{}, errors.New("swarm: build manifest: empty name; pass the image's file name")
	}
	if size <= 0 {
		return Manifest{}, fmt.Errorf("swarm: build manifest: size %d; an image must not be empty", size)
	}
	if pieceLength == 0 {
		pieceLength = PieceLengthFor(size)
	}
	if pieceLength < 16<<10 || pieceLength&(pieceLength-1) != 0 {
		return Manifest{}, fmt.Errorf("swarm: build manifest: piece length %d; use a power of two ≥ 16 KiB or 0 for the default", pieceLength)
	}
	numPieces := int((size + pieceLength - 1) / pieceLength)
	pieces := make([]byte, 0, numPieces*sha1.Size)
	whole := sha256.New()
	piece := sha1.New()
	buf := make([]byte, 256<<10)
	var total, inPiece int64
	for {
		n, err := r.Read(buf)
		b := buf[:n]
		whole.Write(b)
		for len(b) > 0 {
			k := min(int64(len(b)), pieceLength-inPiece)
			piece.Write(b[:k])
			inPiece += k
			b = b[k:]
			if inPiece == pieceLength {
				pieces = piece.Sum(pieces)
				piece.Reset()
				inPiece = 0
			}
		}
		total += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Manifest{}, fmt.Errorf("swarm: build manifest: read: %w", err)
		}
		if total > size {
			break
		}
	}
	if total != size {
		return Manifest{}, fmt.Errorf("swarm: build manifest: read %d bytes, expected %d; the file changed while being hashed, build again", total, size)
	}
	if inPiece > 0 {
		pieces = piece.Sum(pieces)
	}
	private := true
	info := metainfo.Info{
		Name:        name,
		Length:      size,
		PieceLength: pieceLength,
		Pieces:      pieces,
		Private:     &private,
	}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		return Manifest{}, fmt.Errorf("swarm: build manifest: encode info: %w", err)
	}
	m := Manifest{
		Name:        name,
		Size:        size,
		SHA256:      hex.EncodeToString(whole.Sum(nil)),
		PieceLength: pieceLength,
		NumPieces:   numPieces,
		InfoHash:    metainfo.HashBytes(infoBytes).HexString(),
		Info:        infoBytes,
	}
	m.Torrent, err = MakeTorrent(infoBytes, announce, webSeeds)
	if err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// TorrentFor returns the .torrent for this image with another announce URL
// and web seed list, e.g. carrying one host's token. It does not read the
// image: the info dictionary, hence the infohash, stays the same.
func (m Manifest) TorrentFor(announce string, webSeeds []string) ([]byte, error) {
	return MakeTorrent(m.Info, announce, webSeeds)
}

// MakeTorrent wraps a bencoded info dictionary into a .torrent with the
// given announce URL and BEP 19 web seeds (url-list). For a single-file
// torrent a web seed URL is the file's own URL (no trailing slash).
func MakeTorrent(info []byte, announce string, webSeeds []string) ([]byte, error) {
	if len(info) == 0 {
		return nil, errors.New("swarm: make torrent: empty info; build the manifest first")
	}
	mi := metainfo.MetaInfo{
		InfoBytes: info,
		Announce:  announce,
		UrlList:   webSeeds,
		CreatedBy: "fairlease",
	}
	var b bytes.Buffer
	if err := mi.Write(&b); err != nil {
		return nil, fmt.Errorf("swarm: make torrent: %w", err)
	}
	return b.Bytes(), nil
}

// TorrentInfo is what a .torrent says, as ParseTorrent reads it.
type TorrentInfo struct {
	InfoHash    string // hex
	Name        string
	Size        int64
	PieceLength int64
	NumPieces   int
	Private     bool
	Announce    string
	WebSeeds    []string
}

// ParseTorrent decodes a .torrent made by Build or MakeTorrent. It accepts
// only single-file v1 torrents, the only kind this package makes.
func ParseTorrent(b []byte) (TorrentInfo, error) {
	mi, info, err := parseTorrent(b)
	if err != nil {
		return TorrentInfo{}, err
	}
	return TorrentInfo{
		InfoHash:    mi.HashInfoBytes().HexString(),
		Name:        info.Name,
		Size:        info.Length,
		PieceLength: info.PieceLength,
		NumPieces:   info.NumPieces(),
		Private:     info.Private != nil && *info.Private,
		Announce:    mi.Announce,
		WebSeeds:    mi.UrlList,
	}, nil
}

func parseTorrent(b []byte) (*metainfo.MetaInfo, metainfo.Info, error) {
	mi, err := metainfo.Load(bytes.NewReader(b))
	if err != nil {
		return nil, metainfo.Info{}, fmt.Errorf("swarm: parse torrent: %w; pass the bytes of a .torrent from the broker", err)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return nil, metainfo.Info{}, fmt.Errorf("swarm: parse torrent info: %w", err)
	}
	if len(info.Files) > 0 || info.Length <= 0 || !info.HasV1() {
		return nil, metainfo.Info{}, fmt.Errorf("swarm: parse torrent %q: not a single-file v1 torrent; images are distributed as one file", info.Name)
	}
	if info.PieceLength <= 0 || len(info.Pieces) != info.NumPieces()*sha1.Size {
		return nil, metainfo.Info{}, fmt.Errorf("swarm: parse torrent %q: %d bytes of piece hashes for %d pieces; the .torrent is corrupt, fetch it again", info.Name, len(info.Pieces), info.NumPieces())
	}
	return mi, info, nil
}
