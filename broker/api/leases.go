package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// Limits on what a request may ask for (count, cores and memory are bounded
// in LeaseRequest's schema tags). Far beyond any site, they keep the
// calendar's arithmetic (nanosecond ticks, core-seconds) far from overflow.
const (
	maxDuration = 366 * 24 * time.Hour
	maxAhead    = 366 * 24 * time.Hour // how far from now a start may be
)

// Duration is a length in JSON: a Go duration string ("3h", "90m"; "d"
// for days is understood too) or a number of seconds. It keeps the text
// and is parsed by the handler, so that a bad value is a 400 naming the
// field rather than a decoding failure.
type Duration string

// UnmarshalJSON keeps the text of a string or a number.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*d = Duration(s)
		return nil
	}
	*d = Duration(b)
	return nil
}

// Schema says "string or number" in the OpenAPI document and to huma's
// validator.
func (Duration) Schema(huma.Registry) *huma.Schema {
	s := &huma.Schema{
		Description: `A Go duration ("3h", "90m", "1d12h") or a number of seconds`,
		Examples:    []any{"3h"},
		OneOf:       []*huma.Schema{{Type: huma.TypeString, Examples: []any{"3h"}}, {Type: huma.TypeNumber, Examples: []any{10800}}},
	}
	for _, o := range s.OneOf {
		o.PrecomputeMessages()
	}
	return s
}

// Parse reads the duration; zero is allowed only when zeroOK.
func (d Duration) Parse(field string, zeroOK bool) (time.Duration, error) {
	s := strings.TrimSpace(string(d))
	var v time.Duration
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || f < 0 || f > maxDuration.Seconds() {
			return 0, lease.Errorf(lease.EINVALID, field, "%s seconds is out of range (0 to %d)", s, int64(maxDuration.Seconds()))
		}
		v = time.Duration(f * float64(time.Second))
	} else {
		p, err := policies.ParseDuration(s)
		if err != nil {
			return 0, lease.Errorf(lease.EINVALID, field, "%q is not a duration: write one like \"3h\", \"90m\" or a number of seconds", s)
		}
		v = p
	}
	switch {
	case v < 0, v > maxDuration:
		return 0, lease.Errorf(lease.EINVALID, field, "%s is out of range (0 to %s)", s, policies.FormatDuration(maxDuration))
	case v == 0 && !zeroOK:
		return 0, lease.Errorf(lease.EINVALID, field, "must be positive, got %s", s)
	}
	return v, nil
}

// LeaseRequest asks for a timed virtual cluster: Count VMs of Cores and
// MemoryMiB each, from Image, for Duration.
type LeaseRequest struct {
	ID            string    `json:"id,omitempty" pattern:"^[a-z0-9][a-z0-9-]{0,62}$" doc:"The lease's id; the broker makes one (l-…) when left out. Becomes part of the VMs' host names."`
	Group         string    `json:"group,omitempty" pattern:"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$" doc:"The group to charge; default: the caller's group"`
	Count         int       `json:"count,omitempty" minimum:"1" maximum:"10000" default:"1" doc:"Number of VMs; they start together or not at all"`
	Cores         int       `json:"cores,omitempty" minimum:"1" maximum:"1024" default:"1" doc:"Cores per VM"`
	MemoryMiB     int64     `json:"memory_mib" minimum:"1" maximum:"4194304" doc:"Memory per VM in MiB"`
	Image         string    `json:"image,omitempty" pattern:"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,254}$" doc:"Image the VMs boot"`
	Duration      Duration  `json:"duration" doc:"Lease length"`
	EarliestStart time.Time `json:"earliest_start,omitzero" doc:"Do not start before this time (default: at once)"`
	StartBy       time.Time `json:"start_by,omitzero" doc:"Start no later than this, or be rejected (or overflow) with the reason"`
	SSHKeys       []string  `json:"ssh_keys,omitempty" maxItems:"32" doc:"The user's SSH public keys (authorized_keys lines), installed in every VM"`
}

// request turns r into a lease.Request of user u, checking what the
// schema cannot.
func (r *LeaseRequest) request(u broker.User, now time.Time) (lease.Request, error) {
	d, err := r.Duration.Parse("duration", false)
	if err != nil {
		return lease.Request{}, err
	}
	group := lease.GroupID(r.Group)
	if group == "" {
		group = u.Group
	}
	if group == "" {
		return lease.Request{}, lease.Errorf(lease.EINVALID, "group", "%s belongs to no group: name the group to charge", u.Name)
	}
	for _, t := range []struct {
		field string
		at    time.Time
	}{{"earliest_start", r.EarliestStart}, {"start_by", r.StartBy}} {
		if !t.at.IsZero() && (t.at.Before(now.Add(-maxAhead)) || t.at.After(now.Add(maxAhead))) {
			return lease.Request{}, lease.Errorf(lease.EINVALID, t.field, "%s is more than a year away", t.at.Format(time.RFC3339))
		}
	}
	id := lease.ID(r.ID)
	if id == "" {
		id = newLeaseID()
	}
	req := lease.Request{
		ID: id, Group: group, User: lease.UserID(u.Name), Count: max(r.Count, 1),
		Shape:    lease.Shape{Cores: max(r.Cores, 1), MemoryMiB: r.MemoryMiB, Image: r.Image},
		Duration: d, EarliestStart: r.EarliestStart.UTC(), StartBy: r.StartBy.UTC(), AllOrNothing: true,
	}
	if r.EarliestStart.IsZero() {
		req.EarliestStart = time.Time{}
	}
	if r.StartBy.IsZero() {
		req.StartBy = time.Time{}
	}
	if err := req.Validate(); err != nil {
		if le, ok := err.(*lease.Error); ok {
			// The body is flat; lease.Request nests the shape.
			le.Field = strings.TrimPrefix(le.Field, "shape.")
		}
		return lease.Request{}, err
	}
	if !seesGroup(u, group) {
		return lease.Request{}, lease.Errorf(lease.EFORBIDDEN, "group", "%s may ask for leases of group %s only", u.Name, u.Group)
	}
	return req, nil
}

type leaseBodyInput struct {
	Body LeaseRequest
}

type leaseOutput struct {
	Location string `header:"Location"`
	Body     *broker.Lease
}

type leaseIDInput struct {
	ID string `path:"id" maxLength:"64" doc:"Lease id"`
}

type getLeaseInput struct {
	ID         string `path:"id" maxLength:"64" doc:"Lease id"`
	Consistent bool   `query:"consistent" doc:"Read through the leader (linearizable) instead of this node's copy"`
}

type listLeasesInput struct {
	Consistent bool   `query:"consistent" doc:"Read through the leader (linearizable) instead of this node's copy"`
	State      string `query:"state" enum:"requested,granted,deferred,starting,running,ended,overflowed,rejected,failed" doc:"Only leases in this state"`
	Group      string `query:"group" maxLength:"64" doc:"Only this group's leases (users and managers see their own group only)"`
	User       string `query:"user" maxLength:"64" doc:"Only leases this user asked for"`
}

type leasesOutput struct {
	Body []*broker.Lease
}

// WhatIf is what a request would get now; nothing changes.
type WhatIf struct {
	Request  lease.Request  `json:"request"`
	Decision lease.Decision `json:"decision"`
}

type whatIfInput struct {
	Consistent bool `query:"consistent" doc:"Read through the leader (linearizable) instead of this node's copy"`
	Body       LeaseRequest
}

type whatIfOutput struct {
	Body *WhatIf
}

func (a *API) leaseRoutes() {
	tags := []string{"leases"}
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "create-lease", Method: http.MethodPost, Path: "/v1/leases", Tags: tags,
		Summary:       "Ask for a timed virtual cluster",
		Description:   "The broker decides at once: granted (starts now), deferred (a firm later start), overflowed (runs on another site) or rejected (with a reason). Every decision answers 201 with the lease.",
		DefaultStatus: http.StatusCreated,
	}, a.createLease)
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "list-leases", Method: http.MethodGet, Path: "/v1/leases", Tags: tags,
		Summary: "List leases in submission order (users and managers: their group's)",
	}, a.listLeases)
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "get-lease", Method: http.MethodGet, Path: "/v1/leases/{id}", Tags: tags,
		Summary: "Show a lease; another group's lease is not found",
	}, a.getLease)
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "terminate-lease", Method: http.MethodDelete, Path: "/v1/leases/{id}", Tags: tags,
		Summary: "End a running lease or cancel a waiting one (users: their own; managers: their group's)",
	}, a.terminateLease)
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "whatif-lease", Method: http.MethodPost, Path: "/v1/leases/whatif", Tags: tags,
		Summary: "What a request would get now, changing nothing",
	}, a.whatIf)
}

func (a *API) createLease(ctx context.Context, in *leaseBodyInput) (*leaseOutput, error) {
	u := caller(ctx)
	req, err := in.Body.request(u, time.Now())
	if err != nil {
		return nil, err
	}
	if err := checkUserKeys(in.Body.SSHKeys); err != nil {
		return nil, err
	}
	cc, err := clusterContext(in.Body.SSHKeys)
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	// A made-up id may collide; the client's own may not be replaced.
	for attempt := 0; ; attempt++ {
		res, err := a.propose(ctx, broker.CmdSubmit, u.Name, broker.Submit{Requests: []lease.Request{req}, Contexts: []*broker.ClusterContext{cc}})
		if err != nil {
			return nil, fmt.Errorf("lease %s: %w", req.ID, err)
		}
		rs, ok := res.([]broker.SubmitResult)
		if !ok || len(rs) != 1 {
			return nil, fmt.Errorf("submit of %s: backend answered %T", req.ID, res)
		}
		if e := rs[0].Error; e != nil {
			if e.Code == lease.ECONFLICT && in.Body.ID == "" && attempt < 3 {
				req.ID = newLeaseID()
				continue
			}
			return nil, e
		}
		l := rs[0].Lease
		if l == nil {
			return nil, fmt.Errorf("submit of %s: no lease in the result", req.ID)
		}
		a.metrics.decisions.WithLabelValues(l.Decision.Kind.String()).Inc()
		a.audit(ctx, "lease.create", string(l.ID), "group", string(l.Group), "decision", l.Decision.Kind.String())
		return &leaseOutput{Location: "/v1/leases/" + string(l.ID), Body: l}, nil
	}
}

func (a *API) listLeases(ctx context.Context, in *listLeasesInput) (*leasesOutput, error) {
	u := caller(ctx)
	group := lease.GroupID(in.Group)
	if group != "" && !seesGroup(u, group) {
		return nil, lease.Errorf(lease.EFORBIDDEN, "group", "%s sees the leases of group %s only", u.Name, u.Group)
	}
	out := []*broker.Lease{}
	err := a.read(ctx, in.Consistent, func(st *broker.State) error {
		out = append(out, st.Leases(func(l *broker.Lease) bool {
			return seesGroup(u, l.Group) &&
				(group == "" || l.Group == group) &&
				(in.State == "" || string(l.State) == in.State) &&
				(in.User == "" || l.User == in.User)
		})...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &leasesOutput{Body: out}, nil
}

// visibleLease reads lease id as u may see it.
func (a *API) visibleLease(ctx context.Context, u broker.User, id string, strong bool) (*broker.Lease, error) {
	var l *broker.Lease
	err := a.read(ctx, strong, func(st *broker.State) error {
		var ok bool
		if l, ok = st.Lease(lease.ID(id)); !ok || !seesGroup(u, l.Group) {
			return lease.Errorf(lease.ENOTFOUND, "id", "no lease %q", id)
		}
		return nil
	})
	return l, err
}

func (a *API) getLease(ctx context.Context, in *getLeaseInput) (*leaseOutput, error) {
	l, err := a.visibleLease(ctx, caller(ctx), in.ID, in.Consistent)
	if err != nil {
		return nil, err
	}
	return &leaseOutput{Body: l}, nil
}

func (a *API) terminateLease(ctx context.Context, in *leaseIDInput) (*leaseOutput, error) {
	u := caller(ctx)
	l, err := a.visibleLease(ctx, u, in.ID, false)
	if err != nil {
		return nil, err
	}
	if !mayEnd(u, l) {
		return nil, lease.Errorf(lease.EFORBIDDEN, "id", "lease %s is %s's; only they, a manager of %s or an admin may end it", l.ID, l.User, l.Group)
	}
	res, err := a.propose(ctx, broker.CmdRelease, u.Name, broker.Release{ID: l.ID, Reason: "terminated by " + u.Name})
	if err != nil {
		return nil, err
	}
	ended, ok := res.(*broker.Lease)
	if !ok || ended == nil {
		return nil, fmt.Errorf("release of %s: backend answered %T", l.ID, res)
	}
	a.audit(ctx, "lease.terminate", string(l.ID), "group", string(l.Group))
	return &leaseOutput{Body: ended}, nil
}

func (a *API) whatIf(ctx context.Context, in *whatIfInput) (*whatIfOutput, error) {
	u := caller(ctx)
	req, err := in.Body.request(u, time.Now())
	if err != nil {
		return nil, err
	}
	var d lease.Decision
	err = a.read(ctx, in.Consistent, func(st *broker.State) error {
		if _, dup := st.Lease(req.ID); dup {
			return lease.Errorf(lease.ECONFLICT, "id", "a lease with id %q exists already", req.ID)
		}
		req.Submitted = st.Now()
		d = st.WhatIf(req)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &whatIfOutput{Body: &WhatIf{Request: req, Decision: d}}, nil
}
