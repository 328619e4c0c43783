package cli

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/lease"
)

func TestShareCommands(t *testing.T) {
	s := newSite(t)
	r := s.run(t, "root", "share", "set", "science", "--weight", "2")
	if r.stdout != "group science: weight 2\n" {
		t.Errorf("set science: %q %s", r.stdout, r.stderr)
	}
	r = s.run(t, "root", "share", "set", "physics", "--parent", "science", "--max-cores", "64", "--max-memory", "256GiB", "--max-lease", "36h", "--max-vms", "32")
	if want := "group physics: weight 1, under science; may hold at most 64 cores / 256 GiB, lease at most 1d12h, ask for at most 32 VMs at once\n"; r.stdout != want {
		t.Errorf("set physics:\n got %q\nwant %q (%s)", r.stdout, want, r.stderr)
	}
	// Flags left out keep their values.
	if r := s.run(t, "root", "share", "set", "physics", "--max-vms", "0"); r.stdout != "group physics: weight 1, under science; may hold at most 64 cores / 256 GiB, lease at most 1d12h\n" {
		t.Errorf("set physics --max-vms 0: %q %s", r.stdout, r.stderr)
	}
	s.srv.Fake.Submit(t, "ada", lease.Request{ID: "l1", Group: "physics", User: "ada", Count: 2, Shape: lease.Shape{Cores: 2, MemoryMiB: 1024}, Duration: time.Hour, AllOrNothing: true})
	r = s.run(t, "ada", "share", "list")
	want := [][]string{
		{"GROUP", "WEIGHT", "NORM", "SHARE", "RAW", "USAGE", "EFF", "USAGE", "FAIRSHARE", "HELD", "RESERVED", "QUEUED"},
		{"science", "2", "0.0000", "0", "0.0000", "1.0000", "0", "0", "0"},
		{"physics", "1", "1.0000", "900", "1.0000", "0.5000", "4", "0", "0"},
	}
	if diff := cmp.Diff(want, fields(r.stdout)); diff != "" {
		t.Errorf("share list (-want +got):\n%s\n%s", diff, r.stdout)
	}
	r = s.run(t, "ada", "--output", "json", "share", "list")
	var rows []api.ShareRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 2 {
		t.Errorf("share list --output json: %v\n%s", err, r.stdout)
	}
	checkError(t, s.run(t, "ada", "share", "set", "physics", "--weight", "3"), ExitFailure, "this needs the admin role")
	checkError(t, s.run(t, "root", "share", "set", "physics", "--weight", "-1"), ExitUsage, "--weight must be > 0")
	checkError(t, s.run(t, "root", "share", "set", "physics", "--max-lease", "ever"), ExitUsage, `--max-lease: "ever"`)
	checkError(t, s.run(t, "root", "share", "set", "science", "--parent", "physics"), ExitFailure, "parent")
}
