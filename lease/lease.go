// Package lease holds the domain types of fairlease: what a user asks for
// (Request), what the broker decides (Decision), and what it grants (Lease).
// It imports nothing of ours, so every other package can speak it.
package lease

import (
	"fmt"
	"time"
)

// GroupID names a group in the share tree ("physics", "partner:siteB").
type GroupID string

// UserID names a user.
type UserID string

// ID identifies a request and the lease it becomes.
type ID string

// Shape is the size of one VM.
type Shape struct {
	Cores     int    `json:"cores"`
	MemoryMiB int64  `json:"memory_mib"`
	Image     string `json:"image,omitempty"`
}

// Resources is an amount of cores and memory.
type Resources struct {
	Cores     int64 `json:"cores"`
	MemoryMiB int64 `json:"memory_mib"`
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{Cores: r.Cores + o.Cores, MemoryMiB: r.MemoryMiB + o.MemoryMiB}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{Cores: r.Cores - o.Cores, MemoryMiB: r.MemoryMiB - o.MemoryMiB}
}

// Scale returns r * n.
func (r Resources) Scale(n int64) Resources {
	return Resources{Cores: r.Cores * n, MemoryMiB: r.MemoryMiB * n}
}

// Fits reports whether r fits within o in every dimension.
func (r Resources) Fits(o Resources) bool {
	return r.Cores <= o.Cores && r.MemoryMiB <= o.MemoryMiB
}

// Resources returns the resources of one VM of this shape.
func (s Shape) Resources() Resources {
	return Resources{Cores: int64(s.Cores), MemoryMiB: s.MemoryMiB}
}

// Request is a user's ask for a timed virtual cluster: Count VMs of Shape for
// Duration, starting no earlier than EarliestStart and no later than StartBy.
type Request struct {
	ID    ID      `json:"id"`
	Group GroupID `json:"group"`
	User  UserID  `json:"user"`
	Count int     `json:"count"`
	Shape Shape   `json:"shape"`
	// Duration is the requested lease length; the lease ends at start+Duration
	// unless released earlier.
	Duration time.Duration `json:"duration"`
	// Submitted is when the broker received the request.
	Submitted time.Time `json:"submitted"`
	// EarliestStart is the earliest acceptable start (zero: at once).
	EarliestStart time.Time `json:"earliest_start,omitzero"`
	// StartBy is the latest acceptable start (zero: no limit). A request that
	// cannot start locally by then overflows or is rejected.
	StartBy time.Time `json:"start_by,omitzero"`
	// AllOrNothing asks for every VM or none. Clusters are always gangs;
	// the field is explicit so a request reads as what it is.
	AllOrNothing bool `json:"all_or_nothing"`
	// PreferHosts are hosts to place VMs on first when a start time is
	// found (those that already hold the image, say); they never change
	// when the request starts, only where.
	PreferHosts []string `json:"prefer_hosts,omitempty"`
}

// Total returns the resources of all VMs of the request.
func (r Request) Total() Resources {
	return r.Shape.Resources().Scale(int64(r.Count))
}

// Validate checks a request for a client mistake and names the field.
func (r Request) Validate() error {
	switch {
	case r.ID == "":
		return Errorf(EINVALID, "id", "request needs an id")
	case r.Group == "":
		return Errorf(EINVALID, "group", "request needs a group")
	case r.Count < 1:
		return Errorf(EINVALID, "count", "count must be at least 1, got %d", r.Count)
	case r.Shape.Cores < 1:
		return Errorf(EINVALID, "shape.cores", "cores per VM must be at least 1, got %d", r.Shape.Cores)
	case r.Shape.MemoryMiB < 0:
		return Errorf(EINVALID, "shape.memory_mib", "memory must not be negative, got %d", r.Shape.MemoryMiB)
	case r.Duration <= 0:
		return Errorf(EINVALID, "duration", "duration must be positive, got %s", r.Duration)
	case !r.StartBy.IsZero() && !r.EarliestStart.IsZero() && r.StartBy.Before(r.EarliestStart):
		return Errorf(EINVALID, "start_by", "start_by %s is before earliest_start %s",
			r.StartBy.Format(time.RFC3339), r.EarliestStart.Format(time.RFC3339))
	}
	return nil
}

// Placement says which host runs which VM of a lease.
type Placement struct {
	Index int    `json:"index"`
	Host  string `json:"host"`
}

// State is where a lease is in its life.
type State string

// Lease states. Transitions: requested → granted|deferred → starting →
// running → ended; or requested → overflowed|rejected; failed on error.
const (
	StateRequested  State = "requested"
	StateGranted    State = "granted"
	StateDeferred   State = "deferred"
	StateStarting   State = "starting"
	StateRunning    State = "running"
	StateEnded      State = "ended"
	StateOverflowed State = "overflowed"
	StateRejected   State = "rejected"
	StateFailed     State = "failed"
)

// Lease is an admitted request with its interval and placement.
type Lease struct {
	Request   Request     `json:"request"`
	State     State       `json:"state"`
	Site      string      `json:"site"`
	Start     time.Time   `json:"start"`
	End       time.Time   `json:"end"`
	Placement []Placement `json:"placement,omitempty"`
}

// ID returns the lease's ID, the ID of its request.
func (l Lease) ID() ID { return l.Request.ID }

// Kind is the broker's answer to a request.
type Kind uint8

// Decision kinds.
const (
	Granted    Kind = iota + 1 // starts now
	Deferred                   // starts at a firm time (or waits in a queue, for queue baselines)
	Overflowed                 // runs on another site
	Rejected                   // with a reason
)

var kindNames = [...]string{"", "granted", "deferred", "overflowed", "rejected"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k > 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// MarshalText writes the kind's name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a kind's name.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, n := range kindNames {
		if i > 0 && n == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("lease: unknown decision kind %q (want granted, deferred, overflowed or rejected)", b)
}

// Reason says why a request was not granted now, in a form a program can
// act on; Decision.Message says it to a person.
type Reason string

// Reasons.
const (
	ReasonNone         Reason = ""
	ReasonQuota        Reason = "quota_exceeded"  // a group quota forbids it
	ReasonTooLarge     Reason = "too_large"       // larger than the site could ever hold
	ReasonTooLong      Reason = "too_long"        // longer than the maximum lease
	ReasonStartBy      Reason = "start_by_missed" // earliest start is after start_by
	ReasonNoBudget     Reason = "no_overflow_budget"
	ReasonUnknownGroup Reason = "unknown_group"
	ReasonInvalid      Reason = "invalid"
	ReasonLoanLimit    Reason = "loan_limit" // needs to borrow for longer than the loan limit
	ReasonQueued       Reason = "queued"     // queue baselines: waits without a firm time
)

// Decision is the broker's answer to a request.
type Decision struct {
	Kind Kind `json:"kind"`
	// Start is when the lease starts: now for granted, the firm time for
	// deferred, zero for a queued request without a firm time.
	Start time.Time `json:"start,omitzero"`
	// End is when the lease ends at the latest.
	End time.Time `json:"end,omitzero"`
	// Site is "local" or the name of the site it overflowed to.
	Site string `json:"site,omitempty"`
	// InShare reports whether the request kept its group within its share.
	InShare   bool        `json:"in_share"`
	Reason    Reason      `json:"reason,omitempty"`
	Message   string      `json:"message,omitempty"`
	Placement []Placement `json:"placement,omitempty"`
	// EarliestLocal is the earliest local start found (for rejections and
	// overflows: what waiting would have meant).
	EarliestLocal time.Time `json:"earliest_local,omitzero"`
}

// LocalSite is the name of the site the broker runs itself.
const LocalSite = "local"
