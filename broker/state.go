package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fairlease/fairlease/fairshare"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// Role is what a user may do.
type Role string

// Roles.
const (
	RoleUser    Role = "user"    // their own group's leases
	RoleManager Role = "manager" // their group's leases and users
	RoleAdmin   Role = "admin"   // everything: shares, quotas, hosts, users
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	return r == RoleUser || r == RoleManager || r == RoleAdmin || r == RoleAgent
}

// User is someone who may hold tokens.
type User struct {
	Name    string        `json:"name"`
	Group   lease.GroupID `json:"group"`
	Role    Role          `json:"role"`
	Created time.Time     `json:"created"`
}

// Token is an API token. Only a hash of its secret is kept.
type Token struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Hash    []byte    `json:"hash"` // SHA-256 of the secret
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
}

// HostState says whether a host is heard from.
type HostState string

// Host states.
const (
	HostUp   HostState = "up"
	HostLost HostState = "lost"
)

// Host is a hypervisor of the local site.
type Host struct {
	Name     string          `json:"name"`
	Capacity lease.Resources `json:"capacity"`
	State    HostState       `json:"state"`
	LastSeen time.Time       `json:"last_seen"`
	// Agent, LogKey, Driver and Images come from the host's agent.
	Agent  string   `json:"agent,omitempty"`
	LogKey string   `json:"log_key,omitempty"`
	Driver string   `json:"driver,omitempty"`
	Images []string `json:"images,omitempty"`
}

// Node is a broker replica.
type Node struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
}

// VM is one VM of a lease.
type VM struct {
	Index   int    `json:"index"`
	Name    string `json:"name"`
	Address string `json:"address"`
	Host    string `json:"host"`
	// State is what the host's agent last reported (starting until then);
	// Phase what a starting VM waits for ("image 63 %").
	State string `json:"state,omitempty"`
	Phase string `json:"phase,omitempty"`
	// Instance is the VM's instance id on another site, for an
	// overflowed lease.
	Instance string `json:"instance,omitempty"`
}

// Transition is a step in a lease's life.
type Transition struct {
	At    time.Time   `json:"at"`
	State lease.State `json:"state"`
	Note  string      `json:"note,omitempty"`
}

// Lease is the broker's record of a request and what became of it. Its
// JSON is the API's lease object (DESIGN.md §5).
type Lease struct {
	ID       lease.ID       `json:"id"`
	State    lease.State    `json:"state"`
	Site     string         `json:"site"`
	Start    time.Time      `json:"start,omitzero"`
	End      time.Time      `json:"end,omitzero"`
	VMs      []VM           `json:"vms"`
	Group    lease.GroupID  `json:"group"`
	User     string         `json:"user"`
	Request  lease.Request  `json:"request"`
	Decision lease.Decision `json:"decision"`
	// EndReason says why an ended, failed or rejected lease stopped.
	EndReason string       `json:"end_reason,omitempty"`
	History   []Transition `json:"history"`
	// Context is the cluster's SSH key pair and the user's keys; it is
	// kept out of the API's lease object.
	Context *ClusterContext `json:"context,omitempty"`
	// Launch is what an EC2 RunInstances call said, for leases made
	// through the EC2 API.
	Launch *Launch `json:"launch,omitempty"`
	// Remote is the lease's life on another site, once it overflowed.
	Remote *Remote `json:"remote,omitempty"`
}

func (l *Lease) move(at time.Time, s lease.State, note string) {
	l.State = s
	l.History = append(l.History, Transition{At: at, State: s, Note: note})
}

// Live reports whether the lease still holds or waits for capacity.
func (l *Lease) Live() bool {
	switch l.State {
	case lease.StateEnded, lease.StateRejected, lease.StateFailed, lease.StateOverflowed:
		return false
	}
	return true
}

// State is the replicated state. It is not safe for concurrent use; the
// server serializes Apply and guards reads.
type State struct {
	preset     string
	policyText string
	policy     *policies.Policy
	engine     *fairshare.Engine

	hosts  []*Host
	users  map[string]*User
	tokens map[string]*Token
	nodes  map[string]*Node
	images map[string]*Image
	sites  map[string]*Site
	ec2    ec2State
	leases map[lease.ID]*Lease
	// remote holds the overflowed leases whose instances are not yet
	// confirmed gone; instances resolves EC2 instance ids. Both are
	// derived from the leases, not stored in snapshots.
	remote    map[lease.ID]bool
	instances map[string]InstanceRef
	order     []lease.ID // leases in submission order
	// addr numbers VM addresses: each VM that starts gets the next one.
	addr uint32
	// siteKey is the seed of the site's ed25519 signing key.
	siteKey []byte
	index   uint64
	now     time.Time
}

// Preset is the admission policy the broker runs.
const Preset = "fairlease"

// NewState returns an empty state under the built-in default policy.
func NewState() *State {
	s := &State{
		preset: Preset, policy: policies.Default(),
		users: map[string]*User{}, tokens: map[string]*Token{}, nodes: map[string]*Node{}, images: map[string]*Image{},
		leases: map[lease.ID]*Lease{}, sites: map[string]*Site{}, ec2: newEC2State(),
		remote: map[lease.ID]bool{}, instances: map[string]InstanceRef{},
	}
	e, err := fairshare.New(s.preset, nil, s.policy)
	if err != nil {
		panic(fmt.Sprintf("broker: the default engine: %v", err)) // a programming error
	}
	s.engine = e
	return s
}

// Index is the last applied log index.
func (s *State) Index() uint64 { return s.index }

// Now is the time of the last applied command.
func (s *State) Now() time.Time { return s.now }

// ErrUnknownCommand reports a command type this version does not know.
var ErrUnknownCommand = errors.New("broker: unknown command type")

// Apply applies c at log index. Business outcomes (a rejected request, a
// refused removal) come back as values or *lease.Error; Apply panics only
// on a command this version cannot read, so that a replica stops rather
// than diverges.
func (s *State) Apply(index uint64, c Command) (any, error) {
	if index <= s.index && index != 0 {
		return nil, fmt.Errorf("broker: entry %d applied already (at %d)", index, s.index)
	}
	s.index = max(s.index, index)
	// Time never runs back: a new leader's clock may be behind the last
	// one's.
	at := c.Time
	if at.Before(s.now) {
		at = s.now
	}
	s.now = at
	s.engine.SetNow(at)
	res, err := s.apply(at, c)
	if errors.Is(err, ErrUnknownCommand) {
		if c.Type&IgnoreUnknownFlag != 0 {
			return nil, nil
		}
		panic(fmt.Sprintf("broker: log entry %d has command type %d, unknown to this version: upgrade this node", index, c.Type))
	}
	return res, err
}

func decode[T any](c Command) (T, error) {
	var v T
	dec := json.NewDecoder(bytes.NewReader(c.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		// A command this version wrote but cannot read is corruption.
		panic(fmt.Sprintf("broker: %s body: %v", c.Type, err))
	}
	return v, nil
}

func (s *State) apply(at time.Time, c Command) (any, error) {
	switch c.Type {
	case CmdSubmit:
		b, _ := decode[Submit](c)
		return s.submit(at, c.Actor, b), nil
	case CmdAdvance:
		return s.advance(at), nil
	case CmdRelease:
		b, _ := decode[Release](c)
		return s.release(at, c.Actor, b)
	case CmdLeaseState:
		b, _ := decode[LeaseStateChange](c)
		return s.leaseState(at, b)
	case CmdSetPolicy:
		b, _ := decode[SetPolicy](c)
		return nil, s.setPolicy(b.Text)
	case CmdSetGroup:
		b, _ := decode[SetGroup](c)
		return nil, s.setGroup(b)
	case CmdPutUser:
		b, _ := decode[User](c)
		return nil, s.putUser(at, b)
	case CmdDeleteUser:
		b, _ := decode[Name](c)
		return nil, s.deleteUser(b.Name)
	case CmdPutToken:
		b, _ := decode[Token](c)
		return nil, s.putToken(at, b)
	case CmdRevokeToken:
		b, _ := decode[Name](c)
		if _, ok := s.tokens[b.Name]; !ok {
			return nil, lease.Errorf(lease.ENOTFOUND, "id", "no token %q", b.Name)
		}
		delete(s.tokens, b.Name)
		return nil, nil
	case CmdPutHost:
		b, _ := decode[Host](c)
		return nil, s.putHost(at, b)
	case CmdRemoveHost:
		b, _ := decode[Name](c)
		return nil, s.removeHost(b.Name)
	case CmdHeartbeat:
		b, _ := decode[Name](c)
		return nil, s.heartbeat(at, b.Name)
	case CmdHostLost:
		b, _ := decode[Name](c)
		return s.hostLost(at, b.Name)
	case CmdPutNode:
		b, _ := decode[Node](c)
		if b.ID == "" {
			return nil, lease.Errorf(lease.EINVALID, "id", "a node needs an id")
		}
		s.nodes[b.ID] = &b
		return nil, nil
	case CmdRemoveNode:
		b, _ := decode[Name](c)
		delete(s.nodes, b.Name)
		return nil, nil
	case CmdVMState:
		b, _ := decode[VMStateChange](c)
		return s.vmState(at, b)
	case CmdHostAgent:
		b, _ := decode[HostAgent](c)
		return nil, s.hostAgent(at, b)
	case CmdPutImage:
		b, _ := decode[Image](c)
		return nil, s.putImage(at, b)
	case CmdDelImage:
		b, _ := decode[Name](c)
		return nil, s.delImage(b.Name)
	case CmdShareImage:
		b, _ := decode[ImageShare](c)
		return nil, s.shareImage(b)
	case CmdSiteKey:
		b, _ := decode[SiteKey](c)
		return nil, s.putSiteKey(b)
	case CmdPutAccessKey:
		b, _ := decode[AccessKey](c)
		return nil, s.putAccessKey(at, b)
	case CmdRevokeAccessKey:
		b, _ := decode[Name](c)
		return nil, s.revokeAccessKey(b.Name)
	case CmdPutKeyPair:
		b, _ := decode[KeyPair](c)
		return nil, s.putKeyPair(at, b)
	case CmdDelKeyPair:
		b, _ := decode[KeyPairRef](c)
		s.delKeyPair(b)
		return nil, nil
	case CmdTags:
		b, _ := decode[TagChange](c)
		return nil, s.tags(b)
	case CmdPutSite:
		b, _ := decode[Site](c)
		return nil, s.putSite(at, b)
	case CmdRemoveSite:
		b, _ := decode[Name](c)
		return nil, s.removeSite(b.Name)
	case CmdRemoteAttempt, CmdRemoteLaunched, CmdRemoteFailed, CmdRemoteEnded:
		b, _ := decode[RemoteStep](c)
		return s.remoteStep(at, c.Type, b)
	}
	return nil, ErrUnknownCommand
}

// SubmitResult is the outcome of one request of a Submit.
type SubmitResult struct {
	Lease *Lease       `json:"lease,omitempty"`
	Error *lease.Error `json:"error,omitempty"`
	// Replayed says the lease is one an earlier call with the same EC2
	// client token made.
	Replayed bool `json:"replayed,omitempty"`
}

func (s *State) submit(at time.Time, actor string, b Submit) []SubmitResult {
	out := make([]SubmitResult, len(b.Requests))
	for i, r := range b.Requests {
		if r.ID == "" {
			out[i].Error = lease.Errorf(lease.EINVALID, "id", "request needs an id")
			continue
		}
		var ln *Launch
		if i < len(b.Launches) {
			ln = b.Launches[i]
		}
		if old, err := s.replay(actor, ln); err != nil {
			out[i].Error = err
			continue
		} else if old != nil {
			out[i].Lease, out[i].Replayed = old, true
			continue
		}
		if err := validLaunch(ln); err != nil {
			out[i].Error = err
			continue
		}
		if _, dup := s.leases[r.ID]; dup {
			out[i].Error = lease.Errorf(lease.ECONFLICT, "id", "a lease with id %q exists already", r.ID)
			continue
		}
		if r.Shape.Image == "" && s.agentHosts() {
			out[i].Error = lease.Errorf(lease.EINVALID, "image", "this site's hosts boot real VMs: pick an image (fairlease image list, or image push)")
			continue
		}
		if im := r.Shape.Image; im != "" && (len(s.images) > 0 || s.agentHosts()) {
			// Another group's private image is as good as absent.
			if x, ok := s.images[im]; !ok || !x.UsableBy(r.Group) {
				out[i].Error = lease.Errorf(lease.ENOTFOUND, "image", "no image %q; fairlease image list shows what there is", im)
				continue
			}
		}
		r.Submitted = at
		r.PreferHosts = s.holding(r.Shape.Image)
		d := s.engine.Submit(at, r)
		l := &Lease{ID: r.ID, Site: d.Site, Group: r.Group, User: actor, Request: r, Decision: d, VMs: []VM{}}
		if i < len(b.Contexts) && b.Contexts[i] != nil {
			c := *b.Contexts[i]
			l.Context = &c
		}
		s.leases[r.ID] = l
		s.order = append(s.order, r.ID)
		s.indexInstances(l)
		s.launched(actor, l, ln)
		l.move(at, lease.StateRequested, "")
		switch d.Kind {
		case lease.Granted:
			l.move(at, lease.StateGranted, d.Message)
			s.started(at, l, d.Placement)
		case lease.Deferred:
			l.Start, l.End = d.Start, d.End
			l.move(at, lease.StateDeferred, d.Message)
		case lease.Overflowed:
			s.overflowed(at, l, d.Site, d.Message)
		case lease.Rejected:
			l.EndReason = string(d.Reason)
			l.move(at, lease.StateRejected, d.Message)
		}
		out[i].Lease = l
	}
	s.events(s.engine.Advance(at))
	for i := range out {
		if out[i].Lease != nil {
			out[i].Lease = out[i].Lease.public()
		}
	}
	return out
}

// started records that l's VMs go to their hosts: each gets a name and an
// address now, before boot, so that every VM can learn its peers.
func (s *State) started(at time.Time, l *Lease, p []lease.Placement) {
	l.Start, l.End = at, at.Add(l.Request.Duration)
	l.Site = lease.LocalSite
	l.VMs = l.VMs[:0]
	for _, pl := range p {
		s.addr++
		l.VMs = append(l.VMs, VM{Index: pl.Index, Name: fmt.Sprintf("%s-%d", l.ID, pl.Index), Address: vmAddress(s.addr), Host: pl.Host, State: VMStarting})
	}
	l.move(at, lease.StateStarting, "")
}

// vmAddress maps the n-th VM to an address in 10.64.0.0/10.
func vmAddress(n uint32) string {
	n %= 1 << 22
	return fmt.Sprintf("10.%d.%d.%d", 64+(n>>16), (n>>8)&0xff, n&0xff)
}

// AdvanceResult lists what changed.
type AdvanceResult struct {
	Events []fairshare.Event `json:"events"`
}

func (s *State) advance(at time.Time) AdvanceResult {
	evs := s.engine.Advance(at)
	s.events(evs)
	s.expireRemote(at)
	return AdvanceResult{Events: evs}
}

// events applies what the engine did on its own to the lease records.
func (s *State) events(evs []fairshare.Event) {
	for _, ev := range evs {
		l, ok := s.leases[ev.ID]
		if !ok {
			continue
		}
		at := ev.At
		switch ev.Kind {
		case fairshare.EventStart:
			s.started(at, l, ev.Placement)
		case fairshare.EventEnd:
			l.End = at
			l.EndReason = "expired"
			l.move(at, lease.StateEnded, "reached its end")
		case fairshare.EventReject:
			l.EndReason = string(lease.ReasonStartBy)
			l.move(at, lease.StateRejected, "no local start before start_by")
		case fairshare.EventOverflow:
			s.overflowed(at, l, ev.Site, "no local start before start_by; runs on "+ev.Site)
		}
	}
}

func (s *State) release(at time.Time, actor string, b Release) (*Lease, error) {
	l, ok := s.leases[b.ID]
	if !ok {
		return nil, lease.Errorf(lease.ENOTFOUND, "id", "no lease %q", b.ID)
	}
	reason := b.Reason
	if reason == "" {
		reason = "released by " + actor
	}
	if l.State == lease.StateOverflowed {
		return s.releaseRemote(at, l, reason), nil
	}
	if !l.Live() {
		return nil, lease.Errorf(lease.ECONFLICT, "id", "lease %s is %s already", b.ID, l.State)
	}
	if err := s.engine.Release(at, b.ID); err != nil {
		return nil, err
	}
	l.EndReason = reason
	if l.State == lease.StateRunning || l.State == lease.StateStarting || l.State == lease.StateGranted {
		l.End = at
	}
	l.move(at, lease.StateEnded, reason)
	s.events(s.engine.Advance(at))
	return l.public(), nil
}

func (s *State) leaseState(at time.Time, b LeaseStateChange) (*Lease, error) {
	l, ok := s.leases[b.ID]
	if !ok {
		return nil, lease.Errorf(lease.ENOTFOUND, "id", "no lease %q", b.ID)
	}
	switch b.State {
	case lease.StateRunning:
		if l.State != lease.StateStarting {
			return nil, lease.Errorf(lease.ECONFLICT, "state", "lease %s is %s, not starting", b.ID, l.State)
		}
		l.move(at, lease.StateRunning, b.Note)
	case lease.StateFailed:
		if !l.Live() {
			return nil, lease.Errorf(lease.ECONFLICT, "state", "lease %s is %s already", b.ID, l.State)
		}
		if err := s.engine.Release(at, b.ID); err != nil {
			return nil, err
		}
		l.EndReason = b.Note
		l.End = at
		l.move(at, lease.StateFailed, b.Note)
		s.events(s.engine.Advance(at))
	default:
		return nil, lease.Errorf(lease.EINVALID, "state", "a host reports running or failed, not %q", b.State)
	}
	c := *l
	return &c, nil
}

func (s *State) setPolicy(text string) error {
	p, err := policies.Parse("policy.toml", strings.NewReader(text))
	if err != nil {
		return lease.Errorf(lease.EINVALID, "policy", "%v", err)
	}
	s.policy, s.policyText = p, text
	s.engine.SetPolicy(p)
	s.events(s.engine.Advance(s.now))
	return nil
}

func (s *State) setGroup(b SetGroup) error {
	if b.Group == "" {
		return lease.Errorf(lease.EINVALID, "group", "a group needs a name")
	}
	p := s.policy.Clone()
	g, ok := p.Groups[b.Group]
	if !ok {
		d := p.Defaults
		g = &policies.Group{Name: b.Group, Weight: d.Weight, Quota: d.Quota, Overflow: d.Overflow}
		p.Groups[b.Group] = g
	}
	if b.Weight < 0 {
		return lease.Errorf(lease.EINVALID, "weight", "weight must be > 0, got %v", b.Weight)
	}
	if b.Weight > 0 {
		g.Weight = b.Weight
	}
	switch b.Parent {
	case "":
	case "-":
		g.Parent = ""
	default:
		g.Parent = lease.GroupID(b.Parent)
	}
	if q := b.Quota; q != nil {
		g.Quota = policies.Quota{MaxCores: q.MaxCores, MaxMemoryMiB: q.MaxMemoryMiB, MaxLease: q.MaxLease, MaxVMs: q.MaxVMs}
	}
	if err := p.Validate(); err != nil {
		return lease.Errorf(lease.EINVALID, "group", "%v", err)
	}
	s.policy = p
	s.policyText = ""
	s.engine.SetPolicy(p)
	s.events(s.engine.Advance(s.now))
	return nil
}

func (s *State) putUser(at time.Time, u User) error {
	switch {
	case u.Name == "":
		return lease.Errorf(lease.EINVALID, "name", "a user needs a name")
	case !u.Role.Valid():
		return lease.Errorf(lease.EINVALID, "role", "role must be user, manager or admin, got %q", u.Role)
	case u.Group == "" && u.Role != RoleAdmin && u.Role != RoleAgent:
		return lease.Errorf(lease.EINVALID, "group", "a %s needs a group", u.Role)
	}
	if old, ok := s.users[u.Name]; ok {
		u.Created = old.Created
	} else {
		u.Created = at
	}
	s.users[u.Name] = &u
	return nil
}

func (s *State) deleteUser(name string) error {
	if _, ok := s.users[name]; !ok {
		return lease.Errorf(lease.ENOTFOUND, "name", "no user %q", name)
	}
	delete(s.users, name)
	s.forgetUser(name)
	for id, t := range s.tokens {
		if t.User == name {
			delete(s.tokens, id)
		}
	}
	return nil
}

func (s *State) putToken(at time.Time, t Token) error {
	switch {
	case t.ID == "":
		return lease.Errorf(lease.EINVALID, "id", "a token needs an id")
	case len(t.Hash) != 32:
		return lease.Errorf(lease.EINVALID, "hash", "a token's hash is 32 bytes (SHA-256), got %d", len(t.Hash))
	}
	if _, ok := s.users[t.User]; !ok {
		return lease.Errorf(lease.ENOTFOUND, "user", "no user %q", t.User)
	}
	if _, dup := s.tokens[t.ID]; dup {
		return lease.Errorf(lease.ECONFLICT, "id", "token %q exists already", t.ID)
	}
	t.Created = at
	s.tokens[t.ID] = &t
	return nil
}

func (s *State) putHost(at time.Time, h Host) error {
	if i := slices.IndexFunc(s.hosts, func(x *Host) bool { return x.Name == h.Name }); i >= 0 {
		if s.hosts[i].Capacity != h.Capacity {
			return lease.Errorf(lease.ECONFLICT, "name", "host %q exists with another capacity; remove it first", h.Name)
		}
		s.hosts[i].State, s.hosts[i].LastSeen = HostUp, at
		return nil
	}
	if err := s.engine.AddHost(fairshare.Host{Name: h.Name, Capacity: h.Capacity}); err != nil {
		return err
	}
	h.State, h.LastSeen = HostUp, at
	s.hosts = append(s.hosts, &h)
	s.events(s.engine.Advance(at))
	return nil
}

func (s *State) removeHost(name string) error {
	if err := s.engine.RemoveHost(name); err != nil {
		return err
	}
	s.hosts = slices.DeleteFunc(s.hosts, func(h *Host) bool { return h.Name == name })
	return nil
}

func (s *State) heartbeat(at time.Time, name string) error {
	h := s.host(name)
	if h == nil {
		return lease.Errorf(lease.ENOTFOUND, "name", "no host %q", name)
	}
	h.LastSeen, h.State = at, HostUp
	return nil
}

// HostLostResult lists the leases a lost host held.
type HostLostResult struct {
	Affected []lease.ID `json:"affected"`
}

func (s *State) hostLost(at time.Time, name string) (HostLostResult, error) {
	h := s.host(name)
	if h == nil {
		return HostLostResult{}, lease.Errorf(lease.ENOTFOUND, "name", "no host %q", name)
	}
	h.State = HostLost
	var res HostLostResult
	for _, id := range s.order {
		l := s.leases[id]
		if !l.Live() {
			continue
		}
		if slices.ContainsFunc(l.VMs, func(v VM) bool { return v.Host == name }) {
			res.Affected = append(res.Affected, id)
			l.History = append(l.History, Transition{At: at, State: l.State, Note: "host " + name + " lost"})
		}
	}
	return res, nil
}

func (s *State) host(name string) *Host {
	for _, h := range s.hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Reads. They return copies, and change nothing.

// Lease returns a copy of lease id, without its cluster context (the
// key pair goes only to the lease's VMs, through Assignments).
func (s *State) Lease(id lease.ID) (*Lease, bool) {
	l, ok := s.leases[id]
	if !ok {
		return nil, false
	}
	return l.public(), true
}

// Leases returns copies of the leases keep selects, in submission order,
// without their cluster contexts.
func (s *State) Leases(keep func(*Lease) bool) []*Lease {
	var out []*Lease
	for _, id := range s.order {
		if l := s.leases[id]; keep == nil || keep(l) {
			out = append(out, l.public())
		}
	}
	return out
}

// public returns a copy of l to show its users.
func (l *Lease) public() *Lease {
	c := *l
	c.VMs = slices.Clone(l.VMs)
	c.History = slices.Clone(l.History)
	c.Context = nil
	if l.Launch != nil {
		ln := *l.Launch
		ln.Tags = maps.Clone(l.Launch.Tags)
		c.Launch = &ln
	}
	if l.Remote != nil {
		r := *l.Remote
		r.Attempts = slices.Clone(r.Attempts)
		r.Instances = slices.Clone(r.Instances)
		c.Remote = &r
	}
	return &c
}

// User returns user name.
func (s *State) User(name string) (User, bool) {
	u, ok := s.users[name]
	if !ok {
		return User{}, false
	}
	return *u, true
}

// Users lists users by name.
func (s *State) Users() []User {
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Token returns token id.
func (s *State) Token(id string) (Token, bool) {
	t, ok := s.tokens[id]
	if !ok {
		return Token{}, false
	}
	return *t, true
}

// Tokens lists tokens by id.
func (s *State) Tokens() []Token {
	out := make([]Token, 0, len(s.tokens))
	for _, t := range s.tokens {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Hosts lists hosts in the order they joined.
func (s *State) Hosts() []Host {
	out := make([]Host, len(s.hosts))
	for i, h := range s.hosts {
		out[i] = *h
	}
	return out
}

// Nodes lists broker nodes by id.
func (s *State) Nodes() []Node {
	out := make([]Node, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Policy returns the site policy; callers must not change it.
func (s *State) Policy() *policies.Policy { return s.policy }

// Shares reports every group's entitlement and use as of the last
// applied command.
func (s *State) Shares() []fairshare.GroupShare { return s.engine.Shares(s.now) }

// WhatIf answers what submitting r would get as of the last applied
// command, changing nothing.
func (s *State) WhatIf(r lease.Request) lease.Decision {
	r.Submitted = s.now
	return s.engine.WhatIf(s.now, r)
}

// Next says when the engine next has something due.
// Leases running on other sites end on their own time.
func (s *State) Next() (time.Time, bool) {
	t, ok := s.engine.Next()
	if r, rok := s.nextRemote(); rok && (!ok || r.Before(t)) {
		return r, true
	}
	return t, ok
}

// ClusterStatus describes the broker cluster as one node sees it.
type ClusterStatus struct {
	// Self is the node answering.
	Self string `json:"self"`
	// Leader is the leader's id, empty while there is none.
	Leader string `json:"leader"`
	// State is the answering node's Raft state: Leader, Follower, Candidate.
	State string `json:"state"`
	Term  uint64 `json:"term"`
	// AppliedIndex is the last log index the answering node applied.
	AppliedIndex uint64        `json:"applied_index"`
	Members      []ClusterNode `json:"members"`
}

// ClusterNode is one member of the Raft configuration.
type ClusterNode struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr,omitempty"`
	Voter    bool   `json:"voter"`
	Leader   bool   `json:"leader"`
}

// agentHosts reports whether host agents run this site's VMs (rather than
// hosts that only account for them).
func (s *State) agentHosts() bool {
	for _, h := range s.hosts {
		if h.Driver != "" {
			return true
		}
	}
	return false
}

// holding lists the hosts whose agents hold image name in their cache: a
// lease of it goes there first, saving a download.
func (s *State) holding(name string) []string {
	im, ok := s.images[name]
	if !ok {
		return nil
	}
	var out []string
	for _, h := range s.hosts {
		if h.State == HostUp && slices.Contains(h.Images, im.Digest) {
			out = append(out, h.Name)
		}
	}
	return out
}
