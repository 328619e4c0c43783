package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// Tokens are "flt_<id>_<secret>": the id finds the token without a scan,
// and only SHA-256 of the secret is stored.
const tokenPrefix = "flt_"

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// randomString returns n random bytes from crypto/rand in lower-case
// base32: safe in URLs, host names and the token format.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand: it crashes the program instead)
	return b32.EncodeToString(b)
}

// NewToken makes a fresh token: its id, its secret, and the string a
// client sends. Hash(secret) is what the state keeps.
func NewToken() (id, secret, token string) {
	id, secret = randomString(8), randomString(32)
	return id, secret, FormatToken(id, secret)
}

// issueToken commits a new token of user, named name, on actor's behalf;
// only its hash is kept, and the token itself is returned, once.
func (a *API) issueToken(ctx context.Context, actor, user, name string) (id, token string, err error) {
	id, secret, token := NewToken()
	if _, err := a.propose(ctx, broker.CmdPutToken, actor, broker.Token{ID: id, User: user, Hash: Hash(secret), Name: name}); err != nil {
		return "", "", err
	}
	return id, token, nil
}

// FormatToken writes the string a client sends.
func FormatToken(id, secret string) string { return tokenPrefix + id + "_" + secret }

// ParseToken splits a token string into its id and secret.
func ParseToken(s string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	return id, secret, ok && id != "" && secret != ""
}

// Hash is what the state stores of a secret.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// newLeaseID names a lease the client did not name. Random, not derived
// from the state: ids are made outside Apply, before the log.
func newLeaseID() lease.ID { return lease.ID("l-" + randomString(6)) }

// rank orders roles: each may do what the ones below may.
func rank(r broker.Role) int {
	switch r {
	case broker.RoleUser:
		return 1
	case broker.RoleManager:
		return 2
	case broker.RoleAdmin:
		return 3
	}
	return 0
}

type callerKey struct{}

// caller is the authenticated user of a request; handlers run only after
// authenticate put one there.
func caller(ctx context.Context) broker.User {
	u, _ := ctx.Value(callerKey{}).(broker.User)
	return u
}

// Operation metadata: the least role an operation needs; absent means
// public.
const metaRole = "fairlease.role"

// authenticate checks the bearer token and the operation's least role
// before huma reads the body: a caller without the right gets 401 or 403,
// never a validation error that tells them about the input.
func (a *API) authenticate(ctx huma.Context, next func(huma.Context)) {
	need, _ := ctx.Operation().Metadata[metaRole].(broker.Role)
	if need == "" {
		next(ctx)
		return
	}
	u, err := a.userFor(ctx.Context(), ctx.Header("Authorization"))
	if err != nil {
		a.writeErr(ctx, err)
		return
	}
	requestInfo(ctx.Context()).user = u.Name
	if rank(u.Role) < rank(need) {
		a.writeErr(ctx, lease.Errorf(lease.EFORBIDDEN, "", "this needs the %s role; %s is a %s", need, u.Name, u.Role))
		return
	}
	next(huma.WithValue(ctx, callerKey{}, u))
}

// userFor finds the user a bearer token belongs to.
func (a *API) userFor(ctx context.Context, header string) (broker.User, error) {
	scheme, tok, _ := strings.Cut(strings.TrimSpace(header), " ")
	if header == "" {
		return broker.User{}, lease.Errorf(lease.EUNAUTHORIZED, "", "no token: send Authorization: Bearer flt_…")
	}
	id, secret, ok := ParseToken(strings.TrimSpace(tok))
	if !strings.EqualFold(scheme, "Bearer") || !ok {
		return broker.User{}, lease.Errorf(lease.EUNAUTHORIZED, "", "malformed token: send Authorization: Bearer flt_<id>_<secret>")
	}
	var t broker.Token
	var u broker.User
	var found bool
	err := a.read(ctx, false, func(st *broker.State) error {
		if t, found = st.Token(id); found {
			u, found = st.User(t.User)
		}
		return nil
	})
	if err != nil {
		return broker.User{}, err
	}
	if !found || subtle.ConstantTimeCompare(Hash(secret), t.Hash) != 1 {
		return broker.User{}, lease.Errorf(lease.EUNAUTHORIZED, "", "invalid or revoked token")
	}
	return u, nil
}

// writeErr answers from a middleware, outside a handler.
func (a *API) writeErr(ctx huma.Context, err error) {
	e := a.toError(ctx.Context(), err)
	for k, vs := range e.headers {
		for _, v := range vs {
			ctx.AppendHeader(k, v)
		}
	}
	if e.status == http.StatusUnauthorized {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="fairlease"`)
	}
	huma.WriteErr(a.huma, ctx, e.status, e.Message, e)
}

// Visibility and permission on a group's resources. What a caller may not
// see answers 404, as if it did not exist; what they may see but not
// change answers 403.

// seesGroup reports whether u may see group g's leases.
func seesGroup(u broker.User, g lease.GroupID) bool {
	return u.Role == broker.RoleAdmin || u.Group == g
}

// mayEnd reports whether u may terminate l (which u sees).
func mayEnd(u broker.User, l *broker.Lease) bool {
	switch u.Role {
	case broker.RoleAdmin:
		return true
	case broker.RoleManager:
		return l.Group == u.Group
	}
	return l.Group == u.Group && l.User == u.Name
}

// seesUser reports whether u may see user v.
func seesUser(u, v broker.User) bool {
	switch u.Role {
	case broker.RoleAdmin:
		return true
	case broker.RoleManager:
		return v.Group == u.Group || v.Name == u.Name
	}
	return v.Name == u.Name
}

// managesUser reports whether u may create, change or delete v.
func managesUser(u, v broker.User) bool {
	switch u.Role {
	case broker.RoleAdmin:
		return true
	case broker.RoleManager:
		return v.Role == broker.RoleUser && v.Group == u.Group
	}
	return false
}
