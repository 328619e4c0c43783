package hostagent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Files in the state directory.
const (
	credentialFile = "credential"
	logKeyFile     = "log-key"
)

// readSecret returns the secret in file, or "" if there is none. A secret
// others can read is refused rather than used: it may have leaked.
func readSecret(path string) (string, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by others (mode %o): chmod 600 it, or delete it and rotate the secret", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty: delete it so that the agent registers again with join_token", path)
	}
	return s, nil
}

// writeFileAtomic writes data to path with mode perm so that a crash
// leaves either the old file or the new one, never a torn one.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// loadLogKey returns the key the broker must present to read console
// logs, making and saving one on first start so that it survives restarts.
func loadLogKey(stateDir string) (string, error) {
	path := filepath.Join(stateDir, logKeyFile)
	key, err := readSecret(path)
	if err != nil || key != "" {
		return key, err
	}
	b := make([]byte, 32)
	rand.Read(b)
	key = hex.EncodeToString(b)
	if err := writeFileAtomic(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save the log key: %w", err)
	}
	return key, nil
}
