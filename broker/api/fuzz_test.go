package api_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

var fuzzMethods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}

// FuzzAPI sends random methods, paths, queries, headers and bodies to the
// API on the fake backend: whatever a client sends, the answer is never a
// 500 (and so never a panic, which the middleware turns into one), and
// every error has our body. Run it with
//
//	go test ./broker/api -run '^$' -fuzz FuzzAPI -fuzztime 60s
func FuzzAPI(f *testing.F) {
	seeds := []struct {
		method uint8
		path   string
		query  string
		who    uint8
		body   string
	}{
		{1, "/v1/leases", "", 1, `{"count":3,"cores":2,"memory_mib":4096,"image":"ubuntu-22.04-mpi","duration":"3h"}`},
		{1, "/v1/leases", "", 3, `{"group":"biology","count":1,"cores":1,"memory_mib":1,"duration":60,"start_by":"2030-01-01T00:00:00Z","earliest_start":"2029-12-31T00:00:00Z"}`},
		{1, "/v1/leases", "", 1, `{"id":"l-x","memory_mib":1024,"duration":"1d"}`},
		{1, "/v1/leases/whatif", "consistent=true", 2, `{"count":40,"cores":8,"memory_mib":1024,"duration":"90m"}`},
		{0, "/v1/leases", "state=running&group=physics&user=ada", 2, ""},
		{0, "/v1/leases/l-ada", "", 1, ""},
		{3, "/v1/leases/l-amy", "", 2, ""},
		{0, "/v1/shares", "", 1, ""},
		{2, "/v1/shares/physics", "", 3, `{"weight":2,"parent":"-","quota":{"max_cores":8,"max_memory_mib":0,"max_lease":"36h","max_vms":4}}`},
		{0, "/v1/policy", "", 1, ""},
		{2, "/v1/policy", "", 3, `{"text":"reserve = 0.1\n[groups.physics]\nweight = 3\n"}`},
		{0, "/v1/users", "", 2, ""},
		{1, "/v1/users", "", 2, `{"name":"cal","group":"physics","role":"user"}`},
		{3, "/v1/users/amy", "", 3, ""},
		{1, "/v1/tokens", "", 3, `{"user":"bob","name":"ci"}`},
		{0, "/v1/tokens", "user=bob", 3, ""},
		{3, "/v1/tokens/abc", "", 1, ""},
		{0, "/v1/hosts", "", 1, ""},
		{1, "/v1/hosts", "", 3, `{"name":"h09","cores":8,"memory_mib":16384}`},
		{3, "/v1/hosts/spare", "", 3, ""},
		{0, "/v1/cluster", "", 3, ""},
		{1, "/v1/cluster/members", "", 3, `{"id":"n3","raft_addr":"127.0.0.1:7003","api_addr":"http://127.0.0.1:7403"}`},
		{3, "/v1/cluster/members/n2", "", 3, ""},
		{0, "/v1/openapi.json", "", 0, ""},
		{4, "/v1/leases", "", 5, `{"count":`},
		{1, "/v1/images", "name=deb&format=raw", 1, "bytes of an image"},
		{1, "/v1/images", "name=pub&public=true", 3, "QFI\xfb"},
		{0, "/v1/images", "", 2, ""},
		{0, "/v1/images/deb", "", 1, ""},
		{0, "/v1/images/4bc453b53cb3d914b45f4b250294236adba2c0e09ff6f03793949e7e39fd4cc1/blob", "", 1, ""},
		{3, "/v1/images/deb", "", 1, ""},
		{0, "/v1/leases/l-ada/vms/0/log", "tail=10", 1, ""},
		{1, "/v1/hosts/join-token", "", 3, ""},
		{1, "/v1/agent/register", "", 3, `{"host":"a1","cores":2,"memory_mib":1024,"driver":"qemu"}`},
		{0, "/v1/agent/assignments", "since=3&wait=1ms", 1, ""},
		{1, "/v1/agent/vms", "", 1, `{"id":"l-ada","index":0,"state":"running"}`},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.who, "application/json", []byte(s.body))
	}
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, method uint8, path, query string, who uint8, contentType string, body []byte) {
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		u, err := url.Parse("http://broker" + path)
		if err != nil || !strings.HasPrefix(path, "/") {
			t.Skip("the HTTP server refuses such a request line")
		}
		u.RawQuery = query
		req := httptest.NewRequestWithContext(t.Context(), m, "http://broker/", bytes.NewReader(body))
		req.URL, req.RequestURI = u, u.RequestURI()
		if !validHeader(contentType) {
			t.Skip("the HTTP server refuses such a header")
		}
		req.Header.Set("Content-Type", contentType)
		switch who % 6 {
		case 1:
			req.Header.Set("Authorization", "Bearer "+fx.tokens["ada"])
		case 2:
			req.Header.Set("Authorization", "Bearer "+fx.tokens["max"])
		case 3, 4:
			req.Header.Set("Authorization", "Bearer "+fx.tokens["root"])
		case 5:
			req.Header.Set("Authorization", "Bearer "+contentType)
		}
		w := httptest.NewRecorder()
		fx.h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s: %d %s", m, u.RequestURI(), w.Code, w.Body)
		}
		if w.Code >= 400 && m != "HEAD" {
			var e struct{ Code, Message string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code == "" || e.Message == "" {
				t.Fatalf("%s %s: %d with body %q, want {code, message}", m, u.RequestURI(), w.Code, w.Body)
			}
		}
	})
}

func validHeader(v string) bool {
	return !strings.ContainsAny(v, "\r\n\x00") && len(v) < 4096
}
