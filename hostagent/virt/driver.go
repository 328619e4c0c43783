package virt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/fairlease/fairlease/lease"
)

// Options configure a Driver.
type Options struct {
	// URI is the libvirt connection, e.g. "qemu:///system" or
	// "test:///default".
	URI string
	// Host is this agent's host name; the driver tags its domains with it
	// and sees only domains so tagged.
	Host string
	// Dir holds one work directory per VM, Dir/<domain name>/, with
	// overlay.qcow2, seed.iso and console.log.
	Dir string
	// Bridge is the host bridge a VM's one NIC is plugged into; empty
	// means no NIC.
	Bridge string
	Logger *slog.Logger
}

// ErrNoLibvirt is returned by Open when the libvirt library cannot be
// loaded or initialized.
var ErrNoLibvirt = errors.New("virt: libvirt library unavailable")

// Driver runs fairlease VMs as libvirt domains of one host.
//
// With qemu:///system the domains run as the user libvirt's qemu.conf
// names (Debian: libvirt-qemu). libvirt's dynamic ownership (on by
// default) hands the overlay, the seed, the base image and the console
// log to that user while a domain runs, but every directory above them,
// Options.Dir and the base image's included, must be searchable by it.
// Under AppArmor or SELinux the same paths must be allowed by the
// security driver's profile (libvirt's virt-aa-helper adds the disks;
// Dir may need an entry in /etc/apparmor.d/local/abstractions/libvirt-qemu).
type Driver struct {
	opts   Options
	log    *slog.Logger
	conn   *libvirt.Connect
	kind   string
	cbID   int
	events chan Event

	mu      sync.Mutex
	closed  bool
	meta    map[string]leaseMeta       // this host's domains by name, for events after undefine
	waiters map[string][]chan struct{} // closed when the named domain stops

	// beforeCreate, if set, runs between define and start: tests fail
	// there to check that Start undoes a defined domain.
	beforeCreate func(name string) error
}

// eventBuffer bounds Events: the libvirt event loop never waits for the
// agent, so an agent that falls behind loses events (and lists again).
const eventBuffer = 256

// eventLoop starts libvirt's event loop once per process. It must run
// before the first connection, or Destroy and console streams hang.
var eventLoop = sync.OnceValue(func() error {
	if err := libvirt.EventRegisterDefaultImpl(); err != nil {
		return err
	}
	go func() {
		for {
			if err := libvirt.EventRunDefaultImpl(); err != nil {
				slog.Error("libvirt event loop", "err", err)
				time.Sleep(time.Second) // do not spin on a persistent error
			}
		}
	}()
	return nil
})

// Open connects to libvirt and subscribes to its domain events.
func Open(ctx context.Context, o Options) (*Driver, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if o.URI == "" || o.Host == "" || o.Dir == "" {
		return nil, errors.New("virt: open: Options need URI, Host and Dir")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("virt: open: work directory %s: %w", o.Dir, err)
	}
	o.Dir = dir
	// 0755: the qemu process, not root, must reach the files below.
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("virt: open: create work directory (check its parent's permissions): %w", err)
	}
	if err := eventLoop(); err != nil {
		return nil, fmt.Errorf("%w: install libvirt0 (binaries built with -tags libvirt_dlopen load it at run time): %w", ErrNoLibvirt, err)
	}
	conn, err := libvirt.NewConnect(o.URI)
	if err != nil {
		return nil, fmt.Errorf("virt: open %s (is libvirtd running? scripts/libvirt/start.sh starts it): %w", o.URI, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Driver{
		opts:    o,
		log:     log.With("host", o.Host, "uri", o.URI),
		conn:    conn,
		events:  make(chan Event, eventBuffer),
		meta:    map[string]leaseMeta{},
		waiters: map[string][]chan struct{}{},
	}
	if d.kind, err = detectKind(conn, d.log); err != nil {
		conn.Close()
		return nil, err
	}
	if d.cbID, err = conn.DomainEventLifecycleRegister(nil, d.onLifecycle); err != nil {
		conn.Close()
		return nil, fmt.Errorf("virt: open %s: subscribe to domain events: %w", o.URI, err)
	}
	return d, nil
}

// detectKind says "test" for the test driver and, for QEMU, "kvm" when
// KVM is usable or "qemu" (TCG) when it is not.
func detectKind(conn *libvirt.Connect, log *slog.Logger) (string, error) {
	uri, err := conn.GetURI()
	if err != nil {
		return "", fmt.Errorf("virt: open: read connection URI: %w", err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("virt: open: parse connection URI %q: %w", uri, err)
	}
	switch scheme, _, _ := strings.Cut(u.Scheme, "+"); scheme {
	case "test":
		return "test", nil
	case "qemu":
	default:
		return "", fmt.Errorf("virt: open: driver %q is not supported: use a qemu:// or test:// URI", scheme)
	}
	if _, err := conn.GetDomainCapabilities("", "", "", "kvm", 0); err != nil {
		log.Info("virt: KVM unavailable, domains use TCG", "reason", err)
		return "qemu", nil
	}
	// A paravirtual /dev/kvm (such as kvm_pvm in nested sandboxes) passes
	// the check above yet cannot boot an ordinary guest; hardware
	// virtualization shows as vmx or svm among the host CPU's features.
	capsXML, err := conn.GetCapabilities()
	if err != nil {
		return "", fmt.Errorf("virt: open: read host capabilities: %w", err)
	}
	var caps libvirtxml.Caps
	if err := caps.Unmarshal(capsXML); err != nil {
		return "", fmt.Errorf("virt: open: parse host capabilities: %w", err)
	}
	if cpu := caps.Host.CPU; cpu != nil && (cpu.Arch == "x86_64" || cpu.Arch == "i686") {
		if !slices.ContainsFunc(cpu.FeatureFlags, func(f libvirtxml.CapsHostCPUFeatureFlag) bool {
			return f.Name == "vmx" || f.Name == "svm"
		}) {
			log.Info("virt: /dev/kvm present but the host CPU lacks vmx/svm, domains use TCG")
			return "qemu", nil
		}
	}
	return "kvm", nil
}

// Kind is "test", "qemu" (TCG) or "kvm".
func (d *Driver) Kind() string { return d.kind }

// Capacity is the node's CPUs and memory.
func (d *Driver) Capacity(ctx context.Context) (lease.Resources, error) {
	info, err := d.conn.GetNodeInfo()
	if err != nil {
		return lease.Resources{}, fmt.Errorf("virt: capacity: node info: %w", err)
	}
	return lease.Resources{Cores: int64(info.Cpus), MemoryMiB: int64(info.Memory / 1024)}, nil
}

// Events delivers state changes of this host's domains.
func (d *Driver) Events() <-chan Event { return d.events }

// ConsoleLog returns the path of the serial console log of a domain
// started by this driver.
func (d *Driver) ConsoleLog(name string) (string, error) {
	dir, err := d.vmDir(name)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("virt: console log of %s: no work directory (was it started on this host?): %w", name, err)
	}
	return filepath.Join(dir, consoleFile), nil
}

// Close unsubscribes from events and closes the connection; Events is
// closed too.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	errDereg := d.conn.DomainEventDeregister(d.cbID)
	_, errClose := d.conn.Close()
	d.mu.Lock()
	close(d.events)
	d.mu.Unlock()
	if err := errors.Join(errDereg, errClose); err != nil {
		return fmt.Errorf("virt: close: %w", err)
	}
	return nil
}

// Files of a VM's work directory.
const (
	overlayFile = "overlay.qcow2"
	seedFile    = "seed.iso"
	consoleFile = "console.log"
)

// vmDir is the work directory of a domain, refusing names that would
// leave Dir.
func (d *Driver) vmDir(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	return filepath.Join(d.opts.Dir, name), nil
}

func checkName(name string) error {
	if name == "" || len(name) > 200 {
		return fmt.Errorf("virt: domain name %q must have 1 to 200 characters", name)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '-' || r == '_' || r == '.')
		if !ok {
			return fmt.Errorf("virt: domain name %q: use letters, digits, '-', '_' and '.' (see DomainName)", name)
		}
	}
	return nil
}

// isCode reports whether err is a libvirt error with one of codes.
func isCode(err error, codes ...libvirt.ErrorNumber) bool {
	var e libvirt.Error
	return errors.As(err, &e) && slices.Contains(codes, e.Code)
}
