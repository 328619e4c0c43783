package hostagent

import (
	"context"
	"time"

	"github.com/fairlease/fairlease/hostagent/virt"
	"github.com/fairlease/fairlease/lease"
)

// Hypervisor runs VMs; *virt.Driver is the real one.
type Hypervisor interface {
	// Start creates the VM's overlay and seed, defines and starts its
	// domain. On failure it leaves nothing behind.
	Start(ctx context.Context, s virt.Spec) error
	// Stop shuts the domain down (destroying it after grace), undefines it
	// and deletes its files. Stopping a domain that is gone is not an error.
	Stop(ctx context.Context, name string, grace time.Duration) error
	// List returns this host's fairlease domains.
	List(ctx context.Context) ([]virt.Domain, error)
	// Events delivers state changes of this host's fairlease domains.
	Events() <-chan virt.Event
	// ConsoleLog returns the path of a domain's serial console log.
	ConsoleLog(name string) (string, error)
	// Capacity is what the hypervisor offers: its cores and memory.
	Capacity(ctx context.Context) (lease.Resources, error)
	// Kind is "test", "qemu" or "kvm".
	Kind() string
	Close() error
}
