package cli

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUserCommands(t *testing.T) {
	s := newSite(t)
	if r := s.run(t, "root", "user", "create", "max", "--group", "physics", "--role", "manager"); r.stdout != "user max: manager of physics\n" {
		t.Errorf("create max: %q %s", r.stdout, r.stderr)
	}
	s.tokens["max"] = strings.TrimSpace(s.run(t, "root", "token", "create", "--user", "max").stdout)
	// A manager adds users to their own group by default.
	if r := s.run(t, "max", "user", "create", "cal"); r.stdout != "user cal: user of physics\n" {
		t.Errorf("max creates cal: %q %s", r.stdout, r.stderr)
	}
	r := s.run(t, "max", "user", "list")
	want := [][]string{{"NAME", "GROUP", "ROLE", "CREATED"}, {"ada", "physics", "user", "09:00"}, {"cal", "physics", "user", "09:00"}, {"max", "physics", "manager", "09:00"}}
	if diff := cmp.Diff(want, fields(r.stdout)); diff != "" {
		t.Errorf("user list as max (-want +got):\n%s", diff)
	}
	checkError(t, s.run(t, "max", "user", "create", "dan", "--role", "admin"), ExitFailure, "a manager adds users of role user")
	checkError(t, s.run(t, "max", "user", "delete", "bob"), ExitFailure, `no user "bob"`)
	checkError(t, s.run(t, "ada", "user", "delete", "cal"), ExitFailure, "this needs the manager role")
	checkError(t, s.run(t, "root", "user", "create", "x", "--role", "king"), ExitUsage, `--role: "king"`)
	if r := s.run(t, "max", "user", "delete", "cal"); r.stdout != "user cal deleted, with their tokens\n" {
		t.Errorf("delete cal: %q %s", r.stdout, r.stderr)
	}
	if r := s.run(t, "ada", "--output", "json", "user", "list"); !strings.Contains(r.stdout, `"name": "ada"`) || strings.Contains(r.stdout, "max") {
		t.Errorf("ada's user list: %s", r.stdout)
	}
}
