package report

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// TopGroups is how many groups an allocation plot shows on their own; the
// rest are summed as "other".
const TopGroups = 6

// WritePlots writes the SVG plots of s into dir (which must exist):
// utilization.svg, wait-cdf.svg, allocation-<run>.svg for every run with a
// timeline, and frontier.svg when some runs come from a sweep. It returns
// the files written.
func WritePlots(dir string, s *Summary) ([]string, error) {
	var files []string
	put := func(name string, svg []byte, err error) error {
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		path := filepath.Join(dir, name)
		if err := WriteFile(path, func(w io.Writer) error { _, err := w.Write(svg); return err }); err != nil {
			return err
		}
		files = append(files, path)
		return nil
	}
	svg, err := UtilizationSVG(s.Runs, s.Capacity)
	if err := put("utilization.svg", svg, err); err != nil {
		return files, err
	}
	svg, err = WaitCDFSVG(s.Runs)
	if err := put("wait-cdf.svg", svg, err); err != nil {
		return files, err
	}
	for _, r := range s.Runs {
		if r.Series == nil {
			continue
		}
		svg, err := AllocationSVG(r, TopGroups)
		if err := put("allocation-"+FileName(r.Name)+".svg", svg, err); err != nil {
			return files, err
		}
	}
	if slices.ContainsFunc(s.Runs, func(r Run) bool { return r.Knob != "" }) {
		svg, err := FrontierSVG(s.Runs)
		if err := put("frontier.svg", svg, err); err != nil {
			return files, err
		}
	}
	return files, nil
}

// palette is Tableau 10: ten colors that stay apart on screen and paper,
// enough for the five presets plus a sweep.
var palette = []color.Color{
	color.RGBA{0x4e, 0x79, 0xa7, 0xff}, color.RGBA{0xf2, 0x8e, 0x2b, 0xff},
	color.RGBA{0xe1, 0x57, 0x59, 0xff}, color.RGBA{0x76, 0xb7, 0xb2, 0xff},
	color.RGBA{0x59, 0xa1, 0x4f, 0xff}, color.RGBA{0xed, 0xc9, 0x48, 0xff},
	color.RGBA{0xb0, 0x7a, 0xa1, 0xff}, color.RGBA{0xff, 0x9d, 0xa7, 0xff},
	color.RGBA{0x9c, 0x75, 0x5f, 0xff}, color.RGBA{0xba, 0xb0, 0xac, 0xff},
}

func colorOf(i int) color.Color { return palette[i%len(palette)] }

// style gives run i a color and, past the palette, a dash pattern, so
// that sweeps with many rows stay tellable apart.
func style(i int) draw.LineStyle {
	return draw.LineStyle{Color: colorOf(i), Width: vg.Points(1.2), Dashes: plotutil.Dashes(i / len(palette))}
}

// timeAxis picks hours or days for a span, whichever gives readable ticks.
func timeAxis(span time.Duration) (float64, string) {
	if span < 3*24*time.Hour {
		return 3600, "time since first submission (hours)"
	}
	return 86400, "time since first submission (days)"
}

func render(width, height vg.Length, paint func(dc draw.Canvas)) ([]byte, error) {
	c := vgsvg.New(width, height)
	paint(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func one(p *plot.Plot, width, height vg.Length) ([]byte, error) {
	return render(width, height, func(dc draw.Canvas) { p.Draw(dc) })
}

// tiled draws a grid of plots with aligned data areas; nil cells stay empty.
func tiled(grid [][]*plot.Plot, width, height vg.Length) ([]byte, error) {
	t := draw.Tiles{Rows: len(grid), Cols: len(grid[0]), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	return render(width, height, func(dc draw.Canvas) {
		cs := plot.Align(grid, t, dc)
		for j, row := range grid {
			for i, p := range row {
				if p != nil {
					p.Draw(cs[j][i])
				}
			}
		}
	})
}

// smoothing is the fraction of the samples a utilization point averages:
// raw samples of a long trace swing between 0 and 1 too fast to compare.
const smoothing = 60

// UtilizationSVG plots local cores in use as a fraction of capacity over
// time, one line per run that has a timeline, each point the mean of the
// samples in a window of 1/60 of the span around it.
func UtilizationSVG(runs []Run, capacity int64) ([]byte, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Local utilization (C = %d cores)", capacity)
	// Headroom above 1 keeps the legend off the lines.
	p.Y.Min, p.Y.Max = 0, 1.45
	p.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 0.25}, {Value: 0.5, Label: "0.5"}, {Value: 0.75}, {Value: 1, Label: "1"}})
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	var span time.Duration
	for _, r := range runs {
		if r.Series != nil && len(r.Series.T) > 0 {
			span = max(span, r.Series.T[len(r.Series.T)-1])
		}
	}
	unit, label := timeAxis(span)
	p.X.Label.Text = label
	p.Y.Label.Text = "cores used / C"
	for i, r := range runs {
		if r.Series == nil {
			continue
		}
		n := len(r.Series.T)
		half := n / smoothing / 2
		if half > 0 && i == 0 {
			p.Y.Label.Text = fmt.Sprintf("cores used / C (mean over %s)", Duration(float64(2*half+1)*span.Seconds()/float64(n)))
		}
		xys := make(plotter.XYs, n)
		for k, t := range r.Series.T {
			lo, hi := max(0, k-half), min(n, k+half+1)
			var sum float64
			for _, u := range r.Series.Used[lo:hi] {
				sum += u
			}
			xys[k] = plotter.XY{X: t.Seconds() / unit, Y: sum / float64(hi-lo) / float64(capacity)}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.LineStyle = style(i)
		p.Add(l)
		p.Legend.Add(r.Name, l)
	}
	return one(p, 9*vg.Inch, 4.5*vg.Inch)
}

// groupWork ranks groups by the work they submitted (cores × run time),
// the same for every policy, so that every allocation plot shows the same
// groups; without rows it falls back to the cores each group held.
func groupWork(r Run) []string {
	work := map[string]float64{}
	if len(r.Rows) > 0 {
		for _, row := range r.Rows {
			work[row.Group] += float64(row.Cores) * row.Runtime.Seconds()
		}
	} else {
		for g, held := range r.Series.Held {
			for _, h := range held {
				work[g] += h
			}
		}
	}
	groups := make([]string, 0, len(work))
	for g := range work {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		if work[groups[i]] != work[groups[j]] {
			return work[groups[i]] > work[groups[j]]
		}
		return groups[i] < groups[j]
	})
	return groups
}

// AllocationSVG plots, for the top groups by work and the rest summed as
// "other", the cores each held against its max-min fair target over time:
// one panel per group, so that the gap between the lines is the unfairness.
func AllocationSVG(r Run, top int) ([]byte, error) {
	s := r.Series
	if s == nil || len(s.T) == 0 {
		return nil, fmt.Errorf("run %s has no timeline", r.Name)
	}
	groups := groupWork(r)
	shown := groups[:min(top, len(groups))]
	rest := groups[len(shown):]
	unit, label := timeAxis(s.T[len(s.T)-1])
	sum := func(m map[string][]float64, gs []string) []float64 {
		out := make([]float64, len(s.T))
		for _, g := range gs {
			for k, v := range m[g] {
				out[k] += v
			}
		}
		return out
	}
	type panel struct {
		name         string
		held, target []float64
	}
	var panels []panel
	for _, g := range shown {
		panels = append(panels, panel{g, s.Held[g], s.Target[g]})
	}
	if len(rest) > 0 {
		panels = append(panels, panel{fmt.Sprintf("other (%d groups)", len(rest)), sum(s.Held, rest), sum(s.Target, rest)})
	}
	cols := 2
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for j := range grid {
		grid[j] = make([]*plot.Plot, cols)
	}
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.name
		if i == 0 {
			p.Title.Text = r.Name + ": " + pn.name
		}
		p.X.Label.Text = label
		p.Y.Label.Text = "cores"
		p.Y.Min = 0
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		for k, line := range []struct {
			name string
			ys   []float64
		}{{"held", pn.held}, {"target", pn.target}} {
			xys := make(plotter.XYs, len(s.T))
			for n, t := range s.T {
				y := 0.0
				if n < len(line.ys) {
					y = line.ys[n]
				}
				xys[n] = plotter.XY{X: t.Seconds() / unit, Y: y}
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return nil, err
			}
			l.LineStyle = draw.LineStyle{Color: colorOf(2 * k), Width: vg.Points(1)}
			if line.name == "target" {
				l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
			}
			p.Add(l)
			p.Legend.Add(line.name, l)
		}
		grid[i/cols][i%cols] = p
	}
	return tiled(grid, 11*vg.Inch, vg.Length(rows)*2.8*vg.Inch)
}

// cdfPoints is the most points one CDF line keeps; more only bloat the SVG.
const cdfPoints = 400

// minWait is where zero waits sit on the log axis.
const minWait = 1.0

// WaitCDFSVG plots, per run, the fraction of started leases that waited at
// most x, on a log time axis (waits under a second are drawn at 1 s).
func WaitCDFSVG(runs []Run) ([]byte, error) {
	p := plot.New()
	p.Title.Text = "Wait (start − submit) of started leases"
	p.X.Label.Text = "wait (log scale; under 1s drawn at 1s)"
	p.Y.Label.Text = "fraction of started leases"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.TickerFunc(durationTicks)
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top = true
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	hi := 10.0
	for i, r := range runs {
		var waits []float64
		for _, row := range r.Rows {
			if row.Start >= 0 {
				waits = append(waits, max((row.Start-row.Submit).Seconds(), minWait))
			}
		}
		if len(waits) == 0 {
			continue
		}
		slices.Sort(waits)
		hi = max(hi, waits[len(waits)-1])
		n := len(waits)
		step := max(1, n/cdfPoints)
		var xys plotter.XYs
		// Each point is the last index of its wait value, so that ties
		// (many zero waits) jump at once as a CDF does.
		for k := 0; k < n; k += step {
			j := sort.SearchFloat64s(waits, math.Nextafter(waits[k], math.Inf(1))) - 1
			xys = append(xys, plotter.XY{X: waits[j], Y: float64(j+1) / float64(n)})
		}
		xys = append(xys, plotter.XY{X: waits[n-1], Y: 1})
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.LineStyle = style(i)
		p.Add(l)
		p.Legend.Add(r.Name, l)
	}
	p.X.Min, p.X.Max = minWait, hi*1.2
	return one(p, 8*vg.Inch, 4.5*vg.Inch)
}

// durationTicks marks a log axis of seconds at times people think in.
func durationTicks(lo, hi float64) []plot.Tick {
	marks := []float64{1, 10, 60, 600, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400}
	var ticks []plot.Tick
	for _, m := range marks {
		if m >= lo && m <= hi {
			ticks = append(ticks, plot.Tick{Value: m, Label: Duration(m)})
		}
	}
	return ticks
}

// FrontierSVG plots the trade-off a sweep explores: utilization against
// in_share_late (left) and against Jain's index (right). The sweep's
// points are joined in the order given and labeled with the knob's value;
// every other run is a separate labeled point.
func FrontierSVG(runs []Run) ([]byte, error) {
	var sweep, base []Run
	knob := ""
	for _, r := range runs {
		if r.Knob != "" {
			sweep = append(sweep, r)
			knob = r.Knob
		} else {
			base = append(base, r)
		}
	}
	panel := func(title, ylabel string, y func(Run) float64) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		if len(sweep) > 0 {
			p.Title.Text += fmt.Sprintf(": %s by %s (labels) and baselines", sweep[0].Preset, knob)
		}
		p.X.Label.Text = "utilization"
		p.Y.Label.Text = ylabel
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		if len(sweep) > 0 {
			xys := make(plotter.XYs, len(sweep))
			labels := make([]string, len(sweep))
			for i, r := range sweep {
				xys[i] = plotter.XY{X: r.Report.Utilization, Y: y(r)}
				labels[i] = r.Value
			}
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			l.LineStyle = draw.LineStyle{Color: colorOf(0), Width: vg.Points(1.2)}
			pts.GlyphStyle = draw.GlyphStyle{Color: colorOf(0), Radius: vg.Points(3), Shape: draw.CircleGlyph{}}
			lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
			if err != nil {
				return nil, err
			}
			lb.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(3)}
			p.Add(l, pts, lb)
		}
		// Baselines that land on the same point (fcfs and easy often do)
		// share one label rather than overprinting each other.
		type spot struct{ x, y float64 }
		names := map[spot][]string{}
		var spots []spot
		for _, r := range base {
			at := spot{math.Round(r.Report.Utilization * 1e3), math.Round(y(r) * 1e3)}
			if names[at] == nil {
				spots = append(spots, at)
			}
			names[at] = append(names[at], r.Name)
		}
		for i, at := range spots {
			xy := plotter.XYs{{X: at.x / 1e3, Y: at.y / 1e3}}
			sc, err := plotter.NewScatter(xy)
			if err != nil {
				return nil, err
			}
			c := colorOf(i + 1)
			sc.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(3.5), Shape: plotutil.Shape(i + 1)}
			lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xy, Labels: []string{strings.Join(names[at], ", ")}})
			if err != nil {
				return nil, err
			}
			lb.Offset = vg.Point{X: vg.Points(5), Y: vg.Points(-3)}
			lb.TextStyle[0].Color = darker(c)
			p.Add(sc, lb)
		}
		pad(p)
		return p, nil
	}
	late, err := panel("in_share_late", "in_share_late (lower is better)", func(r Run) float64 { return r.Report.InShareLate })
	if err != nil {
		return nil, err
	}
	jain, err := panel("jain", "Jain's index (higher is better)", func(r Run) float64 { return r.Report.Jain })
	if err != nil {
		return nil, err
	}
	return tiled([][]*plot.Plot{{late, jain}}, 13*vg.Inch, 5.5*vg.Inch)
}

// pad widens the axes a little so that labels at the extremes stay inside.
func pad(p *plot.Plot) {
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		d := ax.Max - ax.Min
		if d <= 0 {
			d = math.Max(math.Abs(ax.Max)*0.1, 0.05)
		}
		ax.Min -= d * 0.08
		ax.Max += d * 0.15
	}
}

func darker(c color.Color) color.Color {
	r, g, b, a := c.RGBA()
	return color.RGBA64{R: uint16(r * 3 / 5), G: uint16(g * 3 / 5), B: uint16(b * 3 / 5), A: uint16(a)}
}
