package client_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/client"
)

func TestAgentAgainstBroker(t *testing.T) {
	s, cs := setup(t)
	ctx := t.Context()
	jt, err := cs["root"].JoinToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	join, _ := client.New(s.URL, jt.Token)
	join.Verify = true
	reg := api.AgentRegistration{Host: "a1", Cores: 4, MemoryMiB: 8192, Driver: "test"}
	cred, err := join.AgentRegister(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	ag, _ := client.New(s.URL, cred.Token)
	ag.Verify = true
	if err := ag.AgentHeartbeat(ctx, reg); err != nil {
		t.Fatal(err)
	}
	as, err := ag.AgentAssignments(ctx, 0, time.Second)
	if err != nil || as.Host != "a1" || as.Index == 0 {
		t.Fatalf("assignments %+v, %v", as, err)
	}
	// A refusal is signed too, and comes back as the broker's error.
	err = ag.ReportVM(ctx, broker.VMStateChange{ID: "nope", Index: 0, State: broker.VMRunning})
	if err == nil || errors.Is(err, client.ErrUnsigned) {
		t.Errorf("report for an unknown VM: %v", err)
	}
}

// An impostor between agent and broker (or at a wrong address) cannot
// change what the agent is told.
func TestAgentRefusesUnsignedAnswers(t *testing.T) {
	s, cs := setup(t)
	ctx := t.Context()
	jt, _ := cs["root"].JoinToken(ctx)
	join, _ := client.New(s.URL, jt.Token)
	cred, err := join.AgentRegister(ctx, api.AgentRegistration{Host: "a1", Cores: 4, MemoryMiB: 8192})
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(s.URL)
	for name, tamper := range map[string]func(*http.Response) error{
		"body changed": func(r *http.Response) error {
			b, _ := io.ReadAll(r.Body)
			b = bytes.Replace(b, []byte(`"assignments":[]`), []byte(`"assignments":[{"lease":"evil"}]`), 1)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
			r.Header.Del("Content-Length")
			return nil
		},
		"signature dropped": func(r *http.Response) error {
			r.Header.Del(api.SignatureHeader)
			return nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := httputil.NewSingleHostReverseProxy(target)
			p.ModifyResponse = tamper
			mitm := httptest.NewServer(p)
			defer mitm.Close()
			ag, _ := client.New(mitm.URL, cred.Token)
			ag.Verify = true
			if _, err := ag.AgentAssignments(ctx, 0, 0); !errors.Is(err, client.ErrUnsigned) {
				t.Errorf("got %v, want ErrUnsigned", err)
			}
			// Without tampering, the same path works.
			plain, _ := client.New(s.URL, cred.Token)
			plain.Verify = true
			if _, err := plain.AgentAssignments(ctx, 0, 0); err != nil {
				t.Errorf("direct: %v", err)
			}
		})
	}
}

func TestImageRoundTrip(t *testing.T) {
	_, cs := setup(t)
	ctx := t.Context()
	data := strings.Repeat("0123456789abcdef", 4096)
	im, err := cs["ada"].PushImage(ctx, "tiny", "raw", false, strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if im.Size != int64(len(data)) || im.Format != "raw" {
		t.Errorf("pushed %+v", im)
	}
	rc, err := cs["ada"].OpenImage(ctx, im.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != data {
		t.Errorf("read back %d bytes, want %d", len(got), len(data))
	}
	if _, err := cs["bob"].OpenImage(ctx, im.Digest); err == nil {
		t.Error("another group read a private image")
	}
	ims, err := cs["bob"].Images(ctx)
	if err != nil || len(ims) != 0 {
		t.Errorf("bob's images: %v, %v", ims, err)
	}
	if err := cs["ada"].DeleteImage(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs["ada"].Image(ctx, "tiny"); err == nil {
		t.Error("removed image still shown")
	}
}
