package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fairlease/fairlease/broker"
)

// fakeBroker answers the cluster endpoints as the API does and records
// what it was asked.
type fakeBroker struct {
	got []string // method, path, auth and body of each request
}

func (f *fakeBroker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.got = append(f.got, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(b)))
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/cluster":
		json.NewEncoder(w).Encode(broker.ClusterStatus{Self: "n2", Leader: "n1", State: "Follower", Term: 3, AppliedIndex: 42,
			Members: []broker.ClusterNode{
				{ID: "n1", RaftAddr: "10.0.0.1:7000", APIAddr: "http://10.0.0.1:7070", Voter: true, Leader: true},
				{ID: "n2", RaftAddr: "10.0.0.2:7000", Voter: true},
			}})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/cluster/members":
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete && r.URL.Path == "/v1/cluster/members/ghost":
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"code":"not_found","message":"no member \"ghost\""}`)
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusTeapot)
	}
}

func TestCluster(t *testing.T) {
	fb := &fakeBroker{}
	srv := httptest.NewServer(fb)
	defer srv.Close()
	t.Setenv(EnvAddr, srv.URL)
	t.Setenv(EnvToken, "tok")

	r := run(t, "cluster", "status")
	for _, want := range []string{"leader n1, term 3; answered by n2 (Follower, applied 42)", "n1  10.0.0.1:7000  http://10.0.0.1:7070  yes    yes", "n2  10.0.0.2:7000  -"} {
		if r.code != ExitOK || !strings.Contains(r.stdout, want) {
			t.Errorf("cluster status: code %d, stdout:\n%s\nwant %q (stderr %s)", r.code, r.stdout, want, r.stderr)
		}
	}
	r = run(t, "-o", "json", "cluster", "status")
	var st broker.ClusterStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Leader != "n1" || len(st.Members) != 2 {
		t.Errorf("cluster status -o json = %q (%v)", r.stdout, err)
	}
	if r := run(t, "cluster", "join", "n3", "10.0.0.3:7000", "http://10.0.0.3:7070"); r.code != ExitOK || !strings.Contains(r.stdout, "n3 joined") {
		t.Errorf("cluster join: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "cluster", "remove", "n3"); r.code != ExitOK || !strings.Contains(r.stdout, "n3 removed") {
		t.Errorf("cluster remove: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	checkError(t, run(t, "cluster", "remove", "ghost"), ExitFailure, `404 Not Found (not_found): no member "ghost"`)
	want := []string{
		"GET /v1/cluster Bearer tok",
		"GET /v1/cluster Bearer tok",
		`POST /v1/cluster/members Bearer tok {"api_addr":"http://10.0.0.3:7070","id":"n3","raft_addr":"10.0.0.3:7000"}`,
		"DELETE /v1/cluster/members/n3 Bearer tok",
		"DELETE /v1/cluster/members/ghost Bearer tok",
	}
	if strings.Join(fb.got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(fb.got, "\n"), strings.Join(want, "\n"))
	}
}

func TestClusterUsageErrors(t *testing.T) {
	t.Setenv(EnvAddr, "")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"no address", []string{"cluster", "status"}, ExitUsage, "no broker address"},
		{"join without address", []string{"--addr", "http://x", "cluster", "join", "n3"}, ExitUsage, "want ID RAFT_ADDR [API_ADDR]"},
		{"remove two", []string{"--addr", "http://x", "cluster", "remove", "a", "b"}, ExitUsage, "want one node ID"},
		{"unreachable", []string{"--addr", "http://127.0.0.1:1", "cluster", "status"}, ExitFailure, "is the broker running at http://127.0.0.1:1?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkError(t, run(t, tt.args...), tt.wantCode, tt.want) })
	}
}
