package virt_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// TestQEMUBootsSeedWithUserData boots the test image (make testimage) with
// a seed that carries user data of the user's: the user-data is then a
// multi-part archive, and the guest must still learn its hostname, its
// peers and the cluster key from the fairlease part of it.
func TestQEMUBootsSeedWithUserData(t *testing.T) {
	image := os.Getenv("FAIRLEASE_TEST_IMAGE")
	if image == "" {
		t.Skip("FAIRLEASE_TEST_IMAGE is not set: build the image with make testimage and set it to the printed path")
	}
	image, err := filepath.Abs(image)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(image); err != nil {
		t.Fatalf("FAIRLEASE_TEST_IMAGE: %v (build it with make testimage)", err)
	}
	d, _ := openQEMU(t, "")
	ctx := context.Background()
	s := spec(testID(t), 1, 3, "host-"+string(testID(t)), image)
	// A cloud-config whose keys the fairlease part also has, and whose
	// lines a line-wise reader would take for its own were they not
	// encoded.
	s.Seed.UserData = []byte("#cloud-config\nhostname: 'wrong'\nwrite_files:\n  - path: /etc/fairlease/peers\n    content: wrong\n")
	d.Stop(ctx, s.Name, 0) // a leftover of an interrupted run
	if err := d.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background(), s.Name, 0) })
	log, err := d.ConsoleLog(s.Name)
	if err != nil {
		t.Fatal(err)
	}
	var console []byte
	waitFor(t, 60*time.Second, "fairlease-context: ready on the console", func() bool {
		console, _ = os.ReadFile(log)
		return bytes.Contains(console, []byte("fairlease-context: ready"))
	})
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.Seed.ClusterPublicKey))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(string(console), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "fairlease-context: "); ok {
			got = append(got, rest)
		}
	}
	want := []string{
		"hostname=node-1",
		"peer=node-0 10.77.0.10",
		"peer=node-2 10.77.0.12",
		"cluster-key=" + ssh.FingerprintSHA256(pub),
		"ready",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("console: -want +got:\n%s\nwhole console:\n%s", diff, console)
	}
	if err := d.Stop(ctx, s.Name, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}
