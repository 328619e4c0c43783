// Package report renders the outcome of a simulated policy comparison for
// people and programs: the header and table the CLI prints, the JSON
// document of the contract (DESIGN.md §5), and SVG plots. It only formats;
// running the simulation is package sim's job.
package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/fairlease/fairlease/policies"
	"github.com/fairlease/fairlease/sim/metrics"
	"github.com/fairlease/fairlease/sim/netmodel"
)

// Run is one row of a comparison: a policy run and its metrics.
type Run struct {
	// Name labels the row: "easy", or "fairlease reserve=0.2" in a sweep.
	Name string
	// Preset is the fairshare policy that ran.
	Preset string
	// Knob and Value are the policy knob a sweep set for this run; empty
	// for the baselines.
	Knob, Value string
	Report      metrics.Report
	Wall        time.Duration
	// Rows and Series feed the plots; either may be nil.
	Rows   []metrics.Row
	Series *metrics.Series
}

// Summary is a whole comparison: the workload, the site and the runs.
type Summary struct {
	Trace    string // trace file base name, or the generated trace's name
	Format   string
	Scenario string // synthetic scenario name; empty for a trace file
	Seed     int64  // the scenario's seed
	Requests int
	Records  int
	Skipped  map[string]int // reason -> records not turned into requests
	Clamped  int
	Site     string // how the site was chosen, from sim.SiteFor
	Capacity int64  // C in cores
	Span     time.Duration
	Start    time.Time // the trace's absolute start; zero if unknown
	Policy   string    // site policy name
	Grace    time.Duration
	Patience time.Duration
	Notice   string
	// Wall is the whole command's wall time: reading, every run, metrics.
	Wall time.Duration
	Runs []Run
	// Images is the image-distribution model of the burst, for scenarios
	// that have one; nil otherwise.
	Images *netmodel.Result
}

// WriteHeader writes what was simulated, one fact a line. jsonFile names
// where the full notice went, if anywhere; a long notice is cut to its
// first line here.
func (s *Summary) WriteHeader(w io.Writer, jsonFile string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	name := s.Trace
	switch {
	case s.Scenario != "":
		name = fmt.Sprintf("scenario %s (seed %d)", s.Scenario, s.Seed)
	case s.Format != "":
		name = fmt.Sprintf("%s (%s)", s.Trace, s.Format)
	}
	fmt.Fprintf(tw, "trace\t%s\n", name)
	reqs := humanize.Comma(int64(s.Requests))
	if s.Records > 0 && s.Records != s.Requests {
		reqs += " (from " + humanize.Comma(int64(s.Records)) + " records)"
	}
	fmt.Fprintf(tw, "requests\t%s\n", reqs)
	if sk := s.skipped(); sk != "" {
		fmt.Fprintf(tw, "skipped\t%s\n", sk)
	}
	fmt.Fprintf(tw, "site\t%s; C = %s cores\n", s.Site, humanize.Comma(s.Capacity))
	span := Duration(s.Span.Seconds())
	if !s.Start.IsZero() {
		span += " from " + s.Start.UTC().Format("2006-01-02")
	}
	fmt.Fprintf(tw, "span\t%s\n", span)
	fmt.Fprintf(tw, "policy\t%s; patience %s; grace %s\n", s.Policy, policies.FormatDuration(s.Patience), policies.FormatDuration(s.Grace))
	if n := strings.TrimSpace(s.Notice); n != "" {
		first, _, more := strings.Cut(n, "\n")
		switch {
		case !more:
		case jsonFile != "":
			first += " … (full notice in " + jsonFile + ")"
		default:
			first += " … (full notice: see --json)"
		}
		fmt.Fprintf(tw, "notice\t%s\n", first)
	}
	return tw.Flush()
}

// skipped says how many records did not become requests, and why, largest
// reason first.
func (s *Summary) skipped() string {
	var total int
	for _, n := range s.Skipped {
		total += n
	}
	var parts []string
	if total > 0 {
		reasons := slices.SortedFunc(maps.Keys(s.Skipped), func(a, b string) int {
			if s.Skipped[a] != s.Skipped[b] {
				return s.Skipped[b] - s.Skipped[a]
			}
			return strings.Compare(a, b)
		})
		var each []string
		for _, r := range reasons {
			if s.Skipped[r] > 0 {
				each = append(each, fmt.Sprintf("%s %s", humanize.Comma(int64(s.Skipped[r])), r))
			}
		}
		parts = append(parts, fmt.Sprintf("%s records (%s)", humanize.Comma(int64(total)), strings.Join(each, ", ")))
	}
	if s.Clamped > 0 {
		parts = append(parts, fmt.Sprintf("%s run times cut to the requested time", humanize.Comma(int64(s.Clamped))))
	}
	return strings.Join(parts, "; ")
}

// Columns are the table's column names, in order.
var Columns = []string{
	"policy", "utilization", "share_deviation", "jain", "in_share_late",
	"wait_p50", "wait_p95", "wait_p99",
	"granted_now", "deferred", "overflowed", "rejected", "unplaceable",
}

// WriteTable writes one row per run, in the order given.
func WriteTable(w io.Writer, runs []Run) error {
	// Right-aligned numbers read best; names are padded so that they stay
	// left-aligned under AlignRight.
	width := len(Columns[0])
	for _, r := range runs {
		width = max(width, len(r.Name))
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) {
		cells[0] = fmt.Sprintf("%-*s", width, cells[0])
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	row(slices.Clone(Columns)...)
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) }
	for _, r := range runs {
		m := r.Report
		row(r.Name, f(m.Utilization), f(m.ShareDeviation), f(m.Jain), f(m.InShareLate),
			Duration(m.WaitP50), Duration(m.WaitP95), Duration(m.WaitP99),
			f(m.GrantedNow), f(m.Deferred), f(m.Overflowed), f(m.Rejected), strconv.Itoa(m.Unplaceable))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// AlignRight pads the first column on the left too; drop that margin.
	for line := range strings.Lines(buf.String()) {
		if _, err := io.WriteString(w, strings.TrimPrefix(line, "  ")); err != nil {
			return err
		}
	}
	return nil
}

// Duration formats seconds the way people read waits: "0s", "45s",
// "1.5m", "12m", "3.4h", "2.1d"; one decimal below ten units.
func Duration(sec float64) string {
	switch {
	case math.IsNaN(sec) || math.IsInf(sec, 0):
		return "-"
	case sec < 0:
		return "-" + Duration(-sec)
	// Each bound is where the smaller unit would round up to the next one.
	case sec < 59.5:
		return strconv.FormatFloat(math.Round(sec), 'f', 0, 64) + "s"
	case sec < 59.5*60:
		return unit(sec/60, "m")
	case sec < 23.5*3600:
		return unit(sec/3600, "h")
	}
	return unit(sec/86400, "d")
}

func unit(v float64, u string) string {
	if v < 9.95 {
		return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + u
	}
	return strconv.FormatFloat(math.Round(v), 'f', 0, 64) + u
}

// document is the JSON of the contract: top-level facts and one object per
// run holding every metrics.Report field under its own name.
type document struct {
	Trace           string         `json:"trace"`
	Format          string         `json:"format,omitempty"`
	Scenario        string         `json:"scenario,omitempty"`
	Seed            *int64         `json:"seed,omitempty"`
	Requests        int            `json:"requests"`
	Records         int            `json:"records"`
	Skipped         map[string]int `json:"skipped"`
	Clamped         int            `json:"clamped"`
	Site            string         `json:"site"`
	Capacity        int64          `json:"capacity"`
	SpanSeconds     float64        `json:"span_seconds"`
	Policy          string         `json:"policy"`
	GraceSeconds    float64        `json:"grace_seconds"`
	PatienceSeconds float64        `json:"patience_seconds"`
	Notice          string         `json:"notice,omitempty"`
	WallSeconds     float64        `json:"wall_seconds"`
	Policies        []policyJSON   `json:"policies"`
	Images          *imagesJSON    `json:"images,omitempty"`
}

type policyJSON struct {
	Name   string `json:"name"`
	Preset string `json:"preset"`
	Knob   string `json:"knob,omitempty"`
	Value  string `json:"value,omitempty"`
	metrics.Report
	WallSeconds float64 `json:"wall_seconds"`
}

// JSON returns the document of the contract, indented, with a final newline.
func (s *Summary) JSON() ([]byte, error) {
	d := document{
		Trace: s.Trace, Format: s.Format, Scenario: s.Scenario,
		Requests: s.Requests, Records: s.Records, Skipped: s.Skipped, Clamped: s.Clamped,
		Site: s.Site, Capacity: s.Capacity, SpanSeconds: s.Span.Seconds(),
		Policy: s.Policy, GraceSeconds: s.Grace.Seconds(), PatienceSeconds: s.Patience.Seconds(),
		Notice: s.Notice, WallSeconds: s.Wall.Seconds(),
		Policies: make([]policyJSON, 0, len(s.Runs)),
		Images:   imagesDoc(s.Images),
	}
	if d.Skipped == nil {
		d.Skipped = map[string]int{}
	}
	if s.Scenario != "" {
		d.Seed = &s.Seed
	}
	for _, r := range s.Runs {
		d.Policies = append(d.Policies, policyJSON{
			Name: r.Name, Preset: r.Preset, Knob: r.Knob, Value: r.Value,
			Report: r.Report, WallSeconds: r.Wall.Seconds(),
		})
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("report: encode JSON: %w", err)
	}
	return append(b, '\n'), nil
}

// FileName turns a run name into a file name: "fairlease reserve=0.2"
// becomes "fairlease_reserve=0.2", so that sweep rows can name their
// schedules and plots.
func FileName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '.', r == '-', r == '=', r == '+':
			return r
		}
		return '_'
	}, name)
}
