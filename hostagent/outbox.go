package hostagent

import (
	"context"
	"log/slog"
	"slices"
	"sync"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// outboxLimit bounds the reports kept while the broker is away; past it
// the oldest goes (the broker learns the truth from later reports, or the
// lease ends anyway).
const outboxLimit = 10000

// outbox holds VM reports until the broker commits them: one per VM, the
// latest, in the order they were first queued.
type outbox struct {
	mu     sync.Mutex
	items  []broker.VMStateChange
	notify chan struct{}
	log    *slog.Logger
}

func newOutbox(logger *slog.Logger) *outbox {
	return &outbox{notify: make(chan struct{}, 1), log: logger}
}

func sameVM(a, b broker.VMStateChange) bool { return a.ID == b.ID && a.Index == b.Index }

// put queues c, replacing a report on the same VM not yet sent.
func (o *outbox) put(c broker.VMStateChange) {
	o.mu.Lock()
	if i := slices.IndexFunc(o.items, func(x broker.VMStateChange) bool { return sameVM(x, c) }); i >= 0 {
		o.items[i] = c
	} else {
		if len(o.items) >= outboxLimit {
			o.log.Warn("too many reports waiting for the broker; dropping the oldest", "lease", o.items[0].ID, "index", o.items[0].Index, "state", o.items[0].State)
			o.items = o.items[1:]
		}
		o.items = append(o.items, c)
	}
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

func (o *outbox) peek() (broker.VMStateChange, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.items) == 0 {
		return broker.VMStateChange{}, false
	}
	return o.items[0], true
}

// done removes c, unless a newer report on its VM replaced it meanwhile.
func (o *outbox) done(c broker.VMStateChange) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.items = slices.DeleteFunc(o.items, func(x broker.VMStateChange) bool { return x == c })
}

// amend rewrites the note of a queued report on c's VM in state c.State,
// if one waits: a crash seen by a reconcile before its event still gets
// the event's reason.
func (o *outbox) amend(c broker.VMStateChange) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, x := range o.items {
		if sameVM(x, c) && x.State == c.State {
			o.items[i].Note = c.Note
		}
	}
}

// prune drops the reports keep refuses.
func (o *outbox) prune(keep func(broker.VMStateChange) bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.items = slices.DeleteFunc(o.items, func(x broker.VMStateChange) bool { return !keep(x) })
}

func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items)
}

// send delivers the queued reports one at a time until ctx ends, retrying
// each with a bounded backoff; a report the broker refuses for good (no
// such lease, say) is dropped.
func (o *outbox) send(ctx context.Context, b Broker, bo backoff) {
	for {
		c, ok := o.peek()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-o.notify:
				continue
			}
		}
		err := b.ReportVM(ctx, c)
		switch {
		case err == nil:
			o.done(c)
			bo.reset()
		case ctx.Err() != nil:
			return
		case permanent(err):
			o.log.Warn("the broker refused a VM report; dropping it", "lease", c.ID, "index", c.Index, "state", c.State, "err", err)
			o.done(c)
		default:
			o.log.Warn("report VM state; will retry", "lease", c.ID, "index", c.Index, "state", c.State, "err", err)
			if !sleep(ctx, bo.next()) {
				return
			}
		}
	}
}

// permanent reports whether the broker refused a request in a way that
// retrying cannot change.
func permanent(err error) bool {
	switch lease.ErrorCode(err) {
	case lease.EINVALID, lease.ENOTFOUND, lease.EFORBIDDEN, lease.ECONFLICT:
		return true
	}
	return false
}
