package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/fairlease/fairlease/broker/api"
)

// awsCLI is Debian's stock aws CLI; another aws may come first on PATH.
const awsCLI = "/usr/bin/aws"

// awsRun runs the stock aws CLI against endpoint with key and decodes its
// JSON output into out (when not nil). It returns the CLI's stderr.
func awsRun(t *testing.T, endpoint string, key api.NewAccessKey, out any, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, awsCLI, append([]string{"--endpoint-url", endpoint, "--region", "fairlease", "--output", "json", "ec2"}, args...)...)
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "AWS_ACCESS_KEY_ID=" + key.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + key.SecretAccessKey,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil && out != nil {
		if jerr := json.Unmarshal(stdout.Bytes(), out); jerr != nil {
			t.Fatalf("aws ec2 %s printed %q: %v", strings.Join(args, " "), stdout.String(), jerr)
		}
	}
	return stderr.String(), err
}

type awsInstance struct {
	InstanceID   string `json:"InstanceId"`
	ImageID      string `json:"ImageId"`
	InstanceType string
	KeyName      string
	State        struct{ Name string }
	Tags         []struct{ Key, Value string }
}

// TestAWSCLIAgainstUp drives a running fairlease up with Debian's stock
// aws CLI and checks every answer it parses.
func TestAWSCLIAgainstUp(t *testing.T) {
	if _, err := os.Stat(awsCLI); err != nil {
		t.Fatalf("%s is missing: install it with scripts/deps.sh ci (Debian package awscli)", awsCLI)
	}
	env := startUp(t, "--driver", "sim", "--hosts", "2", "--host-cores", "8")
	ep := env["FAIRLEASE_EC2_ENDPOINT"]
	if !strings.HasPrefix(ep, "http://127.0.0.1:") {
		t.Fatalf("up.env has FAIRLEASE_EC2_ENDPOINT=%q", ep)
	}
	admin := func(args ...string) result {
		t.Helper()
		r := run(t, append([]string{"--addr", env["FAIRLEASE_ADDR"], "--token", env["FAIRLEASE_TOKEN"], "--output", "json"}, args...)...)
		if r.code != 0 {
			t.Fatalf("fairlease %s: %s", strings.Join(args, " "), r.stderr)
		}
		return r
	}
	admin("user", "create", "ada", "--group", "physics")
	admin("user", "create", "bob", "--group", "physics")
	keyOf := func(user string) api.NewAccessKey {
		var k api.NewAccessKey
		if err := json.Unmarshal([]byte(admin("user", "keys", "create", "--user", user).stdout), &k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	ada, bob := keyOf("ada"), keyOf("bob")
	img := filepath.Join(t.TempDir(), "disk.raw")
	os.WriteFile(img, bytes.Repeat([]byte("fairlease"), 1000), 0o644)
	var tok api.NewTokenInfo
	json.Unmarshal([]byte(admin("token", "create", "--user", "ada").stdout), &tok)
	if r := run(t, "--addr", env["FAIRLEASE_ADDR"], "--token", tok.Token, "image", "push", img, "--name", "mpi-base", "--format", "raw"); r.code != 0 {
		t.Fatalf("image push as ada: %s", r.stderr)
	}

	var images struct {
		Images []struct{ ImageID, Name string }
	}
	if stderr, err := awsRun(t, ep, ada, &images, "describe-images"); err != nil {
		t.Fatalf("describe-images: %v: %s", err, stderr)
	}
	if len(images.Images) != 1 || images.Images[0].Name != "mpi-base" || !strings.HasPrefix(images.Images[0].ImageID, "ami-") {
		t.Fatalf("describe-images: %+v, want mpi-base", images)
	}
	ami := images.Images[0].ImageID

	var kp struct{ KeyName, KeyFingerprint, KeyMaterial, KeyPairID string }
	if stderr, err := awsRun(t, ep, ada, &kp, "create-key-pair", "--key-name", "laptop"); err != nil {
		t.Fatalf("create-key-pair: %v: %s", err, stderr)
	}
	if kp.KeyName != "laptop" || !strings.HasPrefix(kp.KeyMaterial, "-----BEGIN RSA PRIVATE KEY-----") || !strings.HasPrefix(kp.KeyFingerprint, "SHA256:") {
		t.Errorf("create-key-pair: %+v", kp)
	}

	var run1 struct {
		ReservationID string `json:"ReservationId"`
		Instances     []awsInstance
	}
	stderr, err := awsRun(t, ep, ada, &run1, "run-instances", "--image-id", ami, "--count", "3:3", "--instance-type", "t3.medium",
		"--key-name", "laptop", "--client-token", "mpi-run-1",
		"--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=mpi},{Key=fairlease:duration,Value=600}]")
	if err != nil {
		t.Fatalf("run-instances: %v: %s", err, stderr)
	}
	if len(run1.Instances) != 3 || run1.Instances[0].InstanceType != "t3.medium" || run1.Instances[0].KeyName != "laptop" || run1.Instances[0].ImageID != ami {
		t.Fatalf("run-instances: %+v", run1)
	}
	// The same client token again: the same reservation, not a second.
	var again struct {
		ReservationID string `json:"ReservationId"`
	}
	if stderr, err := awsRun(t, ep, ada, &again, "run-instances", "--image-id", ami, "--count", "3:3", "--instance-type", "t3.medium",
		"--key-name", "laptop", "--client-token", "mpi-run-1",
		"--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=mpi},{Key=fairlease:duration,Value=600}]"); err != nil || again.ReservationID != run1.ReservationID {
		t.Errorf("run-instances again with the token: %s %v %s, want reservation %s", again.ReservationID, err, stderr, run1.ReservationID)
	}
	if stderr, err := awsRun(t, ep, ada, nil, "run-instances", "--image-id", ami, "--count", "2:2", "--client-token", "mpi-run-1"); err == nil || !strings.Contains(stderr, "IdempotentParameterMismatch") {
		t.Errorf("the token with other parameters: %v %s, want IdempotentParameterMismatch", err, stderr)
	}

	// The simulated hosts boot the VMs within seconds.
	var desc struct {
		Reservations []struct {
			ReservationID string `json:"ReservationId"`
			Instances     []awsInstance
		}
	}
	waitUntil(t, 20*time.Second, "3 running instances tagged Name=mpi", func() error {
		desc.Reservations = nil
		if stderr, err := awsRun(t, ep, ada, &desc, "describe-instances", "--filters", "Name=tag:Name,Values=mpi", "Name=instance-state-name,Values=running"); err != nil {
			t.Fatalf("describe-instances: %v: %s", err, stderr)
		}
		if len(desc.Reservations) != 1 || len(desc.Reservations[0].Instances) != 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if desc.Reservations[0].ReservationID != run1.ReservationID {
		t.Errorf("describe-instances: reservation %s, want %s", desc.Reservations[0].ReservationID, run1.ReservationID)
	}
	var none struct{ Reservations []any }
	if _, err := awsRun(t, ep, ada, &none, "describe-instances", "--filters", "Name=tag:Name,Values=other"); err != nil || len(none.Reservations) != 0 {
		t.Errorf("a filter that matches nothing: %+v %v", none, err)
	}
	// Another user's instances are invisible.
	if _, err := awsRun(t, ep, bob, &none, "describe-instances"); err != nil || len(none.Reservations) != 0 {
		t.Errorf("bob sees %d reservations of ada's (%v), want none", len(none.Reservations), err)
	}
	if stderr, err := awsRun(t, ep, bob, nil, "terminate-instances", "--instance-ids", run1.Instances[0].InstanceID); err == nil || !strings.Contains(stderr, "InvalidInstanceID.NotFound") {
		t.Errorf("bob terminating ada's instance: %v %s, want InvalidInstanceID.NotFound", err, stderr)
	}

	var status struct {
		InstanceStatuses []struct {
			InstanceID    string `json:"InstanceId"`
			InstanceState struct{ Name string }
			Events        []struct {
				Code      string
				NotBefore time.Time
			}
		}
	}
	if stderr, err := awsRun(t, ep, ada, &status, "describe-instance-status"); err != nil {
		t.Fatalf("describe-instance-status: %v: %s", err, stderr)
	}
	if len(status.InstanceStatuses) != 3 {
		t.Fatalf("describe-instance-status: %+v, want 3", status)
	}
	for _, s := range status.InstanceStatuses {
		if len(s.Events) != 1 || s.Events[0].Code != "instance-retirement" || s.InstanceState.Name != "running" {
			t.Errorf("status %+v: want running with the lease end as an instance-retirement event", s)
			continue
		}
		// The lease was asked for 600 s.
		if d := time.Until(s.Events[0].NotBefore); d < 500*time.Second || d > 600*time.Second {
			t.Errorf("lease end event %s is %s away, want about 10 minutes", s.Events[0].NotBefore, d)
		}
	}

	var term struct {
		TerminatingInstances []struct {
			InstanceID    string `json:"InstanceId"`
			CurrentState  struct{ Name string }
			PreviousState struct{ Name string }
		}
	}
	ids := []string{"terminate-instances", "--instance-ids"}
	for _, in := range run1.Instances {
		ids = append(ids, in.InstanceID)
	}
	if stderr, err := awsRun(t, ep, ada, &term, ids...); err != nil {
		t.Fatalf("terminate-instances: %v: %s", err, stderr)
	}
	if len(term.TerminatingInstances) != 3 || term.TerminatingInstances[0].CurrentState.Name != "shutting-down" || term.TerminatingInstances[0].PreviousState.Name != "running" {
		t.Errorf("terminate-instances: %+v", term)
	}
	if _, err := awsRun(t, ep, ada, &desc, "describe-instances", "--filters", "Name=instance-state-name,Values=terminated"); err != nil || len(desc.Reservations) != 1 || len(desc.Reservations[0].Instances) != 3 {
		t.Errorf("terminated instances: %+v %v, want the 3 listed as terminated", desc, err)
	}

	// A wrong secret: AuthFailure.
	wrong := ada
	wrong.SecretAccessKey = strings.Repeat("x", 40)
	if stderr, err := awsRun(t, ep, wrong, nil, "describe-instances"); err == nil || !strings.Contains(stderr, "AuthFailure") {
		t.Errorf("wrong secret: %v %s, want AuthFailure", err, stderr)
	}

	// No room: InsufficientInstanceCapacity, through the Go SDK without
	// its retries (the CLI would retry a 500 three times).
	c := ec2.New(ec2.Options{BaseEndpoint: aws.String(ep), Region: "fairlease", RetryMaxAttempts: 1,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: ada.AccessKeyID, SecretAccessKey: ada.SecretAccessKey}, nil
		})})
	_, err = c.RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(40), MaxCount: aws.Int32(40)})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InsufficientInstanceCapacity" {
		t.Errorf("40 VMs on a 16-core site: %v, want InsufficientInstanceCapacity", err)
	}
}
