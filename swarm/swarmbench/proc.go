package swarmbench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// event is a message from process index (0 the seed), or its exit.
type event struct {
	index  int
	msg    message
	exited bool
	err    error // the exit status, when exited
}

// proc is a node or seed process running in its namespace.
type proc struct {
	index int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   string // its stderr, kept for the error message
	done  chan struct{}
	once  sync.Once
}

// startProc runs command spec inside namespace ns; its messages and exit go
// to events until quit is closed. ip netns exec execs the command in
// place, so the process is the node itself.
func startProc(ns string, command []string, spec NodeSpec, logPath string, events chan<- event, quit <-chan struct{}) (*proc, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	args := append([]string{"netns", "exec", ns}, command...)
	args = append(args, "--role", spec.Role, "--spec", string(js))
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), NodeEnv+"=1")
	// A node outlives nothing: if the benchmark dies, so do its nodes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("swarmbench: start %s in %s: %w", spec.Role, ns, err)
	}
	p := &proc{index: spec.Index, cmd: cmd, stdin: stdin, log: logPath, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var m message
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				continue // not ours: a library printing on stdout
			}
			select {
			case events <- event{index: p.index, msg: m}:
			case <-quit:
			}
		}
		io.Copy(io.Discard, stdout)
		err := cmd.Wait()
		logf.Close()
		close(p.done)
		select {
		case events <- event{index: p.index, exited: true, err: err}:
		case <-quit:
		}
	}()
	return p, nil
}

// say writes one line of the protocol to the process.
func (p *proc) say(word string) error {
	_, err := io.WriteString(p.stdin, word+"\n")
	return err
}

// stop closes the process's input, which means stop, and kills it if it
// has not exited after grace.
func (p *proc) stop(grace time.Duration) {
	p.once.Do(func() { p.stdin.Close() })
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// logTail is the end of the process's stderr, for an error message.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}

// waitFor waits until pred holds for every process in want, handing each
// event to on. A process that exits or reports an error first fails it.
func waitFor(ctx context.Context, events <-chan event, procs map[int]*proc, want map[int]bool, on func(event) (bool, error)) error {
	for len(want) > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("swarmbench: %d of the run's processes had not finished: %w", len(want), context.Cause(ctx))
		case ev := <-events:
			p := procs[ev.index]
			switch {
			case ev.exited:
				if want[ev.index] {
					return fmt.Errorf("swarmbench: %s exited early (%v): %s", procName(ev.index), ev.err, p.logTail())
				}
			case ev.msg.Event == "error":
				return fmt.Errorf("swarmbench: %s: %s", procName(ev.index), ev.msg.Error)
			default:
				ok, err := on(ev)
				if err != nil {
					return err
				}
				if ok {
					delete(want, ev.index)
				}
			}
		}
	}
	return nil
}

func procName(i int) string {
	if i == 0 {
		return "the seed"
	}
	return fmt.Sprintf("node %d", i)
}
