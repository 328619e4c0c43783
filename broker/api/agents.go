package api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"golang.org/x/crypto/ssh"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// Host agents enrol with a join token (a token of the "enroll" agent
// identity, made by an admin), get a credential of their own ("host:NAME",
// role agent), and with it may only act for their host: beat, take their
// assignments, report their VMs.

// EnrollUser is the identity behind join tokens.
const EnrollUser = "enroll"

// HostUser is the identity of host name's agent.
func HostUser(name string) string { return "host:" + name }

// AgentRegistration is what an agent says of its host.
type AgentRegistration struct {
	Host      string   `json:"host" pattern:"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$" doc:"Host name"`
	Cores     int64    `json:"cores" minimum:"1" maximum:"1048576" doc:"Cores the host offers to VMs"`
	MemoryMiB int64    `json:"memory_mib" minimum:"0" maximum:"1073741824" doc:"Memory the host offers to VMs, MiB"`
	Addr      string   `json:"addr,omitempty" maxLength:"255" doc:"The agent's own base URL, where the broker reads VM console logs"`
	LogKey    string   `json:"log_key,omitempty" maxLength:"128" doc:"Secret the broker presents to read console logs"`
	Driver    string   `json:"driver,omitempty" enum:"test,qemu" doc:"How the host runs VMs"`
	Images    []string `json:"images,omitempty" maxItems:"10000" doc:"Digests of the images in the host's cache"`
}

type agentRegInput struct {
	Body AgentRegistration
}

// Credential is a host's own token, shown once.
type Credential struct {
	Host  string `json:"host"`
	Token string `json:"token"`
}

type credentialOutput struct {
	Body Credential
}

type assignmentsInput struct {
	Since uint64 `query:"since" doc:"Answer once the broker's applied index passes this"`
	Wait  string `query:"wait" doc:"Longest wait, a Go duration (default 30s, at most 2m)"`
}

// AssignmentList is what a host must run, as of Index.
type AssignmentList struct {
	Index       uint64              `json:"index"`
	Host        string              `json:"host"`
	Assignments []broker.Assignment `json:"assignments"`
	// SiteKey is the site's ed25519 public key (base64), which signs image
	// manifests; empty until the first image is pushed.
	SiteKey string `json:"site_key,omitempty"`
}

type assignmentsOutput struct {
	Body AssignmentList
}

type vmStateInput struct {
	Body broker.VMStateChange
}

type joinTokenOutput struct {
	Body Credential
}

func (a *API) agentRoutes() {
	register(a, broker.RoleAgent, huma.Operation{
		OperationID: "agent-register", Method: http.MethodPost, Path: "/v1/agent/register", Tags: []string{"agents"},
		Summary: "A host agent enrols with a join token and gets its host's credential", DefaultStatus: http.StatusCreated,
	}, a.agentRegister)
	register(a, broker.RoleAgent, huma.Operation{
		OperationID: "agent-heartbeat", Method: http.MethodPost, Path: "/v1/agent/heartbeat", Tags: []string{"agents"},
		Summary: "A host agent says its host is alive, with its capacity and cache", DefaultStatus: http.StatusNoContent,
	}, a.agentHeartbeat)
	register(a, broker.RoleAgent, huma.Operation{
		OperationID: "agent-assignments", Method: http.MethodGet, Path: "/v1/agent/assignments", Tags: []string{"agents"},
		Summary: "What a host must run; waits until the state moves past since",
	}, a.agentAssignments)
	register(a, broker.RoleAgent, huma.Operation{
		OperationID: "agent-vm-state", Method: http.MethodPost, Path: "/v1/agent/vms", Tags: []string{"agents"},
		Summary: "A host agent reports one of its VMs running, failed or stopped", DefaultStatus: http.StatusNoContent,
	}, a.agentVMState)
	register(a, broker.RoleAdmin, huma.Operation{
		OperationID: "host-join-token", Method: http.MethodPost, Path: "/v1/hosts/join-token", Tags: []string{"hosts"},
		Summary: "A token host agents enrol with (admin); shown once", DefaultStatus: http.StatusCreated,
	}, a.joinToken)
}

// agentHost returns the host the caller's credential is for.
func agentHost(u broker.User) (string, error) {
	name, ok := strings.CutPrefix(u.Name, "host:")
	if u.Role != broker.RoleAgent || !ok || name == "" {
		return "", lease.Errorf(lease.EFORBIDDEN, "", "only a host agent's own credential may do this")
	}
	return name, nil
}

func (a *API) agentRegister(ctx context.Context, in *agentRegInput) (*credentialOutput, error) {
	u := caller(ctx)
	if u.Role != broker.RoleAgent || u.Name != EnrollUser {
		return nil, lease.Errorf(lease.EFORBIDDEN, "", "registering needs a join token (fairlease host join-token)")
	}
	r := in.Body
	var exists bool
	if err := a.read(ctx, true, func(st *broker.State) error {
		for _, h := range st.Hosts() {
			if h.Name == r.Host {
				exists = true
				if h.Capacity != (lease.Resources{Cores: r.Cores, MemoryMiB: r.MemoryMiB}) {
					return lease.Errorf(lease.ECONFLICT, "host", "host %s is known with %d cores / %d MiB; remove it first to change its capacity",
						r.Host, h.Capacity.Cores, h.Capacity.MemoryMiB)
				}
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	actor := HostUser(r.Host)
	if _, err := a.propose(ctx, broker.CmdPutUser, u.Name, broker.User{Name: actor, Role: broker.RoleAgent}); err != nil {
		return nil, err
	}
	_, token, err := a.issueToken(ctx, u.Name, actor, "agent")
	if err != nil {
		return nil, err
	}
	if !exists {
		if _, err := a.propose(ctx, broker.CmdPutHost, actor, broker.Host{Name: r.Host, Capacity: lease.Resources{Cores: r.Cores, MemoryMiB: r.MemoryMiB}}); err != nil {
			return nil, err
		}
	}
	if _, err := a.propose(ctx, broker.CmdHostAgent, actor, agentFacts(r)); err != nil {
		return nil, err
	}
	a.audit(ctx, "host.register", r.Host)
	return &credentialOutput{Body: Credential{Host: r.Host, Token: token}}, nil
}

func agentFacts(r AgentRegistration) broker.HostAgent {
	return broker.HostAgent{Name: r.Host, Addr: r.Addr, LogKey: r.LogKey, Driver: r.Driver, Images: r.Images}
}

func (a *API) agentHeartbeat(ctx context.Context, in *agentRegInput) (*struct{}, error) {
	host, err := agentHost(caller(ctx))
	if err != nil {
		return nil, err
	}
	if in.Body.Host != host {
		return nil, lease.Errorf(lease.EFORBIDDEN, "host", "this credential is for %s, not %s", host, in.Body.Host)
	}
	var known broker.Host
	a.read(ctx, false, func(st *broker.State) error {
		for _, h := range st.Hosts() {
			if h.Name == host {
				known = h
			}
		}
		return nil
	})
	facts := agentFacts(in.Body)
	if known.Agent != facts.Addr || known.LogKey != facts.LogKey || known.Driver != facts.Driver || !slices.Equal(known.Images, facts.Images) {
		_, err = a.propose(ctx, broker.CmdHostAgent, HostUser(host), facts)
	} else {
		_, err = a.propose(ctx, broker.CmdHeartbeat, HostUser(host), broker.Name{Name: host})
	}
	return nil, err
}

func (a *API) agentAssignments(ctx context.Context, in *assignmentsInput) (*assignmentsOutput, error) {
	host, err := agentHost(caller(ctx))
	if err != nil {
		return nil, err
	}
	wait := 30 * time.Second
	if in.Wait != "" {
		if wait, err = time.ParseDuration(in.Wait); err != nil || wait < 0 {
			return nil, lease.Errorf(lease.EINVALID, "wait", "want a duration like 30s, got %q", in.Wait)
		}
		wait = min(wait, 2*time.Minute)
	}
	deadline := time.Now().Add(wait)
	for {
		var out AssignmentList
		ready := false
		err := a.cfg.Backend.Read(ctx, false, func(st *broker.State) error {
			// Waiting costs one index read a tick; the assignments, a walk
			// over every lease, are built once, for the answer.
			if ready = st.Index() > in.Since || !time.Now().Before(deadline); !ready {
				return nil
			}
			out = AssignmentList{Index: st.Index(), Host: host, Assignments: st.Assignments(host)}
			if k := st.SiteKey(); k != nil {
				out.SiteKey = base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		// Long-poll by looking again shortly: the state has no change
		// feed, and an agent waits for minutes at a time anyway.
		if ready {
			if out.Assignments == nil {
				out.Assignments = []broker.Assignment{}
			}
			return &assignmentsOutput{Body: out}, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (a *API) agentVMState(ctx context.Context, in *vmStateInput) (*struct{}, error) {
	host, err := agentHost(caller(ctx))
	if err != nil {
		return nil, err
	}
	ch := in.Body
	var onHost bool
	if err := a.read(ctx, false, func(st *broker.State) error {
		for _, as := range st.Assignments(host) {
			if as.Lease == ch.ID && slices.Contains(as.Mine, ch.Index) {
				onHost = true
			}
		}
		if !onHost {
			// A VM of a lease that just ended may still be reported stopped.
			if l, ok := st.Lease(ch.ID); ok {
				for _, v := range l.VMs {
					onHost = onHost || (v.Index == ch.Index && v.Host == host)
				}
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if !onHost {
		return nil, lease.Errorf(lease.EFORBIDDEN, "id", "VM %s/%d is not on host %s", ch.ID, ch.Index, host)
	}
	_, err = a.propose(ctx, broker.CmdVMState, HostUser(host), ch)
	return nil, err
}

func (a *API) joinToken(ctx context.Context, _ *struct{}) (*joinTokenOutput, error) {
	u := caller(ctx)
	if _, err := a.propose(ctx, broker.CmdPutUser, u.Name, broker.User{Name: EnrollUser, Role: broker.RoleAgent}); err != nil {
		return nil, err
	}
	id, token, err := a.issueToken(ctx, u.Name, EnrollUser, "join")
	if err != nil {
		return nil, err
	}
	a.audit(ctx, "host.join-token", id)
	return &joinTokenOutput{Body: Credential{Token: token}}, nil
}

// clusterContext makes a cluster's SSH key pair: here, before the log, since
// Apply has no randomness.
func clusterContext(userKeys []string) (*broker.ClusterContext, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	blk, err := ssh.MarshalPrivateKey(priv, "fairlease cluster key")
	if err != nil {
		return nil, err
	}
	return &broker.ClusterContext{
		PublicKey:  strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " fairlease-cluster",
		PrivateKey: string(pem.EncodeToMemory(blk)),
		UserKeys:   userKeys,
	}, nil
}

// checkUserKeys accepts authorized_keys lines only.
func checkUserKeys(keys []string) error {
	for i, k := range keys {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			return lease.Errorf(lease.EINVALID, fmt.Sprintf("ssh_keys[%d]", i), "not an SSH public key (authorized_keys format): %v", err)
		}
	}
	return nil
}

var errNoAgent = errors.New("api: the VM's host has no agent to read its console from")
