package broker

import (
	"bytes"
	"os"
	"testing"
)

// FuzzReadSnapshot: a damaged snapshot file is an error, never a panic
// or a state that writes something else.
func FuzzReadSnapshot(f *testing.F) {
	if b, err := os.ReadFile("testdata/snapshot-v1.bin"); err == nil {
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte("FAIRLEASE-SNAPSHOT\n\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ReadSnapshot(bytes.NewReader(b))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := s.Snapshot(&buf); err != nil {
			t.Fatalf("a restored state cannot write a snapshot: %v", err)
		}
		if _, err := ReadSnapshot(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatalf("a restored state writes a snapshot it cannot read: %v", err)
		}
	})
}

// FuzzDecode: a log entry that does not decode is an error, never a panic.
func FuzzDecode(f *testing.F) {
	c, _ := NewCommand(CmdRelease, t0, "ada", Release{ID: "a1"})
	b, _ := Encode(c)
	f.Add(b)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		b2, err := Encode(c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := Decode(b2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
