package api_test

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// routes is every route of the API under /v1/, with its methods.
var routes = map[string][]string{
	"/v1/leases":               {"get", "post"},
	"/v1/leases/{id}":          {"delete", "get"},
	"/v1/leases/whatif":        {"post"},
	"/v1/shares":               {"get"},
	"/v1/shares/{group}":       {"put"},
	"/v1/policy":               {"get", "put"},
	"/v1/users":                {"get", "post"},
	"/v1/users/{name}":         {"delete"},
	"/v1/tokens":               {"get", "post"},
	"/v1/tokens/{id}":          {"delete"},
	"/v1/hosts":                {"get", "post"},
	"/v1/hosts/{name}":         {"delete"},
	"/v1/cluster":              {"get"},
	"/v1/cluster/members":      {"post"},
	"/v1/cluster/members/{id}": {"delete"},

	"/v1/hosts/join-token":               {"post"},
	"/v1/agent/register":                 {"post"},
	"/v1/agent/heartbeat":                {"post"},
	"/v1/agent/assignments":              {"get"},
	"/v1/agent/vms":                      {"post"},
	"/v1/images":                         {"get", "post"},
	"/v1/images/{name}":                  {"delete", "get"},
	"/v1/images/{digest}/blob":           {"get"},
	"/v1/images/{name}/share":            {"put"},
	"/v1/images/{name}/torrent":          {"get"},
	"/v1/access-keys":                    {"get", "post"},
	"/v1/access-keys/{id}":               {"delete"},
	"/v1/sites":                          {"get", "post"},
	"/v1/sites/{name}":                   {"delete"},
	"/v1/swarm/announce/{token}":         {"get"},
	"/v1/swarm/webseed/{token}/{digest}": {"get"},
	"/v1/leases/{id}/vms/{index}/log":    {"get"},
}

func TestOpenAPIDocument(t *testing.T) {
	fx := newFixture(t)
	a := fx.do(t, "GET", "/v1/openapi.json", "", nil)
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
		Comps   struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
				Required   []string                   `json:"required"`
			} `json:"schemas"`
			Security map[string]json.RawMessage `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(a.body, &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q, want 3.1", doc.OpenAPI)
	}
	got := map[string][]string{}
	for p, ops := range doc.Paths {
		for m := range ops {
			got[p] = append(got[p], m)
		}
		sort.Strings(got[p])
	}
	if diff := cmp.Diff(routes, got); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	// The schemas name the fields clients write and read.
	for schema, fields := range map[string][]string{
		"LeaseRequest": {"id", "group", "count", "cores", "memory_mib", "image", "duration", "earliest_start", "start_by"},
		"Lease":        {"id", "state", "site", "start", "end", "vms", "group", "user", "decision"},
		"VM":           {"index", "name", "address", "host"},
		"Decision":     {"kind", "start", "message", "reason", "earliest_local"},
		"Error":        {"code", "message", "field"},
		"ShareRow":     {"group", "weight", "share", "usage", "effective_usage", "fairshare", "held", "reserved", "queued", "quota"},
		"NewTokenInfo": {"id", "user", "token"},
		"HostRequest":  {"name", "cores", "memory_mib"},
	} {
		s, ok := doc.Comps.Schemas[schema]
		if !ok {
			t.Errorf("no schema %s", schema)
			continue
		}
		for _, f := range fields {
			if _, ok := s.Properties[f]; !ok {
				t.Errorf("schema %s lacks field %s", schema, f)
			}
		}
	}
	if r := doc.Comps.Schemas["LeaseRequest"].Required; !slices.Contains(r, "duration") || slices.Contains(r, "group") {
		t.Errorf("LeaseRequest requires %v; want duration required, group optional", r)
	}
	if _, ok := doc.Comps.Security["bearer"]; !ok {
		t.Errorf("no bearer security scheme")
	}
	// Every operation documents the error answers, and none documents a
	// 422 that the API never sends.
	for p, ops := range doc.Paths {
		for m, raw := range ops {
			var op struct {
				Responses map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", m, p, err)
			}
			if _, ok := op.Responses["422"]; ok {
				t.Errorf("%s %s documents 422", m, p)
			}
			// BitTorrent clients carry a token in the path, not a bearer.
			if _, ok := op.Responses["401"]; !ok && !strings.HasPrefix(p, "/v1/swarm/") {
				t.Errorf("%s %s does not document 401", m, p)
			}
		}
	}
}
