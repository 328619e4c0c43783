package swarm

import (
	"bytes"
	"crypto/sha1"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"
	"github.com/google/go-cmp/cmp"
)

func TestPieceLengthFor(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
		want int64
	}{
		{"tiny", 1, 256 << 10},
		{"32MiB test file", 32 << 20, 256 << 10},
		{"64MiB", 64 << 20, 256 << 10},
		{"just over 64MiB", 64<<20 + 1, 512 << 10},
		{"256MiB", 256 << 20, 1 << 20},
		{"1GiB", 1 << 30, 4 << 20},
		{"10GiB image", 10 << 30, 4 << 20},
		{"1TiB", 1 << 40, 4 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PieceLengthFor(tc.size); got != tc.want {
				t.Errorf("PieceLengthFor(%d) = %d, want %d", tc.size, got, tc.want)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	const size = 3<<20 + 12345 // a short last piece
	p := randomFile(t, dir, "img.qcow2", size, 1)
	m, err := Build(p, "img.qcow2", 1<<20, "http://tracker/announce/tok", []string{"http://ws/img"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var pieces []byte
	for off := 0; off < len(data); off += 1 << 20 {
		h := sha1.Sum(data[off:min(off+1<<20, len(data))])
		pieces = append(pieces, h[:]...)
	}
	var info struct {
		Name        string `bencode:"name"`
		Length      int64  `bencode:"length"`
		PieceLength int64  `bencode:"piece length"`
		Pieces      []byte `bencode:"pieces"`
		Private     int64  `bencode:"private"`
	}
	if err := bencode.Unmarshal(m.Info, &info); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info.Pieces, pieces) {
		t.Errorf("piece hashes differ from SHA-1 of each piece")
	}
	got := struct {
		Name, SHA, InfoName string
		Size, PieceLen, Len int64
		NumPieces           int
		Private             int64
	}{m.Name, m.SHA256, info.Name, m.Size, m.PieceLength, info.Length, m.NumPieces, info.Private}
	want := struct {
		Name, SHA, InfoName string
		Size, PieceLen, Len int64
		NumPieces           int
		Private             int64
	}{"img.qcow2", fileSHA256(t, p), "img.qcow2", size, 1 << 20, size, 4, 1}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("manifest (-want +got):\n%s", d)
	}

	ti, err := ParseTorrent(m.Torrent)
	if err != nil {
		t.Fatal(err)
	}
	wantTI := TorrentInfo{InfoHash: m.InfoHash, Name: "img.qcow2", Size: size, PieceLength: 1 << 20, NumPieces: 4, Private: true,
		Announce: "http://tracker/announce/tok", WebSeeds: []string{"http://ws/img"}}
	if d := cmp.Diff(wantTI, ti); d != "" {
		t.Errorf("ParseTorrent (-want +got):\n%s", d)
	}

	// Another host's .torrent: same infohash, its own announce URL.
	other, err := m.TorrentFor("http://tracker/announce/other", nil)
	if err != nil {
		t.Fatal(err)
	}
	ti2, err := ParseTorrent(other)
	if err != nil {
		t.Fatal(err)
	}
	wantTI.Announce, wantTI.WebSeeds = "http://tracker/announce/other", nil
	if d := cmp.Diff(wantTI, ti2); d != "" {
		t.Errorf("TorrentFor (-want +got):\n%s", d)
	}

	// The same file builds the same info (deterministic, no timestamps).
	m2, err := BuildFrom(bytes.NewReader(data), size, "img.qcow2", 1<<20, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m2.InfoHash != m.InfoHash || m2.SHA256 != m.SHA256 {
		t.Errorf("BuildFrom gave %s/%s, Build %s/%s", m2.InfoHash, m2.SHA256, m.InfoHash, m.SHA256)
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	p := randomFile(t, dir, "x", 1000, 2)
	for _, tc := range []struct {
		name    string
		build   func() error
		wantErr string
	}{
		{"missing file", func() error { _, err := Build(dir+"/nope", "x", 0, "", nil); return err }, "no such file"},
		{"directory", func() error { _, err := Build(dir, "x", 0, "", nil); return err }, "not a regular file"},
		{"bad piece length", func() error { _, err := Build(p, "x", 1000, "", nil); return err }, "power of two"},
		{"empty name", func() error { _, err := Build(p, "", 0, "", nil); return err }, "empty name"},
		{"short reader", func() error {
			_, err := BuildFrom(io.LimitReader(strings.NewReader("abc"), 3), 10, "x", 0, "", nil)
			return err
		}, "read 3 bytes, expected 10"},
		{"not a torrent", func() error { _, err := ParseTorrent([]byte("junk")); return err }, "parse torrent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.build()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
