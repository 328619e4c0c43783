package broker

import "context"

// Backend is what the HTTP API, host agents and simulated hosts need from a
// broker node; broker/server implements it over Raft.
//
// Writes: Propose may be called on any node. The leader stamps the command
// with its clock and commits it; a follower forwards it to the leader's
// API (POST /internal/v1/propose) and decodes the
// reply into the same Go types the leader would return. While there is no
// leader (an election), Propose retries until ctx ends; it never retries a
// command whose outcome is unknown (the leader died after receiving it):
// that comes back as an error matching the server's unknown-outcome error.
type Backend interface {
	// Read runs fn with the state under the state's lock. Strong reads
	// first make sure this node is the leader and has applied everything
	// committed (raft VerifyLeader, and a Barrier once per term);
	// otherwise the local, possibly slightly stale state is read. A strong
	// read on a follower fails with a not-leader error naming the leader's
	// API, so the API can redirect. fn must not keep the state or call
	// back into the Backend.
	Read(ctx context.Context, strong bool, fn func(*State) error) error
	// Propose commits c through Raft and returns State.Apply's result and
	// error. The leader stamps c.Time with its clock just before
	// proposing (the caller's Time is ignored); a follower forwards the
	// command to the leader. Concurrent CmdSubmit proposals are merged
	// into one log entry (group commit; one CmdSubmit per actor, since
	// leases record their actor) and each caller gets its own slice of the
	// []SubmitResult. Results are []SubmitResult (CmdSubmit),
	// *Lease (CmdRelease, CmdLeaseState), AdvanceResult
	// (CmdAdvance), HostLostResult (CmdHostLost), nil otherwise;
	// business errors are *lease.Error. A command whose body does not
	// decode, or of an unknown type, is refused with lease.EINVALID before
	// it reaches the log.
	Propose(ctx context.Context, c Command) (any, error)
	// Status describes the cluster as this node sees it.
	Status(ctx context.Context) (ClusterStatus, error)
	// Join adds a voter (forwarded to the leader from a follower) and
	// records its API address; joining again with the same address is a
	// no-op.
	Join(ctx context.Context, id, raftAddr, apiAddr string) error
	// Remove takes a member out of the Raft configuration (forwarded to
	// the leader from a follower).
	Remove(ctx context.Context, id string) error
}
