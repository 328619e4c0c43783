package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// TestLeaseLifecycle creates, shows, lists and terminates a lease the way
// the CLI does.
func TestLeaseLifecycle(t *testing.T) {
	fx := newFixture(t)
	ada := fx.tokens["ada"]
	a := fx.do(t, "POST", "/v1/leases", ada, map[string]any{"count": 3, "cores": 2, "memory_mib": 4096, "image": "ubuntu-22.04-mpi", "duration": "3h"})
	if a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a)
	}
	l := decode[broker.Lease](t, a)
	if !strings.HasPrefix(string(l.ID), "l-") || a.header.Get("Location") != "/v1/leases/"+string(l.ID) {
		t.Errorf("id %q, Location %q; want a made-up l-… id and its URL", l.ID, a.header.Get("Location"))
	}
	want := broker.Lease{
		ID: l.ID, State: lease.StateStarting, Site: "local", Group: "physics", User: "ada",
		Request:  lease.Request{ID: l.ID, Group: "physics", User: "ada", Count: 3, Shape: lease.Shape{Cores: 2, MemoryMiB: 4096, Image: "ubuntu-22.04-mpi"}, Duration: 3 * time.Hour, AllOrNothing: true},
		Decision: lease.Decision{Kind: lease.Granted, Site: "local", InShare: true},
	}
	ignore := cmpopts.IgnoreFields(broker.Lease{}, "Start", "End", "VMs", "History", "Request.Submitted", "Decision.Start", "Decision.End", "Decision.Placement", "Decision.InShare")
	if diff := cmp.Diff(want, l, ignore); diff != "" {
		t.Errorf("created lease (-want +got):\n%s", diff)
	}
	if len(l.VMs) != 3 || l.VMs[0].Host == "" || l.VMs[0].Address == "" || l.End.Sub(l.Start) != 3*time.Hour {
		t.Errorf("VMs %+v from %s to %s; want 3 placed VMs for 3h", l.VMs, l.Start, l.End)
	}

	// Numbers of seconds work as durations too.
	if a := fx.do(t, "POST", "/v1/leases", ada, map[string]any{"id": "l-secs", "memory_mib": 1, "duration": 5400}); a.status != 201 || decode[broker.Lease](t, a).Request.Duration != 90*time.Minute {
		t.Errorf("duration in seconds: %d %s", a.status, a)
	}

	shown := decode[broker.Lease](t, fx.do(t, "GET", "/v1/leases/"+string(l.ID), ada, nil))
	if diff := cmp.Diff(l, shown); diff != "" {
		t.Errorf("show differs from create (-create +show):\n%s", diff)
	}
	list := decode[[]broker.Lease](t, fx.do(t, "GET", "/v1/leases?state=starting&user=ada", ada, nil))
	var ids []lease.ID
	for _, x := range list {
		ids = append(ids, x.ID)
	}
	if diff := cmp.Diff([]lease.ID{"l-ada", l.ID, "l-secs"}, ids); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	ended := decode[broker.Lease](t, fx.do(t, "DELETE", "/v1/leases/"+string(l.ID), ada, nil))
	if ended.State != lease.StateEnded || ended.EndReason != "terminated by ada" {
		t.Errorf("terminated lease is %s (%s), want ended by ada", ended.State, ended.EndReason)
	}
}

// TestDecisions checks that every decision is a 201 with the lease, and
// that what-if changes nothing.
func TestDecisions(t *testing.T) {
	fx := newFixture(t)
	ada, bob := fx.tokens["ada"], fx.tokens["bob"]
	// The site has 20 cores; 3 are taken.
	tests := []struct {
		name       string
		token      string
		body       map[string]any
		wantKind   lease.Kind
		wantReason lease.Reason
	}{
		{"fits", ada, map[string]any{"count": 4, "cores": 2, "memory_mib": 1024, "duration": "2h"}, lease.Granted, ""},
		{"too large", ada, map[string]any{"count": 40, "cores": 2, "memory_mib": 1024, "duration": "2h"}, lease.Rejected, lease.ReasonTooLarge},
		{"start_by passed", bob, map[string]any{"count": 1, "cores": 1, "memory_mib": 1024, "duration": "2h", "start_by": time.Now().Add(-time.Hour).Format(time.RFC3339)}, lease.Rejected, lease.ReasonStartBy},
		{"waits", bob, map[string]any{"count": 2, "cores": 8, "memory_mib": 1024, "duration": "2h"}, lease.Deferred, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fx.fake.Proposed
			w := fx.do(t, "POST", "/v1/leases/whatif", tt.token, tt.body)
			if w.status != 200 {
				t.Fatalf("whatif: %d %s", w.status, w)
			}
			if fx.fake.Proposed != before {
				t.Errorf("whatif proposed a command")
			}
			wi := decode[api.WhatIf](t, w)
			a := fx.do(t, "POST", "/v1/leases", tt.token, tt.body)
			if a.status != 201 {
				t.Fatalf("create: %d %s", a.status, a)
			}
			l := decode[broker.Lease](t, a)
			if l.Decision.Kind != tt.wantKind || l.Decision.Reason != tt.wantReason && tt.wantReason != "" {
				t.Errorf("decision %s (%s: %s), want %s (%s)", l.Decision.Kind, l.Decision.Reason, l.Decision.Message, tt.wantKind, tt.wantReason)
			}
			if wi.Decision.Kind != l.Decision.Kind {
				t.Errorf("whatif said %s, create got %s", wi.Decision.Kind, l.Decision.Kind)
			}
		})
	}
}

func TestSharesAndPolicy(t *testing.T) {
	fx := newFixture(t)
	root := fx.tokens["root"]
	a := fx.do(t, "PUT", "/v1/shares/physics", root, map[string]any{"weight": 3, "quota": map[string]any{"max_cores": 64, "max_lease": "36h"}})
	if a.status != 200 {
		t.Fatalf("set share: %d %s", a.status, a)
	}
	// A second change keeps the quota fields it does not name.
	a = fx.do(t, "PUT", "/v1/shares/physics", root, map[string]any{"quota": map[string]any{"max_vms": 8}})
	row := decode[api.ShareRow](t, a)
	if diff := cmp.Diff(api.Quota{MaxCores: 64, MaxLease: "1d12h", MaxVMs: 8}, row.Quota); diff != "" || row.Weight != 3 {
		t.Errorf("physics weight %v, quota (-want +got):\n%s", row.Weight, diff)
	}
	rows := decode[[]api.ShareRow](t, fx.do(t, "GET", "/v1/shares", fx.tokens["ada"], nil))
	var groups []string
	var eff float64
	for _, r := range rows {
		groups = append(groups, r.Group)
		eff += r.EffectiveUsage
	}
	if diff := cmp.Diff([]string{"biology", "physics"}, groups); diff != "" {
		t.Errorf("share rows (-want +got):\n%s", diff)
	}
	if eff < 0.999 || eff > 1.001 {
		t.Errorf("effective usage sums to %v, want 1", eff)
	}

	// The policy reads back as TOML that parses to what the state holds,
	// and goes in again.
	doc := decode[api.PolicyDoc](t, fx.do(t, "GET", "/v1/policy", fx.tokens["ada"], nil))
	p, err := policies.Parse("got.toml", strings.NewReader(doc.Text))
	if err != nil {
		t.Fatalf("policy text does not parse: %v\n%s", err, doc.Text)
	}
	if g := p.Groups["physics"]; g == nil || g.Weight != 3 || g.Quota.MaxCores != 64 {
		t.Errorf("policy's physics group: %+v", g)
	}
	if a := fx.do(t, "PUT", "/v1/policy", root, map[string]any{"text": doc.Text + "\n[groups.chemistry]\nweight = 2\n"}); a.status != 200 {
		t.Fatalf("set policy: %d %s", a.status, a)
	}
	doc = decode[api.PolicyDoc](t, fx.do(t, "GET", "/v1/policy", root, nil))
	if !strings.Contains(doc.Text, "[groups.chemistry]") {
		t.Errorf("the new policy lacks chemistry:\n%s", doc.Text)
	}
}

// TestEncodePolicy checks that every example policy survives a round trip
// through the encoder.
func TestEncodePolicy(t *testing.T) {
	names := []string{"default.toml", "guarantee.toml", "small-site.toml"}
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			p, err := policies.LoadFS(policies.Examples, n)
			if err != nil {
				t.Fatal(err)
			}
			text := api.EncodePolicy(p)
			back, err := policies.Parse("encoded.toml", strings.NewReader(text))
			if err != nil {
				t.Fatalf("encoded policy does not parse: %v\n%s", err, text)
			}
			if diff := cmp.Diff(p, back, cmpopts.IgnoreUnexported(policies.Policy{})); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
	p := policies.Default()
	p.Groups["partner:siteB"] = &policies.Group{Name: "partner:siteB", Weight: 0.5, Quota: policies.Quota{MaxMemoryMiB: 1 << 20}, Overflow: policies.Overflow{Sites: []string{"ec2 \"east\""}, BudgetCoreHours: -1, Period: policies.Day}}
	if _, err := policies.Parse("odd.toml", strings.NewReader(api.EncodePolicy(p))); err != nil {
		t.Errorf("a group name with a colon and a quoted site: %v\n%s", err, api.EncodePolicy(p))
	}
}

// TestTokens makes a token, uses it, lists it without its hash, and
// revokes it.
func TestTokens(t *testing.T) {
	fx := newFixture(t)
	a := fx.do(t, "POST", "/v1/tokens", fx.tokens["root"], map[string]any{"user": "bob", "name": "ci"})
	if a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a)
	}
	nt := decode[api.NewTokenInfo](t, a)
	id, secret, ok := api.ParseToken(nt.Token)
	if !ok || id != nt.ID || nt.User != "bob" || nt.Name != "ci" || nt.Created.IsZero() || len(secret) < 40 {
		t.Errorf("new token %+v", nt)
	}
	if a := fx.do(t, "GET", "/v1/leases/l-bob", nt.Token, nil); a.status != 200 {
		t.Errorf("the new token does not work: %d %s", a.status, a)
	}
	l := fx.do(t, "GET", "/v1/tokens", nt.Token, nil)
	if strings.Contains(l.String(), "hash") || strings.Contains(l.String(), secret) {
		t.Errorf("token list shows a hash or a secret: %s", l)
	}
	if got := len(decode[[]api.TokenInfo](t, l)); got != 2 {
		t.Errorf("bob has %d tokens, want 2", got)
	}
	var stored broker.Token
	fx.fake.State(func(st *broker.State) { stored, _ = st.Token(id) })
	if string(stored.Hash) == secret || len(stored.Hash) != 32 {
		t.Errorf("the state keeps %q, want a SHA-256", stored.Hash)
	}
	if a := fx.do(t, "DELETE", "/v1/tokens/"+id, nt.Token, nil); a.status != 204 {
		t.Fatalf("revoke: %d %s", a.status, a)
	}
	if a := fx.do(t, "GET", "/v1/leases", nt.Token, nil); a.status != 401 {
		t.Errorf("a revoked token: %d, want 401", a.status)
	}
}

func TestMetrics(t *testing.T) {
	fx := newFixture(t)
	fx.do(t, "POST", "/v1/leases", fx.tokens["ada"], map[string]any{"memory_mib": 1, "duration": "1h"})
	fx.do(t, "GET", "/v1/leases/l-ada", fx.tokens["ada"], nil)
	fx.do(t, "GET", "/v1/leases/l-nope", fx.tokens["ada"], nil)
	m := fx.do(t, "GET", "/metrics", "", nil).String()
	for _, want := range []string{
		`fairlease_http_requests_total{code="201",method="POST",route="/v1/leases"} 1`,
		`fairlease_http_requests_total{code="200",method="GET",route="/v1/leases/{id}"} 1`,
		`fairlease_http_requests_total{code="404",method="GET",route="/v1/leases/{id}"} 1`,
		`fairlease_http_request_duration_seconds_bucket{method="GET",route="/v1/leases/{id}",le="+Inf"} 2`,
		`fairlease_lease_decisions_total{kind="granted"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
