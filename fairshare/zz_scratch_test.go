package fairshare_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/fairlease/fairlease/fairshare"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

func TestScratch(t *testing.T) {
	for _, preset := range fairshare.PolicyNames {
		e := newEngine(t, preset, hosts(4), pol(t, withGroup("a", func(g *policies.Group) { g.Quota.MaxCores = 4 })))
		p := func(s string, d lease.Decision) { fmt.Printf("%s %s: %+v %s\n", preset, s, summarize(d), d.Message) }
		p("b", e.Submit(t0, rq("b", "b", 7, 2, time.Hour)))
		p("H", e.Submit(at(time.Minute), rq("H", "a", 2, 2, time.Hour)))
		p("S", e.Submit(at(2*time.Minute), rq("S", "a", 1, 2, 3*time.Hour)))
		fmt.Printf("%+v\n", evs(drain(t, e, time.Time{})))
		for _, s := range e.Shares(at(time.Hour)) {
			fmt.Printf("%+v\n", s)
		}
	}
}
