package hostagent

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadConfigExample(t *testing.T) {
	got, err := LoadConfig("testdata/agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Brokers:   []string{"http://broker1:7070", "http://broker2:7070", "http://broker3:7070"},
		JoinToken: "fl_join_0123456789abcdef", Host: "rack1-node07", Driver: "qemu", LibvirtURI: "qemu:///system",
		StateDir: "/var/lib/fairlease", CacheDir: "/var/cache/fairlease/images", CacheLimit: 200 << 30,
		Cores: 62, MemoryMiB: 240 << 10, Bridge: "br0", SwarmListen: "0.0.0.0:6881", SwarmDownloadRate: 100 << 20, Listen: "0.0.0.0:7071", Heartbeat: 5 * time.Second, ShutdownGrace: 30 * time.Second,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LoadConfig (-want +got):\n%s", diff)
	}
}

func TestParseConfig(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil {
		t.Skipf("no hostname: %v", err)
	}
	const minimal = "brokers = [\"b:7070\"]\nstate_dir = \"/s\"\n"
	for name, tc := range map[string]struct {
		in      string
		want    Config
		wantErr string
	}{
		"defaults": {in: minimal, want: Config{Brokers: []string{"b:7070"}, Host: hostname, Driver: "test", LibvirtURI: "test:///default",
			StateDir: "/s", CacheDir: "/s/cache", Listen: "127.0.0.1:0", Heartbeat: 5 * time.Second, ShutdownGrace: 30 * time.Second}},
		"qemu's URI": {in: minimal + "driver = \"qemu\"\nmemory = 2048\ncache_limit = \"1.5 GB\"\n",
			want: Config{Brokers: []string{"b:7070"}, Host: hostname, Driver: "qemu", LibvirtURI: "qemu:///system", MemoryMiB: 2048, CacheLimit: 1500000000,
				StateDir: "/s", CacheDir: "/s/cache", Listen: "127.0.0.1:0", Heartbeat: 5 * time.Second, ShutdownGrace: 30 * time.Second}},
		"unknown key": {in: minimal + "heartbeats = \"1s\"\n",
			wantErr: "agent.toml:3: heartbeats: unknown key (did you mean heartbeat? known keys: bridge, brokers, cache_dir, cache_limit, cores, driver, heartbeat, host, join_token, libvirt_uri, listen, memory, shutdown_grace, state_dir, swarm_download_rate, swarm_listen)"},
		"unknown table": {in: minimal + "[tls]\ncert = \"x\"\n", wantErr: "agent.toml:3: tls: unknown key"},
		"first problem in the file": {in: "cores = \"many\"\n" + minimal + "driver = 3\n",
			wantErr: "agent.toml:1: cores: must be an integer, got string \"many\""},
		"syntax":                      {in: minimal + "heartbeat = \n", wantErr: "agent.toml:3: heartbeat: expected value but found '\\n' instead"},
		"no brokers":                  {in: "state_dir = \"/s\"\n", wantErr: "agent.toml: brokers: list at least one broker"},
		"empty brokers":               {in: "brokers = []\nstate_dir = \"/s\"\n", wantErr: "agent.toml:1: brokers: list at least one broker"},
		"bad broker":                  {in: "brokers = [\"ftp://b\"]\nstate_dir = \"/s\"\n", wantErr: "agent.toml:1: brokers: \"ftp://b\": want host:port or http(s)://host:port"},
		"brokers a string":            {in: "brokers = \"b\"\n", wantErr: "agent.toml:1: brokers: must be a list of URLs"},
		"no state_dir":                {in: "brokers = [\"b:1\"]\n", wantErr: "agent.toml: state_dir: is required"},
		"bad driver":                  {in: minimal + "driver = \"xen\"\n", wantErr: "agent.toml:3: driver: must be \"test\" or \"qemu\", got \"xen\""},
		"bare cache_limit":            {in: minimal + "cache_limit = \"20\"\n", wantErr: "agent.toml:3: cache_limit: size \"20\" needs a unit"},
		"zero cache_limit":            {in: minimal + "cache_limit = \"0GiB\"\n", wantErr: "agent.toml:3: cache_limit: must be more than 0"},
		"bare swarm_download_rate":    {in: minimal + "swarm_download_rate = \"100\"\n", wantErr: "agent.toml:3: swarm_download_rate: size \"100\" needs a unit"},
		"numeric swarm_download_rate": {in: minimal + "swarm_download_rate = 100\n", wantErr: "agent.toml:3: swarm_download_rate: must be a size per second like \"100MiB\", got integer 100"},
		"tiny memory":                 {in: minimal + "memory = \"10KiB\"\n", wantErr: "agent.toml:3: memory: size \"10KiB\" is less than 1MiB"},
		"negative cores":              {in: minimal + "cores = -2\n", wantErr: "agent.toml:3: cores: must not be negative"},
		"integer duration":            {in: minimal + "heartbeat = 5\n", wantErr: "agent.toml:3: heartbeat: must be a duration like \"5s\" or \"1m30s\", got integer 5"},
		"zero heartbeat":              {in: minimal + "heartbeat = \"0s\"\n", wantErr: "agent.toml:3: heartbeat: must be positive"},
		"bad listen":                  {in: minimal + "listen = \"7071\"\n", wantErr: "agent.toml:3: listen: want host:port"},
		"bad host":                    {in: minimal + "host = \"a b\"\n", wantErr: "agent.toml:3: host: \"a b\" is not a host name"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseConfig("agent.toml", strings.NewReader(tc.in))
			if tc.wantErr != "" {
				var ce *ConfigError
				if err == nil || !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("ParseConfig: %v, want a *ConfigError starting %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseConfig (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig("testdata/nope.toml")
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "testdata/nope.toml: ") {
		t.Errorf("LoadConfig of a missing file: %v, want a not-exist error naming the file", err)
	}
}

// FuzzLoadConfig checks that any file gives a valid Config or an error
// that names a key or a line, never a panic. `go test` runs the seeds;
// fuzz with go test ./hostagent/ -run '^$' -fuzz FuzzLoadConfig.
func FuzzLoadConfig(f *testing.F) {
	example, err := os.ReadFile("testdata/agent.toml")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(example), "", "brokers = [\"b:1\"]\nstate_dir = \"/s\"\n", "[x]\ny.z = 1\n", "brokers = [1, \"a\"]\n",
		"memory = \"1,5GiB\"\n", "heartbeat = \"-1s\"\n", "cores = 1e3\n", "a.b.c = {d = [1]}\n", "\"\" = 1\n", "[[brokers]]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("fuzz.toml", bytes.NewReader(data))
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %T %v, want a *ConfigError", err, err)
			}
			if ce.File != "fuzz.toml" || ce.Key == "" && ce.Line <= 0 {
				t.Errorf("error %q (%#v) names no key or line, or not the file", err, ce)
			}
			if lines := bytes.Count(data, []byte("\n")) + 1; ce.Line > lines {
				t.Errorf("error at line %d of a %d-line file: %v", ce.Line, lines, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Errorf("ParseConfig gave a config that does not validate: %v", err)
		}
	})
}
