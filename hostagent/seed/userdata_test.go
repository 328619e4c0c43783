package seed_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kdomanski/iso9660"

	"github.com/fairlease/fairlease/hostagent/seed"
)

// part is one part of a multi-part user-data, the body of the user's
// base64 part decoded.
type part struct {
	Header textproto.MIMEHeader
	Body   []byte
}

// parseMultipart reads user-data as cloud-init reads a MIME archive: the
// top-level headers, then the parts.
func parseMultipart(t testing.TB, userData []byte) []part {
	t.Helper()
	head, body, ok := bytes.Cut(userData, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("user-data has no header block:\n%s", userData)
	}
	// cloud-init takes user data for MIME only when it says so early.
	if !bytes.Contains(bytes.ToLower(userData[:min(len(userData), 4096)]), []byte("mime-version:")) {
		t.Errorf("no MIME-Version in the first 4096 bytes:\n%s", head)
	}
	hdr, err := textproto.NewReader(bufioReader(append(head, "\r\n\r\n"...))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("user-data header: %v\n%s", err, head)
	}
	if v := hdr.Get("Mime-Version"); v != "1.0" {
		t.Errorf("MIME-Version = %q, want 1.0", v)
	}
	typ, params, err := mime.ParseMediaType(hdr.Get("Content-Type"))
	if err != nil || typ != "multipart/mixed" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q (%v): want multipart/mixed with a boundary", hdr.Get("Content-Type"), err)
	}
	return readParts(t, body, params["boundary"])
}

func readParts(t testing.TB, body []byte, boundary string) []part {
	t.Helper()
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	var parts []part
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatalf("part %d: %v", len(parts)+1, err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("part %d: %v", len(parts)+1, err)
		}
		if p.Header.Get("Content-Disposition") == `attachment; filename="user-data"` {
			if b, err = base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(b))); err != nil {
				t.Fatalf("part %d: body is not base64: %v", len(parts)+1, err)
			}
		}
		parts = append(parts, part{p.Header, b})
	}
}

func gzipped(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func TestUserDataMultipart(t *testing.T) {
	c0 := validConfig() // one private key (its PEM differs from call to call)
	plain, err := seed.Render(c0)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		data     []byte
		wantType string
	}{
		"shell script":            {[]byte("#!/bin/sh\necho hello > /tmp/hello\n"), "text/x-shellscript"},
		"cloud-config":            {[]byte("#cloud-config\nruncmd:\n  - [touch, /tmp/x]\n"), "text/cloud-config"},
		"cloud-config, any case":  {[]byte("\n  #Cloud-Config\npackages: [mpich]\n"), "text/cloud-config"},
		"cloud-config archive":    {[]byte("#cloud-config-archive\n- type: text/x-shellscript\n  content: '#!/bin/sh'\n"), "text/cloud-config-archive"},
		"boothook":                {[]byte("#cloud-boothook\n#!/bin/sh\necho early\n"), "text/cloud-boothook"},
		"include":                 {[]byte("#include\nhttps://example.com/config\n"), "text/x-include-url"},
		"jinja":                   {[]byte("## template: jinja\n#!/bin/sh\necho {{ v1.instance_id }}\n"), "text/jinja2"},
		"gzip":                    {gzipped("#!/bin/sh\necho zipped\n"), "application/x-gzip"},
		"text of no known format": {[]byte("key=value\nother=thing\n"), "text/plain"},
		"binary":                  {[]byte{0, 0xff, 0xfe, '\r', '\n', '-', '-'}, "application/octet-stream"},
		"a line like a boundary":  {[]byte("#!/bin/sh\n--\n--" + strings.Repeat("x", 80) + "--\n"), "text/x-shellscript"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := c0
			c.UserData = tt.data
			f, err := seed.Render(c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.User, tt.data) {
				t.Errorf("Files.User = %q, want the user's bytes %q", f.User, tt.data)
			}
			if diff := cmp.Diff(plain.MetaData, f.MetaData); diff != "" {
				t.Errorf("meta-data changed (-without +with user data):\n%s", diff)
			}
			parts := parseMultipart(t, f.UserData)
			if len(parts) != 2 {
				t.Fatalf("%d parts, want the fairlease cloud-config and the user's data", len(parts))
			}
			fl, user := parts[0], parts[1]
			got := map[string]string{
				"fairlease Content-Type": fl.Header.Get("Content-Type"),
				"fairlease Merge-Type":   fl.Header.Get("Merge-Type"),
				"user Content-Type":      user.Header.Get("Content-Type"),
			}
			want := map[string]string{
				"fairlease Content-Type": `text/cloud-config; charset="us-ascii"`,
				"fairlease Merge-Type":   "list(append)+dict(no_replace,recurse_list)+str()",
				"user Content-Type":      tt.wantType,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("part headers (-want +got):\n%s", diff)
			}
			// The fairlease part is today's cloud-config, byte for byte.
			if diff := cmp.Diff(string(plain.UserData), string(fl.Body)); diff != "" {
				t.Errorf("fairlease part (-want +got):\n%s", diff)
			}
			u, files := parseUserData(t, fl.Body)
			if u.Hostname != "node-0" || len(files) != 3 {
				t.Errorf("fairlease part: hostname %q, %d files; want node-0 and 3", u.Hostname, len(files))
			}
			if !bytes.Equal(user.Body, tt.data) {
				t.Errorf("user part = %q, want %q", user.Body, tt.data)
			}
			if got := seed.UserDataType(tt.data); got != tt.wantType {
				t.Errorf("UserDataType = %q, want %q", got, tt.wantType)
			}
		})
	}
}

// A user's own MIME archive nests: its parts reach cloud-init as they would
// alone.
func TestUserDataNestedMultipart(t *testing.T) {
	userMIME := "Content-Type: multipart/mixed; boundary=\"XYZ\"\nMIME-Version: 1.0\n\n" +
		"--XYZ\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho one\n" +
		"--XYZ\nContent-Type: text/cloud-config\n\nruncmd: [[touch, /tmp/two]]\n" +
		"--XYZ--\n"
	c := validConfig()
	c.UserData = []byte(userMIME)
	f, err := seed.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(f.User) != userMIME {
		t.Errorf("Files.User = %q, want the user's bytes", f.User)
	}
	parts := parseMultipart(t, f.UserData)
	if len(parts) != 2 {
		t.Fatalf("%d parts, want 2", len(parts))
	}
	typ, params, err := mime.ParseMediaType(parts[1].Header.Get("Content-Type"))
	if err != nil || typ != "multipart/mixed" || params["boundary"] != "XYZ" {
		t.Fatalf("user part Content-Type %q, want the user's multipart/mixed; boundary=XYZ", parts[1].Header.Get("Content-Type"))
	}
	var got []string
	for _, p := range readParts(t, parts[1].Body, "XYZ") {
		got = append(got, p.Header.Get("Content-Type")+": "+string(p.Body))
	}
	want := []string{"text/x-shellscript: #!/bin/sh\necho one", "text/cloud-config: runcmd: [[touch, /tmp/two]]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nested parts (-want +got):\n%s", diff)
	}
}

// readISOFile returns the file at path (dir/name) of an ISO image.
func readISOFile(t testing.TB, image []byte, path string) ([]byte, bool) {
	t.Helper()
	img, err := iso9660.OpenImage(bytes.NewReader(image))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Split(path, "/")
	for i, name := range names {
		children, err := dir.GetChildren()
		if err != nil {
			t.Fatal(err)
		}
		var next *iso9660.File
		for _, c := range children {
			if c.Name() == name {
				next = c
			}
		}
		if next == nil {
			return nil, false
		}
		if i == len(names)-1 {
			b, err := io.ReadAll(next.Reader())
			if err != nil {
				t.Fatal(err)
			}
			return b, true
		}
		dir = next
	}
	return nil, false
}

func TestBuildWritesUserData(t *testing.T) {
	c := validConfig()
	c.UserData = []byte("#!/bin/sh\r\necho 'bytes as given' \x00\xff\n")
	image, err := seed.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := readISOFile(t, image, seed.UserDataFile)
	if !ok || !bytes.Equal(got, c.UserData) {
		t.Errorf("%s = %q (present %v), want the user's bytes %q", seed.UserDataFile, got, ok, c.UserData)
	}
	f, err := seed.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readISOFile(t, image, "user-data"); !bytes.Equal(got, f.UserData) {
		t.Errorf("user-data on the volume differs from Render's")
	}

	// Without user data there is no such file, and user-data is the
	// plain cloud-config.
	c.UserData = nil
	image, err = seed.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := readISOFile(t, image, seed.UserDataFile); ok {
		t.Errorf("%s exists without user data", seed.UserDataFile)
	}
	got, _ = readISOFile(t, image, "user-data")
	parseUserData(t, got)
}

// FuzzUserData checks that any user data gives a two-part archive whose
// first part is the fairlease cloud-config and whose second holds the
// user's bytes.
func FuzzUserData(f *testing.F) {
	for _, s := range []string{"#!/bin/sh\necho hi\n", "#cloud-config\n{}", "MIME-Version: 1.0\nContent-Type: text/plain\n\nhi", "mime-version:", "\x1f\x8b", "--\r\n--"} {
		f.Add([]byte(s))
	}
	c0 := validConfig()
	plain, err := seed.Render(c0)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := c0
		c.UserData = data
		fs, err := seed.Render(c)
		if err != nil {
			t.Fatalf("Render with user data %q: %v", data, err)
		}
		if len(data) == 0 {
			if !bytes.Equal(fs.UserData, plain.UserData) || fs.User != nil {
				t.Fatalf("empty user data changed the seed")
			}
			return
		}
		if !bytes.Equal(fs.User, data) {
			t.Errorf("Files.User differs from the user's bytes")
		}
		parts := parseMultipart(t, fs.UserData)
		if len(parts) != 2 {
			t.Fatalf("%d parts, want 2", len(parts))
		}
		if !bytes.Equal(parts[0].Body, plain.UserData) {
			t.Errorf("fairlease part differs from the plain cloud-config:\n%s", parts[0].Body)
		}
		switch {
		case parts[1].Header.Get("Content-Disposition") == `attachment; filename="user-data"`:
			if !bytes.Equal(parts[1].Body, data) {
				t.Errorf("user part = %q, want %q", parts[1].Body, data)
			}
		case !bytes.Contains(bytes.ToLower(data), []byte("mime-version:")):
			t.Errorf("user data that is not MIME became a part with headers %v", parts[1].Header)
		}
	})
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
