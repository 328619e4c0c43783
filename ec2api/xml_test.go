package ec2api

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/google/go-cmp/cmp"
)

// deserializerNames reads the SDK's EC2 deserializers, the machine-readable
// spec of the element names, and returns the names each function accepts.
func deserializerNames(t *testing.T) map[string]map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-sdk-go-v2/service/ec2").Output()
	if err != nil {
		t.Fatalf("locate service/ec2: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "deserializers.go"))
	if err != nil {
		t.Fatal(err)
	}
	funcRE := regexp.MustCompile(`(?m)^func (awsEc2query_deserialize\w+)\(`)
	nameRE := regexp.MustCompile(`EqualFold\("([^"]+)"`)
	names := map[string]map[string]bool{}
	locs := funcRE.FindAllSubmatchIndex(src, -1)
	for i, loc := range locs {
		end := len(src)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		set := map[string]bool{}
		for _, m := range nameRE.FindAllSubmatch(src[loc[1]:end], -1) {
			set[string(m[1])] = true
		}
		names[string(src[loc[2]:loc[3]])] = set
	}
	return names
}

// xmlNames returns the element names of a struct type's fields, with
// embedded structs flattened, leaving out the request ID (read by the SDK
// outside the deserializers) and XMLName.
func xmlNames(typ reflect.Type) []string {
	var names []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Name == "XMLName" || f.Type == reflect.TypeFor[Meta]() {
			continue
		}
		if f.Anonymous {
			names = append(names, xmlNames(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("xml"), ",")
		name, _, _ = strings.Cut(name, ">")
		names = append(names, name)
	}
	return names
}

// TestElementNames checks every element name against the SDK's
// deserializers, case-sensitively, as the aws CLI matches them.
func TestElementNames(t *testing.T) {
	spec := deserializerNames(t)
	const doc, op = "awsEc2query_deserializeDocument", "awsEc2query_deserializeOpDocument"
	tests := []struct {
		v  any
		fn string
	}{
		{RunInstancesResponse{}, op + "RunInstancesOutput"},
		{DescribeInstancesResponse{}, op + "DescribeInstancesOutput"},
		{Reservation{}, doc + "Reservation"},
		{Instance{}, doc + "Instance"},
		{InstanceState{}, doc + "InstanceState"},
		{Placement{}, doc + "Placement"},
		{GroupIdentifier{}, doc + "GroupIdentifier"},
		{StateReason{}, doc + "StateReason"},
		{Tag{}, doc + "Tag"},
		{TerminateInstancesResponse{}, op + "TerminateInstancesOutput"},
		{InstanceStateChange{}, doc + "InstanceStateChange"},
		{DescribeInstanceStatusResponse{}, op + "DescribeInstanceStatusOutput"},
		{InstanceStatus{}, doc + "InstanceStatus"},
		{InstanceStatusEvent{}, doc + "InstanceStatusEvent"},
		{InstanceStatusSummary{}, doc + "InstanceStatusSummary"},
		{InstanceStatusDetails{}, doc + "InstanceStatusDetails"},
		{DescribeImagesResponse{}, op + "DescribeImagesOutput"},
		{Image{}, doc + "Image"},
		{RegisterImageResponse{}, op + "RegisterImageOutput"},
		{DeregisterImageResponse{}, op + "DeregisterImageOutput"},
		{DescribeInstanceTypesResponse{}, op + "DescribeInstanceTypesOutput"},
		{InstanceTypeInfo{}, doc + "InstanceTypeInfo"},
		{VCPUInfo{}, doc + "VCpuInfo"},
		{MemoryInfo{}, doc + "MemoryInfo"},
		{ProcessorInfo{}, doc + "ProcessorInfo"},
		{CreateKeyPairResponse{}, op + "CreateKeyPairOutput"},
		{ImportKeyPairResponse{}, op + "ImportKeyPairOutput"},
		{DescribeKeyPairsResponse{}, op + "DescribeKeyPairsOutput"},
		{KeyPairInfo{}, doc + "KeyPairInfo"},
		{DeleteKeyPairResponse{}, op + "DeleteKeyPairOutput"},
		{DescribeTagsResponse{}, op + "DescribeTagsOutput"},
		{TagDescription{}, doc + "TagDescription"},
		{DescribeAvailabilityZonesResponse{}, op + "DescribeAvailabilityZonesOutput"},
		{AvailabilityZoneInfo{}, doc + "AvailabilityZone"},
		{DescribeRegionsResponse{}, op + "DescribeRegionsOutput"},
		{RegionInfo{}, doc + "Region"},
	}
	for _, tt := range tests {
		typ := reflect.TypeOf(tt.v)
		t.Run(typ.Name(), func(t *testing.T) {
			known, ok := spec[tt.fn]
			if !ok {
				t.Fatalf("no deserializer %s in the SDK", tt.fn)
			}
			for _, name := range xmlNames(typ) {
				if !known[name] {
					t.Errorf("element %q is not one %s reads (case matters)", name, tt.fn)
				}
			}
		})
	}
}

// TestSDKParsesResponses serves one canned response per type and reads it
// back with the SDK, to check nesting, sets, numbers and timestamps.
func TestSDKParsesResponses(t *testing.T) {
	launch := time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC)
	end := launch.Add(3 * time.Hour)
	inst := Instance{
		InstanceID: "i-0abc", ImageID: "ami-1", InstanceState: StateRunning, AMILaunchIndex: 2,
		InstanceType: "m1.large", LaunchTime: Time(launch), Placement: Placement{AvailabilityZone: "fairlease-west-1a"},
		PrivateIPAddress: "10.0.0.5", KeyName: "k", ClientToken: "tok",
		TagSet: Set[Tag]{{Key: "fairlease:lease", Value: "L1"}},
	}
	endTime := Time(end)
	cfg := testConfig(time.Now)
	cfg.Actions = map[string]Action{
		"DescribeInstances": func(context.Context, Caller, *Params) (any, *Error) {
			return &DescribeInstancesResponse{ReservationSet: Set[Reservation]{{ReservationID: "r-1", OwnerID: "alice", InstancesSet: Set[Instance]{inst}}}, NextToken: "n2"}, nil
		},
		"TerminateInstances": func(context.Context, Caller, *Params) (any, *Error) {
			return &TerminateInstancesResponse{InstancesSet: Set[InstanceStateChange]{{InstanceID: "i-0abc", CurrentState: StateShuttingDown, PreviousState: StateRunning}}}, nil
		},
		"DescribeInstanceStatus": func(context.Context, Caller, *Params) (any, *Error) {
			return &DescribeInstanceStatusResponse{InstanceStatusSet: Set[InstanceStatus]{{
				InstanceID: "i-0abc", AvailabilityZone: "fairlease-west-1a", InstanceState: StateRunning,
				SystemStatus:   InstanceStatusSummary{Status: "ok", Details: Set[InstanceStatusDetails]{{Name: "reachability", Status: "passed"}}},
				InstanceStatus: InstanceStatusSummary{Status: "ok"},
				EventsSet:      Set[InstanceStatusEvent]{{Code: EventLeaseEnd, Description: "lease L1 ends", NotBefore: Time(end), NotAfter: &endTime}},
			}}}, nil
		},
		"DescribeInstanceTypes": func(context.Context, Caller, *Params) (any, *Error) {
			return &DescribeInstanceTypesResponse{InstanceTypeSet: Set[InstanceTypeInfo]{{
				InstanceType: "m1.large", CurrentGeneration: true, VCPUInfo: VCPUInfo{DefaultVCPUs: 4}, MemoryInfo: MemoryInfo{SizeInMiB: 8192},
				ProcessorInfo: ProcessorInfo{SupportedArchitectures: Set[string]{"x86_64"}},
			}}}, nil
		},
		"CreateKeyPair": func(context.Context, Caller, *Params) (any, *Error) {
			return &CreateKeyPairResponse{KeyName: "k", KeyFingerprint: "aa:bb", KeyMaterial: "-----BEGIN OPENSSH PRIVATE KEY-----\n...", KeyPairID: "key-1"}, nil
		},
		"DescribeTags": func(context.Context, Caller, *Params) (any, *Error) {
			return &DescribeTagsResponse{TagSet: Set[TagDescription]{{ResourceID: "i-0abc", ResourceType: "instance", Key: "a", Value: "b"}}}, nil
		},
		"DeregisterImage": func(context.Context, Caller, *Params) (any, *Error) {
			return &DeregisterImageResponse{Return: true}, nil
		},
	}
	srv := startServer(t, cfg)
	c := sdkClient(srv.URL, testSecret)
	ctx := context.Background()

	di, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	got := di.Reservations[0].Instances[0]
	type instView struct {
		ID, Image, State, Type, AZ, IP, Key, Token, Tag string
		Code, Index                                     int32
		Launch                                          time.Time
		Owner, Reservation, Next                        string
	}
	wantInst := instView{"i-0abc", "ami-1", "running", "m1.large", "fairlease-west-1a", "10.0.0.5", "k", "tok", "fairlease:lease=L1", 16, 2, launch, "alice", "r-1", "n2"}
	gotInst := instView{aws.ToString(got.InstanceId), aws.ToString(got.ImageId), string(got.State.Name), string(got.InstanceType),
		aws.ToString(got.Placement.AvailabilityZone), aws.ToString(got.PrivateIpAddress), aws.ToString(got.KeyName), aws.ToString(got.ClientToken),
		aws.ToString(got.Tags[0].Key) + "=" + aws.ToString(got.Tags[0].Value), aws.ToInt32(got.State.Code), aws.ToInt32(got.AmiLaunchIndex),
		aws.ToTime(got.LaunchTime), aws.ToString(di.Reservations[0].OwnerId), aws.ToString(di.Reservations[0].ReservationId), aws.ToString(di.NextToken)}
	if diff := cmp.Diff(wantInst, gotInst); diff != "" {
		t.Errorf("DescribeInstances (-want +got):\n%s", diff)
	}

	ti, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{"i-0abc"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("i-0abc running→shutting-down", aws.ToString(ti.TerminatingInstances[0].InstanceId)+" "+
		string(ti.TerminatingInstances[0].PreviousState.Name)+"→"+string(ti.TerminatingInstances[0].CurrentState.Name)); diff != "" {
		t.Errorf("TerminateInstances (-want +got):\n%s", diff)
	}

	st, err := c.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{})
	if err != nil {
		t.Fatal(err)
	}
	ev := st.InstanceStatuses[0].Events[0]
	if diff := cmp.Diff("instance-retirement lease L1 ends "+end.String()+" ok passed", string(ev.Code)+" "+aws.ToString(ev.Description)+" "+
		aws.ToTime(ev.NotBefore).String()+" "+string(st.InstanceStatuses[0].SystemStatus.Status)+" "+string(st.InstanceStatuses[0].SystemStatus.Details[0].Status)); diff != "" {
		t.Errorf("DescribeInstanceStatus (-want +got):\n%s", diff)
	}

	it, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{})
	if err != nil {
		t.Fatal(err)
	}
	ty := it.InstanceTypes[0]
	if diff := cmp.Diff("m1.large 4 8192 x86_64 true", fmt.Sprint(ty.InstanceType, " ", aws.ToInt32(ty.VCpuInfo.DefaultVCpus), " ",
		aws.ToInt64(ty.MemoryInfo.SizeInMiB), " ", ty.ProcessorInfo.SupportedArchitectures[0], " ", aws.ToBool(ty.CurrentGeneration))); diff != "" {
		t.Errorf("DescribeInstanceTypes (-want +got):\n%s", diff)
	}

	kp, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("k aa:bb key-1", aws.ToString(kp.KeyName)+" "+aws.ToString(kp.KeyFingerprint)+" "+aws.ToString(kp.KeyPairId)); diff != "" {
		t.Errorf("CreateKeyPair (-want +got):\n%s", diff)
	}

	tg, err := c.DescribeTags(ctx, &ec2.DescribeTagsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("i-0abc instance a b", aws.ToString(tg.Tags[0].ResourceId)+" "+string(tg.Tags[0].ResourceType)+" "+aws.ToString(tg.Tags[0].Key)+" "+aws.ToString(tg.Tags[0].Value)); diff != "" {
		t.Errorf("DescribeTags (-want +got):\n%s", diff)
	}

	dr, err := c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String("ami-1")})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(dr.Return) {
		t.Errorf("DeregisterImage: Return = false, want true")
	}
}

func TestSetMarshal(t *testing.T) {
	type doc struct {
		XMLName  xml.Name    `xml:"d"`
		Always   Set[string] `xml:"always"`
		Optional Set[Tag]    `xml:"optional,omitempty"`
		Full     Set[Tag]    `xml:"full,omitempty"`
	}
	b, err := xml.Marshal(doc{Full: Set[Tag]{{Key: "k", Value: "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `<d><always></always><full><item><key>k</key><value>v</value></item></full></d>`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var back doc
	if err := xml.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Set[Tag]{{Key: "k", Value: "v"}}, back.Full); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
