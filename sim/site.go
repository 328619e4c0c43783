package sim

import (
	"fmt"
	"time"

	"github.com/fairlease/fairlease/fairshare"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/sim/trace"
)

// SiteFor returns the hosts a trace runs on. A capacity > 0 overrides the
// trace's own; traces that do not say (VM and pod traces) get a site sized
// so that the workload loads it to about 75 % on average, the level where
// policies differ.
func SiteFor(t *trace.Trace, capacity int64) ([]fairshare.Host, string, error) {
	if capacity <= 0 && t.Hosts > 0 && t.CoresPerHost > 0 {
		return hosts(t.Hosts, int64(t.CoresPerHost), t.MemoryMiBPerHost), fmt.Sprintf("%d hosts × %d cores (from the trace header)", t.Hosts, t.CoresPerHost), nil
	}
	if len(t.Jobs) == 0 {
		return nil, "", fmt.Errorf("sim: trace %s has no jobs", t.Name)
	}
	var maxCores int
	var maxMem int64
	var work float64
	first, last := t.Jobs[0].Submit, t.Jobs[0].Submit
	for _, j := range t.Jobs {
		maxCores = max(maxCores, j.Cores)
		maxMem = max(maxMem, j.MemoryMiB)
		work += float64(j.VMs*j.Cores) * j.Runtime.Seconds()
		last = max(last, j.Submit+j.Runtime)
	}
	perHost := int64(max(32, maxCores))
	mem := max(perHost*8192, maxMem)
	how := fmt.Sprintf("capacity %d cores (--capacity)", capacity)
	if capacity <= 0 {
		span := max((last - first).Seconds(), 1)
		capacity = int64(work/span/0.75) + 1
		how = fmt.Sprintf("capacity %d cores: mean demand / 0.75 (the trace names none; set --capacity)", capacity)
	}
	n := max(1, int((capacity+perHost-1)/perHost))
	if t.CoresPerHost > 0 && capacity > 0 && t.Hosts > 0 {
		perHost = int64(t.CoresPerHost)
		n = int((capacity + perHost - 1) / perHost)
	}
	// A one-core-per-host trace site keeps its host size when scaled.
	return hosts(n, perHost, mem), fmt.Sprintf("%d hosts × %d cores; %s", n, perHost, how), nil
}

func hosts(n int, cores, mem int64) []fairshare.Host {
	out := make([]fairshare.Host, n)
	w := len(fmt.Sprint(n - 1))
	for i := range out {
		out[i] = fairshare.Host{Name: fmt.Sprintf("h%0*d", w, i), Capacity: lease.Resources{Cores: cores, MemoryMiB: mem}}
	}
	return out
}

// Span is the time from the first submission to the last ideal end.
func Span(jobs []trace.Job) time.Duration {
	if len(jobs) == 0 {
		return 0
	}
	var last time.Duration
	for _, j := range jobs {
		last = max(last, j.Submit+j.Runtime)
	}
	return last - jobs[0].Submit
}
