// Package client is the Go client of the broker's REST API: one method per
// endpoint, typed results, and errors as *lease.Error with the code the
// API sent, so that callers switch on lease.ErrorCode(err).
package client

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/lease"
)

// Client talks to one broker node.
type Client struct {
	base  *url.URL
	token string
	// HTTP sends the requests; it must not follow redirects itself (New's
	// does not), since the client re-sends the token only to a leader it
	// was sent to.
	HTTP *http.Client
	// Consistent makes reads linearizable: they go through the leader.
	Consistent bool
	// Retries is how often a request that met a 503 (an election) is
	// tried again, waiting as Retry-After says; only requests that are
	// safe to repeat are. Default 3.
	Retries int
	// Verify makes the client accept only answers signed for its token
	// (api.SignatureHeader): what host agents use, so that nothing but
	// their broker can tell them what to run.
	Verify bool
}

// New returns a client of the broker at addr ("host:port", or a URL with
// http or https) that authenticates with token.
func New(addr, token string) (*Client, error) {
	if addr == "" {
		return nil, errors.New("client: no broker address")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("client: broker address %q: want host:port or http(s)://host:port", addr)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return &Client{
		base: u, token: token, Retries: 3,
		HTTP: &http.Client{
			Timeout:       60 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Addr is the broker's base URL.
func (c *Client) Addr() string { return c.base.String() }

// do sends one request and decodes the answer into out (nil: none).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	if c.Consistent && method == http.MethodGet {
		if q == nil {
			q = url.Values{}
		}
		q.Set("consistent", "true")
	}
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("client: encode request: %w", err)
		}
	}
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	target := u.String()
	// GETs and DELETEs are safe to repeat; a POST or PUT whose fate is
	// unknown is not.
	retries := 0
	if method == http.MethodGet || method == http.MethodDelete {
		retries = c.Retries
	}
	redirected := false
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		nonce := ""
		if c.Verify {
			nonce = rand.Text()
			req.Header.Set(api.NonceHeader, nonce)
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			return fmt.Errorf("client: %s %s: %w", method, path, err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("client: %s %s: read answer: %w", method, path, err)
		}
		if c.Verify {
			if err := c.checkSignature(nonce, resp, b); err != nil {
				return fmt.Errorf("client: %s %s: %w", method, path, err)
			}
		}
		switch {
		case resp.StatusCode == http.StatusTemporaryRedirect && !redirected:
			// A strong read on a follower: ask the leader, once.
			if loc, err := resp.Location(); err == nil && (loc.Scheme == "http" || loc.Scheme == "https") {
				target, redirected = loc.String(), true
				continue
			}
		case resp.StatusCode == http.StatusServiceUnavailable && attempt < retries:
			if err := sleep(ctx, retryAfter(resp.Header.Get("Retry-After"), attempt)); err != nil {
				return err
			}
			continue
		}
		if resp.StatusCode >= 300 {
			return decodeError(resp.StatusCode, b)
		}
		if out == nil || resp.StatusCode == http.StatusNoContent {
			return nil
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("client: %s %s: decode answer: %w", method, path, err)
		}
		return nil
	}
}

// ErrUnsigned is the error of an answer that does not prove it came from
// the broker.
var ErrUnsigned = errors.New("the answer is not signed by the broker for this token: a wrong broker address, or something in between")

func (c *Client) checkSignature(nonce string, resp *http.Response, body []byte) error {
	_, secret, ok := api.ParseToken(c.token)
	if !ok {
		return fmt.Errorf("%w (the client's token is malformed)", ErrUnsigned)
	}
	want := api.AnswerSignature(secret, nonce, resp.StatusCode, body)
	if !hmac.Equal([]byte(want), []byte(resp.Header.Get(api.SignatureHeader))) {
		return ErrUnsigned
	}
	return nil
}

// call sends a request whose answer is one T.
func call[T any](ctx context.Context, c *Client, method, path string, q url.Values, in any) (*T, error) {
	var v T
	if err := c.do(ctx, method, path, q, in, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// list sends a GET whose answer is a list of T.
func list[T any](ctx context.Context, c *Client, path string, q url.Values) ([]T, error) {
	var v []T
	if err := c.do(ctx, http.MethodGet, path, q, nil, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// retryAfter reads Retry-After (seconds), bounded, backing off when the
// server gives none.
func retryAfter(h string, attempt int) time.Duration {
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, 10*time.Second)
	}
	return time.Duration(250<<attempt) * time.Millisecond
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// decodeError builds the *lease.Error of an error answer; a body that is
// not ours (a proxy's page) still gives a code from the status.
func decodeError(status int, b []byte) error {
	var e lease.Error
	if err := json.Unmarshal(b, &e); err == nil && e.Code != "" {
		return &e
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	code := lease.EINTERNAL
	switch {
	case status == http.StatusUnauthorized:
		code = lease.EUNAUTHORIZED
	case status == http.StatusForbidden:
		code = lease.EFORBIDDEN
	case status == http.StatusNotFound:
		code = lease.ENOTFOUND
	case status == http.StatusConflict:
		code = lease.ECONFLICT
	case status == http.StatusServiceUnavailable:
		code = api.EUNAVAILABLE
	case status >= 400 && status < 500:
		code = lease.EINVALID
	}
	return &lease.Error{Code: code, Message: fmt.Sprintf("HTTP %d: %s", status, msg)}
}

// Leases.

// LeaseFilter selects leases to list; empty fields select all.
type LeaseFilter struct {
	State lease.State
	Group lease.GroupID
	User  string
}

// CreateLease asks for a lease; every decision, a rejection too, comes back
// as the lease.
func (c *Client) CreateLease(ctx context.Context, r api.LeaseRequest) (*broker.Lease, error) {
	return call[broker.Lease](ctx, c, http.MethodPost, "/v1/leases", nil, r)
}

// WhatIf says what r would get now, changing nothing.
func (c *Client) WhatIf(ctx context.Context, r api.LeaseRequest) (*api.WhatIf, error) {
	return call[api.WhatIf](ctx, c, http.MethodPost, "/v1/leases/whatif", nil, r)
}

// Leases lists the leases the caller sees, in submission order.
func (c *Client) Leases(ctx context.Context, f LeaseFilter) ([]broker.Lease, error) {
	q := url.Values{}
	if f.State != "" {
		q.Set("state", string(f.State))
	}
	if f.Group != "" {
		q.Set("group", string(f.Group))
	}
	if f.User != "" {
		q.Set("user", f.User)
	}
	return list[broker.Lease](ctx, c, "/v1/leases", q)
}

// Lease returns lease id.
func (c *Client) Lease(ctx context.Context, id lease.ID) (*broker.Lease, error) {
	return call[broker.Lease](ctx, c, http.MethodGet, "/v1/leases/"+url.PathEscape(string(id)), nil, nil)
}

// TerminateLease ends a running lease or cancels a waiting one.
func (c *Client) TerminateLease(ctx context.Context, id lease.ID) (*broker.Lease, error) {
	return call[broker.Lease](ctx, c, http.MethodDelete, "/v1/leases/"+url.PathEscape(string(id)), nil, nil)
}

// Shares and policy.

// Shares returns the sshare-like report.
func (c *Client) Shares(ctx context.Context) ([]api.ShareRow, error) {
	return list[api.ShareRow](ctx, c, "/v1/shares", nil)
}

// SetShare adds or changes a group.
func (c *Client) SetShare(ctx context.Context, group lease.GroupID, u api.ShareUpdate) (*api.ShareRow, error) {
	return call[api.ShareRow](ctx, c, http.MethodPut, "/v1/shares/"+url.PathEscape(string(group)), nil, u)
}

// Policy returns the site policy as TOML.
func (c *Client) Policy(ctx context.Context) (*api.PolicyDoc, error) {
	return call[api.PolicyDoc](ctx, c, http.MethodGet, "/v1/policy", nil, nil)
}

// SetPolicy replaces the site policy with the TOML text.
func (c *Client) SetPolicy(ctx context.Context, text string) (*api.PolicyDoc, error) {
	return call[api.PolicyDoc](ctx, c, http.MethodPut, "/v1/policy", nil, api.PolicyUpdate{Text: text})
}

// Users and tokens.

// Users lists the users the caller sees.
func (c *Client) Users(ctx context.Context) ([]broker.User, error) {
	return list[broker.User](ctx, c, "/v1/users", nil)
}

// PutUser adds a user or changes one.
func (c *Client) PutUser(ctx context.Context, u api.UserRequest) (*broker.User, error) {
	return call[broker.User](ctx, c, http.MethodPost, "/v1/users", nil, u)
}

// DeleteUser removes a user and their tokens.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/users/"+url.PathEscape(name), nil, nil, nil)
}

// CreateToken makes a token; the answer's Token is the only copy of the
// secret.
func (c *Client) CreateToken(ctx context.Context, r api.TokenRequest) (*api.NewTokenInfo, error) {
	return call[api.NewTokenInfo](ctx, c, http.MethodPost, "/v1/tokens", nil, r)
}

// Tokens lists the caller's tokens (an admin's: everyone's, or user's).
func (c *Client) Tokens(ctx context.Context, user string) ([]api.TokenInfo, error) {
	q := url.Values{}
	if user != "" {
		q.Set("user", user)
	}
	return list[api.TokenInfo](ctx, c, "/v1/tokens", q)
}

// RevokeToken revokes token id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil, nil)
}

// Hosts.

// Hosts lists the local site's hosts.
func (c *Client) Hosts(ctx context.Context) ([]broker.Host, error) {
	return list[broker.Host](ctx, c, "/v1/hosts", nil)
}

// AddHost adds a host.
func (c *Client) AddHost(ctx context.Context, h api.HostRequest) (*broker.Host, error) {
	return call[broker.Host](ctx, c, http.MethodPost, "/v1/hosts", nil, h)
}

// RemoveHost takes an idle host out.
func (c *Client) RemoveHost(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/hosts/"+url.PathEscape(name), nil, nil, nil)
}

// Cluster.

// Cluster describes the broker cluster.
func (c *Client) Cluster(ctx context.Context) (*broker.ClusterStatus, error) {
	return call[broker.ClusterStatus](ctx, c, http.MethodGet, "/v1/cluster", nil, nil)
}

// Join adds a broker node.
func (c *Client) Join(ctx context.Context, m api.MemberRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/cluster/members", nil, m, nil)
}

// RemoveMember takes a broker node out.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/cluster/members/"+url.PathEscape(id), nil, nil, nil)
}

// Health checks that the node answers.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil)
}
