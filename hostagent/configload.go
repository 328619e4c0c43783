package hostagent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/dustin/go-humanize"

	"github.com/fairlease/fairlease/policies"
)

// LoadConfig reads the agent's TOML file at path; see ParseConfig.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, &ConfigError{File: path, Msg: err.Error(), Err: err}
	}
	defer f.Close()
	return ParseConfig(path, f)
}

// ParseConfig reads a configuration from r: it starts from DefaultConfig,
// applies what the file sets, fills in the host name and the defaults that
// follow from other keys, and validates. Every error is a *ConfigError
// naming the key and, when the file holds it, the line; of several
// problems the first in the file is reported. name is used in errors only.
func ParseConfig(name string, r io.Reader) (Config, error) {
	c, err := parseConfig(r)
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.File = name
		}
		return Config{}, err
	}
	return c, nil
}

func parseConfig(r io.Reader) (Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Config{}, &ConfigError{Msg: "read: " + err.Error(), Err: err}
	}
	var top map[string]toml.Primitive
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&top)
	if err != nil {
		ce := &ConfigError{Msg: err.Error(), Err: err}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			ce.Line, ce.Key, ce.Msg = pe.Position.Line, pe.LastKey, pe.Message
		}
		return Config{}, ce
	}
	c := DefaultConfig()
	var errs []*ConfigError
	known := slices.Sorted(maps.Keys(configKeys))
	for _, k := range slices.Sorted(maps.Keys(top)) {
		set, ok := configKeys[k]
		if !ok {
			errs = append(errs, &ConfigError{Key: k, Line: line(md, top[k]),
				Msg: fmt.Sprintf("unknown key (%sknown keys: %s)", policies.Suggest(k, known), strings.Join(known, ", "))})
			continue
		}
		if err := md.PrimitiveDecode(top[k], &leaf{set: set, c: &c}); err != nil {
			ce := &ConfigError{Key: k, Msg: err.Error(), Err: err}
			var pe toml.ParseError
			if errors.As(err, &pe) {
				ce.Line, ce.Msg = pe.Position.Line, pe.Message
			}
			errs = append(errs, ce)
		}
	}
	// Whatever a known key's setter took is decoded; anything else under
	// a known key slipped past it.
	for _, k := range md.Undecoded() {
		if _, ok := configKeys[k[0]]; ok {
			errs = append(errs, &ConfigError{Key: k.String(), Line: line(md, top[k[0]]), Msg: "unknown key"})
		}
	}
	if len(errs) > 0 {
		return Config{}, slices.MinFunc(errs, func(a, b *ConfigError) int { return lineOrder(a.Line) - lineOrder(b.Line) })
	}
	if c.Host == "" {
		if c.Host, err = os.Hostname(); err != nil {
			return Config{}, &ConfigError{Key: "host", Msg: fmt.Sprintf("not set and the hostname is unknown (%v): set host", err), Err: err}
		}
	}
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			if prim, ok := top[ce.Key]; ok {
				ce.Line = line(md, prim)
			}
		}
		return Config{}, err
	}
	return c, nil
}

// lineOrder puts errors without a line after every located one.
func lineOrder(line int) int {
	if line <= 0 {
		return math.MaxInt
	}
	return line
}

// leaf hands a raw TOML value to a key's setter. Being an Unmarshaler is
// what makes toml report its errors with the key's position.
type leaf struct {
	set func(c *Config, v any) error
	c   *Config
}

func (l *leaf) UnmarshalTOML(v any) error { return l.set(l.c, v) }

// probe fails on purpose: the error toml returns carries the key's line.
type probe struct{}

func (probe) UnmarshalTOML(any) error { return errors.New("probe") }

// line returns the line where the key of prim is written, or 0.
func line(md toml.MetaData, prim toml.Primitive) int {
	var pe toml.ParseError
	if err := md.PrimitiveDecode(prim, probe{}); errors.As(err, &pe) {
		return pe.Position.Line
	}
	return 0
}

// configKeys are the file's keys and how each sets its field.
var configKeys = map[string]func(c *Config, v any) error{
	"brokers": func(c *Config, v any) error {
		list, ok := v.([]any)
		if !ok {
			return fmt.Errorf(`must be a list of URLs, like ["http://broker1:7070"], got %s`, policies.Describe(v))
		}
		c.Brokers = nil
		for _, e := range list {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("must list strings, got %s", policies.Describe(e))
			}
			c.Brokers = append(c.Brokers, s)
		}
		return nil
	},
	"join_token":   stringKey(func(c *Config) *string { return &c.JoinToken }),
	"host":         stringKey(func(c *Config) *string { return &c.Host }),
	"driver":       stringKey(func(c *Config) *string { return &c.Driver }),
	"libvirt_uri":  stringKey(func(c *Config) *string { return &c.LibvirtURI }),
	"cache_dir":    stringKey(func(c *Config) *string { return &c.CacheDir }),
	"state_dir":    stringKey(func(c *Config) *string { return &c.StateDir }),
	"listen":       stringKey(func(c *Config) *string { return &c.Listen }),
	"bridge":       stringKey(func(c *Config) *string { return &c.Bridge }),
	"swarm_listen": stringKey(func(c *Config) *string { return &c.SwarmListen }),
	"cache_limit": func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf(`must be a size like "20GiB", got %s`, policies.Describe(v))
		}
		n, err := parseBytes(s)
		if err == nil && n == 0 {
			return errors.New("must be more than 0 (leave it out for 80% of the cache's filesystem)")
		}
		c.CacheLimit = n
		return err
	},
	"swarm_download_rate": func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf(`must be a size per second like "100MiB", got %s`, policies.Describe(v))
		}
		n, err := parseBytes(strings.TrimSuffix(s, "/s"))
		c.SwarmDownloadRate = n
		return err
	},
	"cores": func(c *Config, v any) error {
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("must be an integer, got %s", policies.Describe(v))
		}
		c.Cores = n
		return nil
	},
	"memory": func(c *Config, v any) error {
		switch x := v.(type) {
		case int64:
			c.MemoryMiB = x
			return nil
		case string:
			n, err := parseBytes(x)
			if err == nil && n < 1<<20 {
				return fmt.Errorf("size %q is less than 1MiB (leave memory out to use what the hypervisor reports)", x)
			}
			c.MemoryMiB = n >> 20
			return err
		}
		return fmt.Errorf(`must be a size like "64GiB" or an integer number of MiB, got %s`, policies.Describe(v))
	},
	"heartbeat":      durationKey(func(c *Config) *time.Duration { return &c.Heartbeat }),
	"shutdown_grace": durationKey(func(c *Config) *time.Duration { return &c.ShutdownGrace }),
}

func stringKey(field func(*Config) *string) func(*Config, any) error {
	return func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("must be a string, got %s", policies.Describe(v))
		}
		*field(c) = s
		return nil
	}
}

func durationKey(field func(*Config) *time.Duration) func(*Config, any) error {
	return func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf(`must be a duration like "5s" or "1m30s", got %s`, policies.Describe(v))
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf(`must be a duration like "5s" or "1m30s", got %q`, s)
		}
		*field(c) = d
		return nil
	}
}

// parseBytes reads a size with a unit ("20GiB", "500MB"); a bare number
// is refused, since bytes, KiB and MiB are all plausible readings.
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" || t[len(t)-1] >= '0' && t[len(t)-1] <= '9' {
		return 0, fmt.Errorf(`size %q needs a unit, like "20GiB" or "500MB"`, s)
	}
	// humanize reads "1,5GiB" as 15 GiB; refuse the comma rather than guess.
	if strings.Contains(t, ",") {
		return 0, fmt.Errorf("size %q: write decimals with a dot and no thousands separators", s)
	}
	n, err := humanize.ParseBigBytes(t)
	if err != nil || !n.IsInt64() {
		return 0, fmt.Errorf(`size %q: want a number and a unit like "20GiB" or "500MB"`, s)
	}
	return n.Int64(), nil
}
