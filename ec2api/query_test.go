package ec2api

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func parse(t *testing.T, query, body string) (*Params, *Error) {
	t.Helper()
	r := mustRequest(t, "POST", "http://"+testHost+"/?"+query, body)
	return ParseParams(r, []byte(body))
}

func mustParse(t *testing.T, body string) *Params {
	t.Helper()
	p, e := parse(t, "", body)
	if e != nil {
		t.Fatalf("ParseParams(%q): %v", body, e)
	}
	return p
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		name        string
		query, body string
		contentType string
		want        map[string]string
		wantCode    string
	}{
		{name: "body", body: "Action=RunInstances&ImageId=ami-1&UserData=YQ%3D%3D", want: map[string]string{"Action": "RunInstances", "ImageId": "ami-1", "UserData": "YQ=="}},
		{name: "query and body", query: "Action=DescribeImages", body: "Owner.1=self", want: map[string]string{"Action": "DescribeImages", "Owner.1": "self"}},
		{name: "plus is space", body: "Tag.1.Value=a+b", want: map[string]string{"Tag.1.Value": "a b"}},
		{name: "empty value and empty pairs", body: "A=&&B", want: map[string]string{"A": "", "B": ""}},
		{name: "charset in content type", body: "A=1", contentType: "application/x-www-form-urlencoded; charset=utf-8", want: map[string]string{"A": "1"}},
		{name: "duplicate in body", body: "A=1&A=2", wantCode: CodeInvalidParameterValue},
		{name: "duplicate across query and body", query: "Action=X", body: "Action=Y", wantCode: CodeInvalidParameterValue},
		{name: "bad escape", body: "A=%zz", wantCode: CodeInvalidParameterValue},
		{name: "bad escape in name", body: "%zz=1", wantCode: CodeInvalidParameterValue},
		{name: "json body", body: `{"Action":"X"}`, contentType: "application/json", wantCode: CodeInvalidParameterValue},
		{name: "too many", body: strings.Repeat("A=1&", 1) + manyParams(maxParams+1), wantCode: CodeInvalidParameterValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRequest(t, "POST", "http://"+testHost+"/?"+tt.query, tt.body)
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			p, e := ParseParams(r, []byte(tt.body))
			if diff := cmp.Diff(tt.wantCode, errCode(e)); diff != "" {
				t.Fatalf("code (-want +got):\n%s\nerror: %v", diff, e)
			}
			if e == nil {
				if diff := cmp.Diff(tt.want, p.m); diff != "" {
					t.Errorf("params (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func manyParams(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("P")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString(strconv.Itoa(i))
		b.WriteString("=1&")
	}
	return b.String()
}

func TestParamsScalars(t *testing.T) {
	p := mustParse(t, "Count=3&Neg=-1&Big=99999999999999999999&Word=x&Yes=TRUE&No=false&Maybe=yes&Empty=")
	type intCase struct {
		name          string
		def, min, max int64
		want          int64
		wantCode      string
	}
	for _, tt := range []intCase{
		{name: "Count", min: 1, max: 10, want: 3},
		{name: "Absent", def: 7, min: 1, max: 10, want: 7},
		{name: "Count", min: 4, max: 10, wantCode: CodeInvalidParameterValue},
		{name: "Neg", min: 0, max: 10, wantCode: CodeInvalidParameterValue},
		{name: "Big", min: 0, max: 10, wantCode: CodeInvalidParameterValue},
		{name: "Word", min: 0, max: 10, wantCode: CodeInvalidParameterValue},
		{name: "Empty", min: 0, max: 10, wantCode: CodeInvalidParameterValue},
	} {
		got, e := p.Int(tt.name, tt.def, tt.min, tt.max)
		if diff := cmp.Diff(tt.wantCode, errCode(e)); diff != "" {
			t.Errorf("Int(%s) code (-want +got):\n%s", tt.name, diff)
		}
		if e != nil && !strings.Contains(e.Message, tt.name) {
			t.Errorf("Int(%s) error %q does not name the parameter", tt.name, e.Message)
		}
		if e == nil && got != tt.want {
			t.Errorf("Int(%s) = %d, want %d", tt.name, got, tt.want)
		}
	}
	if _, e := p.RequiredInt("Absent", 0, 1); errCode(e) != CodeMissingParameter || !strings.Contains(e.Message, "Absent") {
		t.Errorf("RequiredInt(Absent) = %v, want MissingParameter naming it", e)
	}
	for _, tt := range []struct {
		name     string
		want     bool
		wantCode string
	}{
		{"Yes", true, ""}, {"No", false, ""}, {"Absent", true, ""}, {"Maybe", false, CodeInvalidParameterValue},
	} {
		got, e := p.Bool(tt.name, true)
		if errCode(e) != tt.wantCode || (e == nil && got != tt.want) {
			t.Errorf("Bool(%s) = %v, %v; want %v, %q", tt.name, got, e, tt.want, tt.wantCode)
		}
	}
	if _, e := p.RequiredString("Empty"); errCode(e) != CodeMissingParameter {
		t.Errorf("RequiredString(Empty) = %v, want MissingParameter", e)
	}
	if v, e := p.RequiredString("Word"); v != "x" || e != nil {
		t.Errorf("RequiredString(Word) = %q, %v", v, e)
	}
}

func TestParamsList(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		want     []string
		wantCode string
		wantIn   string
	}{
		{name: "none", body: "Action=X", want: []string{}},
		{name: "in order", body: "InstanceId.2=i-b&InstanceId.1=i-a&InstanceId.10=i-j", want: []string{"i-a", "i-b", "i-j"}},
		{name: "gaps", body: "InstanceId.5=i-e&InstanceId.900000=i-z", want: []string{"i-e", "i-z"}},
		{name: "other prefixes ignored", body: "InstanceIdX.1=a&InstanceId=b&InstanceId.1=c", want: []string{"c"}},
		{name: "zero index", body: "InstanceId.0=i-a", wantCode: CodeInvalidParameterValue, wantIn: "InstanceId.0"},
		{name: "huge index", body: "InstanceId.99999999999999999999=i-a", wantCode: CodeInvalidParameterValue, wantIn: "InstanceId.9999"},
		{name: "negative index", body: "InstanceId.-1=i-a", wantCode: CodeInvalidParameterValue},
		{name: "leading zero", body: "InstanceId.01=i-a", wantCode: CodeInvalidParameterValue},
		{name: "not a number", body: "InstanceId.x=i-a", wantCode: CodeInvalidParameterValue},
		{name: "nested where none belongs", body: "InstanceId.1.Foo=i-a", wantCode: CodeUnknownParameter, wantIn: "InstanceId.1.Foo"},
		{name: "trailing dot", body: "InstanceId.1.=i-a", wantCode: CodeUnknownParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, e := mustParse(t, tt.body).List("InstanceId")
			if diff := cmp.Diff(tt.wantCode, errCode(e)); diff != "" {
				t.Fatalf("code (-want +got):\n%s\nerror: %v", diff, e)
			}
			if e != nil {
				if !strings.Contains(e.Message, tt.wantIn) {
					t.Errorf("message %q does not name %q", e.Message, tt.wantIn)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("List (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParamsFilters(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		want     []Filter
		wantCode string
		wantIn   string
	}{
		{name: "none", body: "Action=X", want: []Filter{}},
		{name: "two filters", body: "Filter.1.Name=tag:env&Filter.1.Value.1=prod&Filter.1.Value.2=dev&Filter.2.Name=instance-state-name&Filter.2.Value.1=running",
			want: []Filter{{Name: "tag:env", Values: []string{"prod", "dev"}}, {Name: "instance-state-name", Values: []string{"running"}}}},
		{name: "no values", body: "Filter.1.Name=tag-key", want: []Filter{{Name: "tag-key", Values: []string{}}}},
		{name: "value order by index", body: "Filter.3.Name=a&Filter.3.Value.20=z&Filter.3.Value.3=c", want: []Filter{{Name: "a", Values: []string{"c", "z"}}}},
		{name: "no name", body: "Filter.1.Value.1=x", wantCode: CodeMissingParameter, wantIn: "Filter.1.Name"},
		{name: "bad value index", body: "Filter.1.Name=a&Filter.1.Value.0=x", wantCode: CodeInvalidParameterValue, wantIn: "Filter.1.Value.0"},
		{name: "unknown field", body: "Filter.1.Name=a&Filter.1.Values.1=x", wantCode: CodeUnknownParameter, wantIn: "Filter.1.Values.1"},
		{name: "nested value", body: "Filter.1.Name=a&Filter.1.Value.1.X=x", wantCode: CodeUnknownParameter, wantIn: "Filter.1.Value.1.X"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, e := mustParse(t, tt.body).Filters()
			if diff := cmp.Diff(tt.wantCode, errCode(e)); diff != "" {
				t.Fatalf("code (-want +got):\n%s\nerror: %v", diff, e)
			}
			if e != nil {
				if !strings.Contains(e.Message, tt.wantIn) {
					t.Errorf("message %q does not name %q", e.Message, tt.wantIn)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Filters (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParamsTags(t *testing.T) {
	got, e := mustParse(t, "ResourceId.1=i-1&Tag.2.Key=b&Tag.1.Key=a&Tag.1.Value=1").Tags("Tag")
	if e != nil {
		t.Fatal(e)
	}
	if diff := cmp.Diff([]Tag{{"a", "1"}, {"b", ""}}, got); diff != "" {
		t.Errorf("Tags (-want +got):\n%s", diff)
	}
	if _, e := mustParse(t, "Tag.1.Value=1").Tags("Tag"); errCode(e) != CodeMissingParameter || !strings.Contains(e.Message, "Tag.1.Key") {
		t.Errorf("tag without key: %v, want MissingParameter Tag.1.Key", e)
	}

	specs := []struct {
		name     string
		body     string
		want     []TagSpecification
		wantCode string
		wantIn   string
	}{
		{name: "two specs", body: "TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=lease&TagSpecification.1.Tag.1.Value=3h&TagSpecification.1.Tag.2.Key=Name&TagSpecification.1.Tag.2.Value=web&TagSpecification.2.ResourceType=volume",
			want: []TagSpecification{{ResourceType: "instance", Tags: []Tag{{"lease", "3h"}, {"Name", "web"}}}, {ResourceType: "volume", Tags: []Tag{}}}},
		{name: "no resource type", body: "TagSpecification.1.Tag.1.Key=a", wantCode: CodeMissingParameter, wantIn: "TagSpecification.1.ResourceType"},
		{name: "no key", body: "TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.4.Value=a", wantCode: CodeMissingParameter, wantIn: "TagSpecification.1.Tag.4.Key"},
		{name: "bad tag index", body: "TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.x.Key=a", wantCode: CodeInvalidParameterValue, wantIn: "TagSpecification.1.Tag.x.Key"},
		{name: "unknown field in tag", body: "TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=a&TagSpecification.1.Tag.1.Colour=red", wantCode: CodeUnknownParameter, wantIn: "TagSpecification.1.Tag.1.Colour"},
		{name: "unknown field in spec", body: "TagSpecification.1.ResourceType=instance&TagSpecification.1.Tags.1.Key=a", wantCode: CodeUnknownParameter, wantIn: "TagSpecification.1.Tags.1.Key"},
	}
	for _, tt := range specs {
		t.Run(tt.name, func(t *testing.T) {
			got, e := mustParse(t, tt.body).TagSpecifications()
			if diff := cmp.Diff(tt.wantCode, errCode(e)); diff != "" {
				t.Fatalf("code (-want +got):\n%s\nerror: %v", diff, e)
			}
			if e != nil {
				if !strings.Contains(e.Message, tt.wantIn) {
					t.Errorf("message %q does not name %q", e.Message, tt.wantIn)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("TagSpecifications (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorXML(t *testing.T) {
	got := string(MarshalError(InvalidParameterValue("Count", "<&>", "Bad."), "req-1"))
	want := `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>InvalidParameterValue</Code><Message>Value (&lt;&amp;&gt;) for parameter Count is invalid. Bad.</Message></Error></Errors><RequestID>req-1</RequestID></Response>`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("error XML (-want +got):\n%s", diff)
	}
	statuses := map[*Error]int{
		AuthFailure("x"):                    http.StatusUnauthorized,
		InsufficientInstanceCapacity("x"):   http.StatusInternalServerError,
		UnauthorizedOperation("x"):          http.StatusForbidden,
		RequestLimitExceeded():              http.StatusServiceUnavailable,
		InvalidInstanceIDNotFound("i-1"):    http.StatusBadRequest,
		InvalidKeyPairDuplicate("k"):        http.StatusBadRequest,
		IdempotentParameterMismatch("tok"):  http.StatusBadRequest,
		InstanceLimitExceeded("x"):          http.StatusBadRequest,
		DryRunOperation():                   http.StatusPreconditionFailed,
		InvalidAMIIDMalformed("x"):          http.StatusBadRequest,
		Unavailable("x"):                    http.StatusServiceUnavailable,
		InternalError():                     http.StatusInternalServerError,
		InvalidParameterCombination("x"):    http.StatusBadRequest,
		UnknownParameter("x"):               http.StatusBadRequest,
		InvalidID("x"):                      http.StatusBadRequest,
		InvalidKeyPairFormat("x"):           http.StatusBadRequest,
		InvalidKeyPairNotFound("x"):         http.StatusBadRequest,
		InvalidAMIIDNotFound("x"):           http.StatusBadRequest,
		InvalidInstanceIDMalformed("x"):     http.StatusBadRequest,
		RequestExpired("x"):                 http.StatusBadRequest,
		IncompleteSignature("x"):            http.StatusBadRequest,
		MissingParameter("x"):               http.StatusBadRequest,
		InvalidAction("x"):                  http.StatusBadRequest,
		InvalidInstanceIDNotFound("a", "b"): http.StatusBadRequest,
	}
	for e, want := range statuses {
		if e.Status != want {
			t.Errorf("%s: status %d, want %d", e.Code, e.Status, want)
		}
	}
}
