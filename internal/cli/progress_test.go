package cli

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMeterSums(t *testing.T) {
	m := startMeter(&bytes.Buffer{}, false, []string{"easy", "fcfs"}, 10)
	m.update("easy", 4)
	m.update("fcfs", 7)
	m.update("easy", 6)
	m.update("unknown", 100) // not a run of this comparison
	if got := m.sum(); got != 13 || m.total != 20 {
		t.Errorf("sum %d of %d, want 13 of 20", got, m.total)
	}
	m.finish()
	if m.shown {
		t.Errorf("a hidden meter drew a bar")
	}
}

// syncBuffer is a buffer the bar's goroutine and the test can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMeterShowsBarAfterDelay(t *testing.T) {
	old := barDelay
	barDelay = 0
	t.Cleanup(func() { barDelay = old })
	var w syncBuffer
	m := startMeter(&w, true, []string{"easy"}, 100)
	m.update("easy", 50)
	// The bar draws on the meter's next tick; poll rather than guess.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(w.String(), "replaying"); {
		if time.Now().After(deadline) {
			t.Fatalf("no bar after 10s; stderr %q", w.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.finish()
	if !m.shown {
		t.Errorf("meter does not know it drew a bar")
	}
}
