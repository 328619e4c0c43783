package cli

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/fairshare"
	"github.com/fairlease/fairlease/sim/metrics"
)

// sdscTrace is the trace bundled with the repository.
const sdscTrace = "../../testdata/SDSC-SP2-1998-4.2-cln.swf.gz"

// excerpt writes the first n records of the SDSC trace, with its header,
// to a file in a temporary directory: the whole trace takes tens of
// seconds per comparison, an excerpt a few.
func excerpt(t testing.TB, n int) string {
	t.Helper()
	f, err := os.Open(sdscTrace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sdsc-excerpt.swf")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(out)
	sc := bufio.NewScanner(zr)
	for records := 0; sc.Scan() && records < n; {
		line := sc.Text()
		if !strings.HasPrefix(line, ";") {
			records++
		}
		w.WriteString(line + "\n")
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(w.Flush(), out.Close()); err != nil {
		t.Fatal(err)
	}
	return path
}

// contractKeys are the per-policy JSON keys DESIGN.md §5 and §4 promise.
var contractKeys = []string{
	"name", "utilization", "share_deviation", "jain", "in_share_late",
	"wait_p50_s", "wait_p95_s", "wait_p99_s",
	"granted_now", "deferred", "overflowed", "rejected",
	"overflow_core_hours", "unplaceable", "wall_seconds",
}

// reportKeys are the json names of every metrics.Report field, so that a
// field added later is checked too.
func reportKeys() []string {
	var keys []string
	rt := reflect.TypeFor[metrics.Report]()
	for i := range rt.NumField() {
		if !rt.Field(i).IsExported() {
			continue
		}
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		keys = append(keys, name)
	}
	return keys
}

func readJSON(t testing.TB, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

// policyRows returns the "policies" array of a document by name, in order.
func policyRows(t testing.TB, doc map[string]any) ([]string, map[string]map[string]any) {
	t.Helper()
	list, ok := doc["policies"].([]any)
	if !ok {
		t.Fatalf("policies is %T, want an array", doc["policies"])
	}
	var names []string
	byName := map[string]map[string]any{}
	for _, p := range list {
		m := p.(map[string]any)
		name, _ := m["name"].(string)
		names = append(names, name)
		byName[name] = m
	}
	return names, byName
}

// checkSVG checks that path holds a well-formed SVG document.
func checkSVG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Errorf("%s: not valid XML: %v", path, err)
			return
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("%s: root element %q, want svg", path, root)
	}
}

func TestSimCompare(t *testing.T) {
	tr := excerpt(t, 2000)
	dir := t.TempDir()
	jsonFile := filepath.Join(dir, "out.json")
	plots := filepath.Join(dir, "plots")
	sched := filepath.Join(dir, "sched")
	r := run(t, "sim", "--trace", tr, "--json", jsonFile, "--plots", plots, "--schedule", sched, "--quiet")
	if r.code != ExitOK {
		t.Fatalf("sim: exit %d, stderr %s", r.code, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("--quiet printed on stderr: %q", r.stderr)
	}
	doc := readJSON(t, jsonFile)
	names, byName := policyRows(t, doc)

	t.Run("table", func(t *testing.T) {
		for _, want := range []string{"sdsc-excerpt.swf", "128 hosts", "C = 128 cores", "Acknowledge: Victor Hazlewood", "full notice in " + jsonFile} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("header lacks %q:\n%s", want, r.stdout)
			}
		}
		var got []string
		for _, line := range strings.Split(r.stdout, "\n") {
			f := strings.Fields(line)
			if len(f) == 13 {
				got = append(got, f[0])
			}
		}
		want := append([]string{"policy"}, fairshare.PolicyNames...)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("table rows (-want +got):\n%s\n%s", diff, r.stdout)
		}
	})

	t.Run("json", func(t *testing.T) {
		for _, k := range []string{"trace", "requests", "capacity", "wall_seconds", "policies", "notice"} {
			if _, ok := doc[k]; !ok {
				t.Errorf("document lacks %q", k)
			}
		}
		if doc["capacity"] != 128.0 || doc["trace"] != "sdsc-excerpt.swf" {
			t.Errorf("capacity %v, trace %v; want 128, sdsc-excerpt.swf", doc["capacity"], doc["trace"])
		}
		if !strings.Contains(doc["notice"].(string), "Copyright") {
			t.Errorf("notice %q lacks the trace's copyright", doc["notice"])
		}
		if diff := cmp.Diff(fairshare.PolicyNames, names); diff != "" {
			t.Errorf("policies (-want +got):\n%s", diff)
		}
		keys := append(slices.Clone(contractKeys), reportKeys()...)
		for _, name := range names {
			for _, k := range keys {
				if _, ok := byName[name][k]; !ok {
					t.Errorf("policy %s lacks %q", name, k)
				}
			}
		}
		var sum float64
		for _, p := range byName {
			sum = max(sum, p["wall_seconds"].(float64))
		}
		if w := doc["wall_seconds"].(float64); w < sum || w <= 0 {
			t.Errorf("wall_seconds %v, want >= the longest run %v", w, sum)
		}
	})

	t.Run("schedules", func(t *testing.T) {
		requests := int(doc["requests"].(float64))
		for _, name := range names {
			path := filepath.Join(sched, name+".csv")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if diff := cmp.Diff("id,group,user,cores,submit,runtime,decision,decided,start,end,site", lines[0]); diff != "" {
				t.Errorf("%s header (-want +got):\n%s", path, diff)
			}
			if got := len(lines) - 1; got != requests {
				t.Errorf("%s: %d rows, want one per request (%d)", path, got, requests)
			}
			rows, err := metrics.ReadCSV(strings.NewReader(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			rep, _, err := metrics.Compute(rows, metrics.Options{Capacity: 128, Grace: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			// The JSON must say what anyone recomputes from the CSV.
			var want map[string]any
			b, _ = json.Marshal(rep)
			json.Unmarshal(b, &want)
			for k, w := range want {
				if k == "unplaceable" {
					continue // the simulator's own ledger, not in the CSV
				}
				got := byName[name][k].(float64)
				if math.Abs(got-w.(float64)) > 1e-9 {
					t.Errorf("%s %s: JSON %v, recomputed from CSV %v", name, k, got, w)
				}
			}
		}
	})

	t.Run("plots", func(t *testing.T) {
		want := []string{"utilization.svg", "wait-cdf.svg"}
		for _, name := range names {
			want = append(want, "allocation-"+name+".svg")
		}
		for _, f := range want {
			checkSVG(t, filepath.Join(plots, f))
		}
		if _, err := os.Stat(filepath.Join(plots, "frontier.svg")); err == nil {
			t.Errorf("frontier.svg written without --sweep")
		}
	})
}

func TestSimOutputJSON(t *testing.T) {
	tr := excerpt(t, 500)
	r := run(t, "--output", "json", "sim", "--trace", tr, "--compare", "easy,fcfs", "--capacity", "96")
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	names, _ := policyRows(t, doc)
	if diff := cmp.Diff([]string{"easy", "fcfs"}, names); diff != "" {
		t.Errorf("policies in --compare order (-want +got):\n%s", diff)
	}
	if doc["capacity"] != 96.0 {
		t.Errorf("capacity %v, want --capacity 96", doc["capacity"])
	}
	if !strings.Contains(r.stderr, "replayed") {
		t.Errorf("without --quiet and without a terminal, want one closing line on stderr, got %q", r.stderr)
	}
}

func TestSimSweep(t *testing.T) {
	tr := excerpt(t, 1000)
	dir := t.TempDir()
	jsonFile := filepath.Join(dir, "sweep.json")
	plots := filepath.Join(dir, "plots")
	sched := filepath.Join(dir, "sched")
	r := run(t, "sim", "--trace", tr, "--compare", "fcfs,fairlease,easy", "--sweep", "reserve=0,0.25",
		"--json", jsonFile, "--plots", plots, "--schedule", sched, "--quiet")
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := []string{"fcfs", "fairlease reserve=0", "fairlease reserve=0.25", "easy"}
	names, byName := policyRows(t, readJSON(t, jsonFile))
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if got := byName["fairlease reserve=0.25"]; got["knob"] != "reserve" || got["value"] != "0.25" {
		t.Errorf("sweep row knob/value = %v/%v, want reserve/0.25", got["knob"], got["value"])
	}
	var rows []string
	for _, line := range strings.Split(r.stdout, "\n") {
		for _, n := range want {
			if strings.HasPrefix(line, n+" ") {
				rows = append(rows, n)
			}
		}
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("table rows (-want +got):\n%s\n%s", diff, r.stdout)
	}
	checkSVG(t, filepath.Join(plots, "frontier.svg"))
	checkSVG(t, filepath.Join(plots, "allocation-fairlease_reserve=0.25.svg"))
	if _, err := os.Stat(filepath.Join(sched, "fairlease_reserve=0.25.csv")); err != nil {
		t.Errorf("sweep schedule: %v", err)
	}
}

func TestSimInterrupted(t *testing.T) {
	tr := excerpt(t, 100)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := Run(ctx, []string{"sim", "--trace", tr, "--quiet"}, &out, &errb)
	checkError(t, result{out.String(), errb.String(), code}, ExitFailure, "fairlease sim: interrupted")
}

func TestSimScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("the paramscan scenario takes a while")
	}
	dir := t.TempDir()
	jsonFile := filepath.Join(dir, "p.json")
	r := run(t, "sim", "--scenario", "paramscan", "--compare", "easy", "--json", jsonFile, "--quiet")
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	doc := readJSON(t, jsonFile)
	if doc["scenario"] != "paramscan" || doc["seed"] != 1.0 {
		t.Errorf("scenario %v seed %v, want paramscan and the default seed 1", doc["scenario"], doc["seed"])
	}
	if !strings.Contains(r.stdout, "scenario paramscan (seed 1)") {
		t.Errorf("header does not name the scenario:\n%s", r.stdout)
	}
}

func TestSimErrors(t *testing.T) {
	tr := excerpt(t, 50)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badSWF := write("bad.swf", "1 0 x 10 1 -1 -1 1 10 -1 1 1 1 -1 -1 -1 -1 -1\n")
	noName := write("trace.txt", "")
	badPolicy := write("bad.toml", "reserve = 7\n")
	missing := filepath.Join(dir, "nope.swf")

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"no workload", nil, ExitUsage, "give a workload: --trace FILE or --scenario NAME"},
		{"both workloads", []string{"--trace", tr, "--scenario", "paramscan"}, ExitUsage, "--trace and --scenario exclude each other"},
		{"missing file", []string{"--trace", missing}, ExitFailure, "--trace: " + missing + " does not exist"},
		{"unknown format", []string{"--trace", tr, "--format", "xyz"}, ExitUsage, `--format: unknown trace format "xyz"`},
		{"undetectable format", []string{"--trace", noName}, ExitUsage, "cannot tell the trace format from the name"},
		{"malformed trace", []string{"--trace", badSWF}, ExitFailure, "bad.swf:1: field 3 (wait time)"},
		{"bad compare name", []string{"--trace", tr, "--compare", "fcfs,sjf"}, ExitUsage, `--compare: unknown policy "sjf"`},
		{"compare twice", []string{"--trace", tr, "--compare", "easy,easy"}, ExitUsage, `--compare: policy "easy" given twice`},
		{"empty compare", []string{"--trace", tr, "--compare", ","}, ExitUsage, "--compare: name at least one policy"},
		{"sweep without values", []string{"--trace", tr, "--sweep", "reserve"}, ExitUsage, "--sweep: want KNOB=v1,v2,..."},
		{"sweep empty value", []string{"--trace", tr, "--sweep", "reserve=0,,1"}, ExitUsage, "--sweep: empty value"},
		{"sweep unknown knob", []string{"--trace", tr, "--sweep", "alpha=0,1"}, ExitUsage, `--sweep: unknown knob "alpha" (known knobs: name, reserve, `},
		{"sweep bad value", []string{"--trace", tr, "--sweep", "reserve=0,2"}, ExitUsage, "--sweep reserve=2: must be in [0,1], got 2"},
		{"zero capacity", []string{"--trace", tr, "--capacity", "0"}, ExitUsage, "--capacity must be > 0 cores, got 0"},
		{"negative capacity", []string{"--trace", tr, "--capacity", "-5"}, ExitUsage, "--capacity must be > 0 cores, got -5"},
		{"capacity not a number", []string{"--trace", tr, "--capacity", "lots"}, ExitUsage, `invalid argument "lots" for "--capacity"`},
		{"bad grace", []string{"--trace", tr, "--grace", "soon"}, ExitUsage, `--grace: want a duration >= 0`},
		{"bad patience", []string{"--trace", tr, "--patience", "-1h"}, ExitUsage, "--patience: must be >= 0, got -1h"},
		{"unknown scenario", []string{"--scenario", "nope"}, ExitUsage, `--scenario: unknown scenario "nope" (want one of paramscan`},
		{"seed with trace", []string{"--trace", tr, "--seed", "3"}, ExitUsage, "--seed applies to --scenario only"},
		{"format with scenario", []string{"--scenario", "paramscan", "--format", "swf"}, ExitUsage, "--format applies to --trace only"},
		{"missing policy file", []string{"--trace", tr, "--policy", filepath.Join(dir, "none.toml")}, ExitFailure, "none.toml does not exist; check the path"},
		{"invalid policy file", []string{"--trace", tr, "--policy", badPolicy}, ExitFailure, "bad.toml:1: reserve"},
		{"unknown flag", []string{"--trace", tr, "--polcy", "x"}, ExitUsage, "unknown flag: --polcy"},
		{"positional argument", []string{tr}, ExitUsage, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, append([]string{"sim"}, tt.args...)...)
			checkError(t, r, tt.wantCode, tt.want)
			if !strings.HasPrefix(r.stderr, "fairlease sim: ") {
				t.Errorf("stderr %q does not start with the command", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing on error", r.stdout)
			}
		})
	}
}
