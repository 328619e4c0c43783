package sitetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/sites"
)

// FakeConfig sets up a Fake.
type FakeConfig struct {
	Name string
	// Capacity is how many instances may be alive at once; 0 is unlimited.
	Capacity int
	// Info is what Info reports until SetInfo changes it.
	Info sites.Info
	// Now stamps launches; nil is time.Now. The simulator passes its
	// virtual clock.
	Now func() time.Time
}

// Fake is an in-memory Site for other packages' tests and the simulator.
// It behaves like EC2 where that matters to callers: a token names one
// cluster forever, reusing a token with other parameters is ErrInvalid,
// terminated instances stay listed. Instances start running at once. Knobs
// inject capacity failures, lost replies and delay. Safe for concurrent use.
type Fake struct {
	name string
	now  func() time.Time

	mu        sync.Mutex
	limit     int // -1: unlimited
	failNext  int
	loseNext  int
	delay     time.Duration
	info      sites.Info
	seq       int
	tokens    map[string]*fakeReservation
	instances map[string]*sites.Instance
	order     []string // instance ids in launch order, for stable listings
	launches  int
}

type fakeReservation struct {
	spec sites.Spec
	ids  []string
}

var _ sites.Site = (*Fake)(nil)

// NewFake returns an empty fake site.
func NewFake(c FakeConfig) *Fake {
	f := &Fake{
		name:      c.Name,
		now:       c.Now,
		limit:     -1,
		info:      c.Info,
		tokens:    map[string]*fakeReservation{},
		instances: map[string]*sites.Instance{},
	}
	if f.name == "" {
		f.name = "fake"
	}
	if f.now == nil {
		f.now = time.Now
	}
	if c.Capacity > 0 {
		f.limit = c.Capacity
	}
	return f
}

// SetCapacity sets how many instances may be alive at once; 0 is unlimited.
func (f *Fake) SetCapacity(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limit = n
	if n == 0 {
		f.limit = -1
	}
}

// Exhaust makes every later launch fail with ErrCapacity, until
// SetCapacity gives room again.
func (f *Fake) Exhaust() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limit = f.liveLocked()
}

// FailNext makes the next n launches that would start a cluster fail with
// ErrCapacity.
func (f *Fake) FailNext(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = n
}

// LoseNextReplies makes the next n launches start their cluster and then
// fail with ErrUnavailable, as if the reply was lost on the way: a retry
// with the same token must find the cluster, not start another.
func (f *Fake) LoseNextReplies(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loseNext = n
}

// SetDelay makes every call wait d (or until its context ends) before it
// acts, to test timeouts.
func (f *Fake) SetDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// SetInfo sets what Info reports, to test ranking.
func (f *Fake) SetInfo(i sites.Info) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.info = i
}

// Launches returns how many clusters the fake has started.
func (f *Fake) Launches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.launches
}

// Live returns how many instances are alive.
func (f *Fake) Live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.liveLocked()
}

func (f *Fake) liveLocked() int {
	n := 0
	for _, in := range f.instances {
		if !in.Ended() {
			n++
		}
	}
	return n
}

// Name implements sites.Site.
func (f *Fake) Name() string { return f.name }

// Info implements sites.Site.
func (f *Fake) Info() sites.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info
}

func (f *Fake) fail(op string, kind error, format string, a ...any) error {
	return &sites.Error{Site: f.name, Op: op, Kind: kind, Err: fmt.Errorf(format, a...)}
}

func (f *Fake) wait(ctx context.Context, op string) error {
	f.mu.Lock()
	d := f.delay
	f.mu.Unlock()
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return &sites.Error{Site: f.name, Op: op, Kind: sites.ErrUnavailable, Err: ctx.Err()}
	case <-t.C:
		return nil
	}
}

// Launch implements sites.Site.
func (f *Fake) Launch(ctx context.Context, s sites.Spec) ([]sites.Instance, error) {
	if err := f.wait(ctx, "launch"); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, &sites.Error{Site: f.name, Op: "launch", Kind: sites.ErrInvalid, Err: err}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.tokens[s.Token]; ok {
		if !sameParameters(r.spec, s) {
			return nil, f.fail("launch", sites.ErrInvalid,
				"lease %s: token %s was used with other parameters (IdempotentParameterMismatch); use a new token for a new request", s.Lease, s.Token)
		}
		return f.copiesLocked(r.ids), nil
	}
	if f.failNext > 0 {
		f.failNext--
		return nil, f.fail("launch", sites.ErrCapacity, "lease %s: no room for %d instances (injected)", s.Lease, s.Count)
	}
	if f.limit >= 0 && f.liveLocked()+s.Count > f.limit {
		return nil, f.fail("launch", sites.ErrCapacity, "lease %s: no room for %d instances: %d of %d alive",
			s.Lease, s.Count, f.liveLocked(), f.limit)
	}
	now := f.now()
	r := &fakeReservation{spec: s}
	r.spec.Tags = maps.Clone(s.Tags)
	r.spec.UserData = slices.Clone(s.UserData)
	for range s.Count {
		f.seq++
		in := &sites.Instance{
			ID:             fmt.Sprintf("i-%017x", f.seq),
			State:          sites.StateRunning,
			Type:           fakeType(s.Shape),
			Zone:           f.name + "-a",
			PrivateAddress: fmt.Sprintf("10.%d.%d.%d", f.seq>>16&0xff, f.seq>>8&0xff, f.seq&0xff),
			Launched:       now,
			Tags:           maps.Clone(s.Tags),
		}
		f.instances[in.ID] = in
		f.order = append(f.order, in.ID)
		r.ids = append(r.ids, in.ID)
	}
	f.tokens[s.Token] = r
	f.launches++
	if f.loseNext > 0 {
		f.loseNext--
		return nil, f.fail("launch", sites.ErrUnavailable, "lease %s: reply lost after the launch (injected)", s.Lease)
	}
	return f.copiesLocked(r.ids), nil
}

// fakeType names a size the way EC2 names instance types.
func fakeType(s lease.Shape) string {
	return fmt.Sprintf("fake.c%d.m%d", s.Cores, s.MemoryMiB)
}

// sameParameters is EC2's rule: a token is tied to its request.
func sameParameters(a, b sites.Spec) bool {
	return a.Count == b.Count && a.Shape == b.Shape && a.Duration == b.Duration &&
		slices.Equal(a.UserData, b.UserData) && maps.Equal(a.Tags, b.Tags)
}

func (f *Fake) copiesLocked(ids []string) []sites.Instance {
	out := make([]sites.Instance, 0, len(ids))
	for _, id := range ids {
		in := *f.instances[id]
		in.Tags = maps.Clone(in.Tags)
		out = append(out, in)
	}
	return out
}

// Instances implements sites.Site.
func (f *Fake) Instances(ctx context.Context, tags map[string]string) ([]sites.Instance, error) {
	if err := f.wait(ctx, "instances"); err != nil {
		return nil, err
	}
	if len(tags) == 0 {
		return nil, f.fail("instances", sites.ErrInvalid, "listing needs at least one tag")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, id := range f.order {
		if hasTags(f.instances[id].Tags, tags) {
			ids = append(ids, id)
		}
	}
	return f.copiesLocked(ids), nil
}

func hasTags(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// Terminate implements sites.Site. Instances end at once.
func (f *Fake) Terminate(ctx context.Context, ids []string) error {
	if err := f.wait(ctx, "terminate"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if in, ok := f.instances[id]; ok {
			in.State = sites.StateTerminated
		}
	}
	return nil
}
