package swarmbench

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// fakePhase is a phase of n nodes that took secs, the seed sending
// seedSent bytes on its link.
func fakePhase(n int, secs float64, seedSent int64, sum string) *phase {
	ph := &phase{seconds: secs, before: make([]Counters, n+1), after: make([]Counters, n+1)}
	ph.after[0].Sent = seedSent
	ph.seedStats = message{Uploaded: seedSent - 1000, CPUSeconds: 1}
	ph.seedReady = message{PieceLength: 256 << 10, Pieces: 1024}
	for i := range n {
		r := nodeRun{done: message{Seconds: secs}, stats: message{SHA256: sum, Bytes: 256 << 20, CPUSeconds: 2}}
		r.note(256<<20, 256<<20, time.Duration(secs*float64(time.Second)))
		ph.nodes = append(ph.nodes, r)
		ph.after[i+1] = Counters{Sent: 100, Received: 256 << 20}
	}
	return ph
}

// TestReportJSON checks the report's contract: field names, the ratios
// computed from the phases, and the lower bound.
func TestReportJSON(t *testing.T) {
	r := newReport(Options{Nodes: 8, Size: 256 << 20, Rate: 100e6})
	r.ImageSHA256 = "abc"
	r.add(MethodHTTP, fakePhase(8, 180, 8*(256<<20), "abc"))
	r.add(MethodSwarm, fakePhase(8, 25, (256<<20)*3/2, "abc"))
	r.finish()
	if err := r.Unverified(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"nodes":                8,
		"size_bytes":           256 << 20,
		"rate_bits_per_second": 100e6,
		"lower_bound_s":        21.475,
		"swarm_s":              25,
		"http_s":               180,
		"eta":                  0.859, // 21.475/25
		"seed_egress_ratio":    1.5,
		"speedup_vs_http":      7.2,
		"pipeline_fill_s":      0.063, // 3 × 256 KiB at 100 Mbit/s
		"http_lower_bound_s":   171.799,
		"piece_length":         256 << 10,
		"pieces":               1024,
		"web_seed_bytes":       0,
	}
	for k, w := range want {
		v, ok := got[k].(float64)
		if !ok {
			t.Errorf("no number %q in %s", k, b)
			continue
		}
		if math.Abs(v-w) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, v, w)
		}
	}
	for _, k := range []string{"lower_bound_formula", "image_sha256", "http", "swarm", "all_verified", "seed_upload_ratio"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	sw := got["swarm"].(map[string]any)
	nodes := sw["per_node"].([]any)
	if len(nodes) != 8 {
		t.Fatalf("%d per-node entries, want 8", len(nodes))
	}
	for _, k := range []string{"node", "seconds", "first_byte_s", "deciles_s", "sha256", "verified", "sent_bytes", "received_bytes", "cpu_s"} {
		if _, ok := nodes[0].(map[string]any)[k]; !ok {
			t.Errorf("no %q in a node's entry %v", k, nodes[0])
		}
	}
}

func TestReportUnverified(t *testing.T) {
	r := newReport(Options{Nodes: 2, Size: 256 << 20, Rate: 100e6})
	r.ImageSHA256 = "abc"
	r.add(MethodSwarm, fakePhase(2, 25, 256<<20, "abc"))
	r.Swarm.Nodes[1].SHA256, r.Swarm.Nodes[1].Verified = "bad", false
	r.finish()
	if r.AllVerified {
		t.Error("all_verified with a wrong copy")
	}
	if err := r.Unverified(); err == nil {
		t.Error("Unverified() = nil with a wrong copy")
	}
}
