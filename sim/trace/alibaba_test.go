package trace

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const alibabaHeader = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"

// alibabaExcerpt is rows of openb_pod_list_default.csv from
// alibaba/clusterdata cluster-trace-gpu-v2023 (Weng et al., USENIX ATC 2023).
const alibabaExcerpt = alibabaHeader +
	"openb-pod-0000,12000,16384,1,1000,,LS,Running,0,12537496,0\n" +
	"openb-pod-0001,6000,12288,1,460,,LS,Running,427061,12902960,427061\n" +
	"openb-pod-0098,8000,30517,1,320,,BE,Running,10020315,10020891,10020315\n" +
	"openb-pod-7998,11908,47104,1,1000,,BE,Pending,12857385,12857492,\n" +
	"openb-pod-8001,3152,5600,1,810,,BE,Failed,12857696,12858153,12858079\n"

func TestParseAlibaba(t *testing.T) {
	tests := map[string]struct {
		in   string
		want *Trace
	}{
		"real rows": {
			in: alibabaExcerpt,
			want: &Trace{
				Name: "pods.csv", Format: Alibaba,
				Jobs: []Job{
					{ID: "openb-pod-0000", Submit: 0, Runtime: secs(12537496), Requested: secs(12537496), VMs: 1, Cores: 12, MemoryMiB: 16384, Group: "LS", User: "LS"},
					{ID: "openb-pod-0001", Submit: secs(427061), Runtime: secs(12902960 - 427061), Requested: secs(12902960 - 427061), VMs: 1, Cores: 6, MemoryMiB: 12288, Group: "LS", User: "LS"},
					{ID: "openb-pod-0098", Submit: secs(10020315), Runtime: secs(576), Requested: secs(576), VMs: 1, Cores: 8, MemoryMiB: 30517, Group: "BE", User: "BE"},
					// Waited 383 s for scheduling: charged from the start, submitted at creation.
					{ID: "openb-pod-8001", Submit: secs(12857696), Runtime: secs(12858153 - 12858079), Requested: secs(12858153 - 12858079), VMs: 1, Cores: 4, MemoryMiB: 5600, Group: "BE", User: "BE"},
				},
				Stats: Stats{Records: 5, Skipped: map[string]int{SkipNotScheduled: 1}},
			},
		},
		"columns reordered, tiny CPU, skips, unsorted": {
			in: "qos,creation_time,scheduled_time,deletion_time,name,cpu_milli,memory_mib\n" +
				"BE,50,60,100,late,1,0\n" +
				"LS,10,10,,running,2000,1\n" +
				"LS,10,10,10,instant,2000,1\n" +
				"LS,-5,0,10,before,2000,1\n" +
				"LS,10,10,20,early,1001,1\n",
			want: &Trace{
				Name: "pods.csv", Format: Alibaba,
				Jobs: []Job{
					{ID: "early", Submit: secs(10), Runtime: secs(10), Requested: secs(10), VMs: 1, Cores: 2, MemoryMiB: 1, Group: "LS", User: "LS"},
					{ID: "late", Submit: secs(50), Runtime: secs(40), Requested: secs(40), VMs: 1, Cores: 1, MemoryMiB: 0, Group: "BE", User: "BE"},
				},
				Stats: Stats{Records: 5, Skipped: map[string]int{SkipNotDeleted: 1, SkipNoRunTime: 1, SkipNoSubmit: 1}},
			},
		},
		"header only": {
			in:   alibabaHeader,
			want: &Trace{Name: "pods.csv", Format: Alibaba, Stats: Stats{Skipped: map[string]int{}}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Parse("pods.csv", strings.NewReader(tc.in), Alibaba)
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

func TestParseAlibabaErrors(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string
	}{
		"empty file": {
			in:   "",
			want: `pods.csv:1: empty file: want a header row starting "name,cpu_milli"`,
		},
		"no header": {
			in:   "openb-pod-0000,12000,16384,1,1000,,LS,Running,0,12537496,0\n",
			want: `pods.csv:1: header: no column "name"`,
		},
		"missing column": {
			in:   "name,cpu_milli,memory_mib,qos,creation_time,deletion_time\n",
			want: `pods.csv:1: header: no column "scheduled_time"`,
		},
		"short row": {
			in:   alibabaHeader + "p,1000,1,1,1,,LS,Running,0,10\n",
			want: `pods.csv:2: wrong number of fields: got 10, want 11`,
		},
		"cpu not a number": {
			in:   alibabaHeader + "p,1000,1,1,1,,LS,Running,0,10,0\n" + "q,lots,1,1,1,,LS,Running,0,10,0\n",
			want: `pods.csv:3: field 2 (cpu_milli): not a number: "lots"`,
		},
		"negative memory": {
			in:   alibabaHeader + "p,1000,-1,1,1,,LS,Running,0,10,0\n",
			want: `pods.csv:2: field 3 (memory_mib): out of range: "-1"`,
		},
		"empty creation time": {
			in:   alibabaHeader + "p,1000,1,1,1,,LS,Running,,10,0\n",
			want: `pods.csv:2: field 9 (creation_time): not a number: ""`,
		},
		"bad scheduled time": {
			in:   alibabaHeader + "p,1000,1,1,1,,LS,Running,0,10,soon\n",
			want: `pods.csv:2: field 11 (scheduled_time): not a number: "soon"`,
		},
		"cpu beyond int32 cores": {
			in:   alibabaHeader + "p,9000000000000,1,1,1,,LS,Running,0,10,0\n",
			want: `pods.csv:2: field 2 (cpu_milli): out of range: "9000000000000"`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("pods.csv", strings.NewReader(tc.in), Alibaba)
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

func TestReadAlibabaTrace(t *testing.T) {
	got, err := Read(sharedTrace(t, "alibaba-gpu-v2023-openb_pod_list_default.csv"), "")
	if err != nil {
		t.Fatalf("Read: got error %v, want none", err)
	}
	// Counted with awk: 8152 pods, 897 without scheduled_time.
	want := Stats{Records: 8152, Skipped: map[string]int{SkipNotScheduled: 897}}
	if diff := cmp.Diff(want, got.Stats); diff != "" {
		t.Errorf("Stats: got … want mismatch (-want +got):\n%s", diff)
	}
	if got.Format != Alibaba || len(got.Jobs) != 8152-897 {
		t.Errorf("Read: got format %q and %d jobs, want alibaba and %d", got.Format, len(got.Jobs), 8152-897)
	}
	checkInvariants(t, got)
}
