package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/broker/api/apitest"
)

// TestErrorBodies checks that every kind of failure answers with the
// status and a {code, message, field} body naming the field at fault.
func TestErrorBodies(t *testing.T) {
	fx := newFixture(t)
	good := `{"count":2,"cores":1,"memory_mib":1024,"duration":"1h"}`
	tests := []struct {
		name       string
		method     string
		path       string
		who        string
		body       string
		wantStatus int
		wantCode   string
		wantField  string
	}{
		{"no token", "GET", "/v1/leases", "", "", 401, "unauthorized", ""},
		{"malformed JSON", "POST", "/v1/leases", "ada", `{"count":`, 400, "invalid", ""},
		{"wrong type", "POST", "/v1/leases", "ada", `{"count":"two","memory_mib":1024,"duration":"1h"}`, 400, "invalid", "count"},
		{"count zero", "POST", "/v1/leases", "ada", `{"count":0,"memory_mib":1024,"duration":"1h"}`, 400, "invalid", "count"},
		{"too many VMs", "POST", "/v1/leases", "ada", `{"count":100000,"memory_mib":1024,"duration":"1h"}`, 400, "invalid", "count"},
		{"missing memory", "POST", "/v1/leases", "ada", `{"duration":"1h"}`, 400, "invalid", "memory_mib"},
		{"unknown field", "POST", "/v1/leases", "ada", `{"memory_mib":1024,"duration":"1h","colour":"red"}`, 400, "invalid", "colour"},
		{"bad duration", "POST", "/v1/leases", "ada", `{"memory_mib":1024,"duration":"soon"}`, 400, "invalid", "duration"},
		{"negative duration", "POST", "/v1/leases", "ada", `{"memory_mib":1024,"duration":-5}`, 400, "invalid", "duration"},
		{"duration of a year and more", "POST", "/v1/leases", "ada", `{"memory_mib":1024,"duration":"400d"}`, 400, "invalid", "duration"},
		{"bad start_by", "POST", "/v1/leases", "ada", `{"memory_mib":1024,"duration":"1h","start_by":"tomorrow"}`, 400, "invalid", "start_by"},
		{"start_by far away", "POST", "/v1/leases", "ada", `{"memory_mib":1024,"duration":"1h","start_by":"2999-01-01T00:00:00Z"}`, 400, "invalid", "start_by"},
		{"start_by before earliest_start", "POST", "/v1/leases", "ada", `{"memory_mib":1024,"duration":"1h","earliest_start":"` + time.Now().Add(2*time.Hour).Format(time.RFC3339) + `","start_by":"` + time.Now().Add(time.Hour).Format(time.RFC3339) + `"}`, 400, "invalid", "start_by"},
		{"bad lease id", "POST", "/v1/leases", "ada", `{"id":"Bad Id!","memory_mib":1024,"duration":"1h"}`, 400, "invalid", "id"},
		{"existing id", "POST", "/v1/leases", "ada", `{"id":"l-ada","memory_mib":1024,"duration":"1h"}`, 409, "conflict", "id"},
		{"another group", "POST", "/v1/leases", "ada", `{"group":"biology","memory_mib":1024,"duration":"1h"}`, 403, "forbidden", "group"},
		{"admin without a group", "POST", "/v1/leases", "root", good, 400, "invalid", "group"},
		{"empty body", "POST", "/v1/leases", "ada", ``, 400, "invalid", ""},
		{"body is an array", "POST", "/v1/leases", "ada", `[1,2]`, 400, "invalid", ""},
		{"unknown state filter", "GET", "/v1/leases?state=sleeping", "ada", "", 400, "invalid", "state"},
		{"bad consistent flag", "GET", "/v1/leases?consistent=maybe", "ada", "", 400, "invalid", "consistent"},
		{"no such lease", "GET", "/v1/leases/l-nope", "ada", "", 404, "not_found", "id"},
		{"ended already", "DELETE", "/v1/leases/l-ada", "ada", "", 200, "", ""},
		{"ended twice", "DELETE", "/v1/leases/l-ada", "ada", "", 409, "conflict", "id"},
		{"weight zero", "PUT", "/v1/shares/physics", "root", `{"weight":0.0,"quota":{"max_cores":-1}}`, 400, "invalid", "quota.max_cores"},
		{"own parent", "PUT", "/v1/shares/physics", "root", `{"parent":"physics"}`, 400, "invalid", "parent"},
		{"bad quota lease", "PUT", "/v1/shares/physics", "root", `{"quota":{"max_lease":"forever"}}`, 400, "invalid", "quota.max_lease"},
		{"a group", "PUT", "/v1/shares/physics", "root", `{}`, 200, "", ""},
		{"a subgroup", "PUT", "/v1/shares/science", "root", `{"parent":"physics"}`, 200, "", ""},
		{"parent cycle", "PUT", "/v1/shares/physics", "root", `{"parent":"science"}`, 400, "invalid", "parent"},
		{"bad policy", "PUT", "/v1/policy", "root", `{"text":"reserve = 7\n"}`, 400, "invalid", "text"},
		{"bad role", "POST", "/v1/users", "root", `{"name":"cal","group":"physics","role":"king"}`, 400, "invalid", "role"},
		{"bad user name", "POST", "/v1/users", "root", `{"name":"","group":"physics"}`, 400, "invalid", "name"},
		{"no such user", "DELETE", "/v1/users/nobody", "root", "", 404, "not_found", "name"},
		{"no such token", "DELETE", "/v1/tokens/nope", "ada", "", 404, "not_found", "id"},
		{"token for nobody", "POST", "/v1/tokens", "root", `{"user":"nobody"}`, 404, "not_found", "user"},
		{"host without cores", "POST", "/v1/hosts", "root", `{"name":"h9","cores":0,"memory_mib":1}`, 400, "invalid", "cores"},
		{"host again, other size", "POST", "/v1/hosts", "root", `{"name":"h01","cores":4,"memory_mib":1}`, 409, "conflict", "name"},
		{"busy host", "DELETE", "/v1/hosts/h01", "root", "", 409, "conflict", "name"},
		{"no such host", "DELETE", "/v1/hosts/h77", "root", "", 404, "not_found", "name"},
		{"no such member", "DELETE", "/v1/cluster/members/n9", "root", "", 404, "not_found", "id"},
		{"no such route", "GET", "/v2/leases", "ada", "", 404, "not_found", ""},
		{"wrong method", "PATCH", "/v1/leases", "ada", "", 405, "invalid", ""},
		{"body too large", "POST", "/v1/leases", "ada", `{"image":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "invalid", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			a := fx.do(t, tt.method, tt.path, fx.tokens[tt.who], body)
			if a.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", a.status, tt.wantStatus, a)
			}
			if tt.wantCode == "" {
				return
			}
			e := errorBody(t, a)
			if diff := cmp.Diff([]string{tt.wantCode, tt.wantField}, []string{e.Code, e.Field}); diff != "" {
				t.Errorf("code, field (-want +got):\n%s\nbody: %s", diff, a)
			}
			if ct := a.header.Get("Content-Type"); !strings.Contains(ct, "json") {
				t.Errorf("Content-Type %q, want JSON", ct)
			}
		})
	}
}

type temporary struct{}

func (temporary) Error() string   { return "no leader" }
func (temporary) Temporary() bool { return true }

var errNoLeader = errors.New("server: not the leader")

// TestClusterTrouble checks that cluster trouble answers 503 with
// Retry-After, that a not-leader strong read redirects, and that other
// backend failures are 500s with our body.
func TestClusterTrouble(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		wantStatus   int
		wantCode     string
		wantLocation string
	}{
		{"temporary error", temporary{}, 503, "unavailable", ""},
		{"configured as unavailable", errNoLeader, 503, "unavailable", ""},
		{"deadline", context.DeadlineExceeded, 503, "unavailable", ""},
		{"leader elsewhere", &notLeader{"http://10.0.0.2:7401"}, 307, "unavailable", "http://10.0.0.2:7401/v1/leases?consistent=true"},
		{"anything else", errors.New("disk on fire"), 500, "internal", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			a, err := api.New(api.Config{
				Backend: fx.fake, Logger: apitest.Logger(t),
				Unavailable: func(err error) bool { return errors.Is(err, errNoLeader) },
				LeaderAPI: func(err error) (string, bool) {
					var nl *notLeader
					if errors.As(err, &nl) {
						return nl.api, true
					}
					return "", false
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			fx.h = a.Handler()
			tok := fx.tokens["ada"]
			fx.fake.Err = tt.err
			got := fx.do(t, "GET", "/v1/leases?consistent=true", tok, nil)
			if got.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", got.status, tt.wantStatus, got)
			}
			if e := errorBody(t, got); e.Code != tt.wantCode {
				t.Errorf("code %q, want %q", e.Code, tt.wantCode)
			}
			if tt.wantStatus == 503 && got.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if loc := got.header.Get("Location"); loc != tt.wantLocation {
				t.Errorf("Location %q, want %q", loc, tt.wantLocation)
			}
			if tt.wantStatus == 500 && strings.Contains(got.String(), "disk on fire") {
				t.Errorf("a 500 shows the internal error to the client: %s", got)
			}
		})
	}
}

type notLeader struct{ api string }

func (e *notLeader) Error() string { return "not the leader" }

// TestPanicIsA500 checks that the recover middleware answers a panic with
// a JSON 500 and the node keeps serving.
func TestPanicIsA500(t *testing.T) {
	fx := newFixture(t)
	a, err := api.New(api.Config{Backend: panicky{fx.fake}, Logger: apitest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	fx.h = a.Handler()
	got := fx.do(t, "GET", "/v1/cluster", fx.tokens["root"], nil)
	if got.status != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500; body %s", got.status, got)
	}
	if e := errorBody(t, got); e.Code != "internal" {
		t.Errorf("code %q, want internal", e.Code)
	}
}

// panicky panics where a backend should answer.
type panicky struct{ *apitest.Fake }

func (panicky) Status(context.Context) (broker.ClusterStatus, error) { panic("boom") }
