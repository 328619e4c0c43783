package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/lease"
)

// An EC2 launch's user data reaches every host of the lease through its
// assignment; other leases carry none.
func TestAssignmentsCarryUserData(t *testing.T) {
	s := NewState()
	ec2 := req("ec2", "physics", 2, 8, time.Hour)
	rest := req("rest", "physics", 1, 1, time.Hour)
	ec2.Shape.Image, rest.Shape.Image = "tiny", "tiny"
	ln := &Launch{Reservation: "ec2", InstanceType: "m5.2xlarge", UserData: []byte("#!/bin/sh\necho hi\n")}
	applyAll(t, s, []Command{
		cmd(t, CmdPutHost, 0, "system", Host{Name: "h1", Capacity: lease.Resources{Cores: 8, MemoryMiB: 32768}}),
		cmd(t, CmdPutHost, 0, "system", Host{Name: "h2", Capacity: lease.Resources{Cores: 9, MemoryMiB: 32768}}),
		cmd(t, CmdPutImage, 0, "ada", Image{Name: "tiny", Digest: strings.Repeat("a", 64), Size: 1 << 20, Format: "qcow2", Group: "physics"}),
		cmd(t, CmdSubmit, time.Minute, "ada", Submit{Requests: []lease.Request{ec2, rest}, Launches: []*Launch{ln, nil}}),
	}, 1)
	got := map[string]string{}
	for _, h := range []string{"h1", "h2"} {
		for _, a := range s.Assignments(h) {
			got[h+" "+string(a.Lease)] = string(a.UserData)
		}
	}
	want := map[string]string{"h1 ec2": "#!/bin/sh\necho hi\n", "h2 ec2": "#!/bin/sh\necho hi\n", "h2 rest": ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("user data by host and lease (-want +got):\n%s", diff)
	}
	// The assignment holds a copy: an agent changing it changes nothing.
	s.Assignments("h1")[0].UserData[0] = 'X'
	if a := s.Assignments("h1")[0]; string(a.UserData[:2]) != "#!" {
		t.Errorf("changing an assignment's user data changed the state: %q", a.UserData)
	}
}
