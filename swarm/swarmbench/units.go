package swarmbench

import (
	"fmt"
	"strconv"
	"strings"
)

// rateUnits are the tc rate units we accept, in bits per second. tc reads
// "bps" as bytes per second, a trap we avoid by refusing it.
var rateUnits = []struct {
	suffix string
	mult   float64
}{
	{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1},
}

// ParseRate parses a link rate in tc's bit units (100mbit, 1gbit,
// 500kbit, 2.5gbit) into bits per second.
func ParseRate(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, u := range rateUnits {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || v <= 0 || v*u.mult > 1e13 {
			break
		}
		if bits := int64(v * u.mult); bits >= 1 {
			return bits, nil
		}
		break
	}
	return 0, fmt.Errorf("%q is not a link rate; give bits per second with a unit, like 100mbit, 1gbit or 500kbit", s)
}

// FormatRate renders bits per second the way ParseRate reads them.
func FormatRate(bits int64) string {
	for _, u := range rateUnits {
		if float64(bits) >= u.mult {
			return strconv.FormatFloat(float64(bits)/u.mult, 'f', -1, 64) + u.suffix
		}
	}
	return strconv.FormatInt(bits, 10) + "bit"
}
