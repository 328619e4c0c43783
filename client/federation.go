package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/fairlease/fairlease/broker/api"
)

// CreateAccessKey makes an EC2 access key; the answer's secret is the only
// copy.
func (c *Client) CreateAccessKey(ctx context.Context, user string) (*api.NewAccessKey, error) {
	return call[api.NewAccessKey](ctx, c, http.MethodPost, "/v1/access-keys", nil, api.AccessKeyRequest{User: user})
}

// AccessKeys lists the caller's EC2 access keys (an admin's: everyone's,
// or user's).
func (c *Client) AccessKeys(ctx context.Context, user string) ([]api.AccessKeyInfo, error) {
	q := url.Values{}
	if user != "" {
		q.Set("user", user)
	}
	return list[api.AccessKeyInfo](ctx, c, "/v1/access-keys", q)
}

// RevokeAccessKey revokes access key id.
func (c *Client) RevokeAccessKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/access-keys/"+url.PathEscape(id), nil, nil, nil)
}

// Sites lists the sites leases may overflow to.
func (c *Client) Sites(ctx context.Context) ([]api.SiteInfo, error) {
	return list[api.SiteInfo](ctx, c, "/v1/sites", nil)
}

// PutSite adds or changes a site.
func (c *Client) PutSite(ctx context.Context, s api.SiteRequest) (*api.SiteInfo, error) {
	return call[api.SiteInfo](ctx, c, http.MethodPost, "/v1/sites", nil, s)
}

// RemoveSite removes a site no lease runs on.
func (c *Client) RemoveSite(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/sites/"+url.PathEscape(name), nil, nil, nil)
}
