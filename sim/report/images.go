package report

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/dustin/go-humanize"

	"github.com/fairlease/fairlease/sim/netmodel"
)

// strategyLabels name the image strategies for people.
var strategyLabels = map[string]string{
	netmodel.Central: "central server, no cache",
	netmodel.Cached:  "node cache + copy-on-write",
	netmodel.Swarm:   "swarm among node caches",
}

// WriteImages writes the image-distribution figures: what was modelled,
// one row per strategy, and the server brute force would need.
func WriteImages(w io.Writer, r *netmodel.Result) error {
	c := r.Config
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "images\t%s VMs on %d nodes × %d cores; %s image; server %s, node links %s down, %s up; %s efficiency\n",
		humanize.Comma(int64(c.VMs)), c.Nodes, c.CoresPerNode, netmodel.FormatSize(float64(c.ImageBytes)),
		netmodel.FormatRate(c.ServerRate), netmodel.FormatRate(c.NodeDown), netmodel.FormatRate(c.NodeUp), percent(c.Efficiency))
	fmt.Fprintf(tw, "one copy\t%s (%s at %s of %s)\n", Elapsed(r.Transfer), netmodel.FormatSize(float64(c.ImageBytes)),
		percent(c.Efficiency), netmodel.FormatRate(min(c.ServerRate, c.NodeDown)))
	fmt.Fprintf(tw, "swarm\tassumed: η = %s of the lower bound's speed (DESIGN.md §7); the server sends %s images; %s pieces\n",
		strconv.FormatFloat(c.SwarmEfficiency, 'f', -1, 64), strconv.FormatFloat(c.SeedRatio, 'f', -1, 64), humanize.IBytes(uint64(c.PieceBytes)))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)

	width := len("strategy")
	for _, s := range r.Strategies {
		width = max(width, len(label(s.Name)))
	}
	// Right-aligned numbers, left-aligned names, as in WriteTable.
	var buf bytes.Buffer
	tw = tabwriter.NewWriter(&buf, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\ttransfers\tserver sent\tall ready\t\n", width, "strategy")
	for _, s := range r.Strategies {
		fmt.Fprintf(tw, "%-*s\t%s\t%s\t%s\t\n", width, label(s.Name), humanize.Comma(int64(s.Transfers)),
			netmodel.FormatSize(float64(s.ServerBytes)), Elapsed(s.AllReady))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(buf.String()) {
		io.WriteString(w, strings.TrimPrefix(line, "  "))
	}
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "caching\t%s× fewer transfers than no cache\n", strconv.FormatFloat(r.TransferReduction(), 'f', -1, 64))
	fmt.Fprintf(tw, "brute force\t%s\n", bruteForce(r.BruteForce, c))
	return tw.Flush()
}

// bruteForce says what server central copies need to start one VM per
// core as soon as node caches start the whole burst.
func bruteForce(b netmodel.BruteForce, c netmodel.Config) string {
	head := fmt.Sprintf("%s copies (a VM on every core) ready in %s, as soon as with node caches: ", humanize.Comma(int64(b.Copies)), Elapsed(b.Within))
	if b.ServerRate == 0 {
		return head + fmt.Sprintf("no server suffices, the busiest node's %s link needs %s",
			netmodel.FormatRate(c.NodeDown), Elapsed(b.NodeBound))
	}
	link := "faster than any standard link"
	if b.Standard > 0 {
		link = "next standard link " + netmodel.FormatRate(b.Standard)
	}
	return head + fmt.Sprintf("server of %s (%s)", netmodel.FormatRate(b.ServerRate), link)
}

func label(name string) string {
	if l, ok := strategyLabels[name]; ok {
		return l
	}
	return name
}

func percent(f float64) string {
	return strconv.FormatFloat(100*f, 'f', -1, 64) + " %"
}

// Elapsed formats seconds as people say how long something took, to two
// units: "28h 27m", "26m 40s", "1m 40s", "45s", "4.2s", "120ms"; days
// from 100 hours on: "5d 2h".
func Elapsed(sec float64) string {
	switch {
	case math.IsNaN(sec) || math.IsInf(sec, 0):
		return "-"
	case sec < 0:
		return "-" + Elapsed(-sec)
	case sec < 0.9995:
		return strconv.FormatFloat(sec*1000, 'f', 0, 64) + "ms"
	case sec < 9.95:
		return strings.TrimSuffix(strconv.FormatFloat(sec, 'f', 1, 64), ".0") + "s"
	}
	// Round to the smaller unit shown, then split, so that 59m 59.6s
	// reads 1h 0m and not 59m 60s.
	pair := func(v float64, big, small int64, bu, su string) string {
		n := int64(math.Round(v / float64(small)))
		hi, lo := n/(big/small), n%(big/small)
		if hi == 0 {
			return fmt.Sprintf("%d%s", lo, su)
		}
		return fmt.Sprintf("%d%s %d%s", hi, bu, lo, su)
	}
	switch {
	case sec < 59.5:
		return fmt.Sprintf("%.0fs", sec)
	case sec < 3600-30:
		return pair(sec, 60, 1, "m", "s")
	case sec < 100*3600-1800:
		return pair(sec, 3600, 60, "h", "m")
	}
	return pair(sec, 86400, 3600, "d", "h")
}

// imagesJSON is the image model under "images" in the JSON document.
type imagesJSON struct {
	ImageBytes        int64          `json:"image_bytes"`
	ServerBitsPerSec  float64        `json:"server_bits_per_second"`
	NodeDownBitsPerS  float64        `json:"node_down_bits_per_second"`
	NodeUpBitsPerSec  float64        `json:"node_up_bits_per_second"`
	Efficiency        float64        `json:"efficiency"`
	Nodes             int            `json:"nodes"`
	VMs               int            `json:"vms"`
	CoresPerNode      int            `json:"cores_per_node"`
	SwarmEfficiency   float64        `json:"swarm_efficiency"`
	SeedRatio         float64        `json:"seed_ratio"`
	PieceBytes        int64          `json:"piece_bytes"`
	TransferSeconds   float64        `json:"transfer_seconds"`
	TransferReduction float64        `json:"transfer_reduction"`
	Strategies        []strategyJSON `json:"strategies"`
	BruteForce        bruteForceJSON `json:"brute_force"`
}

type strategyJSON struct {
	Name            string  `json:"name"`
	Label           string  `json:"label"`
	Transfers       int     `json:"transfers"`
	ServerBytes     int64   `json:"server_bytes"`
	AllReadySeconds float64 `json:"all_ready_seconds"`
}

// bruteForceJSON holds null rates when no server suffices.
type bruteForceJSON struct {
	Copies           int      `json:"copies"`
	WithinSeconds    float64  `json:"within_seconds"`
	NodeSeconds      float64  `json:"node_seconds"`
	ServerBitsPerSec *float64 `json:"server_bits_per_second"`
	StandardBitsPerS *float64 `json:"standard_bits_per_second"`
}

func imagesDoc(r *netmodel.Result) *imagesJSON {
	if r == nil {
		return nil
	}
	c := r.Config
	d := &imagesJSON{
		ImageBytes: c.ImageBytes, ServerBitsPerSec: c.ServerRate, NodeDownBitsPerS: c.NodeDown, NodeUpBitsPerSec: c.NodeUp,
		Efficiency: c.Efficiency, Nodes: c.Nodes, VMs: c.VMs, CoresPerNode: c.CoresPerNode,
		SwarmEfficiency: c.SwarmEfficiency, SeedRatio: c.SeedRatio, PieceBytes: c.PieceBytes,
		TransferSeconds: r.Transfer, TransferReduction: r.TransferReduction(),
		Strategies: make([]strategyJSON, 0, len(r.Strategies)),
		BruteForce: bruteForceJSON{Copies: r.BruteForce.Copies, WithinSeconds: r.BruteForce.Within, NodeSeconds: r.BruteForce.NodeBound},
	}
	for _, s := range r.Strategies {
		d.Strategies = append(d.Strategies, strategyJSON{
			Name: s.Name, Label: label(s.Name), Transfers: s.Transfers, ServerBytes: s.ServerBytes, AllReadySeconds: s.AllReady,
		})
	}
	if b := r.BruteForce; b.ServerRate > 0 {
		d.BruteForce.ServerBitsPerSec = &b.ServerRate
		if b.Standard > 0 {
			d.BruteForce.StandardBitsPerS = &b.Standard
		}
	}
	return d
}
