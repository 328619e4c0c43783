package ec2api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"time"
)

// Caller is the verified sender of a request.
type Caller struct {
	User        string // the fairlease user the access key belongs to
	AccessKeyID string
	Region      string // the region the request was signed for
}

// Action handles one Query API action. It returns a response (a pointer to
// a struct that embeds Meta, such as *DescribeRegionsResponse) or an EC2
// error. It must not return both nil.
type Action func(ctx context.Context, caller Caller, p *Params) (any, *Error)

// KeyLookup returns the user and secret of an access key ID.
type KeyLookup func(accessKeyID string) (user, secret string, ok bool)

// Zone is an availability zone of the configured region.
type Zone struct {
	Name string // e.g. "fairlease-1a"
	ID   string // defaults to Name
}

// Config configures a Server.
type Config struct {
	Keys KeyLookup
	// Now is the server's clock, for the signature time window.
	Now func() time.Time
	// Actions are added to the built-in ones (DescribeRegions,
	// DescribeAvailabilityZones) and replace them on a name clash.
	Actions map[string]Action
	// Region is the one region this endpoint serves; Endpoint is its host
	// name as DescribeRegions reports it.
	Region   string
	Endpoint string
	Zones    []Zone
	Logger   *slog.Logger
	// NewRequestID makes request IDs; random UUIDs when nil.
	NewRequestID func() string
}

// DefaultConfig is a config with one region and one zone and the real
// clock; the caller supplies Keys.
func DefaultConfig() Config {
	return Config{
		Now:    time.Now,
		Region: "fairlease",
		Zones:  []Zone{{Name: "fairlease-a"}},
	}
}

// Server is an http.Handler for the EC2 Query API.
type Server struct {
	cfg     Config
	actions map[string]Action
	log     *slog.Logger
}

// New makes a Server. Register more actions with Handle before serving.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, actions: map[string]Action{}, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.cfg.Now == nil {
		s.cfg.Now = time.Now
	}
	if s.cfg.NewRequestID == nil {
		s.cfg.NewRequestID = newRequestID
	}
	if s.cfg.Keys == nil {
		s.cfg.Keys = func(string) (string, string, bool) { return "", "", false }
	}
	s.actions["DescribeRegions"] = s.describeRegions
	s.actions["DescribeAvailabilityZones"] = s.describeAvailabilityZones
	for name, a := range cfg.Actions {
		s.actions[name] = a
	}
	return s
}

// Handle registers an action. It is not safe to call while serving.
func (s *Server) Handle(name string, a Action) { s.actions[name] = a }

type responseWithID interface{ SetRequestID(string) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Now()
	reqID := s.cfg.NewRequestID()
	var (
		caller Caller
		action string
	)
	logDone := func(status int, code string) {
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "ec2api request",
			"request_id", reqID, "action", action, "user", caller.User,
			"status", status, "code", code, "duration", s.cfg.Now().Sub(start))
	}
	fail := func(e *Error) {
		WriteError(w, e, reqID)
		logDone(e.Status, e.Code)
	}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("ec2api panic", "request_id", reqID, "action", action, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			fail(InternalError())
		}
	}()

	body, e := readBody(w, r)
	if e != nil {
		fail(e)
		return
	}
	var user string
	cred, e := Verify(r, body, s.cfg.Now(), func(akid string) (string, bool) {
		u, secret, ok := s.cfg.Keys(akid)
		user = u
		return secret, ok
	})
	if e != nil {
		fail(e)
		return
	}
	caller = Caller{User: user, AccessKeyID: cred.AccessKeyID, Region: cred.Region}
	p, e := ParseParams(r, body)
	if e != nil {
		fail(e)
		return
	}
	action = p.Action()
	if action == "" {
		fail(MissingParameter("Action"))
		return
	}
	a, ok := s.actions[action]
	if !ok {
		fail(InvalidAction(action))
		return
	}
	resp, e := a(r.Context(), caller, p)
	if e != nil {
		fail(e)
		return
	}
	if resp == nil {
		panic("ec2api: action " + action + " returned neither a response nor an error")
	}
	if rid, ok := resp.(responseWithID); ok {
		rid.SetRequestID(reqID)
	} else {
		s.log.Warn("ec2api response has no request ID", "action", action, "type", fmt.Sprintf("%T", resp))
	}
	out, err := marshalResponse(resp)
	if err != nil {
		panic(fmt.Errorf("ec2api: marshal %s response: %w", action, err))
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(out)))
	w.WriteHeader(http.StatusOK)
	w.Write(out)
	logDone(http.StatusOK, "")
}

// readBody reads at most MaxBodyBytes; more is a client error.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *Error) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return nil, InvalidParameterValue("(HTTP method)", r.Method, "Use POST or GET.")
	}
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, InvalidParameterValue("(request body)", fmt.Sprintf("more than %d bytes", MaxBodyBytes), "The request is too large.")
	case err != nil:
		return nil, InvalidParameterValue("(request body)", "unreadable", "The request body could not be read: "+err.Error())
	}
	return body, nil
}

func marshalResponse(v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	if err := xml.NewEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// The built-in actions: this endpoint is one region with a fixed list of
// zones.

func (s *Server) describeRegions(ctx context.Context, _ Caller, p *Params) (any, *Error) {
	names, e := p.List("RegionName")
	if e != nil {
		return nil, e
	}
	filters, e := p.Filters()
	if e != nil {
		return nil, e
	}
	if _, e := p.Bool("AllRegions", false); e != nil {
		return nil, e
	}
	if dry, e := p.DryRun(); e != nil {
		return nil, e
	} else if dry {
		return nil, DryRunOperation()
	}
	for _, n := range names {
		if n != s.cfg.Region {
			return nil, InvalidParameterValue("RegionName", n, "Invalid region name; this endpoint serves "+s.cfg.Region+".")
		}
	}
	region := RegionInfo{RegionName: s.cfg.Region, RegionEndpoint: s.cfg.Endpoint, OptInStatus: "opt-in-not-required"}
	match, e := matchFilters(filters, map[string]string{
		"region-name":   region.RegionName,
		"endpoint":      region.RegionEndpoint,
		"opt-in-status": region.OptInStatus,
	})
	if e != nil {
		return nil, e
	}
	resp := &DescribeRegionsResponse{RegionInfo: Set[RegionInfo]{}}
	if match {
		resp.RegionInfo = append(resp.RegionInfo, region)
	}
	return resp, nil
}

func (s *Server) describeAvailabilityZones(ctx context.Context, _ Caller, p *Params) (any, *Error) {
	names, e := p.List("ZoneName")
	if e != nil {
		return nil, e
	}
	ids, e := p.List("ZoneId")
	if e != nil {
		return nil, e
	}
	filters, e := p.Filters()
	if e != nil {
		return nil, e
	}
	if _, e := p.Bool("AllAvailabilityZones", false); e != nil {
		return nil, e
	}
	if dry, e := p.DryRun(); e != nil {
		return nil, e
	} else if dry {
		return nil, DryRunOperation()
	}
	zones := make([]AvailabilityZoneInfo, 0, len(s.cfg.Zones))
	for _, z := range s.cfg.Zones {
		id := z.ID
		if id == "" {
			id = z.Name
		}
		zones = append(zones, AvailabilityZoneInfo{
			ZoneName: z.Name, ZoneState: "available", RegionName: s.cfg.Region, ZoneID: id,
			ZoneType: "availability-zone", OptInStatus: "opt-in-not-required",
			GroupName: s.cfg.Region, NetworkBorderGroup: s.cfg.Region,
		})
	}
	// Named zones must exist, as in EC2.
	for _, n := range names {
		if !slices.ContainsFunc(zones, func(z AvailabilityZoneInfo) bool { return z.ZoneName == n }) {
			return nil, InvalidParameterValue("ZoneName", n, "The zone does not exist in region "+s.cfg.Region+".")
		}
	}
	for _, n := range ids {
		if !slices.ContainsFunc(zones, func(z AvailabilityZoneInfo) bool { return z.ZoneID == n }) {
			return nil, InvalidParameterValue("ZoneId", n, "The zone ID does not exist in region "+s.cfg.Region+".")
		}
	}
	resp := &DescribeAvailabilityZonesResponse{AvailabilityZoneInfo: Set[AvailabilityZoneInfo]{}}
	for _, z := range zones {
		if len(names)+len(ids) > 0 && !slices.Contains(names, z.ZoneName) && !slices.Contains(ids, z.ZoneID) {
			continue
		}
		match, e := matchFilters(filters, map[string]string{
			"zone-name":            z.ZoneName,
			"zone-id":              z.ZoneID,
			"region-name":          z.RegionName,
			"state":                z.ZoneState,
			"zone-type":            z.ZoneType,
			"group-name":           z.GroupName,
			"network-border-group": z.NetworkBorderGroup,
			"opt-in-status":        z.OptInStatus,
		})
		if e != nil {
			return nil, e
		}
		if match {
			resp.AvailabilityZoneInfo = append(resp.AvailabilityZoneInfo, z)
		}
	}
	return resp, nil
}

// matchFilters reports whether an item with the given filterable fields
// passes every filter (filters AND, values OR). An unknown filter name is
// an error, as in EC2.
func matchFilters(filters []Filter, fields map[string]string) (bool, *Error) {
	ok := true
	for _, f := range filters {
		v, known := fields[f.Name]
		if !known {
			return false, InvalidParameterValue("Filter.Name", f.Name, "The filter is invalid.")
		}
		if !MatchAny(f.Values, v) {
			ok = false
		}
	}
	return ok, nil
}

// MatchAny reports whether s matches one of the EC2 filter patterns ('*'
// any run of bytes, '?' any one byte). No patterns matches nothing.
func MatchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if Wildcard(p, s) {
			return true
		}
	}
	return false
}

// Wildcard matches s against an EC2 filter pattern. It backtracks only to
// the last '*', so the cost is at most len(pattern)·len(s), never
// exponential, whatever pattern a client sends.
func Wildcard(pattern, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(pattern) && (pattern[pi] == '?' || pattern[pi] == s[si]):
			pi++
			si++
		case pi < len(pattern) && pattern[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}
