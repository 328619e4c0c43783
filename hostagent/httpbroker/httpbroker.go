// Package httpbroker is the host agent's Broker over the broker's REST API:
// every answer checked against the broker's signature, and the next broker
// node tried when one stops answering, so that an agent follows its
// cluster through a leader failover (followers forward writes).
package httpbroker

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/client"
	"github.com/fairlease/fairlease/hostagent"
	"github.com/fairlease/fairlease/lease"
)

// Dialer returns a hostagent.Dialer over the broker nodes at addrs.
func Dialer(addrs []string) (hostagent.Dialer, error) {
	if len(addrs) == 0 {
		return nil, errors.New("httpbroker: no broker address")
	}
	for _, a := range addrs {
		if _, err := client.New(a, ""); err != nil {
			return nil, err
		}
	}
	return func(token string) hostagent.Broker {
		b := &Broker{}
		for _, a := range addrs {
			c, _ := client.New(a, token)
			c.Verify = true
			b.nodes = append(b.nodes, c)
		}
		return b
	}, nil
}

// Broker talks to one broker node at a time, moving on when it fails.
type Broker struct {
	nodes []*client.Client
	cur   atomic.Int64
	// siteKey is the site's manifest key, from the last assignments.
	siteKey atomic.Pointer[ed25519.PublicKey]
}

var _ hostagent.Broker = (*Broker)(nil)

// call runs fn on the current node, and on the others in turn while the
// failure is the node's (no answer, or no leader), not the request's.
func (b *Broker) call(ctx context.Context, fn func(*client.Client) error) error {
	var err error
	for range b.nodes {
		i := b.cur.Load()
		if err = fn(b.nodes[i%int64(len(b.nodes))]); err == nil || !nodeTrouble(err) || ctx.Err() != nil {
			return err
		}
		b.cur.CompareAndSwap(i, (i+1)%int64(len(b.nodes)))
	}
	return err
}

// nodeTrouble reports whether err says the node, not the request, failed.
func nodeTrouble(err error) bool {
	var le *lease.Error
	if errors.As(err, &le) {
		return le.Code == api.EUNAVAILABLE || le.Code == lease.EINTERNAL
	}
	return !errors.Is(err, client.ErrUnsigned)
}

func registration(r hostagent.Registration) api.AgentRegistration {
	return api.AgentRegistration{Host: r.Host, Cores: r.Capacity.Cores, MemoryMiB: r.Capacity.MemoryMiB,
		Addr: r.Addr, LogKey: r.LogKey, Driver: r.Driver, Images: r.Images}
}

// Register exchanges the join token for the host's credential.
func (b *Broker) Register(ctx context.Context, r hostagent.Registration) (string, error) {
	var cred *api.Credential
	err := b.call(ctx, func(c *client.Client) (err error) {
		cred, err = c.AgentRegister(ctx, registration(r))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("register host %s: %w", r.Host, err)
	}
	return cred.Token, nil
}

// Heartbeat says the host is alive.
func (b *Broker) Heartbeat(ctx context.Context, r hostagent.Registration) error {
	return b.call(ctx, func(c *client.Client) error { return c.AgentHeartbeat(ctx, registration(r)) })
}

// Assignments long-polls what the host must run.
func (b *Broker) Assignments(ctx context.Context, since uint64, wait time.Duration) (uint64, []broker.Assignment, error) {
	var as *api.AssignmentList
	err := b.call(ctx, func(c *client.Client) (err error) {
		as, err = c.AgentAssignments(ctx, since, wait)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	b.noteSiteKey(as.SiteKey)
	return as.Index, as.Assignments, nil
}

func (b *Broker) noteSiteKey(s string) {
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == ed25519.PublicKeySize {
		pk := ed25519.PublicKey(k)
		b.siteKey.Store(&pk)
	}
}

// ErrBadManifest is the error of an image whose manifest the site key did
// not sign.
var ErrBadManifest = errors.New("the image's manifest is not signed by this site's key")

// ReportVM reports a VM's state.
func (b *Broker) ReportVM(ctx context.Context, s broker.VMStateChange) error {
	return b.call(ctx, func(c *client.Client) error { return c.ReportVM(ctx, s) })
}

// Image resolves an image name.
func (b *Broker) Image(ctx context.Context, name string) (broker.Image, error) {
	var im *broker.Image
	err := b.call(ctx, func(c *client.Client) (err error) {
		im, err = c.Image(ctx, name)
		return err
	})
	if err != nil {
		return broker.Image{}, err
	}
	if err := b.verify(ctx, *im); err != nil {
		return broker.Image{}, &lease.Error{Code: lease.EINVALID, Field: "image", Message: fmt.Sprintf("image %s: %v", name, err)}
	}
	return *im, nil
}

// verify checks an image's manifest against the site key.
func (b *Broker) verify(ctx context.Context, im broker.Image) error {
	if b.siteKey.Load() == nil {
		if _, _, err := b.Assignments(ctx, 0, 0); err != nil {
			return err
		}
	}
	k := b.siteKey.Load()
	if k == nil {
		return fmt.Errorf("%w (the broker has no site key)", ErrBadManifest)
	}
	sig, err := base64.StdEncoding.DecodeString(im.Signature)
	if err != nil || !ed25519.Verify(*k, im.Manifest(), sig) {
		return ErrBadManifest
	}
	return nil
}

// OpenImage streams an image's bytes; the agent checks them against the
// digest, which came in a signed answer. The bytes live on the node they
// were pushed to, so every node is asked before giving up.
func (b *Broker) OpenImage(ctx context.Context, digest string) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := b.everyNode(ctx, func(c *client.Client) (err error) {
		rc, err = c.OpenImage(ctx, digest)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", digest, err)
	}
	return rc, nil
}

// everyNode runs fn on each node in turn, from the current one, until one
// succeeds: image bytes are only on the node they were pushed to, so any
// failure, not only the node's, sends it on.
func (b *Broker) everyNode(ctx context.Context, fn func(*client.Client) error) error {
	var err error
	for i := range b.nodes {
		if err = fn(b.nodes[(int(b.cur.Load())+i)%len(b.nodes)]); err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// Torrent returns the host's .torrent of image name, from the node that
// holds the image.
func (b *Broker) Torrent(ctx context.Context, name string) ([]byte, error) {
	var t []byte
	err := b.everyNode(ctx, func(c *client.Client) (err error) {
		t, err = c.ImageTorrent(ctx, name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("torrent of image %s: %w", name, err)
	}
	return t, nil
}
