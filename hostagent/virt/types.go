// Package virt runs the VMs of leases as libvirt domains: a copy-on-write
// overlay on a cached base image, a cloud-init NoCloud seed, a domain
// tagged with its lease, a serial console logged to a file.
package virt

import (
	"fmt"
	"time"

	"github.com/fairlease/fairlease/lease"
)

// Spec is one VM to start.
type Spec struct {
	// Name is the domain name, DomainName(Lease, Index).
	Name  string
	Lease lease.ID
	Index int
	// Host is the agent's host: domains are tagged with it, so agents
	// sharing a libvirt connection (the test driver) see only their own.
	Host      string
	Cores     int
	MemoryMiB int64
	// BaseImage is the path of the verified cached image, BaseFormat its
	// format (qcow2 or raw).
	BaseImage  string
	BaseFormat string
	Seed       Seed
	End        time.Time
}

// Seed is what the VM learns at boot through its NoCloud seed.
type Seed struct {
	InstanceID string
	Hostname   string
	// Address is the VM's own address, Prefix its prefix length.
	Address string
	Prefix  int
	// Peers are all the VMs of the cluster, this one included.
	Peers []Peer
	// The cluster's SSH key pair (OpenSSH formats) and the user's keys.
	ClusterPublicKey  string
	ClusterPrivateKey string
	UserKeys          []string
	// UserData is the user's own user data (an EC2 RunInstances call's),
	// nil for none.
	UserData []byte
}

// Peer is one VM of the cluster.
type Peer struct {
	Name    string
	Address string
}

// State is a domain's state as the agent reports it.
type State string

// Domain states.
const (
	Running  State = "running"
	Starting State = "starting"
	Stopped  State = "stopped" // shut off or gone
	Crashed  State = "crashed"
)

// Domain is a fairlease domain found on the hypervisor.
type Domain struct {
	Name  string
	Lease lease.ID
	Index int
	Host  string
	State State
}

// Event is a change of a fairlease domain's state.
type Event struct {
	Domain
	Reason string
}

// DomainName is the libvirt name of VM index of lease id.
func DomainName(id lease.ID, index int) string { return fmt.Sprintf("fl-%s-%d", id, index) }
