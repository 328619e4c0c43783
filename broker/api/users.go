package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// UserRequest adds a user, or changes one's group or role.
type UserRequest struct {
	Name  string `json:"name" pattern:"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$" doc:"User name"`
	Group string `json:"group,omitempty" pattern:"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$" doc:"The user's group; default: the caller's. Admins may have none."`
	Role  string `json:"role,omitempty" enum:"user,manager,admin" default:"user" doc:"user: their group's leases; manager: also the group's users; admin: everything"`
}

type usersOutput struct {
	Body []broker.User
}

type userOutput struct {
	Body *broker.User
}

type createUserInput struct {
	Body UserRequest
}

type userNameInput struct {
	Name string `path:"name" maxLength:"64" doc:"User name"`
}

// TokenRequest makes an API token.
type TokenRequest struct {
	User string `json:"user,omitempty" maxLength:"64" doc:"Whose token; default: the caller's own (admins may name anyone)"`
	Name string `json:"name,omitempty" maxLength:"64" doc:"A label, to tell tokens apart"`
}

// TokenInfo describes a token; the secret is never shown again, and its
// hash never at all.
type TokenInfo struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created,omitzero"`
}

// NewTokenInfo is a token just made, with the secret: the only time it is
// shown.
type NewTokenInfo struct {
	TokenInfo
	Token string `json:"token" doc:"Send as Authorization: Bearer <token>. Shown once."`
}

type tokenInput struct {
	Body TokenRequest
}

type newTokenOutput struct {
	Body *NewTokenInfo
}

type tokensOutput struct {
	Body []TokenInfo
}

type tokenIDInput struct {
	ID string `path:"id" maxLength:"64" doc:"Token id (the part after flt_ and before the next _)"`
}

type listTokensInput struct {
	Consistent bool   `query:"consistent" doc:"Read through the leader (linearizable) instead of this node's copy"`
	User       string `query:"user" maxLength:"64" doc:"Only this user's tokens (admins)"`
}

func (a *API) userRoutes() {
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "list-users", Method: http.MethodGet, Path: "/v1/users", Tags: []string{"users"},
		Summary: "List users (admins: all; managers: their group; users: themselves)",
	}, a.listUsers)
	register(a, broker.RoleManager, huma.Operation{
		OperationID: "create-user", Method: http.MethodPost, Path: "/v1/users", Tags: []string{"users"},
		Summary: "Add or change a user (admins: any; managers: role user in their group)", DefaultStatus: http.StatusCreated,
	}, a.createUser)
	register(a, broker.RoleManager, huma.Operation{
		OperationID: "delete-user", Method: http.MethodDelete, Path: "/v1/users/{name}", Tags: []string{"users"},
		Summary: "Remove a user and their tokens (admins: any; managers: role user in their group)", DefaultStatus: http.StatusNoContent,
	}, a.deleteUser)
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "create-token", Method: http.MethodPost, Path: "/v1/tokens", Tags: []string{"tokens"},
		Summary: "Make an API token (for yourself; admins: for anyone); the answer holds the secret, once", DefaultStatus: http.StatusCreated,
	}, a.createToken)
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "list-tokens", Method: http.MethodGet, Path: "/v1/tokens", Tags: []string{"tokens"},
		Summary: "List tokens (yours; admins: all)",
	}, a.listTokens)
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "revoke-token", Method: http.MethodDelete, Path: "/v1/tokens/{id}", Tags: []string{"tokens"},
		Summary: "Revoke a token (yours; admins: any)", DefaultStatus: http.StatusNoContent,
	}, a.revokeToken)
}

func (a *API) listUsers(ctx context.Context, in *readOnlyInput) (*usersOutput, error) {
	u := caller(ctx)
	out := []broker.User{}
	err := a.read(ctx, in.Consistent, func(st *broker.State) error {
		for _, v := range st.Users() {
			if seesUser(u, v) {
				out = append(out, v)
			}
		}
		return nil
	})
	return &usersOutput{Body: out}, err
}

func (a *API) createUser(ctx context.Context, in *createUserInput) (*userOutput, error) {
	u := caller(ctx)
	b := in.Body
	nu := broker.User{Name: b.Name, Group: lease.GroupID(b.Group), Role: broker.Role(b.Role)}
	if nu.Role == "" {
		nu.Role = broker.RoleUser
	}
	if nu.Group == "" && nu.Role != broker.RoleAdmin {
		nu.Group = u.Group
	}
	if nu.Group == "" && nu.Role != broker.RoleAdmin {
		return nil, lease.Errorf(lease.EINVALID, "group", "a %s needs a group", nu.Role)
	}
	if !managesUser(u, nu) {
		return nil, lease.Errorf(lease.EFORBIDDEN, "role", "a manager adds users of role user to group %s only", u.Group)
	}
	var old broker.User
	var exists bool
	if err := a.read(ctx, false, func(st *broker.State) error {
		old, exists = st.User(nu.Name)
		return nil
	}); err != nil {
		return nil, err
	}
	if exists && !managesUser(u, old) {
		if !seesUser(u, old) {
			return nil, lease.Errorf(lease.ECONFLICT, "name", "the name %q is taken", nu.Name)
		}
		return nil, lease.Errorf(lease.EFORBIDDEN, "name", "%s may not change %s, a %s of %s", u.Name, old.Name, old.Role, old.Group)
	}
	if exists && old.Name == u.Name && nu.Role != u.Role {
		return nil, lease.Errorf(lease.ECONFLICT, "role", "you cannot change your own role; ask another admin")
	}
	if _, err := a.propose(ctx, broker.CmdPutUser, u.Name, nu); err != nil {
		return nil, err
	}
	a.audit(ctx, "user.put", nu.Name, "group", string(nu.Group), "role", string(nu.Role))
	if err := a.read(ctx, false, func(st *broker.State) error {
		if got, ok := st.User(nu.Name); ok {
			nu = got
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return &userOutput{Body: &nu}, nil
}

func (a *API) deleteUser(ctx context.Context, in *userNameInput) (*struct{}, error) {
	u := caller(ctx)
	var v broker.User
	var ok bool
	if err := a.read(ctx, false, func(st *broker.State) error {
		v, ok = st.User(in.Name)
		return nil
	}); err != nil {
		return nil, err
	}
	switch {
	case !ok || !seesUser(u, v):
		return nil, lease.Errorf(lease.ENOTFOUND, "name", "no user %q", in.Name)
	case v.Name == u.Name:
		return nil, lease.Errorf(lease.ECONFLICT, "name", "you cannot delete yourself; ask another admin")
	case !managesUser(u, v):
		return nil, lease.Errorf(lease.EFORBIDDEN, "name", "%s may not delete %s, a %s", u.Name, v.Name, v.Role)
	}
	if _, err := a.propose(ctx, broker.CmdDeleteUser, u.Name, broker.Name{Name: v.Name}); err != nil {
		return nil, err
	}
	a.audit(ctx, "user.delete", v.Name)
	return nil, nil
}

func (a *API) createToken(ctx context.Context, in *tokenInput) (*newTokenOutput, error) {
	u := caller(ctx)
	owner := in.Body.User
	if owner == "" {
		owner = u.Name
	}
	if owner != u.Name && u.Role != broker.RoleAdmin {
		return nil, lease.Errorf(lease.EFORBIDDEN, "user", "only admins make tokens for others")
	}
	now := time.Now().UTC()
	id, tok, err := a.issueToken(ctx, u.Name, owner, in.Body.Name)
	if err != nil {
		return nil, err
	}
	a.audit(ctx, "token.create", id, "user", owner)
	info := TokenInfo{ID: id, User: owner, Name: in.Body.Name, Created: now}
	if err := a.read(ctx, false, func(st *broker.State) error {
		if t, ok := st.Token(id); ok {
			info.Created = t.Created
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return &newTokenOutput{Body: &NewTokenInfo{TokenInfo: info, Token: tok}}, nil
}

func (a *API) listTokens(ctx context.Context, in *listTokensInput) (*tokensOutput, error) {
	u := caller(ctx)
	if in.User != "" && in.User != u.Name && u.Role != broker.RoleAdmin {
		return nil, lease.Errorf(lease.EFORBIDDEN, "user", "only admins list others' tokens")
	}
	out := []TokenInfo{}
	err := a.read(ctx, in.Consistent, func(st *broker.State) error {
		for _, t := range st.Tokens() {
			if (u.Role == broker.RoleAdmin || t.User == u.Name) && (in.User == "" || t.User == in.User) {
				out = append(out, TokenInfo{ID: t.ID, User: t.User, Name: t.Name, Created: t.Created})
			}
		}
		return nil
	})
	return &tokensOutput{Body: out}, err
}

func (a *API) revokeToken(ctx context.Context, in *tokenIDInput) (*struct{}, error) {
	u := caller(ctx)
	var t broker.Token
	var ok bool
	if err := a.read(ctx, false, func(st *broker.State) error {
		t, ok = st.Token(in.ID)
		return nil
	}); err != nil {
		return nil, err
	}
	if !ok || (t.User != u.Name && u.Role != broker.RoleAdmin) {
		return nil, lease.Errorf(lease.ENOTFOUND, "id", "no token %q", in.ID)
	}
	if _, err := a.propose(ctx, broker.CmdRevokeToken, u.Name, broker.Name{Name: t.ID}); err != nil {
		return nil, err
	}
	a.audit(ctx, "token.revoke", t.ID, "user", t.User)
	return nil, nil
}
