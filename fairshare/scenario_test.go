package fairshare_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/fairshare"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// act is one thing a user does at an offset from t0: submit a request
// (with the outcome wanted) or release a lease.
type act struct {
	at      time.Duration
	submit  lease.Request
	want    outcome
	release lease.ID
}

func submit(at time.Duration, r lease.Request, want outcome) act {
	return act{at: at, submit: r, want: want}
}

func release(at time.Duration, id lease.ID) act { return act{at: at, release: id} }

// Outcomes used over and over.
var (
	queued = outcome{Kind: lease.Deferred, Reason: lease.ReasonQueued, Start: -1, Site: "local"}
	now0   = func(at time.Duration, hs map[string]int) outcome {
		return outcome{Kind: lease.Granted, Start: at, Site: "local", Hosts: hs}
	}
)

// play runs acts on e the way the simulator does (due timers strictly
// before an act, then the act, then what is due at its instant), drains
// what is left, and returns every event. Calendar checks run after each
// call.
func play(t *testing.T, e *fairshare.Engine, acts []act) []ev {
	t.Helper()
	var out []fairshare.Event
	for _, a := range acts {
		when := at(a.at)
		for {
			next, ok := e.Next()
			if !ok || !next.Before(when) {
				break
			}
			out = append(out, e.Advance(next)...)
			check(t, e, "Advance")
		}
		if a.release != "" {
			if err := e.Release(when, a.release); err != nil {
				t.Fatalf("Release(%s) at %s: %v", a.release, a.at, err)
			}
			check(t, e, "Release")
		} else {
			d := e.Submit(when, a.submit)
			check(t, e, "Submit")
			if diff := cmp.Diff(a.want, summarize(d)); diff != "" {
				t.Errorf("Submit(%s) at %s = %q; got … want differs (-want +got):\n%s", a.submit.ID, a.at, d.Message, diff)
			}
		}
		out = append(out, e.Advance(when)...)
		check(t, e, "Advance")
	}
	return evs(append(out, drain(t, e, time.Time{})...))
}

// starts keeps the events that say what became of waiting requests.
func starts(es []ev) []ev {
	return only(es, fairshare.EventStart, fairshare.EventReject, fairshare.EventOverflow)
}

func TestScenarios(t *testing.T) {
	sub := func(id string, g lease.GroupID, n, c int, d time.Duration, at time.Duration, opts ...func(*lease.Request)) lease.Request {
		r := rq(id, g, n, c, d, opts...)
		r.Submitted = t0.Add(at)
		return r
	}
	// full fills four hosts until 2h with groups a and z, half each (the
	// most caps lets one group hold).
	full := []act{
		submit(0, sub("A", "a", 2, 4, 2*time.Hour, 0), now0(0, map[string]int{"h0": 1, "h1": 1})),
		submit(0, sub("Z", "z", 2, 4, 2*time.Hour, 0), now0(0, map[string]int{"h2": 1, "h3": 1})),
	}
	// easyActs: A holds the site (A2 until 30m, the rest until 2h); H,
	// the whole site for 1h, waits at the head; Q is short and may pass
	// it once A2 frees cores; S1 ends before H's reservation, S2 not.
	easyActs := func(q, s1, s2 outcome) []act {
		return []act{
			submit(0, sub("A1", "a", 2, 4, 2*time.Hour, 0), now0(0, map[string]int{"h0": 1, "h1": 1})),
			submit(0, sub("A2", "a", 1, 4, 30*time.Minute, 0), now0(0, map[string]int{"h2": 1})),
			submit(0, sub("A3", "a", 1, 4, 2*time.Hour, 0), now0(0, map[string]int{"h3": 1})),
			submit(time.Minute, sub("H", "b", 4, 4, time.Hour, time.Minute), queued),
			submit(2*time.Minute, sub("Q", "c", 1, 2, 10*time.Minute, 2*time.Minute), q),
			submit(31*time.Minute, sub("S1", "c", 1, 2, time.Hour, 31*time.Minute), s1),
			submit(32*time.Minute, sub("S2", "d", 1, 2, 3*time.Hour, 32*time.Minute), s2),
		}
	}
	overflowTo := func(site string) func(*policies.Policy) {
		return withGroup("b", func(g *policies.Group) {
			g.Overflow.Sites = []string{site}
			g.Overflow.BudgetCoreHours = 10
		})
	}
	tests := map[string]struct {
		presets []string
		policy  []func(*policies.Policy)
		acts    []act
		want    []ev // starts, rejections and overflows, in order
	}{
		"fairlease: in-share request gets a firm start within the horizon and starts then": {
			presets: []string{"fairlease"},
			acts: []act{
				submit(0, sub("A", "a", 4, 4, 45*time.Minute, 0), now0(0, map[string]int{"h0": 1, "h1": 1, "h2": 1, "h3": 1})),
				// Two groups: b's share is 8 cores, and it asks for 4.
				submit(time.Minute, sub("B", "b", 2, 2, time.Hour, time.Minute),
					outcome{Kind: lease.Deferred, Start: 45 * time.Minute, Site: "local", Hosts: map[string]int{"h0": 2}}),
			},
			want: []ev{{Kind: fairshare.EventStart, ID: "B", At: 45 * time.Minute, Hosts: map[string]int{"h0": 2}}},
		},
		"fairlease: a firm start moves earlier when capacity frees early": {
			presets: []string{"fairlease"},
			acts: []act{
				submit(0, sub("A", "a", 4, 4, 45*time.Minute, 0), now0(0, map[string]int{"h0": 1, "h1": 1, "h2": 1, "h3": 1})),
				submit(time.Minute, sub("B", "b", 2, 2, time.Hour, time.Minute),
					outcome{Kind: lease.Deferred, Start: 45 * time.Minute, Site: "local", Hosts: map[string]int{"h0": 2}}),
				release(20*time.Minute, "A"),
			},
			want: []ev{{Kind: fairshare.EventStart, ID: "B", At: 20 * time.Minute, Hosts: map[string]int{"h0": 2}}},
		},
		"fairlease: a slot beyond the promise horizon waits in the queue": {
			presets: []string{"fairlease"},
			acts: append(full[:2:2],
				submit(time.Minute, sub("B", "b", 2, 2, time.Hour, time.Minute), queued)),
			want: []ev{{Kind: fairshare.EventStart, ID: "B", At: 2 * time.Hour, Hosts: map[string]int{"h0": 2}}},
		},
		"fairlease: a longer horizon promises further ahead": {
			presets: []string{"fairlease"},
			policy:  []func(*policies.Policy){func(p *policies.Policy) { p.PromiseHorizon = 3 * time.Hour }},
			acts: append(full[:2:2],
				submit(time.Minute, sub("B", "b", 2, 2, time.Hour, time.Minute),
					outcome{Kind: lease.Deferred, Start: 2 * time.Hour, Site: "local", Hosts: map[string]int{"h0": 2}})),
			want: []ev{{Kind: fairshare.EventStart, ID: "B", At: 2 * time.Hour, Hosts: map[string]int{"h0": 2}}},
		},
		"a queued request is rejected at its start_by": {
			acts: append(full[:2:2],
				submit(time.Minute, sub("B", "b", 1, 1, time.Hour, time.Minute, startBy(at(time.Hour))), queued)),
			want: []ev{{Kind: fairshare.EventReject, ID: "B", At: time.Hour}},
		},
		"overflow while the budget lasts, then rejection at start_by": {
			policy: []func(*policies.Policy){overflowTo("ec2")},
			acts: append(full[:2:2],
				// 4 core-hours each against a budget of 10.
				submit(time.Minute, sub("B1", "b", 2, 1, 2*time.Hour, time.Minute, startBy(at(time.Hour))),
					outcome{Kind: lease.Overflowed, Start: -1, Site: "ec2"}),
				submit(2*time.Minute, sub("B2", "b", 2, 1, 2*time.Hour, 2*time.Minute, startBy(at(time.Hour))),
					outcome{Kind: lease.Overflowed, Start: -1, Site: "ec2"}),
				submit(3*time.Minute, sub("B3", "b", 2, 1, 2*time.Hour, 3*time.Minute, startBy(at(time.Hour))), queued),
				// Group c may not overflow at all.
				submit(4*time.Minute, sub("C", "c", 1, 1, time.Hour, 4*time.Minute, startBy(at(time.Hour))), queued),
			),
			want: []ev{{Kind: fairshare.EventReject, ID: "B3", At: time.Hour}, {Kind: fairshare.EventReject, ID: "C", At: time.Hour}},
		},
		"fcfs: overflow at start_by when a greedy arrival took the slot": {
			presets: []string{"fcfs"},
			policy:  []func(*policies.Policy){overflowTo("ec2")},
			acts: []act{
				submit(0, sub("A", "a", 3, 4, 30*time.Minute, 0), now0(0, map[string]int{"h0": 1, "h1": 1, "h2": 1})),
				// Its local slot at 30m is before start_by: it waits.
				submit(time.Minute, sub("B", "b", 4, 4, 30*time.Minute, time.Minute, startBy(at(45*time.Minute))), queued),
				// Greedy: C fits now and takes h3 past 30m.
				submit(5*time.Minute, sub("C", "c", 1, 4, 2*time.Hour, 5*time.Minute), now0(5*time.Minute, map[string]int{"h3": 1})),
			},
			want: []ev{{Kind: fairshare.EventOverflow, ID: "B", At: 45 * time.Minute, Site: "ec2"}},
		},
		"release of a running lease starts a queued request at once": {
			acts: append(full[:2:2],
				submit(time.Minute, sub("B", "b", 2, 2, time.Hour, time.Minute), queued),
				release(30*time.Minute, "A")),
			want: []ev{{Kind: fairshare.EventStart, ID: "B", At: 30 * time.Minute, Hosts: map[string]int{"h0": 2}}},
		},
		"easy: a short request passes the blocked head, a long one not": {
			presets: []string{"easy"},
			acts:    easyActs(queued, now0(31*time.Minute, map[string]int{"h2": 1}), queued),
			want: []ev{
				{Kind: fairshare.EventStart, ID: "Q", At: 30 * time.Minute, Hosts: map[string]int{"h2": 1}},
				{Kind: fairshare.EventStart, ID: "H", At: 2 * time.Hour, Hosts: map[string]int{"h0": 1, "h1": 1, "h2": 1, "h3": 1}},
				{Kind: fairshare.EventStart, ID: "S2", At: 3 * time.Hour, Hosts: map[string]int{"h0": 1}},
			},
		},
		"fcfs: nothing passes the blocked head but greedy arrivals": {
			presets: []string{"fcfs"},
			acts: easyActs(queued,
				now0(31*time.Minute, map[string]int{"h2": 1}),
				now0(32*time.Minute, map[string]int{"h2": 1})),
			want: []ev{
				// S2 runs to 3h32m and holds H back until then; Q, queued
				// behind H, never passes it.
				{Kind: fairshare.EventStart, ID: "H", At: 3*time.Hour + 32*time.Minute, Hosts: map[string]int{"h0": 1, "h1": 1, "h2": 1, "h3": 1}},
				{Kind: fairshare.EventStart, ID: "Q", At: 4*time.Hour + 32*time.Minute, Hosts: map[string]int{"h0": 1}},
			},
		},
		"caps: a group is held to half the site while the rest stays free for others": {
			presets: []string{"caps"},
			acts: []act{
				submit(0, sub("A1", "a", 3, 2, time.Hour, 0), now0(0, map[string]int{"h0": 2, "h1": 1})),
				submit(time.Minute, sub("A2", "a", 2, 2, time.Hour, time.Minute), queued),
				submit(2*time.Minute, sub("B", "b", 4, 2, time.Hour, 2*time.Minute), now0(2*time.Minute, map[string]int{"h1": 1, "h2": 2, "h3": 1})),
			},
			want: []ev{{Kind: fairshare.EventStart, ID: "A2", At: time.Hour, Hosts: map[string]int{"h0": 2}}},
		},
		"fair order: of two groups waiting, the one with less usage goes first": {
			presets: []string{"fairorder", "fairlease"},
			acts: []act{
				submit(0, sub("A0", "a", 4, 4, time.Hour, 0), now0(0, map[string]int{"h0": 1, "h1": 1, "h2": 1, "h3": 1})),
				submit(time.Hour, sub("C", "c", 4, 4, time.Hour, time.Hour), now0(time.Hour, map[string]int{"h0": 1, "h1": 1, "h2": 1, "h3": 1})),
				submit(61*time.Minute, sub("Qa", "a", 4, 4, 30*time.Minute, 61*time.Minute), queued),
				submit(62*time.Minute, sub("Qb", "b", 4, 4, 30*time.Minute, 62*time.Minute), queued),
			},
			want: []ev{
				{Kind: fairshare.EventStart, ID: "Qb", At: 2 * time.Hour, Hosts: map[string]int{"h0": 1, "h1": 1, "h2": 1, "h3": 1}},
				{Kind: fairshare.EventStart, ID: "Qa", At: 2*time.Hour + 30*time.Minute, Hosts: map[string]int{"h0": 1, "h1": 1, "h2": 1, "h3": 1}},
			},
		},
		"FIFO order: the same two groups go in submission order": {
			presets: []string{"easy"},
			acts: []act{
				submit(0, sub("A0", "a", 4, 4, time.Hour, 0), now0(0, map[string]int{"h0": 1, "h1": 1, "h2": 1, "h3": 1})),
				submit(time.Hour, sub("C", "c", 4, 4, time.Hour, time.Hour), now0(time.Hour, map[string]int{"h0": 1, "h1": 1, "h2": 1, "h3": 1})),
				submit(61*time.Minute, sub("Qa", "a", 4, 4, 30*time.Minute, 61*time.Minute), queued),
				submit(62*time.Minute, sub("Qb", "b", 4, 4, 30*time.Minute, 62*time.Minute), queued),
			},
			want: []ev{
				{Kind: fairshare.EventStart, ID: "Qa", At: 2 * time.Hour, Hosts: map[string]int{"h0": 1, "h1": 1, "h2": 1, "h3": 1}},
				{Kind: fairshare.EventStart, ID: "Qb", At: 2*time.Hour + 30*time.Minute, Hosts: map[string]int{"h0": 1, "h1": 1, "h2": 1, "h3": 1}},
			},
		},
	}
	for name, tc := range tests {
		presets := tc.presets
		if presets == nil {
			presets = fairshare.PolicyNames
		}
		for _, preset := range presets {
			t.Run(name+"/"+preset, func(t *testing.T) {
				e := newEngine(t, preset, hosts(4), pol(t, tc.policy...))
				got := starts(play(t, e, tc.acts))
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("events: got … want differs (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestReleaseStartsWaitingAtOnce checks that the start a release makes
// possible comes with the very next Advance, at the release's instant.
func TestReleaseStartsWaitingAtOnce(t *testing.T) {
	for _, preset := range fairshare.PolicyNames {
		t.Run(preset, func(t *testing.T) {
			e := newEngine(t, preset, hosts(2), pol(t))
			e.Submit(t0, rq("A", "a", 1, 4, 2*time.Hour))
			e.Submit(t0, rq("Z", "z", 1, 4, 2*time.Hour))
			if d := e.Submit(t0, rq("B", "b", 2, 2, time.Hour)); d.Kind != lease.Deferred {
				t.Fatalf("Submit(B) = %v, want deferred", d.Kind)
			}
			now := at(30 * time.Minute)
			if err := e.Release(now, "A"); err != nil {
				t.Fatalf("Release(A): %v", err)
			}
			if next, ok := e.Next(); !ok || !next.Equal(now) {
				t.Errorf("Next() after the release = %s, %v; want %s, true", next, ok, now)
			}
			got := evs(e.Advance(now))
			want := []ev{{Kind: fairshare.EventStart, ID: "B", At: 30 * time.Minute, Hosts: map[string]int{"h0": 2}}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Advance at the release: got … want differs (-want +got):\n%s", diff)
			}
			check(t, e, "Advance")
		})
	}
}
