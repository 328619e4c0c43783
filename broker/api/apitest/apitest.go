// Package apitest runs the API against a fake backend: a broker.State
// behind a mutex, with commands applied directly instead of through Raft.
// Client and CLI tests use it; it is no model of a cluster.
package apitest

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/lease"
)

// Fake is an api.Backend on one in-memory state.
type Fake struct {
	mu    sync.Mutex
	st    *broker.State
	index uint64
	// Clock stamps commands; time.Now when nil.
	Clock func() time.Time
	// Err, when set, fails every Read and Propose with it (to test how
	// the API answers cluster trouble).
	Err error
	// Proposed counts commands that reached the state.
	Proposed int
}

var _ api.Backend = (*Fake)(nil)

// NewFake returns a fake backend with an empty state.
func NewFake() *Fake { return &Fake{st: broker.NewState()} }

func (f *Fake) now() time.Time {
	if f.Clock != nil {
		return f.Clock()
	}
	return time.Now()
}

// Read runs fn on the state; strong or not makes no difference here.
func (f *Fake) Read(ctx context.Context, _ bool, fn func(*broker.State) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return f.Err
	}
	return fn(f.st)
}

// Propose stamps c with the clock, as the leader does, and applies it.
func (f *Fake) Propose(ctx context.Context, c broker.Command) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	c.Time = f.now().UTC()
	f.index++
	f.Proposed++
	return f.st.Apply(f.index, c)
}

// Status describes a one-node cluster led by "n1".
func (f *Fake) Status(context.Context) (broker.ClusterStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return broker.ClusterStatus{}, f.Err
	}
	s := broker.ClusterStatus{Self: "n1", Leader: "n1", State: "Leader", Term: 1, AppliedIndex: f.index}
	s.Members = append(s.Members, broker.ClusterNode{ID: "n1", RaftAddr: "127.0.0.1:7000", Voter: true, Leader: true})
	for _, n := range f.st.Nodes() {
		if n.ID != "n1" {
			s.Members = append(s.Members, broker.ClusterNode{ID: n.ID, RaftAddr: n.RaftAddr, APIAddr: n.APIAddr, Voter: true})
		}
	}
	return s, nil
}

// Join records the node.
func (f *Fake) Join(ctx context.Context, id, raftAddr, apiAddr string) error {
	_, err := f.Propose(ctx, must(broker.NewCommand(broker.CmdPutNode, time.Time{}, "system", broker.Node{ID: id, RaftAddr: raftAddr, APIAddr: apiAddr})))
	return err
}

// Remove forgets the node.
func (f *Fake) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	known := false
	for _, n := range f.st.Nodes() {
		known = known || n.ID == id
	}
	f.mu.Unlock()
	if !known {
		return lease.Errorf(lease.ENOTFOUND, "id", "no member %q", id)
	}
	_, err := f.Propose(ctx, must(broker.NewCommand(broker.CmdRemoveNode, time.Time{}, "system", broker.Name{Name: id})))
	return err
}

func must(c broker.Command, err error) broker.Command {
	if err != nil {
		panic(err)
	}
	return c
}

// Apply applies one command as actor and fails t on an error.
func (f *Fake) Apply(t testing.TB, typ broker.CommandType, actor string, body any) any {
	t.Helper()
	c, err := broker.NewCommand(typ, time.Time{}, actor, body)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Propose(context.Background(), c)
	if err != nil {
		t.Fatalf("apply %s: %v", typ, err)
	}
	return res
}

// AddUser adds a user with a fresh token and returns the token.
func (f *Fake) AddUser(t testing.TB, name string, group lease.GroupID, role broker.Role) string {
	t.Helper()
	f.Apply(t, broker.CmdPutUser, "system", broker.User{Name: name, Group: group, Role: role})
	id, secret, tok := api.NewToken()
	f.Apply(t, broker.CmdPutToken, "system", broker.Token{ID: id, User: name, Hash: api.Hash(secret)})
	return tok
}

// AddHost adds a host of the given capacity.
func (f *Fake) AddHost(t testing.TB, name string, cores, memoryMiB int64) {
	t.Helper()
	f.Apply(t, broker.CmdPutHost, "system", broker.Host{Name: name, Capacity: lease.Resources{Cores: cores, MemoryMiB: memoryMiB}})
}

// Submit submits r as user and returns the lease.
func (f *Fake) Submit(t testing.TB, user string, r lease.Request) *broker.Lease {
	t.Helper()
	res := f.Apply(t, broker.CmdSubmit, user, broker.Submit{Requests: []lease.Request{r}}).([]broker.SubmitResult)
	if res[0].Error != nil {
		t.Fatalf("submit %s: %v", r.ID, res[0].Error)
	}
	return res[0].Lease
}

// State runs fn on the state.
func (f *Fake) State(fn func(*broker.State)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.st)
}

// Server is an httptest server running the API on a Fake.
type Server struct {
	*httptest.Server
	Fake *Fake
	API  *api.API
	// ImageDir holds the bytes of pushed images.
	ImageDir string
}

// NewServer starts the API on a fresh Fake; it stops when t ends. Logs go
// nowhere unless the test runs with -v.
func NewServer(t testing.TB) *Server {
	t.Helper()
	f := NewFake()
	dir := t.TempDir()
	a, err := api.New(api.Config{Backend: f, Logger: Logger(t), Timeout: 5 * time.Second, ImageDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Server: httptest.NewServer(a.Handler()), Fake: f, API: a, ImageDir: dir}
	t.Cleanup(s.Close)
	return s
}

// Logger discards logs, except in verbose runs where it writes them to
// the test log.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewJSONHandler(testWriter{t}, nil))
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}
