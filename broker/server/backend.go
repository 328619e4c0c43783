package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fairlease/fairlease/broker"
)

// Backend is broker.Backend: what the HTTP API and the simulated hosts
// need from a node. *Server implements it.
type Backend = broker.Backend

var _ Backend = (*Server)(nil)

// Errors.
var (
	// ErrNotLeader: this node is not the leader and no leader could be
	// reached before the context ended.
	ErrNotLeader = errors.New("server: not the leader")
	// ErrUnknownOutcome: leadership was lost, or the leader became
	// unreachable, after the command left this node; it may or may not
	// have been committed. Read the state before retrying.
	ErrUnknownOutcome = errors.New("server: outcome unknown: the leader changed while the command was in flight")
	// ErrClosed: the server is shut down.
	ErrClosed = errors.New("server: closed")
)

// NotLeaderError says who the leader is, when known.
type NotLeaderError struct {
	LeaderID  string
	LeaderAPI string // base URL of the leader's API, empty if unknown
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "server: not the leader, and no leader is known"
	}
	return "server: not the leader; the leader is " + e.LeaderID + " at " + e.LeaderAPI
}

// Is makes errors.Is(err, ErrNotLeader) hold.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// APIParams is what the HTTP API gets when a node starts it.
type APIParams struct {
	Backend Backend
	// Internal serves /internal/v1/: forwarding and joining between
	// nodes. The API must mount it (mux.Handle("/internal/", Internal)),
	// because followers reach the leader through the leader's API address.
	Internal http.Handler
	// Registry holds the node's metrics, for /metrics.
	Registry *prometheus.Registry
	// Addr is the address to listen on; TLSCert and TLSKey, when set,
	// name the certificate and key to serve TLS with.
	Addr, TLSCert, TLSKey string
	// DataDir is the node's data directory; the API keeps pushed images
	// under it.
	DataDir string
	// PublicURL is how peers and clients reach this API; SwarmListen,
	// when set, where its image store seeds over BitTorrent.
	PublicURL, SwarmListen string
}

// APIStarter starts the HTTP API and serves until ctx ends. The CLI's
// `fairlease server` calls it; broker/api provides it.
type APIStarter func(ctx context.Context, p APIParams) error

// Unavailable reports whether err means the cluster cannot take a request
// now (no leader could be reached, or the node is shutting down), so that
// an API answers 503 and the client may retry. An unknown outcome is not
// among them: retrying could apply the command twice.
func Unavailable(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrClosed)
}

// LeaderAPI returns the leader's API base URL that err names, for a
// redirect of a strong read made on a follower.
func LeaderAPI(err error) (string, bool) {
	var nl *NotLeaderError
	if errors.As(err, &nl) && nl.LeaderAPI != "" {
		return nl.LeaderAPI, true
	}
	return "", false
}
