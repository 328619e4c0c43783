package fairshare_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/lease"
)

func prefer(hs ...string) func(*lease.Request) {
	return func(r *lease.Request) { r.PreferHosts = hs }
}

func hostsOf(d lease.Decision) []string {
	var out []string
	for _, p := range d.Placement {
		out = append(out, p.Host)
	}
	return out
}

// Preferred hosts (those holding the image) are filled first; the rest
// goes first-fit; when and whether a request starts does not change. Both
// with and without the host index (which sites above 256 hosts use).
func TestPreferHosts(t *testing.T) {
	for _, n := range []int{4, 300} {
		t.Run(fmt.Sprintf("%d hosts", n), func(t *testing.T) {
			last := fmt.Sprintf("h%d", n-1)
			tests := []struct {
				name string
				req  lease.Request
				want []string
			}{
				{"none", rq("a", "physics", 2, 2, time.Hour), []string{"h0", "h0"}},
				{"one host", rq("b", "physics", 2, 2, time.Hour, prefer(last)), []string{last, last}},
				{"overflows to first fit", rq("c", "physics", 3, 2, time.Hour, prefer(last)), []string{last, last, "h0"}},
				{"unknown and repeated names", rq("d", "physics", 2, 2, time.Hour, prefer("nope", "h2", "h2")), []string{"h2", "h2"}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					e := newEngine(t, "fairlease", hosts(n), pol(t))
					d := e.Submit(t0, tt.req)
					if d.Kind != lease.Granted {
						t.Fatalf("decision %v", d)
					}
					if diff := cmp.Diff(tt.want, hostsOf(d)); diff != "" {
						t.Errorf("placement (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
	// A full preferred host does not delay the start.
	e := newEngine(t, "fairlease", hosts(2), pol(t))
	e.Submit(t0, rq("fill", "physics", 1, 4, time.Hour, prefer("h1")))
	d := e.Submit(t0, rq("x", "physics", 1, 2, time.Hour, prefer("h1")))
	if d.Kind != lease.Granted || !d.Start.Equal(t0) || cmp.Diff([]string{"h0"}, hostsOf(d)) != "" {
		t.Errorf("with its preferred host full: %v %v at %v, want granted now on h0", d.Kind, hostsOf(d), d.Start)
	}
}
