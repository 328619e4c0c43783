package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// HostRequest adds a hypervisor to the local site.
type HostRequest struct {
	Name      string `json:"name" pattern:"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$" doc:"Host name"`
	Cores     int64  `json:"cores" minimum:"1" maximum:"1048576" doc:"Cores the host offers to VMs"`
	MemoryMiB int64  `json:"memory_mib" minimum:"0" maximum:"1073741824" doc:"Memory the host offers to VMs, MiB"`
}

type hostInput struct {
	Body HostRequest
}

type hostOutput struct {
	Body *broker.Host
}

type hostsOutput struct {
	Body []broker.Host
}

type hostNameInput struct {
	Name string `path:"name" maxLength:"253" doc:"Host name"`
}

// MemberRequest adds a broker node to the Raft cluster.
type MemberRequest struct {
	ID       string `json:"id" pattern:"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$" doc:"Node id"`
	RaftAddr string `json:"raft_addr" minLength:"1" maxLength:"255" doc:"host:port of the node's Raft transport"`
	APIAddr  string `json:"api_addr" minLength:"1" maxLength:"255" doc:"Base URL of the node's API"`
}

type memberInput struct {
	Body MemberRequest
}

type memberIDInput struct {
	ID string `path:"id" maxLength:"64" doc:"Node id"`
}

type clusterOutput struct {
	Body *broker.ClusterStatus
}

func (a *API) hostRoutes() {
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "list-hosts", Method: http.MethodGet, Path: "/v1/hosts", Tags: []string{"hosts"},
		Summary: "The local site's hosts and their capacity",
	}, func(ctx context.Context, in *readOnlyInput) (*hostsOutput, error) {
		var hs []broker.Host
		err := a.read(ctx, in.Consistent, func(st *broker.State) error {
			hs = st.Hosts()
			return nil
		})
		for i := range hs {
			hs[i].LogKey = "" // the broker's secret for the agent, not the callers'
		}
		return &hostsOutput{Body: hs}, err
	})
	register(a, broker.RoleAdmin, huma.Operation{
		OperationID: "add-host", Method: http.MethodPost, Path: "/v1/hosts", Tags: []string{"hosts"},
		Summary: "Add a host to the site (admin)", DefaultStatus: http.StatusCreated,
	}, a.addHost)
	register(a, broker.RoleAdmin, huma.Operation{
		OperationID: "remove-host", Method: http.MethodDelete, Path: "/v1/hosts/{name}", Tags: []string{"hosts"},
		Summary: "Take an idle host out of the site (admin)", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *hostNameInput) (*struct{}, error) {
		if _, err := a.propose(ctx, broker.CmdRemoveHost, caller(ctx).Name, broker.Name{Name: in.Name}); err != nil {
			return nil, err
		}
		a.audit(ctx, "host.remove", in.Name)
		return nil, nil
	})
	register(a, broker.RoleAdmin, huma.Operation{
		OperationID: "cluster-status", Method: http.MethodGet, Path: "/v1/cluster", Tags: []string{"cluster"},
		Summary: "The broker cluster as this node sees it (admin)",
	}, func(ctx context.Context, _ *struct{}) (*clusterOutput, error) {
		ctx, cancel := a.backendCtx(ctx)
		defer cancel()
		s, err := a.cfg.Backend.Status(ctx)
		if err != nil {
			return nil, err
		}
		if s.Members == nil {
			s.Members = []broker.ClusterNode{}
		}
		return &clusterOutput{Body: &s}, nil
	})
	register(a, broker.RoleAdmin, huma.Operation{
		OperationID: "join-member", Method: http.MethodPost, Path: "/v1/cluster/members", Tags: []string{"cluster"},
		Summary: "Add a broker node as a voter (admin)", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *memberInput) (*struct{}, error) {
		bctx, cancel := a.backendCtx(ctx)
		defer cancel()
		if err := a.cfg.Backend.Join(bctx, in.Body.ID, in.Body.RaftAddr, in.Body.APIAddr); err != nil {
			return nil, err
		}
		a.audit(ctx, "cluster.join", in.Body.ID, "raft_addr", in.Body.RaftAddr, "api_addr", in.Body.APIAddr)
		return nil, nil
	})
	register(a, broker.RoleAdmin, huma.Operation{
		OperationID: "remove-member", Method: http.MethodDelete, Path: "/v1/cluster/members/{id}", Tags: []string{"cluster"},
		Summary: "Take a broker node out of the cluster (admin)", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *memberIDInput) (*struct{}, error) {
		bctx, cancel := a.backendCtx(ctx)
		defer cancel()
		if err := a.cfg.Backend.Remove(bctx, in.ID); err != nil {
			return nil, err
		}
		a.audit(ctx, "cluster.remove", in.ID)
		return nil, nil
	})
}

func (a *API) addHost(ctx context.Context, in *hostInput) (*hostOutput, error) {
	b := in.Body
	h := broker.Host{Name: b.Name, Capacity: lease.Resources{Cores: b.Cores, MemoryMiB: b.MemoryMiB}}
	if _, err := a.propose(ctx, broker.CmdPutHost, caller(ctx).Name, h); err != nil {
		return nil, err
	}
	a.audit(ctx, "host.add", h.Name, "cores", h.Capacity.Cores, "memory_mib", h.Capacity.MemoryMiB)
	if err := a.read(ctx, false, func(st *broker.State) error {
		for _, x := range st.Hosts() {
			if x.Name == h.Name {
				h = x
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	h.LogKey = ""
	if h.State == "" {
		h.State = broker.HostUp
	}
	return &hostOutput{Body: &h}, nil
}

func (a *API) routes() {
	a.leaseRoutes()
	a.shareRoutes()
	a.userRoutes()
	a.hostRoutes()
	a.agentRoutes()
	a.imageRoutes()
	a.federationRoutes()
	// huma documents 422 for validation; this API answers 400.
	for _, p := range a.huma.OpenAPI().Paths {
		for _, op := range []*huma.Operation{p.Get, p.Post, p.Put, p.Delete} {
			if op != nil {
				delete(op.Responses, "422")
			}
		}
	}
}
