package ec2api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// captured is a request as the Go SDK sent it.
type captured struct {
	query, body, auth, date, contentType string
}

var (
	captureOnce sync.Once
	captures    []captured
)

// sdkRequests makes real SDK calls against a recorder, for seed corpora:
// the fuzzers start from the requests clients really send.
func sdkRequests(t testing.TB) []captured {
	captureOnce.Do(func() {
		var mu sync.Mutex
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			captures = append(captures, captured{r.URL.RawQuery, string(b), r.Header.Get("Authorization"), r.Header.Get("X-Amz-Date"), r.Header.Get("Content-Type")})
			mu.Unlock()
			WriteError(w, AuthFailure("recorder"), "seed")
		}))
		defer srv.Close()
		c := sdkClient(srv.URL, testSecret)
		ctx := context.Background()
		tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
		filter := func(n string, v ...string) types.Filter { return types.Filter{Name: aws.String(n), Values: v} }
		c.RunInstances(ctx, &ec2.RunInstancesInput{
			ImageId: aws.String("ami-0123456789abcdef0"), MinCount: aws.Int32(3), MaxCount: aws.Int32(3),
			InstanceType: types.InstanceTypeT3Micro, KeyName: aws.String("k"), ClientToken: aws.String("tok-1"),
			UserData: aws.String(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hi\n"))),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance,
				Tags: []types.Tag{tag("fairlease:lease", "3h"), tag("Name", "web & db")}}},
		})
		c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
			InstanceIds: []string{"i-1", "i-2"}, MaxResults: aws.Int32(5), NextToken: aws.String("abc=="),
			Filters: []types.Filter{filter("instance-state-name", "running", "pending"), filter("tag:env", "prod*")},
		})
		c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{"i-1"}})
		c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"i-1", "ami-2"}, Tags: []types.Tag{tag("a", "b")}})
		c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{RegionNames: []string{testRegion}, DryRun: aws.Bool(false)})
		c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{Filters: []types.Filter{filter("zone-name", "*-1?")}})
	})
	if len(captures) < 6 {
		t.Fatalf("captured %d SDK requests, want 6", len(captures))
	}
	return captures
}

func FuzzParams(f *testing.F) {
	for _, c := range sdkRequests(f) {
		f.Add(c.query, c.body)
	}
	f.Add("InstanceId.99999999999=x&InstanceId.1=y", "Filter.1.Value.1=a")
	f.Add("", "TagSpecification.1.Tag.1.Key=a&TagSpecification.1.Tag.1.Key.1=b")
	f.Fuzz(func(t *testing.T, query, body string) {
		r := &http.Request{Method: "POST", URL: &url.URL{Path: "/", RawQuery: query}, Header: http.Header{}}
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		p, e := ParseParams(r, []byte(body))
		checkClientError(t, e)
		if e != nil {
			return
		}
		exerciseParams(t, p)
	})
}

// exerciseParams calls every getter; a client can make each fail, but only
// with a well-formed 4xx.
func exerciseParams(t *testing.T, p *Params) {
	for _, name := range []string{"InstanceId", "ResourceId", "RegionName", "Value"} {
		_, e := p.List(name)
		checkClientError(t, e)
	}
	_, e := p.Filters()
	checkClientError(t, e)
	_, e = p.Tags("Tag")
	checkClientError(t, e)
	_, e = p.TagSpecifications()
	checkClientError(t, e)
	_, e = p.Int("MaxResults", 0, 5, 1000)
	checkClientError(t, e)
	_, e = p.RequiredInt("MinCount", 1, 100)
	checkClientError(t, e)
	_, e = p.Bool("DryRun", false)
	checkClientError(t, e)
	_, e = p.RequiredString("ImageId")
	checkClientError(t, e)
}

func checkClientError(t *testing.T, e *Error) {
	t.Helper()
	if e == nil {
		return
	}
	if e.Status < 400 || e.Status >= 500 || e.Code == "" || e.Message == "" {
		t.Fatalf("not a client error: %+v", e)
	}
}

func FuzzVerify(f *testing.F) {
	for _, c := range sdkRequests(f) {
		f.Add(c.auth, c.date, c.query, c.body)
	}
	f.Add("", "", "Action=DescribeRegions&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20260314%2Fr%2Fec2%2Faws4_request&X-Amz-Date=20260314T150926Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=b405cffe7a738586e9fb5d104fc7fdbf5519eb2826f3bc201c0a0571c7673cf6", "")
	f.Add("AWS4-HMAC-SHA256 Credential=AK/20260314/r/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=00", "20260314T150926Z", "", "")
	// Any key is known, with a secret the seeds were not signed with: no
	// input can carry a valid signature, so every one must be refused.
	lookup := func(string) (string, bool) { return "fuzz-secret", true }
	f.Fuzz(func(t *testing.T, auth, date, query string, body string) {
		r := &http.Request{Method: "POST", URL: &url.URL{Path: "/", RawQuery: query}, Host: testHost, Header: http.Header{}}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		if date != "" {
			r.Header.Set("X-Amz-Date", date)
		}
		now := testNow
		if d, err := time.Parse(amzDateFormat, date); err == nil {
			now = d // get past the clock check to the signature
		} else if d, err := time.Parse(amzDateFormat, r.URL.Query().Get("X-Amz-Date")); err == nil {
			now = d
		}
		_, e := Verify(r, []byte(body), now, lookup)
		if e == nil {
			t.Fatalf("an unsigned request verified: auth %q date %q query %q", auth, date, query)
		}
		switch e.Code {
		case CodeAuthFailure, CodeIncompleteSignature, CodeRequestExpired, CodeInvalidParameterCombination:
		default:
			t.Fatalf("unexpected code %s", e.Code)
		}
		checkClientError(t, e)
	})
}

func FuzzHandler(f *testing.F) {
	for _, c := range sdkRequests(f) {
		f.Add(uint8(0), c.query, c.body, c.contentType, true)
		f.Add(uint8(0), c.query, c.body, c.contentType, false)
	}
	f.Add(uint8(1), "Action=DescribeRegions&RegionName.1=fairlease-west", "", "", true)
	f.Add(uint8(0), "", "Action=Exercise&Filter.1.Name=a&Filter.1.Value.7=b&TagSpecification.2.ResourceType=instance", "", true)
	f.Add(uint8(2), "", "Action=DescribeAvailabilityZones&ZoneName.1=nowhere", "text/plain", true)

	cfg := testConfig(func() time.Time { return testNow })
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Actions = map[string]Action{
		"Exercise": func(_ context.Context, _ Caller, p *Params) (any, *Error) {
			for _, get := range []func() *Error{
				func() *Error { _, e := p.List("InstanceId"); return e },
				func() *Error { _, e := p.Filters(); return e },
				func() *Error { _, e := p.Tags("Tag"); return e },
				func() *Error { _, e := p.TagSpecifications(); return e },
				func() *Error { _, e := p.Int("MaxResults", 0, 5, 1000); return e },
				func() *Error { _, e := p.Bool("DryRun", false); return e },
			} {
				if e := get(); e != nil {
					return nil, e
				}
			}
			return &echoResponse{User: strings.Join(p.Names(), ",")}, nil
		},
	}
	h := New(cfg)
	f.Fuzz(func(t *testing.T, method uint8, query, body, contentType string, sign bool) {
		r := &http.Request{
			Method:        []string{"POST", "GET", "PUT", "DELETE"}[method%4],
			URL:           &url.URL{Path: "/", RawQuery: query},
			Host:          testHost,
			Header:        http.Header{},
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)),
		}
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		if sign {
			creds := aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, sha256Hex([]byte(body)), "ec2", testRegion, testNow); err != nil {
				t.Skip(err)
			}
			r.Body = io.NopCloser(strings.NewReader(body))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("500 for %s ?%q body %q: %s", r.Method, query, body, w.Body)
		}
		checkXML(t, w.Code, w.Body.Bytes())
	})
}

// checkXML fails unless body is an EC2 error document (status >= 400) or
// an EC2 response in the EC2 namespace with a request ID (200).
func checkXML(t *testing.T, status int, body []byte) {
	t.Helper()
	if !bytes.HasPrefix(body, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		t.Fatalf("no XML declaration: %q", body)
	}
	if status >= 400 {
		var er errorResponse
		if err := xml.Unmarshal(body, &er); err != nil || len(er.Errors) != 1 || er.Errors[0].Code == "" || er.RequestID == "" {
			t.Fatalf("status %d with a malformed error document (%v): %q", status, err, body)
		}
		return
	}
	var resp struct {
		XMLName   xml.Name
		RequestID string `xml:"requestId"`
	}
	if err := xml.Unmarshal(body, &resp); err != nil || resp.XMLName.Space != Namespace ||
		!strings.HasSuffix(resp.XMLName.Local, "Response") || resp.RequestID == "" {
		t.Fatalf("status %d with a malformed response (%v): %q", status, err, body)
	}
	// Well-formed to the end, not just to the root's first child.
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("malformed XML (%v): %q", err, body)
		}
	}
}
