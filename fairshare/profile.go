package fairshare

import "math"

// never is the time of "no end": a profile that never drops below a limit.
const never = math.MaxInt64

// profile is a step function of used cores and memory over time: value i
// holds on [ts[i], ts[i+1]); before ts[0] the value is zero and after the
// last point it stays at the last value (zero once every interval ended).
// The same type serves hosts, the whole site and each group, so every
// question about capacity over time has one implementation.
type profile struct {
	ts    []int64
	cores []int64
	mem   []int64
}

// find returns the index of the last point at or before t, or -1.
func (p *profile) find(t int64) int {
	// A hand-written search: this is the innermost loop of every decision.
	// Host profiles are a few points long, where a scan beats halving.
	if len(p.ts) <= 8 {
		i := 0
		for i < len(p.ts) && p.ts[i] <= t {
			i++
		}
		return i - 1
	}
	lo, hi := 0, len(p.ts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p.ts[m] <= t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// at returns the value at t.
func (p *profile) at(t int64) (int64, int64) {
	i := p.find(t)
	if i < 0 {
		return 0, 0
	}
	return p.cores[i], p.mem[i]
}

// split makes sure a point sits exactly at t and returns its index.
func (p *profile) split(t int64) int {
	i := p.find(t)
	if i >= 0 && p.ts[i] == t {
		return i
	}
	var c, m int64
	if i >= 0 {
		c, m = p.cores[i], p.mem[i]
	}
	i++
	p.ts = append(p.ts, 0)
	p.cores = append(p.cores, 0)
	p.mem = append(p.mem, 0)
	copy(p.ts[i+1:], p.ts[i:])
	copy(p.cores[i+1:], p.cores[i:])
	copy(p.mem[i+1:], p.mem[i:])
	p.ts[i], p.cores[i], p.mem[i] = t, c, m
	return i
}

// add adds (dc, dm) on [a, b). Negative amounts remove an earlier add.
func (p *profile) add(a, b, dc, dm int64) {
	if a >= b || (dc == 0 && dm == 0) {
		return
	}
	ia := p.split(a)
	ib := len(p.ts)
	if b != never {
		ib = p.split(b)
	}
	for i := ia; i < ib; i++ {
		p.cores[i] += dc
		p.mem[i] += dm
	}
	// Merging equal neighbours keeps profiles as short as their content,
	// so host profiles stay a few points long however many leases passed.
	if b != never {
		p.merge(ib)
	}
	p.merge(ia)
}

// merge drops point i if it repeats the value before it.
func (p *profile) merge(i int) {
	if i <= 0 || i >= len(p.ts) {
		if i == 0 && len(p.ts) > 0 && p.cores[0] == 0 && p.mem[0] == 0 {
			p.remove(0)
		}
		return
	}
	if p.cores[i] == p.cores[i-1] && p.mem[i] == p.mem[i-1] {
		p.remove(i)
	}
}

func (p *profile) remove(i int) {
	p.ts = append(p.ts[:i], p.ts[i+1:]...)
	p.cores = append(p.cores[:i], p.cores[i+1:]...)
	p.mem = append(p.mem[:i], p.mem[i+1:]...)
}

// max returns the largest value on [a, b).
func (p *profile) max(a, b int64) (int64, int64) {
	i := p.find(a)
	var mc, mm int64
	if i < 0 {
		i = 0
	}
	for ; i < len(p.ts) && p.ts[i] < b; i++ {
		mc = max(mc, p.cores[i])
		mm = max(mm, p.mem[i])
	}
	return mc, mm
}

// earliest returns the first T >= from such that the value stays within
// (limC, limM) on [T, T+d), and false if there is none before horizon.
func (p *profile) earliest(from, d, limC, limM, horizon int64) (int64, bool) {
	return p.earliestSplit(from, d, limC, limM, never, limC, limM, horizon)
}

// earliestSplit is earliest with a limit that changes at time b: (c1, m1)
// before it, (c2, m2) from it on.
func (p *profile) earliestSplit(from, d, c1, m1, b, c2, m2, horizon int64) (int64, bool) {
	t, pos := from, from
	i := p.find(from)
	for {
		if t > horizon {
			return 0, false
		}
		next := int64(never)
		if i+1 < len(p.ts) {
			next = p.ts[i+1]
		}
		end := next
		if pos < b && b < end {
			end = b
		}
		var vc, vm int64
		if i >= 0 {
			vc, vm = p.cores[i], p.mem[i]
		}
		lc, lm := c1, m1
		if pos >= b {
			lc, lm = c2, m2
		}
		if vc > lc || vm > lm {
			if end == never {
				return 0, false
			}
			t = end
		} else if end == never || end >= t+d {
			return t, true
		}
		pos = end
		if end == next {
			i++
		}
	}
}

// next returns the first point strictly after t, or never.
func (p *profile) next(t int64) int64 {
	i := p.find(t) + 1
	if i < len(p.ts) {
		return p.ts[i]
	}
	return never
}

// prune forgets the history before now; values from now on are unchanged.
func (p *profile) prune(now int64) {
	k := p.find(now)
	// Pruning in batches keeps the copy cost amortized.
	if k < 16 {
		return
	}
	p.ts = append(p.ts[:0], p.ts[k:]...)
	p.cores = append(p.cores[:0], p.cores[k:]...)
	p.mem = append(p.mem[:0], p.mem[k:]...)
}

// empty reports whether the profile is zero everywhere from t on.
func (p *profile) emptyFrom(t int64) bool {
	c, m := p.max(t, never)
	return c == 0 && m == 0
}
