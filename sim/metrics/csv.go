package metrics

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// Header is the schedule CSV's header row (DESIGN.md §5).
var Header = []string{"id", "group", "user", "cores", "submit", "runtime", "decision", "decided", "start", "end", "site"}

// WriteCSV writes rows as a schedule: times in seconds from the trace's
// start, empty where a time does not apply.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(Header); err != nil {
		return err
	}
	rec := make([]string, len(Header))
	for _, r := range rows {
		rec[0], rec[1], rec[2] = r.ID, r.Group, r.User
		rec[3] = strconv.FormatInt(r.Cores, 10)
		rec[4], rec[5] = secs(r.Submit), secs(r.Runtime)
		rec[6] = string(r.Decision)
		rec[7], rec[8], rec[9] = secs(r.Decided), secs(r.Start), secs(r.End)
		rec[10] = r.Site
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func secs(d time.Duration) string {
	if d == None {
		return ""
	}
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10)
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// ReadCSV reads a schedule written by WriteCSV (or by anyone following
// the same columns) and checks it.
func ReadCSV(r io.Reader) ([]Row, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("schedule: header: %w", err)
	}
	col := make(map[string]int, len(head))
	for i, h := range head {
		col[h] = i
	}
	for _, h := range Header {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("schedule: header lacks column %q (want %v)", h, Header)
		}
	}
	var rows []Row
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("schedule: line %d: %w", line, err)
		}
		var row Row
		row.ID, row.Group, row.User, row.Site = rec[col["id"]], rec[col["group"]], rec[col["user"]], rec[col["site"]]
		row.Decision = Decision(rec[col["decision"]])
		if row.Cores, err = strconv.ParseInt(rec[col["cores"]], 10, 64); err != nil {
			return nil, fmt.Errorf("schedule: line %d: cores: %w", line, err)
		}
		for _, f := range []struct {
			name     string
			dst      *time.Duration
			optional bool
		}{{"submit", &row.Submit, false}, {"runtime", &row.Runtime, false}, {"decided", &row.Decided, true}, {"start", &row.Start, true}, {"end", &row.End, true}} {
			v := rec[col[f.name]]
			if v == "" && f.optional {
				*f.dst = None
				continue
			}
			x, err := strconv.ParseFloat(v, 64)
			// NaN fails both comparisons; 9e9 s (285 years) is within what
			// a Duration holds.
			if err != nil || !(x >= 0 && x <= 9e9) {
				return nil, fmt.Errorf("schedule: line %d: %s: want seconds from 0 to 9e9, got %q", line, f.name, v)
			}
			*f.dst = time.Duration(math.Round(x * float64(time.Second)))
		}
		rows = append(rows, row)
	}
	if err := Check(rows); err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	return rows, nil
}
