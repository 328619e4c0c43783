// Package broker holds the broker's replicated state: a pure State that
// changes only by applying commands from the Raft log, in the same way on
// every replica. It never reads a clock or a random source: the proposer
// stamps the time into each command. Raft itself lives in broker/server.
package broker

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/fairlease/fairlease/lease"
)

// CommandType is stored in the log and in snapshots: only add values,
// never renumber. A retired type keeps its number and its handler returns
// an error.
type CommandType uint8

// Command types.
const (
	CmdSubmit      CommandType = 1  // lease requests, decided in order
	CmdAdvance     CommandType = 2  // time passes: due starts, ends and expiries
	CmdRelease     CommandType = 3  // a user ends or cancels a lease
	CmdLeaseState  CommandType = 4  // a host reports a lease's VMs running or failed
	CmdSetPolicy   CommandType = 5  // replace the site policy (TOML)
	CmdSetGroup    CommandType = 6  // add or change one group: weight, parent, quota
	CmdPutUser     CommandType = 7  // add or change a user
	CmdDeleteUser  CommandType = 8  // remove a user and their tokens
	CmdPutToken    CommandType = 9  // add an API token (its hash)
	CmdRevokeToken CommandType = 10 // remove an API token
	CmdPutHost     CommandType = 11 // add a host to the site
	CmdRemoveHost  CommandType = 12 // take an idle host out
	CmdHeartbeat   CommandType = 13 // a host says it is alive
	CmdHostLost    CommandType = 14 // a host missed its heartbeats
	CmdPutNode     CommandType = 15 // a broker node's addresses, for forwarding
	CmdRemoveNode  CommandType = 16 // a broker node left

	// IgnoreUnknownFlag marks a type that replicas which do not know it
	// may skip; without it an unknown type stops the replica, so that its
	// state cannot silently diverge.
	IgnoreUnknownFlag CommandType = 128
)

var commandNames = map[CommandType]string{
	CmdSubmit: "submit", CmdAdvance: "advance", CmdRelease: "release", CmdLeaseState: "lease-state",
	CmdSetPolicy: "set-policy", CmdSetGroup: "set-group", CmdPutUser: "put-user", CmdDeleteUser: "delete-user",
	CmdPutToken: "put-token", CmdRevokeToken: "revoke-token", CmdPutHost: "put-host", CmdRemoveHost: "remove-host",
	CmdHeartbeat: "heartbeat", CmdHostLost: "host-lost", CmdPutNode: "put-node", CmdRemoveNode: "remove-node",
}

func (t CommandType) String() string {
	if n, ok := commandNames[t]; ok {
		return n
	}
	return fmt.Sprintf("command(%d)", uint8(t))
}

// Command is one entry of the log.
type Command struct {
	Type CommandType
	// Time is when the proposer made the command: Apply's only clock.
	Time time.Time
	// Actor is who asked: a user name, a host, or "system" for the
	// leader's timed work.
	Actor string
	// Body is the type's payload, JSON.
	Body json.RawMessage
}

// NewCommand builds a command with body encoded.
func NewCommand(t CommandType, at time.Time, actor string, body any) (Command, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return Command{}, fmt.Errorf("broker: encode %s: %w", t, err)
	}
	return Command{Type: t, Time: at.UTC(), Actor: actor, Body: b}, nil
}

type wireCommand struct {
	T     CommandType     `json:"t"`
	At    int64           `json:"at"`
	Actor string          `json:"actor,omitempty"`
	Body  json.RawMessage `json:"body,omitempty"`
}

// Encode turns c into a log entry: its type byte, then JSON.
func Encode(c Command) ([]byte, error) {
	b, err := json.Marshal(wireCommand{T: c.Type, At: c.Time.UnixNano(), Actor: c.Actor, Body: c.Body})
	if err != nil {
		return nil, fmt.Errorf("broker: encode command: %w", err)
	}
	return append([]byte{byte(c.Type)}, b...), nil
}

// Decode reads a log entry written by Encode.
func Decode(b []byte) (Command, error) {
	if len(b) < 1 {
		return Command{}, fmt.Errorf("broker: empty log entry")
	}
	var w wireCommand
	if err := json.Unmarshal(b[1:], &w); err != nil {
		return Command{}, fmt.Errorf("broker: decode %s: %w", CommandType(b[0]), err)
	}
	if w.T != CommandType(b[0]) {
		return Command{}, fmt.Errorf("broker: entry says %s in its header and %s in its body", CommandType(b[0]), w.T)
	}
	return Command{Type: w.T, Time: time.Unix(0, w.At).UTC(), Actor: w.Actor, Body: w.Body}, nil
}

// Payloads.

// Submit asks for leases, decided in order.
type Submit struct {
	Requests []lease.Request `json:"requests"`
	// Contexts, when set, go with the requests of the same index: the
	// cluster key pair and user keys each cluster's VMs get at boot.
	Contexts []*ClusterContext `json:"contexts,omitempty"`
	// Launches, when set, go with the requests of the same index: what
	// an EC2 RunInstances call said besides the request.
	Launches []*Launch `json:"launches,omitempty"`
}

// Release ends a running lease or cancels a waiting one.
type Release struct {
	ID     lease.ID `json:"id"`
	Reason string   `json:"reason,omitempty"`
}

// LeaseStateChange reports what a host saw of a lease's VMs.
type LeaseStateChange struct {
	ID    lease.ID    `json:"id"`
	State lease.State `json:"state"` // running or failed
	Note  string      `json:"note,omitempty"`
}

// SetPolicy replaces the site policy with the TOML document Text.
type SetPolicy struct {
	Text string `json:"text"`
}

// SetGroup adds or changes one group of the share tree.
type SetGroup struct {
	Group lease.GroupID `json:"group"`
	// Weight, when > 0, sets the group's weight.
	Weight float64 `json:"weight,omitempty"`
	// Parent, when set, moves the group under another ("-" for the root).
	Parent string `json:"parent,omitempty"`
	// Quota, when set, replaces the group's quota.
	Quota *QuotaSpec `json:"quota,omitempty"`
}

// QuotaSpec is a group's quota; zero fields mean no limit.
type QuotaSpec struct {
	MaxCores     int64         `json:"max_cores"`
	MaxMemoryMiB int64         `json:"max_memory_mib"`
	MaxLease     time.Duration `json:"max_lease"`
	MaxVMs       int           `json:"max_vms"`
}

// Name identifies a user, token, host or node to remove.
type Name struct {
	Name string `json:"name"`
}
