package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	old := Version
	Version = "v1.2.3"
	t.Cleanup(func() { Version = old })

	r := run(t, "version")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "fairlease v1.2.3 (go") {
		t.Errorf("version: code %d, stdout %q, stderr %q; want \"fairlease v1.2.3 (go…\"", r.code, r.stdout, r.stderr)
	}

	r = run(t, "--output", "json", "version")
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("version --output json: %v in %q", err, r.stdout)
	}
	if v["version"] != "v1.2.3" || !strings.HasPrefix(v["go"].(string), "go") {
		t.Errorf("version JSON = %v, want version v1.2.3 and a go version", v)
	}
}

func TestVersionDefault(t *testing.T) {
	old := Version
	Version = ""
	t.Cleanup(func() { Version = old })
	if v := currentVersion(); v.Version == "" {
		t.Errorf("version without ldflags is empty, want (devel) or the module version")
	}
}
