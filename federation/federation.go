// Package federation runs overflowed leases on other sites: it launches
// each on the best site its group may use, records every step in the
// broker's log before and after talking to the site, ends the instances
// when the lease ends, and after a crash or failover reconciles what the
// sites run with what the log says.
//
// The rules that keep it safe:
//   - a launch's client token is written to the log before the launch is
//     sent, and a launch whose outcome is unknown is only ever retried with
//     that token, on that site: a site never runs a lease twice;
//   - capacity, quota and refusal errors are not retried at the same site:
//     the next site is tried, and a site that reported no capacity cools
//     down, so a full partner gets no retry storm;
//   - instances are tagged with the broker and the lease at launch, so a new
//     leader finds them whatever it knows, adopts those of live leases and
//     terminates the others once they are older than a grace period.
package federation

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/sites"
)

// Tags every launched instance carries.
const (
	TagBroker   = "fairlease:broker"
	TagLease    = "fairlease:lease"
	TagDuration = "fairlease:duration" // the lease length, in seconds: a partner fairlease times its lease by it
)

// Connect makes a client for a registered site.
type Connect func(broker.Site) (sites.Site, error)

// Config sets up a Federation.
type Config struct {
	Backend broker.Backend
	Connect Connect
	// Grace is how old an instance without a live lease must be before
	// it is terminated: a launch in flight is younger.
	Grace time.Duration
	// Cooldown is how long a site that reported no capacity is skipped.
	Cooldown time.Duration
	// LaunchTimeout bounds one launch call.
	LaunchTimeout time.Duration
	Now           func() time.Time
	Log           *slog.Logger
}

// Federation is the leader's overflow loop. Step is safe to call from one
// goroutine at a time (the server's singleton job).
type Federation struct {
	cfg Config

	mu      sync.Mutex
	clients map[string]client    // by site name
	cool    map[string]time.Time // site → until when it is skipped
	seen    map[string]time.Time // orphan instance id → when first seen
	id      string
}

type client struct {
	rec  broker.Site
	site sites.Site
}

// New returns a Federation.
func New(cfg Config) *Federation {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Minute
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = time.Minute
	}
	if cfg.LaunchTimeout <= 0 {
		cfg.LaunchTimeout = 2 * time.Minute
	}
	return &Federation{cfg: cfg, clients: map[string]client{}, cool: map[string]time.Time{}, seen: map[string]time.Time{}}
}

// view is what one step reads of the state.
type view struct {
	remote []*broker.Lease
	sites  []broker.Site
	allow  map[lease.GroupID][]string // group → sites its policy lets it use
}

func (f *Federation) read(ctx context.Context) (view, error) {
	var v view
	err := f.cfg.Backend.Read(ctx, true, func(st *broker.State) error {
		v.remote = st.Remote()
		v.sites = st.Sites()
		v.allow = map[lease.GroupID][]string{}
		for _, l := range v.remote {
			if _, ok := v.allow[l.Group]; ok {
				continue
			}
			if g, ok := st.Policy().Group(l.Group); ok {
				v.allow[l.Group] = slices.Clone(g.Overflow.Sites)
			}
		}
		return nil
	})
	return v, err
}

// BrokerID is this broker cluster's identity on other sites: derived from
// the site's signing key, which every replica shares.
func (f *Federation) BrokerID(ctx context.Context) (string, error) {
	if f.id != "" {
		return f.id, nil
	}
	var k ed25519.PrivateKey
	read := func() error {
		return f.cfg.Backend.Read(ctx, true, func(st *broker.State) error {
			k = st.SiteKey()
			return nil
		})
	}
	if err := read(); err != nil {
		return "", err
	}
	if k == nil {
		seed := make([]byte, ed25519.SeedSize)
		rand.Read(seed)
		// Another node may set one first: the log keeps the first.
		if _, err := f.propose(ctx, broker.CmdSiteKey, broker.SiteKey{Seed: seed}); err != nil {
			return "", err
		}
		if err := read(); err != nil {
			return "", err
		}
		if k == nil {
			return "", errors.New("federation: the site key did not take")
		}
	}
	pub := k.Public().(ed25519.PublicKey)
	f.id = "fl-" + hex.EncodeToString(pub[:6])
	return f.id, nil
}

func (f *Federation) propose(ctx context.Context, t broker.CommandType, body any) (any, error) {
	c, err := broker.NewCommand(t, f.cfg.Now(), "system", body)
	if err != nil {
		return nil, err
	}
	return f.cfg.Backend.Propose(ctx, c)
}

// connect returns the client of site rec, made again when the record
// changed.
func (f *Federation) connect(rec broker.Site) (sites.Site, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[rec.Name]; ok && sameSite(c.rec, rec) {
		return c.site, nil
	}
	s, err := f.cfg.Connect(rec)
	if err != nil {
		return nil, fmt.Errorf("federation: site %s: %w", rec.Name, err)
	}
	f.clients[rec.Name] = client{rec: rec, site: s}
	return s, nil
}

func sameSite(a, b broker.Site) bool {
	return a.Endpoint == b.Endpoint && a.Region == b.Region && a.AccessKeyID == b.AccessKeyID && a.Secret == b.Secret &&
		a.CostPerCoreHour == b.CostPerCoreHour && slices.Equal(a.Zones, b.Zones) && a.Image == b.Image
}

// Step does one round: launches what waits, ends what is over, and cleans
// up orphans. Errors of single leases are logged and retried next round;
// the returned error is for the round as a whole (no leader, say).
func (f *Federation) Step(ctx context.Context) error {
	id, err := f.BrokerID(ctx)
	if err != nil {
		return err
	}
	v, err := f.read(ctx)
	if err != nil {
		return err
	}
	recs := map[string]broker.Site{}
	for _, s := range v.sites {
		recs[s.Name] = s
	}
	// Leases go in parallel, a few at a time: one slow site must not hold
	// up every other lease's launch or end for a whole round.
	var g errgroup.Group
	g.SetLimit(parallel)
	for _, l := range v.remote {
		if ctx.Err() != nil {
			break
		}
		switch {
		case l.State == lease.StateOverflowed && len(l.Remote.Instances) == 0:
			g.Go(func() error { f.launch(ctx, id, l, recs, v.allow[l.Group]); return nil })
		case l.State != lease.StateOverflowed:
			g.Go(func() error { f.end(ctx, id, l, recs); return nil })
		}
	}
	g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	f.orphans(ctx, id, v, recs)
	return nil
}

// parallel is how many leases a round works on at once.
const parallel = 8

// tags are the instance tags of lease l.
func tags(broker string, l *broker.Lease) map[string]string {
	return map[string]string{TagBroker: broker, TagLease: string(l.ID)}
}

// launch starts l on a site: again with the open attempt's token when the
// last outcome is unknown, else on the best site not yet tried.
func (f *Federation) launch(ctx context.Context, id string, l *broker.Lease, recs map[string]broker.Site, allowed []string) {
	now := f.cfg.Now()
	if !l.End.After(now) {
		f.fail(ctx, l, l.Remote.Site, "the lease's time ran out before any site started it", true)
		return
	}
	r := l.Remote
	var site, token string
	var at time.Time // when the attempt was logged: it fixes the launch's parameters
	if n := len(r.Attempts); n > 0 && r.Attempts[n-1].Error == "" {
		// Sent before, outcome unknown: only the same token, same site,
		// same parameters.
		site, token, at = r.Attempts[n-1].Site, r.Attempts[n-1].Token, r.Attempts[n-1].At
	} else {
		tried := map[string]bool{}
		for _, a := range r.Attempts {
			tried[a.Site] = true
		}
		next, left := f.pick(l, recs, allowed, tried, now)
		if next == "" {
			why := "no site left to try"
			if n > 0 {
				why = r.Attempts[n-1].Error
			}
			if left == 0 {
				f.fail(ctx, l, r.Site, why, true)
			}
			return // sites cooling down: later
		}
		site, token = next, broker.AttemptToken(id, l.ID, n)
		res, err := f.propose(ctx, broker.CmdRemoteAttempt, broker.RemoteStep{ID: l.ID, Site: site, Token: token})
		if err != nil {
			f.cfg.Log.Warn("overflow: record attempt", "lease", l.ID, "site", site, "err", err)
			return
		}
		nl, ok := res.(*broker.Lease)
		if !ok || nl.Remote == nil || len(nl.Remote.Attempts) != n+1 {
			f.cfg.Log.Warn("overflow: record attempt: unexpected result", "lease", l.ID, "result", fmt.Sprintf("%T", res))
			return
		}
		at = nl.Remote.Attempts[n].At
	}
	rec, ok := recs[site]
	if !ok {
		f.fail(ctx, l, site, fmt.Sprintf("site %s is not configured (fairlease site add %s …)", site, site), false)
		return
	}
	s, err := f.connect(rec)
	if err != nil {
		f.fail(ctx, l, site, err.Error(), false)
		return
	}
	// Everything in the spec comes from the log, so that a retry with the
	// token, by this leader or the next, sends the same parameters: a
	// site refuses a token reused with others.
	spec := sites.Spec{Lease: l.ID, Token: token, Count: l.Request.Count, Shape: l.Request.Shape,
		Duration: max(l.End.Sub(at).Truncate(time.Second), time.Second), Tags: tags(id, l)}
	spec.Tags[TagDuration] = strconv.FormatInt(int64(spec.Duration/time.Second), 10)
	spec.Shape.Image = rec.Image
	if spec.Shape.Image == "" {
		// An image of the same name at a partner fairlease has the same id.
		spec.Shape.Image = broker.ImageID(l.Request.Shape.Image)
	}
	cctx, cancel := context.WithTimeout(ctx, f.cfg.LaunchTimeout)
	defer cancel()
	ins, err := s.Launch(cctx, spec)
	switch {
	case err == nil:
		f.launched(ctx, l, site, ins)
	case sites.IsRetryable(err) || errors.Is(err, context.DeadlineExceeded):
		// Unknown outcome: the attempt stays open and is sent again with
		// the same token next round.
		f.cfg.Log.Warn("overflow: launch outcome unknown; will retry with the same token", "lease", l.ID, "site", site, "err", err)
	default:
		if errors.Is(err, sites.ErrCapacity) {
			f.mu.Lock()
			f.cool[site] = now.Add(f.cfg.Cooldown)
			f.mu.Unlock()
		}
		f.fail(ctx, l, site, err.Error(), false)
	}
}

// pick returns the best site l may try next, and how many sites are left
// at all (cooling ones included).
func (f *Federation) pick(l *broker.Lease, recs map[string]broker.Site, allowed []string, tried map[string]bool, now time.Time) (string, int) {
	var cands []sites.Site
	left := 0
	for _, name := range allowed {
		rec, ok := recs[name]
		if !ok || tried[name] {
			continue
		}
		left++
		f.mu.Lock()
		cooling := now.Before(f.cool[name])
		f.mu.Unlock()
		if cooling {
			continue
		}
		s, err := f.connect(rec)
		if err != nil {
			f.cfg.Log.Warn("overflow: site client", "site", name, "err", err)
			continue
		}
		cands = append(cands, s)
	}
	if len(cands) == 0 {
		return "", left
	}
	return sites.Rank(cands)[0].Name(), left
}

func (f *Federation) launched(ctx context.Context, l *broker.Lease, site string, ins []sites.Instance) {
	out := make([]broker.RemoteInstance, len(ins))
	for i, in := range ins {
		addr := in.PrivateAddress
		if in.PublicAddress != "" {
			addr = in.PublicAddress
		}
		out[i] = broker.RemoteInstance{ID: in.ID, Address: addr, Type: in.Type, Zone: in.Zone}
	}
	if _, err := f.propose(ctx, broker.CmdRemoteLaunched, broker.RemoteStep{ID: l.ID, Site: site, Instances: out}); err != nil {
		// The instances run; the next round's launch with the same token
		// returns them again and records them then.
		f.cfg.Log.Warn("overflow: record launch", "lease", l.ID, "site", site, "err", err)
		return
	}
	f.cfg.Log.Info("overflow: lease runs on another site", "lease", l.ID, "site", site, "instances", len(out))
}

func (f *Federation) fail(ctx context.Context, l *broker.Lease, site, why string, final bool) {
	if _, err := f.propose(ctx, broker.CmdRemoteFailed, broker.RemoteStep{ID: l.ID, Site: site, Error: why, Final: final}); err != nil {
		f.cfg.Log.Warn("overflow: record failure", "lease", l.ID, "site", site, "err", err)
		return
	}
	f.cfg.Log.Warn("overflow: launch failed", "lease", l.ID, "site", site, "why", why, "final", final)
}

// end terminates what a lease that is over still runs, on every site it
// was sent to, then records it gone.
func (f *Federation) end(ctx context.Context, id string, l *broker.Lease, recs map[string]broker.Site) {
	bySite := map[string][]string{}
	for _, in := range l.Remote.Instances {
		bySite[l.Remote.Site] = append(bySite[l.Remote.Site], in.ID)
	}
	for _, a := range l.Remote.Attempts {
		if _, ok := bySite[a.Site]; !ok {
			bySite[a.Site] = nil
		}
	}
	for name, ids := range bySite {
		rec, ok := recs[name]
		if !ok {
			f.cfg.Log.Error("overflow: lease ended but its site is gone; end its instances there by hand", "lease", l.ID, "site", name, "instances", ids)
			continue
		}
		s, err := f.connect(rec)
		if err != nil {
			f.cfg.Log.Warn("overflow: end", "lease", l.ID, "site", name, "err", err)
			return
		}
		// A launch whose reply was lost may have started instances we
		// never recorded: find them by tag.
		found, err := s.Instances(ctx, tags(id, l))
		if err != nil {
			f.cfg.Log.Warn("overflow: find instances to end", "lease", l.ID, "site", name, "err", err)
			return
		}
		for _, in := range found {
			if !in.Ended() && !slices.Contains(ids, in.ID) {
				ids = append(ids, in.ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		if err := s.Terminate(ctx, ids); err != nil {
			f.cfg.Log.Warn("overflow: terminate", "lease", l.ID, "site", name, "err", err)
			return
		}
	}
	if _, err := f.propose(ctx, broker.CmdRemoteEnded, broker.RemoteStep{ID: l.ID, Site: l.Remote.Site}); err != nil {
		f.cfg.Log.Warn("overflow: record end", "lease", l.ID, "err", err)
		return
	}
	f.cfg.Log.Info("overflow: instances ended", "lease", l.ID, "site", l.Remote.Site)
}

// orphans terminates, on every site, instances of this broker whose lease
// is not one it runs there, once they are older than the grace period.
// Instances of live leases are adopted: the lease's open attempt records
// them (through launch's same-token retry), so nothing is done here.
func (f *Federation) orphans(ctx context.Context, id string, v view, recs map[string]broker.Site) {
	live := map[string]*broker.Lease{}
	for _, l := range v.remote {
		live[string(l.ID)] = l
	}
	now := f.cfg.Now()
	seen := map[string]bool{}
	for _, rec := range v.sites {
		s, err := f.connect(rec)
		if err != nil {
			continue
		}
		found, err := s.Instances(ctx, map[string]string{TagBroker: id})
		if err != nil {
			f.cfg.Log.Warn("overflow: reconcile", "site", rec.Name, "err", err)
			continue
		}
		var kill []string
		for _, in := range found {
			if in.Ended() {
				continue
			}
			if l, ok := live[in.Tags[TagLease]]; ok && l.Remote.Site == rec.Name {
				continue
			}
			seen[in.ID] = true
			f.mu.Lock()
			first, ok := f.seen[in.ID]
			if !ok {
				first = now
				f.seen[in.ID] = now
			}
			f.mu.Unlock()
			// The launch time is the site's clock; our first sighting is
			// ours. Either older than the grace period will do.
			if now.Sub(first) >= f.cfg.Grace || (!in.Launched.IsZero() && now.Sub(in.Launched) >= f.cfg.Grace) {
				kill = append(kill, in.ID)
			}
		}
		if len(kill) > 0 {
			if err := s.Terminate(ctx, kill); err != nil {
				f.cfg.Log.Warn("overflow: terminate orphans", "site", rec.Name, "err", err)
				continue
			}
			f.cfg.Log.Warn("overflow: terminated instances no lease runs on", "site", rec.Name, "instances", kill)
		}
	}
	f.mu.Lock()
	for k := range f.seen {
		if !seen[k] {
			delete(f.seen, k)
		}
	}
	f.mu.Unlock()
}
