package ec2api

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/server/servertest"
	"github.com/fairlease/fairlease/lease"
)

// flavorSite is a three-node broker with a 16-core host and ada of physics,
// and an EC2 API on every node, each with its SDK client.
func flavorSite(t *testing.T) (*servertest.Cluster, []*ec2.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := servertest.Start(ctx, servertest.Options{Nodes: 3, InMem: true, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	propose(t, c,
		broker.CmdPutUser, broker.User{Name: "ada", Group: "physics", Role: broker.RoleUser},
		broker.CmdPutAccessKey, broker.AccessKey{ID: fuzzAKID, User: "ada", Secret: fuzzSecret},
		broker.CmdPutHost, broker.Host{Name: "h1", Capacity: lease.Resources{Cores: 16, MemoryMiB: 65536}},
		broker.CmdPutImage, broker.Image{Name: "base", Digest: strings.Repeat("ab", 32), Size: 1 << 20, Format: "raw", Group: "physics"},
	)
	var clients []*ec2.Client
	for _, n := range c.Nodes {
		srv := httptest.NewServer(NewBroker(BrokerConfig{Backend: n.Server, Region: "fairlease", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
		t.Cleanup(srv.Close)
		clients = append(clients, ec2.New(ec2.Options{
			BaseEndpoint: aws.String(srv.URL), Region: "fairlease", RetryMaxAttempts: 1,
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: fuzzAKID, SecretAccessKey: fuzzSecret}, nil
			}),
		}))
	}
	return c, clients
}

// propose proposes (type, body) pairs as root through the leader, then
// waits for every node to apply them.
func propose(t *testing.T, c *servertest.Cluster, cmds ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(cmds); i += 2 {
		cmd, _ := broker.NewCommand(cmds[i].(broker.CommandType), time.Now(), "root", cmds[i+1])
		if _, err := l.Server.Propose(ctx, cmd); err != nil {
			t.Fatalf("%s: %v", cmds[i], err)
		}
	}
	if err := c.Converge(ctx); err != nil {
		t.Fatal(err)
	}
}

// instanceTypes is what DescribeInstanceTypes answers: "name cores memory".
func instanceTypes(t *testing.T, c *ec2.Client) []string {
	t.Helper()
	out, err := c.DescribeInstanceTypes(context.Background(), &ec2.DescribeInstanceTypesInput{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range out.InstanceTypes {
		got = append(got, fmt.Sprint(it.InstanceType, " ", aws.ToInt32(it.VCpuInfo.DefaultVCpus), " ", aws.ToInt64(it.MemoryInfo.SizeInMiB)))
	}
	return got
}

func TestFlavorsFollowThePolicy(t *testing.T) {
	c, clients := flavorSite(t)
	ctx := context.Background()

	builtIn := []string{"t3.nano 1 512", "t3.micro 1 1024", "t3.small 1 2048", "c5.large 2 4096", "t3.medium 2 4096",
		"m5.large 2 8192", "t3.large 2 8192", "c5.xlarge 4 8192", "m5.xlarge 4 16384", "c5.2xlarge 8 16384", "m5.2xlarge 8 32768"}
	for i, cl := range clients {
		if diff := cmp.Diff(builtIn, instanceTypes(t, cl)); diff != "" {
			t.Errorf("node %d, default policy: instance types (-want +got):\n%s", i, diff)
		}
	}

	propose(t, c, broker.CmdSetPolicy, broker.SetPolicy{Text: `
[flavors]
"hpc.16x64" = { cores = 16, memory = "64GiB" }
tiny = { cores = 1, memory = "1GiB" }
`})
	want := []string{"tiny 1 1024", "hpc.16x64 16 65536"}
	for i, cl := range clients {
		if diff := cmp.Diff(want, instanceTypes(t, cl)); diff != "" {
			t.Errorf("node %d, after the new policy: instance types (-want +got):\n%s", i, diff)
		}
	}

	follower := clients[slices.Index(c.Nodes, c.Followers()[0])]
	run := func(typ types.InstanceType, userData string) (*ec2.RunInstancesOutput, error) {
		in := &ec2.RunInstancesInput{ImageId: aws.String(broker.ImageID("base")), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: typ}
		if userData != "" {
			in.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(userData)))
		}
		return follower.RunInstances(ctx, in)
	}
	if _, err := run("t3.small", ""); apiCode(err) != "InvalidParameterValue" {
		t.Errorf("RunInstances t3.small after the policy dropped it: got %v, want InvalidParameterValue", err)
	}
	script := "#!/bin/sh\necho from the user\n"
	out, err := run("hpc.16x64", script)
	if err != nil {
		t.Fatalf("RunInstances hpc.16x64: %v", err)
	}
	if got := out.Instances[0].InstanceType; got != "hpc.16x64" {
		t.Errorf("instance type %q, want hpc.16x64", got)
	}

	// The lease has the flavor's shape, and its assignment carries the
	// user data to the host's agent.
	propose(t, c)
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var shapes []lease.Shape
	var userData []string
	l.Server.Read(ctx, false, func(st *broker.State) error {
		for _, le := range st.Leases(func(*broker.Lease) bool { return true }) {
			shapes = append(shapes, le.Request.Shape)
		}
		for _, a := range st.Assignments("h1") {
			userData = append(userData, string(a.UserData))
		}
		return nil
	})
	if diff := cmp.Diff([]lease.Shape{{Cores: 16, MemoryMiB: 65536, Image: "base"}}, shapes); diff != "" {
		t.Errorf("lease shapes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{script}, userData); diff != "" {
		t.Errorf("user data of h1's assignments (-want +got):\n%s", diff)
	}
}
