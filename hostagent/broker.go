package hostagent

import (
	"context"
	"io"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// Registration is what an agent says of its host when it enrols and on
// every heartbeat.
type Registration struct {
	Host     string
	Capacity lease.Resources
	// Addr is the agent's own base URL (http://host:port), where the broker
	// reads VM console logs; LogKey is the secret it must present there.
	Addr   string
	LogKey string
	// Driver is "test" or "qemu".
	Driver string
	// Images are the digests of the verified images in the cache.
	Images []string
}

// Broker is the agent's view of the broker. Every answer it returns has
// been authenticated as the broker's (a broker that cannot prove itself
// gets an error, never a state change on the host).
type Broker interface {
	// Register exchanges the join token the Broker was dialled with for
	// the host's own credential.
	Register(ctx context.Context, r Registration) (credential string, err error)
	// Heartbeat says the host is alive, with its capacity and cache.
	Heartbeat(ctx context.Context, r Registration) error
	// Assignments answers what the host must run, once the broker's
	// applied index passes since (or wait elapses). The index it returns
	// is the since of the next call: resuming after a disconnect is
	// calling again with the last index seen.
	Assignments(ctx context.Context, since uint64, wait time.Duration) (index uint64, as []broker.Assignment, err error)
	// ReportVM reports a VM's state; it returns once the broker committed it.
	ReportVM(ctx context.Context, c broker.VMStateChange) error
	// Image resolves an image name.
	Image(ctx context.Context, name string) (broker.Image, error)
	// OpenImage streams an image's bytes by digest.
	OpenImage(ctx context.Context, digest string) (io.ReadCloser, error)
	// Torrent is the host's .torrent of image name, through which it
	// fetches the image from other hosts (an error when the broker runs
	// no swarm).
	Torrent(ctx context.Context, name string) ([]byte, error)
}

// Dialer makes a Broker that authenticates with token (a join token
// before registration, the host's credential after).
type Dialer func(token string) Broker
