package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Callers of the matrix: a user and a manager of physics, an admin, no
// token, and a token that does not check out.
var callers = []string{"user", "manager", "admin", "none", "bad"}

var callerUser = map[string]string{"user": "ada", "manager": "max", "admin": "root"}

// want lists the expected status per caller, in the order of callers.
type want [5]int

// unauth: every authenticated role gets ok; none and bad get 401.
func unauth(user, manager, admin int) want {
	return want{user, manager, admin, http.StatusUnauthorized, http.StatusUnauthorized}
}

func public(code int) want { return want{code, code, code, code, code} }

const (
	ok       = http.StatusOK
	created  = http.StatusCreated
	gone     = http.StatusNoContent
	forbid   = http.StatusForbidden
	notFound = http.StatusNotFound
	conflict = http.StatusConflict
)

// TestAuthorizationMatrix runs every endpoint as every kind of caller,
// on a resource of the caller's own group (physics) and of the other
// group (biology), each case on a fresh site.
func TestAuthorizationMatrix(t *testing.T) {
	lease := func(group string) map[string]any {
		return map[string]any{"group": group, "count": 1, "cores": 1, "memory_mib": 512, "duration": "1h"}
	}
	tests := []struct {
		endpoint string
		target   string // own, other, or - when there is no group to speak of
		method   string
		path     func(fx *fixture, who string) string
		body     any
		want     want
	}{
		{"create lease", "own", "POST", fixed("/v1/leases"), lease("physics"), unauth(created, created, created)},
		{"create lease", "other", "POST", fixed("/v1/leases"), lease("biology"), unauth(forbid, forbid, created)},
		{"list leases", "-", "GET", fixed("/v1/leases"), nil, unauth(ok, ok, ok)},
		{"list leases", "own", "GET", fixed("/v1/leases?group=physics"), nil, unauth(ok, ok, ok)},
		{"list leases", "other", "GET", fixed("/v1/leases?group=biology"), nil, unauth(forbid, forbid, ok)},
		{"show lease", "own", "GET", fixed("/v1/leases/l-ada"), nil, unauth(ok, ok, ok)},
		{"show lease", "other", "GET", fixed("/v1/leases/l-bob"), nil, unauth(notFound, notFound, ok)},
		{"terminate lease", "own (caller's)", "DELETE", fixed("/v1/leases/l-ada"), nil, unauth(ok, ok, ok)},
		{"terminate lease", "own (another user's)", "DELETE", fixed("/v1/leases/l-amy"), nil, unauth(forbid, ok, ok)},
		{"terminate lease", "other", "DELETE", fixed("/v1/leases/l-bob"), nil, unauth(notFound, notFound, ok)},
		{"whatif", "own", "POST", fixed("/v1/leases/whatif"), lease("physics"), unauth(ok, ok, ok)},
		{"whatif", "other", "POST", fixed("/v1/leases/whatif"), lease("biology"), unauth(forbid, forbid, ok)},
		{"list shares", "-", "GET", fixed("/v1/shares"), nil, unauth(ok, ok, ok)},
		{"set share", "own", "PUT", fixed("/v1/shares/physics"), map[string]any{"weight": 2}, unauth(forbid, forbid, ok)},
		{"set share", "other", "PUT", fixed("/v1/shares/biology"), map[string]any{"weight": 2, "quota": map[string]any{"max_cores": 8}}, unauth(forbid, forbid, ok)},
		{"get policy", "-", "GET", fixed("/v1/policy"), nil, unauth(ok, ok, ok)},
		{"set policy", "-", "PUT", fixed("/v1/policy"), map[string]any{"text": "reserve = 0.1\n"}, unauth(forbid, forbid, ok)},
		{"list users", "-", "GET", fixed("/v1/users"), nil, unauth(ok, ok, ok)},
		{"create user", "own", "POST", fixed("/v1/users"), map[string]any{"name": "cal", "group": "physics"}, unauth(forbid, created, created)},
		{"create user", "own, as manager", "POST", fixed("/v1/users"), map[string]any{"name": "cal", "group": "physics", "role": "manager"}, unauth(forbid, forbid, created)},
		{"create user", "other", "POST", fixed("/v1/users"), map[string]any{"name": "cal", "group": "biology"}, unauth(forbid, forbid, created)},
		{"change user", "own", "POST", fixed("/v1/users"), map[string]any{"name": "amy", "group": "physics", "role": "user"}, unauth(forbid, created, created)},
		// The manager cannot see bob, but names are unique: "taken".
		{"change user", "other", "POST", fixed("/v1/users"), map[string]any{"name": "bob", "group": "physics"}, unauth(forbid, conflict, created)},
		{"delete user", "own", "DELETE", fixed("/v1/users/amy"), nil, unauth(forbid, gone, gone)},
		{"delete user", "own manager", "DELETE", fixed("/v1/users/max"), nil, unauth(forbid, conflict, gone)},
		{"delete user", "other", "DELETE", fixed("/v1/users/bob"), nil, unauth(forbid, notFound, gone)},
		{"create token", "own", "POST", fixed("/v1/tokens"), map[string]any{"name": "laptop"}, unauth(created, created, created)},
		{"create token", "other", "POST", fixed("/v1/tokens"), map[string]any{"user": "bob"}, unauth(forbid, forbid, created)},
		{"list tokens", "own", "GET", fixed("/v1/tokens"), nil, unauth(ok, ok, ok)},
		{"list tokens", "other", "GET", fixed("/v1/tokens?user=bob"), nil, unauth(forbid, forbid, ok)},
		{"revoke token", "own", "DELETE", func(fx *fixture, who string) string { return "/v1/tokens/" + fx.tokenID[orUser(who)] }, nil, unauth(gone, gone, gone)},
		{"revoke token", "other", "DELETE", func(fx *fixture, _ string) string { return "/v1/tokens/" + fx.tokenID["bob"] }, nil, unauth(notFound, notFound, gone)},
		{"list hosts", "-", "GET", fixed("/v1/hosts"), nil, unauth(ok, ok, ok)},
		{"add host", "-", "POST", fixed("/v1/hosts"), map[string]any{"name": "h09", "cores": 8, "memory_mib": 16384}, unauth(forbid, forbid, created)},
		{"remove host", "-", "DELETE", fixed("/v1/hosts/spare"), nil, unauth(forbid, forbid, gone)},
		{"cluster status", "-", "GET", fixed("/v1/cluster"), nil, unauth(forbid, forbid, ok)},
		{"join member", "-", "POST", fixed("/v1/cluster/members"), map[string]any{"id": "n3", "raft_addr": "127.0.0.1:7003", "api_addr": "http://127.0.0.1:7403"}, unauth(forbid, forbid, gone)},
		{"remove member", "-", "DELETE", fixed("/v1/cluster/members/n2"), nil, unauth(forbid, forbid, gone)},
		{"join token", "-", "POST", fixed("/v1/hosts/join-token"), nil, unauth(forbid, forbid, created)},
		{"agent register", "-", "POST", fixed("/v1/agent/register"), map[string]any{"host": "a1", "cores": 2, "memory_mib": 1024}, unauth(forbid, forbid, forbid)},
		{"agent heartbeat", "-", "POST", fixed("/v1/agent/heartbeat"), map[string]any{"host": "h01", "cores": 8, "memory_mib": 32768}, unauth(forbid, forbid, forbid)},
		{"agent assignments", "-", "GET", fixed("/v1/agent/assignments?wait=0s"), nil, unauth(forbid, forbid, forbid)},
		{"agent vm state", "-", "POST", fixed("/v1/agent/vms"), map[string]any{"id": "l-ada", "index": 0, "state": "running"}, unauth(forbid, forbid, forbid)},
		{"list images", "-", "GET", fixed("/v1/images"), nil, unauth(ok, ok, ok)},
		{"push image", "own", "POST", fixed("/v1/images?name=img"), []byte("bytes"), unauth(created, created, http.StatusBadRequest)},
		{"push image", "public", "POST", fixed("/v1/images?name=img&public=true"), []byte("bytes"), unauth(forbid, forbid, created)},
		{"vm log", "own", "GET", fixed("/v1/leases/l-ada/vms/0/log"), nil, unauth(notFound, notFound, notFound)},
		{"vm log", "other", "GET", fixed("/v1/leases/l-bob/vms/0/log"), nil, unauth(notFound, notFound, notFound)},
		{"create access key", "own", "POST", fixed("/v1/access-keys"), map[string]any{}, unauth(created, created, created)},
		{"create access key", "other", "POST", fixed("/v1/access-keys"), map[string]any{"user": "bob"}, unauth(forbid, forbid, created)},
		{"list access keys", "own", "GET", fixed("/v1/access-keys"), nil, unauth(ok, ok, ok)},
		{"list access keys", "other", "GET", fixed("/v1/access-keys?user=bob"), nil, unauth(forbid, forbid, ok)},
		{"revoke access key", "other", "DELETE", fixed("/v1/access-keys/AKIANOSUCHKEY0000000"), nil, unauth(notFound, notFound, notFound)},
		{"list sites", "-", "GET", fixed("/v1/sites"), nil, unauth(ok, ok, ok)},
		{"add site", "-", "POST", fixed("/v1/sites"), map[string]any{"name": "ec2", "region": "us-east-1", "access_key_id": "AKIAX", "secret_access_key": "s"}, unauth(forbid, forbid, created)},
		{"remove site", "-", "DELETE", fixed("/v1/sites/nosuch"), nil, unauth(forbid, forbid, notFound)},
		{"openapi", "-", "GET", fixed("/v1/openapi.json"), nil, public(ok)},
		{"healthz", "-", "GET", fixed("/healthz"), nil, public(ok)},
		{"metrics", "-", "GET", fixed("/metrics"), nil, public(ok)},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint+"/"+tt.target, func(t *testing.T) {
			var got want
			for i, c := range callers {
				fx := newFixture(t)
				tok := ""
				switch c {
				case "none":
				case "bad":
					tok = "flt_" + fx.tokenID["ada"] + "_notthesecret"
				default:
					tok = fx.tokens[callerUser[c]]
				}
				a := fx.do(t, tt.method, tt.path(fx, c), tok, tt.body)
				got[i] = a.status
				if a.status >= 400 {
					errorBody(t, a)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s %s: status per caller %v (-want +got):\n%s", tt.method, tt.path(newFixture(t), "admin"), callers, diff)
			}
		})
	}
}

func fixed(p string) func(*fixture, string) string { return func(*fixture, string) string { return p } }

// orUser is the user a caller of the matrix is; none and bad borrow ada's
// token id so that only the token is at fault.
func orUser(c string) string {
	if u, ok := callerUser[c]; ok {
		return u
	}
	return "ada"
}

// TestVisibility checks what lists show each role: a user and a manager
// see their group only.
func TestVisibility(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		who        string
		path       string
		wantLeases []string
		wantUsers  []string
	}{
		{"ada", "/v1/leases", []string{"l-ada", "l-amy"}, []string{"ada"}},
		{"max", "/v1/leases", []string{"l-ada", "l-amy"}, []string{"ada", "amy", "max"}},
		{"bob", "/v1/leases", []string{"l-bob"}, []string{"bob"}},
		{"root", "/v1/leases", []string{"l-ada", "l-amy", "l-bob"}, []string{"ada", "amy", "bea", "bob", "max", "root"}},
		{"root", "/v1/leases?group=biology", []string{"l-bob"}, nil},
		{"max", "/v1/leases?user=amy", []string{"l-amy"}, nil},
		{"root", "/v1/leases?state=ended", []string{}, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s", tt.who, tt.path), func(t *testing.T) {
			a := fx.do(t, "GET", tt.path, fx.tokens[tt.who], nil)
			var ids []string
			for _, l := range decode[[]struct{ ID string }](t, a) {
				ids = append(ids, l.ID)
			}
			if diff := cmp.Diff(tt.wantLeases, ids, cmpEmpty); diff != "" {
				t.Errorf("leases (-want +got):\n%s", diff)
			}
			if tt.wantUsers == nil {
				return
			}
			var names []string
			for _, u := range decode[[]struct{ Name string }](t, fx.do(t, "GET", "/v1/users", fx.tokens[tt.who], nil)) {
				names = append(names, u.Name)
			}
			if diff := cmp.Diff(tt.wantUsers, names); diff != "" {
				t.Errorf("users (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpEmpty treats nil and empty slices alike.
var cmpEmpty = cmp.Transformer("nilToEmpty", func(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
})
