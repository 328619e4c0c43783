package api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/swarm"
)

// Images: a user pushes an image's bytes to a broker node, which stores
// them under Config.ImageDir by SHA-256 and commits the image's record;
// host agents fetch the bytes by digest and check them. An image belongs to
// its pusher's group and is leasable by that group only, unless an admin
// made it public.

// DefaultMaxImageSize bounds one upload when Config.MaxImageSize is 0.
const DefaultMaxImageSize = 64 << 30

var (
	imageNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	digestRE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

type imageNameInput struct {
	Name string `path:"name" maxLength:"128" doc:"Image name"`
}

type imageOutput struct {
	Body broker.Image
}

type imagesOutput struct {
	Body []broker.Image
}

func (a *API) imageRoutes() {
	register(a, broker.RoleAgent, huma.Operation{
		OperationID: "list-images", Method: http.MethodGet, Path: "/v1/images", Tags: []string{"images"},
		Summary: "The images the caller may lease: its group's and the public ones",
	}, func(ctx context.Context, _ *struct{}) (*imagesOutput, error) {
		u := caller(ctx)
		out := []broker.Image{}
		err := a.read(ctx, false, func(st *broker.State) error {
			for _, im := range st.Images() {
				if seesImage(u, im) {
					out = append(out, im)
				}
			}
			return nil
		})
		return &imagesOutput{Body: out}, err
	})
	register(a, broker.RoleAgent, huma.Operation{
		OperationID: "show-image", Method: http.MethodGet, Path: "/v1/images/{name}", Tags: []string{"images"},
		Summary: "One image",
	}, func(ctx context.Context, in *imageNameInput) (*imageOutput, error) {
		im, err := a.image(ctx, caller(ctx), in.Name)
		if err != nil {
			return nil, err
		}
		return &imageOutput{Body: im}, nil
	})
	register(a, broker.RoleUser, huma.Operation{
		OperationID: "delete-image", Method: http.MethodDelete, Path: "/v1/images/{name}", Tags: []string{"images"},
		Summary: "Remove an image no live lease uses (its group, or an admin)", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *imageNameInput) (*struct{}, error) {
		u := caller(ctx)
		im, err := a.image(ctx, u, in.Name)
		if err != nil {
			return nil, err
		}
		if u.Role != broker.RoleAdmin && u.Group != im.Group {
			return nil, lease.Errorf(lease.EFORBIDDEN, "name", "image %q belongs to group %s", im.Name, im.Group)
		}
		if _, err := a.propose(ctx, broker.CmdDelImage, u.Name, broker.Name{Name: in.Name}); err != nil {
			return nil, err
		}
		a.audit(ctx, "image.remove", in.Name, "digest", im.Digest)
		a.dropBlob(ctx, im.Digest)
		return nil, nil
	})

	register(a, broker.RoleUser, huma.Operation{
		OperationID: "share-image", Method: http.MethodPut, Path: "/v1/images/{name}/share", Tags: []string{"images"},
		Summary: "Set the groups an image is shared with (its group, or an admin); public only by an admin",
	}, a.shareImage)

	a.mux.HandleFunc("POST /v1/images", a.uploadImage)
	a.mux.HandleFunc("GET /v1/images/{digest}/blob", a.imageBlob)
	a.mux.HandleFunc("GET /v1/images/{name}/torrent", a.imageTorrent)
	a.mux.HandleFunc("GET /v1/swarm/announce/{token}", a.announce)
	a.mux.HandleFunc("GET /v1/swarm/webseed/{token}/{digest}", a.webSeed)
	a.mux.HandleFunc("GET /v1/leases/{id}/vms/{index}/log", a.vmLog)
	a.documentPlainRoutes()
}

// ShareRequest sets who besides its group may lease an image.
type ShareRequest struct {
	Groups []string `json:"groups" maxItems:"1000" doc:"Groups that may see and lease the image, besides its own"`
	Public bool     `json:"public,omitempty" doc:"Leasable by every group (admin only)"`
}

type shareInput struct {
	Name string `path:"name" maxLength:"128" doc:"Image name"`
	Body ShareRequest
}

func (a *API) shareImage(ctx context.Context, in *shareInput) (*imageOutput, error) {
	u := caller(ctx)
	im, err := a.image(ctx, u, in.Name)
	if err != nil {
		return nil, err
	}
	if u.Role != broker.RoleAdmin && u.Group != im.Group {
		return nil, lease.Errorf(lease.EFORBIDDEN, "name", "image %q belongs to group %s; only it or an admin shares it", im.Name, im.Group)
	}
	if in.Body.Public != im.Public && u.Role != broker.RoleAdmin {
		return nil, lease.Errorf(lease.EFORBIDDEN, "public", "only an admin makes an image public or private again")
	}
	groups := make([]lease.GroupID, 0, len(in.Body.Groups))
	for i, g := range in.Body.Groups {
		if !groupRE.MatchString(g) {
			return nil, lease.Errorf(lease.EINVALID, fmt.Sprintf("groups[%d]", i), "not a group name: %q", g)
		}
		groups = append(groups, lease.GroupID(g))
	}
	if _, err := a.propose(ctx, broker.CmdShareImage, u.Name, broker.ImageShare{Name: im.Name, Groups: groups, Public: in.Body.Public}); err != nil {
		return nil, err
	}
	a.audit(ctx, "image.share", im.Name, "groups", in.Body.Groups, "public", in.Body.Public)
	im, err = a.image(ctx, u, in.Name)
	return &imageOutput{Body: im}, err
}

var groupRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)

// siteKey returns the site's signing key, making it the first time.
func (a *API) siteKey(ctx context.Context) (ed25519.PrivateKey, error) {
	var k ed25519.PrivateKey
	read := func() error {
		return a.read(ctx, false, func(st *broker.State) error {
			k = st.SiteKey()
			return nil
		})
	}
	if err := read(); err != nil || k != nil {
		return k, err
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	// Two nodes may race to make one: the log keeps the first.
	if _, err := a.propose(ctx, broker.CmdSiteKey, "system", broker.SiteKey{Seed: seed}); err != nil {
		return nil, err
	}
	if err := read(); err != nil {
		return nil, err
	}
	if k == nil {
		return nil, errors.New("the site key did not take")
	}
	return k, nil
}

// documentPlainRoutes puts the streaming routes, which huma does not
// serve, into the OpenAPI document.
func (a *API) documentPlainRoutes() {
	bearer := []map[string][]string{{"bearer": {}}}
	errs := map[string]*huma.Response{
		"400": {Description: "Bad input"}, "401": {Description: "No or a bad token"},
		"403": {Description: "Not allowed"}, "404": {Description: "No such thing"},
	}
	str := &huma.Schema{Type: "string"}
	oapi := a.huma.OpenAPI()
	oapi.AddOperation(&huma.Operation{
		OperationID: "push-image", Method: http.MethodPost, Path: "/v1/images", Tags: []string{"images"},
		Summary:  "Push an image: the body is its bytes; answers the image record",
		Security: bearer,
		Parameters: []*huma.Param{
			{Name: "name", In: "query", Required: true, Schema: str, Description: "Image name"},
			{Name: "format", In: "query", Schema: &huma.Schema{Type: "string", Enum: []any{"qcow2", "raw"}}, Description: "qcow2 (default) or raw"},
			{Name: "public", In: "query", Schema: &huma.Schema{Type: "boolean"}, Description: "Leasable by every group (admin only)"},
		},
		RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}}}},
		Responses:   withDefault(errs, "201", "The image record"),
	})
	oapi.AddOperation(&huma.Operation{
		OperationID: "image-blob", Method: http.MethodGet, Path: "/v1/images/{digest}/blob", Tags: []string{"images"},
		Summary:    "An image's bytes by SHA-256 digest (ranges supported)",
		Security:   bearer,
		Parameters: []*huma.Param{{Name: "digest", In: "path", Required: true, Schema: str}},
		Responses:  withDefault(errs, "200", "The image's bytes"),
	})
	oapi.AddOperation(&huma.Operation{
		OperationID: "image-torrent", Method: http.MethodGet, Path: "/v1/images/{name}/torrent", Tags: []string{"images"},
		Summary:    "The caller's .torrent of an image: its announce URL and web seed carry the caller's swarm token",
		Security:   bearer,
		Parameters: []*huma.Param{{Name: "name", In: "path", Required: true, Schema: str}},
		Responses:  withDefault(errs, "200", "application/x-bittorrent"),
	})
	oapi.AddOperation(&huma.Operation{
		OperationID: "swarm-announce", Method: http.MethodGet, Path: "/v1/swarm/announce/{token}", Tags: []string{"images"},
		Summary:    "BitTorrent tracker announce (BEP 3, compact BEP 23); the token comes from a .torrent",
		Parameters: []*huma.Param{{Name: "token", In: "path", Required: true, Schema: str}},
		Responses:  map[string]*huma.Response{"200": {Description: "A bencoded reply (a refusal too, as BEP 3 asks)"}},
	})
	oapi.AddOperation(&huma.Operation{
		OperationID: "swarm-webseed", Method: http.MethodGet, Path: "/v1/swarm/webseed/{token}/{digest}", Tags: []string{"images"},
		Summary:    "BEP 19 web seed of an image, for holders of a swarm token entitled to it",
		Parameters: []*huma.Param{{Name: "token", In: "path", Required: true, Schema: str}, {Name: "digest", In: "path", Required: true, Schema: str}},
		Responses:  map[string]*huma.Response{"200": {Description: "The image's bytes (ranges supported)"}, "404": {Description: "No such image for this token"}},
	})
	oapi.AddOperation(&huma.Operation{
		OperationID: "vm-log", Method: http.MethodGet, Path: "/v1/leases/{id}/vms/{index}/log", Tags: []string{"leases"},
		Summary:  "A VM's serial console log, read from its host's agent",
		Security: bearer,
		Parameters: []*huma.Param{
			{Name: "id", In: "path", Required: true, Schema: str},
			{Name: "index", In: "path", Required: true, Schema: &huma.Schema{Type: "integer"}},
			{Name: "tail", In: "query", Schema: &huma.Schema{Type: "integer"}, Description: "Only the last this many bytes"},
		},
		Responses: withDefault(errs, "200", "The log, text/plain"),
	})
}

func withDefault(errs map[string]*huma.Response, code, desc string) map[string]*huma.Response {
	out := map[string]*huma.Response{code: {Description: desc}}
	for k, v := range errs {
		out[k] = v
	}
	return out
}

// seesImage reports whether u may see and lease im. Agents fetch whatever
// is placed on their host, so they see every image.
func seesImage(u broker.User, im broker.Image) bool {
	return u.Role == broker.RoleAdmin || u.Role == broker.RoleAgent || im.UsableBy(u.Group)
}

// image finds an image u may see; the others answer 404.
func (a *API) image(ctx context.Context, u broker.User, name string) (broker.Image, error) {
	var im broker.Image
	var ok bool
	if err := a.read(ctx, false, func(st *broker.State) error {
		im, ok = st.Image(name)
		return nil
	}); err != nil {
		return broker.Image{}, err
	}
	if !ok || !seesImage(u, im) {
		return broker.Image{}, lease.Errorf(lease.ENOTFOUND, "name", "no image %q (fairlease image list shows yours)", name)
	}
	return im, nil
}

// plainUser authenticates a request served outside huma and writes the
// error answer when it fails.
func (a *API) plainUser(w http.ResponseWriter, r *http.Request) (broker.User, bool) {
	u, err := a.userFor(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		a.writePlainErr(w, r, err)
		return broker.User{}, false
	}
	requestInfo(r.Context()).user = u.Name
	return u, true
}

// writePlainErr answers err in the API's error body.
func (a *API) writePlainErr(w http.ResponseWriter, r *http.Request, err error) {
	e := a.toError(r.Context(), err)
	if e.status >= 500 && e.status != http.StatusServiceUnavailable {
		a.log.ErrorContext(r.Context(), "api: internal error", "path", r.URL.Path, "err", err.Error())
	}
	for k, vs := range e.headers {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fairlease"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(e)
}

func (a *API) uploadImage(w http.ResponseWriter, r *http.Request) {
	u, ok := a.plainUser(w, r)
	if !ok {
		return
	}
	im, err := a.storeImage(r, u)
	if err != nil {
		a.writePlainErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(im)
}

func (a *API) storeImage(r *http.Request, u broker.User) (broker.Image, error) {
	q := r.URL.Query()
	im := broker.Image{Name: q.Get("name"), Format: q.Get("format"), Group: u.Group}
	if im.Format == "" {
		im.Format = "qcow2"
	}
	switch {
	case rank(u.Role) < rank(broker.RoleUser):
		return im, lease.Errorf(lease.EFORBIDDEN, "", "pushing images needs a user's token")
	case !imageNameRE.MatchString(im.Name):
		return im, lease.Errorf(lease.EINVALID, "name", "want an image name of letters, digits, '.', '_' or '-' (at most 128), got %q", im.Name)
	case im.Format != "qcow2" && im.Format != "raw":
		return im, lease.Errorf(lease.EINVALID, "format", "format must be qcow2 or raw, got %q", im.Format)
	}
	if p := q.Get("public"); p != "" {
		pub, err := strconv.ParseBool(p)
		if err != nil {
			return im, lease.Errorf(lease.EINVALID, "public", "want true or false, got %q", p)
		}
		if pub && u.Role != broker.RoleAdmin {
			return im, lease.Errorf(lease.EFORBIDDEN, "public", "only an admin makes an image public; leave it to your group or ask one")
		}
		im.Public = pub
	}
	if im.Group == "" && !im.Public {
		return im, lease.Errorf(lease.EINVALID, "public", "%s has no group to own the image: push it public (admin) or as a group's user", u.Name)
	}
	if a.cfg.ImageDir == "" {
		return im, unavailable("this broker node keeps no images (it runs without a data directory)")
	}
	if err := os.MkdirAll(a.cfg.ImageDir, 0o755); err != nil {
		return im, fmt.Errorf("image store: %w", err)
	}
	tmp, err := os.CreateTemp(a.cfg.ImageDir, ".push-*")
	if err != nil {
		return im, fmt.Errorf("image store: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	defer tmp.Close()
	limit := a.cfg.MaxImageSize
	if limit <= 0 {
		limit = DefaultMaxImageSize
	}
	// Without a swarm the digest is hashed on the way in; with one, the
	// manifest's single read gives the digest and the piece hashes.
	var w io.Writer = tmp
	h := sha256.New()
	if a.swarm == nil {
		w = io.MultiWriter(tmp, h)
	}
	n, err := io.Copy(w, http.MaxBytesReader(nil, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return im, lease.Errorf(lease.EINVALID, "body", "image larger than this broker takes (%d bytes)", limit)
	case err != nil:
		return im, lease.Errorf(lease.EINVALID, "body", "reading the image: %v", err)
	case n == 0:
		return im, lease.Errorf(lease.EINVALID, "body", "the image is empty: send its bytes as the body")
	}
	if err := tmp.Sync(); err != nil {
		return im, fmt.Errorf("image store: %w", err)
	}
	im.Digest, im.Size = hex.EncodeToString(h.Sum(nil)), n
	var info []byte
	if a.swarm != nil {
		m, err := swarm.Build(tmp.Name(), im.Name, 0, "", nil)
		if err != nil {
			return im, fmt.Errorf("swarm manifest: %w", err)
		}
		im.Digest, im.PieceLength, im.InfoHash, info = m.SHA256, m.PieceLength, m.InfoHash, m.Info
	}
	path := filepath.Join(a.cfg.ImageDir, im.Digest)
	if info != nil {
		if err := os.WriteFile(path+".info", info, 0o644); err != nil {
			return im, fmt.Errorf("swarm manifest: %w", err)
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return im, fmt.Errorf("image store: %w", err)
	}
	key, err := a.siteKey(r.Context())
	if err != nil {
		return im, err
	}
	im.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, im.Manifest()))
	if _, err := a.propose(r.Context(), broker.CmdPutImage, u.Name, im); err != nil {
		a.dropBlob(r.Context(), im.Digest)
		return im, err
	}
	a.log.InfoContext(r.Context(), "change", "audit", true, "actor", u.Name, "action", "image.push", "target", im.Name,
		"digest", im.Digest, "size", im.Size)
	if err := a.seedImage(r.Context(), im); err != nil {
		a.log.WarnContext(r.Context(), "swarm: seed image; hosts fetch it from the broker instead", "image", im.Name, "err", err)
	}
	err = a.read(r.Context(), false, func(st *broker.State) error {
		im, _ = st.Image(im.Name)
		return nil
	})
	return im, err
}

// dropBlob removes a digest's bytes once no image names them.
func (a *API) dropBlob(ctx context.Context, digest string) {
	if a.cfg.ImageDir == "" {
		return
	}
	used := false
	a.read(ctx, false, func(st *broker.State) error {
		for _, im := range st.Images() {
			used = used || im.Digest == digest
		}
		return nil
	})
	if !used {
		os.Remove(filepath.Join(a.cfg.ImageDir, digest))
	}
}

func (a *API) imageBlob(w http.ResponseWriter, r *http.Request) {
	u, ok := a.plainUser(w, r)
	if !ok {
		return
	}
	digest := r.PathValue("digest")
	if !digestRE.MatchString(digest) {
		a.writePlainErr(w, r, lease.Errorf(lease.EINVALID, "digest", "want a SHA-256 digest in lowercase hex, got %q", digest))
		return
	}
	var visible bool
	if err := a.read(r.Context(), false, func(st *broker.State) error {
		for _, im := range st.Images() {
			visible = visible || (im.Digest == digest && seesImage(u, im))
		}
		return nil
	}); err != nil {
		a.writePlainErr(w, r, err)
		return
	}
	notFound := lease.Errorf(lease.ENOTFOUND, "digest", "no image with digest %s", digest)
	if !visible || a.cfg.ImageDir == "" {
		a.writePlainErr(w, r, notFound)
		return
	}
	f, err := os.Open(filepath.Join(a.cfg.ImageDir, digest))
	if err != nil {
		// The record is replicated; the bytes live on the node they were
		// pushed to.
		a.writePlainErr(w, r, lease.Errorf(lease.ENOTFOUND, "digest", "this broker node does not hold image %s; ask the node it was pushed to", digest))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+digest+`"`)
	http.ServeContent(w, r, "", time.Time{}, f)
}

// vmLog reads a VM's console log from its host's agent.
func (a *API) vmLog(w http.ResponseWriter, r *http.Request) {
	u, ok := a.plainUser(w, r)
	if !ok {
		return
	}
	id := lease.ID(r.PathValue("id"))
	index, err := strconv.Atoi(r.PathValue("index"))
	if err != nil || index < 0 {
		a.writePlainErr(w, r, lease.Errorf(lease.EINVALID, "index", "want a VM index (0, 1, …), got %q", r.PathValue("index")))
		return
	}
	tail := r.URL.Query().Get("tail")
	if tail != "" {
		if n, err := strconv.ParseInt(tail, 10, 64); err != nil || n < 0 {
			a.writePlainErr(w, r, lease.Errorf(lease.EINVALID, "tail", "want a number of bytes, got %q", tail))
			return
		}
	}
	var vm broker.VM
	var host broker.Host
	err = a.read(r.Context(), false, func(st *broker.State) error {
		l, ok := st.Lease(id)
		if !ok || !seesGroup(u, l.Request.Group) {
			return lease.Errorf(lease.ENOTFOUND, "id", "no lease %s", id)
		}
		found := false
		for _, v := range l.VMs {
			if v.Index == index {
				vm, found = v, true
			}
		}
		if !found {
			return lease.Errorf(lease.ENOTFOUND, "index", "lease %s has no VM %d (it has %d placed)", id, index, len(l.VMs))
		}
		for _, h := range st.Hosts() {
			if h.Name == vm.Host {
				host = h
			}
		}
		return nil
	})
	if err != nil {
		a.writePlainErr(w, r, err)
		return
	}
	if host.Agent == "" {
		a.writePlainErr(w, r, lease.Errorf(lease.ENOTFOUND, "index", "VM %s/%d runs on %s, which has no agent to read a console from", id, index, vm.Host))
		return
	}
	url := fmt.Sprintf("%s/v1/vms/%s/%d/log", host.Agent, id, index)
	if tail != "" {
		url += "?tail=" + tail
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		a.writePlainErr(w, r, err)
		return
	}
	req.Header.Set("Fairlease-Log-Key", host.LogKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.writePlainErr(w, r, unavailable(fmt.Sprintf("the agent of %s does not answer (%v); try again", vm.Host, err)))
		return
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		a.writePlainErr(w, r, lease.Errorf(lease.ENOTFOUND, "index", "the agent of %s has no console log for VM %s/%d (not started yet, or gone)", vm.Host, id, index))
		return
	default:
		a.writePlainErr(w, r, unavailable(fmt.Sprintf("the agent of %s answered %s", vm.Host, resp.Status)))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.Copy(w, resp.Body)
}
