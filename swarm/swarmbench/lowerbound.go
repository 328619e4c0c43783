package swarmbench

import "math"

// LowerBoundFormula names the bound LowerBound computes (DESIGN §7).
const LowerBoundFormula = "T_LB = max(S/U_s, S/d, N·S/(U_s + Σu)); pipeline fill ≈ ⌊log₂N⌋·L/u, reported apart"

// Links are the rates, in bits per second, the bound assumes: the seed's
// upload and every node's upload and download.
type Links struct {
	SeedUp, NodeUp, NodeDown float64
}

// EqualLinks is every link at rate bits per second, as the benchmark
// shapes them.
func EqualLinks(rate int64) Links {
	r := float64(rate)
	return Links{SeedUp: r, NodeUp: r, NodeDown: r}
}

// Bound is the swarm lower bound for one image and its terms, in seconds.
type Bound struct {
	Seconds       float64 `json:"lower_bound_s"`
	SeedS         float64 `json:"seed_term_s"`     // S/U_s: the seed sends every byte once
	DownloadS     float64 `json:"download_term_s"` // S/d: each node receives every byte
	SwarmS        float64 `json:"swarm_term_s"`    // N·S/(U_s+Σu): all bytes over all uploads
	PipelineFillS float64 `json:"pipeline_fill_s"` // ⌊log₂N⌋ piece times before every node uploads
}

// LowerBound is the least time in which a seed can give size bytes to
// each of nodes nodes over links, pieces of pieceLength bytes (0 leaves
// out the pipeline-fill term). Seconds is the DESIGN §7 bound without the
// fill term, which is an estimate rather than a bound.
func LowerBound(nodes int, size int64, l Links, pieceLength int64) Bound {
	bits := 8 * float64(size)
	n := float64(nodes)
	b := Bound{
		SeedS:     bits / l.SeedUp,
		DownloadS: bits / l.NodeDown,
		SwarmS:    n * bits / (l.SeedUp + n*l.NodeUp),
	}
	b.Seconds = math.Max(b.SeedS, math.Max(b.DownloadS, b.SwarmS))
	if nodes > 1 && pieceLength > 0 {
		b.PipelineFillS = math.Floor(math.Log2(n)) * 8 * float64(pieceLength) / l.NodeUp
	}
	return b
}

// HTTPBound is the least time in which a seed serving whole files gives
// size bytes to each of nodes nodes: every byte leaves the seed N times.
func HTTPBound(nodes int, size int64, l Links) float64 {
	return math.Max(float64(nodes)*8*float64(size)/l.SeedUp, 8*float64(size)/l.NodeDown)
}
