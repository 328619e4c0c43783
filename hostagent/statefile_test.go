package hostagent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretsAreKeptPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, credentialFile)
	if err := writeFileAtomic(path, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := readSecret(path); err != nil || got != "secret" {
		t.Errorf("readSecret = %q, %v; want secret", got, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readSecret(path); err == nil || !strings.Contains(err.Error(), "is readable by others (mode 644): chmod 600 it") {
		t.Errorf("readSecret of a world-readable file: %v, want a refusal saying to chmod it", err)
	}
	if got, err := readSecret(filepath.Join(dir, "none")); err != nil || got != "" {
		t.Errorf("readSecret of a missing file = %q, %v; want nothing", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d files, want the credential alone (no temporary files)", len(entries))
	}
}
