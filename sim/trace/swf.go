package trace

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SWF mapping (Standard Workload Format v2.2, Parallel Workloads Archive):
//
//   - Site: MaxNodes hosts of MaxProcs/MaxNodes cores. When MaxNodes is
//     missing, or does not divide MaxProcs (some logs have fewer batch
//     processors than nodes), the site is MaxProcs one-core hosts, which keeps
//     the total core count exact. Without MaxProcs the shape is unknown (0).
//   - Job: one lease of `allocated processors` (field 5), else `requested
//     processors` (field 8), one-core VMs; Runtime = run time (field 4);
//     Requested = requested time (field 9), else the run time.
//   - Memory per VM: requested memory (field 10), else used memory (field 7),
//     both KB per processor, rounded up to MiB; 0 when neither is given.
//   - Group "g<N>" from field 13, or "u<N>" from the user (field 12) when the
//     group is unknown (< 0); User "u<N>". An unknown user (-1) becomes "u-1",
//     one group for all such jobs, as the log cannot tell them apart.
//   - Skipped: records with run time <= 0 ("cancelled before start" when the
//     status is 5), a negative submit time, no processor count, more
//     processors than MaxProcs, and partial-execution records (status 2, 3, 4):
//     SWF v2.2 also writes a summary line for such jobs, which is kept.

const swfFields = 18

var swfFieldNames = [swfFields]string{
	"job number", "submit time", "wait time", "run time", "allocated processors",
	"average CPU time", "used memory", "requested processors", "requested time",
	"requested memory", "status", "user ID", "group ID", "executable number",
	"queue number", "partition number", "preceding job number", "think time",
}

// Field indices (0-based) of the fields the mapping uses.
const (
	swfJob       = 0
	swfSubmit    = 1
	swfRun       = 3
	swfAlloc     = 4
	swfUsedMem   = 6
	swfReqProcs  = 7
	swfReqTime   = 8
	swfReqMem    = 9
	swfStatus    = 10
	swfUser      = 11
	swfGroup     = 12
	swfCancelled = 5 // status value
)

// maxLine bounds one line; SWF lines are under 200 bytes.
const maxLine = 1 << 20

// noticeKeys are the header entries that carry the data's terms of use.
var noticeKeys = map[string]bool{"Copyright": true, "Acknowledge": true, "Information": true}

type swfParser struct {
	t      *Trace
	name   string
	header map[string]int // key -> line of its last occurrence, for errors
	cur    string         // header key that continuation lines extend
	notice []string
	inNote bool // continuation lines belong to a notice key
	users  map[int64]string
	groups map[int64]string
}

func parseSWF(name string, r io.Reader) (*Trace, error) {
	p := &swfParser{
		t:      newTrace(name, SWF),
		name:   name,
		header: map[string]int{},
		users:  map[int64]string{},
		groups: map[int64]string{},
	}
	p.t.Header = map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		i := skipSpace(b, 0)
		switch {
		case i == len(b):
			continue
		case b[i] == ';':
			p.headerLine(b[i+1:], line)
		default:
			if n := len(p.t.Jobs); n == cap(p.t.Jobs) {
				p.t.Jobs = slices.Grow(p.t.Jobs, p.growBy(n))
			}
			p.t.Stats.Records++
			if err := p.record(b, line); err != nil {
				return nil, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &ParseError{File: name, Line: line + 1, Err: fmt.Errorf("line longer than %d bytes: %w", maxLine, err)}
		}
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	p.t.Notice = strings.Join(p.notice, "\n")
	maxProcs, err := p.shape()
	if err != nil {
		return nil, err
	}
	p.t.finish(maxProcs)
	return p.t, nil
}

// growBy sizes the job slice from the header's MaxRecords once the file
// proves large, so that a big trace is not copied as it grows (that was half
// the parse time) and a tiny file with a boastful header allocates little.
func (p *swfParser) growBy(n int) int {
	if n < 4096 {
		return 4096
	}
	grow := n / 4
	if want, err := integer(p.t.Header["MaxRecords"]); err == nil && want <= 1<<20 {
		grow = max(grow, int(want)-n+1)
	}
	return grow
}

// headerLine reads "; Key: value" lines. A line indented further, or without
// a "Key:" at its start, continues the previous key (the SDSC copyright runs
// over a dozen lines); a bare ";" ends it.
func (p *swfParser) headerLine(text []byte, line int) {
	text = trimRight(text)
	ind := skipSpace(text, 0)
	if ind == len(text) {
		p.cur, p.inNote = "", false
		return
	}
	if ind <= 2 {
		if key, value, ok := headerKey(text[ind:]); ok {
			if old, ok := p.t.Header[key]; ok {
				value = old + "\n" + value
			}
			p.t.Header[key] = value
			p.header[key] = line
			p.cur, p.inNote = key, noticeKeys[key]
			if p.inNote {
				p.notice = append(p.notice, string(text[ind:]))
			}
			return
		}
	}
	if p.cur == "" {
		return // a plain comment
	}
	p.t.Header[p.cur] += "\n" + string(text[ind:])
	if p.inNote {
		// Keep the indentation past the usual "; " so the notice reads as written.
		if text[0] == ' ' {
			text = text[1:]
		}
		p.notice = append(p.notice, string(text))
	}
}

// headerKey splits "Key: value"; a key is a word followed by a colon and a
// space or the end, so "http://..." on a continuation line is no key.
func headerKey(b []byte) (key, value string, ok bool) {
	i := 0
	for i < len(b) && (isLetter(b[i]) || (i > 0 && (b[i] >= '0' && b[i] <= '9' || b[i] == '_'))) {
		i++
	}
	if i == 0 || i == len(b) || b[i] != ':' {
		return "", "", false
	}
	if i+1 < len(b) && b[i+1] != ' ' && b[i+1] != '\t' {
		return "", "", false
	}
	return string(b[:i]), strings.TrimSpace(string(b[i+1:])), true
}

// shape sets Start and the site from the header and returns MaxProcs (0 if
// absent).
func (p *swfParser) shape() (int, error) {
	num := func(key string, max int64) (int64, error) {
		s, ok := p.t.Header[key]
		if !ok {
			return 0, nil
		}
		v, err := integer(s)
		if err == nil && (v < 0 || v > max) {
			err = fmt.Errorf("%w: %s", errRange, quote(s))
		}
		if err != nil {
			return 0, &ParseError{File: p.name, Line: p.header[key], Name: key, Err: err}
		}
		return v, nil
	}
	start, err := num("UnixStartTime", 1<<40)
	if err != nil {
		return 0, err
	}
	if _, ok := p.t.Header["UnixStartTime"]; ok {
		p.t.Start = time.Unix(start, 0).UTC()
	}
	procs, err := num("MaxProcs", maxCount)
	if err != nil {
		return 0, err
	}
	nodes, err := num("MaxNodes", maxCount)
	if err != nil {
		return 0, err
	}
	switch {
	case procs == 0:
	case nodes > 0 && procs%nodes == 0:
		p.t.Hosts, p.t.CoresPerHost = int(nodes), int(procs/nodes)
	default:
		p.t.Hosts, p.t.CoresPerHost = int(procs), 1
	}
	return int(procs), nil
}

func (p *swfParser) record(b []byte, line int) error {
	// One pass splits the line and reads the common "-1", "123", "7.38";
	// anything else goes to decimal, which also words the error. Every
	// field is checked, used or not: a stray word means the line is not SWF.
	var f [swfFields][]byte
	var whole, nano [swfFields]int64
	n, bad := 0, -1
	for i := skipSpace(b, 0); i < len(b); i = skipSpace(b, i) {
		end, w, ns, ok := scanField(b, i)
		if n < swfFields {
			f[n], whole[n], nano[n] = b[i:end], w, ns
			if !ok && bad < 0 {
				bad = n
			}
		}
		n++
		i = end
	}
	if n != swfFields {
		return &ParseError{File: p.name, Line: line, Err: fmt.Errorf("%w: got %d, want %d", errFieldCount, n, swfFields)}
	}
	for i := max(bad, 0); bad >= 0 && i < swfFields; i++ {
		w, ns, err := decimal(f[i])
		if err != nil {
			return p.fieldErr(line, i, err)
		}
		whole[i], nano[i] = w, ns
	}
	for _, i := range [...]int{swfJob, swfAlloc, swfReqProcs, swfStatus, swfUser, swfGroup} {
		if nano[i] != 0 {
			return p.fieldErr(line, i, fmt.Errorf("%w: %s", errNotInteger, quote(f[i])))
		}
	}
	dur := func(i int) (time.Duration, error) {
		d, err := toDuration(whole[i], nano[i], f[i])
		if err != nil {
			return 0, p.fieldErr(line, i, err)
		}
		return d, nil
	}
	submit, err := dur(swfSubmit)
	if err != nil {
		return err
	}
	run, err := dur(swfRun)
	if err != nil {
		return err
	}
	req, err := dur(swfReqTime)
	if err != nil {
		return err
	}
	procsField := swfAlloc
	if whole[procsField] <= 0 {
		procsField = swfReqProcs
	}
	procs := whole[procsField]
	if procs > maxCount {
		return p.fieldErr(line, procsField, fmt.Errorf("%w: %s", errRange, quote(f[procsField])))
	}
	status := whole[swfStatus]
	skip := ""
	switch {
	case status >= 2 && status <= 4:
		skip = SkipPartial
	case run <= 0 && status == swfCancelled:
		skip = SkipCancelled
	case run <= 0:
		skip = SkipNoRunTime
	case submit < 0:
		skip = SkipNoSubmit
	case procs <= 0:
		skip = SkipNoProcessors
	}
	if skip != "" {
		p.t.Stats.Skipped[skip]++
		return nil
	}
	if req <= 0 {
		req = run
	}
	memField := swfReqMem
	if whole[memField] <= 0 && nano[memField] <= 0 {
		memField = swfUsedMem
	}
	var mem int64
	if kb := whole[memField]; kb > 0 || nano[memField] > 0 {
		mem = kb / 1024
		if kb%1024 != 0 || nano[memField] != 0 {
			mem++
		}
	}
	user, group := whole[swfUser], whole[swfGroup]
	u := idName(p.users, "u", user)
	g := u
	if group >= 0 {
		g = idName(p.groups, "g", group)
	}
	p.t.Jobs = append(p.t.Jobs, Job{
		ID:        string(f[swfJob]),
		Submit:    submit,
		Runtime:   run,
		Requested: req,
		VMs:       int(procs),
		Cores:     1,
		MemoryMiB: mem,
		Group:     g,
		User:      u,
	})
	return nil
}

func (p *swfParser) fieldErr(line, i int, err error) error {
	return &ParseError{File: p.name, Line: line, Field: i + 1, Name: swfFieldNames[i], Err: err}
}

// idName formats prefix+id once per distinct id.
func idName(cache map[int64]string, prefix string, id int64) string {
	if s, ok := cache[id]; ok {
		return s
	}
	s := prefix + strconv.FormatInt(id, 10)
	cache[id] = s
	return s
}

func isSpace(c byte) bool  { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func trimRight(b []byte) []byte {
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
