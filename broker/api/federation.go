package api

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// EC2 access keys (for the EC2 API and partner sites) and the sites leases
// overflow to.

// AccessKeyRequest makes an EC2 access key.
type AccessKeyRequest struct {
	User string `json:"user,omitempty" maxLength:"64" doc:"Whose key; default: the caller's own (admins may name anyone)"`
}

// AccessKeyInfo describes an access key; the secret is never shown again.
type AccessKeyInfo struct {
	AccessKeyID string    `json:"access_key_id"`
	User        string    `json:"user"`
	Created     time.Time `json:"created,omitzero"`
}

// NewAccessKey is an access key just made, with its secret: the only time
// it is shown.
type NewAccessKey struct {
	AccessKeyInfo
	SecretAccessKey string `json:"secret_access_key" doc:"Signs EC2 API requests (AWS_SECRET_ACCESS_KEY). Shown once."`
}

type accessKeyInput struct {
	Body AccessKeyRequest
}

type newAccessKeyOutput struct {
	Body *NewAccessKey
}

type accessKeysOutput struct {
	Body []AccessKeyInfo
}

type accessKeyIDInput struct {
	ID string `path:"id" maxLength:"128" doc:"Access key id (AKIA…)"`
}

// SiteRequest adds or changes a site.
type SiteRequest struct {
	Name            string   `json:"name" pattern:"^[a-z0-9][a-z0-9._-]{0,62}$" doc:"The site's name, as group overflow rules name it"`
	Endpoint        string   `json:"endpoint,omitempty" maxLength:"512" doc:"EC2 API endpoint (http or https URL); empty for Amazon EC2"`
	Region          string   `json:"region" minLength:"1" maxLength:"64" doc:"Region to sign requests for"`
	AccessKeyID     string   `json:"access_key_id" minLength:"1" maxLength:"128" doc:"This broker's access key at the site"`
	SecretAccessKey string   `json:"secret_access_key" minLength:"1" maxLength:"128" doc:"Its secret"`
	CostPerCoreHour float64  `json:"cost_per_core_hour,omitempty" minimum:"0" doc:"What a core-hour costs there; sites are tried cheapest first"`
	Zones           []string `json:"zones,omitempty" maxItems:"32" doc:"Availability zones to try, in order; empty: the site chooses"`
	Image           string   `json:"image,omitempty" maxLength:"128" doc:"Image id to launch at the site when the lease's image is not known there"`
}

// SiteInfo is a site as the API shows it: without its secret.
type SiteInfo struct {
	Name            string    `json:"name"`
	Kind            string    `json:"kind"`
	Endpoint        string    `json:"endpoint,omitempty"`
	Region          string    `json:"region"`
	AccessKeyID     string    `json:"access_key_id"`
	CostPerCoreHour float64   `json:"cost_per_core_hour"`
	Zones           []string  `json:"zones,omitempty"`
	Image           string    `json:"image,omitempty"`
	Created         time.Time `json:"created,omitzero"`
	// Running counts the leases that run there now.
	Running int `json:"running"`
}

type siteInput struct {
	Body SiteRequest
}

type siteOutput struct {
	Body *SiteInfo
}

type sitesOutput struct {
	Body []SiteInfo
}

type siteNameInput struct {
	Name string `path:"name" maxLength:"64" doc:"Site name"`
}

func (a *API) federationRoutes() {
	keys := []string{"access keys"}
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "create-access-key", Method: http.MethodPost, Path: "/v1/access-keys", Tags: keys,
		Summary: "Make an EC2 access key (for yourself; admins: for anyone); the answer holds the secret, once", DefaultStatus: http.StatusCreated,
	}, a.createAccessKey)
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "list-access-keys", Method: http.MethodGet, Path: "/v1/access-keys", Tags: keys,
		Summary: "List EC2 access keys (yours; admins: all)",
	}, a.listAccessKeys)
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "revoke-access-key", Method: http.MethodDelete, Path: "/v1/access-keys/{id}", Tags: keys,
		Summary: "Revoke an EC2 access key (yours; admins: any)", DefaultStatus: http.StatusNoContent,
	}, a.revokeAccessKey)
	sites := []string{"sites"}
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "list-sites", Method: http.MethodGet, Path: "/v1/sites", Tags: sites,
		Summary: "List the sites leases may overflow to",
	}, a.listSites)
	register(a, broker.RoleAdmin, huma.Operation{
		OperationID: "put-site", Method: http.MethodPost, Path: "/v1/sites", Tags: sites,
		Summary: "Add or change a site (admins)", DefaultStatus: http.StatusCreated,
	}, a.putSite)
	register(a, broker.RoleAdmin, huma.Operation{
		OperationID: "remove-site", Method: http.MethodDelete, Path: "/v1/sites/{name}", Tags: sites,
		Summary: "Remove a site no lease runs on (admins)", DefaultStatus: http.StatusNoContent,
	}, a.removeSite)
}

// akid is the alphabet of access key ids: upper-case base32, as AWS's.
var akid = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewAccessKeyPair makes an access key id (AKIA and 16 characters) and a
// 40-character secret, both random.
func NewAccessKeyPair() (id, secret string) {
	b := make([]byte, 10)
	rand.Read(b)
	s := make([]byte, 30)
	rand.Read(s)
	return "AKIA" + akid.EncodeToString(b)[:16], base64.RawStdEncoding.EncodeToString(s)[:40]
}

func (a *API) createAccessKey(ctx context.Context, in *accessKeyInput) (*newAccessKeyOutput, error) {
	u := caller(ctx)
	owner := in.Body.User
	if owner == "" {
		owner = u.Name
	}
	if owner != u.Name && u.Role != broker.RoleAdmin {
		return nil, lease.Errorf(lease.EFORBIDDEN, "user", "only admins make access keys for others")
	}
	id, secret := NewAccessKeyPair()
	if _, err := a.propose(ctx, broker.CmdPutAccessKey, u.Name, broker.AccessKey{ID: id, User: owner, Secret: secret}); err != nil {
		return nil, err
	}
	a.audit(ctx, "access-key.create", id, "user", owner)
	out := &NewAccessKey{AccessKeyInfo: AccessKeyInfo{AccessKeyID: id, User: owner}, SecretAccessKey: secret}
	err := a.read(ctx, false, func(st *broker.State) error {
		if k, ok := st.AccessKey(id); ok {
			out.Created = k.Created
		}
		return nil
	})
	return &newAccessKeyOutput{Body: out}, err
}

func (a *API) listAccessKeys(ctx context.Context, in *listTokensInput) (*accessKeysOutput, error) {
	u := caller(ctx)
	if in.User != "" && in.User != u.Name && u.Role != broker.RoleAdmin {
		return nil, lease.Errorf(lease.EFORBIDDEN, "user", "only admins list others' access keys")
	}
	who := in.User
	if u.Role != broker.RoleAdmin {
		who = u.Name
	}
	out := []AccessKeyInfo{}
	err := a.read(ctx, in.Consistent, func(st *broker.State) error {
		for _, k := range st.AccessKeys(who) {
			out = append(out, AccessKeyInfo{AccessKeyID: k.ID, User: k.User, Created: k.Created})
		}
		return nil
	})
	return &accessKeysOutput{Body: out}, err
}

func (a *API) revokeAccessKey(ctx context.Context, in *accessKeyIDInput) (*struct{}, error) {
	u := caller(ctx)
	var k broker.AccessKey
	var ok bool
	if err := a.read(ctx, false, func(st *broker.State) error {
		k, ok = st.AccessKey(in.ID)
		return nil
	}); err != nil {
		return nil, err
	}
	if !ok || (k.User != u.Name && u.Role != broker.RoleAdmin) {
		return nil, lease.Errorf(lease.ENOTFOUND, "id", "no access key %q", in.ID)
	}
	if _, err := a.propose(ctx, broker.CmdRevokeAccessKey, u.Name, broker.Name{Name: k.ID}); err != nil {
		return nil, err
	}
	a.audit(ctx, "access-key.revoke", k.ID, "user", k.User)
	return nil, nil
}

func siteInfo(x broker.Site, running int) SiteInfo {
	return SiteInfo{Name: x.Name, Kind: x.Kind, Endpoint: x.Endpoint, Region: x.Region, AccessKeyID: x.AccessKeyID,
		CostPerCoreHour: x.CostPerCoreHour, Zones: x.Zones, Image: x.Image, Created: x.Created, Running: running}
}

func (a *API) listSites(ctx context.Context, in *readOnlyInput) (*sitesOutput, error) {
	out := []SiteInfo{}
	err := a.read(ctx, in.Consistent, func(st *broker.State) error {
		running := map[string]int{}
		for _, l := range st.Remote() {
			if l.State == lease.StateOverflowed {
				running[l.Remote.Site]++
			}
		}
		for _, x := range st.Sites() {
			out = append(out, siteInfo(x, running[x.Name]))
		}
		return nil
	})
	return &sitesOutput{Body: out}, err
}

func (a *API) putSite(ctx context.Context, in *siteInput) (*siteOutput, error) {
	u := caller(ctx)
	b := in.Body
	x := broker.Site{Name: b.Name, Kind: broker.SiteKind, Endpoint: strings.TrimRight(b.Endpoint, "/"), Region: b.Region,
		AccessKeyID: b.AccessKeyID, Secret: b.SecretAccessKey, CostPerCoreHour: b.CostPerCoreHour, Zones: b.Zones, Image: b.Image}
	if _, err := a.propose(ctx, broker.CmdPutSite, u.Name, x); err != nil {
		return nil, err
	}
	a.audit(ctx, "site.put", x.Name, "endpoint", x.Endpoint)
	var out SiteInfo
	err := a.read(ctx, false, func(st *broker.State) error {
		if got, ok := st.Site(x.Name); ok {
			out = siteInfo(got, 0)
		}
		return nil
	})
	return &siteOutput{Body: &out}, err
}

func (a *API) removeSite(ctx context.Context, in *siteNameInput) (*struct{}, error) {
	u := caller(ctx)
	if _, err := a.propose(ctx, broker.CmdRemoveSite, u.Name, broker.Name{Name: in.Name}); err != nil {
		return nil, err
	}
	a.audit(ctx, "site.remove", in.Name)
	return nil, nil
}

// NewClusterContext makes a cluster's SSH key pair with the user's keys,
// for leases made through another API (EC2's).
func NewClusterContext(userKeys []string) (*broker.ClusterContext, error) {
	if err := checkUserKeys(userKeys); err != nil {
		return nil, err
	}
	return clusterContext(userKeys)
}
