package deptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const module = "github.com/fairlease/fairlease"

// pkg is the part of `go list -json` the rules read.
type pkg struct {
	ImportPath string
	Deps       []string // every package it imports, directly or not
	Error      *struct{ Err string }
}

// rule forbids the packages matching roots (a path, or path/... for its
// subpackages) to import, directly or not, packages whose path starts
// with one of the prefixes.
type rule struct {
	why      string
	roots    []string
	prefixes []string
}

var rules = []rule{
	{
		why:   "the pure core runs in the simulator and the broker alike (DESIGN.md §2)",
		roots: []string{"lease/...", "policies/...", "fairshare/...", "sim/..."},
		prefixes: []string{
			"github.com/hashicorp/raft", // raft, raft-boltdb, ...
			"libvirt.org/",
			"github.com/aws/",
			"github.com/anacrolix/",
		},
	},
	{
		why:      "lease is the vocabulary every package speaks, so it speaks no other package of ours",
		roots:    []string{"lease/..."},
		prefixes: []string{module + "/"},
	},
}

// TestImports lists the packages with the go command (non-test builds, the
// default build tags) and checks every rule against their dependencies.
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	for _, r := range rules {
		pkgs := list(t, goTool, r.roots)
		for _, root := range r.roots {
			// A package moved or renamed must not slip out of the rule.
			if !slices.ContainsFunc(pkgs, func(p pkg) bool { return matches(p.ImportPath, []string{root}) }) {
				t.Errorf("no package matches %s", root)
			}
		}
		for _, v := range violations(pkgs, r) {
			t.Errorf("%s (rule: %s)", v, r.why)
		}
	}
}

func list(t *testing.T, goTool string, roots []string) []pkg {
	t.Helper()
	args := []string{"list", "-e", "-json=ImportPath,Deps,Error"}
	for _, r := range roots {
		args = append(args, "./"+r)
	}
	cmd := exec.Command(goTool, args...)
	cmd.Dir = filepath.Join("..", "..") // the module's root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); dec.More(); {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Error != nil {
			// An import that does not resolve hides what is behind it.
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// violations returns one line per forbidden dependency of pkgs under r.
func violations(pkgs []pkg, r rule) []string {
	var out []string
	for _, p := range pkgs {
		if !matches(p.ImportPath, r.roots) {
			continue
		}
		for _, d := range p.Deps {
			for _, f := range r.prefixes {
				if strings.HasPrefix(d, f) || d == strings.TrimSuffix(f, "/") {
					out = append(out, fmt.Sprintf("%s imports %s", p.ImportPath, d))
				}
			}
		}
	}
	return out
}

func matches(path string, roots []string) bool {
	for _, r := range roots {
		base, sub := strings.CutSuffix(r, "/...")
		full := module + "/" + base
		if path == full || sub && strings.HasPrefix(path, full+"/") {
			return true
		}
	}
	return false
}

// TestViolations checks the checker on made-up packages, so that a rule
// that can never fire does not pass for a kept one.
func TestViolations(t *testing.T) {
	pkgs := []pkg{
		{ImportPath: module + "/lease", Deps: []string{"fmt", "time"}},
		{ImportPath: module + "/sim/trace", Deps: []string{"fmt", "github.com/hashicorp/raft-boltdb/v2", "libvirt.org/go/libvirt"}},
		{ImportPath: module + "/fairshare", Deps: []string{module + "/lease", "github.com/aws/aws-sdk-go-v2/service/ec2"}},
		{ImportPath: module + "/policiesx", Deps: []string{"github.com/anacrolix/torrent"}},  // not under policies/
		{ImportPath: module + "/broker/server", Deps: []string{"github.com/hashicorp/raft"}}, // allowed there
		{ImportPath: module + "/policies", Deps: []string{"github.com/hashicorp/go-metrics", "libvirt.org"}},
	}
	want := []string{
		module + "/sim/trace imports github.com/hashicorp/raft-boltdb/v2",
		module + "/sim/trace imports libvirt.org/go/libvirt",
		module + "/fairshare imports github.com/aws/aws-sdk-go-v2/service/ec2",
		module + "/policies imports libvirt.org",
	}
	if diff := cmp.Diff(want, violations(pkgs, rules[0])); diff != "" {
		t.Errorf("core rule: got … want differs (-want +got):\n%s", diff)
	}
	lease := []pkg{{ImportPath: module + "/lease", Deps: []string{"fmt", module + "/internal/clock"}}}
	if diff := cmp.Diff([]string{module + "/lease imports " + module + "/internal/clock"}, violations(lease, rules[1])); diff != "" {
		t.Errorf("lease rule: got … want differs (-want +got):\n%s", diff)
	}
}
