package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/sim/metrics"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		sec  float64
		want string
	}{
		{0, "0s"}, {0.4, "0s"}, {45, "45s"}, {59.4, "59s"}, {59.6, "1m"}, {60, "1m"}, {90, "1.5m"},
		{720, "12m"}, {3569, "59m"}, {3599, "1h"}, {3600, "1h"}, {12240, "3.4h"}, {36000, "10h"}, {84000, "23h"}, {85000, "1d"},
		{86400, "1d"}, {129600, "1.5d"}, {63072000, "730d"}, {-90, "-1.5m"},
	}
	for _, tt := range tests {
		if got := Duration(tt.sec); got != tt.want {
			t.Errorf("Duration(%v) = %q, want %q", tt.sec, got, tt.want)
		}
	}
}

func TestFileName(t *testing.T) {
	tests := map[string]string{
		"easy":                    "easy",
		"fairlease reserve=0.2":   "fairlease_reserve=0.2",
		"fairlease half_life=7d":  "fairlease_half_life=7d",
		"fairlease name=a/b\\c:d": "fairlease_name=a_b_c_d",
	}
	for in, want := range tests {
		if got := FileName(in); got != want {
			t.Errorf("FileName(%q) = %q, want %q", in, got, want)
		}
	}
}

func sample() *Summary {
	return &Summary{
		Trace: "t.swf", Format: "swf", Requests: 3, Records: 4,
		Skipped: map[string]int{"no run time": 1}, Site: "2 hosts × 4 cores", Capacity: 8,
		Span: 3 * time.Hour, Policy: "default", Grace: time.Hour, Patience: 24 * time.Hour,
		Notice: "Copyright: someone\n  more terms", Wall: 1500 * time.Millisecond,
		Runs: []Run{
			{Name: "easy", Preset: "easy", Wall: time.Second, Report: metrics.Report{Utilization: 0.5, Jain: 1, WaitP95: 720, GrantedNow: 1}},
			{Name: "fairlease reserve=0.2", Preset: "fairlease", Knob: "reserve", Value: "0.2", Report: metrics.Report{Utilization: 0.25, WaitP99: 12240, Deferred: 1}},
		},
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sample().Runs); err != nil {
		t.Fatal(err)
	}
	want := `policy                 utilization  share_deviation   jain  in_share_late  wait_p50  wait_p95  wait_p99  granted_now  deferred  overflowed  rejected  unplaceable
easy                         0.500            0.000  1.000          0.000        0s       12m        0s        1.000     0.000       0.000     0.000            0
fairlease reserve=0.2        0.250            0.000  0.000          0.000        0s        0s      3.4h        0.000     1.000       0.000     0.000            0
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

func TestWriteHeader(t *testing.T) {
	tests := []struct {
		name     string
		jsonFile string
		want     string
	}{
		{"no json", "", "notice    Copyright: someone … (full notice: see --json)\n"},
		{"json", "out.json", "notice    Copyright: someone … (full notice in out.json)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := sample().WriteHeader(&b, tt.jsonFile); err != nil {
				t.Fatal(err)
			}
			want := "trace     t.swf (swf)\n" +
				"requests  3 (from 4 records)\n" +
				"skipped   1 records (1 no run time)\n" +
				"site      2 hosts × 4 cores; C = 8 cores\n" +
				"span      3h\n" +
				"policy    default; patience 1d; grace 1h\n" + tt.want
			if diff := cmp.Diff(want, b.String()); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	b, err := sample().JSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Trace       string           `json:"trace"`
		Requests    int              `json:"requests"`
		Capacity    int64            `json:"capacity"`
		WallSeconds float64          `json:"wall_seconds"`
		Notice      string           `json:"notice"`
		Policies    []map[string]any `json:"policies"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Trace != "t.swf" || doc.Requests != 3 || doc.Capacity != 8 || doc.WallSeconds != 1.5 || !strings.Contains(doc.Notice, "more terms") {
		t.Errorf("document = %+v", doc)
	}
	// Every metric of the contract, under its json name, flat in the run.
	var rep map[string]any
	rb, _ := json.Marshal(metrics.Report{})
	json.Unmarshal(rb, &rep)
	for _, p := range doc.Policies {
		for k := range rep {
			if _, ok := p[k]; !ok {
				t.Errorf("policy %v lacks %q", p["name"], k)
			}
		}
	}
	got := []any{doc.Policies[0]["name"], doc.Policies[0]["wall_seconds"], doc.Policies[1]["knob"], doc.Policies[1]["value"], doc.Policies[1]["utilization"]}
	if diff := cmp.Diff([]any{"easy", 1.0, "reserve", "0.2", 0.25}, got); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.json")
	if err := WriteFile(path, func(w io.Writer) error { _, err := io.WriteString(w, "old"); return err }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFile(path, func(w io.Writer) error { io.WriteString(w, "half"); return boom })
	if !errors.Is(err, boom) {
		t.Errorf("WriteFile error = %v, want %v", err, boom)
	}
	b, _ := os.ReadFile(path)
	entries, _ := os.ReadDir(dir)
	if string(b) != "old" || len(entries) != 1 {
		t.Errorf("after a failed write: content %q, %d files; want the old file alone", b, len(entries))
	}
}

// series builds a timeline of n samples for groups, each holding i cores.
func series(n int, groups ...string) *metrics.Series {
	s := &metrics.Series{Held: map[string][]float64{}, Target: map[string][]float64{}}
	for k := range n {
		s.T = append(s.T, time.Duration(k)*time.Minute)
		s.Used = append(s.Used, float64(k%8))
		for i, g := range groups {
			s.Held[g] = append(s.Held[g], float64(i))
			s.Target[g] = append(s.Target[g], float64(i)+0.5)
		}
	}
	return s
}

func rows(groups ...string) []metrics.Row {
	var out []metrics.Row
	for i, g := range groups {
		r := metrics.Row{ID: fmt.Sprint(i), Group: g, Cores: int64(i + 1), Submit: 0, Runtime: time.Hour, Decision: metrics.Deferred,
			Start: time.Duration(i) * time.Minute, End: time.Duration(i)*time.Minute + time.Hour, Decided: metrics.None, Site: "local"}
		out = append(out, r)
	}
	return out
}

func TestWritePlots(t *testing.T) {
	groups := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	rejected := []metrics.Row{{ID: "x", Group: "a", Cores: 1, Runtime: time.Hour, Decision: metrics.Rejected, Decided: 0, Start: metrics.None, End: metrics.None}}
	s := sample()
	s.Runs = []Run{
		{Name: "easy", Preset: "easy", Rows: rows(groups...), Series: series(100, groups...), Report: metrics.Report{Utilization: 0.7, Jain: 0.6, InShareLate: 0.3}},
		{Name: "fairlease reserve=0", Preset: "fairlease", Knob: "reserve", Value: "0", Rows: rows("a"), Series: series(100, "a"), Report: metrics.Report{Utilization: 0.6, Jain: 0.8, InShareLate: 0.2}},
		{Name: "fairlease reserve=0.5", Preset: "fairlease", Knob: "reserve", Value: "0.5", Rows: rejected, Series: series(100, "a"), Report: metrics.Report{Utilization: 0.5, Jain: 0.9, InShareLate: 0.1}},
	}
	dir := t.TempDir()
	files, err := WritePlots(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
		checkSVG(t, f)
	}
	want := []string{"utilization.svg", "wait-cdf.svg", "allocation-easy.svg", "allocation-fairlease_reserve=0.svg", "allocation-fairlease_reserve=0.5.svg", "frontier.svg"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("plots (-want +got):\n%s", diff)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "allocation-easy.svg"))
	if !strings.Contains(string(b), "other (2 groups)") {
		t.Errorf("allocation plot does not sum the groups past the top %d as other", TopGroups)
	}
	// Without a sweep there is no frontier.
	s.Runs = s.Runs[:1]
	files, err = WritePlots(t.TempDir(), s)
	if err != nil || slices.ContainsFunc(files, func(f string) bool { return strings.HasSuffix(f, "frontier.svg") }) {
		t.Errorf("WritePlots without a sweep = %v, %v; want no frontier", files, err)
	}
}

func checkSVG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	var root string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("%s: root %q, want svg", path, root)
	}
}
