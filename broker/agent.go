package broker

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"

	"github.com/fairlease/fairlease/lease"
)

// Host agents run the VMs of the leases placed on their host: they
// register, beat, take their assignments from the state, and report each
// VM's state back through the log.

// More command types (numbers continue command.go's).
const (
	CmdVMState    CommandType = 17 // an agent reports one VM's state
	CmdHostAgent  CommandType = 18 // an agent registers its address and driver
	CmdPutImage   CommandType = 19 // an image is pushed
	CmdDelImage   CommandType = 20 // an image is removed
	CmdShareImage CommandType = 21 // an image's groups change
	CmdSiteKey    CommandType = 22 // the site's signing key, set once
)

func init() {
	commandNames[CmdVMState] = "vm-state"
	commandNames[CmdHostAgent] = "host-agent"
	commandNames[CmdPutImage] = "put-image"
	commandNames[CmdDelImage] = "delete-image"
	commandNames[CmdShareImage] = "share-image"
	commandNames[CmdSiteKey] = "site-key"
}

// RoleAgent is a host agent's identity: it may only act for its host.
const RoleAgent Role = "agent"

// VM states an agent reports.
const (
	VMStarting = "starting"
	VMRunning  = "running"
	VMFailed   = "failed"
	VMStopped  = "stopped"
)

// VMStateChange is an agent's report on one VM.
type VMStateChange struct {
	ID    lease.ID `json:"id"`
	Index int      `json:"index"`
	State string   `json:"state"` // starting (with a phase in Note), running, failed or stopped
	Note  string   `json:"note,omitempty"`
}

// HostAgent is what an agent tells the broker when it registers.
type HostAgent struct {
	Name string `json:"name"`
	// Addr is the agent's own HTTP address, where the broker fetches VM
	// console logs; LogKey is the secret the broker presents there.
	Addr   string `json:"addr,omitempty"`
	LogKey string `json:"log_key,omitempty"`
	// Driver is test (libvirt's test driver) or qemu (with kvm when the
	// host has it).
	Driver string `json:"driver,omitempty"`
	// Images lists the digests of the images in the agent's cache.
	Images []string `json:"images,omitempty"`
}

// ClusterContext is what every VM of a cluster learns at boot beyond its
// peers: the cluster's SSH key pair and the user's public keys. The key pair
// is made by whoever proposes the lease (Apply has no randomness).
type ClusterContext struct {
	PublicKey  string   `json:"public_key"`
	PrivateKey string   `json:"private_key"`
	UserKeys   []string `json:"user_keys,omitempty"`
}

// Image is a VM image the site knows.
type Image struct {
	Name   string        `json:"name"`
	Digest string        `json:"digest"` // sha256, hex
	Size   int64         `json:"size"`
	Format string        `json:"format"` // qcow2 or raw
	Group  lease.GroupID `json:"group"`
	// Public images are leasable by every group; others only by Group
	// and the groups in SharedWith.
	Public     bool            `json:"public"`
	SharedWith []lease.GroupID `json:"shared_with,omitempty"`
	Created    time.Time       `json:"created"`
	// PieceLength and InfoHash describe the image's torrent, through
	// which hosts fetch it from each other.
	PieceLength int64  `json:"piece_length,omitempty"`
	InfoHash    string `json:"info_hash,omitempty"`
	// Signature is the site key's ed25519 signature of Manifest(), in
	// base64: an agent checks an image's identity with it, whoever told
	// it about the image.
	Signature string `json:"signature,omitempty"`
}

// Manifest is what the site signs of an image: what its bytes are.
func (im Image) Manifest() []byte {
	return []byte(fmt.Sprintf("fairlease-image-v1\nname=%s\nsha256=%s\nsize=%d\nformat=%s\npiece_length=%d\ninfo_hash=%s\n",
		im.Name, im.Digest, im.Size, im.Format, im.PieceLength, im.InfoHash))
}

// UsableBy reports whether group g may see and lease im.
func (im Image) UsableBy(g lease.GroupID) bool {
	return im.Public || (g != "" && (im.Group == g || slices.Contains(im.SharedWith, g)))
}

// ImageShare sets the groups an image is shared with, and whether it is
// public.
type ImageShare struct {
	Name   string          `json:"name"`
	Groups []lease.GroupID `json:"groups"`
	Public bool            `json:"public"`
}

// SiteKey is the site's ed25519 signing key (the seed); the first one
// proposed stays.
type SiteKey struct {
	Seed []byte `json:"seed"`
}

// Assignment is one lease an agent must run VMs of.
type Assignment struct {
	Lease   lease.ID        `json:"lease"`
	State   lease.State     `json:"state"`
	Image   string          `json:"image,omitempty"`
	Shape   lease.Shape     `json:"shape"`
	End     time.Time       `json:"end"`
	VMs     []VM            `json:"vms"`  // every VM of the lease: the peers
	Mine    []int           `json:"mine"` // the indices of the VMs on this host
	Context *ClusterContext `json:"context,omitempty"`
	// Prefetch marks a lease that has not started (deferred to a firm
	// time, placed here): the host fetches its image and starts nothing.
	Prefetch bool      `json:"prefetch,omitempty"`
	Start    time.Time `json:"start,omitzero"`
	// UserData is what an EC2 RunInstances call gave as user data, for
	// every VM's seed; nil for other leases.
	UserData []byte `json:"user_data,omitempty"`
}

// Assignments returns what host must run as of the applied index: every
// lease starting or running with a VM on it, and, marked Prefetch, every
// lease deferred to a firm start with VMs placed on it, so that their
// images are there when they start.
func (s *State) Assignments(host string) []Assignment {
	var out []Assignment
	for _, id := range s.order {
		l := s.leases[id]
		if l.State != lease.StateStarting && l.State != lease.StateRunning {
			continue
		}
		var mine []int
		for _, v := range l.VMs {
			if v.Host == host {
				mine = append(mine, v.Index)
			}
		}
		if len(mine) == 0 {
			continue
		}
		a := Assignment{Lease: id, State: l.State, Image: l.Request.Shape.Image, Shape: l.Request.Shape, End: l.End,
			VMs: slices.Clone(l.VMs), Mine: mine}
		if l.Context != nil {
			c := *l.Context
			a.Context = &c
		}
		if l.Launch != nil {
			a.UserData = slices.Clone(l.Launch.UserData)
		}
		out = append(out, a)
	}
	for _, id := range s.order {
		l := s.leases[id]
		if l.State != lease.StateDeferred || l.Request.Shape.Image == "" {
			continue
		}
		var mine []int
		for _, p := range l.Decision.Placement {
			if p.Host == host {
				mine = append(mine, p.Index)
			}
		}
		if len(mine) > 0 {
			out = append(out, Assignment{Lease: id, State: l.State, Image: l.Request.Shape.Image, Shape: l.Request.Shape,
				Start: l.Decision.Start, End: l.Decision.End, Mine: mine, Prefetch: true})
		}
	}
	return out
}

func (s *State) vmState(at time.Time, b VMStateChange) (*Lease, error) {
	l, ok := s.leases[b.ID]
	if !ok {
		return nil, lease.Errorf(lease.ENOTFOUND, "id", "no lease %q", b.ID)
	}
	i := slices.IndexFunc(l.VMs, func(v VM) bool { return v.Index == b.Index })
	if i < 0 {
		return nil, lease.Errorf(lease.ENOTFOUND, "index", "lease %s has no VM %d", b.ID, b.Index)
	}
	switch b.State {
	case VMStarting:
		// Progress while the VM waits (for its image, say): its phase.
		if l.Live() && l.VMs[i].State == VMStarting {
			l.VMs[i].Phase = b.Note
		}
		return l.public(), nil
	case VMRunning, VMStopped:
	case VMFailed:
		if !l.Live() {
			break
		}
		l.VMs[i].State = VMFailed
		// All or nothing: one VM failing fails the cluster, and its
		// capacity goes back.
		if err := s.engine.Release(at, b.ID); err != nil {
			return nil, err
		}
		l.EndReason = fmt.Sprintf("VM %d failed: %s", b.Index, b.Note)
		l.End = at
		l.move(at, lease.StateFailed, l.EndReason)
		s.events(s.engine.Advance(at))
		return l.public(), nil
	default:
		return nil, lease.Errorf(lease.EINVALID, "state", "an agent reports starting, running, failed or stopped, not %q", b.State)
	}
	l.VMs[i].State, l.VMs[i].Phase = b.State, ""
	if b.State == VMRunning && l.State == lease.StateStarting &&
		!slices.ContainsFunc(l.VMs, func(v VM) bool { return v.State != VMRunning }) {
		l.move(at, lease.StateRunning, "every VM runs")
	}
	return l.public(), nil
}

func (s *State) hostAgent(at time.Time, b HostAgent) error {
	h := s.host(b.Name)
	if h == nil {
		return lease.Errorf(lease.ENOTFOUND, "name", "no host %q: register its capacity first", b.Name)
	}
	h.Agent, h.LogKey, h.Driver, h.Images = b.Addr, b.LogKey, b.Driver, slices.Clone(b.Images)
	h.LastSeen, h.State = at, HostUp
	return nil
}

func (s *State) putImage(at time.Time, im Image) error {
	switch {
	case im.Name == "":
		return lease.Errorf(lease.EINVALID, "name", "an image needs a name")
	case len(im.Digest) != 64:
		return lease.Errorf(lease.EINVALID, "digest", "want a SHA-256 digest in hex (64 characters), got %q", im.Digest)
	case im.Format != "qcow2" && im.Format != "raw":
		return lease.Errorf(lease.EINVALID, "format", "format must be qcow2 or raw, got %q", im.Format)
	case im.Size <= 0:
		return lease.Errorf(lease.EINVALID, "size", "size must be > 0")
	}
	old, exists := s.images[im.Name]
	if exists && old.Digest != im.Digest {
		return lease.Errorf(lease.ECONFLICT, "name", "image %q exists with other content; remove it or pick another name", im.Name)
	}
	if g, ok := s.policy.Group(im.Group); ok && g.Quota.MaxImagesMiB > 0 {
		used := int64(0)
		for _, x := range s.images {
			if x.Group == im.Group && x.Name != im.Name {
				used += x.Size
			}
		}
		if limit := g.Quota.MaxImagesMiB << 20; used+im.Size > limit {
			return lease.Errorf(lease.EFORBIDDEN, "size", "group %s's images would take %d bytes, over its max_images of %d; remove some first (fairlease image rm)",
				im.Group, used+im.Size, limit)
		}
	}
	im.Created = at
	if exists {
		im.Created = old.Created
	}
	s.images[im.Name] = &im
	return nil
}

func (s *State) shareImage(b ImageShare) error {
	im, ok := s.images[b.Name]
	if !ok {
		return lease.Errorf(lease.ENOTFOUND, "name", "no image %q", b.Name)
	}
	groups := slices.Clone(b.Groups)
	slices.Sort(groups)
	groups = slices.Compact(groups)
	for i, g := range groups {
		if g == "" {
			return lease.Errorf(lease.EINVALID, fmt.Sprintf("groups[%d]", i), "empty group name")
		}
	}
	im.SharedWith, im.Public = groups, b.Public
	return nil
}

func (s *State) putSiteKey(k SiteKey) error {
	if len(k.Seed) != ed25519.SeedSize {
		return lease.Errorf(lease.EINVALID, "seed", "want a %d-byte ed25519 seed", ed25519.SeedSize)
	}
	if s.siteKey == nil {
		s.siteKey = slices.Clone(k.Seed)
	}
	return nil
}

// SiteKey returns the site's signing key, nil until one is set.
func (s *State) SiteKey() ed25519.PrivateKey {
	if s.siteKey == nil {
		return nil
	}
	return ed25519.NewKeyFromSeed(s.siteKey)
}

func (s *State) delImage(name string) error {
	if _, ok := s.images[name]; !ok {
		return lease.Errorf(lease.ENOTFOUND, "name", "no image %q", name)
	}
	for _, id := range s.order {
		if l := s.leases[id]; l.Live() && l.Request.Shape.Image == name {
			return lease.Errorf(lease.ECONFLICT, "name", "lease %s uses image %q; it can go when the lease ends", id, name)
		}
	}
	delete(s.images, name)
	return nil
}

// Image returns image name.
func (s *State) Image(name string) (Image, bool) {
	im, ok := s.images[name]
	if !ok {
		return Image{}, false
	}
	return *im, true
}

// Images lists images by name.
func (s *State) Images() []Image {
	out := make([]Image, 0, len(s.images))
	for _, im := range s.images {
		out = append(out, *im)
	}
	slices.SortFunc(out, func(a, b Image) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}
