package broker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fairlease/fairlease/fairshare"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// A snapshot is a header (magic and version) followed by records, each a
// type byte, a length and JSON. Record types are only ever added; a reader
// stops at a type it does not know unless the type carries the ignore flag.

// SnapshotVersion is the version this code writes.
const SnapshotVersion = 1

var snapshotMagic = []byte("FAIRLEASE-SNAPSHOT\n")

type recordType uint8

const (
	recMeta   recordType = 1
	recPolicy recordType = 2
	recHost   recordType = 3
	recUser   recordType = 4
	recToken  recordType = 5
	recNode   recordType = 6
	recLease  recordType = 7
	recEngine recordType = 8
	recImage  recordType = 9
	recEC2    recordType = 10
	recSite   recordType = 11

	recIgnorable recordType = 128
)

type meta struct {
	Version int       `json:"version"`
	Index   uint64    `json:"index"`
	Now     time.Time `json:"now"`
	Preset  string    `json:"preset"`
	Addr    uint32    `json:"addr"`
	Order   []string  `json:"order"`
	SiteKey []byte    `json:"site_key,omitempty"`
}

type policyRecord struct {
	// Text is the TOML the site manager set, when the policy is one.
	Text string `json:"text,omitempty"`
	// Policy is the policy itself (groups changed one by one have no
	// text).
	Policy *policies.Policy `json:"policy"`
}

// Snapshot writes the whole state to w. Equal states write equal bytes.
func (s *State) Snapshot(w io.Writer) error {
	bw := bufio.NewWriter(w)
	if _, err := bw.Write(snapshotMagic); err != nil {
		return err
	}
	var hdr [2]byte
	binary.BigEndian.PutUint16(hdr[:], SnapshotVersion)
	bw.Write(hdr[:])
	put := func(t recordType, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("broker: snapshot record %d: %w", t, err)
		}
		var n [binary.MaxVarintLen64]byte
		bw.WriteByte(byte(t))
		bw.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
		_, err = bw.Write(b)
		return err
	}
	m := meta{Version: SnapshotVersion, Index: s.index, Now: s.now, Preset: s.preset, Addr: s.addr, SiteKey: s.siteKey}
	for _, id := range s.order {
		m.Order = append(m.Order, string(id))
	}
	type record struct {
		t recordType
		v any
	}
	recs := []record{{recMeta, m}, {recPolicy, policyRecord{Text: s.policyText, Policy: s.policy}}}
	for _, h := range s.hosts {
		recs = append(recs, record{recHost, h})
	}
	for _, u := range s.Users() {
		recs = append(recs, record{recUser, u})
	}
	for _, t := range s.Tokens() {
		recs = append(recs, record{recToken, t})
	}
	for _, n := range s.Nodes() {
		recs = append(recs, record{recNode, n})
	}
	for _, im := range s.Images() {
		recs = append(recs, record{recImage, im})
	}
	for _, x := range s.Sites() {
		recs = append(recs, record{recSite, x})
	}
	recs = append(recs, record{recEC2, s.ec2})
	for _, id := range s.order {
		recs = append(recs, record{recLease, s.leases[id]})
	}
	recs = append(recs, record{recEngine, s.engine.Export()})
	for _, r := range recs {
		if err := put(r.t, r.v); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Restore replaces the state with the snapshot read from r.
func (s *State) Restore(r io.Reader) error {
	ns, err := ReadSnapshot(r)
	if err != nil {
		return err
	}
	*s = *ns
	return nil
}

// ReadSnapshot reads a snapshot into a new state.
func ReadSnapshot(r io.Reader) (*State, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, snapshotMagic) {
		return nil, errors.New("broker: not a fairlease snapshot")
	}
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("broker: snapshot header: %w", err)
	}
	if v := binary.BigEndian.Uint16(hdr[:]); v > SnapshotVersion {
		return nil, fmt.Errorf("broker: snapshot version %d is newer than this node's %d: upgrade it", v, SnapshotVersion)
	}
	s := NewState()
	var (
		m       meta
		pol     policyRecord
		eng     *fairshare.State
		leases  []*Lease
		gotMeta bool
	)
	for {
		t, err := br.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("broker: snapshot: %w", err)
		}
		n, err := binary.ReadUvarint(br)
		if err != nil || n > 1<<30 {
			return nil, fmt.Errorf("broker: snapshot record %d: bad length", t)
		}
		// Grow with the data rather than trust the length: a damaged
		// length must not allocate a gigabyte.
		var rec bytes.Buffer
		if _, err := io.CopyN(&rec, br, int64(n)); err != nil {
			return nil, fmt.Errorf("broker: snapshot record %d: %w", t, err)
		}
		b := rec.Bytes()
		var dst any
		switch recordType(t) {
		case recMeta:
			dst, gotMeta = &m, true
		case recPolicy:
			dst = &pol
		case recHost:
			h := &Host{}
			s.hosts = append(s.hosts, h)
			dst = h
		case recUser:
			dst = &User{}
		case recToken:
			dst = &Token{}
		case recNode:
			dst = &Node{}
		case recImage:
			dst = &Image{}
		case recSite:
			dst = &Site{}
		case recEC2:
			dst = &s.ec2
		case recLease:
			l := &Lease{}
			leases = append(leases, l)
			dst = l
		case recEngine:
			eng = &fairshare.State{}
			dst = eng
		default:
			if recordType(t)&recIgnorable != 0 {
				continue
			}
			return nil, fmt.Errorf("broker: snapshot record type %d is unknown to this version: upgrade this node", t)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return nil, fmt.Errorf("broker: snapshot record %d: %w", t, err)
		}
		switch v := dst.(type) {
		case *User:
			s.users[v.Name] = v
		case *Token:
			s.tokens[v.ID] = v
		case *Node:
			s.nodes[v.ID] = v
		case *Image:
			s.images[v.Name] = v
		case *Site:
			s.sites[v.Name] = v
		}
	}
	if !gotMeta || pol.Policy == nil || eng == nil {
		return nil, errors.New("broker: snapshot lacks its meta, policy or engine record")
	}
	if err := pol.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("broker: snapshot policy: %w", err)
	}
	s.index, s.now, s.preset, s.addr, s.siteKey = m.Index, m.Now, m.Preset, m.Addr, m.SiteKey
	s.policy, s.policyText = pol.Policy, pol.Text
	// A damaged record may say null; the state's maps are never nil.
	if s.ec2.AccessKeys == nil || s.ec2.KeyPairs == nil || s.ec2.Tags == nil || s.ec2.Tokens == nil {
		return nil, errors.New("broker: snapshot EC2 record lacks a table")
	}
	for _, l := range leases {
		s.leases[l.ID] = l
		s.indexInstances(l)
		if l.Remote != nil && l.Remote.Ended.IsZero() {
			s.remote[l.ID] = true
		}
	}
	for _, id := range m.Order {
		if _, ok := s.leases[lease.ID(id)]; !ok {
			return nil, fmt.Errorf("broker: snapshot orders lease %s, which it lacks", id)
		}
		s.order = append(s.order, lease.ID(id))
	}
	if len(s.order) != len(s.leases) {
		return nil, errors.New("broker: snapshot leases and order disagree")
	}
	hosts := make([]fairshare.Host, len(s.hosts))
	for i, h := range s.hosts {
		hosts[i] = fairshare.Host{Name: h.Name, Capacity: h.Capacity}
	}
	e, err := fairshare.Restore(s.preset, hosts, s.policy, eng)
	if err != nil {
		return nil, fmt.Errorf("broker: snapshot engine: %w", err)
	}
	s.engine = e
	return s, nil
}
