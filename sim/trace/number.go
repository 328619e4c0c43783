package trace

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// maxSeconds bounds every time read: a century is beyond any real trace and
// keeps submit + run time clear of time.Duration overflow.
const maxSeconds = 100 * 365 * 24 * 3600

// maxCount bounds processor, core and VM counts so they fit an int anywhere.
const maxCount = math.MaxInt32

var (
	errNotNumber  = errors.New("not a number")
	errNotInteger = errors.New("not an integer")
	errRange      = errors.New("out of range")
)

// decimal parses [+-]digits[.digits] without allocating (the SWF hot path;
// strconv wants a string and ParseFloat rounds). It returns the whole part
// and the fraction in billionths, both carrying the sign; fraction digits
// past the ninth are ignored.
func decimal[T string | []byte](b T) (whole, nano int64, err error) {
	i, neg := 0, false
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	digits := 0
	var w int64
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := int64(b[i] - '0')
		if w > (math.MaxInt64-d)/10 {
			return 0, 0, fmt.Errorf("%w: %s", errRange, quote(b))
		}
		w = w*10 + d
		digits++
	}
	if i < len(b) && b[i] == '.' {
		i++
		for scale := int64(1e8); i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			nano += int64(b[i]-'0') * scale
			scale /= 10
			digits++
		}
	}
	if i != len(b) || digits == 0 {
		return 0, 0, fmt.Errorf("%w: %s", errNotNumber, quote(b))
	}
	if neg {
		return -w, -nano, nil
	}
	return w, nano, nil
}

// scanField reads the whitespace-delimited field starting at b[i] and
// returns where it ends. ok says the field was a plain [-]digits[.digits]
// read into w and ns as decimal would; otherwise (a "+", a huge number, a
// stray letter) the caller asks decimal, which also words the error. This
// one pass is what makes SWF parsing fast.
func scanField(b []byte, i int) (end int, w, ns int64, ok bool) {
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	digits := 0
	for ; i < len(b) && b[i]-'0' <= 9 && w < math.MaxInt64/10-1; i++ {
		w = w*10 + int64(b[i]-'0')
		digits++
	}
	if i < len(b) && b[i] == '.' {
		i++
		for scale := int64(1e8); i < len(b) && b[i]-'0' <= 9; i++ {
			ns += int64(b[i]-'0') * scale
			scale /= 10
			digits++
		}
	}
	ok = digits > 0 && (i == len(b) || isSpace(b[i]))
	for i < len(b) && !isSpace(b[i]) {
		i++
	}
	if neg {
		w, ns = -w, -ns
	}
	return i, w, ns, ok
}

// integer parses a whole number; "4.0" is accepted.
func integer[T string | []byte](b T) (int64, error) {
	w, nano, err := decimal(b)
	if err != nil {
		return 0, err
	}
	if nano != 0 {
		return 0, fmt.Errorf("%w: %s", errNotInteger, quote(b))
	}
	return w, nil
}

// seconds parses a time in (possibly fractional) seconds.
func seconds[T string | []byte](b T) (time.Duration, error) {
	w, nano, err := decimal(b)
	if err != nil {
		return 0, err
	}
	return toDuration(w, nano, b)
}

func toDuration[T string | []byte](w, nano int64, b T) (time.Duration, error) {
	if w > maxSeconds || w < -maxSeconds {
		return 0, fmt.Errorf("%w: %s seconds", errRange, quote(b))
	}
	return time.Duration(w)*time.Second + time.Duration(nano), nil
}

// quote shows a bad value, cut short so a garbage line gives a short error.
func quote[T string | []byte](b T) string {
	const max = 40
	if len(b) > max {
		return fmt.Sprintf("%q...", string(b[:max]))
	}
	return fmt.Sprintf("%q", string(b))
}
