package trace

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Azure mapping (Azure Public Dataset V1, vmtable.csv): a VM is one lease of
// one VM. Cores from vmcorecountbucket (">24" counts as 32), memory from
// vmmemorybucket in GB (">64" counts as 70 GB); Submit = vmcreated, Runtime =
// Requested = vmdeleted - vmcreated (the trace has no requested length).
// Group = subscription, User = deployment. VMs created at 0 were already
// running when the trace began; they are kept, submitted at 0. VMs that end
// no later than they start are skipped ("no run time"), as are VMs created
// before 0 ("no submit time") and a core bucket below 1 ("no processors").
// The file has no header row; a leading "vmid,..." row is tolerated.
// The site's capacity is not in the trace.

const azureColumns = 11

var azureNames = [azureColumns]string{
	"vmid", "subscriptionid", "deploymentid", "vmcreated", "vmdeleted",
	"maxcpu", "avgcpu", "p95maxcpu", "vmcategory", "vmcorecountbucket", "vmmemorybucket",
}

const (
	azVM = iota
	azSubscription
	azDeployment
	azCreated
	azDeleted
	azMaxCPU
	azAvgCPU
	azP95CPU
	azCategory
	azCores
	azMemory
)

func parseAzure(name string, r io.Reader) (*Trace, error) {
	t := newTrace(name, Azure)
	cr := newCSV(r)
	names := interner{}
	for first := true; ; first = false {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvErr(name, err)
		}
		line, _ := cr.FieldPos(0)
		if first && strings.EqualFold(rec[0], azureNames[azVM]) {
			continue
		}
		if len(rec) != azureColumns {
			return nil, &ParseError{File: name, Line: line, Err: fmt.Errorf("%w: got %d, want %d", errFieldCount, len(rec), azureColumns)}
		}
		t.Stats.Records++
		fieldErr := func(i int, err error) error {
			l, _ := cr.FieldPos(i)
			return &ParseError{File: name, Line: l, Field: i + 1, Name: azureNames[i], Err: err}
		}
		created, err := seconds(rec[azCreated])
		if err != nil {
			return nil, fieldErr(azCreated, err)
		}
		deleted, err := seconds(rec[azDeleted])
		if err != nil {
			return nil, fieldErr(azDeleted, err)
		}
		// The CPU figures are not used, but must be numbers for the line to be this format.
		for _, i := range [...]int{azMaxCPU, azAvgCPU, azP95CPU} {
			if _, _, err := decimal(rec[i]); err != nil {
				return nil, fieldErr(i, err)
			}
		}
		cores, err := coreBucket(rec[azCores])
		if err != nil {
			return nil, fieldErr(azCores, err)
		}
		mem, err := memoryBucket(rec[azMemory])
		if err != nil {
			return nil, fieldErr(azMemory, err)
		}
		run := deleted - created
		switch {
		case run <= 0:
			t.Stats.Skipped[SkipNoRunTime]++
			continue
		case created < 0:
			t.Stats.Skipped[SkipNoSubmit]++
			continue
		case cores < 1:
			t.Stats.Skipped[SkipNoProcessors]++
			continue
		}
		t.Jobs = append(t.Jobs, Job{
			ID:        strings.Clone(rec[azVM]),
			Submit:    created,
			Runtime:   run,
			Requested: run,
			VMs:       1,
			Cores:     cores,
			MemoryMiB: mem,
			Group:     names.get(rec[azSubscription]),
			User:      names.get(rec[azDeployment]),
		})
	}
	t.finish(0)
	return t, nil
}

// coreBucket reads vmcorecountbucket: 1, 2, 4, 8, 12, 24 or ">24".
func coreBucket(s string) (int, error) {
	if s == ">24" {
		return 32, nil
	}
	v, err := integer(s)
	if err != nil {
		return 0, err
	}
	if v > maxCount || v < -maxCount {
		return 0, fmt.Errorf("%w: %s", errRange, quote(s))
	}
	return int(v), nil
}

// memoryBucket reads vmmemorybucket, in GB (0.75, 1.75, 3.5, ..., ">64"),
// as MiB rounded to the nearest.
func memoryBucket(s string) (int64, error) {
	if s == ">64" {
		return 70 << 10, nil
	}
	w, nano, err := decimal(s)
	if err != nil {
		return 0, err
	}
	if w < 0 || nano < 0 || w > 1<<40 {
		return 0, fmt.Errorf("%w: %s", errRange, quote(s))
	}
	return w<<10 + (nano*1024+5e8)/1e9, nil
}

// newCSV reads plain comma-separated records; the row length is checked by
// the caller so the error can say which line and how many fields.
func newCSV(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return cr
}

// csvErr restates encoding/csv's errors in this package's form.
func csvErr(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ParseError{File: name, Line: pe.Line, Err: fmt.Errorf("column %d: %w", pe.Column, pe.Err)}
	}
	return fmt.Errorf("read %s: %w", name, err)
}
