package ec2

import (
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEC2 speaks the few EC2 Query API calls the site makes, with EC2's
// idempotency rules, and records every request. Faults are injected per
// action.
type fakeEC2 struct {
	mu        sync.Mutex
	seq       int
	tokens    map[string]*fakeReservation
	instances map[string]*fakeInstance
	order     []string
	full      map[string]bool // "type/zone" without room; zone "*" is every zone
	allFull   bool
	page      int  // page size for Describe*; 0 is everything at once
	noFilters bool // DescribeInstances ignores filters, as some partner servers may
	types     []InstanceType
	faults    map[string][]fault // by action, consumed in order
	requests  []url.Values
}

type fakeReservation struct {
	id     string
	params string // the request's parameters: EC2 ties a token to them
	ids    []string
}

type fakeInstance struct {
	id, typ, zone, state, token, image string
	tags                               map[string]string
}

// fault answers one request with an error, or (lose) acts on it and then
// drops the connection instead of answering; the zero fault lets the
// request through.
type fault struct {
	status int
	code   string
	lose   bool
}

func newFakeEC2(t *testing.T) (*fakeEC2, *httptest.Server) {
	f := &fakeEC2{
		tokens:    map[string]*fakeReservation{},
		instances: map[string]*fakeInstance{},
		full:      map[string]bool{},
		faults:    map[string][]fault{},
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeEC2) inject(action string, fs ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[action] = append(f.faults[action], fs...)
}

func (f *fakeEC2) setFull(keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.full)
	for _, k := range keys {
		f.full[k] = true
	}
}

// calls returns the requests of one action, in order.
func (f *fakeEC2) calls(action string) []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []url.Values
	for _, r := range f.requests {
		if r.Get("Action") == action {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeEC2) live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, in := range f.instances {
		if in.state == "running" {
			n++
		}
	}
	return n
}

func (f *fakeEC2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, 400, "MalformedQueryString", err.Error())
		return
	}
	if !strings.Contains(r.Header.Get("Authorization"), "Credential=AKIDTEST/") {
		writeError(w, 401, "AuthFailure", "AWS was not able to validate the provided access credentials")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	form := r.PostForm
	f.requests = append(f.requests, form)
	action := form.Get("Action")
	var lose bool
	if q := f.faults[action]; len(q) > 0 {
		f.faults[action] = q[1:]
		switch {
		case q[0].lose:
			lose = true
		case q[0].code != "":
			writeError(w, q[0].status, q[0].code, "injected")
			return
		}
	}
	var reply any
	var status int
	var code, msg string
	switch action {
	case "RunInstances":
		reply, status, code, msg = f.runInstances(form)
	case "DescribeInstances":
		reply, status, code, msg = f.describeInstances(form)
	case "TerminateInstances":
		reply, status, code, msg = f.terminateInstances(form)
	case "DescribeInstanceTypes":
		reply, status, code, msg = f.describeInstanceTypes(form)
	default:
		status, code, msg = 400, "InvalidAction", action
	}
	if lose {
		// The request took effect; the reply never arrives.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	if code != "" {
		writeError(w, status, code, msg)
		return
	}
	b, err := xml.Marshal(reply)
	if err != nil {
		writeError(w, 500, "InternalError", err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Write(append([]byte(xml.Header), b...))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	var b strings.Builder
	xml.EscapeText(&b, []byte(msg))
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>req-1</RequestID></Response>`, code, b.String())
}

type xTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type xState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xInstance struct {
	InstanceID  string `xml:"instanceId"`
	ImageID     string `xml:"imageId"`
	State       xState `xml:"instanceState"`
	PrivateIP   string `xml:"privateIpAddress"`
	Type        string `xml:"instanceType"`
	LaunchTime  string `xml:"launchTime"`
	Zone        string `xml:"placement>availabilityZone"`
	ClientToken string `xml:"clientToken"`
	Tags        []xTag `xml:"tagSet>item"`
}

type xReservation struct {
	ReservationID string      `xml:"reservationId"`
	OwnerID       string      `xml:"ownerId"`
	Instances     []xInstance `xml:"instancesSet>item"`
}

type xRunInstances struct {
	XMLName   xml.Name `xml:"RunInstancesResponse"`
	RequestID string   `xml:"requestId"`
	xReservation
}

type xDescribeInstances struct {
	XMLName      xml.Name       `xml:"DescribeInstancesResponse"`
	RequestID    string         `xml:"requestId"`
	Reservations []xReservation `xml:"reservationSet>item"`
	NextToken    string         `xml:"nextToken,omitempty"`
}

type xStateChange struct {
	InstanceID    string `xml:"instanceId"`
	CurrentState  xState `xml:"currentState"`
	PreviousState xState `xml:"previousState"`
}

type xTerminateInstances struct {
	XMLName   xml.Name       `xml:"TerminateInstancesResponse"`
	RequestID string         `xml:"requestId"`
	Instances []xStateChange `xml:"instancesSet>item"`
}

type xInstanceType struct {
	InstanceType string `xml:"instanceType"`
	VCPUs        int    `xml:"vCpuInfo>defaultVCpus"`
	MemoryMiB    int64  `xml:"memoryInfo>sizeInMiB"`
}

type xDescribeInstanceTypes struct {
	XMLName   xml.Name        `xml:"DescribeInstanceTypesResponse"`
	RequestID string          `xml:"requestId"`
	Types     []xInstanceType `xml:"instanceTypeSet>item"`
	NextToken string          `xml:"nextToken,omitempty"`
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}

func (f *fakeEC2) xinstance(in *fakeInstance) xInstance {
	x := xInstance{
		InstanceID: in.id, ImageID: in.image, Type: in.typ, Zone: in.zone, ClientToken: in.token,
		State:      xState{stateCodes[in.state], in.state},
		PrivateIP:  "10.0.0." + strings.TrimLeft(in.id[len(in.id)-3:], "0"),
		LaunchTime: "2025-03-01T14:00:00.000Z",
	}
	for _, k := range slices.Sorted(maps.Keys(in.tags)) {
		x.Tags = append(x.Tags, xTag{k, in.tags[k]})
	}
	return x
}

// indexed returns the values of prefix.1, prefix.2, … until one is missing.
func indexed(form url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[prefix+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

func (f *fakeEC2) runInstances(form url.Values) (any, int, string, string) {
	token := form.Get("ClientToken")
	params := url.Values{}
	for k, v := range form {
		if k != "ClientToken" {
			params[k] = v
		}
	}
	if r, ok := f.tokens[token]; ok && token != "" {
		if r.params != params.Encode() {
			return nil, 400, "IdempotentParameterMismatch", "token " + token + " was used with other parameters"
		}
		return f.reservation(r), 0, "", ""
	}
	minCount, _ := strconv.Atoi(form.Get("MinCount"))
	maxCount, _ := strconv.Atoi(form.Get("MaxCount"))
	typ, zone, image := form.Get("InstanceType"), form.Get("Placement.AvailabilityZone"), form.Get("ImageId")
	switch {
	case minCount < 1 || maxCount < minCount:
		return nil, 400, "InvalidParameterValue", "bad MinCount/MaxCount"
	case image == "" || image == "ami-missing":
		return nil, 400, "InvalidAMIID.NotFound", "The image id '[" + image + "]' does not exist"
	case f.allFull || f.full[typ+"/"+zone] || f.full[typ+"/*"]:
		return nil, 500, "InsufficientInstanceCapacity", "We currently do not have sufficient " + typ + " capacity in the Availability Zone you requested (" + zone + ")."
	}
	if zone == "" {
		zone = "test-1a"
	}
	tags := map[string]string{}
	for i := 1; ; i++ {
		p := "TagSpecification.1.Tag." + strconv.Itoa(i)
		if _, ok := form[p+".Key"]; !ok {
			break
		}
		tags[form.Get(p+".Key")] = form.Get(p + ".Value")
	}
	f.seq++
	r := &fakeReservation{id: fmt.Sprintf("r-%017d", f.seq), params: params.Encode()}
	for range maxCount {
		f.seq++
		in := &fakeInstance{id: fmt.Sprintf("i-%017d", f.seq), typ: typ, zone: zone, state: "running", token: token, image: image, tags: tags}
		f.instances[in.id] = in
		f.order = append(f.order, in.id)
		r.ids = append(r.ids, in.id)
	}
	if token != "" {
		f.tokens[token] = r
	}
	return f.reservation(r), 0, "", ""
}

func (f *fakeEC2) reservation(r *fakeReservation) xRunInstances {
	x := xRunInstances{RequestID: "req", xReservation: xReservation{ReservationID: r.id, OwnerID: "123456789012"}}
	for _, id := range r.ids {
		x.Instances = append(x.Instances, f.xinstance(f.instances[id]))
	}
	return x
}

func (f *fakeEC2) matches(in *fakeInstance, form url.Values) bool {
	if f.noFilters {
		return true
	}
	for i := 1; ; i++ {
		p := "Filter." + strconv.Itoa(i)
		name, ok := form[p+".Name"]
		if !ok {
			return true
		}
		values := indexed(form, p+".Value")
		var have string
		switch {
		case strings.HasPrefix(name[0], "tag:"):
			v, ok := in.tags[strings.TrimPrefix(name[0], "tag:")]
			if !ok {
				return false
			}
			have = v
		case name[0] == "client-token":
			have = in.token
		case name[0] == "instance-id":
			have = in.id
		default:
			return false
		}
		if !slices.Contains(values, have) {
			return false
		}
	}
}

// pageOf returns the window of n items the request's NextToken asks for,
// and the token of the next page.
func (f *fakeEC2) pageOf(form url.Values, n int) (lo, hi int, next string) {
	lo, _ = strconv.Atoi(form.Get("NextToken"))
	hi = n
	if f.page > 0 && lo+f.page < n {
		hi = lo + f.page
		next = strconv.Itoa(hi)
	}
	return lo, hi, next
}

func (f *fakeEC2) describeInstances(form url.Values) (any, int, string, string) {
	var match []*fakeInstance
	for _, id := range f.order {
		if in := f.instances[id]; f.matches(in, form) {
			match = append(match, in)
		}
	}
	lo, hi, next := f.pageOf(form, len(match))
	x := xDescribeInstances{RequestID: "req", NextToken: next}
	for _, in := range match[lo:hi] {
		// One reservation per instance: the site must not rely on grouping.
		x.Reservations = append(x.Reservations, xReservation{ReservationID: "r-" + in.id, OwnerID: "123456789012", Instances: []xInstance{f.xinstance(in)}})
	}
	return x, 0, "", ""
}

func (f *fakeEC2) terminateInstances(form url.Values) (any, int, string, string) {
	ids := indexed(form, "InstanceId")
	var missing []string
	for _, id := range ids {
		if _, ok := f.instances[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, 400, "InvalidInstanceID.NotFound", "The instance IDs '" + strings.Join(missing, ", ") + "' do not exist"
	}
	x := xTerminateInstances{RequestID: "req"}
	for _, id := range ids {
		in := f.instances[id]
		prev := in.state
		in.state = "terminated"
		x.Instances = append(x.Instances, xStateChange{id, xState{48, "terminated"}, xState{stateCodes[prev], prev}})
	}
	return x, 0, "", ""
}

func (f *fakeEC2) describeInstanceTypes(form url.Values) (any, int, string, string) {
	lo, hi, next := f.pageOf(form, len(f.types))
	x := xDescribeInstanceTypes{RequestID: "req", NextToken: next}
	for _, t := range f.types[lo:hi] {
		x.Types = append(x.Types, xInstanceType{t.Name, t.Cores, t.MemoryMiB})
	}
	return x, 0, "", ""
}

// clock is a settable clock for cooldowns.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
