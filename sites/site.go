// Package sites is the contract between the broker and the places where an
// overflowed lease runs: EC2, a partner cloud that speaks EC2 (another
// fairlease, OpenStack's ec2-api, Eucalyptus), or a test fake.
//
// A site runs a lease as a timed, all-or-nothing cluster: Launch starts
// every VM or none, and the caller ends the cluster with Terminate when the
// lease ends (a site has no notion of a lease's end of its own). Launch is
// idempotent in Spec.Token so that a caller that lost a reply can ask
// again without starting a second cluster; the caller chooses the token and
// persists it before it launches. Instances finds a site's clusters by tag,
// which is how a broker that restarted or failed over reconciles.
//
// Every adapter passes sitetest.Run.
package sites

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fairlease/fairlease/lease"
)

// MaxTokenLen is the longest idempotency token a site accepts; it is EC2's
// limit for ClientToken.
const MaxTokenLen = 64

// Spec is what the broker asks a site to run: Count VMs of Shape, all or
// nothing, for Duration.
type Spec struct {
	// Lease is the broker's lease id, for messages.
	Lease lease.ID
	// Token makes Launch idempotent: the same token never makes a second
	// cluster. It is deterministic per lease and attempt (the caller
	// chooses and persists it before Launch), printable ASCII, at most
	// MaxTokenLen bytes.
	Token string
	// Count is the number of VMs; the site starts all of them or none.
	Count int
	// Shape is the size and image of each VM. Image is the site's own
	// image id (an AMI id for EC2).
	Shape lease.Shape
	// Duration is the lease length. The caller terminates the cluster at
	// the end; sites may use it for accounting or pass it on.
	Duration time.Duration
	// UserData is passed to every VM as is (cloud-init).
	UserData []byte
	// Tags are set at launch on every instance (broker id, lease id, …), so
	// that Instances can find them even if the launch reply was lost.
	Tags map[string]string
}

// Validate checks the spec for a caller mistake; the error wraps ErrInvalid.
func (s Spec) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("lease %s: %s: %w", s.Lease, fmt.Sprintf(format, a...), ErrInvalid)
	}
	switch {
	case s.Token == "":
		return bad("spec needs an idempotency token")
	case len(s.Token) > MaxTokenLen:
		return bad("token %q is longer than %d bytes", s.Token, MaxTokenLen)
	case strings.ContainsFunc(s.Token, func(r rune) bool { return r < 0x21 || r > 0x7e }):
		return bad("token %q must be printable ASCII without spaces", s.Token)
	case s.Count < 1:
		return bad("count must be at least 1, got %d", s.Count)
	case s.Shape.Cores < 1:
		return bad("cores per VM must be at least 1, got %d", s.Shape.Cores)
	case s.Shape.MemoryMiB < 0:
		return bad("memory must not be negative, got %d MiB", s.Shape.MemoryMiB)
	case s.Shape.Image == "":
		return bad("spec needs an image")
	case s.Duration <= 0:
		return bad("duration must be positive, got %s", s.Duration)
	}
	return nil
}

// Instance states, as EC2 names them.
const (
	StatePending      = "pending"
	StateRunning      = "running"
	StateShuttingDown = "shutting-down"
	StateTerminated   = "terminated"
	StateStopping     = "stopping"
	StateStopped      = "stopped"
)

// Instance is one VM at a site.
type Instance struct {
	ID    string
	State string // one of the State constants
	// Type is the site's name for the size (an EC2 instance type).
	Type           string
	Zone           string
	PrivateAddress string
	PublicAddress  string
	Launched       time.Time
	Tags           map[string]string
}

// Ended reports whether the instance is gone or going: it no longer
// counts against the lease or the site.
func (i Instance) Ended() bool {
	return i.State == StateShuttingDown || i.State == StateTerminated
}

// Info is what the federation layer ranks sites by.
type Info struct {
	// CostPerCoreHour is the price of one core for one hour, in the unit
	// of the overflow budgets; 0 for a partner that charges nothing.
	CostPerCoreHour float64
	// Latency is the measured time of a recent API call (a moving
	// average); 0 when nothing has been measured yet.
	Latency time.Duration
}

// Site is a place where an overflowed lease runs as a timed all-or-nothing
// cluster. Implementations are safe for concurrent use.
type Site interface {
	// Name is the site's name in policies and messages.
	Name() string
	// Info reports cost and measured latency, for ranking.
	Info() Info
	// Launch starts s.Count instances or none. It is idempotent in
	// s.Token: the same token returns the same cluster (whatever state its
	// instances are in now) and never starts a second one.
	Launch(ctx context.Context, s Spec) ([]Instance, error)
	// Instances returns every instance carrying all these tags, in any
	// state (ended ones while the site still lists them). At least one tag
	// is required, so that no caller lists, and then perhaps terminates,
	// instances that are not its own.
	Instances(ctx context.Context, tags map[string]string) ([]Instance, error)
	// Terminate ends the instances. It is idempotent: ids that are already
	// gone, or that the site never knew, are not an error.
	Terminate(ctx context.Context, ids []string) error
}

// Classified errors; test with errors.Is. Each says what the caller should
// do about it.
var (
	// ErrCapacity: the site has no room now. Fail over to another
	// instance type, zone or site; do not retry at once.
	ErrCapacity = errors.New("sites: no capacity at the site now; fail over to another site")
	// ErrQuota: a limit of the account at the site is reached.
	ErrQuota = errors.New("sites: quota exceeded at the site; raise the limit there, lower the count or use another site")
	// ErrAuth: the site refused the credentials or the operation.
	ErrAuth = errors.New("sites: the site refused the credentials; check the access key and its permissions")
	// ErrInvalid: the site says our request is wrong; retrying will not help.
	ErrInvalid = errors.New("sites: the site rejected the request as invalid; fix the request or the site's configuration")
	// ErrUnavailable: the site did not answer or kept failing after
	// backoff; the outcome of a launch is unknown, so retry with the same
	// token later.
	ErrUnavailable = errors.New("sites: the site is unavailable; retry later with the same token")
)

// Error is a failure at a named site. It unwraps to its Kind (one of the
// classified errors) and to its cause.
type Error struct {
	Site string
	Op   string // launch, instances, terminate
	Kind error
	Err  error // the cause as the site reported it; may be nil
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("site %s: %s: %v", e.Site, e.Op, e.Kind)
	}
	return fmt.Sprintf("site %s: %s: %v (%v)", e.Site, e.Op, e.Err, e.Kind)
}

// Unwrap returns the kind and the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// IsRetryable reports whether the same call, with the same token, may
// succeed later at the same site. Capacity errors are not retryable there:
// the caller fails over instead, which is how retry storms are avoided.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrUnavailable)
}

// Rank orders sites for overflow: cheapest first, then lowest measured
// latency, an unmeasured site after the measured ones of the same cost,
// then by name so that the order is stable. It returns a new slice.
func Rank(ss []Site) []Site {
	type ranked struct {
		s    Site
		info Info
	}
	rs := make([]ranked, len(ss))
	for i, s := range ss {
		rs[i] = ranked{s, s.Info()} // Info once per site: it may change under us
	}
	slices.SortStableFunc(rs, func(a, b ranked) int {
		if c := compareFloat(a.info.CostPerCoreHour, b.info.CostPerCoreHour); c != 0 {
			return c
		}
		if c := compareLatency(a.info.Latency, b.info.Latency); c != 0 {
			return c
		}
		return strings.Compare(a.s.Name(), b.s.Name())
	})
	out := make([]Site, len(rs))
	for i, r := range rs {
		out[i] = r.s
	}
	return out
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareLatency puts 0 (unmeasured) last.
func compareLatency(a, b time.Duration) int {
	switch {
	case a == b:
		return 0
	case a == 0:
		return 1
	case b == 0:
		return -1
	case a < b:
		return -1
	}
	return 1
}
