package hostagent

import (
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/broker"
)

func TestOutboxKeepsTheLatestReportPerVM(t *testing.T) {
	o := newOutbox(slog.New(slog.DiscardHandler))
	run0 := broker.VMStateChange{ID: "a", Index: 0, State: broker.VMRunning}
	run1 := broker.VMStateChange{ID: "a", Index: 1, State: broker.VMRunning}
	fail0 := broker.VMStateChange{ID: "a", Index: 0, State: broker.VMFailed, Note: "crashed"}
	stopB := broker.VMStateChange{ID: "b", Index: 0, State: broker.VMStopped}
	o.put(run0)
	o.put(run1)
	o.put(stopB)
	sending, _ := o.peek()
	o.put(fail0) // while run0 is being sent
	o.done(sending)
	if diff := cmp.Diff([]broker.VMStateChange{fail0, run1, stopB}, o.items); diff != "" {
		t.Errorf("queue after a replaced report was sent (-want +got):\n%s", diff)
	}
	o.amend(broker.VMStateChange{ID: "a", Index: 0, State: broker.VMFailed, Note: "crashed: panic"})
	o.amend(broker.VMStateChange{ID: "a", Index: 1, State: broker.VMFailed, Note: "not this one"})
	o.prune(func(c broker.VMStateChange) bool { return c.State == broker.VMStopped || c.Index == 0 })
	fail0.Note = "crashed: panic"
	if diff := cmp.Diff([]broker.VMStateChange{fail0, stopB}, o.items); diff != "" {
		t.Errorf("queue after amend and prune (-want +got):\n%s", diff)
	}
}

func TestBackoffIsBounded(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for i, want := range []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000} {
		want *= time.Millisecond
		if got := b.next(); got < want/2 || got > want {
			t.Errorf("try %d: delay %v, want in [%v, %v]", i, got, want/2, want)
		}
	}
	b.reset()
	if got := b.next(); got > 100*time.Millisecond {
		t.Errorf("after reset: %v, want at most 100ms", got)
	}
}
