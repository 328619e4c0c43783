package netmodel

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"

	"github.com/dustin/go-humanize"
)

// ParseSize reads a size with its unit: "10GB", "10 GB" (10^10 bytes),
// "512MiB". A bare number is refused: "10" is too easily meant as
// gigabytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" || !strings.ContainsFunc(t, unicode.IsLetter) {
		return 0, fmt.Errorf("want a size with a unit such as 10GB or 512MiB, got %q", s)
	}
	n, err := humanize.ParseBytes(t)
	if err != nil || n > math.MaxInt64 {
		return 0, fmt.Errorf("want a size such as 10GB or 512MiB, got %q", s)
	}
	if n == 0 {
		return 0, errors.New("must be > 0")
	}
	return int64(n), nil
}

// rateUnits are the unit names ParseRate knows, longest first within each
// family so that "bits/s" is not read as "s".
var rateUnits = []struct {
	suffix string
	bits   float64 // bits per unit per second
	fold   bool    // match any case
}{
	{"bits/s", 1, true}, {"bit/s", 1, true}, {"bits", 1, true}, {"bit", 1, true},
	{"bps", 1, false}, {"Bps", 8, false}, {"b/s", 1, false}, {"B/s", 8, false},
}

// ParseRate reads a link rate in bits/s: "1gbit", "1 Gbit/s", "10Gbps",
// "1Gb/s" (bits), "125MB/s", "125MBps" (bytes). Prefixes k, M, G, T are
// decimal. Unlike tc, "bps" means bits, as in "1 Gbps" links; a capital B
// means bytes.
func ParseRate(s string) (float64, error) {
	bad := fmt.Errorf("want a rate such as 1gbit, 10Gbps or 125MB/s, got %q", s)
	t := strings.TrimSpace(s)
	var per float64
	for _, u := range rateUnits {
		if len(t) >= len(u.suffix) && (t[len(t)-len(u.suffix):] == u.suffix || u.fold && strings.EqualFold(t[len(t)-len(u.suffix):], u.suffix)) {
			t, per = t[:len(t)-len(u.suffix)], u.bits
			break
		}
	}
	if per == 0 {
		return 0, bad
	}
	t = strings.TrimSpace(t)
	if t == "" {
		return 0, bad
	}
	prefix := map[byte]float64{'k': 1e3, 'K': 1e3, 'm': 1e6, 'M': 1e6, 'g': 1e9, 'G': 1e9, 't': 1e12, 'T': 1e12}
	if p, ok := prefix[t[len(t)-1]]; ok {
		per *= p
		t = strings.TrimSpace(t[:len(t)-1])
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) || v < 0 {
		return 0, bad
	}
	if v == 0 {
		return 0, errors.New("must be > 0")
	}
	return v * per, nil
}

// FormatSize writes bytes in decimal units with three significant digits:
// "10 GB", "10.2 TB", "160 GB".
func FormatSize(bytes float64) string {
	return scaled(bytes, []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"})
}

// FormatRate writes bits/s the way links are sold: "1 Gbit/s",
// "8 Gbit/s", "2.5 Gbit/s", "800 Mbit/s".
func FormatRate(bits float64) string {
	return scaled(bits, []string{"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s", "Pbit/s", "Ebit/s"})
}

func scaled(v float64, units []string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	i := 0
	// Step up while the value would still read as >= 1000 once rounded.
	for i < len(units)-1 && math.Abs(v) >= 999.5 {
		v /= 1000
		i++
	}
	digits := 0
	switch a := math.Abs(v); {
	case a < 9.995:
		digits = 2
	case a < 99.95:
		digits = 1
	}
	num := strconv.FormatFloat(v, 'f', digits, 64)
	if strings.Contains(num, ".") {
		num = strings.TrimRight(strings.TrimRight(num, "0"), ".")
	}
	return num + " " + units[i]
}
