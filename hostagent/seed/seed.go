// Package seed builds the cloud-init NoCloud seed of a VM: an ISO 9660
// volume labelled "cidata" holding meta-data, user-data and
// network-config, and the user's own user data, if any, in
// fairlease/user-data.
//
// The fairlease cloud-config has one fixed shape, every value on one line,
// because the test image's init reads it line by line rather than as
// YAML. So every value that goes into it is validated first: hostnames are
// DNS names, addresses are IPs, SSH keys are re-emitted in their canonical
// one-line form and file contents are base64.
//
// cloud-init reads one user-data document. Without user data of the
// user's, it is the fairlease cloud-config. With it, it is a MIME
// multi-part archive (Content-Type: multipart/mixed), which cloud-init
// handles part by part: first the fairlease cloud-config (text/cloud-config,
// written as it is, 7bit, so that line-wise readers still find its
// lines), then the user's data, base64, typed by its first line as
// cloud-init types a user-data document of its own (see [UserDataType]).
// The fairlease part's Merge-Type makes a user's cloud-config add to its
// lists (ssh_authorized_keys, write_files, runcmd, ...) rather than lose
// them, and leaves the cluster's hostname in force.
package seed

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/netip"
	"net/textproto"
	"strings"
	"unicode/utf8"

	"github.com/kdomanski/iso9660"
	"golang.org/x/crypto/ssh"
)

// VolumeID is the label cloud-init's NoCloud source looks for.
const VolumeID = "cidata"

// Paths of the files the seed writes into the VM.
const (
	PeersPath            = "/etc/fairlease/peers"
	ClusterPublicKeyPath = "/etc/fairlease/cluster_key.pub"
	ClusterKeyPath       = "/root/.ssh/id_ed25519"
)

// UserDataFile is where the seed volume holds the user's own user data,
// byte for byte, for images that read it without cloud-init.
const UserDataFile = "fairlease/user-data"

// MergeType is the fairlease part's Merge-Type: a cloud-config part after
// it appends to its lists and adds keys without replacing its values.
const MergeType = "list(append)+dict(no_replace,recurse_list)+str()"

// Config is what a VM learns at boot. It mirrors virt.Seed field for
// field; it is its own type because virt imports this package.
type Config struct {
	InstanceID string
	Hostname   string
	// Address is the VM's own address, Prefix its prefix length.
	Address string
	Prefix  int
	// Peers are all the VMs of the cluster, this one included.
	Peers []Peer
	// The cluster's SSH key pair (OpenSSH formats) and the user's keys.
	ClusterPublicKey  string
	ClusterPrivateKey string
	UserKeys          []string
	// UserData is the user's own user data (an EC2 RunInstances call's),
	// any bytes; nil or empty for none.
	UserData []byte
}

// Peer is one VM of the cluster.
type Peer struct {
	Name    string
	Address string
}

// Files are the contents of the seed's files.
type Files struct {
	MetaData []byte
	// UserData is cloud-init's user-data: the fairlease cloud-config, or
	// a multi-part archive of it and the user's data.
	UserData      []byte
	NetworkConfig []byte
	// User is the user's own user data, verbatim (UserDataFile); nil for
	// none.
	User []byte
}

// ErrInvalid is wrapped by every error about a Config.
var ErrInvalid = errors.New("seed: invalid config")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Build validates c and returns the ISO 9660 image of its seed.
func Build(c Config) ([]byte, error) {
	f, err := Render(c)
	if err != nil {
		return nil, err
	}
	w, err := iso9660.NewWriter()
	if err != nil {
		return nil, fmt.Errorf("seed: stage ISO image (is the temporary directory writable?): %w", err)
	}
	defer w.Cleanup()
	files := []struct {
		name string
		data []byte
	}{
		{"meta-data", f.MetaData},
		{"user-data", f.UserData},
		{"network-config", f.NetworkConfig},
	}
	if f.User != nil {
		files = append(files, struct {
			name string
			data []byte
		}{UserDataFile, f.User})
	}
	for _, file := range files {
		if err := w.AddFile(bytes.NewReader(file.data), file.name); err != nil {
			return nil, fmt.Errorf("seed: stage %s (is the temporary directory writable?): %w", file.name, err)
		}
	}
	var buf bytes.Buffer
	if err := w.WriteTo(&buf, VolumeID); err != nil {
		return nil, fmt.Errorf("seed: write ISO image: %w", err)
	}
	return buf.Bytes(), nil
}

// Render validates c and returns the contents of its seed's files.
func Render(c Config) (Files, error) {
	if err := checkInstanceID(c.InstanceID); err != nil {
		return Files{}, err
	}
	if err := checkDNSName("hostname", c.Hostname); err != nil {
		return Files{}, err
	}
	addr, err := netip.ParseAddr(c.Address)
	if err != nil || addr.Zone() != "" {
		return Files{}, invalid("address %q is not an IP address", c.Address)
	}
	if c.Prefix < 1 || c.Prefix > addr.BitLen() {
		return Files{}, invalid("prefix %d of address %s is not within 1..%d", c.Prefix, addr, addr.BitLen())
	}
	var peers strings.Builder
	for i, p := range c.Peers {
		if err := checkDNSName(fmt.Sprintf("peer %d name", i), p.Name); err != nil {
			return Files{}, err
		}
		a, err := netip.ParseAddr(p.Address)
		if err != nil || a.Zone() != "" {
			return Files{}, invalid("peer %d (%s) address %q is not an IP address", i, p.Name, p.Address)
		}
		fmt.Fprintf(&peers, "%s %s\n", p.Name, a)
	}
	clusterPub, err := canonicalKeys("cluster public key", c.ClusterPublicKey)
	if err != nil {
		return Files{}, err
	}
	if len(clusterPub) != 1 {
		return Files{}, invalid("cluster public key holds %d keys, want exactly one", len(clusterPub))
	}
	if err := checkPrivateKey(c.ClusterPrivateKey, clusterPub[0]); err != nil {
		return Files{}, err
	}
	var userKeys []string
	for i, k := range c.UserKeys {
		ks, err := canonicalKeys(fmt.Sprintf("user key %d", i), k)
		if err != nil {
			return Files{}, err
		}
		userKeys = append(userKeys, ks...)
	}

	var f Files
	f.MetaData = fmt.Appendf(nil, "instance-id: %s\nlocal-hostname: %s\n", quote(c.InstanceID), quote(c.Hostname))

	var u strings.Builder
	u.WriteString("#cloud-config\n")
	fmt.Fprintf(&u, "hostname: %s\n", quote(c.Hostname))
	fmt.Fprintf(&u, "fqdn: %s\n", quote(c.Hostname))
	u.WriteString("ssh_authorized_keys:\n")
	// The canonical form "TYPE BASE64" is a plain YAML scalar, kept
	// unquoted so that line-wise readers can copy it to authorized_keys.
	for _, k := range append(userKeys, clusterPub[0]) {
		fmt.Fprintf(&u, "  - %s\n", k)
	}
	u.WriteString("write_files:\n")
	for _, wf := range []struct {
		path, perm, content string
	}{
		{PeersPath, "0644", peers.String()},
		{ClusterPublicKeyPath, "0644", clusterPub[0] + "\n"},
		{ClusterKeyPath, "0600", withNewline(c.ClusterPrivateKey)},
	} {
		fmt.Fprintf(&u, "  - path: %s\n", wf.path)
		fmt.Fprintf(&u, "    permissions: '%s'\n", wf.perm)
		u.WriteString("    encoding: b64\n")
		fmt.Fprintf(&u, "    content: %s\n", base64.StdEncoding.EncodeToString([]byte(wf.content)))
	}
	f.UserData = []byte(u.String())
	if len(c.UserData) > 0 {
		f.User = bytes.Clone(c.UserData)
		if f.UserData, err = multipartUserData(f.UserData, c.UserData); err != nil {
			return Files{}, err
		}
	}

	// Matching by name rather than MAC: the NIC's MAC is libvirt's choice.
	f.NetworkConfig = fmt.Appendf(nil, `version: 2
ethernets:
  nic0:
    match:
      name: "e*"
    dhcp4: false
    dhcp6: false
    addresses:
      - %s
`, quote(netip.PrefixFrom(addr, c.Prefix).String()))
	return f, nil
}

// withNewline ends s with a newline: older OpenSSH rejects a private
// key file without one.
func withNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

// quote makes s a single-quoted YAML scalar, so that names such as
// "null", "true" or "0123" stay strings.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func checkInstanceID(id string) error {
	if id == "" || len(id) > 128 {
		return invalid("instance id %q must have 1 to 128 characters", id)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '-' || r == '_' || r == '.')
		if !ok {
			return invalid("instance id %q: use letters, digits, '-', '_' and '.', starting with a letter or digit", id)
		}
	}
	return nil
}

// checkDNSName accepts a host name of RFC 1123: dot-separated labels of
// letters, digits and inner hyphens, at most 63 characters each and 253
// in all.
func checkDNSName(field, name string) error {
	if name == "" || len(name) > 253 {
		return invalid("%s %q must have 1 to 253 characters", field, name)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return invalid("%s %q: each dot-separated label must have 1 to 63 characters", field, name)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return invalid("%s %q: a label must not start or end with '-'", field, name)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return invalid("%s %q is not a DNS name: use letters, digits, '-' and '.'", field, name)
			}
		}
	}
	return nil
}

// canonicalKeys parses authorized_keys text (one or more keys; options
// and comments are dropped) into canonical "TYPE BASE64" lines.
func canonicalKeys(field, text string) ([]string, error) {
	var keys []string
	rest := []byte(text)
	for len(bytes.TrimSpace(rest)) > 0 {
		pub, _, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			if len(keys) > 0 {
				return nil, invalid("%s: line after key %d is not an OpenSSH public key: %v", field, len(keys), err)
			}
			return nil, invalid("%s is not an OpenSSH public key (\"ssh-ed25519 AAAA...\"): %v", field, err)
		}
		keys = append(keys, strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n"))
		rest = r
	}
	if len(keys) == 0 {
		return nil, invalid("%s is empty: give an OpenSSH public key", field)
	}
	return keys, nil
}

// checkPrivateKey checks that the cluster's private key is an
// unencrypted OpenSSH key whose public half is the cluster public key,
// since the VMs use it unattended to reach each other.
func checkPrivateKey(pem, pub string) error {
	if pem == "" {
		return invalid("cluster private key is empty: give the OpenSSH private key of the cluster key pair")
	}
	signer, err := ssh.ParsePrivateKey([]byte(pem))
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return invalid("cluster private key is encrypted: give it without a passphrase")
		}
		return invalid("cluster private key is not an OpenSSH private key: %v", err)
	}
	if got := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(signer.PublicKey())), "\n"); got != pub {
		return invalid("cluster private key does not match the cluster public key: give both halves of one key pair")
	}
	return nil
}

// multipartUserData is the MIME multi-part archive of the fairlease
// cloud-config and the user's data.
func multipartUserData(fairlease, user []byte) ([]byte, error) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	// The boundary is a digest of what it separates: Render stays a
	// function of its Config, and no content holds the boundary unless
	// it holds its own digest.
	h := sha256.New()
	h.Write(fairlease)
	h.Write(user)
	if err := w.SetBoundary("fairlease-" + hex.EncodeToString(h.Sum(nil))[:40]); err != nil {
		return nil, fmt.Errorf("seed: user-data: %w", err)
	}
	part, err := w.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {`text/cloud-config; charset="us-ascii"`},
		"Content-Transfer-Encoding": {"7bit"},
		"Content-Disposition":       {`attachment; filename="fairlease.cfg"`},
		"Merge-Type":                {MergeType},
	})
	if err != nil {
		return nil, fmt.Errorf("seed: user-data: %w", err)
	}
	part.Write(fairlease) // a bytes.Buffer does not fail
	if err := userPart(w, user); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seed: user-data: %w", err)
	}
	var out bytes.Buffer
	// cloud-init takes user data for MIME when it says "MIME-Version:"
	// in its first 4096 bytes.
	fmt.Fprintf(&out, "Content-Type: %s\r\nMIME-Version: 1.0\r\n\r\n",
		mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": w.Boundary()}))
	out.Write(body.Bytes())
	return out.Bytes(), nil
}

// userPart adds the user's data to w: a MIME message of the user's (a
// multi-part archive, say) as a part with its own headers, as cloud-init
// would read it alone; anything else base64, typed by UserDataType.
func userPart(w *multipart.Writer, data []byte) error {
	// cloud-init's test for MIME user data.
	if bytes.Contains(bytes.ToLower(data[:min(len(data), 4096)]), []byte("mime-version:")) {
		if msg, err := mail.ReadMessage(bytes.NewReader(data)); err == nil && plainHeader(msg.Header) {
			part, err := w.CreatePart(textproto.MIMEHeader(msg.Header))
			if err != nil {
				return fmt.Errorf("seed: user-data: %w", err)
			}
			_, err = io.Copy(part, msg.Body)
			return err
		}
	}
	part, err := w.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {UserDataType(data)},
		"Content-Transfer-Encoding": {"base64"},
		"Content-Disposition":       {`attachment; filename="user-data"`},
	})
	if err != nil {
		return fmt.Errorf("seed: user-data: %w", err)
	}
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		fmt.Fprintf(part, "%s\r\n", enc[:76])
		enc = enc[76:]
	}
	_, err = fmt.Fprintf(part, "%s\r\n", enc)
	return err
}

// plainHeader reports whether h can be written as it was read: names are
// tokens, values hold no control characters but tabs.
func plainHeader(h mail.Header) bool {
	for k, vs := range h {
		if k == "" || strings.ContainsFunc(k, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
		}) {
			return false
		}
		for _, v := range vs {
			if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
				return false
			}
		}
	}
	return true
}

// startsWith maps the first line of a user-data document to its type, as
// cloud-init's handlers read it (longest first, so that
// "#cloud-config-archive" is not taken for "#cloud-config").
var startsWith = []struct{ prefix, typ string }{
	{"#cloud-config-archive", "text/cloud-config-archive"},
	{"#cloud-config-jsonp", "text/cloud-config-jsonp"},
	{"## template: jinja", "text/jinja2"},
	{"#cloud-boothook", "text/cloud-boothook"},
	{"#cloud-config", "text/cloud-config"},
	{"#include-once", "text/x-include-once-url"},
	{"#part-handler", "text/part-handler"},
	{"#upstart-job", "text/upstart-job"},
	{"#include", "text/x-include-url"},
	{"#!", "text/x-shellscript"},
}

// UserDataType is the MIME type of the user's data as cloud-init would
// take it were it the whole user-data: gzip data is application/x-gzip
// (cloud-init unpacks it and types what it finds); text is typed by how
// it starts, case-insensitively after leading blanks ("#!" a shell
// script, "#cloud-config" a cloud-config, "#include" a list of URLs, ...);
// other text is text/plain, which cloud-init types the same way and
// otherwise leaves unhandled, as it would the document alone; bytes that
// are not UTF-8 are application/octet-stream.
func UserDataType(data []byte) string {
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		return "application/x-gzip"
	}
	if !utf8.Valid(data) {
		return "application/octet-stream"
	}
	start := strings.TrimLeft(string(data), " \t\r\n\v\f")
	start = strings.ToLower(start[:min(len(start), 32)])
	for _, s := range startsWith {
		if strings.HasPrefix(start, s.prefix) {
			return s.typ
		}
	}
	return "text/plain"
}
