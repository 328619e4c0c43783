package cli

import (
	"encoding/json"
	"testing"
)

// TestBenchAdmission runs a small admission benchmark and checks the JSON
// contract.
func TestBenchAdmission(t *testing.T) {
	r := run(t, "bench", "admission", "--nodes", "3", "--requests", "300", "--concurrency", "16", "--hosts", "20", "--json")
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v in %q", err, r.stdout)
	}
	for _, k := range []string{"decisions_per_second", "p50_commit_ms", "p99_commit_ms", "requests", "nodes", "concurrency"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %q in %s", k, r.stdout)
		}
	}
	if got["requests"] != 300.0 || got["nodes"] != 3.0 || got["errors"] != 0.0 || got["decisions_per_second"].(float64) <= 0 {
		t.Errorf("report = %s", r.stdout)
	}
}

// TestBenchFailover kills one leader and checks the JSON contract and the
// safety figures.
func TestBenchFailover(t *testing.T) {
	r := run(t, "bench", "failover", "--nodes", "3", "--trials", "1", "--concurrency", "4", "--hosts", "10", "--settle", "100ms", "--json")
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v in %q", err, r.stdout)
	}
	for _, k := range []string{"failover_ms_median", "failover_ms_max", "acked_leases", "lost_acked_leases", "overcommitted_instants"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %q in %s", k, r.stdout)
		}
	}
	if got["lost_acked_leases"] != 0.0 || got["overcommitted_instants"] != 0.0 || got["acked_leases"].(float64) < 1 {
		t.Errorf("report = %s", r.stdout)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no nodes", []string{"bench", "admission", "--nodes", "0"}, "--nodes must be at least 1"},
		{"bad share", []string{"bench", "admission", "--follower-share", "2"}, "--follower-share must be between 0 and 1"},
		{"failover of two", []string{"bench", "failover", "--nodes", "2"}, "--nodes must be at least 3 for a failover"},
		{"argument", []string{"bench", "admission", "now"}, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkError(t, run(t, tt.args...), ExitUsage, tt.want) })
	}
}
