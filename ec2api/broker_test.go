package ec2api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/server/servertest"
	"github.com/fairlease/fairlease/lease"
)

const (
	fuzzAKID   = "AKIAFUZZFUZZFUZZFUZZ"
	fuzzSecret = "fuzz-secret-fuzz-secret-fuzz-secret-0000"
)

// brokerSite is a one-node Raft broker with a 16-core host, ada of
// physics with an access key, and an image she may use.
func brokerSite(t testing.TB) *Server {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := servertest.Start(ctx, servertest.Options{Nodes: 1, InMem: true, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	b := c.Nodes[0].Server
	for _, cmd := range []struct {
		t    broker.CommandType
		body any
	}{
		{broker.CmdPutUser, broker.User{Name: "ada", Group: "physics", Role: broker.RoleUser}},
		{broker.CmdPutAccessKey, broker.AccessKey{ID: fuzzAKID, User: "ada", Secret: fuzzSecret}},
		{broker.CmdPutHost, broker.Host{Name: "h1", Capacity: lease.Resources{Cores: 16, MemoryMiB: 65536}}},
		{broker.CmdPutImage, broker.Image{Name: "base", Digest: strings.Repeat("ab", 32), Size: 1 << 20, Format: "raw", Group: "physics"}},
	} {
		c, _ := broker.NewCommand(cmd.t, time.Now(), "root", cmd.body)
		if _, err := b.Propose(ctx, c); err != nil {
			t.Fatalf("%s: %v", cmd.t, err)
		}
	}
	return NewBroker(BrokerConfig{Backend: b, Region: "fairlease", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// FuzzBrokerActions sends signed requests with random parameters to the
// EC2 API of a real broker: a client's mistake is never a 500 (only a
// capacity answer is, as in EC2) and never a panic.
func FuzzBrokerActions(f *testing.F) {
	ami := broker.ImageID("base")
	for _, s := range []string{
		"Action=RunInstances&ImageId=" + ami + "&MinCount=2&MaxCount=2&InstanceType=t3.small&ClientToken=x&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=fairlease:duration&TagSpecification.1.Tag.1.Value=600",
		"Action=RunInstances&ImageId=" + ami + "&MinCount=99&MaxCount=99",
		"Action=RunInstances&ImageId=ami-nope&MinCount=1&MaxCount=1&UserData=%%%",
		"Action=DescribeInstances&Filter.1.Name=tag:Name&Filter.1.Value.1=a*&MaxResults=5&NextToken=zz",
		"Action=DescribeInstanceStatus&IncludeAllInstances=true&InstanceId.1=i-0",
		"Action=TerminateInstances&InstanceId.1=i-00000000000000000",
		"Action=DescribeImages&Owner.1=self&ExecutableBy.1=all&Filter.1.Name=name&Filter.1.Value.1=b*",
		"Action=RegisterImage&Name=copy&ImageLocation=fairlease/base",
		"Action=DeregisterImage&ImageId=" + ami,
		"Action=DescribeInstanceTypes&InstanceType.1=t3.micro&Filter.1.Name=vcpu-info.default-vcpus&Filter.1.Value.1=1",
		"Action=CreateKeyPair&KeyName=k&KeyType=ed25519",
		"Action=ImportKeyPair&KeyName=k2&PublicKeyMaterial=c3NoLWVkMjU1MTkgQUFBQQ==",
		"Action=DescribeKeyPairs&KeyName.1=k",
		"Action=DeleteKeyPair&KeyName=k",
		"Action=CreateTags&ResourceId.1=" + ami + "&Tag.1.Key=a&Tag.1.Value=b",
		"Action=DeleteTags&ResourceId.1=" + ami,
		"Action=DescribeTags&Filter.1.Name=key&Filter.1.Value.1=a",
	} {
		f.Add(s)
	}
	h := brokerSite(f)
	signer := v4.NewSigner()
	creds := aws.Credentials{AccessKeyID: fuzzAKID, SecretAccessKey: fuzzSecret}
	f.Fuzz(func(t *testing.T, body string) {
		r := &http.Request{Method: "POST", URL: &url.URL{Path: "/"}, Host: "ec2.fairlease", Header: http.Header{},
			Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		sum := sha256.Sum256([]byte(body))
		if err := signer.SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "ec2", "fairlease", time.Now()); err != nil {
			t.Skip(err)
		}
		r.Body = io.NopCloser(strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == http.StatusInternalServerError && !strings.Contains(w.Body.String(), "<Code>InsufficientInstanceCapacity</Code>") {
			t.Fatalf("500 for %q: %s", body, w.Body)
		}
		checkXML(t, w.Code, w.Body.Bytes())
	})
}
