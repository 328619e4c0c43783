package policies_test

import (
	"bytes"
	"errors"
	"io/fs"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fairlease/fairlease/policies"
)

// FuzzParse checks that any input gives either a policy that validates or a
// located *LoadError, never a panic. `go test` runs the seeds only; fuzz with
// go test ./policies/ -run '^$' -fuzz FuzzParse -fuzztime 60s
func FuzzParse(f *testing.F) {
	names, err := fs.Glob(policies.Examples, "*.toml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range names {
		data, err := fs.ReadFile(policies.Examples, name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, seed := range []string{
		"",
		"[groups]\nphysics = { weight = 1, overflow = { sites = [\"ec2\"], budget_core_hours = -1 } }\n",
		"groups.a.parent = \"b\"\ngroups.b.parent = \"a\"\n",
		"[groups.a]\nmax_memory = \"1.5TiB\"\nmax_lease = \"1d12h\"\n",
		"[[groups]]\n",
		"reserve = nan\n",
		"[flavors]\n\"t3.small\" = { cores = 1, memory = \"2GiB\" }\n\"hpc.16x64\" = { cores = 16, memory = \"64GiB\" }\n",
		"[flavors.a]\ncores = 0\n[flavors.b]\nmemory = \"1.5TiB\"\ncores = 4096\n",
		"flavors = {}\n",
		"flavors.x.cores = 2\nflavors.x.memory = 3000\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := policies.Parse("fuzz.toml", bytes.NewReader(data))
		if err != nil {
			var le *policies.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Parse: got %T %v, want a *LoadError", err, err)
			}
			if p != nil {
				t.Errorf("Parse: got a policy and an error")
			}
			if le.File != "fuzz.toml" {
				t.Errorf("LoadError.File = %q, want %q", le.File, "fuzz.toml")
			}
			if le.Key == "" && le.Line <= 0 && le.Msg == "" {
				t.Errorf("LoadError %#v locates and says nothing", le)
			}
			if lines := bytes.Count(data, []byte("\n")) + 1; le.Line > lines {
				t.Errorf("LoadError.Line = %d, past the input's %d lines: %v", le.Line, lines, le)
			}
			_ = le.Error()
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse gave a policy that does not validate: %v", err)
		}
		if diff := cmp.Diff(p, p.Clone(), allowRoots); diff != "" {
			t.Errorf("Clone differs (-orig +clone):\n%s", diff)
		}
		for _, f := range p.FlavorList() {
			if got, ok := p.Flavor(f.Name); !ok || got != f || f.Cores <= 0 || f.MemoryMiB <= 0 {
				t.Errorf("flavor %+v: Flavor(%q) = %+v, %v; want it, with cores and memory > 0", f, f.Name, got, ok)
			}
		}
		for id, g := range p.Groups {
			if got, ok := p.Group(id); !ok || got != g {
				t.Errorf("Group(%q) does not return the configured group", id)
			}
			path := p.Path(id)
			if len(path) == 0 || path[len(path)-1] != id || !slices.Contains(p.Roots(), path[0]) {
				t.Errorf("Path(%q) = %q, want a path from a root to the group", id, path)
			}
		}
	})
}

// FuzzSet checks that Set either sets a valid knob or leaves the policy as
// it was.
func FuzzSet(f *testing.F) {
	for _, kv := range [][2]string{{"reserve", "0.2"}, {"loan_limit", "2h"}, {"half_life", "1d12h"}, {"unknown_groups", "reject"}, {"name", "x\ny = 1"}} {
		f.Add(kv[0], kv[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		p := policies.Default()
		if err := policies.Set(p, key, value); err != nil {
			var le *policies.LoadError
			if !errors.As(err, &le) || le.Key != key || le.Line != 0 {
				t.Errorf("Set(%q, %q): got %#v, want a *LoadError for the key without a line", key, value, err)
			}
			if diff := cmp.Diff(policies.Default(), p, allowRoots); diff != "" {
				t.Errorf("Set failed but changed the policy (-want +got):\n%s", diff)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Errorf("Set(%q, %q) left an invalid policy: %v", key, value, err)
		}
	})
}
