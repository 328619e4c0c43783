package trace

import (
	"fmt"
	"io"
	"strings"
)

// Alibaba mapping (cluster-trace-gpu-v2023 pod list): a pod is one lease of
// one VM with Cores = ceil(cpu_milli/1000) (at least 1) and MemoryMiB =
// memory_mib; GPUs are not modelled. Submit = creation_time; Runtime =
// Requested = deletion_time - scheduled_time, so the time a pod waited for
// Kubernetes is not charged as use. The trace has no user or tenant id, so
// Group and User are the QoS class (LS, BE, Burstable, Guaranteed): fairness
// between QoS classes is the nearest thing it can show.
// Pods never scheduled (pending at the end) or never deleted are skipped and
// counted; so are pods with no run time or created before the trace began.
// Columns are found by their header names, so their order may change.
// The site's capacity is not in the trace.

// alibabaColumns are the header names the mapping needs.
var alibabaColumns = [...]string{
	"name", "cpu_milli", "memory_mib", "qos", "creation_time", "deletion_time", "scheduled_time",
}

const (
	abName = iota
	abCPU
	abMemory
	abQoS
	abCreated
	abDeleted
	abScheduled
)

func parseAlibaba(name string, r io.Reader) (*Trace, error) {
	t := newTrace(name, Alibaba)
	cr := newCSV(r)
	header, err := cr.Read()
	if err == io.EOF {
		return nil, &ParseError{File: name, Line: 1, Err: fmt.Errorf("empty file: want a header row starting %q", "name,cpu_milli")}
	}
	if err != nil {
		return nil, csvErr(name, err)
	}
	headerLine, _ := cr.FieldPos(0)
	width := len(header)
	var col [len(alibabaColumns)]int
	for i, c := range alibabaColumns {
		col[i] = -1
		for j, h := range header {
			if strings.TrimSpace(h) == c {
				col[i] = j
				break
			}
		}
		if col[i] < 0 {
			return nil, &ParseError{File: name, Line: headerLine, Name: "header", Err: fmt.Errorf("no column %q", c)}
		}
	}
	names := interner{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvErr(name, err)
		}
		if len(rec) != width {
			line, _ := cr.FieldPos(0)
			return nil, &ParseError{File: name, Line: line, Err: fmt.Errorf("%w: got %d, want %d", errFieldCount, len(rec), width)}
		}
		t.Stats.Records++
		field := func(i int) string { return rec[col[i]] }
		fieldErr := func(i int, err error) error {
			line, _ := cr.FieldPos(col[i])
			return &ParseError{File: name, Line: line, Field: col[i] + 1, Name: alibabaColumns[i], Err: err}
		}
		// count reads a non-negative whole number.
		count := func(i int) (int64, error) {
			v, err := integer(field(i))
			if err == nil && v < 0 {
				err = fmt.Errorf("%w: %s", errRange, quote(field(i)))
			}
			if err != nil {
				return 0, fieldErr(i, err)
			}
			return v, nil
		}
		cpu, err := count(abCPU)
		if err != nil {
			return nil, err
		}
		mem, err := count(abMemory)
		if err != nil {
			return nil, err
		}
		if cpu > maxCount*1000 {
			return nil, fieldErr(abCPU, fmt.Errorf("%w: %s", errRange, quote(field(abCPU))))
		}
		cores := max((cpu+999)/1000, 1)
		created, err := seconds(field(abCreated))
		if err != nil {
			return nil, fieldErr(abCreated, err)
		}
		// Empty times mean "not yet": they are skip reasons, not errors.
		sched, hasSched := field(abScheduled), field(abScheduled) != ""
		del, hasDel := field(abDeleted), field(abDeleted) != ""
		start, end := created, created
		if hasSched {
			if start, err = seconds(sched); err != nil {
				return nil, fieldErr(abScheduled, err)
			}
		}
		if hasDel {
			if end, err = seconds(del); err != nil {
				return nil, fieldErr(abDeleted, err)
			}
		}
		skip := ""
		switch {
		case !hasSched:
			skip = SkipNotScheduled
		case !hasDel:
			skip = SkipNotDeleted
		case end-start <= 0:
			skip = SkipNoRunTime
		case created < 0:
			skip = SkipNoSubmit
		}
		if skip != "" {
			t.Stats.Skipped[skip]++
			continue
		}
		qos := names.get(field(abQoS))
		t.Jobs = append(t.Jobs, Job{
			ID:        strings.Clone(field(abName)),
			Submit:    created,
			Runtime:   end - start,
			Requested: end - start,
			VMs:       1,
			Cores:     int(cores),
			MemoryMiB: mem,
			Group:     qos,
			User:      qos,
		})
	}
	t.finish(0)
	return t, nil
}
