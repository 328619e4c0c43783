package cli

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/broker/server"
)

// startAPI starts the HTTP API of a broker node; wire.go sets it to
// broker/api's. Left nil, `fairlease server` serves only the internal
// endpoints (forwarding, joining) and /metrics on the API address.
var startAPI server.APIStarter

// serverFile is the TOML of `fairlease server --config FILE`.
type serverFile struct {
	ID            string `toml:"id"`
	DataDir       string `toml:"data_dir"`
	RaftAddr      string `toml:"raft_addr"`
	AdvertiseAddr string `toml:"advertise_addr"`
	// APIListen is where the HTTP API listens; APIAddr how other nodes
	// and clients reach it (default: http:// and the listener's address).
	APIListen string `toml:"api_listen"`
	APIAddr   string `toml:"api_addr"`
	TLSCert   string `toml:"tls_cert"`
	TLSKey    string `toml:"tls_key"`
	// SwarmListen is where this node's image store seeds over BitTorrent
	// (empty: hosts fetch images over HTTP only).
	SwarmListen string `toml:"swarm_listen"`
	// EC2Listen is where the EC2 Query API listens (empty: no EC2 API);
	// EC2Region is the region it answers for.
	EC2Listen string `toml:"ec2_listen"`
	EC2Region string `toml:"ec2_region"`

	Bootstrap         bool          `toml:"bootstrap"`
	Peers             []server.Peer `toml:"peers"`
	Join              []string      `toml:"join"`
	ClusterSecret     string        `toml:"cluster_secret"`
	ClusterSecretFile string        `toml:"cluster_secret_file"`
	LogLevel          string        `toml:"log_level"`

	Raft struct {
		HeartbeatTimeout   time.Duration `toml:"heartbeat_timeout"`
		ElectionTimeout    time.Duration `toml:"election_timeout"`
		LeaderLeaseTimeout time.Duration `toml:"leader_lease_timeout"`
		CommitTimeout      time.Duration `toml:"commit_timeout"`
		SnapshotThreshold  uint64        `toml:"snapshot_threshold"`
		SnapshotInterval   time.Duration `toml:"snapshot_interval"`
		TrailingLogs       uint64        `toml:"trailing_logs"`
		LogLevel           string        `toml:"log_level"`
		// Mutual TLS between peers: this node's certificate and key, and
		// the CA that signs every peer's.
		TLSCert string `toml:"tls_cert"`
		TLSKey  string `toml:"tls_key"`
		TLSCA   string `toml:"tls_ca"`
	} `toml:"raft"`

	Batch struct {
		MaxRequests int `toml:"max_requests"`
		Depth       int `toml:"depth"`
	} `toml:"batch"`

	Jobs struct {
		AdvanceEvery   time.Duration `toml:"advance_every"`
		HostTimeout    time.Duration `toml:"host_timeout"`
		ReconcileEvery time.Duration `toml:"reconcile_every"`
	} `toml:"jobs"`
}

// defaultServerFile holds server.DefaultConfig's values, so that a file
// only sets what it changes.
func defaultServerFile() serverFile {
	d := server.DefaultConfig()
	f := serverFile{DataDir: "./fairlease-data", APIListen: "127.0.0.1:7070", LogLevel: "info"}
	f.Raft.HeartbeatTimeout, f.Raft.ElectionTimeout = d.HeartbeatTimeout, d.ElectionTimeout
	f.Raft.LeaderLeaseTimeout, f.Raft.CommitTimeout = d.LeaderLeaseTimeout, d.CommitTimeout
	f.Raft.SnapshotThreshold, f.Raft.SnapshotInterval, f.Raft.TrailingLogs = d.SnapshotThreshold, d.SnapshotInterval, d.TrailingLogs
	f.Raft.LogLevel = d.RaftLogLevel
	f.Batch.MaxRequests, f.Batch.Depth = d.MaxBatch, d.BatchDepth
	f.Jobs.AdvanceEvery, f.Jobs.HostTimeout, f.Jobs.ReconcileEvery = d.AdvanceEvery, d.HostTimeout, d.ReconcileEvery
	return f
}

// parseServerFile reads a server config, starting from the defaults;
// unknown keys are errors. name is used in messages only.
func parseServerFile(name string, r io.Reader) (serverFile, error) {
	f := defaultServerFile()
	data, err := io.ReadAll(r)
	if err != nil {
		return f, fmt.Errorf("%s: %w", name, err)
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return f, fmt.Errorf("%s:%d: %s", name, pe.Position.Line, pe.Message)
		}
		return f, fmt.Errorf("%s: %w", name, err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		return f, fmt.Errorf("%s:%d: unknown key %s", name, keyLine(data, u[0]), u[0])
	}
	return f, nil
}

// keyLine finds the line that sets key, for messages (0 if not found).
func keyLine(data []byte, key toml.Key) int {
	last := key[len(key)-1]
	for i, line := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(l, last); ok {
			if r := strings.TrimSpace(rest); strings.HasPrefix(r, "=") {
				return i + 1
			}
		}
		if strings.Trim(l, "[] ") == key.String() {
			return i + 1
		}
	}
	return 0
}

// serverFlags are the flags that override the file.
type serverFlags struct {
	config    string
	id        string
	data      string
	raftAddr  string
	apiListen string
	apiAddr   string
	bootstrap bool
	join      []string
}

func newServerCmd(e *env) *cobra.Command {
	var fl serverFlags
	cmd := &cobra.Command{
		Use:   "server --config FILE [flags]",
		Short: "Run a broker node: Raft, the replicated state, timed work and the API",
		Long: `server runs one broker node until interrupted. The TOML file sets the node's
id, data directory and addresses, how it forms or joins a cluster, Raft's
timing and TLS, batching and timed work; flags override the file. Unknown
keys are errors.

  id = "n1"
  data_dir = "/var/lib/fairlease"
  raft_addr = "10.0.0.1:7000"
  api_listen = "0.0.0.0:7070"
  api_addr = "https://10.0.0.1:7070"
  bootstrap = true          # the first node only; others: join = ["https://10.0.0.1:7070"]
  cluster_secret_file = "/etc/fairlease/cluster-secret"
  swarm_listen = "0.0.0.0:6881"   # the image store seeds over BitTorrent
  ec2_listen = "0.0.0.0:8773"     # the EC2 Query API (aws --endpoint-url)
  ec2_region = "fairlease"

  [raft]
  heartbeat_timeout = "250ms"
  tls_cert = "/etc/fairlease/n1.pem"
  tls_key = "/etc/fairlease/n1-key.pem"
  tls_ca = "/etc/fairlease/ca.pem"`,
		Example: `  fairlease server --config /etc/fairlease/server.toml
  fairlease server --config server.toml --id n2 --data ./n2 --join http://10.0.0.1:7070`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := fl.resolve(cmd)
			if err != nil {
				return err
			}
			return runServer(e, f)
		},
	}
	p := cmd.Flags()
	p.StringVar(&fl.config, "config", "", "server config `FILE` (TOML)")
	p.StringVar(&fl.id, "id", "", "node id (overrides id)")
	p.StringVar(&fl.data, "data", "", "data directory (overrides data_dir)")
	p.StringVar(&fl.raftAddr, "raft-addr", "", "Raft bind address (overrides raft_addr)")
	p.StringVar(&fl.apiListen, "api-listen", "", "HTTP API listen address (overrides api_listen)")
	p.StringVar(&fl.apiAddr, "api-addr", "", "HTTP API address others use (overrides api_addr)")
	p.BoolVar(&fl.bootstrap, "bootstrap", false, "bootstrap a new cluster if the data directory is empty")
	p.StringSliceVar(&fl.join, "join", nil, "API address of a member to join through (repeatable)")
	return cmd
}

// resolve reads the file and applies the flags.
func (fl serverFlags) resolve(cmd *cobra.Command) (serverFile, error) {
	f := defaultServerFile()
	if fl.config != "" {
		r, err := os.Open(fl.config)
		if err != nil {
			return f, failure(fmt.Errorf("--config: %w", err), "")
		}
		defer r.Close()
		if f, err = parseServerFile(fl.config, r); err != nil {
			return f, failure(err, "fix the file")
		}
	}
	set := cmd.Flags().Changed
	if set("id") {
		f.ID = fl.id
	}
	if set("data") {
		f.DataDir = fl.data
	}
	if set("raft-addr") {
		f.RaftAddr = fl.raftAddr
	}
	if set("api-listen") {
		f.APIListen = fl.apiListen
	}
	if set("api-addr") {
		f.APIAddr = fl.apiAddr
	}
	if set("bootstrap") {
		f.Bootstrap = fl.bootstrap
	}
	if set("join") {
		f.Join = fl.join
	}
	if f.ID == "" || f.RaftAddr == "" {
		return f, usagef("a node needs an id and a raft_addr (in --config or as --id and --raft-addr)")
	}
	return f, nil
}

// serverConfig turns the file into a server.Config; apiAddr is the
// advertised API address.
func (f serverFile) serverConfig(log *slog.Logger, apiAddr string) (server.Config, error) {
	c := server.DefaultConfig()
	c.ID, c.DataDir, c.RaftAddr, c.AdvertiseAddr, c.APIAddr = f.ID, f.DataDir, f.RaftAddr, f.AdvertiseAddr, apiAddr
	c.Bootstrap, c.Peers, c.Join = f.Bootstrap, f.Peers, f.Join
	c.ClusterSecret = f.ClusterSecret
	if f.ClusterSecretFile != "" {
		b, err := os.ReadFile(f.ClusterSecretFile)
		if err != nil {
			return c, fmt.Errorf("cluster_secret_file: %w", err)
		}
		c.ClusterSecret = strings.TrimSpace(string(b))
	}
	r := f.Raft
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.CommitTimeout = r.HeartbeatTimeout, r.ElectionTimeout, r.LeaderLeaseTimeout, r.CommitTimeout
	c.SnapshotThreshold, c.SnapshotInterval, c.TrailingLogs, c.RaftLogLevel = r.SnapshotThreshold, r.SnapshotInterval, r.TrailingLogs, r.LogLevel
	c.MaxBatch, c.BatchDepth = f.Batch.MaxRequests, f.Batch.Depth
	c.AdvanceEvery, c.HostTimeout, c.ReconcileEvery = f.Jobs.AdvanceEvery, f.Jobs.HostTimeout, f.Jobs.ReconcileEvery
	c.Logger = log
	c.LeaderJobs = append(c.LeaderJobs, overflowJob(log, overflowEvery))
	if r.TLSCert != "" || r.TLSKey != "" || r.TLSCA != "" {
		t, err := peerTLS(r.TLSCert, r.TLSKey, r.TLSCA)
		if err != nil {
			return c, err
		}
		c.TLS = t
	}
	return c, c.Validate()
}

// peerTLS is mutual TLS between broker nodes: each presents its
// certificate and verifies the other's against the cluster's CA.
func peerTLS(cert, key, ca string) (*tls.Config, error) {
	if cert == "" || key == "" || ca == "" {
		return nil, errors.New("raft: tls_cert, tls_key and tls_ca go together")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("raft: tls_cert and tls_key: %w", err)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("raft: tls_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("raft: tls_ca: no certificate in %s", ca)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair}, RootCAs: pool, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13,
	}, nil
}

func runServer(e *env, f serverFile) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.LogLevel)); err != nil {
		return usagef("log_level: %v", err)
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	// Listen before starting the node: with port 0 the address it
	// advertises is only known then.
	ln, err := net.Listen("tcp", f.APIListen)
	if err != nil {
		return failure(fmt.Errorf("api_listen: %w", err), "")
	}
	apiAddr := f.APIAddr
	if apiAddr == "" {
		scheme := "http://"
		if f.TLSCert != "" {
			scheme = "https://"
		}
		apiAddr = scheme + ln.Addr().String()
	}
	cfg, err := f.serverConfig(log, apiAddr)
	if err != nil {
		ln.Close()
		return failure(err, "fix the config")
	}
	s, err := server.New(cfg)
	if err != nil {
		ln.Close()
		return failure(err, "")
	}
	fmt.Fprintf(e.stdout, "fairlease server %s: raft %s, api %s, data %s\n", cfg.ID, s.RaftAddr(), apiAddr, cfg.DataDir)
	p := server.APIParams{Backend: s, Internal: s.InternalHandler(), Registry: s.Registry(),
		Addr: ln.Addr().String(), TLSCert: f.TLSCert, TLSKey: f.TLSKey, DataDir: cfg.DataDir,
		PublicURL: apiAddr, SwarmListen: f.SwarmListen}
	if f.EC2Listen != "" {
		eln, err := net.Listen("tcp", f.EC2Listen)
		if err != nil {
			ln.Close()
			s.Close()
			return failure(fmt.Errorf("ec2_listen: %w", err), "")
		}
		fmt.Fprintf(e.stdout, "fairlease server %s: ec2 http://%s\n", cfg.ID, eln.Addr())
		go func() {
			if err := serveEC2(e.ctx, eln, s, cmp.Or(f.EC2Region, "fairlease"), log); err != nil {
				log.Error("ec2 api", "err", err)
			}
		}()
	}
	var serveErr error
	if startAPI != nil {
		ln.Close() // the API binds the address itself
		serveErr = startAPI(e.ctx, p)
	} else {
		log.Warn("the REST API is not wired into this build; serving only /internal/ and /metrics")
		serveErr = serveInternal(e.ctx, ln, p)
	}
	closeErr := s.Close()
	if serveErr != nil {
		return failure(serveErr, "")
	}
	return failure(closeErr, "")
}

// serveInternal serves the internal endpoints and metrics on ln until ctx
// ends.
func serveInternal(ctx context.Context, ln net.Listener, p server.APIParams) error {
	mux := http.NewServeMux()
	mux.Handle("/internal/", p.Internal)
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.Registry, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() {
		if p.TLSCert != "" {
			errc <- hs.ServeTLS(ln, p.TLSCert, p.TLSKey)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}
