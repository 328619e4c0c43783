package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/broker/api/apitest"
	"github.com/fairlease/fairlease/client"
	"github.com/fairlease/fairlease/lease"
)

func setup(t *testing.T) (*apitest.Server, map[string]*client.Client) {
	t.Helper()
	s := apitest.NewServer(t)
	s.Fake.AddHost(t, "h01", 8, 32768)
	s.Fake.AddHost(t, "h02", 8, 32768)
	cs := map[string]*client.Client{}
	for _, u := range []struct {
		name  string
		group lease.GroupID
		role  broker.Role
	}{{"root", "", broker.RoleAdmin}, {"ada", "physics", broker.RoleUser}, {"bob", "biology", broker.RoleUser}} {
		c, err := client.New(s.URL, s.Fake.AddUser(t, u.name, u.group, u.role))
		if err != nil {
			t.Fatal(err)
		}
		cs[u.name] = c
	}
	return s, cs
}

func TestLeaseRoundTrip(t *testing.T) {
	_, cs := setup(t)
	ctx := t.Context()
	ada := cs["ada"]
	l, err := ada.CreateLease(ctx, api.LeaseRequest{Count: 2, Cores: 2, MemoryMiB: 2048, Image: "debian-12", Duration: "2h"})
	if err != nil {
		t.Fatal(err)
	}
	if l.State != lease.StateStarting || l.Decision.Kind != lease.Granted || len(l.VMs) != 2 {
		t.Errorf("created %s (%s) with %d VMs; want starting, granted, 2 VMs", l.State, l.Decision.Kind, len(l.VMs))
	}
	got, err := ada.Lease(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(l, got); diff != "" {
		t.Errorf("show (-create +show):\n%s", diff)
	}
	ls, err := ada.Leases(ctx, client.LeaseFilter{State: lease.StateStarting})
	if err != nil || len(ls) != 1 || ls[0].ID != l.ID {
		t.Errorf("list: %v, %v; want the one lease", ls, err)
	}
	w, err := ada.WhatIf(ctx, api.LeaseRequest{Count: 100, Cores: 1, MemoryMiB: 1, Duration: "1h"})
	if err != nil || w.Decision.Kind != lease.Rejected || w.Decision.Reason != lease.ReasonTooLarge {
		t.Errorf("whatif: %+v, %v; want rejected as too large", w, err)
	}
	ended, err := ada.TerminateLease(ctx, l.ID)
	if err != nil || ended.State != lease.StateEnded {
		t.Errorf("terminate: %v, %v", ended, err)
	}
}

// TestErrors checks that API errors come back as *lease.Error with the
// API's code and field.
func TestErrors(t *testing.T) {
	s, cs := setup(t)
	ctx := t.Context()
	if _, err := cs["bob"].CreateLease(ctx, api.LeaseRequest{ID: "l-bob", MemoryMiB: 1, Duration: "1h"}); err != nil {
		t.Fatal(err)
	}
	anon, _ := client.New(s.URL, "")
	tests := []struct {
		name      string
		call      func() error
		wantCode  string
		wantField string
	}{
		{"no token", func() error { _, err := anon.Leases(ctx, client.LeaseFilter{}); return err }, lease.EUNAUTHORIZED, ""},
		{"another group's lease", func() error { _, err := cs["ada"].Lease(ctx, "l-bob"); return err }, lease.ENOTFOUND, "id"},
		{"not an admin", func() error { _, err := cs["ada"].SetShare(ctx, "physics", api.ShareUpdate{Weight: 2}); return err }, lease.EFORBIDDEN, ""},
		{"bad duration", func() error {
			_, err := cs["ada"].CreateLease(ctx, api.LeaseRequest{MemoryMiB: 1, Duration: "soon"})
			return err
		}, lease.EINVALID, "duration"},
		{"taken id", func() error {
			_, err := cs["bob"].CreateLease(ctx, api.LeaseRequest{ID: "l-bob", MemoryMiB: 1, Duration: "1h"})
			return err
		}, lease.ECONFLICT, "id"},
		{"no such host", func() error { return cs["root"].RemoveHost(ctx, "h99") }, lease.ENOTFOUND, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			le, ok := err.(*lease.Error)
			if !ok {
				t.Fatalf("error %v (%T), want *lease.Error", err, err)
			}
			if diff := cmp.Diff([]string{tt.wantCode, tt.wantField}, []string{le.Code, le.Field}); diff != "" {
				t.Errorf("code, field (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAdmin(t *testing.T) {
	_, cs := setup(t)
	ctx := t.Context()
	root := cs["root"]
	if _, err := root.PutUser(ctx, api.UserRequest{Name: "cal", Group: "physics", Role: "manager"}); err != nil {
		t.Fatal(err)
	}
	tok, err := root.CreateToken(ctx, api.TokenRequest{User: "cal", Name: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	cal, _ := client.New(cs["root"].Addr(), tok.Token)
	us, err := cal.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range us {
		names = append(names, u.Name)
	}
	if diff := cmp.Diff([]string{"ada", "cal"}, names); diff != "" {
		t.Errorf("a physics manager sees (-want +got):\n%s", diff)
	}
	ts, err := cal.Tokens(ctx, "")
	if err != nil || len(ts) != 1 || ts[0].Name != "laptop" {
		t.Errorf("cal's tokens: %+v, %v", ts, err)
	}
	if err := cal.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cal.Users(ctx); lease.ErrorCode(err) != lease.EUNAUTHORIZED {
		t.Errorf("revoked token: %v, want unauthorized", err)
	}
	if _, err := root.AddHost(ctx, api.HostRequest{Name: "h03", Cores: 4, MemoryMiB: 8192}); err != nil {
		t.Fatal(err)
	}
	hs, err := root.Hosts(ctx)
	if err != nil || len(hs) != 3 {
		t.Errorf("hosts: %v, %v", hs, err)
	}
	if err := root.RemoveHost(ctx, "h03"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.SetShare(ctx, "physics", api.ShareUpdate{Weight: 2}); err != nil {
		t.Fatal(err)
	}
	rows, err := root.Shares(ctx)
	if err != nil || len(rows) != 1 || rows[0].Weight != 2 {
		t.Errorf("shares: %+v, %v", rows, err)
	}
	if err := root.Join(ctx, api.MemberRequest{ID: "n2", RaftAddr: "127.0.0.1:7002", APIAddr: "http://127.0.0.1:7402"}); err != nil {
		t.Fatal(err)
	}
	st, err := root.Cluster(ctx)
	if err != nil || len(st.Members) != 2 {
		t.Errorf("cluster: %+v, %v", st, err)
	}
	if err := root.RemoveMember(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.SetPolicy(ctx, "reserve = 0.2\n"); err != nil {
		t.Fatal(err)
	}
	if p, err := root.Policy(ctx); err != nil || p.Name != "default" {
		t.Errorf("policy: %+v, %v", p, err)
	}
	if err := root.Health(ctx); err != nil {
		t.Error(err)
	}
}

// TestRetryAndRedirect checks that reads wait out a 503 and follow a 307
// to the leader with the token.
func TestRetryAndRedirect(t *testing.T) {
	s, _ := setup(t)
	var fails atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fails.Add(1) <= 2 {
			w.Header().Set("Retry-After", "0")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"code":"unavailable","message":"electing"}`))
			return
		}
		w.Header().Set("Location", s.URL+r.URL.RequestURI())
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer flaky.Close()
	tok := s.Fake.AddUser(t, "eve", "physics", broker.RoleUser)
	c, _ := client.New(flaky.URL, tok)
	c.Consistent = true
	if _, err := c.Leases(t.Context(), client.LeaseFilter{}); err != nil {
		t.Fatalf("read through a 503 and a 307: %v", err)
	}
	if n := fails.Load(); n != 3 {
		t.Errorf("%d requests to the follower, want 3", n)
	}
	// Writes are not repeated: their fate is unknown.
	fails.Store(0)
	_, err := c.CreateLease(t.Context(), api.LeaseRequest{MemoryMiB: 1, Duration: "1h"})
	if lease.ErrorCode(err) != api.EUNAVAILABLE || fails.Load() != 1 {
		t.Errorf("write through a 503: %v after %d tries, want unavailable after 1", err, fails.Load())
	}

}

func TestForeignErrorBody(t *testing.T) {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer proxy.Close()
	c, _ := client.New(proxy.URL, "t")
	_, err := c.Hosts(context.Background())
	if lease.ErrorCode(err) != lease.EINTERNAL {
		t.Errorf("a proxy's 502: %v, want an internal error", err)
	}
}

func TestNewAddresses(t *testing.T) {
	for _, tt := range []struct {
		addr, want string
		ok         bool
	}{
		{"127.0.0.1:7070", "http://127.0.0.1:7070", true},
		{"https://broker.example:7443/", "https://broker.example:7443", true},
		{"ftp://x", "", false},
		{"", "", false},
	} {
		c, err := client.New(tt.addr, "")
		if (err == nil) != tt.ok || (err == nil && c.Addr() != tt.want) {
			t.Errorf("New(%q): %v, %v; want %q ok=%v", tt.addr, c, err, tt.want, tt.ok)
		}
	}
}
