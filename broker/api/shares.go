package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// ShareRow is one group's entitlement and use, like a row of Slurm's
// sshare.
type ShareRow struct {
	Group  string `json:"group"`
	Parent string `json:"parent,omitempty" doc:"Enclosing group in the share tree; empty for a root"`
	// Weight ranks the group among its siblings.
	Weight float64 `json:"weight"`
	Share  float64 `json:"share" doc:"Normalized share: the group's fraction of the site among active groups (0 when inactive)"`
	Active bool    `json:"active" doc:"Holding or waiting for capacity, so entitled to a share"`
	Usage  float64 `json:"usage" doc:"Decayed usage in site-seconds (dominant resource)"`
	// EffectiveUsage is Usage over all groups' usage.
	EffectiveUsage float64         `json:"effective_usage" doc:"Usage normalized among all groups (sums to 1)"`
	FairShare      float64         `json:"fairshare" doc:"Fair-share factor 2^(-effective_usage/share): 1 for unused, 0.5 at share, toward 0 above"`
	Held           lease.Resources `json:"held" doc:"Cores and memory running now"`
	Reserved       lease.Resources `json:"reserved" doc:"Cores and memory with a firm later start"`
	Queued         lease.Resources `json:"queued" doc:"Cores and memory waiting without a firm start"`
	Quota          Quota           `json:"quota"`
}

// Quota bounds a group whatever its share; 0 means no limit.
type Quota struct {
	MaxCores     int64  `json:"max_cores" doc:"Cores held and reserved at once"`
	MaxMemoryMiB int64  `json:"max_memory_mib" doc:"Memory held and reserved at once, MiB"`
	MaxLease     string `json:"max_lease" doc:"Longest lease, a duration (\"0s\": no limit)"`
	MaxVMs       int    `json:"max_vms" doc:"Most VMs in one request"`
}

func quotaOf(q policies.Quota) Quota {
	return Quota{MaxCores: q.MaxCores, MaxMemoryMiB: q.MaxMemoryMiB, MaxLease: policies.FormatDuration(q.MaxLease), MaxVMs: q.MaxVMs}
}

// shareRows reads the report: every group the engine knows, and the
// policy's groups it does not know yet.
func shareRows(st *broker.State) []ShareRow {
	pol := st.Policy()
	shares := st.Shares()
	var total float64
	for _, s := range shares {
		total += s.Usage
	}
	rows := make([]ShareRow, 0, len(shares))
	seen := map[lease.GroupID]bool{}
	for _, s := range shares {
		seen[s.Group] = true
		r := ShareRow{
			Group: string(s.Group), Weight: s.Weight, Share: s.Share, Active: s.Active, Usage: s.Usage,
			FairShare: s.Factor, Held: s.Held, Reserved: s.Reserved, Queued: s.Queued,
		}
		if total > 0 {
			r.EffectiveUsage = s.Usage / total
		}
		if g, ok := pol.Group(s.Group); ok {
			r.Parent, r.Quota = string(g.Parent), quotaOf(g.Quota)
		}
		rows = append(rows, r)
	}
	for id, g := range pol.Groups {
		if !seen[id] {
			rows = append(rows, ShareRow{Group: string(id), Parent: string(g.Parent), Weight: g.Weight, FairShare: 1, Quota: quotaOf(g.Quota)})
		}
	}
	slices.SortFunc(rows, func(a, b ShareRow) int { return strings.Compare(a.Group, b.Group) })
	return rows
}

type sharesOutput struct {
	Body []ShareRow
}

type shareOutput struct {
	Body *ShareRow
}

// ShareUpdate changes one group; what it leaves out stays as it is.
type ShareUpdate struct {
	Weight float64      `json:"weight,omitempty" exclusiveMinimum:"0" maximum:"1000000" doc:"New weight among siblings"`
	Parent *string      `json:"parent,omitempty" pattern:"^(-|[A-Za-z0-9][A-Za-z0-9_.:-]{0,63})$" doc:"New parent group; \"-\" makes the group a root"`
	Quota  *QuotaUpdate `json:"quota,omitempty" doc:"Quota fields to change"`
}

// QuotaUpdate changes some quota fields; 0 removes a limit.
type QuotaUpdate struct {
	MaxCores     *int64    `json:"max_cores,omitempty" minimum:"0" maximum:"1073741824"`
	MaxMemoryMiB *int64    `json:"max_memory_mib,omitempty" minimum:"0" maximum:"1099511627776"`
	MaxLease     *Duration `json:"max_lease,omitempty"`
	MaxVMs       *int      `json:"max_vms,omitempty" minimum:"0" maximum:"1000000"`
}

type setShareInput struct {
	Group string `path:"group" pattern:"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$" doc:"Group name"`
	Body  ShareUpdate
}

// PolicyDoc is the site policy as a TOML document (see package policies
// for the format).
type PolicyDoc struct {
	Name string `json:"name,omitempty" readOnly:"true" doc:"The policy's name"`
	Text string `json:"text" maxLength:"1048576" doc:"The policy, TOML"`
}

type policyOutput struct {
	Body *PolicyDoc
}

// PolicyUpdate replaces the site policy.
type PolicyUpdate struct {
	Text string `json:"text" maxLength:"1048576" doc:"The new policy, TOML; it replaces the whole policy"`
}

type setPolicyInput struct {
	Body PolicyUpdate
}

// readOnlyInput is the input of reads without parameters. (huma does not
// see parameters in embedded unexported structs: each input lists its own.)
type readOnlyInput struct {
	Consistent bool `query:"consistent" doc:"Read through the leader (linearizable) instead of this node's copy"`
}

func (a *API) shareRoutes() {
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "list-shares", Method: http.MethodGet, Path: "/v1/shares", Tags: []string{"shares"},
		Summary: "Every group's share and usage, like sshare",
	}, func(ctx context.Context, in *readOnlyInput) (*sharesOutput, error) {
		var rows []ShareRow
		err := a.read(ctx, in.Consistent, func(st *broker.State) error {
			rows = shareRows(st)
			return nil
		})
		return &sharesOutput{Body: rows}, err
	})
	register(a, broker.RoleAdmin, huma.Operation{
		OperationID: "set-share", Method: http.MethodPut, Path: "/v1/shares/{group}", Tags: []string{"shares"},
		Summary: "Add or change a group: weight, parent, quota (admin)",
	}, a.setShare)
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "get-policy", Method: http.MethodGet, Path: "/v1/policy", Tags: []string{"policy"},
		Summary: "The site policy as TOML, with every value written out",
	}, func(ctx context.Context, in *readOnlyInput) (*policyOutput, error) {
		var doc PolicyDoc
		err := a.read(ctx, in.Consistent, func(st *broker.State) error {
			p := st.Policy()
			doc = PolicyDoc{Name: p.Name, Text: EncodePolicy(p)}
			return nil
		})
		return &policyOutput{Body: &doc}, err
	})
	register(a, broker.RoleAdmin, huma.Operation{
		OperationID: "set-policy", Method: http.MethodPut, Path: "/v1/policy", Tags: []string{"policy"},
		Summary: "Replace the site policy (admin)",
	}, a.setPolicy)
}

func (a *API) setShare(ctx context.Context, in *setShareInput) (*shareOutput, error) {
	u := caller(ctx)
	g := lease.GroupID(in.Group)
	b := in.Body
	set := broker.SetGroup{Group: g, Weight: b.Weight}
	if b.Parent != nil {
		if *b.Parent == in.Group {
			return nil, lease.Errorf(lease.EINVALID, "parent", "group %s cannot be its own parent", g)
		}
		set.Parent = *b.Parent
	}
	if q := b.Quota; q != nil {
		// The command replaces the whole quota: start from the current one.
		var cur policies.Quota
		err := a.read(ctx, false, func(st *broker.State) error {
			if pg, ok := st.Policy().Group(g); ok {
				cur = pg.Quota
			} else {
				cur = st.Policy().Defaults.Quota
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if q.MaxCores != nil {
			cur.MaxCores = *q.MaxCores
		}
		if q.MaxMemoryMiB != nil {
			cur.MaxMemoryMiB = *q.MaxMemoryMiB
		}
		if q.MaxVMs != nil {
			cur.MaxVMs = *q.MaxVMs
		}
		if q.MaxLease != nil {
			d, err := q.MaxLease.Parse("quota.max_lease", true)
			if err != nil {
				return nil, err
			}
			cur.MaxLease = d
		}
		set.Quota = &broker.QuotaSpec{MaxCores: cur.MaxCores, MaxMemoryMiB: cur.MaxMemoryMiB, MaxLease: cur.MaxLease, MaxVMs: cur.MaxVMs}
	}
	if _, err := a.propose(ctx, broker.CmdSetGroup, u.Name, set); err != nil {
		var le *lease.Error
		if errors.As(err, &le) && le.Field == "group" && le.Code == lease.EINVALID && in.Group != "" {
			// Validate's complaint is about the tree as a whole (a
			// cycle, an unknown parent): the parent is what was changed.
			if b.Parent != nil {
				le.Field = "parent"
			}
		}
		return nil, err
	}
	a.audit(ctx, "share.set", in.Group)
	var row *ShareRow
	err := a.read(ctx, false, func(st *broker.State) error {
		for _, r := range shareRows(st) {
			if r.Group == in.Group {
				row = &r
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if row == nil {
		// A follower may not have applied it yet.
		row = &ShareRow{Group: in.Group, Weight: b.Weight, FairShare: 1}
	}
	return &shareOutput{Body: row}, nil
}

func (a *API) setPolicy(ctx context.Context, in *setPolicyInput) (*policyOutput, error) {
	// Parse here for an error with a line number, before the log.
	p, err := policies.Parse("policy.toml", strings.NewReader(in.Body.Text))
	if err != nil {
		return nil, lease.Errorf(lease.EINVALID, "text", "%v", err)
	}
	if _, err := a.propose(ctx, broker.CmdSetPolicy, caller(ctx).Name, broker.SetPolicy{Text: in.Body.Text}); err != nil {
		return nil, err
	}
	a.audit(ctx, "policy.set", p.Name)
	return &policyOutput{Body: &PolicyDoc{Name: p.Name, Text: EncodePolicy(p)}}, nil
}
