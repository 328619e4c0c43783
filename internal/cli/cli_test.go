package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// result is what one in-process run of the binary gave.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the command line in-process, as main would.
func run(t testing.TB, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb)
	return result{out.String(), errb.String(), code}
}

// checkError checks that a failed run printed one line naming the problem.
func checkError(t *testing.T, r result, wantCode int, want string) {
	t.Helper()
	if r.code != wantCode {
		t.Errorf("exit code %d, want %d; stderr: %s", r.code, wantCode, r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q does not say %q", r.stderr, want)
	}
	if n := strings.Count(r.stderr, "\n"); n != 1 {
		t.Errorf("stderr has %d lines, want one: %q", n, r.stderr)
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
		t.Errorf("stderr shows a Go panic: %q", r.stderr)
	}
}

func TestRootUsageErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"unknown command", []string{"frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{"misspelt command", []string{"simm"}, ExitUsage, `unknown command "simm" (did you mean sim or site?)`},
		{"unknown flag", []string{"--frobnicate"}, ExitUsage, "unknown flag: --frobnicate"},
		{"bad output", []string{"--output", "xml", "version"}, ExitUsage, `--output: unknown format "xml"`},
		{"argument to version", []string{"version", "extra"}, ExitUsage, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.args...)
			checkError(t, r, tt.wantCode, tt.want)
			if !strings.Contains(r.stderr, "--help") {
				t.Errorf("usage error does not point to --help: %q", r.stderr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{nil, {"--help"}, {"sim", "--help"}} {
		r := run(t, args...)
		if r.code != ExitOK || r.stderr != "" || !strings.Contains(r.stdout, "fairlease") {
			t.Errorf("%q: got code %d, stdout %.80q, stderr %q; want help on stdout", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestGlobalsFromEnvironment(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want globals
	}{
		{"environment", map[string]string{EnvAddr: "http://b:7070", EnvToken: "s3cret"}, nil,
			globals{addr: "http://b:7070", token: "s3cret", output: OutputTable}},
		{"flags win", map[string]string{EnvAddr: "http://b:7070", EnvToken: "s3cret"}, []string{"--addr", "http://c:1", "--token", "t", "-o", "json"},
			globals{addr: "http://c:1", token: "t", output: OutputJSON}},
		{"neither", nil, nil, globals{output: OutputTable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvAddr, "")
			t.Setenv(EnvToken, "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out bytes.Buffer
			e := &env{ctx: context.Background(), stdout: &out, stderr: &out, g: &globals{}}
			root := newRoot(e)
			root.SetArgs(append(tt.args, "version"))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, *e.g, cmp.AllowUnexported(globals{})); diff != "" {
				t.Errorf("globals (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTokenNotInHelp(t *testing.T) {
	t.Setenv(EnvToken, "s3cret-token")
	r := run(t, "--help")
	if strings.Contains(r.stdout, "s3cret-token") {
		t.Errorf("help shows the token from the environment:\n%s", r.stdout)
	}
}
