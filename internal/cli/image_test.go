package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fairlease/fairlease/broker"
)

func TestImageCommands(t *testing.T) {
	s := newSite(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "tiny.qcow2")
	// qcow2's magic, then anything: the format is read from the file.
	if err := os.WriteFile(file, append([]byte("QFI\xfb"), make([]byte, 4092)...), 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.run(t, "ada", "image", "push", file)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "image tiny: 4.0 KiB qcow2, sha256 ") || !strings.Contains(r.stdout, "private to physics") {
		t.Fatalf("push: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = s.run(t, "ada", "--output", "json", "image", "list")
	var ims []broker.Image
	if err := json.Unmarshal([]byte(r.stdout), &ims); err != nil || len(ims) != 1 || ims[0].Name != "tiny" || ims[0].Format != "qcow2" || ims[0].Size != 4096 {
		t.Fatalf("list: %v %s", err, r.stdout)
	}
	if r := s.run(t, "bob", "image", "list"); strings.Contains(r.stdout, "tiny") {
		t.Errorf("bob sees ada's image:\n%s", r.stdout)
	}
	if r := s.run(t, "bob", "image", "rm", "tiny"); r.code == 0 || !strings.Contains(r.stderr, "no image") {
		t.Errorf("bob removed it: %d %s", r.code, r.stderr)
	}
	if r := s.run(t, "ada", "image", "share", "tiny", "--group", "biology"); r.code != 0 || r.stdout != "image tiny: shared with biology\n" {
		t.Errorf("share: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := s.run(t, "bob", "image", "list"); !strings.Contains(r.stdout, "tiny") {
		t.Errorf("bob does not see the image shared with him:\n%s", r.stdout)
	}
	if r := s.run(t, "ada", "image", "share", "tiny", "--public"); r.code == 0 {
		t.Errorf("a user made an image public: %s", r.stdout)
	}
	if r := s.run(t, "ada", "image", "share", "tiny"); r.code != 0 || r.stdout != "image tiny: private\n" {
		t.Errorf("unshare: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := s.run(t, "ada", "image", "push", filepath.Join(dir, "missing")); r.code != ExitUsage {
		t.Errorf("missing file: %d %s", r.code, r.stderr)
	}
	if r := s.run(t, "ada", "image", "rm", "tiny"); r.code != 0 || r.stdout != "image tiny removed\n" {
		t.Errorf("rm: %d %q %s", r.code, r.stdout, r.stderr)
	}
}

func TestVMLogArguments(t *testing.T) {
	s := newSite(t)
	for _, arg := range []string{"l-abc", "l-abc/x", "/0", "l-abc/-1"} {
		if r := s.run(t, "ada", "vm", "log", arg); r.code != ExitUsage || !strings.Contains(r.stderr, "LEASE/INDEX") {
			t.Errorf("vm log %s: %d %s", arg, r.code, r.stderr)
		}
	}
	if r := s.run(t, "ada", "vm", "log", "l-none/0"); r.code == 0 || !strings.Contains(r.stderr, "no lease") {
		t.Errorf("unknown lease: %d %s", r.code, r.stderr)
	}
}
