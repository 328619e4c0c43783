package swarmbench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// NodeEnv is set in the environment of every process the benchmark starts
// inside a namespace, so that a test binary standing in for fairlease can
// tell it should run the node rather than its tests.
const NodeEnv = "FAIRLEASE_SWARMBENCH_NODE"

// Roles a process in a namespace plays.
const (
	RoleHTTPSeed   = "http-seed"
	RoleHTTPGet    = "http-get"
	RoleSwarmSeed  = "swarm-seed"
	RoleSwarmFetch = "swarm-fetch"
)

// NodeSpec is what one process in a namespace needs to play its role. The
// parent passes it as JSON on the command line.
type NodeSpec struct {
	Role  string `json:"role"`
	Index int    `json:"index"` // 0 for the seed, 1..N for nodes
	Nodes int    `json:"nodes"`
	Dir   string `json:"dir"`             // this process's own directory
	Image string `json:"image,omitempty"` // seed: the file to serve
	Size  int64  `json:"size"`
	Addr  string `json:"addr"`           // this process's address
	Seed  string `json:"seed,omitempty"` // the seed's address
	Rate  int64  `json:"rate"`           // link rate, bits per second

	// Swarm settings.
	Torrent     string `json:"torrent,omitempty"` // metainfo file the seed wrote
	PieceLength int64  `json:"piece_length,omitempty"`
	WebSeed     bool   `json:"web_seed,omitempty"`
}

// message is one line a node writes on stdout. The parent writes "go"
// once every node is ready and "stop" once every node is done.
type message struct {
	Event string `json:"event"` // ready, progress, done, stats, error
	Time  int64  `json:"t"`     // Unix nanoseconds: one clock for all processes on the machine
	Bytes int64  `json:"bytes,omitempty"`
	Error string `json:"error,omitempty"`

	// ready, from a swarm seed.
	Torrent     string `json:"torrent,omitempty"`
	Pieces      int    `json:"pieces,omitempty"`
	PieceLength int64  `json:"piece_length,omitempty"`

	// done.
	Seconds float64 `json:"seconds,omitempty"`

	// stats.
	SHA256       string  `json:"sha256,omitempty"`
	CPUSeconds   float64 `json:"cpu_s,omitempty"`
	Uploaded     int64   `json:"uploaded,omitempty"`   // payload bytes sent to peers
	Downloaded   int64   `json:"downloaded,omitempty"` // payload bytes received from peers
	WebSeedBytes int64   `json:"web_seed_bytes,omitempty"`
	Served       int64   `json:"served,omitempty"` // HTTP bytes a seed served
	Detail       any     `json:"detail,omitempty"` // role-specific figures
}

// conn is a node's side of the line protocol with the parent.
type conn struct {
	mu  sync.Mutex
	out *json.Encoder
	in  *bufio.Scanner
}

func (c *conn) send(m message) error {
	m.Time = time.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Encode(m)
}

// wait blocks until the parent writes word; end of input means stop.
func (c *conn) wait(ctx context.Context, word string) error {
	got := make(chan string, 1)
	go func() {
		if c.in.Scan() {
			got <- c.in.Text()
			return
		}
		got <- "stop"
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case w := <-got:
		if w != word && w != "stop" {
			return fmt.Errorf("swarmbench: parent said %q, want %q", w, word)
		}
		if w == "stop" && word != "stop" {
			return fmt.Errorf("swarmbench: stopped before %q", word)
		}
		return nil
	}
}

// roles maps a role to the function that plays it.
var roles = map[string]func(context.Context, NodeSpec, *conn) error{
	RoleHTTPSeed: runHTTPSeed,
	RoleHTTPGet:  runHTTPGet,
}

// RunNode plays spec.Role in this process, talking to the parent over in
// and out. An error is also reported to the parent as an error event.
func RunNode(ctx context.Context, spec NodeSpec, in io.Reader, out io.Writer) error {
	c := &conn{out: json.NewEncoder(out), in: bufio.NewScanner(in)}
	run, ok := roles[spec.Role]
	if !ok {
		err := fmt.Errorf("swarmbench: unknown role %q", spec.Role)
		c.send(message{Event: "error", Error: err.Error()})
		return err
	}
	if err := os.MkdirAll(spec.Dir, 0o755); err != nil {
		c.send(message{Event: "error", Error: err.Error()})
		return err
	}
	if err := run(ctx, spec, c); err != nil {
		c.send(message{Event: "error", Error: err.Error()})
		return err
	}
	return nil
}

// reportProgress sends the byte count every 200 ms until stop is closed.
func reportProgress(c *conn, count func() int64, stop <-chan struct{}) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			c.send(message{Event: "progress", Bytes: count()})
		}
	}
}

// cpuSeconds is the CPU time this process has used so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// fileSHA256 hashes the file at path as it is on disk.
func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, fmt.Errorf("swarmbench: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
