package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/broker/server"
	"github.com/fairlease/fairlease/broker/server/servertest"
)

func TestParseServerFile(t *testing.T) {
	full := `
id = "n1"
data_dir = "/var/lib/fairlease"
raft_addr = "10.0.0.1:7000"
api_listen = "0.0.0.0:7070"
api_addr = "https://10.0.0.1:7070"
bootstrap = true
peers = [{id = "n2", raft_addr = "10.0.0.2:7000"}]
cluster_secret = "s3cret"

[raft]
heartbeat_timeout = "300ms"
election_timeout = "400ms"
snapshot_threshold = 100

[batch]
max_requests = 64
depth = 4

[jobs]
host_timeout = "1m"
`
	want := defaultServerFile()
	want.ID, want.DataDir, want.RaftAddr = "n1", "/var/lib/fairlease", "10.0.0.1:7000"
	want.APIListen, want.APIAddr, want.Bootstrap = "0.0.0.0:7070", "https://10.0.0.1:7070", true
	want.Peers = []server.Peer{{ID: "n2", RaftAddr: "10.0.0.2:7000"}}
	want.ClusterSecret = "s3cret"
	want.Raft.HeartbeatTimeout, want.Raft.ElectionTimeout, want.Raft.SnapshotThreshold = 300*time.Millisecond, 400*time.Millisecond, 100
	want.Batch.MaxRequests, want.Batch.Depth = 64, 4
	want.Jobs.HostTimeout = time.Minute

	tests := []struct {
		name    string
		text    string
		want    serverFile
		wantErr string
	}{
		{"empty file keeps the defaults", "", defaultServerFile(), ""},
		{"every section", full, want, ""},
		{"unknown key", "id = \"n1\"\n\n[raft]\nhartbeat_timeout = \"1s\"\n", serverFile{}, "server.toml:4: unknown key raft.hartbeat_timeout"},
		{"bad duration", "[raft]\nheartbeat_timeout = \"soon\"\n", serverFile{}, "server.toml:2:"},
		{"not toml", "id = \n", serverFile{}, "server.toml:1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseServerFile("server.toml", strings.NewReader(tt.text))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parsed config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServerConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"no id", []string{"server"}, ExitUsage, "a node needs an id and a raft_addr"},
		{"missing file", []string{"server", "--config", filepath.Join(dir, "none.toml")}, ExitFailure, "--config:"},
		{"unknown key", []string{"server", "--config", write("a.toml", "id = \"n1\"\nport = 3\n")}, ExitFailure, "a.toml:2: unknown key port"},
		{"invalid timing", []string{"server", "--config", write("b.toml", "id = \"n1\"\nraft_addr = \"127.0.0.1:0\"\napi_listen = \"127.0.0.1:0\"\n[raft]\nelection_timeout = \"1ms\"\n")}, ExitFailure, "election_timeout"},
		{"half the peer TLS", []string{"server", "--config", write("c.toml", "id = \"n1\"\nraft_addr = \"127.0.0.1:0\"\napi_listen = \"127.0.0.1:0\"\n[raft]\ntls_cert = \"x.pem\"\n")}, ExitFailure, "tls_cert, tls_key and tls_ca go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkError(t, run(t, tt.args...), tt.wantCode, tt.want)
		})
	}
}

// TestServerRunsANode starts `fairlease server` on a fresh data directory:
// it bootstraps a one-node cluster, leads it, serves /metrics, and stops
// cleanly when its context ends.
func TestServerRunsANode(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "server.toml")
	text := fmt.Sprintf("id = \"n1\"\ndata_dir = %q\nraft_addr = \"127.0.0.1:0\"\napi_listen = \"127.0.0.1:0\"\nbootstrap = true\ncluster_secret = \"s\"\n[raft]\nheartbeat_timeout = \"100ms\"\nelection_timeout = \"100ms\"\nleader_lease_timeout = \"100ms\"\n", filepath.Join(dir, "data"))
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- Run(runCtx, []string{"server", "--config", cfg}, &stdout, &stderr) }()

	api := regexp.MustCompile(`api (http://\S+),`)
	var base string
	err := servertest.WaitFor(ctx, func() error {
		m := api.FindStringSubmatch(stdout.String())
		if m == nil {
			return fmt.Errorf("no API address in %q (stderr %q)", stdout.String(), stderr.String())
		}
		base = m[1]
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), "fairlease_raft_is_leader 1") {
			return fmt.Errorf("not leading yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("server exited with %d; stderr: %s", code, stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("server did not stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "raft.db")); err != nil {
		t.Errorf("no raft.db in the data directory: %v", err)
	}
}
