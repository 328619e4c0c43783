package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/broker/api/apitest"
	"github.com/fairlease/fairlease/lease"
)

// fixture is a site with two groups: physics (ada and amy are users, max
// their manager) and biology (bob, and bea their manager), an admin
// (root) and one lease of ada, amy and bob each.
type fixture struct {
	fake    *apitest.Fake
	api     *api.API
	h       http.Handler
	tokens  map[string]string // user → token
	tokenID map[string]string // user → token id
}

func newFixture(t testing.TB) *fixture { return newSite(t, true) }

// newSite is newFixture, with its hosts and leases or only its users.
func newSite(t testing.TB, hostsAndLeases bool) *fixture {
	t.Helper()
	f := apitest.NewFake()
	a, err := api.New(api.Config{Backend: f, Logger: apitest.Logger(t), ImageDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{fake: f, api: a, h: a.Handler(), tokens: map[string]string{}, tokenID: map[string]string{}}
	for _, u := range []struct {
		name  string
		group lease.GroupID
		role  broker.Role
	}{
		{"root", "", broker.RoleAdmin},
		{"ada", "physics", broker.RoleUser},
		{"amy", "physics", broker.RoleUser},
		{"max", "physics", broker.RoleManager},
		{"bob", "biology", broker.RoleUser},
		{"bea", "biology", broker.RoleManager},
	} {
		tok := f.AddUser(t, u.name, u.group, u.role)
		fx.tokens[u.name] = tok
		id, _, _ := api.ParseToken(tok)
		fx.tokenID[u.name] = id
	}
	if !hostsAndLeases {
		return fx
	}
	f.AddHost(t, "h01", 8, 32768)
	f.AddHost(t, "h02", 8, 32768)
	f.AddHost(t, "spare", 4, 8192)
	for _, l := range []struct {
		id    lease.ID
		user  string
		group lease.GroupID
	}{{"l-ada", "ada", "physics"}, {"l-amy", "amy", "physics"}, {"l-bob", "bob", "biology"}} {
		f.Submit(t, l.user, lease.Request{ID: l.id, Group: l.group, User: lease.UserID(l.user), Count: 1,
			Shape: lease.Shape{Cores: 1, MemoryMiB: 1024}, Duration: time.Hour, AllOrNothing: true})
	}
	if err := f.Join(t.Context(), "n2", "127.0.0.1:7002", "http://127.0.0.1:7402"); err != nil {
		t.Fatal(err)
	}
	return fx
}

// answer is a recorded response.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) String() string { return string(a.body) }

// do sends one request with token (none when empty) to the handler.
func (fx *fixture) do(t testing.TB, method, path, token string, body any) answer {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req := httptest.NewRequestWithContext(t.Context(), method, path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	fx.h.ServeHTTP(w, req)
	return answer{w.Code, w.Header(), w.Body.Bytes()}
}

// errorBody decodes an error answer, failing t unless it has our shape.
func errorBody(t testing.TB, a answer) api.Error {
	t.Helper()
	var e api.Error
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %q is not {code, message, field}: %v", a.body, err)
	}
	if e.Code == "" || e.Message == "" {
		t.Errorf("error body %q lacks a code or a message", a.body)
	}
	return e
}

func decode[T any](t testing.TB, a answer) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, a.body, err)
	}
	return v
}
