package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fairlease/fairlease/broker"
)

// Backend is what the HTTP API needs from a broker node. *Server
// implements it.
//
// Writes: Propose may be called on any node. The leader stamps the command
// with its clock and commits it; a follower forwards it to the leader's
// API (POST /internal/v1/propose, see InternalHandler) and decodes the
// reply into the same Go types the leader would return. While there is no
// leader (an election), Propose retries until ctx ends; it never retries a
// command whose outcome is unknown (the leader died after receiving it):
// that comes back as an error matching ErrUnknownOutcome.
type Backend interface {
	// Read runs fn with the state under the state's lock. Strong reads
	// first make sure this node is the leader and has applied everything
	// committed (raft VerifyLeader, and a Barrier once per term);
	// otherwise the local, possibly slightly stale state is read. A strong
	// read on a follower fails with a *NotLeaderError naming the leader's
	// API, so the API can redirect. fn must not keep the state or call
	// back into the Backend.
	Read(ctx context.Context, strong bool, fn func(*broker.State) error) error
	// Propose commits c through Raft and returns State.Apply's result and
	// error. The leader stamps c.Time with its clock just before
	// proposing (the caller's Time is ignored); a follower forwards the
	// command to the leader. Concurrent CmdSubmit proposals are merged
	// into one log entry (group commit: while Config.BatchDepth such
	// entries are in flight, new submits wait and go together, up to
	// Config.MaxBatch requests; one CmdSubmit per actor, since leases
	// record their actor) and each caller gets its own slice of the
	// []broker.SubmitResult. Results are []broker.SubmitResult (CmdSubmit),
	// *broker.Lease (CmdRelease, CmdLeaseState), broker.AdvanceResult
	// (CmdAdvance), broker.HostLostResult (CmdHostLost), nil otherwise;
	// business errors are *lease.Error. A command whose body does not
	// decode, or of an unknown type, is refused with lease.EINVALID before
	// it reaches the log.
	Propose(ctx context.Context, c broker.Command) (any, error)
	// Status describes the cluster as this node sees it.
	Status(ctx context.Context) (broker.ClusterStatus, error)
	// Join adds a voter (forwarded to the leader from a follower) and
	// records its API address; joining again with the same address is a
	// no-op.
	Join(ctx context.Context, id, raftAddr, apiAddr string) error
	// Remove takes a member out of the Raft configuration (forwarded to
	// the leader from a follower).
	Remove(ctx context.Context, id string) error
}

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
