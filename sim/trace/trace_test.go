package trace

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func itoa(n int) string { return strconv.Itoa(n) }

// checkInvariants is what the simulator relies on from every trace.
func checkInvariants(t testing.TB, tr *Trace) {
	t.Helper()
	for i, j := range tr.Jobs {
		if j.VMs < 1 || j.Cores < 1 || j.Runtime <= 0 || j.Requested < j.Runtime || j.Submit < 0 || j.MemoryMiB < 0 {
			t.Fatalf("job %d: got %+v, want VMs >= 1, Cores >= 1, Runtime > 0, Requested >= Runtime, Submit >= 0, MemoryMiB >= 0", i, j)
		}
		if i > 0 && j.Submit < tr.Jobs[i-1].Submit {
			t.Fatalf("job %d: got submit %v after %v, want jobs sorted by submit", i, j.Submit, tr.Jobs[i-1].Submit)
		}
	}
	if tr.Stats.Skipped == nil {
		t.Fatalf("Stats.Skipped: got nil, want a map")
	}
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReadGzipSniffing: the content decides, not the name.
func TestReadGzipSniffing(t *testing.T) {
	const swf = "; MaxProcs: 2\n1 0 0 10 1 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1 -1\n"
	dir := t.TempDir()
	want, err := Parse("x", strings.NewReader(swf), SWF)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		name    string
		content []byte
	}{
		"gzip named .swf":            {"a.swf", gzipped(t, []byte(swf))},
		"gzip named .swf.gz":         {"b.swf.gz", gzipped(t, []byte(swf))},
		"plain named .swf.gz":        {"c.swf.gz", []byte(swf)},
		"plain with byte order mark": {"d.swf", []byte("\xef\xbb\xbf" + swf)},
		"two gzip members":           {"e.swf", append(gzipped(t, []byte(swf[:20])), gzipped(t, []byte(swf[20:]))...)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Read(writeFile(t, dir, tc.name, tc.content), SWF)
			if err != nil {
				t.Fatalf("Read: got error %v, want none", err)
			}
			if diff := cmp.Diff(want.Jobs, got.Jobs); diff != "" {
				t.Errorf("Jobs: got … want mismatch (-want +got):\n%s", diff)
			}
			if got.Name != tc.name {
				t.Errorf("Name: got %q, want %q", got.Name, tc.name)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	full := gzipped(t, []byte("1 0 0 10 1 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1 -1\n"))
	tests := map[string]struct {
		path   string
		format Format
		want   string
	}{
		"missing file": {
			path: filepath.Join(dir, "none.swf"), format: SWF,
			want: "open " + filepath.Join(dir, "none.swf") + ": no such file or directory",
		},
		"truncated gzip": {
			path: writeFile(t, dir, "cut.swf.gz", full[:len(full)-6]), format: SWF,
			want: "read cut.swf.gz: unexpected EOF",
		},
		"gzip header only": {
			path: writeFile(t, dir, "bad.swf.gz", []byte{0x1f, 0x8b, 0}), format: SWF,
			want: "bad.swf.gz: unexpected EOF",
		},
		"unknown format": {
			path: writeFile(t, dir, "x.swf", nil), format: "pbs",
			want: `x.swf: unknown trace format "pbs" (want swf, azure or alibaba)`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Read(tc.path, tc.format)
			if err == nil {
				t.Fatalf("Read: got no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("Read: got error %q, want %q", err, tc.want)
			}
		})
	}
}

func TestDetectFormat(t *testing.T) {
	dir := t.TempDir()
	azure := []byte(strings.SplitAfter(azureExcerpt, "\n")[0])
	tests := map[string]struct {
		name    string
		content []byte
		want    Format
		wantErr string
	}{
		"swf":                  {name: "a.swf", want: SWF},
		"swf.gz, upper case":   {name: "A.SWF.GZ", want: SWF},
		"azure csv":            {name: "vmtable.csv", content: azure, want: Azure},
		"azure csv.gz":         {name: "vmtable.csv.gz", content: gzipped(t, azure), want: Azure},
		"azure with header":    {name: "v.csv", content: []byte("vmid,subscriptionid,deploymentid,vmcreated,vmdeleted,maxcpu,avgcpu,p95maxcpu,vmcategory,vmcorecountbucket,vmmemorybucket\n"), want: Azure},
		"alibaba csv":          {name: "pods.csv", content: []byte(alibabaExcerpt), want: Alibaba},
		"alibaba csv.gz, CRLF": {name: "pods.csv.gz", content: gzipped(t, []byte(strings.ReplaceAll(alibabaExcerpt, "\n", "\r\n"))), want: Alibaba},
		"other csv": {
			name: "o.csv", content: []byte("a,b,c\n"),
			wantErr: "o.csv: cannot tell the CSV format: the first line has 3 columns; want a header with cpu_milli (alibaba) or 11 columns (azure)",
		},
		"other extension": {
			name:    "jobs.txt",
			wantErr: "jobs.txt: cannot tell the trace format from the name (want .swf, .swf.gz, .csv or .csv.gz)",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, dir, tc.name, tc.content)
			got, err := DetectFormat(path)
			if tc.wantErr != "" {
				if err == nil || err.Error() != filepath.Join(dir, tc.wantErr) {
					t.Errorf("DetectFormat: got %q, %v; want error %q", got, err, filepath.Join(dir, tc.wantErr))
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("DetectFormat: got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    Format
		wantErr bool
	}{
		"swf":        {in: "swf", want: SWF},
		"upper case": {in: "Azure", want: Azure},
		"alibaba":    {in: " alibaba ", want: Alibaba},
		"unknown":    {in: "gwf", wantErr: true},
		"empty":      {in: "", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseFormat(tc.in)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("ParseFormat(%q): got %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
