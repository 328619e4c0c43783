package netmodel

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"
)

// near compares seconds and rates up to floating-point noise.
var near = cmpopts.EquateApprox(1e-9, 0)

// piece is the default piece in bits, for the swarm's fill term.
const piece = 8 * 4 * MiB

func TestRun(t *testing.T) {
	tests := map[string]struct {
		adjust       func(*Config)
		wantTransfer float64
		want         []Strategy
		wantBrute    BruteForce
	}{
		// DESIGN.md §7. One copy: 10 GB = 80 Gbit at 0.8 × 1 Gbit/s = 100 s.
		// Central: 1024 copies through the server's 0.8 Gbit/s,
		// 1024 × 100 s; a node's 64 copies alone would need only 6400 s.
		// Cached: 16 copies, 16 × 100 s. Swarm: T_LB = max(80 s, 80 s,
		// 16·80/(1+16) s) = 80 s, plus ⌊log₂16⌋ = 4 pieces of 4 MiB at
		// 1 Gbit/s, over η = 0.8; the server sends 1.2 images.
		// Brute force: 128 copies within 1600 s: 128 × 80 Gbit / 0.8 /
		// 1600 s = 8 Gbit/s, a 10 Gbit/s link; a node's 8 copies need 800 s.
		"biggrid": {
			wantTransfer: 100,
			want: []Strategy{
				{Central, 1024, 1024 * 10 * GB, 1024 * 100},
				{Cached, 16, 16 * 10 * GB, 16 * 100},
				{Swarm, 16, 12 * GB, (80 + 4*piece/1e9) / 0.8},
			},
			wantBrute: BruteForce{Copies: 128, Within: 1600, NodeBound: 800, ServerRate: 8 * Gbit, Standard: 10 * Gbit},
		},
		// A 10 Gbit/s server: the copies get 8 Gbit/s of payload.
		// Central: max(1024 × 80/8, 64 × 100) = 10240 s, still the server.
		// Cached: max(16 × 80/8, 100) = 160 s. Brute force: each node's
		// 8 copies need 800 s > 160 s: no server is fast enough.
		"10 Gbit/s server": {
			adjust:       func(c *Config) { c.ServerRate = 10 * Gbit },
			wantTransfer: 100,
			want: []Strategy{
				{Central, 1024, 1024 * 10 * GB, 10240},
				{Cached, 16, 16 * 10 * GB, 160},
				{Swarm, 16, 12 * GB, (80 + 4*piece/1e9) / 0.8},
			},
			wantBrute: BruteForce{Copies: 128, Within: 160, NodeBound: 800},
		},
		// 100 Gbit/s: the nodes' links limit. Central: 64 × 100 s.
		// Cached: max(16 × 80/80, 100) = 100 s, one copy's time.
		"node links limit": {
			adjust:       func(c *Config) { c.ServerRate = 100 * Gbit },
			wantTransfer: 100,
			want: []Strategy{
				{Central, 1024, 1024 * 10 * GB, 6400},
				{Cached, 16, 16 * 10 * GB, 100},
				{Swarm, 16, 12 * GB, (80 + 4*piece/1e9) / 0.8},
			},
			wantBrute: BruteForce{Copies: 128, Within: 100, NodeBound: 800},
		},
		// 20 VMs on 16 nodes: 4 nodes run 2, 12 run 1. Central: 20 × 100 s
		// through the server. Brute force: the wave is all 20 VMs, within
		// 1600 s: 20 × 80 / 0.8 / 1600 = 1.25 Gbit/s, a 2.5 Gbit/s link.
		"uneven placement": {
			adjust:       func(c *Config) { c.VMs = 20 },
			wantTransfer: 100,
			want: []Strategy{
				{Central, 20, 20 * 10 * GB, 2000},
				{Cached, 16, 16 * 10 * GB, 1600},
				{Swarm, 16, 12 * GB, (80 + 4*piece/1e9) / 0.8},
			},
			wantBrute: BruteForce{Copies: 20, Within: 1600, NodeBound: 200, ServerRate: 1.25 * Gbit, Standard: 2.5 * Gbit},
		},
		// 4 VMs on 16 nodes: only 4 nodes need the image. Swarm: T_LB =
		// max(80, 80, 4·80/(1+4)) = 80 s, fill ⌊log₂4⌋ = 2 pieces.
		"fewer VMs than nodes": {
			adjust:       func(c *Config) { c.VMs = 4 },
			wantTransfer: 100,
			want: []Strategy{
				{Central, 4, 4 * 10 * GB, 400},
				{Cached, 4, 4 * 10 * GB, 400},
				{Swarm, 4, 12 * GB, (80 + 2*piece/1e9) / 0.8},
			},
			wantBrute: BruteForce{Copies: 4, Within: 400, NodeBound: 100, ServerRate: 1 * Gbit, Standard: 1 * Gbit},
		},
		// One node of 8 cores: no peers, so the swarm is one copy from the
		// server (80/0.8 s, 10 GB sent). Central: 8 copies share the
		// node's link and the server alike: 800 s.
		"one node": {
			adjust:       func(c *Config) { c.Nodes, c.VMs = 1, 8 },
			wantTransfer: 100,
			want: []Strategy{
				{Central, 8, 8 * 10 * GB, 800},
				{Cached, 1, 10 * GB, 100},
				{Swarm, 1, 10 * GB, 100},
			},
			wantBrute: BruteForce{Copies: 8, Within: 100, NodeBound: 800},
		},
		// Nodes upload at 100 Mbit/s: the swarm is bound by uploads,
		// 16 × 80 Gbit / (1 + 16 × 0.1) Gbit/s, and its pieces take 10 × longer.
		"slow uplinks": {
			adjust:       func(c *Config) { c.NodeUp = 100 * Mbit },
			wantTransfer: 100,
			want: []Strategy{
				{Central, 1024, 1024 * 10 * GB, 1024 * 100},
				{Cached, 16, 16 * 10 * GB, 1600},
				{Swarm, 16, 12 * GB, (16*80/2.6 + 4*piece/1e8) / 0.8},
			},
			wantBrute: BruteForce{Copies: 128, Within: 1600, NodeBound: 800, ServerRate: 8 * Gbit, Standard: 10 * Gbit},
		},
		// A 2 GB image over 100 Mbit/s at full efficiency: 16 Gbit /
		// 0.1 Gbit/s = 160 s a copy.
		"small image, slow server": {
			adjust: func(c *Config) {
				c.ImageBytes, c.ServerRate, c.Efficiency, c.SwarmEfficiency, c.SeedRatio = 2*GB, 100*Mbit, 1, 1, 1
			},
			wantTransfer: 160,
			want: []Strategy{
				{Central, 1024, 1024 * 2 * GB, 1024 * 160},
				{Cached, 16, 16 * 2 * GB, 16 * 160},
				// T_LB = max(16/0.1, 16/1, 16·16/(0.1+16)) = 160 s.
				{Swarm, 16, 2 * GB, 160 + 4*piece/1e8},
			},
			wantBrute: BruteForce{Copies: 128, Within: 2560, NodeBound: 128, ServerRate: 0.8 * Gbit, Standard: 1 * Gbit},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			if tt.adjust != nil {
				tt.adjust(&c)
			}
			r, err := Run(c)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantTransfer, r.Transfer, near); diff != "" {
				t.Errorf("one transfer (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, r.Strategies, near); diff != "" {
				t.Errorf("strategies (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantBrute, r.BruteForce, near); diff != "" {
				t.Errorf("brute force (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBigGridReduction: node caches make 1024 / 16 = 64 times fewer
// transfers, and send 64 times fewer bytes.
func TestBigGridReduction(t *testing.T) {
	r, err := Run(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if got := r.TransferReduction(); got != 64 {
		t.Errorf("transfer reduction %v, want 1024/16 = 64", got)
	}
	central, cached := r.Strategy(Central), r.Strategy(Cached)
	if got := central.ServerBytes / cached.ServerBytes; got != 64 {
		t.Errorf("server bytes %d / %d = %d, want 64", central.ServerBytes, cached.ServerBytes, got)
	}
	if got := r.Strategy("nope"); got != (Strategy{}) {
		t.Errorf("Strategy(nope) = %+v, want the zero Strategy", got)
	}
}

// TestFluid checks the fair sharing on small cases with Efficiency 1 and
// 1 Gbit copies, so that rates are in copies per second.
func TestFluid(t *testing.T) {
	tests := map[string]struct {
		server, link float64 // Gbit/s
		copies       []int
		want         float64
	}{
		// Fair share 1/3 each; nobody's link is full: all at 3 s.
		"server shared": {1, 1, []int{2, 1}, 3},
		// Node 0's four copies fill its link at 0.25 each; the two others
		// share the rest, 0.5 each, and arrive at 2 s; node 0's copies,
		// half done, keep their 0.25 and arrive at 4 s.
		"link caps one node": {2, 1, []int{1, 1, 4}, 4},
		// Every link full: 3 copies on node 0 at 1/3 each.
		"links cap all":   {3, 1, []int{3, 1, 1}, 3},
		"nothing to send": {1, 1, []int{0, 0}, 0},
		"one copy":        {1, 1, []int{0, 1}, 1},
		"fast server":     {100, 1, []int{5, 5}, 5},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := Config{ImageBytes: GB / 8, ServerRate: tt.server * Gbit, NodeDown: tt.link * Gbit, Efficiency: 1}
			if diff := cmp.Diff(tt.want, c.fluid(tt.copies), near); diff != "" {
				t.Errorf("all ready (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default: %v", err)
	}
	tests := map[string]struct {
		adjust func(*Config)
		want   string
	}{
		"no image":         {func(c *Config) { c.ImageBytes = 0 }, "ImageBytes must be > 0"},
		"no server":        {func(c *Config) { c.ServerRate = 0 }, "ServerRate must be > 0"},
		"infinite link":    {func(c *Config) { c.NodeDown = math.Inf(1) }, "NodeDown must be > 0 and finite"},
		"NaN uplink":       {func(c *Config) { c.NodeUp = math.NaN() }, "NodeUp must be > 0"},
		"efficiency > 1":   {func(c *Config) { c.Efficiency = 1.2 }, "Efficiency must be in (0,1], got 1.2"},
		"swarm efficiency": {func(c *Config) { c.SwarmEfficiency = 0 }, "SwarmEfficiency must be in (0,1]"},
		"no nodes":         {func(c *Config) { c.Nodes = 0 }, "Nodes must be > 0"},
		"no VMs":           {func(c *Config) { c.VMs = -1 }, "VMs must be > 0"},
		"no cores":         {func(c *Config) { c.CoresPerNode = 0 }, "CoresPerNode must be > 0"},
		"no pieces":        {func(c *Config) { c.PieceBytes = 0 }, "PieceBytes must be > 0"},
		"seed ratio < 1":   {func(c *Config) { c.SeedRatio = 0.9 }, "SeedRatio must be >= 1"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			tt.adjust(&c)
			_, err := Run(c)
			if err == nil || !strings.Contains(err.Error(), "netmodel: "+tt.want) {
				t.Errorf("Run: got %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestStandardRate(t *testing.T) {
	tests := []struct{ rate, want float64 }{
		{1, 10 * Mbit}, {1 * Gbit, 1 * Gbit}, {1.25 * Gbit, 2.5 * Gbit}, {8 * Gbit, 10 * Gbit},
		{64 * Gbit, 100 * Gbit}, {800 * Gbit, 800 * Gbit}, {801 * Gbit, 0},
	}
	for _, tt := range tests {
		if got := StandardRate(tt.rate); got != tt.want {
			t.Errorf("StandardRate(%v) = %v, want %v", tt.rate, got, tt.want)
		}
	}
}

// genConfig draws a site and a burst: from one node to 64, from one VM to
// 2048, sizes from 100 MB to 100 GB, rates from 10 Mbit/s to 100 Gbit/s.
func genConfig(t *rapid.T) Config {
	rate := func(label string) float64 {
		return math.Pow(10, rapid.Float64Range(7, 11).Draw(t, label))
	}
	return Config{
		ImageBytes:      rapid.Int64Range(100_000_000, 100*GB).Draw(t, "image"),
		ServerRate:      rate("server"),
		NodeDown:        rate("down"),
		NodeUp:          rate("up"),
		Efficiency:      rapid.Float64Range(0.1, 1).Draw(t, "efficiency"),
		Nodes:           rapid.IntRange(1, 64).Draw(t, "nodes"),
		VMs:             rapid.IntRange(1, 2048).Draw(t, "vms"),
		CoresPerNode:    rapid.IntRange(1, 64).Draw(t, "cores"),
		SwarmEfficiency: rapid.Float64Range(0.1, 1).Draw(t, "swarm efficiency"),
		SeedRatio:       rapid.Float64Range(1, 2).Draw(t, "seed ratio"),
		PieceBytes:      rapid.Int64Range(256<<10, 64*MiB).Draw(t, "piece"),
	}
}

func mustRun(t *rapid.T, c Config) Result {
	r, err := Run(c)
	if err != nil {
		t.Fatalf("Run(%+v): %v", c, err)
	}
	return r
}

// notAfter reports a <= b up to floating-point noise.
func notAfter(a, b float64) bool { return a <= b*(1+1e-9) }

// TestPropertyMonotone: a faster server, or faster node links, never
// makes any strategy slower.
func TestPropertyMonotone(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genConfig(t)
		f := rapid.Float64Range(1, 100).Draw(t, "speed-up")
		base := mustRun(t, c)
		faster := c
		faster.ServerRate *= f
		links := c
		links.NodeDown *= f
		links.NodeUp *= f
		for what, r := range map[string]Result{"server": mustRun(t, faster), "links": mustRun(t, links)} {
			for i, s := range r.Strategies {
				if b := base.Strategies[i]; !notAfter(s.AllReady, b.AllReady) {
					t.Fatalf("%s: a %gx faster %s makes it slower: %v s, was %v s", s.Name, f, what, s.AllReady, b.AllReady)
				}
			}
		}
	})
}

// TestPropertyCosts: caching never makes more transfers nor sends more
// than no caching; the swarm never sends more than caching × the seed
// ratio, nor more than caching; nothing beats one copy alone but the
// swarm, whose bound is on nominal rates.
func TestPropertyCosts(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genConfig(t)
		r := mustRun(t, c)
		central, cached, swarm := r.Strategy(Central), r.Strategy(Cached), r.Strategy(Swarm)
		if cached.Transfers > central.Transfers || cached.ServerBytes > central.ServerBytes {
			t.Fatalf("caching: %d transfers, %d bytes; no caching: %d, %d", cached.Transfers, cached.ServerBytes, central.Transfers, central.ServerBytes)
		}
		if float64(swarm.ServerBytes) > float64(cached.ServerBytes)*c.SeedRatio+1 || swarm.ServerBytes > cached.ServerBytes {
			t.Fatalf("swarm sends %d bytes; caching %d × seed ratio %v", swarm.ServerBytes, cached.ServerBytes, c.SeedRatio)
		}
		if swarm.ServerBytes < c.ImageBytes {
			t.Fatalf("swarm sends %d bytes, less than one image %d", swarm.ServerBytes, c.ImageBytes)
		}
		for _, s := range []Strategy{central, cached} {
			if !notAfter(r.Transfer, s.AllReady) {
				t.Fatalf("%s ready at %v s, before one copy alone (%v s)", s.Name, s.AllReady, r.Transfer)
			}
		}
		if !notAfter(central.AllReady, float64(c.VMs)*r.Transfer) {
			t.Fatalf("central ready at %v s, after %d copies one by one (%v s)", central.AllReady, c.VMs, float64(c.VMs)*r.Transfer)
		}
	})
}

// TestPropertyFluidBound: for equal copies asked for at once, fair
// sharing is as fast as the slower of the server and the busiest node
// link, which bruteForce relies on.
func TestPropertyFluidBound(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genConfig(t)
		copies := rapid.SliceOfN(rapid.IntRange(0, 100), 1, 64).Draw(t, "copies")
		total, busiest := 0, 0
		for _, k := range copies {
			total += k
			busiest = max(busiest, k)
		}
		s := c.bits()
		want := max(float64(total)*s/(c.Efficiency*c.ServerRate), float64(busiest)*s/(c.Efficiency*c.NodeDown))
		if got := c.fluid(copies); math.Abs(got-want) > 1e-9*want {
			t.Fatalf("fluid(%v) = %v s, want max(server, busiest link) = %v s", copies, got, want)
		}
	})
}

// TestPropertyBruteForce: at the rate bruteForce names, the wave is ready
// within the cached burst's time, and 1 % slower it is not; when it names
// none, the busiest node's link alone takes too long.
func TestPropertyBruteForce(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genConfig(t)
		bf := mustRun(t, c).BruteForce
		var wave []int
		for _, k := range c.perNode() {
			wave = append(wave, min(k, c.CoresPerNode))
		}
		if bf.ServerRate == 0 {
			if bf.NodeBound <= bf.Within {
				t.Fatalf("no server named, yet a node needs only %v s of %v s", bf.NodeBound, bf.Within)
			}
			return
		}
		if bf.Standard != 0 && bf.Standard < bf.ServerRate*(1-1e-12) {
			t.Fatalf("standard rate %v below the rate needed %v", bf.Standard, bf.ServerRate)
		}
		at := c
		at.ServerRate = bf.ServerRate
		if got := at.fluid(wave); !notAfter(got, bf.Within) {
			t.Fatalf("at %v bit/s the wave is ready at %v s, after %v s", bf.ServerRate, got, bf.Within)
		}
		at.ServerRate *= 0.99
		if got := at.fluid(wave); got <= bf.Within {
			t.Fatalf("at 0.99 × %v bit/s the wave is still ready at %v s <= %v s: the rate is not the least", bf.ServerRate, got, bf.Within)
		}
	})
}
