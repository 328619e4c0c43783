package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fairlease/fairlease/broker/api"
)

func TestUserKeysCommands(t *testing.T) {
	s := newSite(t)
	r := s.run(t, "ada", "--output", "json", "user", "keys", "create")
	var k api.NewAccessKey
	if err := json.Unmarshal([]byte(r.stdout), &k); err != nil {
		t.Fatalf("user keys create --output json: %v\n%s", err, r.stdout)
	}
	if !strings.HasPrefix(k.AccessKeyID, "AKIA") || len(k.AccessKeyID) != 20 || len(k.SecretAccessKey) != 40 || k.User != "ada" {
		t.Errorf("new access key %+v: want AKIA + 16, a 40-character secret, for ada", k)
	}
	r = s.run(t, "ada", "user", "keys", "create")
	if !strings.Contains(r.stdout, "export AWS_ACCESS_KEY_ID=AKIA") || !strings.Contains(r.stdout, "export AWS_SECRET_ACCESS_KEY=") {
		t.Errorf("user keys create printed %q, want lines a shell can eval", r.stdout)
	}
	r = s.run(t, "ada", "user", "keys", "list")
	if got := fields(r.stdout); len(got) != 3 || strings.Contains(r.stdout, k.SecretAccessKey) {
		t.Errorf("user keys list: want a header and two keys, no secret:\n%s", r.stdout)
	}
	if r := s.run(t, "bob", "user", "keys", "list"); len(fields(r.stdout)) != 1 {
		t.Errorf("bob sees ada's keys:\n%s", r.stdout)
	}
	checkError(t, s.run(t, "bob", "user", "keys", "revoke", k.AccessKeyID), ExitFailure, "no access key")
	if r := s.run(t, "ada", "user", "keys", "revoke", k.AccessKeyID); r.stdout != "access key "+k.AccessKeyID+" revoked\n" {
		t.Errorf("revoke: %q %s", r.stdout, r.stderr)
	}
	checkError(t, s.run(t, "ada", "user", "keys", "create", "--user", "bob"), ExitFailure, "only admins make access keys for others")
}

func TestSiteCommands(t *testing.T) {
	s := newSite(t)
	checkError(t, s.run(t, "root", "site", "add", "partner", "--access-key-id", "AKIAX", "--secret-access-key", "x"), ExitUsage, "--region")
	checkError(t, s.run(t, "ada", "site", "add", "partner", "--region", "r", "--access-key-id", "AKIAX", "--secret-access-key", "x"), ExitFailure, "")
	checkError(t, s.run(t, "root", "site", "add", "partner", "--region", "r", "--access-key-id", "AKIAX", "--secret-access-key", "x", "--endpoint", "ftp://x"), ExitFailure, "endpoint")
	r := s.run(t, "root", "site", "add", "partner", "--region", "eu-1", "--access-key-id", "AKIAPARTNER", "--secret-access-key", "sEcReT", "--endpoint", "http://127.0.0.1:8773", "--cost", "0.05", "--zone", "a", "--zone", "b")
	if r.code != 0 || !strings.Contains(r.stdout, "site partner: http://127.0.0.1:8773, region eu-1") {
		t.Fatalf("site add: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = s.run(t, "ada", "--output", "json", "site", "list")
	if strings.Contains(r.stdout, "sEcReT") {
		t.Errorf("site list shows the secret:\n%s", r.stdout)
	}
	var sites []api.SiteInfo
	if err := json.Unmarshal([]byte(r.stdout), &sites); err != nil || len(sites) != 1 || sites[0].CostPerCoreHour != 0.05 || strings.Join(sites[0].Zones, ",") != "a,b" {
		t.Errorf("site list: %v %+v", err, sites)
	}
	if r := s.run(t, "root", "site", "remove", "partner"); r.stdout != "site partner removed\n" {
		t.Errorf("site remove: %q %s", r.stdout, r.stderr)
	}
	checkError(t, s.run(t, "root", "site", "remove", "partner"), ExitFailure, `no site "partner"`)
}
