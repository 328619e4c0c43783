package hostagent

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fairlease/fairlease/broker"
)

func TestLogServer(t *testing.T) {
	b, hv, dir := newFakeBroker(), newFakeHV(t), t.TempDir()
	b.addImage("base", []byte("image"), false)
	r := startAgent(t, testConfig(t, dir), b, hv)
	b.set(assignment("l-a", "base", 1, 0))
	waitFor(t, "running", hasReport(b, broker.VMStateChange{ID: "l-a", Index: 0, State: broker.VMRunning}))
	const console = "booting\nlogin: "
	path, _ := hv.ConsoleLog("fl-l-a-0")
	if err := os.WriteFile(path, []byte(console), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dir, logKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	goodKey := strings.TrimSpace(string(key))

	for name, tc := range map[string]struct {
		method     string // default GET
		path, key  string
		wantStatus int
		wantBody   string // the whole body on 200, a part otherwise
	}{
		"no key":              {path: "/v1/vms/l-a/0/log", wantStatus: 401, wantBody: "missing or wrong Fairlease-Log-Key header"},
		"wrong key":           {path: "/v1/vms/l-a/0/log", key: goodKey[:63] + "x", wantStatus: 401},
		"whole log":           {path: "/v1/vms/l-a/0/log", key: goodKey, wantStatus: 200, wantBody: console},
		"tail":                {path: "/v1/vms/l-a/0/log?tail=7", key: goodKey, wantStatus: 200, wantBody: "login: "},
		"tail past the start": {path: "/v1/vms/l-a/0/log?tail=1000", key: goodKey, wantStatus: 200, wantBody: console},
		"bad tail":            {path: "/v1/vms/l-a/0/log?tail=-1", key: goodKey, wantStatus: 400},
		"unknown VM":          {path: "/v1/vms/l-a/1/log", key: goodKey, wantStatus: 404, wantBody: "no such VM on this host"},
		"unknown lease":       {path: "/v1/vms/l-zz/0/log", key: goodKey, wantStatus: 404},
		"no key, unknown VM":  {path: "/v1/vms/l-zz/0/log", wantStatus: 401},
		"other method":        {method: http.MethodPost, path: "/v1/vms/l-a/0/log", key: goodKey, wantStatus: 405},
	} {
		t.Run(name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequestWithContext(t.Context(), method, r.Addr()+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.key != "" {
				req.Header.Set(LogKeyHeader, tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.wantStatus)
			}
			if tc.wantStatus == 200 && string(body) != tc.wantBody || !strings.Contains(string(body), tc.wantBody) {
				t.Errorf("body %q, want %q", body, tc.wantBody)
			}
		})
	}
}
