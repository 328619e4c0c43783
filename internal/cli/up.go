package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/broker/server"
	"github.com/fairlease/fairlease/broker/simhosts"
	"github.com/fairlease/fairlease/lease"
)

type upFlags struct {
	data       string
	listen     string
	raft       string
	ec2Listen  string
	hosts      int
	driver     string
	hostCores  int64
	hostMemory string
	boot       time.Duration
	verbose    bool
	imageRate  string
	// imageBytes is imageRate in bytes per second (0: no limit).
	imageBytes int64
}

func newUpCmd(e *env) *cobra.Command {
	var fl upFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole broker on this machine: one-node Raft, the APIs, and a local site",
		Long: `up runs everything in one process: a single-node Raft broker keeping its
state in --data, the REST API and metrics on localhost, and a local site of
--hosts hosts, so that leases run end to end: host agents in this process
that run VMs as libvirt domains, with libvirt's test driver (--driver test,
no hypervisor needed) or QEMU (--driver qemu: real VMs; needs libvirtd), or
simulated hosts that only account for VMs (--driver sim). It prints an
admin token and writes it with the addresses to DATA/up.env:

    source fairlease-data/up.env
    fairlease lease create --count 3 --cores 1 --memory 1GiB --duration 10m --wait running

The host agents fetch images from the broker's store and from each other
over a BitTorrent swarm on loopback, once per host; --image-rate caps each
host's intake (say 8MiB), as a site's links would, so that a cold image's
download phase ("image 63 %" in lease show) can be watched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if fl.driver == "qemu" {
				// One machine: one host that offers the machine's memory,
				// unless asked otherwise.
				if !cmd.Flags().Changed("hosts") {
					fl.hosts = 1
				}
				if !cmd.Flags().Changed("host-memory") {
					fl.hostMemory = ""
				}
			}
			return runUp(e, fl)
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.data, "data", "fairlease-data", "directory for the broker's state")
	f.StringVar(&fl.listen, "listen", "127.0.0.1:7400", "address of the REST API and metrics")
	f.StringVar(&fl.raft, "raft", "127.0.0.1:7300", "address of the Raft transport")
	f.StringVar(&fl.ec2Listen, "ec2-listen", "127.0.0.1:8773", "address of the EC2 Query API (the aws CLI's --endpoint-url)")
	f.IntVar(&fl.hosts, "hosts", 4, "hosts in the local site")
	f.StringVar(&fl.driver, "driver", "test", "how hosts run VMs: test (libvirt's test driver), qemu (real VMs) or sim (simulated hosts)")
	f.Int64Var(&fl.hostCores, "host-cores", 8, "cores each host offers (with qemu they may exceed the machine's: TCG VMs share them)")
	f.StringVar(&fl.hostMemory, "host-memory", "32GiB", "memory each host offers (qemu: default the machine's)")
	f.BoolVar(&fl.verbose, "verbose", false, "log what the broker and the host agents do, not only warnings")
	f.DurationVar(&fl.boot, "boot", time.Second, "how long a simulated VM takes to boot (--driver sim)")
	f.StringVar(&fl.imageRate, "image-rate", "0", "image bytes per second each host agent takes in over the swarm, like 8MiB (0: no limit; not with --driver sim)")
	return cmd
}

func runUp(e *env, fl upFlags) error {
	switch {
	case fl.driver != "test" && fl.driver != "qemu" && fl.driver != "sim":
		return usagef("--driver %q: want test, qemu or sim", fl.driver)
	case fl.hosts < 1:
		return usagef("--hosts must be at least 1, got %d", fl.hosts)
	case fl.hostCores < 1:
		return usagef("--host-cores must be at least 1, got %d", fl.hostCores)
	}
	if fl.imageRate != "" && fl.imageRate != "0" {
		r, err := humanize.ParseBytes(strings.TrimSuffix(fl.imageRate, "/s"))
		switch {
		case err != nil || r == 0 || r > 1<<62:
			return usagef("--image-rate: want a size per second like 8MiB, or 0 for no limit, got %q", fl.imageRate)
		case fl.driver == "sim":
			return usagef("--image-rate: simulated hosts (--driver sim) fetch no images; use --driver test or qemu")
		}
		fl.imageBytes = int64(r)
	}
	var mem uint64
	if fl.hostMemory != "" {
		var err error
		if mem, err = humanize.ParseBytes(fl.hostMemory); err != nil || mem < 1<<20 {
			return usagef("--host-memory: want a size like 32GiB, got %q", fl.hostMemory)
		}
	}
	// 0711: QEMU, running as its own user, passes through to the agents'
	// VM files; every secret here is a 0600 file.
	for _, d := range []string{fl.data, filepath.Join(fl.data, "agents")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return failure(fmt.Errorf("--data: %w", err), "")
		}
		if err := os.Chmod(d, 0o711); err != nil {
			return failure(fmt.Errorf("--data: %w", err), "")
		}
	}
	level := slog.LevelWarn
	if fl.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	ln, err := net.Listen("tcp", fl.listen)
	if err != nil {
		return failure(fmt.Errorf("--listen: %w", err), "is another fairlease up running? stop it or pass --listen 127.0.0.1:0")
	}
	apiAddr := "http://" + ln.Addr().String()
	secret, err := clusterSecret(filepath.Join(fl.data, "cluster-secret"))
	if err != nil {
		ln.Close()
		return failure(err, "")
	}
	cfg := server.DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.RaftAddr, cfg.APIAddr = "up", filepath.Join(fl.data, "raft"), fl.raft, apiAddr
	cfg.Bootstrap, cfg.ClusterSecret, cfg.Logger = true, secret, log
	// Simulated hosts beat every few seconds; give them room.
	cfg.HostTimeout = time.Minute
	cfg.LeaderJobs = append(cfg.LeaderJobs, overflowJob(log, time.Second))
	ec2ln, err := net.Listen("tcp", fl.ec2Listen)
	if err != nil {
		ln.Close()
		return failure(fmt.Errorf("--ec2-listen: %w", err), "is another fairlease up running? stop it or pass --ec2-listen 127.0.0.1:0")
	}
	defer ec2ln.Close()
	ec2Addr := "http://" + ec2ln.Addr().String()
	s, err := server.New(cfg)
	if err != nil {
		ln.Close()
		return failure(err, "is another fairlease up using --raft "+fl.raft+"?")
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	p := server.APIParams{Backend: s, Internal: s.InternalHandler(), Registry: s.Registry(), Addr: ln.Addr().String(), DataDir: fl.data,
		PublicURL: apiAddr, SwarmListen: "127.0.0.1:0"}
	ac := apiConfig(p)
	ac.Logger = log // request logs with --verbose only
	a, err := api.New(ac)
	if err != nil {
		ln.Close()
		return failure(err, "")
	}
	defer a.Close()
	apiErr := make(chan error, 1)
	go func() { apiErr <- a.ServeListener(ctx, ln, "", "") }()
	go func() {
		if err := serveEC2(ctx, ec2ln, s, "fairlease", log); err != nil {
			apiErr <- fmt.Errorf("ec2 api: %w", err)
		}
	}()

	if err := waitLeader(ctx, s); err != nil {
		return failure(err, "")
	}
	go a.SeedAll(ctx)
	envFile := filepath.Join(fl.data, "up.env")
	token, err := adminToken(ctx, s, envFile)
	if err != nil {
		return failure(err, "")
	}
	capacity := lease.Resources{Cores: fl.hostCores, MemoryMiB: int64(mem >> 20)}
	var hostsErr <-chan error
	site := fmt.Sprintf("%d simulated hosts × %d cores / %s", fl.hosts, fl.hostCores, humanize.IBytes(mem))
	if fl.driver == "sim" {
		sc := simhosts.DefaultConfig()
		sc.Hosts, sc.Boot, sc.Logger = fl.hosts, fl.boot, log
		sc.Capacity = capacity
		errs := make(chan error, 1)
		hostsErr = errs
		go func() { errs <- simhosts.Run(ctx, s, sc) }()
	} else {
		if hostsErr, err = startAgents(ctx, s, fl, apiAddr, capacity, log); err != nil {
			return failure(fmt.Errorf("local site: %w", err), "")
		}
		site = fmt.Sprintf("%d host agents (%s driver), agent state in %s", fl.hosts, fl.driver, filepath.Join(fl.data, "agents"))
	}

	// up.env is the sign that the site is ready: written once its hosts
	// are there, so that a script that waits for it can lease at once.
	if err := waitHosts(ctx, s, fl.hosts); err != nil {
		return failure(fmt.Errorf("local site: %w", err), "")
	}
	if err := writeEnv(envFile, apiAddr, token, ec2Addr); err != nil {
		return failure(err, "")
	}
	fmt.Fprintf(e.stdout, "fairlease up: broker ready\n")
	fmt.Fprintf(e.stdout, "  api      %s   (openapi: %s/v1/openapi.json)\n", apiAddr, apiAddr)
	fmt.Fprintf(e.stdout, "  ec2      %s   (aws --endpoint-url %s --region fairlease ec2 …; keys: fairlease user keys create)\n", ec2Addr, ec2Addr)
	fmt.Fprintf(e.stdout, "  metrics  %s/metrics\n", apiAddr)
	fmt.Fprintf(e.stdout, "  raft     %s, state in %s\n", s.RaftAddr(), fl.data)
	fmt.Fprintf(e.stdout, "  site     %s\n", site)
	fmt.Fprintf(e.stdout, "  token    %s\n", token)
	fmt.Fprintf(e.stdout, "\nIn another shell:\n  source %s\n  fairlease lease create --count 3 --cores 1 --memory 1GiB --duration 10m --wait running\n", envFile)

	select {
	case <-ctx.Done():
		fmt.Fprintln(e.stdout, "fairlease up: stopping")
		return nil
	case err := <-apiErr:
		if ctx.Err() != nil || errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return failure(fmt.Errorf("api: %w", err), "")
	case err := <-hostsErr:
		if ctx.Err() != nil {
			return nil
		}
		return failure(fmt.Errorf("local site: %w", err), "")
	}
}

// waitHosts waits until the site has n hosts up.
func waitHosts(ctx context.Context, s *server.Server, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		up := 0
		if err := s.Read(ctx, false, func(st *broker.State) error {
			for _, h := range st.Hosts() {
				if h.State == broker.HostUp {
					up++
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if up >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d hosts up after 30 s", up, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// clusterSecret reads the node's secret for internal requests, making one
// the first time.
func clusterSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	s := hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cluster secret: %w", err)
	}
	return s, nil
}

func waitLeader(ctx context.Context, s *server.Server) error {
	deadline := time.Now().Add(30 * time.Second)
	for !s.IsLeader() {
		if time.Now().After(deadline) {
			return errors.New("the single broker node did not become leader within 30 s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// adminToken returns the admin token of up.env when it still works, or
// creates the admin user (the first time) and a new token.
func adminToken(ctx context.Context, s *server.Server, envFile string) (string, error) {
	old := readEnv(envFile)["FAIRLEASE_TOKEN"]
	var haveAdmin, tokenOK bool
	s.Read(ctx, true, func(st *broker.State) error {
		_, haveAdmin = st.User("admin")
		if id, secret, ok := api.ParseToken(old); ok {
			if t, found := st.Token(id); found && t.User == "admin" && string(t.Hash) == string(api.Hash(secret)) {
				tokenOK = true
			}
		}
		return nil
	})
	if tokenOK {
		return old, nil
	}
	now := time.Now()
	if !haveAdmin {
		c, _ := broker.NewCommand(broker.CmdPutUser, now, "up", broker.User{Name: "admin", Role: broker.RoleAdmin})
		if _, err := s.Propose(ctx, c); err != nil {
			return "", fmt.Errorf("create the admin user: %w", err)
		}
	}
	id, secret, token := api.NewToken()
	c, _ := broker.NewCommand(broker.CmdPutToken, now, "up", broker.Token{ID: id, User: "admin", Hash: api.Hash(secret), Name: "fairlease up"})
	if _, err := s.Propose(ctx, c); err != nil {
		return "", fmt.Errorf("create the admin token: %w", err)
	}
	return token, nil
}

func readEnv(path string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = strings.Trim(v, `"'`)
		}
	}
	return out
}

// writeEnv writes the addresses and token for scripts to source.
func writeEnv(path, addr, token, ec2 string) error {
	body := fmt.Sprintf("# written by fairlease up: source it to talk to this broker\nexport FAIRLEASE_ADDR=%s\nexport FAIRLEASE_TOKEN=%s\nexport FAIRLEASE_EC2_ENDPOINT=%s\n", addr, token, ec2)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		return fmt.Errorf("up.env: %w", err)
	}
	return os.Rename(tmp, path)
}
