package cli

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/lease"
)

func TestHostCommands(t *testing.T) {
	s := newSite(t)
	if r := s.run(t, "root", "host", "add", "h03", "--cores", "16", "--memory", "64GiB"); r.stdout != "host h03: 16 cores / 64 GiB, up\n" {
		t.Errorf("add: %q %s", r.stdout, r.stderr)
	}
	r := s.run(t, "ada", "host", "list")
	want := [][]string{
		{"NAME", "STATE", "CORES", "MEMORY", "DRIVER", "IMAGES", "LAST", "SEEN"},
		{"h01", "up", "8", "32", "GiB", "-", "0", "now"},
		{"h02", "up", "8", "32", "GiB", "-", "0", "now"},
		{"h03", "up", "16", "64", "GiB", "-", "0", "now"},
	}
	if diff := cmp.Diff(want, fields(r.stdout)); diff != "" {
		t.Errorf("host list (-want +got):\n%s", diff)
	}
	s.srv.Fake.Submit(t, "ada", lease.Request{ID: "l1", Group: "physics", User: "ada", Count: 1, Shape: lease.Shape{Cores: 8, MemoryMiB: 1024}, Duration: time.Hour, AllOrNothing: true})
	checkError(t, s.run(t, "root", "host", "remove", "h01"), ExitFailure, "holds or will hold leases")
	checkError(t, s.run(t, "ada", "host", "add", "h04", "--cores", "1", "--memory", "1GiB"), ExitFailure, "this needs the admin role")
	checkError(t, s.run(t, "root", "host", "add", "h04", "--memory", "1GiB"), ExitUsage, "--cores must be at least 1")
	if r := s.run(t, "root", "host", "remove", "h03"); r.stdout != "host h03 removed\n" {
		t.Errorf("remove: %q %s", r.stdout, r.stderr)
	}
}
