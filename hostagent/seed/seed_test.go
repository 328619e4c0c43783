package seed_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kdomanski/iso9660"
	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/fairlease/fairlease/hostagent/seed"
	"github.com/fairlease/fairlease/hostagent/seed/seedtest"
)

// canonical is an authorized_keys line without its comment.
func canonical(t testing.TB, line string) string {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n")
}

func validConfig() seed.Config {
	clusterPub, clusterPriv := seedtest.KeyPair(1)
	user1, _ := seedtest.KeyPair(2)
	user2, _ := seedtest.KeyPair(3)
	return seed.Config{
		InstanceID: "fl-l1-0",
		Hostname:   "node-0",
		Address:    "10.77.0.10",
		Prefix:     24,
		Peers: []seed.Peer{
			{Name: "node-0", Address: "10.77.0.10"},
			{Name: "node-1", Address: "10.77.0.11"},
		},
		ClusterPublicKey:  clusterPub,
		ClusterPrivateKey: clusterPriv,
		// Options and comments are dropped; two keys in one entry are two keys.
		UserKeys: []string{`no-pty,command="echo '\n- evil" ` + user1, user2 + "\n# comment\n" + user1},
	}
}

func TestRender(t *testing.T) {
	c := validConfig()
	got, err := seed.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	user1, user2, cluster := canonical(t, c.UserKeys[0]), canonical(t, c.UserKeys[1]), canonical(t, c.ClusterPublicKey)
	want := seed.Files{
		MetaData: []byte("instance-id: 'fl-l1-0'\nlocal-hostname: 'node-0'\n"),
		UserData: []byte(`#cloud-config
hostname: 'node-0'
fqdn: 'node-0'
ssh_authorized_keys:
  - ` + user1 + `
  - ` + user2 + `
  - ` + user1 + `
  - ` + cluster + `
write_files:
  - path: /etc/fairlease/peers
    permissions: '0644'
    encoding: b64
    content: ` + b64("node-0 10.77.0.10\nnode-1 10.77.0.11\n") + `
  - path: /etc/fairlease/cluster_key.pub
    permissions: '0644'
    encoding: b64
    content: ` + b64(cluster+"\n") + `
  - path: /root/.ssh/id_ed25519
    permissions: '0600'
    encoding: b64
    content: ` + b64(c.ClusterPrivateKey) + `
`),
		NetworkConfig: []byte(`version: 2
ethernets:
  nic0:
    match:
      name: "e*"
    dhcp4: false
    dhcp6: false
    addresses:
      - '10.77.0.10/24'
`),
	}
	toText := cmp.Transformer("text", func(b []byte) string { return string(b) })
	if diff := cmp.Diff(want, got, toText); diff != "" {
		t.Errorf("Render: got -want +got:\n%s", diff)
	}
}

// userData is the part of user-data that cloud-init reads.
type userData struct {
	Hostname          string   `yaml:"hostname"`
	FQDN              string   `yaml:"fqdn"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys"`
	WriteFiles        []struct {
		Path        string `yaml:"path"`
		Permissions string `yaml:"permissions"`
		Encoding    string `yaml:"encoding"`
		Content     string `yaml:"content"`
	} `yaml:"write_files"`
}

// parseUserData reads user-data as YAML, refusing unknown keys, and
// returns it with the write_files decoded by path.
func parseUserData(t testing.TB, b []byte) (userData, map[string]string) {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("#cloud-config\n")) {
		t.Fatalf("user-data does not start with #cloud-config:\n%s", b)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var u userData
	if err := dec.Decode(&u); err != nil {
		t.Fatalf("user-data is not the expected YAML: %v\n%s", err, b)
	}
	files := map[string]string{}
	for _, f := range u.WriteFiles {
		if f.Encoding != "b64" {
			t.Errorf("write_files %s: encoding %q, want b64", f.Path, f.Encoding)
		}
		content, err := base64.StdEncoding.DecodeString(f.Content)
		if err != nil {
			t.Errorf("write_files %s: content is not base64: %v", f.Path, err)
		}
		files[f.Path+" "+f.Permissions] = string(content)
	}
	return u, files
}

func TestUserDataIsYAML(t *testing.T) {
	c := validConfig()
	f, err := seed.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	u, files := parseUserData(t, f.UserData)
	if u.Hostname != "node-0" || u.FQDN != "node-0" {
		t.Errorf("hostname, fqdn = %q, %q; want node-0, node-0", u.Hostname, u.FQDN)
	}
	wantKeys := []string{canonical(t, c.UserKeys[0]), canonical(t, c.UserKeys[1]), canonical(t, c.UserKeys[0]), canonical(t, c.ClusterPublicKey)}
	if diff := cmp.Diff(wantKeys, u.SSHAuthorizedKeys); diff != "" {
		t.Errorf("ssh_authorized_keys: -want +got:\n%s", diff)
	}
	wantFiles := map[string]string{
		"/etc/fairlease/peers 0644":           "node-0 10.77.0.10\nnode-1 10.77.0.11\n",
		"/etc/fairlease/cluster_key.pub 0644": canonical(t, c.ClusterPublicKey) + "\n",
		"/root/.ssh/id_ed25519 0600":          c.ClusterPrivateKey,
	}
	if diff := cmp.Diff(wantFiles, files); diff != "" {
		t.Errorf("write_files: -want +got:\n%s", diff)
	}
	// YAML would read an unquoted "null" or "0123" as something else.
	c.Hostname, c.InstanceID = "null", "0123"
	f, err = seed.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := parseUserData(t, f.UserData); u.Hostname != "null" {
		t.Errorf("hostname null read back as %q", u.Hostname)
	}
	var meta map[string]any
	if err := yaml.Unmarshal(f.MetaData, &meta); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"instance-id": "0123", "local-hostname": "null"}, meta); diff != "" {
		t.Errorf("meta-data: -want +got:\n%s", diff)
	}
	var net struct {
		Version   int `yaml:"version"`
		Ethernets map[string]struct {
			Match     map[string]string `yaml:"match"`
			Addresses []string          `yaml:"addresses"`
		} `yaml:"ethernets"`
	}
	if err := yaml.Unmarshal(f.NetworkConfig, &net); err != nil {
		t.Fatal(err)
	}
	if nic := net.Ethernets["nic0"]; net.Version != 2 || nic.Match["name"] != "e*" || !cmp.Equal(nic.Addresses, []string{"10.77.0.10/24"}) {
		t.Errorf("network-config = %+v, want version 2, nic0 matching e* with 10.77.0.10/24", net)
	}
}

func TestRenderRejects(t *testing.T) {
	_, otherPriv := seedtest.KeyPair(9)
	tests := []struct {
		name    string
		change  func(*seed.Config)
		wantErr string // a part of the message naming the field
	}{
		{"empty instance id", func(c *seed.Config) { c.InstanceID = "" }, "instance id"},
		{"instance id with newline", func(c *seed.Config) { c.InstanceID = "a\nb: c" }, "instance id"},
		{"empty hostname", func(c *seed.Config) { c.Hostname = "" }, "hostname"},
		{"hostname with colon", func(c *seed.Config) { c.Hostname = "a: b" }, "hostname"},
		{"hostname with newline", func(c *seed.Config) { c.Hostname = "a\nfqdn: b" }, "hostname"},
		{"hostname label starts with hyphen", func(c *seed.Config) { c.Hostname = "a.-b" }, "hostname"},
		{"hostname empty label", func(c *seed.Config) { c.Hostname = "a..b" }, "hostname"},
		{"hostname label too long", func(c *seed.Config) { c.Hostname = strings.Repeat("a", 64) }, "hostname"},
		{"address not an IP", func(c *seed.Config) { c.Address = "10.0.0.300" }, "address"},
		{"address with zone", func(c *seed.Config) { c.Address = "fe80::1%eth0" }, "address"},
		{"prefix zero", func(c *seed.Config) { c.Prefix = 0 }, "prefix"},
		{"prefix too long for IPv4", func(c *seed.Config) { c.Prefix = 33 }, "prefix"},
		{"peer name", func(c *seed.Config) { c.Peers[1].Name = "node 1" }, "peer 1 name"},
		{"peer address", func(c *seed.Config) { c.Peers[0].Address = "node-0" }, "peer 0 (node-0) address"},
		{"cluster public key missing", func(c *seed.Config) { c.ClusterPublicKey = "" }, "cluster public key"},
		{"cluster public key garbage", func(c *seed.Config) { c.ClusterPublicKey = "ssh-ed25519 !!!" }, "cluster public key"},
		{"two cluster public keys", func(c *seed.Config) { c.ClusterPublicKey += c.ClusterPublicKey }, "cluster public key holds 2"},
		{"cluster private key missing", func(c *seed.Config) { c.ClusterPrivateKey = "" }, "cluster private key"},
		{"cluster private key garbage", func(c *seed.Config) { c.ClusterPrivateKey = "-----BEGIN nothing" }, "cluster private key"},
		{"cluster private key of another pair", func(c *seed.Config) { c.ClusterPrivateKey = otherPriv }, "does not match"},
		{"user key garbage", func(c *seed.Config) { c.UserKeys[1] = "ssh-rsa AAAA\n- injected" }, "user key 1"},
		{"user key garbage after a key", func(c *seed.Config) { c.UserKeys[0] += "write_files: []\n" }, "user key 0"},
		{"user key empty", func(c *seed.Config) { c.UserKeys[0] = " \n" }, "user key 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			_, err := seed.Build(c)
			if !errors.Is(err, seed.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Build: got error %v, want seed.ErrInvalid naming %q", err, tt.wantErr)
			}
		})
	}
}

// readISO returns the label and the files of the root of an ISO image.
func readISO(t testing.TB, image []byte) (string, map[string]string) {
	t.Helper()
	img, err := iso9660.OpenImage(bytes.NewReader(image))
	if err != nil {
		t.Fatalf("seed is not an ISO 9660 image: %v", err)
	}
	label, err := img.Label()
	if err != nil {
		t.Fatal(err)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	children, err := root.GetChildren()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, c := range children {
		b, err := io.ReadAll(c.Reader())
		if err != nil {
			t.Fatal(err)
		}
		files[c.Name()] = string(b)
	}
	return label, files
}

func TestBuild(t *testing.T) {
	c := validConfig()
	image, err := seed.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	f, err := seed.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"meta-data":      string(f.MetaData),
		"user-data":      string(f.UserData),
		"network-config": string(f.NetworkConfig),
	}
	label, got := readISO(t, image)
	if label != seed.VolumeID {
		t.Errorf("volume id %q, want %q", label, seed.VolumeID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ISO files: -want +got:\n%s", diff)
	}

	// A second reader, independent of the library that wrote the image.
	isoinfo, err := exec.LookPath("isoinfo")
	if err != nil {
		t.Skip("isoinfo not installed (apt-get install genisoimage): skipping the second reader")
	}
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := os.WriteFile(path, image, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(isoinfo, "-d", "-i", path).CombinedOutput()
	if err != nil {
		t.Fatalf("isoinfo -d: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Volume id: cidata\n") {
		t.Errorf("isoinfo -d does not show volume id cidata:\n%s", out)
	}
	for name, content := range want {
		out, err := exec.Command(isoinfo, "-i", path, "-x", "/"+name+";1").Output()
		if err != nil {
			t.Fatalf("isoinfo -x %s: %v", name, err)
		}
		if string(out) != content {
			t.Errorf("isoinfo -x %s: got %q, want %q", name, out, content)
		}
	}
}

// userDataLine is every shape a user-data line may have: fixed keys at
// the top, key list items, and write_files fields.
var userDataLine = regexp.MustCompile(`^(#cloud-config|hostname: '[A-Za-z0-9.-]+'|fqdn: '[A-Za-z0-9.-]+'|ssh_authorized_keys:|write_files:` +
	`|  - [a-z0-9@.-]+ [A-Za-z0-9+/]+=*` +
	`|  - path: /[a-z0-9_./]+|    permissions: '0[0-7]{3}'|    encoding: b64|    content: [A-Za-z0-9+/]*=*)$`)

func FuzzBuild(f *testing.F) {
	c := validConfig()
	f.Add(c.Hostname, c.Peers[1].Name, c.Address, c.Peers[1].Address, c.UserKeys[1], c.ClusterPublicKey)
	f.Add("null", "a.b.c", "::1", "fe80::2", "ssh-ed25519 AAAA\n  - x", c.ClusterPublicKey)
	f.Add("x\ny: z", "'", "1.2.3.4\n", "1.2.3.4 ", "#\n"+c.UserKeys[0]+"\nwrite_files:", "ssh-ed25519")
	f.Fuzz(func(t *testing.T, hostname, peer, address, peerAddress, userKey, clusterKey string) {
		c := validConfig()
		c.Hostname = hostname
		c.Peers[1] = seed.Peer{Name: peer, Address: peerAddress}
		c.Address = address
		c.UserKeys = []string{userKey}
		c.ClusterPublicKey = clusterKey
		image, err := seed.Build(c)
		if err != nil {
			if !errors.Is(err, seed.ErrInvalid) {
				t.Fatalf("error %v does not wrap seed.ErrInvalid", err)
			}
			return
		}
		label, files := readISO(t, image)
		if label != seed.VolumeID {
			t.Errorf("volume id %q", label)
		}
		userData := files["user-data"]
		if !strings.HasSuffix(userData, "\n") {
			t.Fatalf("user-data does not end with a newline:\n%s", userData)
		}
		for i, line := range strings.Split(strings.TrimSuffix(userData, "\n"), "\n") {
			if !userDataLine.MatchString(line) {
				t.Errorf("user-data line %d has an unexpected shape: %q", i+1, line)
			}
		}
		u, written := parseUserData(t, []byte(userData))
		if u.Hostname != hostname {
			t.Errorf("hostname %q read back as %q", hostname, u.Hostname)
		}
		if n := len(u.SSHAuthorizedKeys); n < 2 {
			t.Errorf("%d authorized keys, want the user's and the cluster's", n)
		}
		for _, k := range u.SSHAuthorizedKeys {
			if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
				t.Errorf("authorized key %q does not parse: %v", k, err)
			}
		}
		if len(written) != 3 {
			t.Errorf("write_files has %d entries, want 3", len(written))
		}
	})
}
