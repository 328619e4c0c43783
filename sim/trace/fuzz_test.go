package trace

import (
	"bytes"
	"testing"
)

// fuzzParse checks that parsing never panics and that whatever parses
// satisfies the simulator's invariants.
func fuzzParse(t *testing.T, data []byte, f Format) {
	tr, err := Parse("fuzz", bytes.NewReader(data), f)
	if err != nil {
		if tr != nil {
			t.Fatalf("Parse: got a trace and error %v, want only the error", err)
		}
		return
	}
	checkInvariants(t, tr)
	skipped := 0
	for _, n := range tr.Stats.Skipped {
		skipped += n
	}
	if len(tr.Jobs)+skipped != tr.Stats.Records {
		t.Fatalf("accounting: got %d jobs + %d skipped, want %d records", len(tr.Jobs), skipped, tr.Stats.Records)
	}
}

func FuzzParseSWF(f *testing.F) {
	f.Add([]byte(swfHeader +
		"   11   566129      5  28826    1  27758    -1    1  28800    -1  5 153  75 18180  3 -1 -1 -1\n" +
		"   19   580157  20861     -1   -1     -1    -1   38   6900    -1  5 189  75 18288  5 -1 -1 -1\n" +
		"   27   584826   6324     40    8   7.38    -1    8   1200    -1  1  34   7 13662  3 -1 -1 -1\n"))
	// KTH-SP2 (no processors) and LCG (no MaxNodes, grid fields) excerpts.
	f.Add([]byte("; MaxNodes: 100\n; MaxProcs: 100\n" +
		"   15   599850 192180   3477    4     -1    -1    4  53940    -1  1  12  12  -1 -1 -1 -1 -1\n" +
		"27313 27845375    480      1   -1     -1    -1   -1    600    -1  1  48 225  -1 -1 -1 -1 -1\n"))
	f.Add([]byte("; MaxProcs: 24515\n" +
		"     1         0      -1    83      1      -1      -1   -1    1200      -1 -1    1    1   -1 -1  1     -1      -1\n" +
		"     2         3      -1    3611    1      -1      -1   -1  116400      -1 -1    2    2   -1 -1  2     -1      -1\n"))
	f.Add([]byte("1 5 0 10 2 -1 2048 2 5 -1 1 1 -1 -1 -1 -1 -1 -1\n1 0 0 10.5 1 -1 -1 1 -1 1.5 2 1 1 -1 -1 -1 -1 -1\r\n"))
	f.Add(gzipped(f, []byte("1 0 0 10 1 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1 -1\n")))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzParse(t, data, SWF) })
}

func FuzzParseAzure(f *testing.F) {
	f.Add([]byte(azureExcerpt))
	f.Add([]byte("vmid,subscriptionid,deploymentid,vmcreated,vmdeleted,maxcpu,avgcpu,p95maxcpu,vmcategory,vmcorecountbucket,vmmemorybucket\n" +
		"big,s,d,300,900,1,1,1,Interactive,>24,>64\nhalf,s,d,300,600,1,1,1,Unkown,2,0.75\ngone,s,d,600,600,1,1,1,Unkown,0,4\n"))
	f.Add([]byte("\"a\",s,d,0,1,1,1,1,x,1,1\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzParse(t, data, Azure) })
}

func FuzzParseAlibaba(f *testing.F) {
	f.Add([]byte(alibabaExcerpt))
	f.Add([]byte("qos,creation_time,scheduled_time,deletion_time,name,cpu_milli,memory_mib\n" +
		"BE,50,60,100,late,1,0\nLS,10,10,,running,2000,1\nLS,-5,0,10,before,2000,1\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzParse(t, data, Alibaba) })
}

// FuzzScanField checks the SWF fast path against decimal.
func FuzzScanField(f *testing.F) {
	for _, s := range []string{"-1", "123", "7.38", "-.5", "5.", "+5", "007", "1.0000000009", "-", ".", "9223372036854775807", "9223372036854775808", "922337203685477579", "1e5", "12ab", "1 2", "\t3\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		i := skipSpace(b, 0)
		end, w, ns, ok := scanField(b, i)
		if end < i || end > len(b) || (end < len(b) && !isSpace(b[end])) {
			t.Fatalf("scanField(%q): got end %d, want the end of the field starting at %d", b, end, i)
		}
		if !ok {
			return
		}
		dw, dns, err := decimal(b[i:end])
		if err != nil || dw != w || dns != ns {
			t.Fatalf("scanField(%q): got %d, %d; decimal got %d, %d, %v", b[i:end], w, ns, dw, dns, err)
		}
	})
}
