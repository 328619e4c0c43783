// Package netmodel is a fluid model of how a burst of VMs gets its disk
// image over the network: the BiG Grid example of DESIGN.md §7, kept
// simple enough to check by hand.
//
// One image of S bytes leaves an image server with uplink U_s for the N
// nodes of a site; each node has a downlink d and an uplink u. A transfer
// gets Efficiency (0.8) of a link's nominal rate as payload. Three
// strategies get the image to every VM of the burst:
//
//   - Central: no node cache; every VM start copies the whole image from
//     the server, so a burst of V VMs makes V transfers.
//   - Cached: nodes cache the image and start VMs on copy-on-write
//     overlays, so each node that runs a VM makes one transfer.
//   - Swarm: node caches fetch the image from each other, seeded by the
//     server (BitTorrent-style).
//
// Every copy is asked for at t = 0, when the burst is placed, and a VM
// starts as soon as its node has the image, so "all ready" is the arrival
// of the last copy. For Central and Cached the copies share the network as
// a fluid: at every instant the server's uplink is split max-min fairly
// among the copies in flight, each node's downlink capping what its copies
// get together (see fluid). For Swarm the model is the lower bound of
// DESIGN.md §7 with its pipeline-fill term, divided by a swarm efficiency
// (see Config.swarm).
//
// The model is pure: no clock, no goroutines, no I/O; the same Config
// always gives the same Result.
package netmodel

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// Rates are in bits per second, sizes in bytes, times in seconds.
const (
	Kbit = 1e3
	Mbit = 1e6
	Gbit = 1e9
	GB   = 1_000_000_000
	MiB  = 1 << 20
)

// Strategy names, as they appear in Result and the JSON report.
const (
	Central = "central" // no node cache: one transfer per VM
	Cached  = "cached"  // node cache + copy-on-write overlays: one per node
	Swarm   = "swarm"   // peer-to-peer among node caches, seeded by the server
)

// Config is one burst on one site's network.
type Config struct {
	// ImageBytes is the image size S.
	ImageBytes int64
	// ServerRate is the image server's nominal uplink U_s, in bits/s.
	ServerRate float64
	// NodeDown and NodeUp are each node's nominal link rates d and u, in
	// bits/s. Only the swarm uses NodeUp: in the other strategies nodes
	// upload nothing.
	NodeDown, NodeUp float64
	// Efficiency is the fraction of a link's nominal rate that one
	// transfer's payload gets (TCP and protocol overheads): 0.8 in the
	// BiG Grid report, which makes one 10 GB copy over 1 Gbit/s take 100 s.
	Efficiency float64

	// Nodes is N. The burst's VMs are spread over them as evenly as
	// possible: the first VMs mod N nodes get one VM more.
	Nodes int
	VMs   int
	// CoresPerNode is how many of the burst's one-core VMs a node runs at
	// once. Only the brute-force figure (BruteForce) uses it.
	CoresPerNode int

	// SwarmEfficiency is η = T_LB / T of DESIGN.md §7 for the swarm. T_LB
	// is computed from nominal rates, so η includes the overheads that
	// Efficiency stands for in the other strategies. The default, 0.8,
	// assumes a swarm uses links as well as one TCP stream does; Kraken
	// reports about 0.6. Replace it with the η that `fairlease bench swarm`
	// measures.
	SwarmEfficiency float64
	// SeedRatio is the bytes the server sends in a swarm, in images:
	// 1.0 if every piece leaves the server once. The default, 1.2, allows
	// for a cold burst in which several nodes ask the server for the same
	// piece before any peer has it (DESIGN.md §6: stagger the pieces).
	// The server never sends more than one copy per node.
	SeedRatio float64
	// PieceBytes is the swarm's piece size, for the pipeline-fill term.
	PieceBytes int64
}

// DefaultConfig is the BiG Grid parameter scan of DESIGN.md §7: 1024
// one-core VMs on 16 nodes × 8 cores, a 10 GB image, 1 Gbit/s everywhere
// at 80 % efficiency.
func DefaultConfig() Config {
	return Config{
		ImageBytes:      10 * GB,
		ServerRate:      1 * Gbit,
		NodeDown:        1 * Gbit,
		NodeUp:          1 * Gbit,
		Efficiency:      0.8,
		Nodes:           16,
		VMs:             1024,
		CoresPerNode:    8,
		SwarmEfficiency: 0.8,
		SeedRatio:       1.2,
		PieceBytes:      4 * MiB,
	}
}

// Validate reports every field out of range.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("netmodel: %s "+format, append([]any{field}, args...)...))
	}
	positive := func(field string, v float64) {
		if !(v > 0) || math.IsInf(v, 0) {
			bad(field, "must be > 0 and finite, got %v", v)
		}
	}
	fraction := func(field string, v float64) {
		if !(v > 0 && v <= 1) {
			bad(field, "must be in (0,1], got %v", v)
		}
	}
	positive("ImageBytes", float64(c.ImageBytes))
	positive("ServerRate", c.ServerRate)
	positive("NodeDown", c.NodeDown)
	positive("NodeUp", c.NodeUp)
	fraction("Efficiency", c.Efficiency)
	fraction("SwarmEfficiency", c.SwarmEfficiency)
	positive("Nodes", float64(c.Nodes))
	positive("VMs", float64(c.VMs))
	positive("CoresPerNode", float64(c.CoresPerNode))
	positive("PieceBytes", float64(c.PieceBytes))
	if !(c.SeedRatio >= 1) || math.IsInf(c.SeedRatio, 0) {
		bad("SeedRatio", "must be >= 1 (the server sends at least one copy), got %v", c.SeedRatio)
	}
	return errors.Join(errs...)
}

// Strategy is what one strategy costs.
type Strategy struct {
	Name string
	// Transfers counts whole images received: by VMs (Central) or by
	// node caches (Cached, Swarm).
	Transfers int
	// ServerBytes is what the image server sends.
	ServerBytes int64
	// AllReady is when the last VM of the burst has its image, in seconds
	// from the burst.
	AllReady float64
}

// BruteForce is the image server that Central needs to start one wave of
// the burst, a VM on every core, as soon as Cached starts the whole burst.
type BruteForce struct {
	// Copies is the wave: min(cores, VMs) on each node, summed.
	Copies int
	// Within is Cached's AllReady, in seconds.
	Within float64
	// NodeBound is how long the busiest node's downlink needs for its
	// copies of the wave. If it exceeds Within, no server is fast enough.
	NodeBound float64
	// ServerRate is the nominal server uplink needed, in bits/s; 0 if
	// none suffices.
	ServerRate float64
	// Standard is the smallest standard Ethernet rate >= ServerRate; 0 if
	// none is fast enough.
	Standard float64
}

// Result is the model's answer for one Config.
type Result struct {
	Config Config
	// Transfer is how long one copy takes alone: S / (Efficiency ×
	// min(U_s, d)), in seconds.
	Transfer float64
	// Strategies holds Central, Cached and Swarm, in that order.
	Strategies []Strategy
	BruteForce BruteForce
}

// Strategy returns the strategy named name; the zero Strategy if none.
func (r Result) Strategy(name string) Strategy {
	i := slices.IndexFunc(r.Strategies, func(s Strategy) bool { return s.Name == name })
	if i < 0 {
		return Strategy{}
	}
	return r.Strategies[i]
}

// TransferReduction is how many times fewer transfers node caches make
// than no cache: V / min(N, V), 64 for BiG Grid.
func (r Result) TransferReduction() float64 {
	return float64(r.Strategy(Central).Transfers) / float64(r.Strategy(Cached).Transfers)
}

// Run computes every strategy and the brute-force figure.
func Run(c Config) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	r := Result{Config: c, Transfer: c.bits() / (c.Efficiency * min(c.ServerRate, c.NodeDown))}
	perNode := c.perNode()

	central := Strategy{Name: Central, Transfers: c.VMs, ServerBytes: int64(c.VMs) * c.ImageBytes}
	central.AllReady = c.fluid(perNode)

	used := make([]int, len(perNode))
	for j, k := range perNode {
		used[j] = min(k, 1)
	}
	n := c.usedNodes()
	cached := Strategy{Name: Cached, Transfers: n, ServerBytes: int64(n) * c.ImageBytes}
	cached.AllReady = c.fluid(used)

	r.Strategies = []Strategy{central, cached, c.swarm()}
	r.BruteForce = c.bruteForce(perNode, cached.AllReady)
	return r, nil
}

// bits is the image size in bits.
func (c Config) bits() float64 { return 8 * float64(c.ImageBytes) }

// perNode is how many of the burst's VMs each node runs.
func (c Config) perNode() []int {
	out := make([]int, c.Nodes)
	for j := range out {
		out[j] = c.VMs / c.Nodes
		if j < c.VMs%c.Nodes {
			out[j]++
		}
	}
	return out
}

// usedNodes is how many nodes run at least one VM of the burst.
func (c Config) usedNodes() int { return min(c.Nodes, c.VMs) }

// fluid returns when the last copy arrives if node j asks for copies[j]
// copies of the image at t = 0, all sharing the network as a fluid.
//
// Between two arrivals the rates are constant: the max-min fair share of
// the server's effective uplink Efficiency × U_s among the copies in
// flight, where the copies on one node together get at most
// Efficiency × d (progressive filling: raise every copy's rate together;
// a node whose downlink fills keeps its rate; stop when the server's
// uplink fills or every node's downlink has). At the next arrival the
// rates are computed again. Copies on one node always have the same rate
// and the same bits left, so each step ends at least one node's copies.
//
// For equal copies started together this gives
// max(Σ copies × S / (η U_s), max_j copies[j] × S / (η d)): the server or
// the busiest node, whichever is slower (checked by a property test).
func (c Config) fluid(copies []int) float64 {
	type node struct {
		k    int     // copies in flight
		left float64 // bits left of each
	}
	size := c.bits()
	server, link := c.Efficiency*c.ServerRate, c.Efficiency*c.NodeDown
	var active []node
	for _, k := range copies {
		if k > 0 {
			active = append(active, node{k: k, left: size})
		}
	}
	// Nodes with the most copies have the lowest per-copy cap link/k, so
	// they fill their downlink first.
	slices.SortStableFunc(active, func(a, b node) int { return b.k - a.k })
	rates := make([]float64, len(active))
	var t float64
	for len(active) > 0 {
		rates = rates[:len(active)]
		free, waiting := server, 0
		for _, n := range active {
			waiting += n.k
		}
		for i, n := range active {
			// A node is capped when its fair share free/waiting is more
			// than its downlink can take.
			if capped := link / float64(n.k); capped*float64(waiting) <= free {
				rates[i] = capped
				free -= link
				waiting -= n.k
				continue
			}
			for j := i; j < len(active); j++ {
				rates[j] = free / float64(waiting)
			}
			break
		}
		dt := math.Inf(1)
		for i, n := range active {
			dt = min(dt, n.left/rates[i])
		}
		t += dt
		kept := active[:0]
		for i, n := range active {
			n.left -= rates[i] * dt
			// Arrived, up to rounding in the subtraction.
			if n.left > size*1e-12 {
				kept = append(kept, n)
			}
		}
		active = kept
	}
	return t
}

// swarm is the swarm's cost. With N' = min(N, V) nodes that need the image,
// S in bits and nominal rates:
//
//	T_LB   = max(S/U_s, S/d, N'·S/(U_s + N'·u))              DESIGN.md §7
//	fill   = ⌊log₂ N'⌋ · P / min(U_s, u, d)                   pipeline fill, P = one piece
//	T      = (T_LB + fill) / SwarmEfficiency
//	server = min(SeedRatio, N') · S bytes
//
// S/U_s: the server must send every piece at least once; S/d: each node
// must receive the image; N'·S/(U_s + Σu): all N' copies must be uploaded
// by the server and the nodes together. The fill term is the time for the
// first piece to reach the last node along a doubling tree.
func (c Config) swarm() Strategy {
	n := c.usedNodes()
	s := c.bits()
	lb := max(s/c.ServerRate, s/c.NodeDown, float64(n)*s/(c.ServerRate+float64(n)*c.NodeUp))
	piece := 8 * float64(min(c.PieceBytes, c.ImageBytes))
	fill := float64(bits.Len(uint(n))-1) * piece / min(c.ServerRate, c.NodeUp, c.NodeDown)
	return Strategy{
		Name:        Swarm,
		Transfers:   n,
		ServerBytes: int64(math.Round(min(c.SeedRatio, float64(n)) * float64(c.ImageBytes))),
		AllReady:    (lb + fill) / c.SwarmEfficiency,
	}
}

// bruteForce finds the server Central needs to start one wave of the
// burst, a VM on every core, within the time Cached takes for the whole
// burst.
//
// The wave's W copies, w_j on node j, need max(W·S/(η U), max_j w_j·S/(η d))
// (see fluid), so the wave is ready within T if the busiest node's link
// manages, max_j w_j·S/(η d) <= T, and U >= W·S/(η T).
//
// BiG Grid: Cached sends 16 copies of 80 Gbit through 0.8 Gbit/s of
// server payload, T = 16 × 100 s = 1600 s. The wave is 16 × 8 = 128
// copies, 10.24 Tbit; 10.24 Tbit / 1600 s = 6.4 Gbit/s of payload, or
// 6.4 / 0.8 = 8 Gbit/s nominal: 128/16 = 8 times the cached server. Each
// node needs 8 × 100 s = 800 s <= 1600 s for its own 8 copies, so its
// 1 Gbit/s link is not the limit. The next standard Ethernet rate above
// 8 Gbit/s is 10 Gbit/s: the report's "10 Gbps image server by brute
// force". (All 1024 copies within 1600 s would need 64 Gbit/s, and
// 64 × 100 s = 6400 s on each node's link: no server could do it.)
func (c Config) bruteForce(perNode []int, within float64) BruteForce {
	bf := BruteForce{Within: within}
	busiest := 0
	for _, k := range perNode {
		w := min(k, c.CoresPerNode)
		bf.Copies += w
		busiest = max(busiest, w)
	}
	s := c.bits()
	bf.NodeBound = float64(busiest) * s / (c.Efficiency * c.NodeDown)
	if bf.NodeBound <= within*(1+1e-12) {
		bf.ServerRate = float64(bf.Copies) * s / (c.Efficiency * within)
		bf.Standard = StandardRate(bf.ServerRate)
	}
	return bf
}

// standardRates are Ethernet's rates, in bits/s.
var standardRates = []float64{
	10 * Mbit, 100 * Mbit, 1 * Gbit, 2.5 * Gbit, 5 * Gbit, 10 * Gbit, 25 * Gbit,
	40 * Gbit, 50 * Gbit, 100 * Gbit, 200 * Gbit, 400 * Gbit, 800 * Gbit,
}

// StandardRate is the smallest standard Ethernet rate >= rate, or 0 if
// rate is above them all.
func StandardRate(rate float64) float64 {
	for _, s := range standardRates {
		if s >= rate*(1-1e-12) {
			return s
		}
	}
	return 0
}
