package cli

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// barDelay is how long a run goes before it earns a progress bar: short
// runs finish before a bar would tell anyone anything.
var barDelay = 2 * time.Second

// meter sums the progress of parallel runs into one bar: jobs replayed
// across all runs out of jobs × runs.
type meter struct {
	w     io.Writer
	show  bool
	start time.Time
	total int64
	index map[string]int
	done  []atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
	shown bool // a bar was drawn; read after finish
}

func startMeter(w io.Writer, show bool, names []string, jobs int) *meter {
	m := &meter{
		w: w, show: show, start: time.Now(),
		total: int64(jobs) * int64(len(names)),
		index: make(map[string]int, len(names)),
		done:  make([]atomic.Int64, len(names)),
		stop:  make(chan struct{}),
	}
	for i, n := range names {
		m.index[n] = i
	}
	if show {
		m.wg.Add(1)
		go m.loop()
	}
	return m
}

// update records that run name has submitted done jobs; runs call it from
// their own goroutines.
func (m *meter) update(name string, done int) {
	if i, ok := m.index[name]; ok {
		m.done[i].Store(int64(done))
	}
}

func (m *meter) sum() int64 {
	var s int64
	for i := range m.done {
		s += m.done[i].Load()
	}
	return s
}

func (m *meter) loop() {
	defer m.wg.Done()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var bar *progressbar.ProgressBar
	for {
		select {
		case <-m.stop:
			if bar != nil {
				bar.Set64(m.total)
				bar.Finish()
			}
			return
		case <-tick.C:
		}
		if bar == nil && time.Since(m.start) >= barDelay {
			bar = progressbar.NewOptions64(m.total,
				progressbar.OptionSetWriter(m.w),
				progressbar.OptionSetDescription("replaying"),
				progressbar.OptionShowCount(),
				progressbar.OptionSetWidth(30),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
			m.shown = true
		}
		if bar != nil {
			bar.Set64(m.sum())
		}
	}
}

// finish stops the bar and returns how long the runs took.
func (m *meter) finish() time.Duration {
	close(m.stop)
	m.wg.Wait()
	return time.Since(m.start)
}

// isTerminal reports whether w is a terminal; a bar written to a file or
// a pipe is only noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
