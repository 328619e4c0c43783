package report

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/sim/netmodel"
)

func TestElapsed(t *testing.T) {
	tests := []struct {
		sec  float64
		want string
	}{
		{0, "0ms"}, {0.12, "120ms"}, {1, "1s"}, {4.24, "4.2s"}, {9.96, "10s"}, {45, "45s"}, {59.4, "59s"},
		{59.6, "1m 0s"}, {100, "1m 40s"}, {100.17, "1m 40s"}, {1600, "26m 40s"}, {3569.4, "59m 29s"},
		{3599.6, "1h 0m"}, {5100, "1h 25m"}, {102400, "28h 27m"}, {100 * 3600, "4d 4h"}, {-100, "-1m 40s"},
	}
	for _, tt := range tests {
		if got := Elapsed(tt.sec); got != tt.want {
			t.Errorf("Elapsed(%v) = %q, want %q", tt.sec, got, tt.want)
		}
	}
}

func bigGrid(t *testing.T, adjust func(*netmodel.Config)) *netmodel.Result {
	t.Helper()
	c := netmodel.DefaultConfig()
	if adjust != nil {
		adjust(&c)
	}
	r, err := netmodel.Run(c)
	if err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestWriteImages(t *testing.T) {
	tests := map[string]struct {
		adjust func(*netmodel.Config)
		want   string
	}{
		"biggrid": {want: `images    1,024 VMs on 16 nodes × 8 cores; 10 GB image; server 1 Gbit/s, node links 1 Gbit/s down, 1 Gbit/s up; 80 % efficiency
one copy  1m 40s (10 GB at 80 % of 1 Gbit/s)
swarm     assumed: η = 0.8 of the lower bound's speed (DESIGN.md §7); the server sends 1.2 images; 4.0 MiB pieces

strategy                    transfers  server sent  all ready
central server, no cache        1,024      10.2 TB    28h 27m
node cache + copy-on-write         16       160 GB    26m 40s
swarm among node caches            16        12 GB     1m 40s

caching      64× fewer transfers than no cache
brute force  128 copies (a VM on every core) ready in 26m 40s, as soon as with node caches: server of 8 Gbit/s (next standard link 10 Gbit/s)
`},
		"10 Gbit/s server": {
			adjust: func(c *netmodel.Config) { c.ServerRate = 10 * netmodel.Gbit },
			want: `images    1,024 VMs on 16 nodes × 8 cores; 10 GB image; server 10 Gbit/s, node links 1 Gbit/s down, 1 Gbit/s up; 80 % efficiency
one copy  1m 40s (10 GB at 80 % of 1 Gbit/s)
swarm     assumed: η = 0.8 of the lower bound's speed (DESIGN.md §7); the server sends 1.2 images; 4.0 MiB pieces

strategy                    transfers  server sent  all ready
central server, no cache        1,024      10.2 TB     2h 51m
node cache + copy-on-write         16       160 GB     2m 40s
swarm among node caches            16        12 GB     1m 40s

caching      64× fewer transfers than no cache
brute force  128 copies (a VM on every core) ready in 2m 40s, as soon as with node caches: no server suffices, the busiest node's 1 Gbit/s link needs 13m 20s
`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteImages(&b, bigGrid(t, tt.adjust)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("images (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJSONImages(t *testing.T) {
	s := sample()
	b, err := s.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"images"`) {
		t.Errorf("a summary without an image model has an images key:\n%s", b)
	}

	s.Images = bigGrid(t, nil)
	b, err = s.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Policies []map[string]any `json:"policies"`
		Images   map[string]any   `json:"images"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Policies) != len(s.Runs) {
		t.Errorf("%d policies, want %d: the images key must not disturb them", len(doc.Policies), len(s.Runs))
	}
	im := doc.Images
	got := map[string]any{
		"image_bytes": im["image_bytes"], "server_bits_per_second": im["server_bits_per_second"],
		"transfer_seconds": im["transfer_seconds"], "transfer_reduction": im["transfer_reduction"],
		"nodes": im["nodes"], "vms": im["vms"], "brute_force": im["brute_force"],
	}
	want := map[string]any{
		"image_bytes": 1e10, "server_bits_per_second": 1e9, "transfer_seconds": 100.0, "transfer_reduction": 64.0,
		"nodes": 16.0, "vms": 1024.0,
		"brute_force": map[string]any{
			"copies": 128.0, "within_seconds": 1600.0, "node_seconds": 800.0,
			"server_bits_per_second": 8e9, "standard_bits_per_second": 1e10,
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
	var names []string
	for _, st := range im["strategies"].([]any) {
		m := st.(map[string]any)
		names = append(names, m["name"].(string))
		for _, k := range []string{"label", "transfers", "server_bytes", "all_ready_seconds"} {
			if _, ok := m[k]; !ok {
				t.Errorf("strategy %v lacks %q", m["name"], k)
			}
		}
	}
	if diff := cmp.Diff([]string{"central", "cached", "swarm"}, names); diff != "" {
		t.Errorf("strategies (-want +got):\n%s", diff)
	}

	// No server fast enough: the rates are null, not missing.
	s.Images = bigGrid(t, func(c *netmodel.Config) { c.ServerRate = 10 * netmodel.Gbit })
	b, err = s.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"server_bits_per_second": null`) {
		t.Errorf("brute force without a server: want a null rate in\n%s", b)
	}
}
