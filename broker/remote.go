package broker

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"time"

	"github.com/fairlease/fairlease/lease"
)

// Overflow: a lease the engine sends to another site stays a timed lease
// of this broker. The leader's federation loop launches it there and
// writes each step to the log before and after talking to the site, so a
// new leader knows which client token to retry with and which instances
// to end.

// More command types (numbers continue ec2.go's).
const (
	CmdPutSite        CommandType = 28 // add or change a site leases may overflow to
	CmdRemoveSite     CommandType = 29 // remove a site no live lease uses
	CmdRemoteAttempt  CommandType = 30 // a launch on a site is about to be sent
	CmdRemoteLaunched CommandType = 31 // a site reports the lease's instances
	CmdRemoteFailed   CommandType = 32 // a launch failed on a site
	CmdRemoteEnded    CommandType = 33 // a lease's instances on a site are gone
)

func init() {
	commandNames[CmdPutSite] = "put-site"
	commandNames[CmdRemoveSite] = "remove-site"
	commandNames[CmdRemoteAttempt] = "remote-attempt"
	commandNames[CmdRemoteLaunched] = "remote-launched"
	commandNames[CmdRemoteFailed] = "remote-failed"
	commandNames[CmdRemoteEnded] = "remote-ended"
}

// Site is another cloud leases may overflow to: Amazon EC2 or any
// EC2-compatible endpoint (another fairlease, OpenStack's ec2-api,
// Eucalyptus). The secret is kept in the state, as access keys are.
type Site struct {
	Name            string    `json:"name"`
	Kind            string    `json:"kind"`               // ec2
	Endpoint        string    `json:"endpoint,omitempty"` // empty: Amazon's
	Region          string    `json:"region"`
	AccessKeyID     string    `json:"access_key_id"`
	Secret          string    `json:"secret"`
	CostPerCoreHour float64   `json:"cost_per_core_hour"`
	Zones           []string  `json:"zones,omitempty"`
	Image           string    `json:"image,omitempty"` // the site's image id to use when a lease names none it knows
	Created         time.Time `json:"created"`
}

// SiteKind is the one kind of site there is: EC2's API.
const SiteKind = "ec2"

// Remote is a lease's life on another site.
type Remote struct {
	// Site is where the lease runs, or is being launched.
	Site      string           `json:"site"`
	Attempts  []RemoteAttempt  `json:"attempts,omitempty"`
	Instances []RemoteInstance `json:"instances,omitempty"`
	Launched  time.Time        `json:"launched,omitzero"`
	// CostPerCoreHour is the site's price when the instances started.
	CostPerCoreHour float64 `json:"cost_per_core_hour,omitempty"`
	// Ended is when the site confirmed the instances gone.
	Ended time.Time `json:"ended,omitzero"`
}

// Cost is what the lease's instances cost until t (or their end): cores
// times hours since launch times the site's price.
func (r *Remote) Cost(cores int, end, t time.Time) float64 {
	if r == nil || r.Launched.IsZero() {
		return 0
	}
	stop := t
	if !r.Ended.IsZero() && r.Ended.Before(stop) {
		stop = r.Ended
	}
	if !end.IsZero() && end.Before(stop) {
		stop = end
	}
	if !stop.After(r.Launched) {
		return 0
	}
	return float64(cores) * stop.Sub(r.Launched).Hours() * r.CostPerCoreHour
}

// RemoteAttempt is one launch sent to a site, under its client token.
type RemoteAttempt struct {
	Site  string    `json:"site"`
	Token string    `json:"token"`
	At    time.Time `json:"at"`
	Error string    `json:"error,omitempty"`
}

// RemoteInstance is an instance that runs a VM of the lease elsewhere.
type RemoteInstance struct {
	ID      string `json:"id"`
	Address string `json:"address,omitempty"`
	Type    string `json:"type,omitempty"`
	Zone    string `json:"zone,omitempty"`
}

// RemoteStep is the body of the Remote* commands.
type RemoteStep struct {
	ID        lease.ID         `json:"id"`
	Site      string           `json:"site"`
	Token     string           `json:"token,omitempty"`
	Instances []RemoteInstance `json:"instances,omitempty"`
	Error     string           `json:"error,omitempty"`
	// Final, on a failure, says no site is left to try: the lease fails.
	Final bool `json:"final,omitempty"`
}

// AttemptToken is the client token of a lease's n-th launch attempt:
// derived from the broker's identity, so that a retry after a crash sends
// the same token, and two brokers never share one.
func AttemptToken(broker string, id lease.ID, n int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%d", broker, id, n))
	return "fl-" + hex.EncodeToString(h[:16])
}

func (s *State) putSite(at time.Time, x Site) error {
	if err := validName("name", x.Name); err != nil {
		return err
	}
	if x.Name == lease.LocalSite {
		return lease.Errorf(lease.EINVALID, "name", "%q names this site; pick another name", x.Name)
	}
	if x.Kind == "" {
		x.Kind = SiteKind
	}
	switch {
	case x.Kind != SiteKind:
		return lease.Errorf(lease.EINVALID, "kind", "sites speak EC2's API (kind %q), not %q", SiteKind, x.Kind)
	case x.Region == "":
		return lease.Errorf(lease.EINVALID, "region", "a site needs a region (us-east-1, or the partner's)")
	case x.AccessKeyID == "" || x.Secret == "":
		return lease.Errorf(lease.EINVALID, "access_key_id", "a site needs an access key id and its secret")
	case x.CostPerCoreHour < 0:
		return lease.Errorf(lease.EINVALID, "cost_per_core_hour", "must not be negative, got %v", x.CostPerCoreHour)
	}
	if x.Endpoint != "" {
		u, err := url.Parse(x.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return lease.Errorf(lease.EINVALID, "endpoint", "%q is not an http(s) URL", x.Endpoint)
		}
	}
	if old, ok := s.sites[x.Name]; ok {
		x.Created = old.Created
	} else {
		x.Created = at
	}
	x.Zones = slices.Clone(x.Zones)
	s.sites[x.Name] = &x
	return nil
}

func validName(field, n string) error {
	if n == "" || len(n) > 63 {
		return lease.Errorf(lease.EINVALID, field, "a name has 1 to 63 characters")
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return lease.Errorf(lease.EINVALID, field, "%q: use lower-case letters, digits, '-', '_' and '.'", n)
		}
	}
	return nil
}

func (s *State) removeSite(name string) error {
	if _, ok := s.sites[name]; !ok {
		return lease.Errorf(lease.ENOTFOUND, "name", "no site %q", name)
	}
	for _, id := range s.remoteIDs() {
		if l := s.leases[id]; l.Remote != nil && l.Remote.Site == name {
			return lease.Errorf(lease.ECONFLICT, "name", "lease %s runs on %s; remove the site after it ends", id, name)
		}
	}
	delete(s.sites, name)
	return nil
}

// Site returns site name.
func (s *State) Site(name string) (Site, bool) {
	x, ok := s.sites[name]
	if !ok {
		return Site{}, false
	}
	c := *x
	c.Zones = slices.Clone(x.Zones)
	return c, true
}

// Sites lists the sites by name.
func (s *State) Sites() []Site {
	out := make([]Site, 0, len(s.sites))
	for _, x := range s.sites {
		out = append(out, *x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// overflowed records that l runs elsewhere from at on.
func (s *State) overflowed(at time.Time, l *Lease, site, note string) {
	l.Site = site
	l.Start, l.End = at, at.Add(l.Request.Duration)
	l.Remote = &Remote{Site: site}
	s.remote[l.ID] = true
	l.move(at, lease.StateOverflowed, note)
}

// remoteIDs lists the leases whose remote instances are not yet gone, in
// a fixed order.
func (s *State) remoteIDs() []lease.ID {
	ids := make([]lease.ID, 0, len(s.remote))
	for id := range s.remote {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Remote lists copies of the leases with instances on other sites that
// are not yet confirmed gone: running ones and ended ones still to clean
// up. The federation loop works from it.
func (s *State) Remote() []*Lease {
	var out []*Lease
	for _, id := range s.remoteIDs() {
		out = append(out, s.leases[id].public())
	}
	return out
}

// expireRemote ends the overflowed leases whose time is up.
func (s *State) expireRemote(at time.Time) {
	for _, id := range s.remoteIDs() {
		l := s.leases[id]
		if l.State == lease.StateOverflowed && !l.End.After(at) {
			l.EndReason = "expired"
			l.move(l.End, lease.StateEnded, "reached its end on "+l.Remote.Site)
		}
	}
}

// nextRemote is the earliest end of a lease running on another site.
func (s *State) nextRemote() (time.Time, bool) {
	var t time.Time
	for id := range s.remote {
		l := s.leases[id]
		if l.State == lease.StateOverflowed && (t.IsZero() || l.End.Before(t)) {
			t = l.End
		}
	}
	return t, !t.IsZero()
}

func (s *State) remoteLease(id lease.ID) (*Lease, error) {
	l, ok := s.leases[id]
	if !ok {
		return nil, lease.Errorf(lease.ENOTFOUND, "id", "no lease %q", id)
	}
	if l.Remote == nil || !s.remote[id] {
		return nil, lease.Errorf(lease.ECONFLICT, "id", "lease %s does not run on another site", id)
	}
	return l, nil
}

func (s *State) remoteStep(at time.Time, t CommandType, b RemoteStep) (*Lease, error) {
	l, err := s.remoteLease(b.ID)
	if err != nil {
		return nil, err
	}
	r := l.Remote
	switch t {
	case CmdRemoteAttempt:
		if b.Token == "" {
			return nil, lease.Errorf(lease.EINVALID, "token", "an attempt needs its client token")
		}
		if l.State != lease.StateOverflowed || len(r.Instances) > 0 {
			return nil, lease.Errorf(lease.ECONFLICT, "id", "lease %s is %s with %d instances: nothing to launch", l.ID, l.State, len(r.Instances))
		}
		if _, ok := s.sites[b.Site]; !ok {
			return nil, lease.Errorf(lease.ENOTFOUND, "site", "no site %q", b.Site)
		}
		r.Site = b.Site
		l.Site = b.Site
		r.Attempts = append(r.Attempts, RemoteAttempt{Site: b.Site, Token: b.Token, At: at})
	case CmdRemoteLaunched:
		if len(r.Attempts) == 0 || r.Attempts[len(r.Attempts)-1].Site != b.Site {
			return nil, lease.Errorf(lease.ECONFLICT, "site", "lease %s has no attempt on %s", l.ID, b.Site)
		}
		if len(b.Instances) != l.Request.Count {
			return nil, lease.Errorf(lease.EINVALID, "instances", "lease %s has %d VMs, the site reported %d instances", l.ID, l.Request.Count, len(b.Instances))
		}
		r.Instances = slices.Clone(b.Instances)
		r.Launched = at
		if x, ok := s.sites[b.Site]; ok {
			r.CostPerCoreHour = x.CostPerCoreHour
		}
		l.VMs = l.VMs[:0]
		for i, in := range b.Instances {
			l.VMs = append(l.VMs, VM{Index: i, Name: fmt.Sprintf("%s-%d", l.ID, i), Address: in.Address, Host: b.Site, Instance: in.ID, State: VMRunning})
		}
		if l.State == lease.StateOverflowed {
			l.History = append(l.History, Transition{At: at, State: lease.StateOverflowed, Note: fmt.Sprintf("running on %s: %d instances", b.Site, len(b.Instances))})
		}
	case CmdRemoteFailed:
		if n := len(r.Attempts); n > 0 && r.Attempts[n-1].Site == b.Site && r.Attempts[n-1].Error == "" {
			r.Attempts[n-1].Error = b.Error
		}
		if b.Final && l.State == lease.StateOverflowed && len(r.Instances) == 0 {
			s.refund(at, l)
			l.EndReason = "overflow failed: " + b.Error
			l.End = at
			r.Ended = at
			delete(s.remote, l.ID)
			l.move(at, lease.StateFailed, l.EndReason)
		}
	case CmdRemoteEnded:
		r.Ended = at
		for i := range l.VMs {
			l.VMs[i].State = VMStopped
		}
		delete(s.remote, l.ID)
		if l.State == lease.StateOverflowed {
			// Ended before its time: the site lost it or the user ended it.
			if b.Error != "" {
				l.EndReason = b.Error
			} else if l.EndReason == "" {
				l.EndReason = "ended on " + r.Site
			}
			s.refund(at, l)
			l.End = at
			l.move(at, lease.StateEnded, l.EndReason)
		}
	}
	return l.public(), nil
}

// refund gives the group's overflow budget back the core-hours of l that
// will not run from at on: the lease was charged in full when it
// overflowed (at l.Start) and ends at l.End.
func (s *State) refund(at time.Time, l *Lease) {
	if !l.End.After(at) {
		return
	}
	ch := float64(l.Request.Count*l.Request.Shape.Cores) * l.End.Sub(at).Hours()
	s.engine.RefundOverflow(at, l.Group, ch, l.Start)
}

// releaseRemote ends an overflowed lease early: its instances are ended by
// the federation loop, which sees it among the unfinished remotes.
func (s *State) releaseRemote(at time.Time, l *Lease, reason string) *Lease {
	s.refund(at, l)
	l.EndReason = reason
	l.End = at
	l.move(at, lease.StateEnded, reason)
	return l.public()
}
