// Package sitetest holds the conformance suite every sites.Site passes
// (Run) and an in-memory site for other packages' tests (Fake).
//
// Run works against a shared, long-lived site too (a partner cloud, a real
// EC2 account): each case tags its instances with a fresh run id, looks
// only at those, and terminates them when it ends.
package sitetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/sites"
)

// RunTag is the tag key the suite marks its instances with.
const RunTag = "fairlease:sitetest-run"

// UnknownID is a well-formed EC2 instance id that no site should know; the
// suite terminates it to check that unknown ids are fine.
const UnknownID = "i-0fa1e5e0000000000"

// Harness describes the site under test.
type Harness struct {
	// New returns the site under test, with room for at least 2*Count
	// instances of Shape, and its hooks. It registers its own cleanup.
	New func(t *testing.T) Subject
	// Shape is what the suite launches; Image must name an image the site
	// can start.
	Shape lease.Shape
	// Count is the size of the clusters the suite launches; 0 means 3.
	Count int
	// Timeout bounds every call; 0 means a minute.
	Timeout time.Duration
}

// Subject is a site under test and the hooks that let the suite provoke
// failures. A nil hook skips the cases that need it.
type Subject struct {
	Site sites.Site
	// Exhaust makes every later launch fail for lack of capacity.
	Exhaust func()
	// LoseReply makes the next launch start its cluster but lose the
	// reply (a dropped connection, say).
	LoseReply func()
}

// Run runs the conformance suite against the site h describes, from any
// package's test:
//
//	func TestConformance(t *testing.T) {
//		sitetest.Run(t, sitetest.Harness{
//			New: func(t *testing.T) sitetest.Subject {
//				s, err := ec2.New(ec2.Config{Name: "partner", Endpoint: url, AccessKeyID: id, SecretAccessKey: secret})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return sitetest.Subject{Site: s} // add Exhaust/LoseReply if the test controls the server
//			},
//			Shape: lease.Shape{Cores: 1, MemoryMiB: 512, Image: "ami-…"},
//		})
//	}
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Count == 0 {
		h.Count = 3
	}
	if h.Timeout == 0 {
		h.Timeout = time.Minute
	}
	cases := []struct {
		name string
		run  func(t *testing.T, c *suiteCase)
	}{
		{"LaunchStartsCountTaggedInstances", testLaunch},
		{"SameTokenSameCluster", testSameToken},
		{"NewTokenNewCluster", testNewToken},
		{"InstancesFindsOnlyItsTags", testInstancesByTag},
		{"TerminateIsIdempotent", testTerminate},
		{"CapacityExhausted", testCapacity},
		{"InvalidSpec", testInvalid},
		{"TokenReusedWithOtherParameters", testMismatch},
		{"LostReplyRetriedWithSameToken", testLostReply},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &suiteCase{h: h, sub: h.New(t), run: newRunID(t)}
			t.Cleanup(c.cleanup(t))
			tc.run(t, c)
		})
	}
}

// suiteCase is one case's site and the run id its instances carry.
type suiteCase struct {
	h   Harness
	sub Subject
	run string
}

func newRunID(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("run id: %v", err)
	}
	return hex.EncodeToString(b)
}

func (c *suiteCase) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), c.h.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// spec returns a valid spec for the named lease of this run.
func (c *suiteCase) spec(leaseName, token string) sites.Spec {
	return sites.Spec{
		Lease:    lease.ID(leaseName),
		Token:    c.run + "-" + token,
		Count:    c.h.Count,
		Shape:    c.h.Shape,
		Duration: time.Hour,
		UserData: []byte("#cloud-config\n"),
		Tags:     map[string]string{RunTag: c.run, "fairlease:lease": c.run + "-" + leaseName},
	}
}

func (c *suiteCase) runTags() map[string]string { return map[string]string{RunTag: c.run} }

// cleanup terminates what the case left behind, so that a shared site
// stays clean.
func (c *suiteCase) cleanup(t *testing.T) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.h.Timeout)
		defer cancel()
		ins, err := c.sub.Site.Instances(ctx, c.runTags())
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		var ids []string
		for _, in := range ins {
			if !in.Ended() {
				ids = append(ids, in.ID)
			}
		}
		if len(ids) > 0 {
			if err := c.sub.Site.Terminate(ctx, ids); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	}
}

func (c *suiteCase) launch(t *testing.T, s sites.Spec) []sites.Instance {
	t.Helper()
	ins, err := c.sub.Site.Launch(c.ctx(t), s)
	if err != nil {
		t.Fatalf("Launch(%s, token %s): %v", s.Lease, s.Token, err)
	}
	return ins
}

func (c *suiteCase) instances(t *testing.T, tags map[string]string) []sites.Instance {
	t.Helper()
	ins, err := c.sub.Site.Instances(c.ctx(t), tags)
	if err != nil {
		t.Fatalf("Instances(%v): %v", tags, err)
	}
	return ins
}

// live returns the sorted ids of the instances that have not ended.
func live(ins []sites.Instance) []string {
	var ids []string
	for _, in := range ins {
		if !in.Ended() {
			ids = append(ids, in.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func ids(ins []sites.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.ID
	}
	slices.Sort(out)
	return out
}

// checkKind checks that err is classified as kind and names the site.
func checkKind(t *testing.T, site sites.Site, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("got error %v, want one that is %v", err, kind)
	}
	var se *sites.Error
	if !errors.As(err, &se) || se.Site != site.Name() {
		t.Errorf("error %q does not name site %q (want a *sites.Error)", err, site.Name())
	}
}

func testLaunch(t *testing.T, c *suiteCase) {
	s := c.spec("a", "1")
	ins := c.launch(t, s)
	if len(ins) != s.Count {
		t.Fatalf("Launch returned %d instances, want %d", len(ins), s.Count)
	}
	got := ids(ins)
	if len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("Launch returned duplicate ids %v", got)
	}
	for _, in := range ins {
		if in.ID == "" || in.Type == "" {
			t.Errorf("instance %+v lacks an id or a type", in)
		}
		if in.Ended() {
			t.Errorf("instance %s is %s right after launch", in.ID, in.State)
		}
		for k, v := range s.Tags {
			if in.Tags[k] != v {
				t.Errorf("instance %s: tag %s = %q, want %q", in.ID, k, in.Tags[k], v)
			}
		}
	}
	if diff := cmp.Diff(got, live(c.instances(t, s.Tags))); diff != "" {
		t.Errorf("Instances by the launch's tags (-launched +listed):\n%s", diff)
	}
}

func testSameToken(t *testing.T, c *suiteCase) {
	s := c.spec("a", "1")
	first := ids(c.launch(t, s))
	again := ids(c.launch(t, s))
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("a second Launch with the same token returned other instances (-first +second):\n%s", diff)
	}
	if got := live(c.instances(t, c.runTags())); len(got) != s.Count {
		t.Errorf("after two launches with one token the site lists %d instances, want %d", len(got), s.Count)
	}
}

func testNewToken(t *testing.T, c *suiteCase) {
	a := ids(c.launch(t, c.spec("a", "1")))
	b := ids(c.launch(t, c.spec("a", "2")))
	for _, id := range b {
		if slices.Contains(a, id) {
			t.Errorf("a new token returned instance %s of the first cluster", id)
		}
	}
	if got := live(c.instances(t, c.runTags())); len(got) != 2*c.h.Count {
		t.Errorf("after two tokens the site lists %d instances, want %d", len(got), 2*c.h.Count)
	}
}

func testInstancesByTag(t *testing.T, c *suiteCase) {
	sa, sb := c.spec("a", "1"), c.spec("b", "1")
	sb.Token = c.run + "-b1"
	a := ids(c.launch(t, sa))
	b := ids(c.launch(t, sb))
	if diff := cmp.Diff(a, live(c.instances(t, sa.Tags))); diff != "" {
		t.Errorf("Instances by lease a's tags (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(b, live(c.instances(t, sb.Tags))); diff != "" {
		t.Errorf("Instances by lease b's tags (-want +got):\n%s", diff)
	}
	none := map[string]string{RunTag: c.run, "fairlease:lease": "nobody"}
	if got := c.instances(t, none); len(got) != 0 {
		t.Errorf("Instances(%v) = %v, want none", none, ids(got))
	}
	_, err := c.sub.Site.Instances(c.ctx(t), nil)
	checkKind(t, c.sub.Site, err, sites.ErrInvalid)
}

func testTerminate(t *testing.T, c *suiteCase) {
	s := c.spec("a", "1")
	launched := ids(c.launch(t, s))
	if err := c.sub.Site.Terminate(c.ctx(t), launched); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if got := live(c.instances(t, s.Tags)); len(got) != 0 {
		t.Errorf("after Terminate these instances have not ended: %v", got)
	}
	for _, tc := range []struct {
		name string
		ids  []string
	}{
		{"again", launched},
		{"unknown", []string{UnknownID}},
		{"mixed", append([]string{UnknownID}, launched...)},
		{"none", nil},
	} {
		if err := c.sub.Site.Terminate(c.ctx(t), tc.ids); err != nil {
			t.Errorf("Terminate %s: %v, want nil", tc.name, err)
		}
	}
}

func testCapacity(t *testing.T, c *suiteCase) {
	if c.sub.Exhaust == nil {
		t.Skip("the harness cannot exhaust the site")
	}
	c.sub.Exhaust()
	s := c.spec("a", "1")
	ins, err := c.sub.Site.Launch(c.ctx(t), s)
	checkKind(t, c.sub.Site, err, sites.ErrCapacity)
	if len(ins) != 0 {
		t.Errorf("a failed Launch returned %d instances", len(ins))
	}
	if sites.IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = true; capacity errors fail over instead", err)
	}
	if got := live(c.instances(t, c.runTags())); len(got) != 0 {
		t.Errorf("a launch that failed for capacity left instances: %v", got)
	}
}

func testInvalid(t *testing.T, c *suiteCase) {
	for _, tc := range []struct {
		name   string
		modify func(*sites.Spec)
	}{
		{"count 0", func(s *sites.Spec) { s.Count = 0 }},
		{"no token", func(s *sites.Spec) { s.Token = "" }},
		{"no cores", func(s *sites.Spec) { s.Shape.Cores = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := c.spec("a", tc.name)
			s.Token = c.run + "-invalid"
			tc.modify(&s)
			ins, err := c.sub.Site.Launch(c.ctx(t), s)
			checkKind(t, c.sub.Site, err, sites.ErrInvalid)
			if len(ins) != 0 {
				t.Errorf("an invalid Launch returned %d instances", len(ins))
			}
		})
	}
	if got := live(c.instances(t, c.runTags())); len(got) != 0 {
		t.Errorf("invalid launches left instances: %v", got)
	}
}

func testMismatch(t *testing.T, c *suiteCase) {
	s := c.spec("a", "1")
	first := ids(c.launch(t, s))
	s.Count++
	_, err := c.sub.Site.Launch(c.ctx(t), s)
	checkKind(t, c.sub.Site, err, sites.ErrInvalid)
	if diff := cmp.Diff(first, live(c.instances(t, c.runTags()))); diff != "" {
		t.Errorf("a token reused with other parameters changed the instances (-want +got):\n%s", diff)
	}
}

func testLostReply(t *testing.T, c *suiteCase) {
	if c.sub.LoseReply == nil {
		t.Skip("the harness cannot lose a reply")
	}
	s := c.spec("a", "1")
	c.sub.LoseReply()
	if _, err := c.sub.Site.Launch(c.ctx(t), s); err != nil && !sites.IsRetryable(err) {
		// The site may have retried by itself; if not, its error must
		// tell the caller to retry.
		t.Fatalf("Launch with a lost reply: %v, want nil or a retryable error", err)
	}
	got := ids(c.launch(t, s))
	if len(got) != s.Count {
		t.Errorf("the retry returned %d instances, want %d", len(got), s.Count)
	}
	if diff := cmp.Diff(got, live(c.instances(t, c.runTags()))); diff != "" {
		t.Errorf("after a lost reply and a retry the site lists (-retry +listed):\n%s", diff)
	}
}

// Concurrent launches the same spec from n goroutines and returns the ids
// each got (nil on error) and the errors; a Site's own tests use it to
// check that concurrent callers with one token share one cluster.
func Concurrent(ctx context.Context, site sites.Site, s sites.Spec, n int) ([][]string, []error) {
	got := make([][]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ins, err := site.Launch(ctx, s)
			if err != nil {
				errs[i] = fmt.Errorf("launch %d: %w", i, err)
				return
			}
			got[i] = ids(ins)
		})
	}
	wg.Wait()
	return got, errs
}
