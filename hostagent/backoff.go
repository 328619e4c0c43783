package hostagent

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is a bounded exponential delay between retries.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

// next returns the delay before the next try: min, then doubling up to
// max, each drawn from [d/2, d] so that many agents restarted together
// do not retry in step.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	if half <= 0 {
		return b.cur
	}
	return half + rand.N(half+1)
}

// reset starts over from min after a success.
func (b *backoff) reset() { b.cur = 0 }

// sleep waits d, or less if ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
