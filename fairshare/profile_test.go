package fairshare

import (
	"testing"

	"pgregory.net/rapid"
)

// naive is the obvious model of a profile: one value per integer time.
type naive [64]int64

func (n *naive) max(a, b int64) int64 {
	var m int64
	for t := a; t < b && t < int64(len(n)); t++ {
		m = max(m, n[t])
	}
	return m
}

func TestProfileMatchesNaive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var p profile
		var n naive
		type iv struct{ a, b, c int64 }
		var live []iv
		steps := rapid.IntRange(1, 40).Draw(t, "steps")
		for s := 0; s < steps; s++ {
			if len(live) > 0 && rapid.Bool().Draw(t, "remove") {
				k := rapid.IntRange(0, len(live)-1).Draw(t, "k")
				v := live[k]
				live = append(live[:k], live[k+1:]...)
				p.add(v.a, v.b, -v.c, -2*v.c)
				for x := v.a; x < v.b; x++ {
					n[x] -= v.c
				}
			} else {
				a := rapid.Int64Range(0, 50).Draw(t, "a")
				b := rapid.Int64Range(a+1, 60).Draw(t, "b")
				c := rapid.Int64Range(1, 5).Draw(t, "c")
				live = append(live, iv{a, b, c})
				p.add(a, b, c, 2*c)
				for x := a; x < b; x++ {
					n[x] += c
				}
			}
			for x := int64(0); x < 64; x++ {
				if c, m := p.at(x); c != n[x] || m != 2*n[x] {
					t.Fatalf("at(%d) = %d,%d, want %d,%d (points %v %v)", x, c, m, n[x], 2*n[x], p.ts, p.cores)
				}
			}
			a := rapid.Int64Range(0, 60).Draw(t, "qa")
			b := rapid.Int64Range(a+1, 64).Draw(t, "qb")
			if c, _ := p.max(a, b); c != n.max(a, b) {
				t.Fatalf("max(%d,%d) = %d, want %d", a, b, c, n.max(a, b))
			}
			lim := rapid.Int64Range(0, 8).Draw(t, "lim")
			d := rapid.Int64Range(1, 10).Draw(t, "d")
			from := rapid.Int64Range(0, 40).Draw(t, "from")
			got, ok := p.earliest(from, d, lim, 2*lim, never)
			want := int64(-1)
			for T := from; T < 64; T++ {
				if n.max(T, T+d) <= lim {
					want = T
					break
				}
			}
			if want < 0 {
				// Past the naive window everything is zero.
				want = max(from, 64)
				if n.max(from, 64) <= lim {
					want = -1
				}
			}
			if want >= 0 && (!ok || got != want) {
				t.Fatalf("earliest(from=%d,d=%d,lim=%d) = %d,%v want %d", from, d, lim, got, ok, want)
			}
			if want < 0 && ok && got < 64 {
				t.Fatalf("earliest(from=%d,d=%d,lim=%d) = %d, want >= 64", from, d, lim, got)
			}
			// A limit that drops at b: check the answer against the
			// definition, time by time.
			bk := rapid.Int64Range(0, 64).Draw(t, "b")
			lim2 := rapid.Int64Range(0, lim).Draw(t, "lim2")
			limAt := func(x int64) int64 {
				if x < bk {
					return lim
				}
				return lim2
			}
			fits := func(T int64) bool {
				for x := T; x < T+d; x++ {
					v := int64(0)
					if x < 64 {
						v = n[x]
					}
					if v > limAt(x) {
						return false
					}
				}
				return true
			}
			wantS := int64(-1)
			for T := from; T < 80; T++ {
				if fits(T) {
					wantS = T
					break
				}
			}
			gotS, okS := p.earliestSplit(from, d, lim, 2*lim, bk, lim2, 2*lim2, never)
			if wantS >= 0 && (!okS || gotS != wantS) {
				t.Fatalf("earliestSplit(from=%d,d=%d,lim=%d,b=%d,lim2=%d) = %d,%v want %d", from, d, lim, bk, lim2, gotS, okS, wantS)
			}
		}
		if len(live) == 0 && len(p.ts) != 0 {
			t.Fatalf("empty profile keeps points %v", p.ts)
		}
	})
}
