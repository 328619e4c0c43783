package ec2api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// The EC2 actions over the broker: a reservation is a lease, an instance
// is one of its VMs, an AMI is an image of the registry, a key pair is a
// user's SSH key. Every change goes through the broker's log.

// TagDuration is the instance tag that sets the lease length, in seconds
// or as a duration ("3h", "90m"); without it a lease lasts DefaultDuration.
const TagDuration = "fairlease:duration"

// BrokerConfig sets up the EC2 API of a broker node.
type BrokerConfig struct {
	Backend  broker.Backend
	Region   string
	Endpoint string
	Zone     string
	// DefaultType is the instance type when a call names none; when the
	// site's flavor table (policies.Policy.Flavors) lacks it, the smallest
	// flavor.
	DefaultType string
	// DefaultDuration is a lease's length without a duration tag (capped
	// by the group's longest lease).
	DefaultDuration time.Duration
	// StartWithin is how long a RunInstances call may wait for its start:
	// beyond it the answer is InsufficientInstanceCapacity (EC2 callers
	// expect instances now, not a promise for tomorrow).
	StartWithin time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
}

// ownerID is the account id EC2 answers carry: the caller's group.
func ownerID(g lease.GroupID) string {
	h := sha256.Sum256([]byte("group/" + string(g)))
	return fmt.Sprint(100000000000 + int64(h[0])<<32 | int64(h[1])<<24 | int64(h[2])<<16 | int64(h[3])<<8 | int64(h[4]))[:12]
}

type brokerActions struct {
	cfg BrokerConfig
}

// NewBroker returns the EC2 API of a broker node.
func NewBroker(cfg BrokerConfig) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DefaultType == "" {
		cfg.DefaultType = "t3.small"
	}
	if cfg.DefaultDuration <= 0 {
		cfg.DefaultDuration = time.Hour
	}
	if cfg.StartWithin <= 0 {
		cfg.StartWithin = 5 * time.Minute
	}
	sc := DefaultConfig()
	sc.Now, sc.Logger = cfg.Now, cfg.Logger
	if cfg.Region != "" {
		sc.Region = cfg.Region
	}
	sc.Endpoint = cfg.Endpoint
	if cfg.Zone == "" {
		cfg.Zone = sc.Region + "-a"
	}
	sc.Zones = []Zone{{Name: cfg.Zone}}
	b := &brokerActions{cfg: cfg}
	sc.Keys = b.keys
	s := New(sc)
	for name, a := range map[string]Action{
		"RunInstances": b.runInstances, "DescribeInstances": b.describeInstances, "TerminateInstances": b.terminateInstances,
		"DescribeInstanceStatus": b.describeInstanceStatus, "DescribeImages": b.describeImages,
		"RegisterImage": b.registerImage, "DeregisterImage": b.deregisterImage, "DescribeInstanceTypes": b.describeInstanceTypes,
		"CreateKeyPair": b.createKeyPair, "ImportKeyPair": b.importKeyPair, "DescribeKeyPairs": b.describeKeyPairs,
		"DeleteKeyPair": b.deleteKeyPair, "CreateTags": b.createTags, "DeleteTags": b.deleteTags, "DescribeTags": b.describeTags,
	} {
		s.Handle(name, a)
	}
	return s
}

func (b *brokerActions) keys(akid string) (string, string, bool) {
	var k broker.AccessKey
	var ok bool
	b.cfg.Backend.Read(context.Background(), false, func(st *broker.State) error {
		k, ok = st.AccessKey(akid)
		return nil
	})
	return k.User, k.Secret, ok
}

// toEC2 turns a broker error into the EC2 error a client expects.
func toEC2(err error) *Error {
	var le *lease.Error
	if !errors.As(err, &le) {
		return Unavailable("the broker could not take the request now (%v); retry", err)
	}
	switch le.Code {
	case lease.ENOTFOUND:
		return &Error{Code: "InvalidParameterValue", Message: le.Error(), Status: 400}
	case lease.ECONFLICT:
		return &Error{Code: "IncorrectState", Message: le.Error(), Status: 400}
	case lease.EFORBIDDEN, lease.EUNAUTHORIZED:
		return UnauthorizedOperation("%s", le.Error())
	case lease.EINVALID:
		return &Error{Code: "InvalidParameterValue", Message: le.Error(), Status: 400}
	}
	return Unavailable("%s", le.Error())
}

// who is the caller's user record.
func (b *brokerActions) who(ctx context.Context, c Caller) (broker.User, *Error) {
	var u broker.User
	var ok bool
	if err := b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
		u, ok = st.User(c.User)
		return nil
	}); err != nil {
		return u, toEC2(err)
	}
	if !ok {
		return u, AuthFailure("the access key's user no longer exists")
	}
	return u, nil
}

// sees reports whether u may see lease l: their own; managers their
// group's; admins all.
func sees(u broker.User, l *broker.Lease) bool {
	switch u.Role {
	case broker.RoleAdmin:
		return true
	case broker.RoleManager:
		return l.Group == u.Group
	}
	return l.User == u.Name
}

func (b *brokerActions) propose(ctx context.Context, u broker.User, t broker.CommandType, body any) (any, *Error) {
	c, err := broker.NewCommand(t, b.cfg.Now(), u.Name, body)
	if err != nil {
		return nil, InternalError()
	}
	res, err := b.cfg.Backend.Propose(ctx, c)
	if err != nil {
		return nil, toEC2(err)
	}
	return res, nil
}

// flavors returns the site's flavor table, smallest first: the policy in
// force now, so that a new policy changes the instance types at once on
// every node.
func (b *brokerActions) flavors(ctx context.Context) ([]policies.Flavor, *Error) {
	var fl []policies.Flavor
	if err := b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
		fl = st.Policy().FlavorList()
		return nil
	}); err != nil {
		return nil, toEC2(err)
	}
	return fl, nil
}

// flavor looks an instance type up in fl; "" is the default type.
func (b *brokerActions) flavor(fl []policies.Flavor, name string) (policies.Flavor, bool) {
	if name == "" {
		name = b.cfg.DefaultType
		if !slices.ContainsFunc(fl, func(f policies.Flavor) bool { return f.Name == name }) && len(fl) > 0 {
			return fl[0], true
		}
	}
	for _, f := range fl {
		if f.Name == name {
			return f, true
		}
	}
	return policies.Flavor{}, false
}

// flavorOf names the smallest flavor of fl with shape sh, for leases
// made through the REST API.
func flavorOf(fl []policies.Flavor, sh lease.Shape) string {
	for _, f := range fl {
		if f.Cores == sh.Cores && f.MemoryMiB == sh.MemoryMiB {
			return f.Name
		}
	}
	return fmt.Sprintf("custom-%dc-%dm", sh.Cores, sh.MemoryMiB)
}

// paramsDigest identifies a RunInstances call's parameters, for its
// client token: the same token with another digest is a mismatch.
func paramsDigest(p *Params) string {
	h := sha256.New()
	for _, n := range p.Names() {
		if n == "ClientToken" || n == "Action" || n == "Version" {
			continue
		}
		fmt.Fprintf(h, "%s=%s\n", n, p.String(n))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (b *brokerActions) runInstances(ctx context.Context, c Caller, p *Params) (any, *Error) {
	u, e := b.who(ctx, c)
	if e != nil {
		return nil, e
	}
	if u.Group == "" {
		return nil, InvalidParameterValue("(caller)", u.Name, "The user belongs to no group to charge; give them one (fairlease user create NAME --group G).")
	}
	image, e := p.RequiredString("ImageId")
	if e != nil {
		return nil, e
	}
	minC, e := p.RequiredInt("MinCount", 1, 10000)
	if e != nil {
		return nil, e
	}
	maxC, e := p.RequiredInt("MaxCount", 1, 10000)
	if e != nil {
		return nil, e
	}
	if maxC < minC {
		return nil, InvalidParameterValue("MaxCount", strconv.FormatInt(maxC, 10), "MaxCount must be at least MinCount.")
	}
	flavors, e := b.flavors(ctx)
	if e != nil {
		return nil, e
	}
	fl, ok := b.flavor(flavors, p.String("InstanceType"))
	if !ok {
		return nil, InvalidParameterValue("InstanceType", p.String("InstanceType"), "Unknown instance type; DescribeInstanceTypes lists this site's.")
	}
	typ := fl.Name
	token := p.String("ClientToken")
	if len(token) > 64 {
		return nil, InvalidParameterValue("ClientToken", token, "A client token has at most 64 characters.")
	}
	var userData []byte
	if ud := p.String("UserData"); ud != "" {
		var err error
		if userData, err = base64.StdEncoding.DecodeString(ud); err != nil {
			return nil, InvalidParameterValue("UserData", "(base64)", "UserData must be base64.")
		}
		if len(userData) > 16384 {
			return nil, InvalidParameterValue("UserData", "(base64)", "UserData is limited to 16 KiB.")
		}
	}
	specs, e := p.TagSpecifications()
	if e != nil {
		return nil, e
	}
	tags := map[string]string{}
	for _, ts := range specs {
		if ts.ResourceType != "instance" {
			return nil, InvalidParameterValue("TagSpecification.ResourceType", ts.ResourceType, "Only instance tags can be set at launch here.")
		}
		for _, t := range ts.Tags {
			tags[t.Key] = t.Value
		}
	}
	keyName := p.String("KeyName")
	var userKeys []string
	var img broker.Image
	var found bool
	var maxLease time.Duration
	if err := b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
		for _, im := range st.Images() {
			if broker.ImageID(im.Name) == image && im.UsableBy(u.Group) {
				img, found = im, true
			}
		}
		if keyName != "" {
			if k, ok := st.KeyPair(u.Name, keyName); ok {
				userKeys = []string{k.PublicKey}
			}
		}
		if g, ok := st.Policy().Group(u.Group); ok {
			maxLease = g.Quota.MaxLease
		}
		return nil
	}); err != nil {
		return nil, toEC2(err)
	}
	if !strings.HasPrefix(image, "ami-") {
		return nil, InvalidAMIIDMalformed(image)
	}
	if !found {
		return nil, InvalidAMIIDNotFound(image)
	}
	if keyName != "" && userKeys == nil {
		return nil, InvalidKeyPairNotFound(keyName)
	}
	d := b.cfg.DefaultDuration
	if maxLease > 0 && d > maxLease {
		d = maxLease
	}
	if v, ok := tags[TagDuration]; ok {
		x, err := parseDuration(v)
		if err != nil {
			return nil, InvalidParameterValue("TagSpecification.Tag."+TagDuration, v, "Give the lease length in seconds or as a duration such as 3h.")
		}
		d = x
	}
	now := b.cfg.Now()
	// All-or-nothing: the cluster is MinCount VMs (MaxCount is the
	// caller's upper bound, which MinCount meets).
	req := lease.Request{ID: lease.ID("r-" + randomHex(8)), Group: u.Group, User: lease.UserID(u.Name), Count: int(minC),
		Shape: lease.Shape{Cores: fl.Cores, MemoryMiB: fl.MemoryMiB, Image: img.Name}, Duration: d,
		StartBy: now.Add(b.cfg.StartWithin).UTC(), AllOrNothing: true}
	if err := req.Validate(); err != nil {
		return nil, toEC2(err)
	}
	cc, err := api.NewClusterContext(userKeys)
	if err != nil {
		return nil, InternalError()
	}
	ln := &broker.Launch{ClientToken: token, Params: paramsDigest(p), Reservation: string(req.ID), InstanceType: typ,
		KeyName: keyName, UserData: userData, Tags: tags}
	res, e := b.propose(ctx, u, broker.CmdSubmit, broker.Submit{Requests: []lease.Request{req},
		Contexts: []*broker.ClusterContext{cc}, Launches: []*broker.Launch{ln}})
	if e != nil {
		return nil, e
	}
	rs, ok := res.([]broker.SubmitResult)
	if !ok || len(rs) != 1 {
		return nil, InternalError()
	}
	if le := rs[0].Error; le != nil {
		if le.Field == "client_token" {
			return nil, IdempotentParameterMismatch(token)
		}
		return nil, toEC2(le)
	}
	l := rs[0].Lease
	switch l.State {
	case lease.StateRejected:
		switch lease.Reason(l.EndReason) {
		case lease.ReasonQuota:
			return nil, InstanceLimitExceeded("%s", l.Decision.Message)
		case lease.ReasonTooLong:
			return nil, InvalidParameterValue("TagSpecification.Tag."+TagDuration, d.String(), l.Decision.Message)
		}
		return nil, InsufficientInstanceCapacity("%s (fair-share decision: %s)", l.Decision.Message, l.EndReason)
	case lease.StateDeferred:
		if l.Start.IsZero() || l.Start.After(now.Add(b.cfg.StartWithin)) {
			// Queued without a firm start soon: release it rather than
			// leave a reservation the caller will never see start.
			b.propose(ctx, u, broker.CmdRelease, broker.Release{ID: l.ID, Reason: "EC2 call: no room within " + b.cfg.StartWithin.String()})
			return nil, InsufficientInstanceCapacity("no room for %d × %s within %s; the site's fair-share queue would start it later", req.Count, typ, b.cfg.StartWithin)
		}
	}
	r := b.reservation(l, u, flavors, nil)
	return &RunInstancesResponse{Reservation: r}, nil
}

func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > 366*24*3600 {
			return 0, errors.New("out of range")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := policies.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, errors.New("not a duration")
	}
	return d, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)[:2*n-1]
}

// instanceState is what EC2 would say of VM i of lease l.
func instanceState(l *broker.Lease, i int) InstanceState {
	switch l.State {
	case lease.StateRunning:
		return StateRunning
	case lease.StateStarting, lease.StateGranted:
		if i < len(l.VMs) && l.VMs[i].State == broker.VMRunning {
			return StateRunning
		}
		return StatePending
	case lease.StateOverflowed:
		if l.Remote != nil && len(l.Remote.Instances) > 0 {
			return StateRunning
		}
		return StatePending
	case lease.StateEnded, lease.StateFailed:
		return StateTerminated
	}
	return StatePending
}

// shown reports whether DescribeInstances lists l: not rejected ones, and
// ended ones for an hour, as EC2 keeps terminated instances visible.
func shown(l *broker.Lease, now time.Time) bool {
	switch l.State {
	case lease.StateRejected:
		return false
	case lease.StateEnded, lease.StateFailed:
		return !l.End.IsZero() && now.Sub(l.End) < time.Hour
	}
	return true
}

// reservation is the EC2 view of lease l; flavors name the type of a lease
// made through the REST API.
func (b *brokerActions) reservation(l *broker.Lease, u broker.User, flavors []policies.Flavor, tags func(string) map[string]string) Reservation {
	r := Reservation{ReservationID: reservationID(l), OwnerID: ownerID(l.Group), GroupSet: Set[GroupIdentifier]{}}
	typ, key, token := flavorOf(flavors, l.Request.Shape), "", ""
	if l.Launch != nil {
		typ, key, token = l.Launch.InstanceType, l.Launch.KeyName, l.Launch.ClientToken
	}
	launched := l.Start
	if launched.IsZero() {
		launched = l.History[0].At
	}
	for i := range l.Request.Count {
		in := Instance{
			InstanceID: broker.InstanceID(l.ID, i), ImageID: broker.ImageID(l.Request.Shape.Image), InstanceState: instanceState(l, i),
			KeyName: key, AMILaunchIndex: i, InstanceType: typ, LaunchTime: Time(launched),
			Placement: Placement{AvailabilityZone: b.cfg.Zone, Tenancy: "default"}, Architecture: "x86_64",
			RootDeviceType: "instance-store", VirtualizationType: "hvm", Hypervisor: "xen", ClientToken: token,
			GroupSet: Set[GroupIdentifier]{},
		}
		if i < len(l.VMs) {
			in.PrivateIPAddress = l.VMs[i].Address
			in.PrivateDNSName = l.VMs[i].Name
		}
		if in.InstanceState == StateTerminated {
			in.Reason = "lease ended: " + l.EndReason
			in.StateReason = &StateReason{Code: "Client.UserInitiatedShutdown", Message: in.Reason}
		}
		var tm map[string]string
		if tags != nil {
			tm = tags(in.InstanceID)
		}
		for _, k := range slices.Sorted(maps.Keys(tm)) {
			in.TagSet = append(in.TagSet, Tag{Key: k, Value: tm[k]})
		}
		r.InstancesSet = append(r.InstancesSet, in)
	}
	return r
}

func reservationID(l *broker.Lease) string {
	h := sha256.Sum256([]byte("reservation/" + string(l.ID)))
	return "r-" + hex.EncodeToString(h[:])[:17]
}

// instanceFilter tests one instance against DescribeInstances' filters.
func instanceFilter(fs []Filter, in Instance, l *broker.Lease) (bool, *Error) {
	for _, f := range fs {
		var v []string
		switch {
		case f.Name == "instance-state-name":
			v = []string{in.InstanceState.Name}
		case f.Name == "instance-state-code":
			v = []string{strconv.Itoa(in.InstanceState.Code)}
		case f.Name == "instance-id":
			v = []string{in.InstanceID}
		case f.Name == "client-token":
			v = []string{in.ClientToken}
		case f.Name == "image-id":
			v = []string{in.ImageID}
		case f.Name == "instance-type":
			v = []string{in.InstanceType}
		case f.Name == "reservation-id":
			v = []string{reservationID(l)}
		case f.Name == "key-name":
			v = []string{in.KeyName}
		case f.Name == "tag-key":
			for _, t := range in.TagSet {
				v = append(v, t.Key)
			}
		case strings.HasPrefix(f.Name, "tag:"):
			for _, t := range in.TagSet {
				if t.Key == f.Name[4:] {
					v = append(v, t.Value)
				}
			}
		default:
			return false, InvalidParameterValue("Filter.Name", f.Name, "Unsupported filter; use instance-state-name, instance-id, client-token, tag:KEY, tag-key, image-id, instance-type, reservation-id or key-name.")
		}
		hit := false
		for _, x := range v {
			if MatchAny(f.Values, x) {
				hit = true
				break
			}
		}
		if !hit {
			return false, nil
		}
	}
	return true, nil
}

// page cuts items after the NextToken where a previous page ended.
func page[T any](items []T, p *Params, key func(T) string) ([]T, string, *Error) {
	max, e := p.Int("MaxResults", 1000, 5, 1000)
	if e != nil {
		return nil, "", e
	}
	start := 0
	if tok := p.String("NextToken"); tok != "" {
		start = sort.Search(len(items), func(i int) bool { return key(items[i]) > tok })
		if start == len(items) && len(items) > 0 && key(items[len(items)-1]) < tok {
			start = len(items)
		}
	}
	end := min(start+int(max), len(items))
	next := ""
	if end < len(items) {
		next = key(items[end-1])
	}
	return items[start:end], next, nil
}

func (b *brokerActions) visibleLeases(ctx context.Context, u broker.User) ([]*broker.Lease, map[string]map[string]string, *Error) {
	now := b.cfg.Now()
	var ls []*broker.Lease
	tags := map[string]map[string]string{}
	err := b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
		ls = st.Leases(func(l *broker.Lease) bool { return sees(u, l) && shown(l, now) })
		for _, l := range ls {
			for i := range l.Request.Count {
				id := broker.InstanceID(l.ID, i)
				if t := st.Tags(id); len(t) > 0 {
					tags[id] = t
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, toEC2(err)
	}
	return ls, tags, nil
}

func checkInstanceIDs(ids []string) *Error {
	for _, id := range ids {
		if !strings.HasPrefix(id, "i-") || len(id) < 3 || len(id) > 64 {
			return InvalidInstanceIDMalformed(id)
		}
	}
	return nil
}

func (b *brokerActions) describeInstances(ctx context.Context, c Caller, p *Params) (any, *Error) {
	u, e := b.who(ctx, c)
	if e != nil {
		return nil, e
	}
	ids, e := p.List("InstanceId")
	if e != nil {
		return nil, e
	}
	if e := checkInstanceIDs(ids); e != nil {
		return nil, e
	}
	fs, e := p.Filters()
	if e != nil {
		return nil, e
	}
	ls, tags, e := b.visibleLeases(ctx, u)
	if e != nil {
		return nil, e
	}
	flavors, e := b.flavors(ctx)
	if e != nil {
		return nil, e
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []Reservation
	found := map[string]bool{}
	for _, l := range ls {
		r := b.reservation(l, u, flavors, func(id string) map[string]string { return tags[id] })
		var keep Set[Instance]
		for _, in := range r.InstancesSet {
			if len(want) > 0 && !want[in.InstanceID] {
				continue
			}
			ok, e := instanceFilter(fs, in, l)
			if e != nil {
				return nil, e
			}
			if ok {
				keep = append(keep, in)
				found[in.InstanceID] = true
			}
		}
		if len(keep) > 0 {
			r.InstancesSet = keep
			out = append(out, r)
		}
	}
	if len(want) > 0 {
		var missing []string
		for _, id := range ids {
			if !found[id] && !b.known(ctx, u, id) {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return nil, InvalidInstanceIDNotFound(missing...)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ReservationID < out[j].ReservationID })
	pg, next, e := page(out, p, func(r Reservation) string { return r.ReservationID })
	if e != nil {
		return nil, e
	}
	return &DescribeInstancesResponse{ReservationSet: Set[Reservation](pg), NextToken: next}, nil
}

// known reports whether id is an instance u may see (filtered out, say).
func (b *brokerActions) known(ctx context.Context, u broker.User, id string) bool {
	ok := false
	b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
		if r, found := st.Instance(id); found {
			if l, lok := st.Lease(r.Lease); lok && sees(u, l) && l.State != lease.StateRejected {
				ok = true
			}
		}
		return nil
	})
	return ok
}

func (b *brokerActions) terminateInstances(ctx context.Context, c Caller, p *Params) (any, *Error) {
	u, e := b.who(ctx, c)
	if e != nil {
		return nil, e
	}
	ids, e := p.List("InstanceId")
	if e != nil {
		return nil, e
	}
	if len(ids) == 0 {
		return nil, MissingParameter("InstanceId.1")
	}
	if e := checkInstanceIDs(ids); e != nil {
		return nil, e
	}
	type target struct {
		l     *broker.Lease
		index int
	}
	var ts []target
	var missing []string
	if err := b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
		for _, id := range ids {
			r, ok := st.Instance(id)
			l, lok := st.Lease(r.Lease)
			if !ok || !lok || !sees(u, l) || l.State == lease.StateRejected {
				missing = append(missing, id)
				continue
			}
			ts = append(ts, target{l, r.Index})
		}
		return nil
	}); err != nil {
		return nil, toEC2(err)
	}
	if len(missing) > 0 {
		return nil, InvalidInstanceIDNotFound(missing...)
	}
	resp := &TerminateInstancesResponse{InstancesSet: Set[InstanceStateChange]{}}
	done := map[lease.ID]*broker.Lease{}
	for _, t := range ts {
		prev := instanceState(t.l, t.index)
		cur := prev
		if t.l.Live() || t.l.State == lease.StateOverflowed {
			// A cluster ends as a whole: terminating one of its
			// instances ends the lease.
			l, ok := done[t.l.ID]
			if !ok {
				res, e := b.propose(ctx, u, broker.CmdRelease, broker.Release{ID: t.l.ID, Reason: "terminated through the EC2 API"})
				if e != nil && e.Code != "IncorrectState" {
					return nil, e
				}
				l, _ = res.(*broker.Lease)
				done[t.l.ID] = l
			}
			cur = StateShuttingDown
			if l != nil && l.State != lease.StateOverflowed {
				cur = StateShuttingDown
			}
		}
		resp.InstancesSet = append(resp.InstancesSet, InstanceStateChange{InstanceID: broker.InstanceID(t.l.ID, t.index), CurrentState: cur, PreviousState: prev})
	}
	return resp, nil
}

func (b *brokerActions) describeInstanceStatus(ctx context.Context, c Caller, p *Params) (any, *Error) {
	u, e := b.who(ctx, c)
	if e != nil {
		return nil, e
	}
	ids, e := p.List("InstanceId")
	if e != nil {
		return nil, e
	}
	if e := checkInstanceIDs(ids); e != nil {
		return nil, e
	}
	all, e := p.Bool("IncludeAllInstances", false)
	if e != nil {
		return nil, e
	}
	fs, e := p.Filters()
	if e != nil {
		return nil, e
	}
	ls, _, e := b.visibleLeases(ctx, u)
	if e != nil {
		return nil, e
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []InstanceStatus
	for _, l := range ls {
		for i := range l.Request.Count {
			id := broker.InstanceID(l.ID, i)
			st := instanceState(l, i)
			if (len(want) > 0 && !want[id]) || (!all && st != StateRunning) {
				continue
			}
			status := "ok"
			if st != StateRunning {
				status = "not-applicable"
			}
			is := InstanceStatus{InstanceID: id, AvailabilityZone: b.cfg.Zone, InstanceState: st,
				SystemStatus:   InstanceStatusSummary{Status: status, Details: Set[InstanceStatusDetails]{{Name: "reachability", Status: passed(status)}}},
				InstanceStatus: InstanceStatusSummary{Status: status, Details: Set[InstanceStatusDetails]{{Name: "reachability", Status: passed(status)}}}}
			if !l.End.IsZero() && (l.Live() || l.State == lease.StateOverflowed) {
				end := Time(l.End)
				is.EventsSet = Set[InstanceStatusEvent]{{InstanceEventID: "instance-event-" + id[2:], Code: EventLeaseEnd,
					Description: "The lease ends: the instance is terminated then", NotBefore: end, NotAfter: &end}}
			}
			keep := true
			for _, f := range fs {
				var v string
				switch f.Name {
				case "instance-state-name":
					v = st.Name
				case "event.code":
					if len(is.EventsSet) == 0 {
						keep = false
						continue
					}
					v = is.EventsSet[0].Code
				case "availability-zone":
					v = b.cfg.Zone
				default:
					return nil, InvalidParameterValue("Filter.Name", f.Name, "Unsupported filter; use instance-state-name, event.code or availability-zone.")
				}
				if !MatchAny(f.Values, v) {
					keep = false
				}
			}
			if keep {
				out = append(out, is)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].InstanceID < out[j].InstanceID })
	pg, next, e := page(out, p, func(s InstanceStatus) string { return s.InstanceID })
	if e != nil {
		return nil, e
	}
	return &DescribeInstanceStatusResponse{InstanceStatusSet: Set[InstanceStatus](pg), NextToken: next}, nil
}

func passed(status string) string {
	if status == "ok" {
		return "passed"
	}
	return "initializing"
}

func (b *brokerActions) imageXML(im broker.Image, tags map[string]string) Image {
	x := Image{ImageID: broker.ImageID(im.Name), ImageLocation: "fairlease/" + im.Name, ImageState: "available",
		ImageOwnerID: ownerID(im.Group), CreationDate: Time(im.Created), IsPublic: im.Public, Architecture: "x86_64",
		ImageType: "machine", Name: im.Name, Description: fmt.Sprintf("%s, %d bytes, sha256 %s", im.Format, im.Size, im.Digest),
		RootDeviceType: "instance-store", VirtualizationType: "hvm", Hypervisor: "xen"}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		x.TagSet = append(x.TagSet, Tag{Key: k, Value: tags[k]})
	}
	return x
}

func (b *brokerActions) describeImages(ctx context.Context, c Caller, p *Params) (any, *Error) {
	u, e := b.who(ctx, c)
	if e != nil {
		return nil, e
	}
	ids, e := p.List("ImageId")
	if e != nil {
		return nil, e
	}
	owners, e := p.List("Owner")
	if e != nil {
		return nil, e
	}
	execBy, e := p.List("ExecutableBy")
	if e != nil {
		return nil, e
	}
	fs, e := p.Filters()
	if e != nil {
		return nil, e
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []Image
	err := b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
		for _, im := range st.Images() {
			// Private by default: another group's image is as good as
			// absent, admins see everything.
			if u.Role != broker.RoleAdmin && !im.UsableBy(u.Group) {
				continue
			}
			x := b.imageXML(im, st.Tags(broker.ImageID(im.Name)))
			if len(want) > 0 && !want[x.ImageID] {
				continue
			}
			if len(owners) > 0 && !ownerMatches(owners, im, u) {
				continue
			}
			if len(execBy) > 0 && !slices.ContainsFunc(execBy, func(v string) bool {
				return v == "all" && im.Public || (v == "self" || v == ownerID(u.Group)) && im.UsableBy(u.Group)
			}) {
				continue
			}
			keep := true
			for _, f := range fs {
				var v []string
				switch {
				case f.Name == "name":
					v = []string{x.Name}
				case f.Name == "image-id":
					v = []string{x.ImageID}
				case f.Name == "is-public":
					v = []string{strconv.FormatBool(x.IsPublic)}
				case f.Name == "owner-id":
					v = []string{x.ImageOwnerID}
				case f.Name == "state":
					v = []string{x.ImageState}
				case strings.HasPrefix(f.Name, "tag:"):
					for _, t := range x.TagSet {
						if t.Key == f.Name[4:] {
							v = append(v, t.Value)
						}
					}
				default:
					return InvalidParameterValue("Filter.Name", f.Name, "Unsupported filter; use name, image-id, is-public, owner-id, state or tag:KEY.")
				}
				if !slices.ContainsFunc(v, func(s string) bool { return MatchAny(f.Values, s) }) {
					keep = false
				}
			}
			if keep {
				out = append(out, x)
			}
		}
		return nil
	})
	if err != nil {
		var ee *Error
		if errors.As(err, &ee) {
			return nil, ee
		}
		return nil, toEC2(err)
	}
	if len(want) > 0 {
		for _, id := range ids {
			if !strings.HasPrefix(id, "ami-") {
				return nil, InvalidAMIIDMalformed(id)
			}
			if !slices.ContainsFunc(out, func(x Image) bool { return x.ImageID == id }) {
				return nil, InvalidAMIIDNotFound(id)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ImageID < out[j].ImageID })
	return &DescribeImagesResponse{ImagesSet: Set[Image](out)}, nil
}

func ownerMatches(owners []string, im broker.Image, u broker.User) bool {
	for _, o := range owners {
		switch {
		case o == "self" && im.Group == u.Group:
			return true
		case o == ownerID(im.Group):
			return true
		case (o == "amazon" || o == "fairlease") && im.Public:
			return true
		}
	}
	return false
}

// registerImage registers an image the caller can use under a new name,
// for their group: ImageLocation names it (fairlease/NAME, NAME or its
// ami id). The bytes are shared, not copied.
func (b *brokerActions) registerImage(ctx context.Context, c Caller, p *Params) (any, *Error) {
	u, e := b.who(ctx, c)
	if e != nil {
		return nil, e
	}
	name, e := p.RequiredString("Name")
	if e != nil {
		return nil, e
	}
	loc, e := p.RequiredString("ImageLocation")
	if e != nil {
		return nil, e
	}
	if u.Group == "" {
		return nil, InvalidParameterValue("(caller)", u.Name, "The user belongs to no group to own the image.")
	}
	var src broker.Image
	var found, taken bool
	var key ed25519.PrivateKey
	if err := b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
		for _, im := range st.Images() {
			if (im.Name == strings.TrimPrefix(loc, "fairlease/") || broker.ImageID(im.Name) == loc) && (im.UsableBy(u.Group) || u.Role == broker.RoleAdmin) {
				src, found = im, true
			}
			if im.Name == name {
				taken = true
			}
		}
		key = st.SiteKey()
		return nil
	}); err != nil {
		return nil, toEC2(err)
	}
	switch {
	case !found:
		return nil, InvalidParameterValue("ImageLocation", loc, "No image there that you may use; push one with fairlease image push, then register it by name.")
	case taken:
		return nil, &Error{Code: "InvalidAMIName.Duplicate", Message: fmt.Sprintf("an image named %q exists already", name), Status: 400}
	case key == nil:
		return nil, Unavailable("the site has no signing key yet; push an image first")
	}
	im := src
	im.Name, im.Group, im.Public, im.SharedWith = name, u.Group, false, nil
	im.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, im.Manifest()))
	if _, e := b.propose(ctx, u, broker.CmdPutImage, im); e != nil {
		return nil, e
	}
	return &RegisterImageResponse{ImageID: broker.ImageID(name)}, nil
}

func (b *brokerActions) deregisterImage(ctx context.Context, c Caller, p *Params) (any, *Error) {
	u, e := b.who(ctx, c)
	if e != nil {
		return nil, e
	}
	id, e := p.RequiredString("ImageId")
	if e != nil {
		return nil, e
	}
	if !strings.HasPrefix(id, "ami-") {
		return nil, InvalidAMIIDMalformed(id)
	}
	var name string
	var owns bool
	b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
		for _, im := range st.Images() {
			if broker.ImageID(im.Name) == id && (im.UsableBy(u.Group) || u.Role == broker.RoleAdmin) {
				name, owns = im.Name, im.Group == u.Group || u.Role == broker.RoleAdmin
			}
		}
		return nil
	})
	switch {
	case name == "":
		return nil, InvalidAMIIDNotFound(id)
	case !owns:
		return nil, UnauthorizedOperation("image %s belongs to another group", id)
	}
	if _, e := b.propose(ctx, u, broker.CmdDelImage, broker.Name{Name: name}); e != nil {
		return nil, e
	}
	return &DeregisterImageResponse{Return: true}, nil
}

func (b *brokerActions) describeInstanceTypes(ctx context.Context, c Caller, p *Params) (any, *Error) {
	names, e := p.List("InstanceType")
	if e != nil {
		return nil, e
	}
	fs, e := p.Filters()
	if e != nil {
		return nil, e
	}
	flavors, e := b.flavors(ctx)
	if e != nil {
		return nil, e
	}
	var out []InstanceTypeInfo
	for _, f := range flavors {
		if len(names) > 0 && !slices.Contains(names, f.Name) {
			continue
		}
		keep := true
		for _, flt := range fs {
			var v string
			switch flt.Name {
			case "instance-type":
				v = f.Name
			case "vcpu-info.default-vcpus":
				v = strconv.Itoa(f.Cores)
			case "memory-info.size-in-mib":
				v = strconv.FormatInt(f.MemoryMiB, 10)
			default:
				return nil, InvalidParameterValue("Filter.Name", flt.Name, "Unsupported filter; use instance-type, vcpu-info.default-vcpus or memory-info.size-in-mib.")
			}
			if !MatchAny(flt.Values, v) {
				keep = false
			}
		}
		if keep {
			out = append(out, InstanceTypeInfo{InstanceType: f.Name, CurrentGeneration: true,
				SupportedUsageClasses: Set[string]{"on-demand"}, SupportedRootDeviceTypes: Set[string]{"instance-store"},
				SupportedVirtualizationTypes: Set[string]{"hvm"}, Hypervisor: "xen",
				ProcessorInfo: ProcessorInfo{SupportedArchitectures: Set[string]{"x86_64"}},
				VCPUInfo:      VCPUInfo{DefaultVCPUs: f.Cores, DefaultCores: f.Cores, DefaultThreadsPerCore: 1},
				MemoryInfo:    MemoryInfo{SizeInMiB: f.MemoryMiB}})
		}
	}
	for _, n := range names {
		if _, ok := b.flavor(flavors, n); n == "" || !ok {
			return nil, InvalidParameterValue("InstanceType", n, "Unknown instance type.")
		}
	}
	return &DescribeInstanceTypesResponse{InstanceTypeSet: Set[InstanceTypeInfo](out)}, nil
}

func keyPairID(user, name string) string {
	h := sha256.Sum256([]byte("key-pair/" + user + "/" + name))
	return "key-" + hex.EncodeToString(h[:])[:17]
}

func (b *brokerActions) putKeyPair(ctx context.Context, u broker.User, name, typ string, pub ssh.PublicKey) (broker.KeyPair, *Error) {
	k := broker.KeyPair{ID: keyPairID(u.Name, name), User: u.Name, Name: name, Type: typ,
		Fingerprint: ssh.FingerprintSHA256(pub), PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))}
	if _, e := b.propose(ctx, u, broker.CmdPutKeyPair, k); e != nil {
		if e.Code == "IncorrectState" {
			return k, InvalidKeyPairDuplicate(name)
		}
		return k, e
	}
	return k, nil
}

func (b *brokerActions) createKeyPair(ctx context.Context, c Caller, p *Params) (any, *Error) {
	u, e := b.who(ctx, c)
	if e != nil {
		return nil, e
	}
	name, e := p.RequiredString("KeyName")
	if e != nil {
		return nil, e
	}
	typ := p.String("KeyType")
	if typ == "" {
		typ = "rsa"
	}
	var pub ssh.PublicKey
	var material []byte
	switch typ {
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, InternalError()
		}
		pub, _ = ssh.NewPublicKey(&k.PublicKey)
		material = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	case "ed25519":
		pk, sk, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, InternalError()
		}
		pub, _ = ssh.NewPublicKey(pk)
		blk, err := ssh.MarshalPrivateKey(sk, name)
		if err != nil {
			return nil, InternalError()
		}
		material = pem.EncodeToMemory(blk)
	default:
		return nil, InvalidParameterValue("KeyType", typ, "Use rsa or ed25519.")
	}
	k, e := b.putKeyPair(ctx, u, name, typ, pub)
	if e != nil {
		return nil, e
	}
	return &CreateKeyPairResponse{KeyName: name, KeyFingerprint: k.Fingerprint, KeyMaterial: strings.TrimSpace(string(material)), KeyPairID: k.ID}, nil
}

func (b *brokerActions) importKeyPair(ctx context.Context, c Caller, p *Params) (any, *Error) {
	u, e := b.who(ctx, c)
	if e != nil {
		return nil, e
	}
	name, e := p.RequiredString("KeyName")
	if e != nil {
		return nil, e
	}
	enc, e := p.RequiredString("PublicKeyMaterial")
	if e != nil {
		return nil, e
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		raw = []byte(enc) // some clients send the key as is
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(raw)
	if err != nil {
		return nil, InvalidKeyPairFormat("the key is not an OpenSSH public key (ssh-ed25519 … or ssh-rsa …)")
	}
	typ := "rsa"
	if pub.Type() == ssh.KeyAlgoED25519 {
		typ = "ed25519"
	}
	k, e := b.putKeyPair(ctx, u, name, typ, pub)
	if e != nil {
		return nil, e
	}
	return &ImportKeyPairResponse{KeyName: name, KeyFingerprint: k.Fingerprint, KeyPairID: k.ID}, nil
}

func (b *brokerActions) describeKeyPairs(ctx context.Context, c Caller, p *Params) (any, *Error) {
	u, e := b.who(ctx, c)
	if e != nil {
		return nil, e
	}
	names, e := p.List("KeyName")
	if e != nil {
		return nil, e
	}
	ids, e := p.List("KeyPairId")
	if e != nil {
		return nil, e
	}
	var ks []broker.KeyPair
	tags := map[string]map[string]string{}
	b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
		ks = st.KeyPairs(u.Name)
		for _, k := range ks {
			tags[k.ID] = st.Tags(k.ID)
		}
		return nil
	})
	out := Set[KeyPairInfo]{}
	for _, k := range ks {
		if (len(names) > 0 && !slices.Contains(names, k.Name)) || (len(ids) > 0 && !slices.Contains(ids, k.ID)) {
			continue
		}
		ct := Time(k.Created)
		info := KeyPairInfo{KeyPairID: k.ID, KeyName: k.Name, KeyFingerprint: k.Fingerprint, KeyType: k.Type, PublicKey: k.PublicKey, CreateTime: &ct}
		for _, t := range slices.Sorted(maps.Keys(tags[k.ID])) {
			info.TagSet = append(info.TagSet, Tag{Key: t, Value: tags[k.ID][t]})
		}
		out = append(out, info)
	}
	for _, n := range names {
		if !slices.ContainsFunc(out, func(k KeyPairInfo) bool { return k.KeyName == n }) {
			return nil, InvalidKeyPairNotFound(n)
		}
	}
	return &DescribeKeyPairsResponse{KeySet: out}, nil
}

func (b *brokerActions) deleteKeyPair(ctx context.Context, c Caller, p *Params) (any, *Error) {
	u, e := b.who(ctx, c)
	if e != nil {
		return nil, e
	}
	name := p.String("KeyName")
	if id := p.String("KeyPairId"); name == "" && id != "" {
		b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
			for _, k := range st.KeyPairs(u.Name) {
				if k.ID == id {
					name = k.Name
				}
			}
			return nil
		})
		if name == "" {
			return nil, InvalidKeyPairNotFound(id)
		}
	}
	if name == "" {
		return nil, MissingParameter("KeyName")
	}
	if _, e := b.propose(ctx, u, broker.CmdDelKeyPair, broker.KeyPairRef{User: u.Name, Name: name}); e != nil {
		return nil, e
	}
	return &DeleteKeyPairResponse{Return: true, KeyPairID: keyPairID(u.Name, name)}, nil
}

// owned checks that u may tag every resource: their instances, their
// group's images, their key pairs.
func (b *brokerActions) owned(ctx context.Context, u broker.User, ids []string) *Error {
	var bad *Error
	b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
		for _, id := range ids {
			switch {
			case strings.HasPrefix(id, "i-"):
				r, ok := st.Instance(id)
				l, lok := st.Lease(r.Lease)
				if !ok || !lok || !sees(u, l) {
					bad = InvalidInstanceIDNotFound(id)
					return nil
				}
			case strings.HasPrefix(id, "ami-"):
				ok := false
				for _, im := range st.Images() {
					if broker.ImageID(im.Name) == id && (im.Group == u.Group || u.Role == broker.RoleAdmin) {
						ok = true
					}
				}
				if !ok {
					bad = InvalidAMIIDNotFound(id)
					return nil
				}
			case strings.HasPrefix(id, "key-"):
				if !slices.ContainsFunc(st.KeyPairs(u.Name), func(k broker.KeyPair) bool { return k.ID == id }) {
					bad = InvalidKeyPairNotFound(id)
					return nil
				}
			default:
				bad = InvalidID(id)
				return nil
			}
		}
		return nil
	})
	return bad
}

func (b *brokerActions) changeTags(ctx context.Context, c Caller, p *Params, del bool) *Error {
	u, e := b.who(ctx, c)
	if e != nil {
		return e
	}
	ids, e := p.List("ResourceId")
	if e != nil {
		return e
	}
	if len(ids) == 0 {
		return MissingParameter("ResourceId.1")
	}
	tags, e := p.Tags("Tag")
	if e != nil {
		return e
	}
	if len(tags) == 0 && !del {
		return MissingParameter("Tag.1.Key")
	}
	if e := b.owned(ctx, u, ids); e != nil {
		return e
	}
	tc := broker.TagChange{Resources: ids, Delete: del}
	for _, t := range tags {
		tc.Tags = append(tc.Tags, broker.Tag{Key: t.Key, Value: t.Value})
	}
	_, e = b.propose(ctx, u, broker.CmdTags, tc)
	return e
}

func (b *brokerActions) createTags(ctx context.Context, c Caller, p *Params) (any, *Error) {
	if e := b.changeTags(ctx, c, p, false); e != nil {
		return nil, e
	}
	return &CreateTagsResponse{Return: true}, nil
}

func (b *brokerActions) deleteTags(ctx context.Context, c Caller, p *Params) (any, *Error) {
	if e := b.changeTags(ctx, c, p, true); e != nil {
		return nil, e
	}
	return &DeleteTagsResponse{Return: true}, nil
}

func resourceType(id string) string {
	switch {
	case strings.HasPrefix(id, "i-"):
		return "instance"
	case strings.HasPrefix(id, "ami-"):
		return "image"
	}
	return "key-pair"
}

func (b *brokerActions) describeTags(ctx context.Context, c Caller, p *Params) (any, *Error) {
	u, e := b.who(ctx, c)
	if e != nil {
		return nil, e
	}
	fs, e := p.Filters()
	if e != nil {
		return nil, e
	}
	var out []TagDescription
	var ids []string
	b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
		ids = st.TaggedResources()
		return nil
	})
	for _, id := range ids {
		if b.owned(ctx, u, []string{id}) != nil {
			continue
		}
		var tags map[string]string
		b.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
			tags = st.Tags(id)
			return nil
		})
		for _, k := range slices.Sorted(maps.Keys(tags)) {
			td := TagDescription{ResourceID: id, ResourceType: resourceType(id), Key: k, Value: tags[k]}
			keep := true
			for _, f := range fs {
				var v string
				switch f.Name {
				case "resource-id":
					v = td.ResourceID
				case "resource-type":
					v = td.ResourceType
				case "key":
					v = td.Key
				case "value":
					v = td.Value
				default:
					return nil, InvalidParameterValue("Filter.Name", f.Name, "Unsupported filter; use resource-id, resource-type, key or value.")
				}
				if !MatchAny(f.Values, v) {
					keep = false
				}
			}
			if keep {
				out = append(out, td)
			}
		}
	}
	pg, next, e := page(out, p, func(t TagDescription) string { return t.ResourceID + "\x00" + t.Key })
	if e != nil {
		return nil, e
	}
	return &DescribeTagsResponse{TagSet: Set[TagDescription](pg), NextToken: next}, nil
}
