package api_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/lease"
)

// enrol registers host name through the API with a fresh join token and
// returns the host's credential.
func (fx *fixture) enrol(t *testing.T, name string, cores int64, addr, logKey string) string {
	t.Helper()
	jt := fx.do(t, "POST", "/v1/hosts/join-token", fx.tokens["root"], nil)
	if jt.status != http.StatusCreated {
		t.Fatalf("join token: %d %s", jt.status, jt)
	}
	join := decode[api.Credential](t, jt).Token
	reg := fx.do(t, "POST", "/v1/agent/register", join, api.AgentRegistration{
		Host: name, Cores: cores, MemoryMiB: 16384, Addr: addr, LogKey: logKey, Driver: "test"})
	if reg.status != http.StatusCreated {
		t.Fatalf("register %s: %d %s", name, reg.status, reg)
	}
	return decode[api.Credential](t, reg).Token
}

// pushImage pushes a small image as user and returns its name.
func (fx *fixture) pushImage(t *testing.T, user, name string) string {
	t.Helper()
	if a := fx.do(t, "POST", "/v1/images?name="+name, fx.tokens[user], []byte("QFI\xfb image bytes")); a.status != http.StatusCreated {
		t.Fatalf("push %s: %d %s", name, a.status, a)
	}
	return name
}

func TestAgentEnrolment(t *testing.T) {
	fx := newFixture(t)
	if a := fx.do(t, "POST", "/v1/hosts/join-token", fx.tokens["max"], nil); a.status != http.StatusForbidden {
		t.Errorf("a manager made a join token: %d %s", a.status, a)
	}
	jt := decode[api.Credential](t, fx.do(t, "POST", "/v1/hosts/join-token", fx.tokens["root"], nil)).Token
	reg := api.AgentRegistration{Host: "a1", Cores: 8, MemoryMiB: 16384, Driver: "test"}
	if a := fx.do(t, "POST", "/v1/agent/register", fx.tokens["ada"], reg); a.status != http.StatusForbidden {
		t.Errorf("a user's token registered a host: %d %s", a.status, a)
	}
	a := fx.do(t, "POST", "/v1/agent/register", jt, reg)
	if a.status != http.StatusCreated {
		t.Fatalf("register: %d %s", a.status, a)
	}
	cred := decode[api.Credential](t, a)
	if cred.Host != "a1" || cred.Token == "" || cred.Token == jt {
		t.Fatalf("credential %+v", cred)
	}
	// The join token is for enrolling only; the credential only for its host.
	if a := fx.do(t, "POST", "/v1/agent/heartbeat", jt, reg); a.status != http.StatusForbidden {
		t.Errorf("heartbeat with the join token: %d %s", a.status, a)
	}
	if a := fx.do(t, "POST", "/v1/agent/heartbeat", cred.Token, reg); a.status != http.StatusNoContent {
		t.Errorf("heartbeat: %d %s", a.status, a)
	}
	other := reg
	other.Host = "h01"
	if a := fx.do(t, "POST", "/v1/agent/heartbeat", cred.Token, other); a.status != http.StatusForbidden {
		t.Errorf("heartbeat for another host: %d %s", a.status, a)
	}
	if a := fx.do(t, "GET", "/v1/agent/assignments?wait=0s", fx.tokens["root"], nil); a.status != http.StatusForbidden {
		t.Errorf("an admin's token read a host's assignments: %d %s", a.status, a)
	}
	// A known host keeps its capacity: changing it is a conflict.
	again := reg
	again.Cores = 4
	if a := fx.do(t, "POST", "/v1/agent/register", jt, again); a.status != http.StatusConflict {
		t.Errorf("re-register with other capacity: %d %s", a.status, a)
	}
	// The broker never shows the agent's log key.
	hosts := decode[[]broker.Host](t, fx.do(t, "GET", "/v1/hosts", fx.tokens["ada"], nil))
	for _, h := range hosts {
		if h.LogKey != "" {
			t.Errorf("host %s shows its log key", h.Name)
		}
	}
}

func TestAgentAssignmentsAndVMStates(t *testing.T) {
	fx := newSite(t, false)
	cred := fx.enrol(t, "a1", 8, "", "")
	cred2 := fx.enrol(t, "a2", 8, "", "")
	_, userKey := testKey(t)
	req := map[string]any{"id": "c3", "count": 3, "cores": 2, "memory_mib": 1024, "duration": "5m", "ssh_keys": []string{userKey}}
	// Hosts with agents boot real VMs: a lease needs an image.
	if a := fx.do(t, "POST", "/v1/leases", fx.tokens["ada"], req); a.status != http.StatusBadRequest || errorBody(t, a).Field != "image" {
		t.Fatalf("lease without an image: %d %s", a.status, a)
	}
	req["image"] = fx.pushImage(t, "ada", "deb")
	a := fx.do(t, "POST", "/v1/leases", fx.tokens["ada"], req)
	if a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a)
	}
	if l := decode[broker.Lease](t, a); l.State != lease.StateStarting {
		t.Fatalf("lease state %s, want starting", l.State)
	}

	as := decode[api.AssignmentList](t, fx.do(t, "GET", "/v1/agent/assignments?wait=0s", cred, nil))
	if len(as.Assignments) != 1 {
		t.Fatalf("assignments %+v", as)
	}
	got := as.Assignments[0]
	if diff := cmp.Diff([]int{0, 1, 2}, got.Mine); diff != "" {
		t.Errorf("mine (-want +got):\n%s", diff)
	}
	if got.Context == nil || !strings.HasPrefix(got.Context.PublicKey, "ssh-ed25519 ") ||
		!strings.Contains(got.Context.PrivateKey, "OPENSSH PRIVATE KEY") || !slices.Equal(got.Context.UserKeys, []string{userKey}) {
		t.Errorf("cluster context %+v", got.Context)
	}
	seen := map[string]bool{}
	for _, v := range got.VMs {
		if v.Address == "" || seen[v.Address] || v.Name == "" {
			t.Errorf("VM %+v: want a name and an address of its own", v)
		}
		seen[v.Address] = true
	}
	// The lease's public view hides the cluster's private key.
	if strings.Contains(fx.do(t, "GET", "/v1/leases/c3", fx.tokens["ada"], nil).String(), "PRIVATE KEY") {
		t.Error("the lease shows the cluster's private key")
	}
	if as2 := decode[api.AssignmentList](t, fx.do(t, "GET", "/v1/agent/assignments?wait=0s", cred2, nil)); len(as2.Assignments) != 0 {
		t.Errorf("a2 got %+v", as2.Assignments)
	}

	// A long poll past the current index waits out its wait.
	start := time.Now()
	late := decode[api.AssignmentList](t, fx.do(t, "GET", "/v1/agent/assignments?wait=300ms&since="+strconv.FormatUint(as.Index, 10), cred, nil))
	if d := time.Since(start); d < 250*time.Millisecond || late.Index != as.Index {
		t.Errorf("long poll answered after %v at index %d (was %d)", d, late.Index, as.Index)
	}
	if a := fx.do(t, "GET", "/v1/agent/assignments?wait=soon", cred, nil); a.status != http.StatusBadRequest || errorBody(t, a).Field != "wait" {
		t.Errorf("bad wait: %d %s", a.status, a)
	}

	// States: another host's VM is refused; a bad state is invalid.
	if a := fx.do(t, "POST", "/v1/agent/vms", cred2, broker.VMStateChange{ID: "c3", Index: 0, State: broker.VMRunning}); a.status != http.StatusForbidden {
		t.Errorf("a2 reported a1's VM: %d %s", a.status, a)
	}
	if a := fx.do(t, "POST", "/v1/agent/vms", cred, broker.VMStateChange{ID: "c3", Index: 0, State: "dancing"}); a.status != http.StatusBadRequest {
		t.Errorf("bad state: %d %s", a.status, a)
	}
	for i := range 3 {
		if a := fx.do(t, "POST", "/v1/agent/vms", cred, broker.VMStateChange{ID: "c3", Index: i, State: broker.VMRunning}); a.status != http.StatusNoContent {
			t.Fatalf("report VM %d: %d %s", i, a.status, a)
		}
	}
	if l := decode[broker.Lease](t, fx.do(t, "GET", "/v1/leases/c3", fx.tokens["ada"], nil)); l.State != lease.StateRunning {
		t.Errorf("after every VM runs the lease is %s", l.State)
	}
}

func TestSignedAnswers(t *testing.T) {
	fx := newFixture(t)
	cred := fx.enrol(t, "a1", 8, "", "")
	req := httptest.NewRequestWithContext(t.Context(), "GET", "/v1/agent/assignments?wait=0s", nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set(api.NonceHeader, "n-123")
	w := httptest.NewRecorder()
	fx.h.ServeHTTP(w, req)
	_, secret, _ := api.ParseToken(cred)
	sig := w.Header().Get(api.SignatureHeader)
	if want := api.AnswerSignature(secret, "n-123", w.Code, w.Body.Bytes()); sig != want {
		t.Fatalf("signature %q, want %q", sig, want)
	}
	// Another nonce, status or body gives another signature.
	for _, other := range []string{
		api.AnswerSignature(secret, "n-124", w.Code, w.Body.Bytes()),
		api.AnswerSignature(secret, "n-123", 500, w.Body.Bytes()),
		api.AnswerSignature(secret, "n-123", w.Code, append(w.Body.Bytes(), ' ')),
		api.AnswerSignature("other", "n-123", w.Code, w.Body.Bytes()),
	} {
		if other == sig {
			t.Error("a changed answer has the same signature")
		}
	}
}

func TestImages(t *testing.T) {
	fx := newFixture(t)
	blob := []byte(strings.Repeat("fairlease image ", 1000))
	sum := sha256.Sum256(blob)
	digest := hex.EncodeToString(sum[:])

	a := fx.do(t, "POST", "/v1/images?name=deb&format=raw", fx.tokens["ada"], blob)
	if a.status != http.StatusCreated {
		t.Fatalf("push: %d %s", a.status, a)
	}
	im := decode[broker.Image](t, a)
	if im.Digest != digest || im.Size != int64(len(blob)) || im.Group != "physics" || im.Public {
		t.Errorf("image %+v", im)
	}
	for _, c := range []struct {
		name, path, user string
		status           int
		field            string
	}{
		{"bad name", "/v1/images?name=../x", "ada", 400, "name"},
		{"bad format", "/v1/images?name=x&format=vmdk", "ada", 400, "format"},
		{"public by a user", "/v1/images?name=x&public=true", "ada", 403, "public"},
		{"no token", "/v1/images?name=x", "", 401, ""},
		{"same name, other bytes", "/v1/images?name=deb&format=raw", "amy", 409, "name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := fx.do(t, "POST", c.path, fx.tokens[c.user], []byte("other bytes"))
			if a.status != c.status || errorBody(t, a).Field != c.field {
				t.Errorf("%d %s, want %d on %q", a.status, a, c.status, c.field)
			}
		})
	}
	if a := fx.do(t, "POST", "/v1/images?name=empty", fx.tokens["ada"], []byte{}); a.status != 400 {
		t.Errorf("empty push: %d %s", a.status, a)
	}

	// Private to physics: biology neither sees, fetches nor leases it.
	names := func(user string) []string {
		var out []string
		for _, im := range decode[[]broker.Image](t, fx.do(t, "GET", "/v1/images", fx.tokens[user], nil)) {
			out = append(out, im.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"deb"}, names("amy")); diff != "" {
		t.Errorf("amy's images (-want +got):\n%s", diff)
	}
	if got := names("bob"); len(got) != 0 {
		t.Errorf("bob sees %v", got)
	}
	if a := fx.do(t, "GET", "/v1/images/deb", fx.tokens["bob"], nil); a.status != 404 {
		t.Errorf("bob shows deb: %d", a.status)
	}
	if a := fx.do(t, "GET", "/v1/images/"+digest+"/blob", fx.tokens["bob"], nil); a.status != 404 {
		t.Errorf("bob fetches deb's bytes: %d", a.status)
	}
	lreq := map[string]any{"count": 1, "memory_mib": 512, "duration": "1h", "image": "deb"}
	if a := fx.do(t, "POST", "/v1/leases", fx.tokens["bob"], lreq); a.status != 404 || errorBody(t, a).Field != "image" {
		t.Errorf("bob leases deb: %d %s", a.status, a)
	}
	// Shared with biology by its owners: bob may lease it; only an admin
	// makes it public.
	if a := fx.do(t, "PUT", "/v1/images/deb/share", fx.tokens["bob"], map[string]any{"groups": []string{"biology"}}); a.status != 404 {
		t.Errorf("bob shares physics' image: %d %s", a.status, a)
	}
	if a := fx.do(t, "PUT", "/v1/images/deb/share", fx.tokens["ada"], map[string]any{"groups": []string{"biology"}, "public": true}); a.status != 403 {
		t.Errorf("ada makes it public: %d %s", a.status, a)
	}
	if a := fx.do(t, "PUT", "/v1/images/deb/share", fx.tokens["ada"], map[string]any{"groups": []string{"bad group!"}}); a.status != 400 {
		t.Errorf("bad group: %d %s", a.status, a)
	}
	if a := fx.do(t, "PUT", "/v1/images/deb/share", fx.tokens["ada"], map[string]any{"groups": []string{"biology"}}); a.status != 200 {
		t.Fatalf("share: %d %s", a.status, a)
	}
	if got := names("bob"); len(got) != 1 {
		t.Errorf("after sharing bob sees %v", got)
	}
	if a := fx.do(t, "PUT", "/v1/images/deb/share", fx.tokens["ada"], map[string]any{"groups": []string{}}); a.status != 200 {
		t.Fatalf("unshare: %d %s", a.status, a)
	}
	if got := names("bob"); len(got) != 0 {
		t.Errorf("after unsharing bob sees %v", got)
	}

	// The manifest is signed with the site key that agents are given.
	cred := fx.enrol(t, "a1", 8, "", "")
	al := decode[api.AssignmentList](t, fx.do(t, "GET", "/v1/agent/assignments?wait=0s", cred, nil))
	pub, err := base64.StdEncoding.DecodeString(al.SiteKey)
	sig, err2 := base64.StdEncoding.DecodeString(im.Signature)
	if err != nil || err2 != nil || len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, im.Manifest(), sig) {
		t.Errorf("manifest signature does not verify with the site key %q (%v, %v)", al.SiteKey, err, err2)
	}
	forged := im
	forged.Digest = strings.Repeat("0", 64)
	if ed25519.Verify(pub, forged.Manifest(), sig) {
		t.Error("the signature also fits another digest")
	}

	// A host agent fetches it, ranges work.
	if a := fx.do(t, "GET", "/v1/images/"+digest+"/blob", cred, nil); a.status != 200 || string(a.body) != string(blob) {
		t.Errorf("agent fetch: %d, %d bytes", a.status, len(a.body))
	}
	req := httptest.NewRequestWithContext(t.Context(), "GET", "/v1/images/"+digest+"/blob", nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set("Range", "bytes=16-31")
	w := httptest.NewRecorder()
	fx.h.ServeHTTP(w, req)
	if w.Code != http.StatusPartialContent || w.Body.String() != string(blob[16:32]) {
		t.Errorf("range: %d %q", w.Code, w.Body.String())
	}
	if a := fx.do(t, "GET", "/v1/images/NOTHEX/blob", cred, nil); a.status != 400 {
		t.Errorf("bad digest: %d", a.status)
	}

	// In use: not removable; after the lease, removed with its bytes.
	l := decode[broker.Lease](t, fx.do(t, "POST", "/v1/leases", fx.tokens["ada"], lreq))
	if a := fx.do(t, "DELETE", "/v1/images/deb", fx.tokens["amy"], nil); a.status != 409 {
		t.Errorf("delete in use: %d %s", a.status, a)
	}
	if a := fx.do(t, "DELETE", "/v1/images/deb", fx.tokens["bob"], nil); a.status != 404 {
		t.Errorf("bob deletes deb: %d %s", a.status, a)
	}
	fx.do(t, "DELETE", "/v1/leases/"+string(l.ID), fx.tokens["ada"], nil)
	if a := fx.do(t, "DELETE", "/v1/images/deb", fx.tokens["amy"], nil); a.status != 204 {
		t.Errorf("delete: %d %s", a.status, a)
	}
	if a := fx.do(t, "GET", "/v1/images/"+digest+"/blob", cred, nil); a.status != 404 {
		t.Errorf("bytes of a removed image: %d", a.status)
	}
}

func TestVMLog(t *testing.T) {
	fx := newSite(t, false)
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Fairlease-Log-Key") != "k3y" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/v1/vms/v1/1/log" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("fairlease-context: hostname=v1-1 tail=" + r.URL.Query().Get("tail") + "\n"))
	}))
	defer agent.Close()
	fx.enrol(t, "a1", 8, agent.URL, "k3y")
	img := fx.pushImage(t, "ada", "deb")
	if a := fx.do(t, "POST", "/v1/leases", fx.tokens["ada"], map[string]any{"id": "v1", "count": 2, "memory_mib": 512, "duration": "1h", "image": img}); a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a)
	}
	a := fx.do(t, "GET", "/v1/leases/v1/vms/1/log?tail=100", fx.tokens["amy"], nil)
	if a.status != 200 || a.String() != "fairlease-context: hostname=v1-1 tail=100\n" {
		t.Errorf("log: %d %q", a.status, a)
	}
	for _, c := range []struct {
		path, user string
		status     int
	}{
		{"/v1/leases/v1/vms/1/log", "bob", 404},  // another group's lease
		{"/v1/leases/v1/vms/7/log", "ada", 404},  // no such VM
		{"/v1/leases/v1/vms/-1/log", "ada", 400}, // not an index
		{"/v1/leases/v1/vms/0/log", "ada", 404},  // the agent has no log for it
		{"/v1/leases/v1/vms/1/log?tail=x", "ada", 400},
		{"/v1/leases/v1/vms/1/log", "", 401},
	} {
		if a := fx.do(t, "GET", c.path, fx.tokens[c.user], nil); a.status != c.status {
			t.Errorf("%s as %q: %d %s, want %d", c.path, c.user, a.status, a, c.status)
		} else {
			errorBody(t, a)
		}
	}
}

func testKey(t *testing.T) (ssh.PublicKey, string) {
	t.Helper()
	// A fixed, valid key keeps the test independent of randomness.
	const line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnK0DSaASvGDs6LWqJr5wxwmZFy3M7Yfd6slkTq0ZFG ada@physics"
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return k, line
}
