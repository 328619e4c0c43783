package cli

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// imageFigures pulls the per-strategy figures out of a document's
// "images" object: transfers, server bytes and all-ready seconds, by
// strategy name, plus the brute-force server rate (NaN for null).
func imageFigures(t *testing.T, doc map[string]any) (map[string][3]float64, float64) {
	t.Helper()
	im, ok := doc["images"].(map[string]any)
	if !ok {
		t.Fatalf("images is %T, want an object", doc["images"])
	}
	got := map[string][3]float64{}
	for _, s := range im["strategies"].([]any) {
		m := s.(map[string]any)
		got[m["name"].(string)] = [3]float64{m["transfers"].(float64), m["server_bytes"].(float64), m["all_ready_seconds"].(float64)}
	}
	rate := math.NaN()
	if r, ok := im["brute_force"].(map[string]any)["server_bits_per_second"].(float64); ok {
		rate = r
	}
	return got, rate
}

func TestSimImages(t *testing.T) {
	near := cmpopts.EquateApprox(1e-9, 0)
	// One copy: 80 Gbit at 0.8 Gbit/s = 100 s. The swarm: 80 s of bound
	// and 4 pieces of 4 MiB at 1 Gbit/s, over η = 0.8.
	swarm := (80 + 4*8*4*(1<<20)/1e9) / 0.8
	tests := map[string]struct {
		flags     []string
		want      map[string][3]float64
		wantRate  float64 // brute-force server, NaN if none
		wantTable []string
	}{
		// DESIGN.md §7: 1024 × 100 s through the server, 16 × 100 s with
		// caches, 64× fewer transfers; brute force: 128 copies in 1600 s,
		// 8 Gbit/s, a 10 Gbit/s link.
		"defaults": {
			want: map[string][3]float64{
				"central": {1024, 1024e10, 1024 * 100},
				"cached":  {16, 16e10, 1600},
				"swarm":   {16, 1.2e10, swarm},
			},
			wantRate: 8e9,
			wantTable: []string{
				"one copy  1m 40s (10 GB at 80 % of 1 Gbit/s)",
				"central server, no cache        1,024      10.2 TB    28h 27m",
				"node cache + copy-on-write         16       160 GB    26m 40s",
				"64× fewer transfers",
				"server of 8 Gbit/s (next standard link 10 Gbit/s)",
			},
		},
		// A 10 Gbit/s server: 1024 × 80 / 8 s and 16 × 80 / 8 s; brute
		// force can no longer keep up with caches, whose 160 s are less
		// than a node's 8 copies × 100 s.
		"10 Gbit/s server": {
			flags: []string{"--image-size", "10GB", "--server-rate", "10gbit", "--link-rate", "1gbit"},
			want: map[string][3]float64{
				"central": {1024, 1024e10, 10240},
				"cached":  {16, 16e10, 160},
				"swarm":   {16, 1.2e10, swarm},
			},
			wantRate:  math.NaN(),
			wantTable: []string{"server 10 Gbit/s", "no server suffices"},
		},
		// 5 GiB over 125 MB/s = 1 Gbit/s links: 8 × 5 × 2^30 bits a copy.
		"other units": {
			flags: []string{"--image-size", "5GiB", "--server-rate", "1 Gbit/s", "--link-rate", "125MB/s"},
			want: map[string][3]float64{
				"central": {1024, 1024 * 5 << 30, 1024 * 8 * 5 * (1 << 30) / 0.8e9},
				"cached":  {16, 16 * 5 << 30, 16 * 8 * 5 * (1 << 30) / 0.8e9},
				"swarm":   {16, math.Round(1.2 * 5 * (1 << 30)), (8*5*(1<<30)/1e9 + 4*8*4*(1<<20)/1e9) / 0.8},
			},
			wantRate:  8e9,
			wantTable: []string{"5.37 GB image"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			jsonFile := filepath.Join(t.TempDir(), "b.json")
			args := append([]string{"sim", "--scenario", "biggrid", "--compare", "easy", "--json", jsonFile, "--quiet"}, tt.flags...)
			r := run(t, args...)
			if r.code != ExitOK {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			for _, want := range append([]string{"policy ", "easy ", "strategy "}, tt.wantTable...) {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			doc := readJSON(t, jsonFile)
			if names, _ := policyRows(t, doc); !cmp.Equal(names, []string{"easy"}) {
				t.Errorf("policies %v, want [easy] beside the images", names)
			}
			got, rate := imageFigures(t, doc)
			if diff := cmp.Diff(tt.want, got, near); diff != "" {
				t.Errorf("strategies: transfers, server bytes, all ready (-want +got):\n%s", diff)
			}
			if !(math.IsNaN(tt.wantRate) && math.IsNaN(rate)) && math.Abs(rate-tt.wantRate) > 1e-9*tt.wantRate {
				t.Errorf("brute-force server %v bit/s, want %v", rate, tt.wantRate)
			}
		})
	}
}

func TestSimImagesOutputJSON(t *testing.T) {
	r := run(t, "--output", "json", "sim", "--scenario", "biggrid", "--compare", "fcfs", "--quiet")
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	got, _ := imageFigures(t, doc)
	if got["central"][0] != 1024 || got["cached"][0] != 16 {
		t.Errorf("transfers central %v, cached %v; want 1024, 16", got["central"][0], got["cached"][0])
	}
}

// TestSimNoImages: a workload without an image model prints and writes
// none.
func TestSimNoImages(t *testing.T) {
	jsonFile := filepath.Join(t.TempDir(), "t.json")
	r := run(t, "sim", "--trace", excerpt(t, 50), "--compare", "easy", "--json", jsonFile, "--quiet")
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "strategy") {
		t.Errorf("stdout has an image table:\n%s", r.stdout)
	}
	if _, ok := readJSON(t, jsonFile)["images"]; ok {
		t.Errorf("document has an images key")
	}
}

func TestSimImagesErrors(t *testing.T) {
	tr := excerpt(t, 50)
	bg := []string{"--scenario", "biggrid"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"size with a trace", []string{"--trace", tr, "--image-size", "10GB"}, "--image-size applies to --scenario biggrid only"},
		{"server rate with paramscan", []string{"--scenario", "paramscan", "--server-rate", "10gbit"}, "--server-rate applies to --scenario biggrid only"},
		{"link rate with a trace", []string{"--trace", tr, "--link-rate", "1gbit"}, "--link-rate applies to --scenario biggrid only"},
		{"size not a size", append(bg, "--image-size", "ten"), `--image-size: want a size such as 10GB or 512MiB, got "ten"`},
		{"size without unit", append(bg, "--image-size", "10"), `--image-size: want a size with a unit such as 10GB or 512MiB, got "10"`},
		{"zero size", append(bg, "--image-size", "0GB"), "--image-size: must be > 0"},
		{"server rate not a rate", append(bg, "--server-rate", "fast"), `--server-rate: want a rate such as 1gbit, 10Gbps or 125MB/s, got "fast"`},
		{"server rate without unit", append(bg, "--server-rate", "1000"), `--server-rate: want a rate such as 1gbit, 10Gbps or 125MB/s, got "1000"`},
		{"zero server rate", append(bg, "--server-rate", "0gbit"), "--server-rate: must be > 0"},
		{"link rate bad unit", append(bg, "--link-rate", "1g"), `--link-rate: want a rate such as 1gbit, 10Gbps or 125MB/s, got "1g"`},
		{"negative link rate", append(bg, "--link-rate", "-1gbit"), `--link-rate: want a rate such as 1gbit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, append([]string{"sim"}, tt.args...)...)
			checkError(t, r, ExitUsage, tt.want)
			if !strings.HasPrefix(r.stderr, "fairlease sim: ") {
				t.Errorf("stderr %q does not start with the command", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing on error", r.stdout)
			}
		})
	}
}
