// Package hostagent is the host agent: it registers its host with the
// broker, beats, takes the host's assignments and makes the hypervisor
// match them, caches VM images, and serves VM console logs to the broker.
package hostagent

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/fairlease/fairlease/policies"
)

// Config is what an agent needs to know of its host and its broker.
type Config struct {
	// Brokers are the brokers' base URLs; the CLI's Dialer uses them.
	Brokers []string
	// JoinToken enrols the host; it is only needed until the credential
	// is saved in StateDir.
	JoinToken string
	// Host is the host's name at the broker (default: the hostname).
	Host string
	// Driver is "test" (libvirt's test driver) or "qemu".
	Driver     string
	LibvirtURI string
	// CacheDir holds verified images (default StateDir/cache); StateDir
	// the credential and the log key.
	CacheDir string
	StateDir string
	// CacheLimit is the cache's size in bytes; 0 means 80% of the cache's
	// filesystem.
	CacheLimit int64
	// Cores and MemoryMiB are what the host offers; 0 means what the
	// hypervisor reports.
	Cores     int64
	MemoryMiB int64
	// Bridge is the host bridge each VM's NIC joins (the VMs' addresses
	// are the broker's); empty means VMs get no NIC.
	Bridge string
	// SwarmListen is where the host's BitTorrent peer listens, to fetch
	// images from other hosts and serve them; empty means images come
	// from the broker only.
	SwarmListen string
	// SwarmDownloadRate caps the image bytes the host's peer takes in, in
	// bytes per second (0: unlimited), so that a burst of image fetches
	// leaves the host's link room for its VMs.
	SwarmDownloadRate int64
	// Listen is the address of the console log server.
	Listen        string
	Heartbeat     time.Duration
	ShutdownGrace time.Duration
}

// Drivers and their default libvirt URIs.
var defaultURIs = map[string]string{
	"test": "test:///default",
	"qemu": "qemu:///system",
}

// DefaultConfig is the configuration before a file sets anything: the test
// driver, a log server on loopback, a beat every 5s.
func DefaultConfig() Config {
	return Config{
		Driver:        "test",
		Listen:        "127.0.0.1:0",
		Heartbeat:     5 * time.Second,
		ShutdownGrace: 30 * time.Second,
	}
}

// withDefaults fills in what follows from other keys: the libvirt URI from
// the driver and the cache under the state directory.
func (c Config) withDefaults() Config {
	if c.Driver == "" {
		c.Driver = "test"
	}
	if c.LibvirtURI == "" {
		c.LibvirtURI = defaultURIs[c.Driver]
	}
	if c.CacheDir == "" && c.StateDir != "" {
		c.CacheDir = strings.TrimRight(c.StateDir, "/") + "/cache"
	}
	return c
}

// ConfigError is a problem with a configuration, located so that a person
// can fix it: the file and line (when it came from a file) and the key. It
// is the site policy's error, so both files report alike.
type ConfigError = policies.LoadError

// Validate checks c, returning the first problem as a *ConfigError naming
// its key.
func (c Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if len(c.Brokers) == 0 {
		return bad("brokers", `list at least one broker, like ["http://broker1:7070"]`)
	}
	for _, b := range c.Brokers {
		if err := checkBrokerURL(b); err != nil {
			return bad("brokers", "%v", err)
		}
	}
	if c.Host != "" && !validName(c.Host, 253) {
		return bad("host", "%q is not a host name (letters, digits, '.', '-' and '_', at most 253)", c.Host)
	}
	if _, ok := defaultURIs[c.Driver]; !ok {
		return bad("driver", `must be "test" or "qemu", got %q`, c.Driver)
	}
	if c.StateDir == "" {
		return bad("state_dir", "is required: the directory for the host's credential and log key")
	}
	switch {
	case c.CacheLimit < 0:
		return bad("cache_limit", "must not be negative")
	case c.SwarmDownloadRate < 0:
		return bad("swarm_download_rate", "must not be negative (leave it out for no limit)")
	case c.Cores < 0:
		return bad("cores", "must not be negative (leave it out to use what the hypervisor reports)")
	case c.MemoryMiB < 0:
		return bad("memory", "must not be negative (leave it out to use what the hypervisor reports)")
	case c.Heartbeat <= 0:
		return bad("heartbeat", "must be positive, like \"5s\"")
	case c.ShutdownGrace < 0:
		return bad("shutdown_grace", "must not be negative")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("listen", "want host:port, like \"0.0.0.0:7071\": %v", err)
	}
	return nil
}

// checkBrokerURL accepts what client.New does: host:port or an http(s) URL.
func checkBrokerURL(s string) error {
	addr := s
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%q: want host:port or http(s)://host:port", s)
	}
	return nil
}

// validName reports whether s is a safe name: it ends up in file names,
// libvirt domain names and URLs.
func validName(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen || s[0] == '.' || s[0] == '-' {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_'
		if !ok {
			return false
		}
	}
	return true
}
