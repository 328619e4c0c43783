package broker

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fairlease/fairlease/lease"
)

// What the EC2 Query API needs kept in the log: users' access keys (whose
// secrets sign requests), SSH key pairs, tags on resources, and the client
// tokens that make RunInstances idempotent.

// More command types (numbers continue agent.go's).
const (
	CmdPutAccessKey    CommandType = 23 // a user gets an EC2 access key
	CmdRevokeAccessKey CommandType = 24 // an access key is revoked
	CmdPutKeyPair      CommandType = 25 // a user creates or imports an SSH key pair
	CmdDelKeyPair      CommandType = 26 // a key pair is deleted
	CmdTags            CommandType = 27 // tags are set on or removed from resources
)

func init() {
	commandNames[CmdPutAccessKey] = "put-access-key"
	commandNames[CmdRevokeAccessKey] = "revoke-access-key"
	commandNames[CmdPutKeyPair] = "put-key-pair"
	commandNames[CmdDelKeyPair] = "delete-key-pair"
	commandNames[CmdTags] = "tags"
}

// AccessKey is a user's EC2 credential. SigV4 signs with the secret
// itself, so unlike API tokens the secret is kept, not a hash of it: the
// state on the brokers' disks is as sensitive as the keys.
type AccessKey struct {
	ID      string    `json:"id"` // AKIA…, 20 characters
	User    string    `json:"user"`
	Secret  string    `json:"secret"`
	Created time.Time `json:"created"`
}

// KeyPair is an SSH public key a user registered under a name; VMs
// launched with it get it as an authorized key.
type KeyPair struct {
	ID          string    `json:"id"` // key-…
	User        string    `json:"user"`
	Name        string    `json:"name"`
	Type        string    `json:"type"` // ed25519 or rsa
	Fingerprint string    `json:"fingerprint"`
	PublicKey   string    `json:"public_key"` // authorized_keys line
	Created     time.Time `json:"created"`
}

// KeyPairRef names a user's key pair.
type KeyPairRef struct {
	User string `json:"user"`
	Name string `json:"name"`
}

// Tag is a key and a value.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// TagChange sets Tags on Resources, or with Delete removes them (a tag
// with an empty value removes the key whatever its value).
type TagChange struct {
	Resources []string `json:"resources"`
	Tags      []Tag    `json:"tags"`
	Delete    bool     `json:"delete,omitempty"`
}

// Launch is what an EC2 RunInstances call said beyond the lease request.
type Launch struct {
	// ClientToken makes the call idempotent per user; Params is a digest
	// of the call's parameters, so a reuse with others is refused.
	ClientToken  string            `json:"client_token,omitempty"`
	Params       string            `json:"params,omitempty"`
	Reservation  string            `json:"reservation"`
	InstanceType string            `json:"instance_type,omitempty"`
	KeyName      string            `json:"key_name,omitempty"`
	UserData     []byte            `json:"user_data,omitempty"`
	Tags         map[string]string `json:"tags,omitempty"`
}

// Limits on tags, as EC2 has them.
const (
	MaxTagsPerResource = 50
	maxTagKey          = 128
	maxTagValue        = 256
)

// ec2State is the part of State the EC2 API keeps.
type ec2State struct {
	AccessKeys map[string]*AccessKey `json:"access_keys"`
	KeyPairs   map[string]*KeyPair   `json:"key_pairs"` // by user + "/" + name
	// Tags by resource id (instance, image, key pair).
	Tags map[string]map[string]string `json:"tags"`
	// Tokens maps user + "/" + client token to the lease it made.
	Tokens map[string]lease.ID `json:"tokens"`
}

func newEC2State() ec2State {
	return ec2State{AccessKeys: map[string]*AccessKey{}, KeyPairs: map[string]*KeyPair{},
		Tags: map[string]map[string]string{}, Tokens: map[string]lease.ID{}}
}

// InstanceID is the EC2 id of VM index of lease id: derived, so every
// replica and every API answer agrees without storing it.
func InstanceID(id lease.ID, index int) string {
	h := sha256.Sum256([]byte(string(id) + "/" + itoa(index)))
	return "i-" + hex.EncodeToString(h[:])[:17]
}

// ImageID is the EC2 id (ami-…) of an image.
func ImageID(name string) string {
	h := sha256.Sum256([]byte("image/" + name))
	return "ami-" + hex.EncodeToString(h[:])[:17]
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for ; i > 0; i /= 10 {
		n--
		b[n] = byte('0' + i%10)
	}
	return string(b[n:])
}

// InstanceRef is where an instance id leads.
type InstanceRef struct {
	Lease lease.ID
	Index int
}

func (s *State) indexInstances(l *Lease) {
	for i := range l.Request.Count {
		s.instances[InstanceID(l.ID, i)] = InstanceRef{Lease: l.ID, Index: i}
	}
}

// Instance resolves an instance id.
func (s *State) Instance(id string) (InstanceRef, bool) {
	r, ok := s.instances[id]
	return r, ok
}

func (s *State) putAccessKey(at time.Time, k AccessKey) error {
	switch {
	case len(k.ID) < 16 || len(k.ID) > 128:
		return lease.Errorf(lease.EINVALID, "id", "an access key id has 16 to 128 characters, got %d", len(k.ID))
	case len(k.Secret) < 16:
		return lease.Errorf(lease.EINVALID, "secret", "an access key's secret has at least 16 characters")
	}
	if _, ok := s.users[k.User]; !ok {
		return lease.Errorf(lease.ENOTFOUND, "user", "no user %q", k.User)
	}
	if _, dup := s.ec2.AccessKeys[k.ID]; dup {
		return lease.Errorf(lease.ECONFLICT, "id", "access key %s exists already", k.ID)
	}
	k.Created = at
	s.ec2.AccessKeys[k.ID] = &k
	return nil
}

func (s *State) revokeAccessKey(id string) error {
	if _, ok := s.ec2.AccessKeys[id]; !ok {
		return lease.Errorf(lease.ENOTFOUND, "id", "no access key %q", id)
	}
	delete(s.ec2.AccessKeys, id)
	return nil
}

// AccessKey returns access key id.
func (s *State) AccessKey(id string) (AccessKey, bool) {
	k, ok := s.ec2.AccessKeys[id]
	if !ok {
		return AccessKey{}, false
	}
	return *k, true
}

// AccessKeys lists the access keys of user (all users' when empty), by id.
func (s *State) AccessKeys(user string) []AccessKey {
	var out []AccessKey
	for _, k := range s.ec2.AccessKeys {
		if user == "" || k.User == user {
			out = append(out, *k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func keyPairKey(user, name string) string { return user + "/" + name }

func (s *State) putKeyPair(at time.Time, k KeyPair) error {
	switch {
	case k.Name == "" || len(k.Name) > 255:
		return lease.Errorf(lease.EINVALID, "key_name", "a key pair's name has 1 to 255 characters")
	case k.ID == "":
		return lease.Errorf(lease.EINVALID, "id", "a key pair needs an id")
	case !strings.HasPrefix(k.PublicKey, "ssh-"):
		return lease.Errorf(lease.EINVALID, "public_key", "expected an OpenSSH public key (ssh-ed25519 … or ssh-rsa …)")
	}
	if _, ok := s.users[k.User]; !ok {
		return lease.Errorf(lease.ENOTFOUND, "user", "no user %q", k.User)
	}
	if _, dup := s.ec2.KeyPairs[keyPairKey(k.User, k.Name)]; dup {
		return lease.Errorf(lease.ECONFLICT, "key_name", "key pair %q exists already", k.Name)
	}
	k.Created = at
	s.ec2.KeyPairs[keyPairKey(k.User, k.Name)] = &k
	return nil
}

func (s *State) delKeyPair(r KeyPairRef) {
	if k, ok := s.ec2.KeyPairs[keyPairKey(r.User, r.Name)]; ok {
		delete(s.ec2.Tags, k.ID)
		delete(s.ec2.KeyPairs, keyPairKey(r.User, r.Name))
	}
}

// KeyPair returns user's key pair name.
func (s *State) KeyPair(user, name string) (KeyPair, bool) {
	k, ok := s.ec2.KeyPairs[keyPairKey(user, name)]
	if !ok {
		return KeyPair{}, false
	}
	return *k, true
}

// KeyPairs lists user's key pairs by name.
func (s *State) KeyPairs(user string) []KeyPair {
	var out []KeyPair
	for _, k := range s.ec2.KeyPairs {
		if k.User == user {
			out = append(out, *k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// validTag checks one tag as EC2 does.
func validTag(t Tag) *lease.Error {
	switch {
	case t.Key == "" || len(t.Key) > maxTagKey:
		return lease.Errorf(lease.EINVALID, "tag.key", "a tag key has 1 to %d characters", maxTagKey)
	case len(t.Value) > maxTagValue:
		return lease.Errorf(lease.EINVALID, "tag.value", "a tag value has at most %d characters", maxTagValue)
	case strings.HasPrefix(strings.ToLower(t.Key), "aws:"):
		return lease.Errorf(lease.EINVALID, "tag.key", "tag keys starting with aws: are reserved")
	}
	return nil
}

// resourceExists reports whether id names an instance, image or key pair.
func (s *State) resourceExists(id string) bool {
	if _, ok := s.instances[id]; ok {
		return true
	}
	for name := range s.images {
		if ImageID(name) == id {
			return true
		}
	}
	for _, k := range s.ec2.KeyPairs {
		if k.ID == id {
			return true
		}
	}
	return false
}

// tags applies c all or nothing.
func (s *State) tags(c TagChange) error {
	if len(c.Resources) == 0 {
		return lease.Errorf(lease.EINVALID, "resources", "name at least one resource")
	}
	for _, t := range c.Tags {
		if err := validTag(t); err != nil {
			return err
		}
	}
	for _, r := range c.Resources {
		if !s.resourceExists(r) {
			return lease.Errorf(lease.ENOTFOUND, "resources", "no resource %q", r)
		}
		if !c.Delete {
			n := len(s.ec2.Tags[r])
			for _, t := range c.Tags {
				if _, ok := s.ec2.Tags[r][t.Key]; !ok {
					n++
				}
			}
			if n > MaxTagsPerResource {
				return lease.Errorf(lease.EINVALID, "tags", "%s would have %d tags; the limit is %d", r, n, MaxTagsPerResource)
			}
		}
	}
	for _, r := range c.Resources {
		m := s.ec2.Tags[r]
		if c.Delete {
			for _, t := range c.Tags {
				if v, ok := m[t.Key]; ok && (t.Value == "" || t.Value == v) {
					delete(m, t.Key)
				}
			}
			if len(c.Tags) == 0 {
				m = nil
			}
			if len(m) == 0 {
				delete(s.ec2.Tags, r)
			}
			continue
		}
		if m == nil {
			m = map[string]string{}
			s.ec2.Tags[r] = m
		}
		for _, t := range c.Tags {
			m[t.Key] = t.Value
		}
	}
	return nil
}

// Tags returns a copy of resource id's tags.
func (s *State) Tags(id string) map[string]string {
	return maps.Clone(s.ec2.Tags[id])
}

// TaggedResources lists the resources that have tags, sorted.
func (s *State) TaggedResources() []string {
	return slices.Sorted(maps.Keys(s.ec2.Tags))
}

func tokenKey(user, token string) string { return user + "/" + token }

// replay resolves an EC2 client token before a submission: the lease the
// same call made before, or a conflict when the token came with other
// parameters. A token whose lease was rejected is free again, as EC2
// forgets failed calls.
func (s *State) replay(actor string, ln *Launch) (*Lease, *lease.Error) {
	if ln == nil || ln.ClientToken == "" {
		return nil, nil
	}
	id, ok := s.ec2.Tokens[tokenKey(actor, ln.ClientToken)]
	if !ok {
		return nil, nil
	}
	l := s.leases[id]
	if l == nil || l.State == lease.StateRejected {
		return nil, nil
	}
	if l.Launch == nil || l.Launch.Params != ln.Params {
		return nil, lease.Errorf(lease.ECONFLICT, "client_token", "client token %q was used for a call with other parameters", ln.ClientToken)
	}
	return l, nil
}

// validLaunch checks what an EC2 call adds to a request.
func validLaunch(ln *Launch) *lease.Error {
	if ln == nil {
		return nil
	}
	if len(ln.ClientToken) > 64 {
		return lease.Errorf(lease.EINVALID, "client_token", "a client token has at most 64 characters, got %d", len(ln.ClientToken))
	}
	if len(ln.Tags) > MaxTagsPerResource {
		return lease.Errorf(lease.EINVALID, "tags", "%d tags; the limit is %d", len(ln.Tags), MaxTagsPerResource)
	}
	for _, k := range slices.Sorted(maps.Keys(ln.Tags)) {
		if err := validTag(Tag{Key: k, Value: ln.Tags[k]}); err != nil {
			return err
		}
	}
	return nil
}

// launched records what an EC2 call asked for on its new lease.
func (s *State) launched(actor string, l *Lease, ln *Launch) {
	if ln == nil {
		return
	}
	c := *ln
	c.Tags = maps.Clone(ln.Tags)
	l.Launch = &c
	if c.ClientToken != "" {
		s.ec2.Tokens[tokenKey(actor, c.ClientToken)] = l.ID
	}
	if len(c.Tags) > 0 {
		for i := range l.Request.Count {
			s.ec2.Tags[InstanceID(l.ID, i)] = maps.Clone(c.Tags)
		}
	}
}

// forgetUser drops what the EC2 API kept for a user who is removed.
func (s *State) forgetUser(name string) {
	for id, k := range s.ec2.AccessKeys {
		if k.User == name {
			delete(s.ec2.AccessKeys, id)
		}
	}
	for key, k := range s.ec2.KeyPairs {
		if k.User == name {
			delete(s.ec2.Tags, k.ID)
			delete(s.ec2.KeyPairs, key)
		}
	}
}
