// Package trace reads real workload traces into lease requests for the
// simulator: the Standard Workload Format of the Parallel Workloads Archive
// (SWF), the Azure Public Dataset V1 VM table and the Alibaba GPU 2023 pod
// list. Every job becomes one all-or-nothing lease of VMs identical VMs.
//
// What fails and what is skipped: a line that cannot be read as the format
// says (wrong number of fields, a field that is not a number, a time beyond a
// century, a missing header column) fails the whole read with a *ParseError
// naming the file, line and field, because a trace that is silently half read
// gives wrong results. A well-formed record that cannot become a lease (no
// run time, no processors, never scheduled, larger than the machine) is
// skipped and counted in Stats.Skipped under its reason, because real traces
// carry such jobs by design.
package trace

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Format names a trace format; the values are the simulator's --format flag.
type Format string

// The formats this package reads.
const (
	SWF     Format = "swf"
	Azure   Format = "azure"
	Alibaba Format = "alibaba"
)

// ParseFormat checks a format name given by a person.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case SWF, Azure, Alibaba:
		return f, nil
	}
	return "", fmt.Errorf("unknown trace format %q (want swf, azure or alibaba)", s)
}

// Job is one lease request: VMs identical VMs started together.
type Job struct {
	ID        string        // the trace's own job number, VM id or pod name, verbatim
	Submit    time.Duration // since the trace's start
	Runtime   time.Duration // actual run time (> 0)
	Requested time.Duration // requested length; Runtime when the trace has none; >= Runtime
	VMs       int           // >= 1
	Cores     int           // per VM, >= 1
	MemoryMiB int64         // per VM, 0 if unknown
	Group     string
	User      string
}

// Trace is a whole workload, ready to replay.
type Trace struct {
	Name   string // base file name
	Format Format
	Start  time.Time // absolute start (SWF UnixStartTime, UTC); zero if unknown

	// Site shape from the trace; 0 when the trace does not say, and the
	// simulator then picks a capacity.
	Hosts            int
	CoresPerHost     int
	MemoryMiBPerHost int64

	Header map[string]string // SWF header keys verbatim; repeated keys and continuation lines joined by "\n"
	Notice string            // SWF Copyright, Acknowledge and Information lines, to be kept with any result
	Jobs   []Job             // sorted by Submit, then file order
	Stats  Stats
}

// Stats says how much of the trace became jobs.
type Stats struct {
	Records int            // data records read (header rows and comments excluded)
	Skipped map[string]int // reason -> records not turned into jobs
	Clamped int            // jobs whose run time exceeded the request, cut to it
}

// Reasons for skipping a record, the keys of Stats.Skipped.
const (
	SkipNoRunTime    = "no run time"
	SkipCancelled    = "cancelled before start"
	SkipPartial      = "partial execution"
	SkipNoSubmit     = "no submit time"
	SkipNoProcessors = "no processors"
	SkipTooLarge     = "more processors than MaxProcs"
	SkipNotScheduled = "never scheduled"
	SkipNotDeleted   = "never deleted"
)

// ParseError is a trace that cannot be read as its format says.
type ParseError struct {
	File  string
	Line  int    // 1-based line in the (decompressed) file
	Field int    // 1-based field or column; 0 when the error is about the line or a header key
	Name  string // the field's or header key's name
	Err   error
}

func (e *ParseError) Error() string {
	switch {
	case e.Field > 0:
		return fmt.Sprintf("%s:%d: field %d (%s): %v", e.File, e.Line, e.Field, e.Name, e.Err)
	case e.Name != "":
		return fmt.Sprintf("%s:%d: %s: %v", e.File, e.Line, e.Name, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Read reads the trace at path. An empty f means DetectFormat. Gzip content
// is recognised by its magic bytes whatever the file is called.
func Read(path string, f Format) (*Trace, error) {
	if f == "" {
		var err error
		if f, err = DetectFormat(path); err != nil {
			return nil, err
		}
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return Parse(filepath.Base(path), file, f)
}

// Parse reads a trace from r; name is used in errors and as Trace.Name.
// Gzip content is decompressed transparently.
func Parse(name string, r io.Reader, f Format) (*Trace, error) {
	var parse func(string, io.Reader) (*Trace, error)
	switch f {
	case SWF:
		parse = parseSWF
	case Azure:
		parse = parseAzure
	case Alibaba:
		parse = parseAlibaba
	default:
		return nil, fmt.Errorf("%s: unknown trace format %q (want swf, azure or alibaba)", name, f)
	}
	in, err := open(name, r)
	if err != nil {
		return nil, err
	}
	return parse(name, in)
}

// DetectFormat tells the format from the file name: .swf (optionally .gz) is
// SWF; for .csv (optionally .gz) the first line decides, since both CSV
// traces share the extension: a header with cpu_milli is the Alibaba pod
// list, 11 columns without it the Azure VM table.
func DetectFormat(path string) (Format, error) {
	base := strings.TrimSuffix(strings.ToLower(filepath.Base(path)), ".gz")
	switch {
	case strings.HasSuffix(base, ".swf"):
		return SWF, nil
	case !strings.HasSuffix(base, ".csv"):
		return "", fmt.Errorf("%s: cannot tell the trace format from the name (want .swf, .swf.gz, .csv or .csv.gz)", path)
	}
	file, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer file.Close()
	in, err := open(filepath.Base(path), file)
	if err != nil {
		return "", err
	}
	first, err := in.ReadSlice('\n')
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	first = bytes.TrimRight(first, "\r\n")
	if bytes.Contains(first, []byte("cpu_milli")) {
		return Alibaba, nil
	}
	n := bytes.Count(first, []byte(",")) + 1
	if n != azureColumns {
		return "", fmt.Errorf("%s: cannot tell the CSV format: the first line has %d columns; want a header with cpu_milli (alibaba) or %d columns (azure)", path, n, azureColumns)
	}
	return Azure, nil
}

// open undoes gzip when the content starts with its magic bytes, and drops
// a UTF-8 byte order mark, which would otherwise stick to the first field.
func open(name string, r io.Reader) (*bufio.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	return br, nil
}

func newTrace(name string, f Format) *Trace {
	return &Trace{Name: name, Format: f, Stats: Stats{Skipped: map[string]int{}}}
}

// finish applies the checks that need the whole file (SWF headers may in
// principle follow data lines), clamps run times and sorts. maxProcs <= 0
// means no limit.
func (t *Trace) finish(maxProcs int) {
	kept := t.Jobs[:0]
	for _, j := range t.Jobs {
		if maxProcs > 0 && j.VMs*j.Cores > maxProcs {
			t.Stats.Skipped[SkipTooLarge]++
			continue
		}
		if j.Runtime > j.Requested {
			j.Runtime = j.Requested
			t.Stats.Clamped++
		}
		kept = append(kept, j)
	}
	clear(t.Jobs[len(kept):]) // let the strings of skipped jobs go
	t.Jobs = kept
	if slices.IsSortedFunc(t.Jobs, func(a, b Job) int { return cmp.Compare(a.Submit, b.Submit) }) {
		return // the usual case
	}
	// Sort small keys, not 112-byte jobs: a stable sort of the jobs
	// themselves took a third of the read time of a 300k-job trace.
	type key struct {
		submit time.Duration
		i      int
	}
	keys := make([]key, len(t.Jobs))
	for i, j := range t.Jobs {
		keys[i] = key{j.Submit, i}
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.submit, b.submit), cmp.Compare(a.i, b.i))
	})
	sorted := make([]Job, len(t.Jobs))
	for i, k := range keys {
		sorted[i] = t.Jobs[k.i]
	}
	t.Jobs = sorted
}

// interner shares one string per distinct group or user name: traces have
// few of them and many jobs.
type interner map[string]string

func (in interner) get(s string) string {
	if v, ok := in[s]; ok {
		return v
	}
	s = strings.Clone(s) // do not pin the reader's record
	in[s] = s
	return s
}

var errFieldCount = errors.New("wrong number of fields")
