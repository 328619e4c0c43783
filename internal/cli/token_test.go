package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fairlease/fairlease/broker/api"
)

func TestTokenCommands(t *testing.T) {
	s := newSite(t)
	r := s.run(t, "ada", "--output", "json", "token", "create", "--name", "laptop")
	var nt api.NewTokenInfo
	if err := json.Unmarshal([]byte(r.stdout), &nt); err != nil {
		t.Fatalf("token create --output json: %v\n%s", err, r.stdout)
	}
	if id, _, ok := api.ParseToken(nt.Token); !ok || id != nt.ID || nt.User != "ada" || nt.Name != "laptop" {
		t.Errorf("new token %+v", nt)
	}
	// The token works, and table output is the token alone.
	if r := run(t, "--addr", s.srv.URL, "--token", nt.Token, "lease", "list"); r.code != 0 {
		t.Errorf("the new token does not work: %s", r.stderr)
	}
	r = s.run(t, "ada", "token", "create")
	if tok := strings.TrimSpace(r.stdout); !strings.HasPrefix(tok, "flt_") || strings.Contains(tok, " ") {
		t.Errorf("token create printed %q, want the token alone", r.stdout)
	}
	if !strings.Contains(r.stderr, "not shown again") {
		t.Errorf("no warning on stderr: %q", r.stderr)
	}
	r = s.run(t, "ada", "token", "list")
	if got := fields(r.stdout); len(got) != 4 || got[0][0] != "ID" { // header, the test's token, two new ones
		t.Errorf("token list:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, nt.Token) {
		t.Errorf("token list shows a secret:\n%s", r.stdout)
	}
	// Revoking by the whole token works too.
	if r := s.run(t, "ada", "token", "revoke", nt.Token); r.stdout != "token "+nt.ID+" revoked\n" {
		t.Errorf("revoke: %q %s", r.stdout, r.stderr)
	}
	checkError(t, run(t, "--addr", s.srv.URL, "--token", nt.Token, "lease", "list"), ExitFailure, "invalid or revoked token")
	checkError(t, s.run(t, "ada", "token", "create", "--user", "bob"), ExitFailure, "only admins make tokens for others")
	checkError(t, s.run(t, "ada", "token", "revoke", "nope"), ExitFailure, `no token "nope"`)
}
