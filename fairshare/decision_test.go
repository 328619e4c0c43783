package fairshare_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/fairshare"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// TestSubmit pins single decisions on small sites of 4-core / 8 GiB hosts.
// Each scenario runs under every preset unless it names some: these are
// the answers that do not depend on the policy's order or calendar.
func TestSubmit(t *testing.T) {
	withQuota := func(q policies.Quota) func(*policies.Policy) {
		return withGroup("a", func(g *policies.Group) { g.Quota = q })
	}
	tests := map[string]struct {
		presets []string // nil: every preset
		hosts   int
		policy  []func(*policies.Policy)
		before  []lease.Request // submitted at t0 first; must not be rejected
		req     lease.Request
		want    outcome
		// wantInMessage must appear in the decision's message.
		wantInMessage string
	}{
		"grant when it fits": {
			hosts: 2,
			req:   rq("r", "a", 1, 2, time.Hour),
			want:  outcome{Kind: lease.Granted, Start: 0, Site: "local", Hosts: map[string]int{"h0": 1}},
		},
		"gang placed on the hosts with room": {
			// h0 has 1 core left, h1 2, h2 4: the 2-core VMs go to h1 and h2.
			hosts:  3,
			before: []lease.Request{rq("x", "b", 1, 3, time.Hour), rq("y", "c", 1, 2, time.Hour)},
			req:    rq("r", "a", 3, 2, time.Hour),
			want:   outcome{Kind: lease.Granted, Start: 0, Site: "local", Hosts: map[string]int{"h1": 1, "h2": 2}},
		},
		"gang that fits only in part is not placed in part": {
			// 2 cores free on h1 for one VM of 2; the gang needs two.
			presets: []string{"fcfs", "easy", "caps", "fairorder"},
			hosts:   2,
			before:  []lease.Request{rq("x", "b", 1, 4, time.Hour), rq("y", "c", 1, 2, time.Hour)},
			req:     rq("r", "a", 2, 2, time.Hour),
			want:    outcome{Kind: lease.Deferred, Reason: lease.ReasonQueued, Start: -1, Site: "local"},
		},
		"gang that fits only in part gets a firm slot, whole": {
			presets: []string{"fairlease"},
			hosts:   2,
			// Two groups: a's share is half the site, the 4 cores it asks.
			before: []lease.Request{rq("x", "b", 1, 4, time.Hour), rq("y", "b", 1, 2, 30*time.Minute)},
			req:    rq("r", "a", 2, 2, time.Hour),
			want:   outcome{Kind: lease.Deferred, Start: 30 * time.Minute, Site: "local", Hosts: map[string]int{"h1": 2}},
		},
		"too large for the site": {
			hosts:         2,
			req:           rq("r", "a", 5, 2, time.Hour),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonTooLarge, Start: -1},
			wantInMessage: "the whole site holds at most 4",
		},
		"VM larger than any host": {
			hosts:         4,
			req:           rq("r", "a", 1, 6, time.Hour),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonTooLarge, Start: -1},
			wantInMessage: "larger than any host",
		},
		"VM with more memory than any host": {
			hosts: 4,
			req: rq("r", "a", 1, 1, time.Hour, func(r *lease.Request) {
				r.Shape.MemoryMiB = 16 * gib
			}),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonTooLarge, Start: -1},
			wantInMessage: "larger than any host",
		},
		"quota max_cores": {
			hosts:         4,
			policy:        []func(*policies.Policy){withQuota(policies.Quota{MaxCores: 4})},
			req:           rq("r", "a", 3, 2, time.Hour),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonQuota, Start: -1},
			wantInMessage: "may hold at most 4 cores",
		},
		"quota max_memory": {
			hosts:         4,
			policy:        []func(*policies.Policy){withQuota(policies.Quota{MaxMemoryMiB: 4 * gib})},
			req:           rq("r", "a", 2, 2, time.Hour),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonQuota, Start: -1},
			wantInMessage: "4096 MiB",
		},
		"quota max_vms": {
			hosts:         4,
			policy:        []func(*policies.Policy){withQuota(policies.Quota{MaxVMs: 2})},
			req:           rq("r", "a", 3, 1, time.Hour),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonQuota, Start: -1},
			wantInMessage: "at most 2 in one request",
		},
		"quota max_lease": {
			hosts:         4,
			policy:        []func(*policies.Policy){withQuota(policies.Quota{MaxLease: 2 * time.Hour})},
			req:           rq("r", "a", 1, 1, 3*time.Hour),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonTooLong, Start: -1},
			wantInMessage: "at most 2h0m0s",
		},
		"quota at its limit is granted": {
			hosts:  4,
			policy: []func(*policies.Policy){withQuota(policies.Quota{MaxCores: 6, MaxVMs: 3, MaxLease: time.Hour})},
			req:    rq("r", "a", 3, 2, time.Hour),
			want:   outcome{Kind: lease.Granted, Start: 0, Site: "local", Hosts: map[string]int{"h0": 2, "h1": 1}},
		},
		"caps: more than half the site": {
			presets:       []string{"caps"},
			hosts:         4,
			req:           rq("r", "a", 5, 2, time.Hour),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonQuota, Start: -1},
			wantInMessage: "may hold at most 8 cores",
		},
		"invalid: count 0": {
			hosts:         2,
			req:           rq("r", "a", 0, 1, time.Hour),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonInvalid, Start: -1},
			wantInMessage: "count",
		},
		"invalid: no group": {
			hosts:         2,
			req:           rq("r", "", 1, 1, time.Hour),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonInvalid, Start: -1},
			wantInMessage: "group",
		},
		"invalid: negative memory": {
			hosts: 2,
			req: rq("r", "a", 1, 1, time.Hour, func(r *lease.Request) {
				r.Shape.MemoryMiB = -1
			}),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonInvalid, Start: -1},
			wantInMessage: "shape.memory_mib",
		},
		"invalid: no duration": {
			hosts:         2,
			req:           rq("r", "a", 1, 1, 0),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonInvalid, Start: -1},
			wantInMessage: "duration",
		},
		"invalid: no id": {
			hosts:         2,
			req:           rq("", "a", 1, 1, time.Hour),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonInvalid, Start: -1},
			wantInMessage: "id",
		},
		"invalid: start_by before earliest start": {
			hosts: 2,
			req: rq("r", "a", 1, 1, time.Hour, func(r *lease.Request) {
				r.EarliestStart, r.StartBy = at(2*time.Hour), at(time.Hour)
			}),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonInvalid, Start: -1},
			wantInMessage: "start_by",
		},
		"start_by already passed": {
			hosts:         2,
			req:           rq("r", "a", 1, 1, time.Hour, startBy(at(-time.Minute))),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonStartBy, Start: -1},
			wantInMessage: "start_by",
		},
		"duplicate id": {
			hosts:         2,
			before:        []lease.Request{rq("r", "a", 1, 1, time.Hour)},
			req:           rq("r", "b", 1, 1, time.Hour),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonInvalid, Start: -1},
			wantInMessage: `"r" exists already`,
		},
		"unknown group under unknown_groups=reject": {
			hosts: 2,
			policy: []func(*policies.Policy){withGroup("a", nil), func(p *policies.Policy) {
				p.UnknownGroups = policies.UnknownReject
			}},
			req:           rq("r", "zz", 1, 1, time.Hour),
			want:          outcome{Kind: lease.Rejected, Reason: lease.ReasonUnknownGroup, Start: -1},
			wantInMessage: `"zz"`,
		},
		"configured group under unknown_groups=reject": {
			hosts: 2,
			policy: []func(*policies.Policy){withGroup("a", nil), func(p *policies.Policy) {
				p.UnknownGroups = policies.UnknownReject
			}},
			req:  rq("r", "a", 1, 1, time.Hour),
			want: outcome{Kind: lease.Granted, Start: 0, Site: "local", Hosts: map[string]int{"h0": 1}},
		},
	}
	for name, tc := range tests {
		presets := tc.presets
		if presets == nil {
			presets = fairshare.PolicyNames
		}
		for _, preset := range presets {
			t.Run(name+"/"+preset, func(t *testing.T) {
				e := newEngine(t, preset, hosts(tc.hosts), pol(t, tc.policy...))
				for _, r := range tc.before {
					if d := e.Submit(t0, r); d.Kind == lease.Rejected {
						t.Fatalf("setup: Submit(%s) = %v %s: %s", r.ID, d.Kind, d.Reason, d.Message)
					}
				}
				d := e.Submit(t0, tc.req)
				check(t, e, "Submit")
				if diff := cmp.Diff(tc.want, summarize(d)); diff != "" {
					t.Errorf("Submit(%s) = %s; got … want differs (-want +got):\n%s", tc.req.ID, d.Message, diff)
				}
				if !strings.Contains(d.Message, tc.wantInMessage) {
					t.Errorf("message %q, want it to contain %q", d.Message, tc.wantInMessage)
				}
				if d.Kind == lease.Rejected && !slices.ContainsFunc(tc.before, func(r lease.Request) bool { return r.ID == tc.req.ID }) {
					// Nothing of a refused request may stay behind.
					if err := e.Release(t0, tc.req.ID); lease.ErrorCode(err) != lease.ENOTFOUND {
						t.Errorf("Release(%s) after a rejection = %v, want a not_found error", tc.req.ID, err)
					}
				}
			})
		}
	}
}

// TestWhatIf checks that a dry run answers what Submit then answers and
// leaves no trace: Shares are the same before and after it, and so is
// every later decision.
func TestWhatIf(t *testing.T) {
	tests := map[string]struct {
		policy []func(*policies.Policy)
		before []lease.Request
		req    lease.Request
		later  lease.Request // submitted after the dry run and the real one
	}{
		"idle site": {
			req:   rq("r", "a", 2, 2, time.Hour),
			later: rq("l", "a", 2, 2, time.Hour),
		},
		"full site": {
			before: []lease.Request{rq("x", "b", 2, 4, 30*time.Minute), rq("y", "z", 2, 4, 2*time.Hour)},
			req:    rq("r", "a", 2, 2, time.Hour),
			later:  rq("l", "b", 1, 2, time.Hour),
		},
		"a group never seen before": {
			before: []lease.Request{rq("x", "b", 1, 4, time.Hour)},
			req:    rq("r", "new", 1, 1, time.Hour),
			later:  rq("l", "b", 2, 4, time.Hour),
		},
		"refused": {
			req:   rq("r", "a", 9, 4, time.Hour),
			later: rq("l", "a", 1, 1, time.Hour),
		},
		"active window": {
			// Were b counted active after its dry run (as if a lease of
			// its had ended), a's share would halve and its next request
			// would no longer be in share.
			policy: []func(*policies.Policy){func(p *policies.Policy) { p.ActiveWindow = time.Hour }},
			before: []lease.Request{rq("x", "a", 2, 4, 2*time.Hour)},
			req:    rq("r", "b", 1, 1, time.Hour),
			later:  rq("l", "a", 2, 4, time.Hour),
		},
	}
	for name, tc := range tests {
		for _, preset := range fairshare.PolicyNames {
			t.Run(name+"/"+preset, func(t *testing.T) {
				// Two engines see the same calls but for the dry run.
				dry := newEngine(t, preset, hosts(4), pol(t, tc.policy...))
				ref := newEngine(t, preset, hosts(4), pol(t, tc.policy...))
				for _, e := range []*fairshare.Engine{dry, ref} {
					for _, r := range tc.before {
						e.Submit(t0, r)
					}
				}
				now := at(10 * time.Minute)
				before := dry.Shares(now)
				w := dry.WhatIf(now, tc.req)
				check(t, dry, "WhatIf")
				if diff := cmp.Diff(before, dry.Shares(now)); diff != "" {
					t.Errorf("WhatIf changed Shares (-before +after):\n%s", diff)
				}
				gotNext, _ := dry.Next()
				wantNext, _ := ref.Next()
				if !gotNext.Equal(wantNext) {
					t.Errorf("Next after WhatIf = %s, want %s", gotNext, wantNext)
				}
				// The dry run decides at the same instant as the real one.
				later := at(20 * time.Minute)
				for _, e := range []*fairshare.Engine{dry, ref} {
					e.Advance(now)
				}
				s := dry.Submit(now, tc.req)
				if diff := cmp.Diff(w, s); diff != "" {
					t.Errorf("WhatIf and then Submit: got … want differs (-whatif +submit):\n%s", diff)
				}
				ref.Submit(now, tc.req)
				if diff := cmp.Diff(ref.Advance(later), dry.Advance(later)); diff != "" {
					t.Errorf("events after a dry run differ (-without +with):\n%s", diff)
				}
				if diff := cmp.Diff(ref.Submit(later, tc.later), dry.Submit(later, tc.later)); diff != "" {
					t.Errorf("a later decision differs after a dry run (-without +with):\n%s", diff)
				}
				if diff := cmp.Diff(ref.Shares(later), dry.Shares(later)); diff != "" {
					t.Errorf("Shares differ after a dry run (-without +with):\n%s", diff)
				}
			})
		}
	}
}
