package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

var t0 = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

func cmd(t testing.TB, typ broker.CommandType, at time.Duration, actor string, body any) broker.Command {
	t.Helper()
	c, err := broker.NewCommand(typ, t0.Add(at), actor, body)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func req(id string, n, cores int, d time.Duration) lease.Request {
	return lease.Request{ID: lease.ID(id), Group: "physics", User: "ada", Count: n,
		Shape: lease.Shape{Cores: cores, MemoryMiB: int64(cores) * 1024}, Duration: d, AllOrNothing: true}
}

// script is a log touching leases, hosts, users and nodes.
func script(t testing.TB) []broker.Command {
	var log []broker.Command
	for i := range 3 {
		log = append(log, cmd(t, broker.CmdPutHost, 0, "admin", broker.Host{Name: fmt.Sprintf("h%d", i), Capacity: lease.Resources{Cores: 8, MemoryMiB: 32768}}))
	}
	log = append(log,
		cmd(t, broker.CmdPutNode, 0, "system", broker.Node{ID: "n1", RaftAddr: "127.0.0.1:1", APIAddr: "127.0.0.1:2"}),
		cmd(t, broker.CmdPutUser, 0, "admin", broker.User{Name: "ada", Group: "physics", Role: broker.RoleUser}),
	)
	for i := range 12 {
		log = append(log, cmd(t, broker.CmdSubmit, time.Duration(i)*time.Minute, "ada",
			broker.Submit{Requests: []lease.Request{req(fmt.Sprintf("l%02d", i), 1+i%3, 2, time.Duration(1+i%3)*time.Hour)}}))
	}
	log = append(log,
		cmd(t, broker.CmdRelease, 20*time.Minute, "ada", broker.Release{ID: "l01"}),
		cmd(t, broker.CmdAdvance, 2*time.Hour, "system", struct{}{}),
		cmd(t, broker.CmdHostLost, 2*time.Hour, "system", broker.Name{Name: "h2"}),
	)
	return log
}

func applyLog(t testing.TB, f *fsm, log []broker.Command, from uint64) {
	t.Helper()
	for i, c := range log {
		b, err := broker.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		f.Apply(&raft.Log{Index: from + uint64(i), Type: raft.LogCommand, Data: b})
	}
}

func stateBytes(t testing.TB, f *fsm) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.read(func(st *broker.State) error { return st.Snapshot(&buf) }); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bufferSink is a raft.SnapshotSink in memory.
type bufferSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *bufferSink) ID() string    { return "test" }
func (s *bufferSink) Cancel() error { s.cancelled = true; return nil }
func (s *bufferSink) Close() error  { return nil }

// TestFSMSnapshotRestore: a snapshot restored into a fresh FSM gives the
// same state, byte for byte, and both go on alike.
func TestFSMSnapshotRestore(t *testing.T) {
	log := script(t)
	a := newFSM(nil)
	applyLog(t, a, log[:15], 1)
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufferSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	b := newFSM(nil)
	if err := b.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stateBytes(t, a), stateBytes(t, b)) {
		t.Fatal("restored state differs from the original")
	}
	if got := b.api("n1"); got != "http://127.0.0.1:2" {
		t.Errorf("restored node API = %q, want http://127.0.0.1:2", got)
	}
	applyLog(t, a, log[15:], 16)
	applyLog(t, b, log[15:], 16)
	if !bytes.Equal(stateBytes(t, a), stateBytes(t, b)) {
		t.Error("after the same further commands the original and the restored state differ")
	}
}

// TestFSMDeterminism: the same log applied to two FSMs gives byte-identical
// snapshots.
func TestFSMDeterminism(t *testing.T) {
	a, b := newFSM(nil), newFSM(nil)
	applyLog(t, a, script(t), 1)
	applyLog(t, b, script(t), 1)
	if !bytes.Equal(stateBytes(t, a), stateBytes(t, b)) {
		t.Error("two FSMs applying the same log differ")
	}
}

// TestFSMAudit writes a line per applied command with its outcome.
func TestFSMAudit(t *testing.T) {
	var buf bytes.Buffer
	f := newFSM(newAuditLogger(&buf))
	applyLog(t, f, []broker.Command{
		cmd(t, broker.CmdPutHost, 0, "admin", broker.Host{Name: "h1", Capacity: lease.Resources{Cores: 4, MemoryMiB: 8192}}),
		cmd(t, broker.CmdSubmit, time.Minute, "ada", broker.Submit{Requests: []lease.Request{req("a", 1, 2, time.Hour), req("b", 1, 64, time.Hour), {}}}),
		cmd(t, broker.CmdRelease, 2*time.Minute, "bob", broker.Release{ID: "zz"}),
	}, 1)
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		delete(m, "level")
		got = append(got, m)
	}
	want := []map[string]any{
		{"msg": "apply", "index": 1.0, "at": "2026-11-01T09:00:00Z", "actor": "admin", "command": "put-host", "result": "ok"},
		{"msg": "apply", "index": 2.0, "at": "2026-11-01T09:01:00Z", "actor": "ada", "command": "submit", "result": "ok",
			"requests": 3.0, "decisions": map[string]any{"granted": 1.0, "rejected": 1.0, "error:invalid": 1.0}, "leases": []any{"a", "b"}},
		{"msg": "apply", "index": 3.0, "at": "2026-11-01T09:02:00Z", "actor": "bob", "command": "release", "result": "not_found", "error": `id: no lease "zz"`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit lines (-want +got):\n%s", diff)
	}
}

func TestCheckCommand(t *testing.T) {
	tests := []struct {
		name     string
		c        broker.Command
		wantCode string
	}{
		{"submit", cmd(t, broker.CmdSubmit, 0, "a", broker.Submit{Requests: []lease.Request{req("x", 1, 1, time.Hour)}}), ""},
		{"advance without body", broker.Command{Type: broker.CmdAdvance}, ""},
		{"unknown type", broker.Command{Type: 77, Body: json.RawMessage(`{}`)}, lease.EINVALID},
		{"ignorable unknown type", broker.Command{Type: 77 | broker.IgnoreUnknownFlag, Body: json.RawMessage(`{}`)}, lease.EINVALID},
		{"empty body", broker.Command{Type: broker.CmdPutHost}, lease.EINVALID},
		{"unknown field", broker.Command{Type: broker.CmdPutHost, Body: json.RawMessage(`{"name":"h","cpus":3}`)}, lease.EINVALID},
		{"wrong field type", broker.Command{Type: broker.CmdRelease, Body: json.RawMessage(`{"id":7}`)}, lease.EINVALID},
		{"not json", broker.Command{Type: broker.CmdRelease, Body: json.RawMessage(`{"id":`)}, lease.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkCommand(tt.c)
			if got := lease.ErrorCode(err); got != tt.wantCode {
				t.Errorf("checkCommand: %v (code %q), want code %q", err, got, tt.wantCode)
			}
		})
	}
}

// TestPayloadsCoverEveryCommand keeps checkCommand in step with broker's
// command types: a new type must be added to payloads.
func TestPayloadsCoverEveryCommand(t *testing.T) {
	for typ := broker.CommandType(1); typ < broker.IgnoreUnknownFlag; typ++ {
		_, known := payloads[typ]
		if named := !strings.HasPrefix(typ.String(), "command("); named != known {
			t.Errorf("%s: broker knows it %v, payloads knows it %v", typ, named, known)
		}
	}
}

// TestDecodeResult: results that crossed the wire come back as the types
// State.Apply returns.
func TestDecodeResult(t *testing.T) {
	f := newFSM(nil)
	applyLog(t, f, script(t)[:6], 1)
	tests := []struct {
		c    broker.Command
		want reflect.Type
	}{
		{cmd(t, broker.CmdSubmit, time.Hour, "ada", broker.Submit{Requests: []lease.Request{req("r1", 1, 1, time.Hour)}}), reflect.TypeFor[[]broker.SubmitResult]()},
		{cmd(t, broker.CmdRelease, time.Hour, "ada", broker.Release{ID: "r1"}), reflect.TypeFor[*broker.Lease]()},
		{cmd(t, broker.CmdRelease, time.Hour, "ada", broker.Release{ID: "none"}), reflect.TypeFor[*broker.Lease]()},
		{cmd(t, broker.CmdAdvance, 2*time.Hour, "system", struct{}{}), reflect.TypeFor[broker.AdvanceResult]()},
		{cmd(t, broker.CmdHostLost, 2*time.Hour, "system", broker.Name{Name: "h1"}), reflect.TypeFor[broker.HostLostResult]()},
		{cmd(t, broker.CmdPutUser, 2*time.Hour, "admin", broker.User{Name: "bob", Role: broker.RoleAdmin}), nil},
	}
	for i, tt := range tests {
		b, _ := broker.Encode(tt.c)
		r := f.Apply(&raft.Log{Index: uint64(100 + i), Type: raft.LogCommand, Data: b}).(applyResult)
		raw, err := json.Marshal(r.res)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeResult(tt.c.Type, raw)
		if err != nil {
			t.Fatal(err)
		}
		if reflect.TypeOf(got) != tt.want || reflect.TypeOf(r.res) != tt.want {
			t.Errorf("%s: local %T, decoded %T, want %v", tt.c.Type, r.res, got, tt.want)
		}
		if diff := cmp.Diff(r.res, got); diff != "" {
			t.Errorf("%s: decoded result differs (-local +decoded):\n%s", tt.c.Type, diff)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.ID, ok.DataDir, ok.RaftAddr = "n1", "/tmp/x", "127.0.0.1:7000"
	tests := []struct {
		name   string
		change func(*Config)
		want   string // in the error; "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no id", func(c *Config) { c.ID = "" }, "id:"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "data_dir:"},
		{"unspecified bind", func(c *Config) { c.RaftAddr = "0.0.0.0:7000" }, "advertise_addr:"},
		{"unspecified bind advertised", func(c *Config) { c.RaftAddr, c.AdvertiseAddr = "0.0.0.0:7000", "10.0.0.1:7000" }, ""},
		{"election below heartbeat", func(c *Config) { c.ElectionTimeout = 100 * time.Millisecond }, "election_timeout:"},
		{"lease above heartbeat", func(c *Config) { c.LeaderLeaseTimeout = time.Second }, "leader_lease_timeout:"},
		{"no batch", func(c *Config) { c.MaxBatch = 0 }, "max_batch:"},
		{"peers without bootstrap", func(c *Config) { c.Peers = []Peer{{ID: "n2", RaftAddr: "x:1"}} }, "peers:"},
		{"bootstrap and join", func(c *Config) { c.Bootstrap, c.Join, c.ClusterSecret = true, []string{"x"}, "s" }, "join:"},
		{"join without secret", func(c *Config) { c.Join = []string{"x"} }, "cluster_secret:"},
		{"bad log level", func(c *Config) { c.RaftLogLevel = "loud" }, "raft_log_level:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func TestBaseURL(t *testing.T) {
	for in, want := range map[string]string{"": "", "h:1": "http://h:1", "https://h:1/": "https://h:1", "http://h": "http://h"} {
		if got := baseURL(in); got != want {
			t.Errorf("baseURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRaftLogToSlog(t *testing.T) {
	var buf bytes.Buffer
	l := newRaftLogger(slog.New(slog.NewJSONHandler(&buf, nil)), "info")
	l.Warn("entering candidate state", "term", 3)
	l.Debug("hidden")
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v in %q", err, buf.String())
	}
	if m["level"] != "WARN" || m["msg"] != "entering candidate state" || m["term"] != 3.0 || m["component"] != "raft" {
		t.Errorf("raft log line = %v", m)
	}
}

// TestFSMBatchEntry applies a batch entry: each command's result comes
// back in order, under its own actor, and the state equals applying the
// commands one entry each.
func TestFSMBatchEntry(t *testing.T) {
	setup := script(t)[:5]
	cs := []broker.Command{
		cmd(t, broker.CmdSubmit, time.Minute, "ada", broker.Submit{Requests: []lease.Request{req("a1", 1, 2, time.Hour), req("a2", 1, 2, time.Hour)}}),
		cmd(t, broker.CmdSubmit, time.Minute, "bob", broker.Submit{Requests: []lease.Request{req("b1", 1, 2, time.Hour)}}),
		cmd(t, broker.CmdRelease, time.Minute, "bob", broker.Release{ID: "nope"}),
	}
	data, err := encodeBatch(cs)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeEntry(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cs, back); diff != "" {
		t.Fatalf("DecodeEntry(encodeBatch(cs)) (-want +got):\n%s", diff)
	}

	f := newFSM(nil)
	applyLog(t, f, setup, 1)
	out, ok := f.Apply(&raft.Log{Index: 6, Type: raft.LogCommand, Data: data}).([]applyResult)
	if !ok || len(out) != 3 {
		t.Fatalf("batch apply returned %#v, want 3 results", out)
	}
	a, _ := out[0].res.([]broker.SubmitResult)
	b, _ := out[1].res.([]broker.SubmitResult)
	if len(a) != 2 || a[0].Lease.User != "ada" || len(b) != 1 || b[0].Lease.User != "bob" || lease.ErrorCode(out[2].err) != lease.ENOTFOUND {
		t.Errorf("results = %+v / %+v / %v: want ada's two leases, bob's one, and not_found", a, b, out[2].err)
	}
	var idx uint64
	f.read(func(st *broker.State) error { idx = st.Index(); return nil })
	if idx != 6 {
		t.Errorf("state index after the batch entry = %d, want 6", idx)
	}

	// The same commands one entry each give the same leases.
	g := newFSM(nil)
	applyLog(t, g, setup, 1)
	applyLog(t, g, cs, 6)
	for _, id := range []lease.ID{"a1", "a2", "b1"} {
		var x, y *broker.Lease
		f.read(func(st *broker.State) error { x, _ = st.Lease(id); return nil })
		g.read(func(st *broker.State) error { y, _ = st.Lease(id); return nil })
		if diff := cmp.Diff(y, x); diff != "" {
			t.Errorf("lease %s from the batch differs (-single +batch):\n%s", id, diff)
		}
	}
}

func TestDecodeEntryRejectsDamage(t *testing.T) {
	good, _ := encodeBatch([]broker.Command{cmd(t, broker.CmdAdvance, 0, "system", struct{}{})})
	for name, data := range map[string][]byte{
		"empty":         {},
		"batch of none": {entryBatch},
		"short length":  {entryBatch, 200},
		"truncated":     good[:len(good)-3],
		"bad command":   {entryBatch, 2, 5, '{'},
		"bad single":    {byte(broker.CmdRelease), '{'},
	} {
		if _, err := DecodeEntry(data); err == nil {
			t.Errorf("%s: DecodeEntry(%q) = nil error", name, data)
		}
	}
}
