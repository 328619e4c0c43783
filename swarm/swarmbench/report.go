package swarmbench

import (
	"fmt"
	"math"
	"runtime"
)

// Report is what a run measured. Times are seconds from the moment every
// node was told to go until the last one had the whole image; set-up
// (processes starting, the seed hashing pieces) and verification are
// reported apart.
type Report struct {
	Nodes             int     `json:"nodes"`
	SizeBytes         int64   `json:"size_bytes"`
	RateBitsPerSecond int64   `json:"rate_bits_per_second"`
	LowerBoundS       float64 `json:"lower_bound_s"`
	LowerBoundFormula string  `json:"lower_bound_formula"`
	LowerBoundTerms   Bound   `json:"lower_bound_terms"`
	PipelineFillS     float64 `json:"pipeline_fill_s"`    // estimate, not in lower_bound_s
	HTTPLowerBoundS   float64 `json:"http_lower_bound_s"` // N·S/U_s: the seed sends every copy
	SwarmS            float64 `json:"swarm_s,omitempty"`
	HTTPS             float64 `json:"http_s,omitempty"`
	Eta               float64 `json:"eta,omitempty"`      // lower_bound_s / swarm_s
	HTTPEta           float64 `json:"http_eta,omitempty"` // http_lower_bound_s / http_s: what the shaped links give
	// SeedEgressRatio counts what left the seed's link during the swarm
	// run (frames with their TCP/IP headers, tracker replies and web-seed
	// bytes included) over size_bytes; SeedUploadRatio counts only the
	// payload the swarm says it uploaded.
	SeedEgressRatio float64 `json:"seed_egress_ratio,omitempty"`
	SeedUploadRatio float64 `json:"seed_upload_ratio,omitempty"`
	SpeedupVsHTTP   float64 `json:"speedup_vs_http,omitempty"`
	PieceLength     int64   `json:"piece_length,omitempty"`
	Pieces          int     `json:"pieces,omitempty"`
	WebSeedBytes    int64   `json:"web_seed_bytes"`
	ImageSHA256     string  `json:"image_sha256"`
	AllVerified     bool    `json:"all_verified"` // every node's copy has the image's SHA-256
	CPUs            int     `json:"cpus"`

	HTTP  *PhaseReport `json:"http,omitempty"`
	Swarm *PhaseReport `json:"swarm,omitempty"`
}

// PhaseReport is one method's run.
type PhaseReport struct {
	Seconds          float64 `json:"seconds"`
	SetupS           float64 `json:"setup_s"`  // processes up, seed ready
	VerifyS          float64 `json:"verify_s"` // every node hashing its copy
	SeedSentBytes    int64   `json:"seed_sent_bytes"`
	SeedPayloadBytes int64   `json:"seed_payload_bytes"`
	SeedCPUS         float64 `json:"seed_cpu_s"`
	SeedDetail       any     `json:"seed_detail,omitempty"`
	NodeCPUS         float64 `json:"node_cpu_s"` // all nodes, from go until the last was done
	// The machine's CPUs while timed: the share busy, CPU-seconds busy,
	// the part in softirq (the kernel moving packets through veths,
	// bridge and tbf), and the busy part not spent by the benchmark's
	// processes or softirq (anything else running on the machine).
	HostCPUBusy  float64      `json:"host_cpu_busy"`
	HostCPUBusyS float64      `json:"host_cpu_busy_s"`
	HostSoftIRQS float64      `json:"host_softirq_s"`
	OtherCPUS    float64      `json:"other_cpu_s"`
	Nodes        []NodeReport `json:"per_node"`
}

// NodeReport is one node in one method's run. Times are since go.
type NodeReport struct {
	Node          int         `json:"node"`
	Seconds       float64     `json:"seconds"`
	FirstByteS    float64     `json:"first_byte_s"`
	DecilesS      [10]float64 `json:"deciles_s"` // when it held 10 %, 20 %, … 100 %
	Bytes         int64       `json:"bytes"`
	SHA256        string      `json:"sha256"`
	Verified      bool        `json:"verified"`
	SentBytes     int64       `json:"sent_bytes"`     // off its link, with headers
	ReceivedBytes int64       `json:"received_bytes"` // onto its link, with headers
	UploadedBytes int64       `json:"uploaded_bytes,omitempty"`
	CPUS          float64     `json:"cpu_s"`
	Detail        any         `json:"detail,omitempty"`
}

func newReport(o Options) *Report {
	l := EqualLinks(o.Rate)
	r := &Report{
		Nodes: o.Nodes, SizeBytes: o.Size, RateBitsPerSecond: o.Rate,
		LowerBoundFormula: LowerBoundFormula + "; every link at rate_bits_per_second",
		HTTPLowerBoundS:   round(HTTPBound(o.Nodes, o.Size, l)),
		CPUs:              runtime.NumCPU(),
	}
	r.setBound(o.PieceLength)
	return r
}

func (r *Report) setBound(pieceLength int64) {
	b := LowerBound(r.Nodes, r.SizeBytes, EqualLinks(r.RateBitsPerSecond), pieceLength)
	b = Bound{Seconds: round(b.Seconds), SeedS: round(b.SeedS), DownloadS: round(b.DownloadS), SwarmS: round(b.SwarmS), PipelineFillS: round(b.PipelineFillS)}
	r.LowerBoundS, r.LowerBoundTerms, r.PipelineFillS = b.Seconds, b, b.PipelineFillS
}

// add records method m's phase.
func (r *Report) add(m string, ph *phase) {
	pr := &PhaseReport{
		Seconds: round(ph.seconds), SetupS: round(ph.setupSecs), VerifyS: round(ph.verifySecs),
		SeedSentBytes:    ph.after[0].Sent - ph.before[0].Sent,
		SeedPayloadBytes: max(ph.seedStats.Served, ph.seedStats.Uploaded),
		SeedCPUS:         round(ph.seedStats.CPUSeconds),
		SeedDetail:       ph.seedStats.Detail,
		HostCPUBusy:      round(ratio(ph.cpu.busy, ph.cpu.total)),
		HostCPUBusyS:     round(float64(ph.cpu.busy) / clockTick),
		HostSoftIRQS:     round(float64(ph.cpu.softirq) / clockTick),
	}
	for i, n := range ph.nodes {
		nr := NodeReport{
			Node: i + 1, Seconds: round(n.done.Seconds), FirstByteS: round(n.firstByte.Seconds()),
			Bytes: n.stats.Bytes, SHA256: n.stats.SHA256, Verified: n.stats.SHA256 == r.ImageSHA256,
			SentBytes:     ph.after[i+1].Sent - ph.before[i+1].Sent,
			ReceivedBytes: ph.after[i+1].Received - ph.before[i+1].Received,
			UploadedBytes: n.stats.Uploaded, CPUS: round(n.stats.CPUSeconds), Detail: n.stats.Detail,
		}
		for k, d := range n.deciles {
			nr.DecilesS[k] = round(d.Seconds())
		}
		pr.NodeCPUS = round(pr.NodeCPUS + nr.CPUS)
		pr.Nodes = append(pr.Nodes, nr)
	}
	pr.OtherCPUS = round(max(0, pr.HostCPUBusyS-pr.HostSoftIRQS-pr.NodeCPUS-pr.SeedCPUS))
	switch m {
	case MethodHTTP:
		r.HTTP, r.HTTPS = pr, pr.Seconds
	case MethodSwarm:
		r.Swarm, r.SwarmS = pr, pr.Seconds
		r.WebSeedBytes = ph.seedStats.WebSeedBytes
		if ph.seedReady.PieceLength > 0 {
			r.PieceLength, r.Pieces = ph.seedReady.PieceLength, ph.seedReady.Pieces
			r.setBound(r.PieceLength)
		}
	}
}

// finish computes the ratios once every phase is in.
func (r *Report) finish() {
	r.AllVerified = true
	for _, p := range []*PhaseReport{r.HTTP, r.Swarm} {
		if p == nil {
			continue
		}
		for _, n := range p.Nodes {
			r.AllVerified = r.AllVerified && n.Verified
		}
	}
	s := float64(r.SizeBytes)
	if r.HTTP != nil {
		r.HTTPEta = round(r.HTTPLowerBoundS / r.HTTPS)
	}
	if r.Swarm != nil {
		r.Eta = round(r.LowerBoundS / r.SwarmS)
		r.SeedEgressRatio = round(float64(r.Swarm.SeedSentBytes) / s)
		r.SeedUploadRatio = round(float64(r.Swarm.SeedPayloadBytes) / s)
	}
	if r.HTTP != nil && r.Swarm != nil {
		r.SpeedupVsHTTP = round(r.HTTPS / r.SwarmS)
	}
}

// Unverified names the nodes whose copies are wrong, as an error.
func (r *Report) Unverified() error {
	for _, p := range []struct {
		m  string
		ph *PhaseReport
	}{{MethodHTTP, r.HTTP}, {MethodSwarm, r.Swarm}} {
		if p.ph == nil {
			continue
		}
		for _, n := range p.ph.Nodes {
			if !n.Verified {
				return fmt.Errorf("swarmbench: %s: node %d's copy has SHA-256 %q (%d bytes), want %s (%d bytes); its log is under the run's logs directory", p.m, n.Node, n.SHA256, n.Bytes, r.ImageSHA256, r.SizeBytes)
			}
		}
	}
	return nil
}

func round(x float64) float64 { return math.Round(x*1000) / 1000 }

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
