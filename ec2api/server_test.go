package ec2api

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
)

var testZones = []Zone{{Name: "fairlease-west-1a", ID: "flw-az1"}, {Name: "fairlease-west-1b", ID: "flw-az2"}}

func testConfig(now func() time.Time) Config {
	cfg := DefaultConfig()
	cfg.Keys = func(akid string) (string, string, bool) {
		if akid == testAKID {
			return testUser, testSecret, true
		}
		return "", "", false
	}
	cfg.Now = now
	cfg.Region = testRegion
	cfg.Endpoint = "ec2.fairlease-west.example.test"
	cfg.Zones = testZones
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.NewRequestID = func() string { return "req-0001" }
	return cfg
}

func startServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(New(cfg))
	t.Cleanup(srv.Close)
	return srv
}

func sdkClient(srvURL, secret string) *ec2.Client {
	return ec2.New(ec2.Options{
		BaseEndpoint: aws.String(srvURL),
		Region:       testRegion,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: secret}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return "not an API error: " + err.Error()
	}
	return ""
}

func TestSDKDescribeRegions(t *testing.T) {
	srv := startServer(t, testConfig(time.Now))
	c := sdkClient(srv.URL, testSecret)
	ctx := context.Background()
	tests := []struct {
		name     string
		in       *ec2.DescribeRegionsInput
		want     []string
		wantCode string
	}{
		{name: "all", in: &ec2.DescribeRegionsInput{}, want: []string{testRegion}},
		{name: "by name", in: &ec2.DescribeRegionsInput{RegionNames: []string{testRegion}}, want: []string{testRegion}},
		{name: "unknown name", in: &ec2.DescribeRegionsInput{RegionNames: []string{"us-east-1"}}, wantCode: CodeInvalidParameterValue},
		{name: "filter matches", in: &ec2.DescribeRegionsInput{Filters: []types.Filter{{Name: aws.String("region-name"), Values: []string{"fairlease-*"}}}}, want: []string{testRegion}},
		{name: "filter excludes", in: &ec2.DescribeRegionsInput{Filters: []types.Filter{{Name: aws.String("region-name"), Values: []string{"us-*"}}}}, want: nil},
		{name: "unknown filter", in: &ec2.DescribeRegionsInput{Filters: []types.Filter{{Name: aws.String("colour"), Values: []string{"x"}}}}, wantCode: CodeInvalidParameterValue},
		{name: "dry run", in: &ec2.DescribeRegionsInput{DryRun: aws.Bool(true)}, wantCode: CodeDryRunOperation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.DescribeRegions(ctx, tt.in)
			if diff := cmp.Diff(tt.wantCode, apiCode(err)); diff != "" {
				t.Fatalf("error code (-want +got):\n%s", diff)
			}
			if err != nil {
				return
			}
			var got []string
			for _, r := range out.Regions {
				got = append(got, aws.ToString(r.RegionName))
				if diff := cmp.Diff("ec2.fairlease-west.example.test", aws.ToString(r.Endpoint)); diff != "" {
					t.Errorf("endpoint (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("regions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSDKDescribeAvailabilityZones(t *testing.T) {
	srv := startServer(t, testConfig(time.Now))
	c := sdkClient(srv.URL, testSecret)
	ctx := context.Background()
	type zone struct{ Name, ID, Region, State string }
	a := zone{"fairlease-west-1a", "flw-az1", testRegion, "available"}
	b := zone{"fairlease-west-1b", "flw-az2", testRegion, "available"}
	tests := []struct {
		name     string
		in       *ec2.DescribeAvailabilityZonesInput
		want     []zone
		wantCode string
	}{
		{name: "all", in: &ec2.DescribeAvailabilityZonesInput{}, want: []zone{a, b}},
		{name: "by name", in: &ec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"fairlease-west-1b"}}, want: []zone{b}},
		{name: "by id", in: &ec2.DescribeAvailabilityZonesInput{ZoneIds: []string{"flw-az1"}}, want: []zone{a}},
		{name: "unknown name", in: &ec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"nowhere-1a"}}, wantCode: CodeInvalidParameterValue},
		{name: "zone-name filter", in: &ec2.DescribeAvailabilityZonesInput{Filters: []types.Filter{{Name: aws.String("zone-name"), Values: []string{"*-1?", "x"}}}}, want: []zone{a, b}},
		{name: "zone-name filter one", in: &ec2.DescribeAvailabilityZonesInput{Filters: []types.Filter{{Name: aws.String("zone-name"), Values: []string{"*b"}}}}, want: []zone{b}},
		{name: "region-name filter excludes", in: &ec2.DescribeAvailabilityZonesInput{Filters: []types.Filter{{Name: aws.String("region-name"), Values: []string{"us-east-1"}}}}, want: nil},
		{name: "filters are ANDed", in: &ec2.DescribeAvailabilityZonesInput{Filters: []types.Filter{
			{Name: aws.String("region-name"), Values: []string{testRegion}},
			{Name: aws.String("zone-id"), Values: []string{"flw-az2"}}}}, want: []zone{b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.DescribeAvailabilityZones(ctx, tt.in)
			if diff := cmp.Diff(tt.wantCode, apiCode(err)); diff != "" {
				t.Fatalf("error code (-want +got):\n%s", diff)
			}
			if err != nil {
				return
			}
			var got []zone
			for _, z := range out.AvailabilityZones {
				got = append(got, zone{aws.ToString(z.ZoneName), aws.ToString(z.ZoneId), aws.ToString(z.RegionName), string(z.State)})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("zones (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSDKWrongSecret(t *testing.T) {
	srv := startServer(t, testConfig(time.Now))
	_, err := sdkClient(srv.URL, "not-the-secret").DescribeRegions(context.Background(), &ec2.DescribeRegionsInput{})
	if diff := cmp.Diff(CodeAuthFailure, apiCode(err)); diff != "" {
		t.Fatalf("error code (-want +got):\n%s", diff)
	}
	var re interface{ HTTPStatusCode() int }
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusUnauthorized {
		t.Errorf("status: got %v, want 401", err)
	}
}

func TestSDKSkewedClock(t *testing.T) {
	srv := startServer(t, testConfig(func() time.Time { return time.Now().Add(time.Hour) }))
	_, err := sdkClient(srv.URL, testSecret).DescribeRegions(context.Background(), &ec2.DescribeRegionsInput{})
	if diff := cmp.Diff(CodeRequestExpired, apiCode(err)); diff != "" {
		t.Fatalf("error code (-want +got):\n%s", diff)
	}
}

// post signs body with the SDK's signer and sends it to the server.
func post(t *testing.T, srvURL, body string) (int, string) {
	t.Helper()
	r, err := http.NewRequest("POST", srvURL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	creds := aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, sha256Hex([]byte(body)), "ec2", testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	return send(t, r)
}

func send(t *testing.T, r *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// parseError returns the code of an EC2 error document, or fails.
func parseError(t testing.TB, body string) (code, requestID string) {
	t.Helper()
	var er errorResponse
	if err := xml.Unmarshal([]byte(body), &er); err != nil || er.XMLName.Local != "Response" || len(er.Errors) != 1 {
		t.Fatalf("not an EC2 error document (%v): %q", err, body)
	}
	return er.Errors[0].Code, er.RequestID
}

type echoResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ EchoResponse"`
	Meta
	User string `xml:"user"`
}

func TestDispatcher(t *testing.T) {
	cfg := testConfig(time.Now)
	cfg.Actions = map[string]Action{
		"Echo": func(_ context.Context, c Caller, p *Params) (any, *Error) {
			return &echoResponse{User: c.User + "/" + c.Region + "/" + p.String("Say")}, nil
		},
		"Panic": func(context.Context, Caller, *Params) (any, *Error) { panic("boom") },
		"Nil":   func(context.Context, Caller, *Params) (any, *Error) { return nil, nil },
	}
	s := New(cfg)
	s.Handle("Capacity", func(context.Context, Caller, *Params) (any, *Error) {
		return nil, InsufficientInstanceCapacity("no room")
	})
	srv := httptest.NewServer(s)
	defer srv.Close()

	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantCode   string
		wantBody   string
	}{
		{name: "action", body: "Action=Echo&Version=2016-11-15&Say=hi", wantStatus: 200,
			wantBody: `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<EchoResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>req-0001</requestId><user>alice/fairlease-west/hi</user></EchoResponse>`},
		{name: "registered with Handle", body: "Action=Capacity", wantStatus: 500, wantCode: CodeInsufficientInstanceCapacity},
		{name: "unknown action", body: "Action=LaunchMissiles", wantStatus: 400, wantCode: CodeInvalidAction},
		{name: "no action", body: "Version=2016-11-15", wantStatus: 400, wantCode: CodeMissingParameter},
		{name: "bad params", body: "Action=Echo&Say=1&Say=2", wantStatus: 400, wantCode: CodeInvalidParameterValue},
		{name: "panic", body: "Action=Panic", wantStatus: 500, wantCode: CodeInternalError},
		{name: "nil response", body: "Action=Nil", wantStatus: 500, wantCode: CodeInternalError},
		{name: "too large", body: "Action=Echo&Say=" + strings.Repeat("x", MaxBodyBytes), wantStatus: 400, wantCode: CodeInvalidParameterValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, srv.URL, tt.body)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d; body %q", status, tt.wantStatus, body)
			}
			if tt.wantCode != "" {
				code, rid := parseError(t, body)
				if diff := cmp.Diff(tt.wantCode+" req-0001", code+" "+rid); diff != "" {
					t.Errorf("code and request ID (-want +got):\n%s", diff)
				}
			}
			if tt.wantBody != "" {
				if diff := cmp.Diff(tt.wantBody, body); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
			}
		})
	}

	t.Run("unsigned", func(t *testing.T) {
		status, body := send(t, mustRequest(t, "POST", srv.URL+"/", "Action=Echo"))
		code, _ := parseError(t, body)
		if status != 401 || code != CodeAuthFailure || !strings.Contains(body, "missing authentication") {
			t.Errorf("got %d %q, want 401 AuthFailure (missing authentication)", status, body)
		}
	})
	t.Run("method", func(t *testing.T) {
		status, body := send(t, mustRequest(t, "PUT", srv.URL+"/", "Action=Echo"))
		if code, _ := parseError(t, body); status != 400 || code != CodeInvalidParameterValue {
			t.Errorf("got %d %q, want 400", status, body)
		}
	})
	t.Run("presigned get", func(t *testing.T) {
		r, err := http.NewRequest("GET", srv.URL+"/?Action=Echo&Say=presigned&X-Amz-Expires=60", nil)
		if err != nil {
			t.Fatal(err)
		}
		creds := aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}
		u, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, r, "UNSIGNED-PAYLOAD", "ec2", testRegion, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		r2, _ := http.NewRequest("GET", u, nil)
		status, body := send(t, r2)
		if status != 200 || !strings.Contains(body, "<user>alice/fairlease-west/presigned</user>") {
			t.Errorf("got %d %q", status, body)
		}
	})
}

// TestCLI runs Debian's stock aws CLI, which matches element names
// case-sensitively: a response it parses has the right lowerCamel names.
func TestCLI(t *testing.T) {
	t.Parallel() // the CLI's start-up is slow; let other tests run meanwhile
	const aws = "/usr/bin/aws"
	if _, err := os.Stat(aws); err != nil {
		t.Fatalf("%s is missing (%v): install it with scripts/deps.sh ci", aws, err)
	}
	srv := startServer(t, testConfig(time.Now))
	home := t.TempDir()
	run := func(secret string, args ...string) (string, string, error) {
		cmd := exec.Command(aws, append([]string{"--endpoint-url", srv.URL, "--region", testRegion, "--output", "json"}, args...)...)
		cmd.Env = []string{
			"HOME=" + home,
			"PATH=/usr/bin:/bin",
			"AWS_ACCESS_KEY_ID=" + testAKID,
			"AWS_SECRET_ACCESS_KEY=" + secret,
			"AWS_CONFIG_FILE=/dev/null",
			"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
			"AWS_EC2_METADATA_DISABLED=true",
			"AWS_PAGER=",
			"AWS_MAX_ATTEMPTS=1",
		}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	type result struct {
		out, errOut string
		err         error
	}
	// The CLI takes about a second to start: run the three at once.
	calls := map[string][]string{
		"regions":      {"ec2", "describe-regions"},
		"zones":        {"ec2", "describe-availability-zones", "--zone-names", "fairlease-west-1b"},
		"wrong secret": {"ec2", "describe-regions"},
	}
	results := map[string]chan result{}
	for name, args := range calls {
		ch := make(chan result, 1)
		results[name] = ch
		secret := testSecret
		if name == "wrong secret" {
			secret = "not-the-secret"
		}
		go func() {
			out, errOut, err := run(secret, args...)
			ch <- result{out, errOut, err}
		}()
	}

	r := <-results["regions"]
	if r.err != nil {
		t.Fatalf("describe-regions: %v\n%s", r.err, r.errOut)
	}
	wantRegions := `{
    "Regions": [
        {
            "Endpoint": "ec2.fairlease-west.example.test",
            "RegionName": "fairlease-west",
            "OptInStatus": "opt-in-not-required"
        }
    ]
}
`
	if diff := cmp.Diff(wantRegions, r.out); diff != "" {
		t.Errorf("describe-regions output (-want +got):\n%s", diff)
	}

	r = <-results["zones"]
	if r.err != nil {
		t.Fatalf("describe-availability-zones: %v\n%s", r.err, r.errOut)
	}
	for _, want := range []string{`"ZoneName": "fairlease-west-1b"`, `"ZoneId": "flw-az2"`, `"State": "available"`, `"RegionName": "fairlease-west"`} {
		if !strings.Contains(r.out, want) {
			t.Errorf("describe-availability-zones output lacks %s:\n%s", want, r.out)
		}
	}
	if strings.Contains(r.out, "fairlease-west-1a") {
		t.Errorf("describe-availability-zones --zone-names fairlease-west-1b lists 1a:\n%s", r.out)
	}

	r = <-results["wrong secret"]
	if r.err == nil || !strings.Contains(r.errOut, "(AuthFailure)") {
		t.Errorf("wrong secret: err %v, stderr %q; want an AuthFailure", r.err, r.errOut)
	}
}
