package trace

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// azureExcerpt is three rows of the Azure Public Dataset V1 vmtable (CC BY
// 4.0), as vendored by atlarge-research/opendc for its format tests.
const azureExcerpt = `x/XsOfHO4ocsV99i4NluqKDuxctW2MMVmwqOPAlg4wp8mqbBOe3wxBlQo0+Qx+uf,VDU4C8cqdr+ORcqquwMRcsBA2l0SC6lCPys0wdghKROuxPYysA2XYii9Y5ZkaYaq,Pc2VLB8aDxK2DCC96itq4vW/zVDp4wioAUiB3HoGSFYQ0o6/ZCegTpb9vEH4LeMTEWVObHTPRYEY81TYivZCMQ==,0,2591700,99.369869,3.4240942342446719,10.194309,Delay-insensitive,1,1.75
wR/G1YUjpMP4zUbxGM/XJNhYS8cAK3SGKM2tqhF7VdeTUYHGktQiKQNoDTtYvnAc,VDU4C8cqdr+ORcqquwMRcsBA2l0SC6lCPys0wdghKROuxPYysA2XYii9Y5ZkaYaq,Pc2VLB8aDxK2DCC96itq4vW/zVDp4wioAUiB3HoGSFYQ0o6/ZCegTpb9vEH4LeMT+hzuAPZnYJMu61JNhTDF/Q==,2188800,2591700,99.569027,3.5736346071428589,7.92425,Delay-insensitive,1,1.75
1XiU+KpvIa3T1XP8kk3ZY71Of03+ogFL5Pag9Mc2jBuh0YqeW0Zcb9lepKLdPEDg,8u+M3WcFp8pq183WoMB79PhK7xUzbaviOBv0qWN6Xn4mbuNVM1GYJlIjswgit+k1,DHbeI+pYTYFjH8JAF8SewM0z/4SqQctvxcBRGIRglBmeLW5VjISVEw7/IpY345kHwHtk7+SKlEwc1upnT3PigA==,0,2591700,99.405085,16.2876105408034,95.69789,Delay-insensitive,8,56
`

func TestParseAzure(t *testing.T) {
	const (
		sub1 = "VDU4C8cqdr+ORcqquwMRcsBA2l0SC6lCPys0wdghKROuxPYysA2XYii9Y5ZkaYaq"
		dep1 = "Pc2VLB8aDxK2DCC96itq4vW/zVDp4wioAUiB3HoGSFYQ0o6/ZCegTpb9vEH4LeMTEWVObHTPRYEY81TYivZCMQ=="
		dep2 = "Pc2VLB8aDxK2DCC96itq4vW/zVDp4wioAUiB3HoGSFYQ0o6/ZCegTpb9vEH4LeMT+hzuAPZnYJMu61JNhTDF/Q=="
		sub3 = "8u+M3WcFp8pq183WoMB79PhK7xUzbaviOBv0qWN6Xn4mbuNVM1GYJlIjswgit+k1"
		dep3 = "DHbeI+pYTYFjH8JAF8SewM0z/4SqQctvxcBRGIRglBmeLW5VjISVEw7/IpY345kHwHtk7+SKlEwc1upnT3PigA=="
	)
	tests := map[string]struct {
		in   string
		want *Trace
	}{
		"real rows: VMs running at the start are kept at 0": {
			in: azureExcerpt,
			want: &Trace{
				Name: "vmtable.csv", Format: Azure,
				Jobs: []Job{
					{ID: "x/XsOfHO4ocsV99i4NluqKDuxctW2MMVmwqOPAlg4wp8mqbBOe3wxBlQo0+Qx+uf", Submit: 0, Runtime: secs(2591700), Requested: secs(2591700), VMs: 1, Cores: 1, MemoryMiB: 1792, Group: sub1, User: dep1},
					{ID: "1XiU+KpvIa3T1XP8kk3ZY71Of03+ogFL5Pag9Mc2jBuh0YqeW0Zcb9lepKLdPEDg", Submit: 0, Runtime: secs(2591700), Requested: secs(2591700), VMs: 1, Cores: 8, MemoryMiB: 56 << 10, Group: sub3, User: dep3},
					{ID: "wR/G1YUjpMP4zUbxGM/XJNhYS8cAK3SGKM2tqhF7VdeTUYHGktQiKQNoDTtYvnAc", Submit: secs(2188800), Runtime: secs(402900), Requested: secs(402900), VMs: 1, Cores: 1, MemoryMiB: 1792, Group: sub1, User: dep2},
				},
				Stats: Stats{Records: 3, Skipped: map[string]int{}},
			},
		},
		"open-ended buckets, a header row, skips": {
			in: "vmid,subscriptionid,deploymentid,vmcreated,vmdeleted,maxcpu,avgcpu,p95maxcpu,vmcategory,vmcorecountbucket,vmmemorybucket\n" +
				"big,s,d,300,900,1,1,1,Interactive,>24,>64\n" +
				"half,s,d,300,600,1,1,1,Unkown,2,0.75\n" +
				"\n" +
				"gone,s,d,600,600,1,1,1,Unkown,2,4\n" +
				"early,s,d,-10,600,1,1,1,Unkown,2,4\n" +
				"none,s,d,0,600,1,1,1,Unkown,0,4\n",
			want: &Trace{
				Name: "vmtable.csv", Format: Azure,
				Jobs: []Job{
					{ID: "big", Submit: secs(300), Runtime: secs(600), Requested: secs(600), VMs: 1, Cores: 32, MemoryMiB: 70 << 10, Group: "s", User: "d"},
					{ID: "half", Submit: secs(300), Runtime: secs(300), Requested: secs(300), VMs: 1, Cores: 2, MemoryMiB: 768, Group: "s", User: "d"},
				},
				Stats: Stats{Records: 5, Skipped: map[string]int{SkipNoRunTime: 1, SkipNoSubmit: 1, SkipNoProcessors: 1}},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Parse("vmtable.csv", strings.NewReader(tc.in), Azure)
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

func TestParseAzureErrors(t *testing.T) {
	const ok = "a,s,d,0,600,1,1,1,Unkown,2,4\n"
	tests := map[string]struct {
		in   string
		want string
	}{
		"too few columns": {
			in:   ok + "b,s,d,0,600,1,1,1,Unkown,2\n",
			want: `vmtable.csv:2: wrong number of fields: got 10, want 11`,
		},
		"created not a number": {
			in:   ok + ok + "c,s,d,yesterday,600,1,1,1,Unkown,2,4\n",
			want: `vmtable.csv:3: field 4 (vmcreated): not a number: "yesterday"`,
		},
		"deleted beyond a century": {
			in:   "c,s,d,0,6000000000,1,1,1,Unkown,2,4\n",
			want: `vmtable.csv:1: field 5 (vmdeleted): out of range: "6000000000" seconds`,
		},
		"unknown core bucket": {
			in:   "c,s,d,0,600,1,1,1,Unkown,>48,4\n",
			want: `vmtable.csv:1: field 10 (vmcorecountbucket): not a number: ">48"`,
		},
		"negative memory bucket": {
			in:   "c,s,d,0,600,1,1,1,Unkown,2,-4\n",
			want: `vmtable.csv:1: field 11 (vmmemorybucket): out of range: "-4"`,
		},
		"cpu figure not a number": {
			in:   "c,s,d,0,600,1,high,1,Unkown,2,4\n",
			want: `vmtable.csv:1: field 7 (avgcpu): not a number: "high"`,
		},
		"bad quoting": {
			in:   ok + "c,s\"x,d,0,600,1,1,1,Unkown,2,4\n",
			want: `vmtable.csv:2: column 4: bare " in non-quoted-field`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("vmtable.csv", strings.NewReader(tc.in), Azure)
			if err == nil {
				t.Fatalf("Parse: got no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("Parse: got error %q, want %q", err, tc.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("Parse: got error type %T, want *ParseError", err)
			}
		})
	}
}

func TestReadAzureSample(t *testing.T) {
	got, err := Read(sharedTrace(t, "azure-v1-vmtable-sample10.csv.gz"), "")
	if err != nil {
		t.Fatalf("Read: got error %v, want none", err)
	}
	if got.Format != Azure || got.Stats.Records != 10 || len(got.Jobs) != 10 {
		t.Errorf("Read: got format %q, %d records, %d jobs; want azure, 10, 10", got.Format, got.Stats.Records, len(got.Jobs))
	}
	checkInvariants(t, got)
}
