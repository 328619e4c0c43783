package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/lease"
)

// Host agents and images.

// JoinToken makes a token host agents enrol with (admin).
func (c *Client) JoinToken(ctx context.Context) (*api.Credential, error) {
	return call[api.Credential](ctx, c, http.MethodPost, "/v1/hosts/join-token", nil, nil)
}

// AgentRegister exchanges the client's join token for the host's
// credential.
func (c *Client) AgentRegister(ctx context.Context, r api.AgentRegistration) (*api.Credential, error) {
	return call[api.Credential](ctx, c, http.MethodPost, "/v1/agent/register", nil, r)
}

// AgentHeartbeat says the host is alive.
func (c *Client) AgentHeartbeat(ctx context.Context, r api.AgentRegistration) error {
	return c.do(ctx, http.MethodPost, "/v1/agent/heartbeat", nil, r, nil)
}

// AgentAssignments answers what the host must run once the broker's
// applied index passes since, or after wait.
func (c *Client) AgentAssignments(ctx context.Context, since uint64, wait time.Duration) (*api.AssignmentList, error) {
	q := url.Values{"since": {strconv.FormatUint(since, 10)}, "wait": {wait.String()}}
	return call[api.AssignmentList](ctx, c, http.MethodGet, "/v1/agent/assignments", q, nil)
}

// ReportVM reports one VM's state; it returns once the broker committed it.
func (c *Client) ReportVM(ctx context.Context, s broker.VMStateChange) error {
	return c.do(ctx, http.MethodPost, "/v1/agent/vms", nil, s, nil)
}

// Images lists the images the caller may lease.
func (c *Client) Images(ctx context.Context) ([]broker.Image, error) {
	return list[broker.Image](ctx, c, "/v1/images", nil)
}

// Image shows one image.
func (c *Client) Image(ctx context.Context, name string) (*broker.Image, error) {
	return call[broker.Image](ctx, c, http.MethodGet, "/v1/images/"+url.PathEscape(name), nil, nil)
}

// DeleteImage removes an image no live lease uses.
func (c *Client) DeleteImage(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/images/"+url.PathEscape(name), nil, nil, nil)
}

// PushImage uploads size bytes from r as image name.
func (c *Client) PushImage(ctx context.Context, name, format string, public bool, r io.Reader, size int64) (*broker.Image, error) {
	q := url.Values{"name": {name}}
	if format != "" {
		q.Set("format", format)
	}
	if public {
		q.Set("public", "true")
	}
	u := *c.base
	u.Path += "/v1/images"
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), r)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+c.token)
	// Uploads take as long as they take: no overall timeout.
	hc := *c.HTTP
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: push image %s: %w", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("client: push image %s: %w", name, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, decodeError(resp.StatusCode, b)
	}
	var im broker.Image
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, fmt.Errorf("client: push image %s: decode answer: %w", name, err)
	}
	return &im, nil
}

// OpenImage streams an image's bytes; the caller checks them against the
// digest.
func (c *Client) OpenImage(ctx context.Context, digest string) (io.ReadCloser, error) {
	return c.stream(ctx, "/v1/images/"+url.PathEscape(digest)+"/blob", nil)
}

// VMLog streams a VM's console log (the last tail bytes when tail > 0).
func (c *Client) VMLog(ctx context.Context, id lease.ID, index int, tail int64) (io.ReadCloser, error) {
	var q url.Values
	if tail > 0 {
		q = url.Values{"tail": {strconv.FormatInt(tail, 10)}}
	}
	return c.stream(ctx, fmt.Sprintf("/v1/leases/%s/vms/%d/log", url.PathEscape(string(id)), index), q)
}

// stream GETs a body the caller reads to its end and closes.
func (c *Client) stream(ctx context.Context, path string, q url.Values) (io.ReadCloser, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	hc := *c.HTTP
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, decodeError(resp.StatusCode, b)
	}
	return resp.Body, nil
}

// ShareImage sets the groups an image is shared with, and whether it is
// public.
func (c *Client) ShareImage(ctx context.Context, name string, r api.ShareRequest) (*broker.Image, error) {
	return call[broker.Image](ctx, c, http.MethodPut, "/v1/images/"+url.PathEscape(name)+"/share", nil, r)
}

// ImageTorrent returns the caller's .torrent of image name.
func (c *Client) ImageTorrent(ctx context.Context, name string) ([]byte, error) {
	rc, err := c.stream(ctx, "/v1/images/"+url.PathEscape(name)+"/torrent", nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 16<<20))
}
