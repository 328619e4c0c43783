package ec2

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/sites"
	"github.com/fairlease/fairlease/sites/sitetest"
)

// testTypes are out of size order on purpose: the site sorts them.
var testTypes = []InstanceType{
	{Name: "t.large", Cores: 4, MemoryMiB: 8192},
	{Name: "t.small", Cores: 1, MemoryMiB: 1024},
	{Name: "t.xlarge", Cores: 8, MemoryMiB: 16384},
	{Name: "t.medium", Cores: 2, MemoryMiB: 4096},
}

var t0 = time.Date(2025, 3, 1, 14, 0, 0, 0, time.UTC)

func newTestSite(t *testing.T, mutate func(*Config)) (*Site, *fakeEC2, *clock) {
	t.Helper()
	f, srv := newFakeEC2(t)
	clk := &clock{now: t0}
	c := Config{
		Name:            "ec2-test",
		Endpoint:        srv.URL,
		Region:          "test-1",
		AccessKeyID:     "AKIDTEST",
		SecretAccessKey: "secret",
		InstanceTypes:   testTypes,
		Cooldown:        5 * time.Minute,
		MaxAttempts:     3,
		BaseBackoff:     time.Millisecond,
		MaxBackoff:      2 * time.Millisecond,
		HTTPClient:      srv.Client(),
		Now:             clk.Now,
	}
	if mutate != nil {
		mutate(&c)
	}
	s, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, f, clk
}

func testSpec(token string, count int, cores int, mem int64) sites.Spec {
	return sites.Spec{
		Lease: "l1", Token: token, Count: count, Duration: time.Hour,
		Shape:    lease.Shape{Cores: cores, MemoryMiB: mem, Image: "ami-0abc"},
		UserData: []byte("#cloud-config\nhostname: vm\n"),
		Tags:     map[string]string{"fairlease:broker": "b1", "fairlease:lease": "l1"},
	}
}

func TestConformance(t *testing.T) {
	sitetest.Run(t, sitetest.Harness{
		New: func(t *testing.T) sitetest.Subject {
			s, f, _ := newTestSite(t, nil)
			return sitetest.Subject{
				Site:    s,
				Exhaust: func() { f.mu.Lock(); f.allFull = true; f.mu.Unlock() },
				// The SDK retries the dropped connection with the same
				// token and gets the cluster the first attempt started.
				LoseReply: func() { f.inject("RunInstances", fault{lose: true}) },
			}
		},
		Shape: lease.Shape{Cores: 2, MemoryMiB: 4096, Image: "ami-0abc"},
	})
}

// runParams is what a RunInstances request said, for comparison.
type runParams struct {
	Type, Zone, Token, Image, UserData string
	MinCount, MaxCount                 string
	Tags                               map[string]string
}

func runParamsOf(v url.Values) runParams {
	p := runParams{
		Type: v.Get("InstanceType"), Zone: v.Get("Placement.AvailabilityZone"), Token: v.Get("ClientToken"),
		Image: v.Get("ImageId"), MinCount: v.Get("MinCount"), MaxCount: v.Get("MaxCount"),
	}
	if ud := v.Get("UserData"); ud != "" {
		b, _ := base64.StdEncoding.DecodeString(ud)
		p.UserData = string(b)
	}
	if v.Get("TagSpecification.1.ResourceType") == "instance" {
		p.Tags = map[string]string{}
		for i := 1; v.Has("TagSpecification.1.Tag." + strconv.Itoa(i) + ".Key"); i++ {
			pre := "TagSpecification.1.Tag." + strconv.Itoa(i)
			p.Tags[v.Get(pre+".Key")] = v.Get(pre + ".Value")
		}
	}
	return p
}

func TestLaunchRequest(t *testing.T) {
	tags := map[string]string{"fairlease:broker": "b1", "fairlease:lease": "l1"}
	tests := []struct {
		name  string
		zones []string
		spec  sites.Spec
		want  runParams
	}{
		{
			name: "smallest type that fits",
			spec: testSpec("l1-0", 3, 2, 2048),
			want: runParams{Type: "t.medium", Token: "l1-0", Image: "ami-0abc", MinCount: "3", MaxCount: "3",
				UserData: "#cloud-config\nhostname: vm\n", Tags: tags},
		},
		{
			name: "memory decides",
			spec: testSpec("l1-0", 1, 1, 5000),
			want: runParams{Type: "t.large", Token: "l1-0", Image: "ami-0abc", MinCount: "1", MaxCount: "1",
				UserData: "#cloud-config\nhostname: vm\n", Tags: tags},
		},
		{
			name:  "first zone",
			zones: []string{"test-1b", "test-1a"},
			spec:  testSpec("l1-0", 16, 1, 512),
			want: runParams{Type: "t.small", Zone: "test-1b", Token: "l1-0", Image: "ami-0abc", MinCount: "16", MaxCount: "16",
				UserData: "#cloud-config\nhostname: vm\n", Tags: tags},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f, _ := newTestSite(t, func(c *Config) { c.Zones = tt.zones })
			ins, err := s.Launch(context.Background(), tt.spec)
			if err != nil {
				t.Fatalf("Launch: %v", err)
			}
			runs := f.calls("RunInstances")
			if len(runs) != 1 {
				t.Fatalf("%d RunInstances requests, want 1", len(runs))
			}
			if diff := cmp.Diff(tt.want, runParamsOf(runs[0])); diff != "" {
				t.Errorf("RunInstances request (-want +got):\n%s", diff)
			}
			if len(ins) != tt.spec.Count || ins[0].Type != tt.want.Type || ins[0].State != sites.StateRunning {
				t.Errorf("Launch returned %+v, want %d running %s", ins, tt.spec.Count, tt.want.Type)
			}
		})
	}
}

func TestLaunchFailover(t *testing.T) {
	tests := []struct {
		name      string
		zones     []string
		full      []string
		maxTypes  int
		wantKind  error // nil: launched
		wantRuns  []string
		wantTypes string // type of the launched instances
	}{
		{
			name:      "smallest type full: next type with the next token",
			full:      []string{"t.medium/*"},
			wantRuns:  []string{"t.medium/ l1-0", "t.large/ l1-0-1"},
			wantTypes: "t.large",
		},
		{
			name:      "zone full: same type in the next zone",
			zones:     []string{"z-a", "z-b"},
			full:      []string{"t.medium/z-a"},
			wantRuns:  []string{"t.medium/z-a l1-0", "t.medium/z-b l1-0-1"},
			wantTypes: "t.medium",
		},
		{
			name:     "everything full: each candidate once, then ErrCapacity",
			full:     []string{"t.medium/*", "t.large/*", "t.xlarge/*"},
			wantKind: sites.ErrCapacity,
			wantRuns: []string{"t.medium/ l1-0", "t.large/ l1-0-1", "t.xlarge/ l1-0-2"},
		},
		{
			name:     "max types bounds the candidates",
			zones:    []string{"z-a", "z-b"},
			full:     []string{"t.medium/*", "t.large/*"},
			maxTypes: 1,
			wantKind: sites.ErrCapacity,
			wantRuns: []string{"t.medium/z-a l1-0", "t.medium/z-b l1-0-1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f, _ := newTestSite(t, func(c *Config) { c.Zones = tt.zones; c.MaxTypes = tt.maxTypes })
			f.setFull(tt.full...)
			ins, err := s.Launch(context.Background(), testSpec("l1-0", 2, 2, 2048))
			if tt.wantKind == nil && err != nil {
				t.Fatalf("Launch: %v", err)
			}
			if tt.wantKind != nil && !errors.Is(err, tt.wantKind) {
				t.Fatalf("Launch: got %v, want %v", err, tt.wantKind)
			}
			var runs []string
			for _, r := range f.calls("RunInstances") {
				runs = append(runs, r.Get("InstanceType")+"/"+r.Get("Placement.AvailabilityZone")+" "+r.Get("ClientToken"))
			}
			// No SDK retries of a capacity error: exactly one request per candidate.
			if diff := cmp.Diff(tt.wantRuns, runs); diff != "" {
				t.Errorf("RunInstances requests (-want +got):\n%s", diff)
			}
			if tt.wantKind == nil && (len(ins) != 2 || ins[0].Type != tt.wantTypes) {
				t.Errorf("launched %+v, want 2 of %s", ins, tt.wantTypes)
			}
			if err != nil && !strings.Contains(err.Error(), "ec2-test") {
				t.Errorf("error %q does not name the site", err)
			}
		})
	}
}

func TestCooldown(t *testing.T) {
	ctx := context.Background()
	s, f, clk := newTestSite(t, nil)
	types := func() []string {
		var out []string
		for _, r := range f.calls("RunInstances") {
			out = append(out, r.Get("InstanceType"))
		}
		f.mu.Lock()
		f.requests = nil
		f.mu.Unlock()
		return out
	}

	f.setFull("t.medium/*")
	if _, err := s.Launch(ctx, testSpec("a-0", 1, 2, 2048)); err != nil {
		t.Fatalf("launch a: %v", err)
	}
	if diff := cmp.Diff([]string{"t.medium", "t.large"}, types()); diff != "" {
		t.Errorf("launch a (-want +got):\n%s", diff)
	}

	// t.medium has room again, but it is cooling down.
	f.setFull()
	clk.Advance(4 * time.Minute)
	if _, err := s.Launch(ctx, testSpec("b-0", 1, 2, 2048)); err != nil {
		t.Fatalf("launch b: %v", err)
	}
	if diff := cmp.Diff([]string{"t.large"}, types()); diff != "" {
		t.Errorf("launch b within the cooldown (-want +got):\n%s", diff)
	}

	clk.Advance(time.Minute)
	if _, err := s.Launch(ctx, testSpec("c-0", 1, 2, 2048)); err != nil {
		t.Fatalf("launch c: %v", err)
	}
	if diff := cmp.Diff([]string{"t.medium"}, types()); diff != "" {
		t.Errorf("launch c after the cooldown (-want +got):\n%s", diff)
	}

	// Everything full: every candidate cools down, and the next launch
	// fails at once without asking.
	f.setFull("t.medium/*", "t.large/*", "t.xlarge/*")
	if _, err := s.Launch(ctx, testSpec("d-0", 1, 2, 2048)); !errors.Is(err, sites.ErrCapacity) {
		t.Fatalf("launch d: %v, want ErrCapacity", err)
	}
	types()
	_, err := s.Launch(ctx, testSpec("e-0", 1, 2, 2048))
	if !errors.Is(err, sites.ErrCapacity) || !strings.Contains(err.Error(), "skipped 3 cooling down") {
		t.Errorf("launch e: %v, want ErrCapacity with 3 skipped", err)
	}
	if got := types(); len(got) != 0 {
		t.Errorf("launch e asked %v while every candidate cools down", got)
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		faults   []fault
		wantKind error // nil: launched
		wantRuns int   // RunInstances requests
	}{
		{"throttled twice then ok", []fault{{503, "RequestLimitExceeded", false}, {503, "RequestLimitExceeded", false}}, nil, 3},
		{"Throttling code", []fault{{400, "Throttling", false}}, nil, 2},
		{"service unavailable", []fault{{503, "Unavailable", false}}, nil, 2},
		{"throttled past max attempts", []fault{{503, "RequestLimitExceeded", false}, {503, "RequestLimitExceeded", false}, {503, "RequestLimitExceeded", false}}, sites.ErrUnavailable, 3},
		{"capacity is not retried", []fault{{500, "InsufficientInstanceCapacity", false}, {500, "InsufficientInstanceCapacity", false}, {500, "InsufficientInstanceCapacity", false}}, sites.ErrCapacity, 3}, // one per type
		{"quota", []fault{{400, "VcpuLimitExceeded", false}}, sites.ErrQuota, 1},
		{"instance limit", []fault{{400, "InstanceLimitExceeded", false}}, sites.ErrQuota, 1},
		{"auth", []fault{{401, "AuthFailure", false}}, sites.ErrAuth, 1},
		{"unauthorized", []fault{{403, "UnauthorizedOperation", false}}, sites.ErrAuth, 1},
		{"bad parameter", []fault{{400, "InvalidParameterValue", false}}, sites.ErrInvalid, 1},
		{"bad ami", []fault{{400, "InvalidAMIID.Malformed", false}}, sites.ErrInvalid, 1},
		{"unknown 4xx", []fault{{400, "SomethingNew", false}}, sites.ErrInvalid, 1},
		{"unknown 5xx", []fault{{500, "SomethingBroke", false}, {500, "SomethingBroke", false}, {500, "SomethingBroke", false}}, sites.ErrUnavailable, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f, _ := newTestSite(t, nil)
			f.inject("RunInstances", tt.faults...)
			ins, err := s.Launch(context.Background(), testSpec("l1-0", 2, 2, 2048))
			if tt.wantKind == nil && err != nil {
				t.Fatalf("Launch: %v", err)
			}
			if tt.wantKind != nil && !errors.Is(err, tt.wantKind) {
				t.Fatalf("Launch: got %v, want %v", err, tt.wantKind)
			}
			if got := sites.IsRetryable(err); got != (tt.wantKind == sites.ErrUnavailable) {
				t.Errorf("IsRetryable(%v) = %v", err, got)
			}
			runs := f.calls("RunInstances")
			if len(runs) != tt.wantRuns {
				t.Errorf("%d RunInstances requests, want %d", len(runs), tt.wantRuns)
			}
			if tt.wantKind == nil {
				for _, r := range runs {
					if r.Get("ClientToken") != "l1-0" {
						t.Errorf("a retry carried token %q, want l1-0", r.Get("ClientToken"))
					}
				}
				if len(ins) != 2 || f.live() != 2 {
					t.Errorf("launched %d, site has %d live; want one cluster of 2", len(ins), f.live())
				}
			}
		})
	}
}

func TestLostReply(t *testing.T) {
	ctx := context.Background()
	lost := fault{lose: true}
	tests := []struct {
		name      string
		full      []string
		faults    []fault // RunInstances requests, in order
		advance   bool    // past the cooldown before the retry
		wantFirst error
		wantRuns  int // RunInstances requests over both launches
	}{
		{"SDK retry finds the cluster", nil, []fault{lost}, false, nil, 2},
		{"caller retry finds the cluster", nil, []fault{lost, lost, lost}, false, sites.ErrUnavailable, 3},
		// The cluster started on the second candidate (t.large, token
		// l1-0-1); by the retry the first (t.medium) has room again and no
		// cooldown. The retry must find the cluster by its token, not start
		// another on the first candidate.
		{"caller retry after failover and cooldown", []string{"t.medium/*"}, []fault{{}, lost, lost, lost}, true, sites.ErrUnavailable, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f, clk := newTestSite(t, nil)
			f.setFull(tt.full...)
			f.inject("RunInstances", tt.faults...)
			spec := testSpec("l1-0", 3, 2, 2048)
			first, err := s.Launch(ctx, spec)
			if (err == nil) != (tt.wantFirst == nil) || (err != nil && !errors.Is(err, tt.wantFirst)) {
				t.Fatalf("first Launch: %v, want %v", err, tt.wantFirst)
			}
			if f.live() != 3 {
				t.Fatalf("the first launch left %d live instances, want 3", f.live())
			}
			f.setFull()
			if tt.advance {
				clk.Advance(time.Hour)
			}
			again, err := s.Launch(ctx, spec)
			if err != nil {
				t.Fatalf("second Launch: %v", err)
			}
			if first != nil {
				if diff := cmp.Diff(ids(first), ids(again)); diff != "" {
					t.Errorf("second Launch returned another cluster (-first +second):\n%s", diff)
				}
			}
			if f.live() != 3 {
				t.Errorf("site has %d live instances, want one cluster of 3", f.live())
			}
			if got := len(f.calls("RunInstances")); got != tt.wantRuns {
				t.Errorf("%d RunInstances requests, want %d", got, tt.wantRuns)
			}
		})
	}
}

func ids(ins []sites.Instance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.ID)
	}
	slices.Sort(out)
	return out
}

func TestConcurrentSameToken(t *testing.T) {
	s, f, _ := newTestSite(t, nil)
	got, errs := sitetest.Concurrent(context.Background(), s, testSpec("l1-0", 2, 1, 512), 8)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range got {
		if diff := cmp.Diff(got[0], got[i]); diff != "" {
			t.Errorf("launch %d got another cluster:\n%s", i, diff)
		}
	}
	if f.live() != 2 {
		t.Errorf("site has %d live instances, want 2", f.live())
	}
}

func TestTerminate(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		terminate func(launched []string) []string
		wantCalls int
	}{
		{"all", func(l []string) []string { return l }, 1},
		{"again", func(l []string) []string { return l }, 1},
		{"unknown only", func([]string) []string { return []string{"i-0fa1e5e0000000000"} }, 1},
		// The batch fails as a whole, then each id goes alone.
		{"unknown among known", func(l []string) []string { return append([]string{"i-0fa1e5e0000000000"}, l...) }, 1 + 4},
		{"duplicates once", func(l []string) []string { return append(slices.Clone(l), l...) }, 1},
		{"nothing", func([]string) []string { return nil }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f, _ := newTestSite(t, nil)
			ins, err := s.Launch(ctx, testSpec("l1-0", 3, 1, 512))
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "again" {
				if err := s.Terminate(ctx, ids(ins)); err != nil {
					t.Fatal(err)
				}
				f.mu.Lock()
				f.requests = nil
				f.mu.Unlock()
			}
			if err := s.Terminate(ctx, tt.terminate(ids(ins))); err != nil {
				t.Fatalf("Terminate: %v", err)
			}
			if got := len(f.calls("TerminateInstances")); got != tt.wantCalls {
				t.Errorf("%d TerminateInstances requests, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestTerminateError(t *testing.T) {
	s, f, _ := newTestSite(t, nil)
	f.inject("TerminateInstances", fault{status: 403, code: "UnauthorizedOperation"})
	err := s.Terminate(context.Background(), []string{"i-1"})
	if !errors.Is(err, sites.ErrAuth) {
		t.Errorf("Terminate: %v, want ErrAuth", err)
	}
}

func TestInstancesPagination(t *testing.T) {
	ctx := context.Background()
	s, f, _ := newTestSite(t, nil)
	f.page = 2
	a, err := s.Launch(ctx, testSpec("a-0", 5, 1, 512))
	if err != nil {
		t.Fatal(err)
	}
	other := testSpec("b-0", 2, 1, 512)
	other.Tags = map[string]string{"fairlease:broker": "b1", "fairlease:lease": "l2"}
	if _, err := s.Launch(ctx, other); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.requests = nil
	f.mu.Unlock()
	got, err := s.Instances(ctx, map[string]string{"fairlease:lease": "l1", "fairlease:broker": "b1"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ids(a), ids(got)); diff != "" {
		t.Errorf("Instances (-want +got):\n%s", diff)
	}
	calls := f.calls("DescribeInstances")
	if len(calls) != 3 {
		t.Errorf("%d DescribeInstances requests for 5 instances in pages of 2, want 3", len(calls))
	}
	if diff := cmp.Diff([]string{"tag:fairlease:broker", "tag:fairlease:lease"},
		[]string{calls[0].Get("Filter.1.Name"), calls[0].Get("Filter.2.Name")}); diff != "" {
		t.Errorf("filters (-want +got):\n%s", diff)
	}
	want := sites.Instance{ID: a[0].ID, State: "running", Type: "t.small", Zone: "test-1a",
		PrivateAddress: got[0].PrivateAddress, Launched: t0,
		Tags: map[string]string{"fairlease:broker": "b1", "fairlease:lease": "l1"}}
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("first instance (-want +got):\n%s", diff)
	}
}

func TestLearnedTypes(t *testing.T) {
	ctx := context.Background()
	s, f, _ := newTestSite(t, func(c *Config) { c.InstanceTypes = nil })
	f.page = 3
	f.types = append(slices.Clone(testTypes), InstanceType{Name: "t.nano", Cores: 1, MemoryMiB: 512})
	for i, token := range []string{"a-0", "b-0"} {
		ins, err := s.Launch(ctx, testSpec(token, 1, 2, 4096))
		if err != nil {
			t.Fatal(err)
		}
		if ins[0].Type != "t.medium" {
			t.Errorf("launch %d: type %s, want t.medium", i, ins[0].Type)
		}
	}
	if got := len(f.calls("DescribeInstanceTypes")); got != 2 {
		t.Errorf("%d DescribeInstanceTypes requests (5 types in pages of 3, once), want 2", got)
	}
	if _, err := s.Launch(ctx, testSpec("c-0", 1, 64, 512)); !errors.Is(err, sites.ErrInvalid) {
		t.Errorf("a shape no type fits: %v, want ErrInvalid", err)
	}
}

func TestCandidateToken(t *testing.T) {
	long := strings.Repeat("x", 63)
	tests := []struct {
		name  string
		token string
		n     int
		want  string // "" for a hash
	}{
		{"first is the token", "lease-7-attempt-0", 0, "lease-7-attempt-0"},
		{"others suffixed", "lease-7-attempt-0", 2, "lease-7-attempt-0-2"},
		{"long first unchanged", long, 0, long},
		{"long others hashed", long, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CandidateToken(tt.token, tt.n)
			if tt.want != "" {
				if got != tt.want {
					t.Errorf("CandidateToken(%q, %d) = %q, want %q", tt.token, tt.n, got, tt.want)
				}
				return
			}
			// A hash: EC2's length, deterministic, distinct per candidate.
			if len(got) != sites.MaxTokenLen || got != CandidateToken(tt.token, tt.n) || got == CandidateToken(tt.token, tt.n+1) {
				t.Errorf("CandidateToken(long, %d) = %q", tt.n, got)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{1, 0.5, 500 * time.Millisecond},
		{3, 1, 4 * time.Second},
		{10, 1, 20 * time.Second},
		{200, 1, 20 * time.Second},
		{2, 0, 0},
	}
	for _, tt := range tests {
		if got := backoff(500*time.Millisecond, 20*time.Second, tt.attempt, tt.r); got != tt.want {
			t.Errorf("backoff(attempt %d, r %v) = %s, want %s", tt.attempt, tt.r, got, tt.want)
		}
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"ok", func(*Config) {}, ""},
		{"no name", func(c *Config) { c.Name = "" }, "name is required"},
		{"no keys", func(c *Config) { c.SecretAccessKey = "" }, "secret_access_key"},
		{"bad type", func(c *Config) { c.InstanceTypes = []InstanceType{{Name: "x"}} }, "instance_types[0]"},
		{"empty zone", func(c *Config) { c.Zones = []string{""} }, "zones[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Name: "aws", AccessKeyID: "a", SecretAccessKey: "s"}
			tt.mutate(&c)
			_, err := New(c)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("New: %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestInfo(t *testing.T) {
	s, _, _ := newTestSite(t, func(c *Config) { c.CostPerCoreHour = 0.0208 })
	if got := s.Info(); got.CostPerCoreHour != 0.0208 || got.Latency != 0 {
		t.Errorf("Info() = %+v before any call", got)
	}
	s.measure(s.cfg.Now().Add(-80 * time.Millisecond))
	s.measure(s.cfg.Now().Add(-160 * time.Millisecond))
	if got, want := s.Info().Latency, 90*time.Millisecond; got != want {
		t.Errorf("Latency = %s, want %s (moving average)", got, want)
	}
}

func TestServerIgnoringFilters(t *testing.T) {
	ctx := context.Background()
	s, f, _ := newTestSite(t, nil)
	f.noFilters = true
	other := testSpec("other-0", 2, 1, 512)
	other.Tags = map[string]string{"owner": "someone-else"}
	if _, err := s.Launch(ctx, other); err != nil {
		t.Fatal(err)
	}
	ours, err := s.Launch(ctx, testSpec("l1-0", 3, 1, 512))
	if err != nil {
		t.Fatalf("Launch next to another's instances: %v", err)
	}
	got, err := s.Instances(ctx, map[string]string{"fairlease:lease": "l1"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ids(ours), ids(got)); diff != "" {
		t.Errorf("Instances (-want +got):\n%s", diff)
	}
}

func TestErrorMessage(t *testing.T) {
	s, f, _ := newTestSite(t, func(c *Config) { c.InstanceTypes = testTypes[3:] })
	f.setFull("t.medium/*")
	_, err := s.Launch(context.Background(), testSpec("l1-0", 2, 2, 2048))
	for _, want := range []string{"site ec2-test", "lease l1", "InsufficientInstanceCapacity", "t.medium", "fail over"} {
		if !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	t.Log(err)
}
