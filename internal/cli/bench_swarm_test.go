package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fairlease/fairlease/swarm/swarmbench"
)

// bench swarm re-executes its own binary in each namespace; in a test that
// binary is this one, which then plays the node instead of running tests.
func init() {
	if os.Getenv(swarmbench.NodeEnv) != "" {
		os.Exit(Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
}

func TestBenchSwarmUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad rate", []string{"--rate", "100mbps"}, `--rate: "100mbps" is not a link rate`},
		{"rate without unit", []string{"--rate", "100"}, `--rate: "100" is not a link rate`},
		{"bad size", []string{"--size", "lots"}, `--size: "lots" is not a size`},
		{"zero size", []string{"--size", "0"}, `--size: "0" is not a size`},
		{"no nodes", []string{"--nodes", "0"}, "--nodes must be between 1 and 250, got 0"},
		{"too many nodes", []string{"--nodes", "300"}, "--nodes must be between 1 and 250, got 300"},
		{"bad piece length", []string{"--piece-length", "100KiB"}, "--piece-length must be a power of two"},
		{"unknown method", []string{"--methods", "ftp"}, `--methods: unknown method "ftp"`},
		{"timeout too short", []string{"--nodes", "16", "--size", "1GiB", "--timeout", "1m"}, "--timeout 1m0s is shorter than the links allow"},
		{"argument", []string{"now"}, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"bench", "swarm"}, tt.args...)
			checkError(t, run(t, args...), ExitUsage, tt.want)
		})
	}
}

func TestBenchSwarmNeedsRoot(t *testing.T) {
	defer func(f func() int) { geteuid = f }(geteuid)
	geteuid = func() int { return 1000 }
	r := run(t, "bench", "swarm", "--nodes", "2", "--size", "1MiB")
	checkError(t, r, ExitFailure, "bench swarm needs root to create network namespaces; run it as root (sudo)")
}

// TestBenchSwarmEndToEnd runs a small benchmark through real namespaces,
// bridge and tbf: every copy must be the image, the shaping must hold
// the HTTP run to the seed's link, and nothing may be left afterwards.
func TestBenchSwarmEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bench swarm needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("bench swarm needs %s from iproute2: %v", tool, err)
		}
	}
	before := netState(t)
	dir := t.TempDir()
	const nodes, size, rate = 3, 8 << 20, 100e6
	args := []string{"bench", "swarm", "--nodes", "3", "--size", "8MiB", "--rate", "100mbit", "--dir", dir, "--timeout", "2m", "--json"}
	if !swarmbench.HaveSwarm() {
		args = append(args, "--methods", "http")
		t.Log("the swarm package is not built in: HTTP only")
	}
	r := run(t, args...)
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var rep swarmbench.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v in %q", err, r.stdout)
	}
	if rep.Nodes != nodes || rep.SizeBytes != size || rep.RateBitsPerSecond != rate || !rep.AllVerified {
		t.Errorf("report = %s", r.stdout)
	}
	// Every copy on disk is the image.
	want := fileSum(t, filepath.Join(dir, "seed", "image"))
	if rep.ImageSHA256 != want {
		t.Errorf("image_sha256 %s, the seed's file has %s", rep.ImageSHA256, want)
	}
	methods := []string{swarmbench.MethodHTTP}
	if swarmbench.HaveSwarm() {
		methods = append(methods, swarmbench.MethodSwarm)
	}
	for _, m := range methods {
		for i := 1; i <= nodes; i++ {
			path := filepath.Join(dir, m, "node-00"+string(rune('0'+i)), "image")
			if got := fileSum(t, path); got != want {
				t.Errorf("%s: %s has SHA-256 %s, want %s", m, path, got, want)
			}
		}
	}
	// tbf holds the seed's link: N copies cannot leave it faster than R.
	if least := 0.8 * nodes * 8 * size / rate; rep.HTTPS < least {
		t.Errorf("http_s = %.2f, want ≥ %.2f (N·S/R·0.8): the links are not shaped", rep.HTTPS, least)
	}
	if swarmbench.HaveSwarm() && (rep.SwarmS <= 0 || rep.Eta <= 0 || rep.SpeedupVsHTTP <= 0 || rep.SeedEgressRatio <= 0) {
		t.Errorf("swarm figures missing: %s", r.stdout)
	}
	if after := netState(t); after != before {
		t.Errorf("namespaces or links left behind:\nbefore %s\nafter  %s", before, after)
	}
}

// netState lists the namespaces and links whose names bench swarm uses.
func netState(t *testing.T) string {
	t.Helper()
	var keep []string
	for _, args := range [][]string{{"netns", "list"}, {"-o", "link"}} {
		b, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, b)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "fsb") {
				keep = append(keep, strings.Fields(l)[1])
			}
		}
	}
	return strings.Join(keep, " ")
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestBenchSwarmTable checks the table a person reads: human sizes and
// times, the formula, a row per node.
func TestBenchSwarmTable(t *testing.T) {
	rep := &swarmbench.Report{
		Nodes: 2, SizeBytes: 256 << 20, RateBitsPerSecond: 100e6, ImageSHA256: "0123456789abcdef",
		LowerBoundS: 21.475, SwarmS: 25, HTTPS: 43, Eta: 0.859, SpeedupVsHTTP: 1.72, SeedEgressRatio: 1.1,
		PieceLength: 256 << 10, Pieces: 1024, AllVerified: true,
		HTTP:  &swarmbench.PhaseReport{Nodes: []swarmbench.NodeReport{{Node: 1, Seconds: 42}, {Node: 2, Seconds: 43}}},
		Swarm: &swarmbench.PhaseReport{Nodes: []swarmbench.NodeReport{{Node: 1, Seconds: 24, SentBytes: 128 << 20}, {Node: 2, Seconds: 25}}},
	}
	var b strings.Builder
	if err := printSwarmTable(&b, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"256 MiB", "100 Mbit/s", "21.5 s", "max(S/U_s, S/d, N·S/(U_s+Σu))", "eta 0.86", "1024 × 256 KiB", "1.7×", "128 MiB"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
