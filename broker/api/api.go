// Package api is the broker's REST/JSON API under /v1/: leases, shares,
// policy, users, tokens, hosts and cluster membership, with bearer tokens
// and roles, an OpenAPI 3.1 document generated from the Go types
// (/v1/openapi.json), Prometheus metrics (/metrics) and JSON request logs.
//
// It reads and writes the broker only through Backend, which broker/server
// implements; tests use apitest.Fake.
//
// Authorization, in one rule: a resource the caller may not see answers 404,
// as if it did not exist (another group's lease, another user's token); one
// they may see but not change answers 403; a route above their role answers
// 403 before anything is read; no or a bad token answers 401.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fairlease/fairlease/broker"
)

// Backend is what the API needs of a broker node (broker/server
// implements it).
type Backend = broker.Backend

// Config says what the API serves with.
type Config struct {
	Backend Backend
	// Internal, when set, is mounted at /internal/ as is: the nodes' own
	// forwarding and joining, authenticated by the server, not by tokens.
	Internal http.Handler
	// Logger gets the request logs and the audit log; nil means JSON on
	// stderr.
	Logger *slog.Logger
	// Registerer takes the API's metrics and Gatherer serves /metrics; a
	// *prometheus.Registry is both. Nil means a registry of the API's own.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Version goes into the OpenAPI document.
	Version string
	// Unavailable, when set, reports errors of the backend that mean "no
	// leader now" or "shutting down": they answer 503 with Retry-After.
	// Errors with a Temporary() bool method that says true, and deadlines,
	// do so too.
	Unavailable func(error) bool
	// LeaderAPI, when set, extracts the leader's API base URL from a
	// backend error that says "not the leader" (a strong read on a
	// follower): the answer is a 307 to the leader.
	LeaderAPI func(error) (url string, ok bool)
	// Timeout bounds each backend call, so that an election shows as a
	// 503 rather than a hung request. Default 10 s.
	Timeout time.Duration
	// ImageDir keeps the bytes of the images pushed to this node, by
	// digest; empty means the node takes no images. MaxImageSize bounds one
	// push (DefaultMaxImageSize when 0).
	ImageDir     string
	MaxImageSize int64
	// SwarmListen, when set (with ImageDir), makes this node seed its
	// images over BitTorrent from that address and serve the tracker and
	// web seeds; PublicURL is the base URL peers reach this API at.
	SwarmListen   string
	SwarmInterval time.Duration
	PublicURL     string
}

// API serves the broker's HTTP API.
type API struct {
	cfg     Config
	log     *slog.Logger
	huma    huma.API
	mux     *http.ServeMux
	handler http.Handler
	metrics *metrics
	swarm   *swarmPeers
}

// New builds the API.
func New(cfg Config) (*API, error) {
	if cfg.Backend == nil {
		return nil, errors.New("api: no backend")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if cfg.Registerer == nil && cfg.Gatherer == nil {
		r := prometheus.NewRegistry()
		cfg.Registerer, cfg.Gatherer = r, r
	}
	if cfg.Registerer == nil || cfg.Gatherer == nil {
		return nil, errors.New("api: set both Registerer and Gatherer, or neither")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	installErrors()
	a := &API{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), metrics: m}
	if cfg.SwarmListen != "" && cfg.PublicURL == "" {
		return nil, errors.New("api: a swarm needs the node's public URL (PublicURL) for its announce URLs")
	}
	if err := a.startSwarm(); err != nil {
		return nil, err
	}

	hc := huma.Config{
		OpenAPI: &huma.OpenAPI{
			OpenAPI: "3.1.0",
			Info: &huma.Info{
				Title:       "fairlease",
				Version:     cfg.Version,
				Description: "Timed virtual clusters, granted fairly among groups without money or preemption.",
			},
			Components: &huma.Components{
				Schemas: huma.NewMapRegistry("#/components/schemas/", huma.DefaultSchemaNamer),
				SecuritySchemes: map[string]*huma.SecurityScheme{
					"bearer": {Type: "http", Scheme: "bearer", Description: "An API token: flt_<id>_<secret>"},
				},
			},
		},
		OpenAPIPath:   "/v1/openapi",
		Formats:       huma.DefaultFormats,
		DefaultFormat: "application/json",
	}
	a.huma = humago.New(a.mux, hc)
	a.huma.UseMiddleware(a.authenticate)
	a.routes()

	a.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	if cfg.Internal != nil {
		a.mux.Handle("/internal/", cfg.Internal)
	}
	a.mux.HandleFunc("/", a.unrouted)
	a.handler = a.observe(a.recover(signAnswers(a.mux)))
	return a, nil
}

// Handler is the whole API, middleware included.
func (a *API) Handler() http.Handler { return a.handler }

// OpenAPI is the generated document.
func (a *API) OpenAPI() *huma.OpenAPI { return a.huma.OpenAPI() }

// Start builds the API from cfg and serves it on addr until ctx ends, with
// TLS when certFile and keyFile are both set: what a broker node runs.
func Start(ctx context.Context, cfg Config, addr, certFile, keyFile string) error {
	a, err := New(cfg)
	if err != nil {
		return err
	}
	return a.Serve(ctx, addr, certFile, keyFile)
}

// Serve listens on addr and serves until ctx ends, with TLS when certFile
// and keyFile are both set.
func (a *API) Serve(ctx context.Context, addr, certFile, keyFile string) error {
	if (certFile == "") != (keyFile == "") {
		return errors.New("api: TLS needs both a certificate and a key file")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", addr, err)
	}
	return a.ServeListener(ctx, ln, certFile, keyFile)
}

// ServeListener serves on ln until ctx ends, then shuts down gracefully.
func (a *API) ServeListener(ctx context.Context, ln net.Listener, certFile, keyFile string) error {
	if (certFile == "") != (keyFile == "") {
		ln.Close()
		return errors.New("api: TLS needs both a certificate and a key file")
	}
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      a.cfg.Timeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan error, 1)
	go func() {
		if certFile != "" {
			done <- srv.ServeTLS(ln, certFile, keyFile)
		} else {
			done <- srv.Serve(ln)
		}
	}()
	a.log.Info("api: serving", "addr", ln.Addr().String(), "tls", certFile != "")
	select {
	case err := <-done:
		return fmt.Errorf("api: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-done
	return err
}

// info is per-request data the middleware and the handlers share.
type info struct {
	uri  string
	user string
}

type infoKey struct{}

func requestInfo(ctx context.Context) *info {
	if i, ok := ctx.Value(infoKey{}).(*info); ok {
		return i
	}
	return &info{}
}

// recorder notes the status and size of an answer.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// observe logs every request as JSON and counts it by route and status.
func (a *API) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		in := &info{uri: r.URL.RequestURI()}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, in))
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		route := routeOf(r.Pattern)
		if strings.HasPrefix(route, "/internal/") {
			return // the server counts its own traffic
		}
		took := time.Since(start)
		a.metrics.observe(route, r.Method, rec.status, took)
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelError
		}
		a.log.LogAttrs(r.Context(), level, "http request",
			slog.String("method", r.Method), slog.String("route", route), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Int64("bytes", rec.bytes),
			slog.Float64("ms", float64(took.Microseconds())/1000),
			slog.String("user", in.user), slog.String("remote", r.RemoteAddr))
	})
}

// routeOf turns a mux pattern ("GET /v1/leases/{id}") into the route
// label: the path template, so that ids do not multiply the metrics.
func routeOf(pattern string) string {
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = p
	}
	if pattern == "" || pattern == "/" {
		return "unmatched"
	}
	return pattern
}

// recover turns a panic into a 500 with a JSON body and a log line with
// the stack, so that one bad request cannot take the node down.
func (a *API) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, ok := w.(*recorder)
		if !ok {
			rec = &recorder{ResponseWriter: w}
		}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.log.Error("api: panic serving request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", stack())
			if rec.status == 0 {
				writeJSONError(rec, &Error{Code: "internal", Message: "internal error; the broker's log has the details", status: http.StatusInternalServerError})
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// unrouted answers what no route matched: 405 when the path exists with
// other methods, 404 otherwise, both as JSON errors.
func (a *API) unrouted(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := a.mux.Handler(probe); p != "" && p != "/" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeJSONError(w, &Error{Code: "invalid", Message: fmt.Sprintf("method %s not allowed here; use %s", r.Method, strings.Join(allowed, " or ")), status: http.StatusMethodNotAllowed})
		return
	}
	writeJSONError(w, &Error{Code: "not_found", Message: "no such route: " + r.URL.Path + " (the API is under /v1/; see /v1/openapi.json)", status: http.StatusNotFound})
}

func writeJSONError(w http.ResponseWriter, e *Error) {
	for k, vs := range e.headers {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	b, _ := jsonMarshal(e)
	w.Write(append(b, '\n'))
}

// backendCtx bounds a backend call.
func (a *API) backendCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.cfg.Timeout)
}

// read reads the state, locally unless strong.
func (a *API) read(ctx context.Context, strong bool, fn func(*broker.State) error) error {
	ctx, cancel := a.backendCtx(ctx)
	defer cancel()
	return a.cfg.Backend.Read(ctx, strong, fn)
}

// propose commits one command as actor.
func (a *API) propose(ctx context.Context, t broker.CommandType, actor string, body any) (any, error) {
	c, err := broker.NewCommand(t, time.Now(), actor, body)
	if err != nil {
		return nil, err
	}
	ctx, cancel := a.backendCtx(ctx)
	defer cancel()
	return a.cfg.Backend.Propose(ctx, c)
}

// audit records a change someone made.
func (a *API) audit(ctx context.Context, action, target string, attrs ...any) {
	args := append([]any{"audit", true, "actor", caller(ctx).Name, "action", action, "target", target}, attrs...)
	a.log.InfoContext(ctx, "change", args...)
}

// register adds an operation that needs at least role, mapping handler
// errors to our error answers.
func register[I, O any](a *API, role broker.Role, op huma.Operation, h func(context.Context, *I) (*O, error)) {
	op.Metadata = map[string]any{metaRole: role}
	op.Security = []map[string][]string{{"bearer": {}}}
	op.Errors = []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusServiceUnavailable}
	huma.Register(a.huma, op, func(ctx context.Context, in *I) (*O, error) {
		out, err := h(ctx, in)
		if err != nil {
			e := a.toError(ctx, err)
			if e.status >= 500 && e.status != http.StatusServiceUnavailable {
				a.log.ErrorContext(ctx, "api: internal error", "operation", op.OperationID, "err", err.Error())
			}
			return nil, e
		}
		return out, nil
	})
}
