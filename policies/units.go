package policies

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

var durationUnits = map[string]bool{"ns": true, "us": true, "µs": true, "μs": true, "ms": true, "s": true, "m": true, "h": true}

// ParseDuration parses a Go duration ("90m", "1h30m") that may also use the
// unit "d" for 24 hours ("7d", "1d12h", "1.5d"), since policy periods are
// naturally days and weeks and "168h" is easy to get wrong.
func ParseDuration(s string) (time.Duration, error) {
	rest, neg := s, false
	if rest != "" && (rest[0] == '-' || rest[0] == '+') {
		neg, rest = rest[0] == '-', rest[1:]
	}
	if rest == "0" {
		return 0, nil
	}
	if rest == "" {
		return 0, fmt.Errorf("invalid duration %q: want a number and a unit like \"36h\" or \"7d\"", s)
	}
	var total time.Duration
	for rest != "" {
		i := strings.IndexFunc(rest, func(r rune) bool { return r != '.' && (r < '0' || r > '9') })
		if i == 0 {
			return 0, fmt.Errorf("invalid duration %q: want a number and a unit like \"36h\" or \"7d\"", s)
		}
		if i < 0 {
			return 0, fmt.Errorf("invalid duration %q: missing unit (use ns, us, ms, s, m, h or d)", s)
		}
		num, rest0 := rest[:i], rest[i:]
		j := strings.IndexFunc(rest0, func(r rune) bool { return r == '.' || (r >= '0' && r <= '9') })
		if j < 0 {
			j = len(rest0)
		}
		unit := rest0[:j]
		rest = rest0[j:]

		var d time.Duration
		switch {
		case unit == "d":
			h, err := time.ParseDuration(num + "h")
			if err != nil || h > math.MaxInt64/24 {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			d = h * 24
		case durationUnits[unit]:
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
		default:
			return 0, fmt.Errorf("invalid duration %q: unknown unit %q (use ns, us, ms, s, m, h or d)", s, unit)
		}
		if d > math.MaxInt64-total {
			return 0, fmt.Errorf("invalid duration %q: out of range", s)
		}
		total += d
	}
	if neg {
		total = -total
	}
	return total, nil
}

// FormatDuration writes d the way a policy file would: whole days as "7d",
// then the rest without zero components ("1d12h", "90m", "0s").
func FormatDuration(d time.Duration) string {
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		if d == math.MinInt64 {
			return d.String() // cannot be negated; never a policy value
		}
		d = -d
	}
	if days := d / Day; days > 0 {
		b.WriteString(strconv.FormatInt(int64(days), 10) + "d")
		d -= days * Day
		if d == 0 {
			return b.String()
		}
	}
	s := d.String()
	// time.Duration.String writes "12h0m0s"; a person writes "12h".
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	b.WriteString(s)
	return b.String()
}

var mib = big.NewInt(1 << 20)

// ParseSize parses a memory size with an IEC or SI unit ("512GiB",
// "4096MiB", "1TB", "1.5 GiB"; units are case-insensitive) and returns it in
// MiB, rounded down. A bare number is refused: in a policy file an unquoted
// integer means MiB, and a quoted one read as bytes would be a trap.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" || t[len(t)-1] >= '0' && t[len(t)-1] <= '9' {
		return 0, fmt.Errorf("invalid size %q: missing unit (like \"512GiB\", \"4096MiB\" or \"1TB\"; a bare integer, unquoted, means MiB)", s)
	}
	// humanize reads "1,5GiB" as 15 GiB; refuse the comma rather than guess.
	if strings.Contains(t, ",") {
		return 0, fmt.Errorf("invalid size %q: write decimals with a dot and no thousands separators", s)
	}
	b, err := humanize.ParseBigBytes(t)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: want a number and a unit like \"512GiB\", \"4096MiB\" or \"1TB\"", s)
	}
	n := new(big.Int).Quo(b, mib)
	switch {
	case !n.IsInt64():
		return 0, fmt.Errorf("invalid size %q: out of range", s)
	case n.Sign() == 0 && b.Sign() > 0:
		// Rounding down to 0 would turn a tiny limit into "no limit".
		return 0, fmt.Errorf("invalid size %q: less than 1MiB", s)
	}
	return n.Int64(), nil
}

// errNotDuration and errNotSize explain the accepted forms of a value of the
// wrong TOML type.
var (
	errNotDuration = errors.New(`must be a duration like "36h" or "7d"`)
	errNotSize     = errors.New(`must be a size like "512GiB" or an integer number of MiB`)
)

// durationValue reads a duration from a TOML value: a string, or 0.
// Other integers are refused because the TOML library would read them as
// nanoseconds.
func durationValue(data any) (time.Duration, error) {
	switch x := data.(type) {
	case string:
		return ParseDuration(x)
	case int64:
		if x == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("%w, got integer %d (durations need a unit)", errNotDuration, x)
	}
	return 0, fmt.Errorf("%w, got %s", errNotDuration, Describe(data))
}

// sizeValue reads a size in MiB from a TOML value: a string with a unit, or
// an integer number of MiB.
func sizeValue(data any) (int64, error) {
	switch x := data.(type) {
	case string:
		return ParseSize(x)
	case int64:
		return x, nil
	}
	return 0, fmt.Errorf("%w, got %s", errNotSize, Describe(data))
}

// Describe names a decoded TOML value for an error message; other TOML
// files of the project (the agent's config) use it too.
func Describe(data any) string {
	switch x := data.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case time.Time:
		return "datetime " + x.Format(time.RFC3339)
	case map[string]any:
		return "table"
	case []map[string]any:
		return "array of tables"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", data)
}
