package trace

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func secs(n float64) time.Duration { return time.Duration(n * float64(time.Second)) }

// swfHeader is the head of SDSC-SP2-1998-4.2-cln.swf (Parallel Workloads
// Archive), shortened; its copyright notice must survive parsing.
const swfHeader = `; Version: 2.2
; Computer: IBM SP2
; Acknowledge: Victor Hazlewood
; Copyright: JOBLOG Repository Data Usage Agreement:
;   The JOBLOG data is Copyright 2000 The Regents of the University of
;   California All Rights Reserved.
; Information: http://joblog.npaci.edu/
;              http://www.cs.huji.ac.il/labs/parallel/workload/
; MaxRecords: 9
; UnixStartTime: 893466664
; MaxNodes: 4
; MaxProcs: 8
; Queue:  0  interactive
; Queue:  1  express
;
; Note: THIS IS A CLEANED VERSION OF THE LOG!
;       The filters used to produce it were
;         job<=10 (10 jobs removed)
;
`

func TestParseSWF(t *testing.T) {
	tests := map[string]struct {
		in   string
		want *Trace
	}{
		"every mapping rule": {
			in: swfHeader +
				// Real SDSC lines: a normal job, a cancelled one, one with fractional CPU time.
				"   11   566129      5  28826    1  27758    -1    1  28800    -1  5 153  75 18180  3 -1 -1 -1\n" +
				"   19   580157  20861     -1   -1     -1    -1   38   6900    -1  5 189  75 18288  5 -1 -1 -1\n" +
				"   27   584826   6324     40    8   7.38    -1    8   1200    -1  1  34   7 13662  3 -1 -1 -1\n" +
				// Submitted earlier than the lines above: sorted first; run time exceeds the request: clamped.
				"   30   100      0     90   -1     -1  1500   2     60    -1  1  34  -1    -1 -1 -1 -1 -1\n" +
				// Same submit as job 30, later in the file: stays after it. No request: Requested = run time.
				"   31   100      0     50    2     -1    -1   2     -1  2048  0   7   3    -1 -1 -1 -1 -1\n" +
				// No run time (not cancelled), no processors, too large, partial execution, negative submit.
				"   32   200      0      0    1     -1    -1   1     60    -1  1   1   1    -1 -1 -1 -1 -1\n" +
				"   33   200      0     10   -1     -1    -1  -1     60    -1  1   1   1    -1 -1 -1 -1 -1\n" +
				"   34   200      0     10   16     -1    -1  16     60    -1  1   1   1    -1 -1 -1 -1 -1\n" +
				"   35   200      0     10    1     -1    -1   1     60    -1  2   1   1    -1 -1 -1 -1 -1\n" +
				"   36    -1      0     10    1     -1    -1   1     60    -1  1   1   1    -1 -1 -1 -1 -1\n",
			want: &Trace{
				Name:         "t.swf",
				Format:       SWF,
				Start:        time.Unix(893466664, 0).UTC(),
				Hosts:        4,
				CoresPerHost: 2,
				Header: map[string]string{
					"Version":       "2.2",
					"Computer":      "IBM SP2",
					"Acknowledge":   "Victor Hazlewood",
					"Copyright":     "JOBLOG Repository Data Usage Agreement:\nThe JOBLOG data is Copyright 2000 The Regents of the University of\nCalifornia All Rights Reserved.",
					"Information":   "http://joblog.npaci.edu/\nhttp://www.cs.huji.ac.il/labs/parallel/workload/",
					"MaxRecords":    "9",
					"UnixStartTime": "893466664",
					"MaxNodes":      "4",
					"MaxProcs":      "8",
					"Queue":         "0  interactive\n1  express",
					"Note":          "THIS IS A CLEANED VERSION OF THE LOG!\nThe filters used to produce it were\njob<=10 (10 jobs removed)",
				},
				Notice: "Acknowledge: Victor Hazlewood\n" +
					"Copyright: JOBLOG Repository Data Usage Agreement:\n" +
					"  The JOBLOG data is Copyright 2000 The Regents of the University of\n" +
					"  California All Rights Reserved.\n" +
					"Information: http://joblog.npaci.edu/\n" +
					"             http://www.cs.huji.ac.il/labs/parallel/workload/",
				Jobs: []Job{
					{ID: "30", Submit: secs(100), Runtime: secs(60), Requested: secs(60), VMs: 2, Cores: 1, MemoryMiB: 2, Group: "u34", User: "u34"},
					{ID: "31", Submit: secs(100), Runtime: secs(50), Requested: secs(50), VMs: 2, Cores: 1, MemoryMiB: 2, Group: "g3", User: "u7"},
					{ID: "11", Submit: secs(566129), Runtime: secs(28800), Requested: secs(28800), VMs: 1, Cores: 1, Group: "g75", User: "u153"},
					{ID: "27", Submit: secs(584826), Runtime: secs(40), Requested: secs(1200), VMs: 8, Cores: 1, Group: "g7", User: "u34"},
				},
				Stats: Stats{
					Records: 10,
					Skipped: map[string]int{
						SkipCancelled:    1,
						SkipNoRunTime:    1,
						SkipNoProcessors: 1,
						SkipTooLarge:     1,
						SkipPartial:      1,
						SkipNoSubmit:     1,
					},
					Clamped: 2,
				},
			},
		},
		"no header": {
			in: "1 0 0 10 4 -1 -1 4 20 -1 1 1 1 -1 -1 -1 -1 -1\n" +
				"2 5 0 10 4000000 -1 -1 4 20 -1 1 1 1 -1 -1 -1 -1 -1\n",
			want: &Trace{
				Name: "t.swf", Format: SWF, Header: map[string]string{},
				Jobs: []Job{
					{ID: "1", Submit: 0, Runtime: secs(10), Requested: secs(20), VMs: 4, Cores: 1, Group: "g1", User: "u1"},
					{ID: "2", Submit: secs(5), Runtime: secs(10), Requested: secs(20), VMs: 4000000, Cores: 1, Group: "g1", User: "u1"},
				},
				Stats: Stats{Records: 2, Skipped: map[string]int{}},
			},
		},
		"MaxProcs without MaxNodes is one-core hosts": {
			in: ";MaxProcs: 3\n1 0 0 10 3 -1 -1 3 20 -1 1 1 1 -1 -1 -1 -1 -1\n",
			want: &Trace{
				Name: "t.swf", Format: SWF, Hosts: 3, CoresPerHost: 1,
				Header: map[string]string{"MaxProcs": "3"},
				Jobs:   []Job{{ID: "1", Runtime: secs(10), Requested: secs(20), VMs: 3, Cores: 1, Group: "g1", User: "u1"}},
				Stats:  Stats{Records: 1, Skipped: map[string]int{}},
			},
		},
		"MaxNodes that does not divide MaxProcs is one-core hosts": {
			in: "; MaxNodes: 64\n; MaxProcs: 100\n",
			want: &Trace{
				Name: "t.swf", Format: SWF, Hosts: 100, CoresPerHost: 1,
				Header: map[string]string{"MaxNodes": "64", "MaxProcs": "100"},
				Stats:  Stats{Skipped: map[string]int{}},
			},
		},
		"tabs, CRLF, blank lines, fractional seconds, a plain comment": {
			in: "; just a remark\r\n\r\n\t1\t0.5\t0\t10.25\t1\t-1\t-1\t1\t-1\t-1\t1\t1\t1\t-1\t-1\t-1\t-1\t-1\r\n   \r\n",
			want: &Trace{
				Name: "t.swf", Format: SWF, Header: map[string]string{},
				Jobs:  []Job{{ID: "1", Submit: 500 * time.Millisecond, Runtime: secs(10.25), Requested: secs(10.25), VMs: 1, Cores: 1, Group: "g1", User: "u1"}},
				Stats: Stats{Records: 1, Skipped: map[string]int{}},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Parse("t.swf", strings.NewReader(tc.in), SWF)
			if err != nil {
				t.Fatalf("Parse: got error %v, want none", err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse: got … want mismatch (-want +got):\n%s", diff)
			}
			checkInvariants(t, got)
		})
	}
}

func TestParseSWFErrors(t *testing.T) {
	const ok = "1 0 0 10 1 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1 -1\n"
	tests := map[string]struct {
		in        string
		want      string
		wantLine  int
		wantField int
	}{
		"run time not a number": {
			in:   ok + "2 0 0 abc 1 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1 -1\n",
			want: `t.swf:2: field 4 (run time): not a number: "abc"`, wantLine: 2, wantField: 4,
		},
		"too few fields": {
			in:   "; MaxProcs: 4\n" + "1 0 0 10 1 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1\n",
			want: `t.swf:2: wrong number of fields: got 17, want 18`, wantLine: 2,
		},
		"too many fields": {
			in:   ok + ok[:len(ok)-1] + " 7\n",
			want: `t.swf:2: wrong number of fields: got 19, want 18`, wantLine: 2,
		},
		"a stray word in an unused field": {
			in:   "1 0 0 10 1 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1 x\n",
			want: `t.swf:1: field 18 (think time): not a number: "x"`, wantLine: 1, wantField: 18,
		},
		"fractional processors": {
			in:   "1 0 0 10 1.5 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1 -1\n",
			want: `t.swf:1: field 5 (allocated processors): not an integer: "1.5"`, wantLine: 1, wantField: 5,
		},
		"submit beyond a century": {
			in:   "1 99999999999 0 10 1 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1 -1\n",
			want: `t.swf:1: field 2 (submit time): out of range: "99999999999" seconds`, wantLine: 1, wantField: 2,
		},
		"number beyond int64": {
			in:   "99999999999999999999 0 0 10 1 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1 -1\n",
			want: `t.swf:1: field 1 (job number): out of range: "99999999999999999999"`, wantLine: 1, wantField: 1,
		},
		"requested processors beyond int32": {
			in:   "1 0 0 10 -1 -1 -1 4294967296 20 -1 1 1 1 -1 -1 -1 -1 -1\n",
			want: `t.swf:1: field 8 (requested processors): out of range: "4294967296"`, wantLine: 1, wantField: 8,
		},
		"a lone minus sign": {
			in:   "1 0 0 - 1 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1 -1\n",
			want: `t.swf:1: field 4 (run time): not a number: "-"`, wantLine: 1, wantField: 4,
		},
		"a long bad value is cut short": {
			in:   "1 0 0 " + strings.Repeat("z", 100) + " 1 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1 -1\n",
			want: `t.swf:1: field 4 (run time): not a number: "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"...`, wantLine: 1, wantField: 4,
		},
		"MaxProcs not a number": {
			in:   "; Version: 2.2\n" + ok + "; MaxProcs: lots\n",
			want: `t.swf:3: MaxProcs: not a number: "lots"`, wantLine: 3,
		},
		"negative MaxNodes": {
			in:   "; MaxNodes: -4\n",
			want: `t.swf:1: MaxNodes: out of range: "-4"`, wantLine: 1,
		},
		"line too long": {
			in:   ok + strings.Repeat("1", maxLine+1) + "\n",
			want: `t.swf:2: line longer than 1048576 bytes: bufio.Scanner: token too long`, wantLine: 2,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Parse("t.swf", strings.NewReader(tc.in), SWF)
			if err == nil {
				t.Fatalf("Parse: got %d jobs and no error, want error %q", len(got.Jobs), tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("Parse: got error %q, want %q", err, tc.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse: got error type %T, want *ParseError", err)
			}
			if pe.Line != tc.wantLine || pe.Field != tc.wantField {
				t.Errorf("ParseError: got line %d field %d, want line %d field %d", pe.Line, pe.Field, tc.wantLine, tc.wantField)
			}
		})
	}
}

const sdscPath = "../../testdata/SDSC-SP2-1998-4.2-cln.swf.gz"

// sharedTraces holds the larger traces; they may be absent on a user's
// machine, and the tests that need them skip. FAIRLEASE_TRACES overrides.
func sharedTrace(t testing.TB, file string) string {
	t.Helper()
	dir := os.Getenv("FAIRLEASE_TRACES")
	if dir == "" {
		dir = "/work/shared/traces"
	}
	path := dir + "/" + file
	if _, err := os.Stat(path); err != nil {
		t.Skipf("trace %s not available (%v); set FAIRLEASE_TRACES to the folder holding it to run this test", file, err)
	}
	return path
}

// TestReadSWFTraces checks whole real traces against their own header counts
// and against counts taken independently with awk.
func TestReadSWFTraces(t *testing.T) {
	tests := map[string]struct {
		path                 func(t *testing.T) string
		wantRecords          int
		wantHosts, wantCores int
		wantStart            time.Time
		wantSkipped          map[string]int
		wantClamped          int
		wantNotice           []string
		wantFirst            Job
	}{
		"SDSC-SP2 (bundled)": {
			path:        func(*testing.T) string { return sdscPath },
			wantRecords: 59715,
			wantHosts:   128, wantCores: 1,
			wantStart:   time.Date(1998, 4, 25, 1, 11, 4, 0, time.UTC), // Fri Apr 24 18:11:04 PDT 1998
			wantSkipped: map[string]int{SkipCancelled: 5681},
			wantClamped: 4134,
			wantNotice: []string{
				"Acknowledge: Victor Hazlewood",
				"Copyright: JOBLOG Repository Data Usage Agreement:",
				"  The JOBLOG data is Copyright 2000 The Regents of the University of",
				"  provided that this copyright notice is preserved in all copies and",
				"Information: http://joblog.npaci.edu/",
			},
			wantFirst: Job{ID: "11", Submit: secs(566129), Runtime: secs(28800), Requested: secs(28800), VMs: 1, Cores: 1, Group: "g75", User: "u153"},
		},
		"KTH-SP2": {
			path:        func(t *testing.T) string { return sharedTrace(t, "KTH-SP2-1996-2.1-cln.swf.gz") },
			wantRecords: 28476,
			wantHosts:   100, wantCores: 1,
			wantStart:   time.Unix(843480031, 0).UTC(),
			wantSkipped: map[string]int{SkipNoRunTime: 8, SkipNoProcessors: 1},
			wantClamped: 475,
			wantNotice:  []string{"Acknowledge: Lars Malinowsky"},
			wantFirst:   Job{ID: "15", Submit: secs(599850), Runtime: secs(3477), Requested: secs(53940), VMs: 4, Cores: 1, Group: "g12", User: "u12"},
		},
		"LCG (no MaxNodes)": {
			path:        func(t *testing.T) string { return sharedTrace(t, "LCG-2005-1.swf.gz") },
			wantRecords: 188041,
			wantHosts:   24515, wantCores: 1,
			wantStart:   time.Unix(1132444805, 0).UTC(),
			wantSkipped: map[string]int{SkipNoRunTime: 521},
			wantNotice:  []string{"Acknowledge: Hui Li"},
			wantFirst:   Job{ID: "1", Submit: 0, Runtime: secs(83), Requested: secs(1200), VMs: 1, Cores: 1, Group: "g1", User: "u1"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := tc.path(t)
			got, err := Read(path, "")
			if err != nil {
				t.Fatalf("Read: got error %v, want none", err)
			}
			if got.Stats.Records != tc.wantRecords {
				t.Errorf("Records: got %d, want %d", got.Stats.Records, tc.wantRecords)
			}
			if h := got.Header["MaxRecords"]; h != itoa(got.Stats.Records) {
				t.Errorf("Records: got %d, want the header's MaxRecords %s", got.Stats.Records, h)
			}
			if got.Hosts != tc.wantHosts || got.CoresPerHost != tc.wantCores {
				t.Errorf("shape: got %d hosts × %d cores, want %d × %d", got.Hosts, got.CoresPerHost, tc.wantHosts, tc.wantCores)
			}
			if !got.Start.Equal(tc.wantStart) {
				t.Errorf("Start: got %v, want %v", got.Start, tc.wantStart)
			}
			if diff := cmp.Diff(tc.wantSkipped, got.Stats.Skipped); diff != "" {
				t.Errorf("Skipped: got … want mismatch (-want +got):\n%s", diff)
			}
			if got.Stats.Clamped != tc.wantClamped {
				t.Errorf("Clamped: got %d, want %d", got.Stats.Clamped, tc.wantClamped)
			}
			for _, line := range tc.wantNotice {
				if !strings.Contains(got.Notice, line+"\n") && !strings.HasSuffix(got.Notice, line) {
					t.Errorf("Notice: got %q, want it to hold the line %q", got.Notice, line)
				}
			}
			if len(got.Jobs) == 0 {
				t.Fatalf("Jobs: got none")
			}
			if diff := cmp.Diff(tc.wantFirst, got.Jobs[0]); diff != "" {
				t.Errorf("first job: got … want mismatch (-want +got):\n%s", diff)
			}
			skipped := 0
			for _, n := range got.Stats.Skipped {
				skipped += n
			}
			if len(got.Jobs)+skipped != got.Stats.Records {
				t.Errorf("accounting: got %d jobs + %d skipped, want %d records", len(got.Jobs), skipped, got.Stats.Records)
			}
			checkInvariants(t, got)
		})
	}
}

// BenchmarkParseSWF parses the bundled SDSC trace (59,715 records): "plain"
// from decompressed bytes, "gzip" including decompression as Read does.
func BenchmarkParseSWF(b *testing.B) {
	gz, err := os.ReadFile(sdscPath)
	if err != nil {
		b.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		b.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		b.Fatal(err)
	}
	for name, data := range map[string][]byte{"plain": plain, "gzip": gz} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			records := 0
			for b.Loop() {
				tr, err := Parse("SDSC.swf", bytes.NewReader(data), SWF)
				if err != nil {
					b.Fatal(err)
				}
				records += tr.Stats.Records
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
		})
	}
}
