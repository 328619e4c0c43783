// Package ec2 is a sites.Site on an EC2-compatible endpoint through
// aws-sdk-go-v2: Amazon EC2 itself, or a partner cloud that speaks EC2
// (another fairlease, OpenStack's ec2-api, Eucalyptus).
//
// A launch tries candidates in order: the instance types that fit the
// shape, smallest first, each in every configured zone. A capacity error
// puts the (type, zone) in a cooldown and moves on to the next candidate;
// the SDK is told not to retry capacity errors itself (by default it
// retries InsufficientInstanceCapacity, an HTTP 500, three times), because
// asking the same full zone again only delays the failover and adds load.
// Throttling, 5xx and connection errors are retried by the SDK with
// backoff and bounded attempts, with the same request and so the same
// ClientToken.
//
// Idempotency. EC2 ties a ClientToken to the parameters of its request, so
// each candidate needs its own token: candidate 0 uses Spec.Token as is,
// candidate n uses Spec.Token+"-n" (or, if that is longer than 64 bytes, a
// hash of it). n is the candidate's place in the full, deterministic
// candidate list, not the count of attempts, so a retried Launch sends each
// candidate the token it got before. Before trying any candidate, Launch
// looks for instances launched with any of the lease's tokens
// (DescribeInstances, filter client-token): a cluster that started on
// candidate 2 while its reply was lost is found and returned, even if
// candidate 0 has room again by the time the caller retries. The list of
// candidates depends on the configured (or learned) instance types and
// zones: changing them between a launch and its retry can change the
// tokens, and so the protection holds for retries under one configuration.
package ec2

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/sites"
)

// InstanceType is one size the site offers.
type InstanceType struct {
	Name      string
	Cores     int // vCPUs
	MemoryMiB int64
}

// Config sets up a Site. Zero fields take DefaultConfig's values.
type Config struct {
	// Name is the site's name in policies and messages.
	Name string
	// Endpoint is the EC2 endpoint URL; empty means AWS's own for Region.
	Endpoint string
	// Region signs the requests (and picks AWS's endpoint).
	Region string
	// AccessKeyID and SecretAccessKey are the site's static credentials.
	AccessKeyID     string
	SecretAccessKey string
	// InstanceTypes are the sizes to choose from. Empty: learned from the
	// site with DescribeInstanceTypes on first use, and cached.
	InstanceTypes []InstanceType
	// MaxTypes is how many fitting types, smallest first, a launch tries
	// before it gives up for capacity; larger ones cost more for nothing.
	MaxTypes int
	// Zones are tried in order for each type; empty lets the site choose.
	Zones []string
	// Cooldown is how long a (type, zone) that reported no capacity is
	// skipped by later launches.
	Cooldown time.Duration
	// CostPerCoreHour is what Info reports, for ranking.
	CostPerCoreHour float64
	// MaxAttempts bounds the SDK's attempts per call on throttling, 5xx
	// and connection errors (1 means no retries).
	MaxAttempts int
	// BaseBackoff and MaxBackoff shape the full-jitter exponential backoff
	// between attempts: attempt n waits up to min(MaxBackoff, BaseBackoff·2ⁿ).
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// HTTPClient sends the requests; nil is the SDK's default.
	HTTPClient *http.Client
	// Now is the clock cooldowns and latency are measured by; nil is
	// time.Now.
	Now func() time.Time
}

// DefaultConfig returns the defaults New fills zero fields with.
func DefaultConfig() Config {
	return Config{
		Region:      "us-east-1",
		MaxTypes:    3,
		Cooldown:    5 * time.Minute,
		MaxAttempts: 5,
		BaseBackoff: 500 * time.Millisecond,
		MaxBackoff:  20 * time.Second,
		Now:         time.Now,
	}
}

// withDefaults fills c's zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Region = cmp.Or(c.Region, d.Region)
	c.MaxTypes = cmp.Or(c.MaxTypes, d.MaxTypes)
	c.Cooldown = cmp.Or(c.Cooldown, d.Cooldown)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, d.MaxAttempts)
	c.BaseBackoff = cmp.Or(c.BaseBackoff, d.BaseBackoff)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, d.MaxBackoff)
	if c.Now == nil {
		c.Now = d.Now
	}
	return c
}

// Validate checks the configuration and names the field at fault.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("ec2 site: name is required")
	case c.AccessKeyID == "" || c.SecretAccessKey == "":
		return fmt.Errorf("ec2 site %s: access_key_id and secret_access_key are required", c.Name)
	case c.MaxTypes < 0, c.MaxAttempts < 0, c.Cooldown < 0, c.BaseBackoff < 0, c.MaxBackoff < 0:
		return fmt.Errorf("ec2 site %s: max_types, max_attempts, cooldown and backoffs must not be negative", c.Name)
	}
	for i, t := range c.InstanceTypes {
		if t.Name == "" || t.Cores < 1 || t.MemoryMiB < 0 {
			return fmt.Errorf("ec2 site %s: instance_types[%d] %q needs a name, at least 1 core and no negative memory", c.Name, i, t.Name)
		}
	}
	for i, z := range c.Zones {
		if z == "" {
			return fmt.Errorf("ec2 site %s: zones[%d] is empty", c.Name, i)
		}
	}
	return nil
}

// Site is a sites.Site on one EC2 endpoint and account.
type Site struct {
	cfg    Config
	client *awsec2.Client

	mu       sync.Mutex
	types    []InstanceType          // configured or learned; nil until learned
	cooldown map[placement]time.Time // until when a (type, zone) is skipped
	latency  time.Duration           // moving average of call durations
}

// placement is where a launch is tried: a type in a zone ("" is any).
type placement struct{ typ, zone string }

var _ sites.Site = (*Site)(nil)

// New returns a site for c; it makes no requests.
func New(c Config) (*Site, error) {
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	creds := aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, Source: "fairlease site " + c.Name}
	opts := awsec2.Options{
		Region: c.Region,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}),
		Retryer: newRetryer(c),
	}
	if c.Endpoint != "" {
		opts.BaseEndpoint = aws.String(c.Endpoint)
	}
	if c.HTTPClient != nil {
		opts.HTTPClient = c.HTTPClient
	}
	s := &Site{
		cfg:      c,
		client:   awsec2.New(opts),
		cooldown: map[placement]time.Time{},
	}
	if len(c.InstanceTypes) > 0 {
		s.types = slices.Clone(c.InstanceTypes)
	}
	return s, nil
}

// newRetryer backs off throttling, 5xx and connection errors, but never
// retries an answer that another attempt would only repeat: no capacity
// (failed over instead), quota, auth, a bad request.
func newRetryer(c Config) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = c.MaxAttempts
		o.MaxBackoff = c.MaxBackoff
		o.Backoff = retry.BackoffDelayerFunc(func(attempt int, _ error) (time.Duration, error) {
			return backoff(c.BaseBackoff, c.MaxBackoff, attempt, rand.Float64()), nil
		})
		final := retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if k := classifyCode(apiCode(err)); k != nil && k != sites.ErrUnavailable {
				return aws.FalseTernary
			}
			return aws.UnknownTernary
		})
		// First, so that it wins over the default "HTTP 500 is retryable".
		o.Retryables = append([]retry.IsErrorRetryable{final}, o.Retryables...)
	})
}

// backoff is full jitter: a random wait up to min(max, base·2^attempt),
// where r in [0,1) is the random draw.
func backoff(base, max time.Duration, attempt int, r float64) time.Duration {
	ceil := max
	if attempt < 30 && base<<attempt < max && base<<attempt > 0 {
		ceil = base << attempt
	}
	return time.Duration(r * float64(ceil))
}

// Name implements sites.Site.
func (s *Site) Name() string { return s.cfg.Name }

// Info implements sites.Site.
func (s *Site) Info() sites.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sites.Info{CostPerCoreHour: s.cfg.CostPerCoreHour, Latency: s.latency}
}

// measure records how long a call that started at start took.
func (s *Site) measure(start time.Time) {
	d := s.cfg.Now().Sub(start)
	if d <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latency == 0 {
		s.latency = d
	} else {
		s.latency = (7*s.latency + d) / 8 // moving average: one slow call does not reorder sites
	}
}

func (s *Site) fail(op string, kind error, err error) error {
	return &sites.Error{Site: s.cfg.Name, Op: op, Kind: kind, Err: err}
}

// candidate is one (type, zone) a launch may try, and its token.
type candidate struct {
	typ   InstanceType
	zone  string
	token string
}

// candidates lists, for shape, the types that fit (smallest first, at most
// MaxTypes) in every zone, with each one's token.
func (s *Site) candidates(all []InstanceType, shape lease.Shape, token string) []candidate {
	var fit []InstanceType
	for _, t := range all {
		if t.Cores >= shape.Cores && t.MemoryMiB >= shape.MemoryMiB {
			fit = append(fit, t)
		}
	}
	// Stable, so that configured order breaks ties between equal sizes.
	slices.SortStableFunc(fit, func(a, b InstanceType) int {
		return cmp.Or(cmp.Compare(a.Cores, b.Cores), cmp.Compare(a.MemoryMiB, b.MemoryMiB))
	})
	if len(fit) > s.cfg.MaxTypes {
		fit = fit[:s.cfg.MaxTypes]
	}
	zones := s.cfg.Zones
	if len(zones) == 0 {
		zones = []string{""}
	}
	var cs []candidate
	for _, t := range fit {
		for _, z := range zones {
			cs = append(cs, candidate{typ: t, zone: z, token: CandidateToken(token, len(cs))})
		}
	}
	return cs
}

// CandidateToken is the ClientToken of the n-th candidate of a launch with
// token: the token itself for the first, token-n for the others, a hash
// when that would pass EC2's 64 bytes.
func CandidateToken(token string, n int) string {
	if n == 0 {
		return token
	}
	t := fmt.Sprintf("%s-%d", token, n)
	if len(t) > sites.MaxTokenLen {
		h := sha256.Sum256([]byte(t))
		t = hex.EncodeToString(h[:])
	}
	return t
}

// Launch implements sites.Site.
func (s *Site) Launch(ctx context.Context, spec sites.Spec) ([]sites.Instance, error) {
	if err := spec.Validate(); err != nil {
		return nil, s.fail("launch", sites.ErrInvalid, err)
	}
	if spec.Count > math.MaxInt32 {
		return nil, s.fail("launch", sites.ErrInvalid, fmt.Errorf("lease %s: count %d is more than EC2 can launch at once", spec.Lease, spec.Count))
	}
	all, err := s.instanceTypes(ctx)
	if err != nil {
		return nil, err
	}
	cands := s.candidates(all, spec.Shape, spec.Token)
	if len(cands) == 0 {
		return nil, s.fail("launch", sites.ErrInvalid, fmt.Errorf("lease %s: no instance type of the site fits %d cores and %d MiB; use a smaller shape or another site",
			spec.Lease, spec.Shape.Cores, spec.Shape.MemoryMiB))
	}
	tokens := make([]string, len(cands))
	for i, c := range cands {
		tokens[i] = c.token
	}
	raw, err := s.describe(ctx, "launch", []types.Filter{{Name: aws.String("client-token"), Values: tokens}})
	if err != nil {
		return nil, err
	}
	var found []sites.Instance
	for _, i := range raw {
		// Checked here too: a server that ignores the filter must not
		// pass its other instances off as this cluster.
		if slices.Contains(tokens, aws.ToString(i.ClientToken)) {
			found = append(found, instance(i))
		}
	}
	if len(found) > 0 {
		return s.launched(spec, found)
	}
	var tried, cooling int
	var last error
	for _, c := range cands {
		p := placement{c.typ.Name, c.zone}
		if s.cooling(p) {
			cooling++
			continue
		}
		tried++
		ins, err := s.run(ctx, spec, c)
		if err == nil {
			return ins, nil
		}
		if !errors.Is(err, sites.ErrCapacity) {
			return nil, err
		}
		s.coolDown(p)
		last = err
	}
	msg := fmt.Sprintf("no room for %d × %s: tried %d type/zone candidates, skipped %d cooling down",
		spec.Count, shapeString(spec.Shape), tried, cooling)
	if last != nil {
		var se *sites.Error
		if errors.As(last, &se) {
			last = se.Err // the EC2 error (it names the lease), without repeating the site
		}
		return nil, s.fail("launch", sites.ErrCapacity, fmt.Errorf("%s; last: %w", msg, last))
	}
	return nil, s.fail("launch", sites.ErrCapacity, fmt.Errorf("lease %s: %s", spec.Lease, msg))
}

func shapeString(sh lease.Shape) string {
	return fmt.Sprintf("%d cores/%d MiB of %s", sh.Cores, sh.MemoryMiB, sh.Image)
}

// launched checks that instances found by token are the cluster spec asks
// for; EC2 would answer IdempotentParameterMismatch otherwise.
func (s *Site) launched(spec sites.Spec, found []sites.Instance) ([]sites.Instance, error) {
	ok := len(found) == spec.Count
	for _, in := range found {
		for k, v := range spec.Tags {
			if in.Tags[k] != v {
				ok = false
			}
		}
	}
	if !ok {
		return nil, s.fail("launch", sites.ErrInvalid, fmt.Errorf(
			"lease %s: token %s already launched %d instances with other parameters (IdempotentParameterMismatch); use a new token for a new request",
			spec.Lease, spec.Token, len(found)))
	}
	return found, nil
}

func (s *Site) cooling(p placement) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.cooldown[p]
	if ok && !s.cfg.Now().Before(until) {
		delete(s.cooldown, p)
		return false
	}
	return ok
}

func (s *Site) coolDown(p placement) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cooldown[p] = s.cfg.Now().Add(s.cfg.Cooldown)
}

// run launches spec on one candidate.
func (s *Site) run(ctx context.Context, spec sites.Spec, c candidate) ([]sites.Instance, error) {
	in := &awsec2.RunInstancesInput{
		ImageId:      aws.String(spec.Shape.Image),
		InstanceType: types.InstanceType(c.typ.Name),
		MinCount:     aws.Int32(int32(spec.Count)),
		MaxCount:     aws.Int32(int32(spec.Count)), // all or nothing
		ClientToken:  aws.String(c.token),
	}
	if len(spec.UserData) > 0 {
		in.UserData = aws.String(base64.StdEncoding.EncodeToString(spec.UserData))
	}
	if c.zone != "" {
		in.Placement = &types.Placement{AvailabilityZone: aws.String(c.zone)}
	}
	if len(spec.Tags) > 0 {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: ec2Tags(spec.Tags)}}
	}
	start := s.cfg.Now()
	out, err := s.client.RunInstances(ctx, in)
	s.measure(start)
	if err != nil {
		where := c.typ.Name
		if c.zone != "" {
			where += " in " + c.zone
		}
		return nil, s.classify("launch", fmt.Errorf("lease %s: RunInstances %d × %s (token %s): %w", spec.Lease, spec.Count, where, c.token, err))
	}
	ins := make([]sites.Instance, 0, len(out.Instances))
	for _, i := range out.Instances {
		si := instance(i)
		if len(si.Tags) == 0 {
			si.Tags = maps.Clone(spec.Tags) // some servers echo no tags in RunInstances
		}
		ins = append(ins, si)
	}
	if len(ins) != spec.Count {
		// MinCount=MaxCount makes this EC2's bug, not ours, but a partial
		// cluster must not pass for a whole one.
		return ins, s.fail("launch", sites.ErrUnavailable, fmt.Errorf("lease %s: RunInstances returned %d instances, want %d", spec.Lease, len(ins), spec.Count))
	}
	return ins, nil
}

func ec2Tags(tags map[string]string) []types.Tag {
	out := make([]types.Tag, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	return out
}

func instance(i types.Instance) sites.Instance {
	si := sites.Instance{
		ID:             aws.ToString(i.InstanceId),
		Type:           string(i.InstanceType),
		PrivateAddress: aws.ToString(i.PrivateIpAddress),
		PublicAddress:  aws.ToString(i.PublicIpAddress),
		Launched:       aws.ToTime(i.LaunchTime),
	}
	if i.State != nil {
		si.State = string(i.State.Name)
	}
	if i.Placement != nil {
		si.Zone = aws.ToString(i.Placement.AvailabilityZone)
	}
	if len(i.Tags) > 0 {
		si.Tags = make(map[string]string, len(i.Tags))
		for _, t := range i.Tags {
			si.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return si
}

// Instances implements sites.Site.
func (s *Site) Instances(ctx context.Context, tags map[string]string) ([]sites.Instance, error) {
	if len(tags) == 0 {
		return nil, s.fail("instances", sites.ErrInvalid, errors.New("listing needs at least one tag, so that it finds only our own instances"))
	}
	var fs []types.Filter
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		fs = append(fs, types.Filter{Name: aws.String("tag:" + k), Values: []string{tags[k]}})
	}
	raw, err := s.describe(ctx, "instances", fs)
	if err != nil {
		return nil, err
	}
	out := make([]sites.Instance, 0, len(raw))
	for _, i := range raw {
		if in := instance(i); hasTags(in.Tags, tags) { // a server that ignores a filter must not widen the list
			out = append(out, in)
		}
	}
	return out, nil
}

func hasTags(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// describe lists the instances matching every filter, all pages.
func (s *Site) describe(ctx context.Context, op string, fs []types.Filter) ([]types.Instance, error) {
	var out []types.Instance
	p := awsec2.NewDescribeInstancesPaginator(s.client, &awsec2.DescribeInstancesInput{Filters: fs})
	for p.HasMorePages() {
		start := s.cfg.Now()
		page, err := p.NextPage(ctx)
		s.measure(start)
		if err != nil {
			return nil, s.classify(op, fmt.Errorf("DescribeInstances: %w", err))
		}
		for _, r := range page.Reservations {
			out = append(out, r.Instances...)
		}
	}
	return out, nil
}

// terminateBatch is how many ids one TerminateInstances call carries; EC2
// takes up to 1000.
const terminateBatch = 1000

// Terminate implements sites.Site.
func (s *Site) Terminate(ctx context.Context, ids []string) error {
	for b := range slices.Chunk(slices.Compact(slices.Sorted(slices.Values(ids))), terminateBatch) {
		if err := s.terminate(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func (s *Site) terminate(ctx context.Context, ids []string) error {
	start := s.cfg.Now()
	_, err := s.client.TerminateInstances(ctx, &awsec2.TerminateInstancesInput{InstanceIds: ids})
	s.measure(start)
	if err == nil {
		return nil
	}
	if apiCode(err) == "InvalidInstanceID.NotFound" {
		if len(ids) == 1 {
			return nil // already gone: the goal is reached
		}
		// One unknown id fails the whole call; end the others one by one
		// rather than parse the ids out of the message.
		for _, id := range ids {
			if err := s.terminate(ctx, []string{id}); err != nil {
				return err
			}
		}
		return nil
	}
	return s.classify("terminate", fmt.Errorf("TerminateInstances %s: %w", strings.Join(ids, ","), err))
}

// instanceTypes returns the configured types, or learns them once.
func (s *Site) instanceTypes(ctx context.Context) ([]InstanceType, error) {
	s.mu.Lock()
	ts := s.types
	s.mu.Unlock()
	if ts != nil {
		return ts, nil
	}
	var learned []InstanceType
	p := awsec2.NewDescribeInstanceTypesPaginator(s.client, &awsec2.DescribeInstanceTypesInput{})
	for p.HasMorePages() {
		start := s.cfg.Now()
		page, err := p.NextPage(ctx)
		s.measure(start)
		if err != nil {
			return nil, s.classify("launch", fmt.Errorf("DescribeInstanceTypes: %w", err))
		}
		for _, t := range page.InstanceTypes {
			it := InstanceType{Name: string(t.InstanceType)}
			if t.VCpuInfo != nil {
				it.Cores = int(aws.ToInt32(t.VCpuInfo.DefaultVCpus))
			}
			if t.MemoryInfo != nil {
				it.MemoryMiB = aws.ToInt64(t.MemoryInfo.SizeInMiB)
			}
			if it.Name != "" && it.Cores > 0 {
				learned = append(learned, it)
			}
		}
	}
	// By name, so that equal sizes keep one order whatever the pages said.
	sort.Slice(learned, func(i, j int) bool { return learned[i].Name < learned[j].Name })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.types == nil {
		s.types = learned
	}
	return s.types, nil
}

// apiCode returns the EC2 error code in err, or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// classifyCode maps an EC2 error code to a sites error, or nil when the
// code alone does not say.
func classifyCode(code string) error {
	switch code {
	case "":
		return nil
	case "InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity",
		"InsufficientReservedInstanceCapacity", "Unsupported":
		return sites.ErrCapacity
	case "InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded":
		return sites.ErrQuota
	case "AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch",
		"OptInRequired", "Blocked":
		return sites.ErrAuth
	case "IdempotentParameterMismatch", "InvalidParameterValue", "InvalidParameterCombination",
		"InvalidParameter", "MissingParameter", "InvalidInstanceID.Malformed", "UnknownParameter",
		"InvalidAction", "InvalidUserData.Malformed", "InvalidInstanceType":
		return sites.ErrInvalid
	case "RequestLimitExceeded", "Throttling", "InternalError", "InternalFailure",
		"ServiceUnavailable", "Unavailable", "RequestTimeout":
		return sites.ErrUnavailable
	}
	if strings.HasPrefix(code, "InvalidAMIID.") {
		return sites.ErrInvalid
	}
	return nil
}

// classify wraps err as a sites.Error of the right kind. What the code does
// not say, the transport does: no answer (or a 5xx) leaves the outcome
// unknown, so it is retryable; any other 4xx is our request's fault.
func (s *Site) classify(op string, err error) error {
	kind := classifyCode(apiCode(err))
	if kind == nil {
		var re interface{ HTTPStatusCode() int }
		status := 0
		if errors.As(err, &re) {
			status = re.HTTPStatusCode()
		}
		switch {
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			kind = sites.ErrAuth
		case status >= 400 && status < 500:
			kind = sites.ErrInvalid
		default:
			kind = sites.ErrUnavailable
		}
	}
	return s.fail(op, kind, err)
}
