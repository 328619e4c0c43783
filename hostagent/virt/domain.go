package virt

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/fairlease/fairlease/hostagent/seed"
	"github.com/fairlease/fairlease/lease"
)

// MetadataNS is the namespace of the <lease> element in a fairlease
// domain's <metadata>.
const MetadataNS = "https://fairlease.dev/xmlns/lease/1"

// leaseMeta is the <lease> element. libvirt returns it without its
// namespace, so the name matches any.
type leaseMeta struct {
	XMLName xml.Name `xml:"lease"`
	ID      string   `xml:"id,attr"`
	Index   int      `xml:"index,attr"`
	Host    string   `xml:"host,attr"`
	End     string   `xml:"end,attr,omitempty"`
}

func (m leaseMeta) marshal() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<fl:lease xmlns:fl=%q`, MetadataNS)
	for _, a := range [][2]string{{"id", m.ID}, {"index", strconv.Itoa(m.Index)}, {"host", m.Host}, {"end", m.End}} {
		if a[1] == "" {
			continue
		}
		b.WriteString(" " + a[0] + `="`)
		xml.EscapeText(&b, []byte(a[1])) // cannot fail on a bytes.Buffer
		b.WriteString(`"`)
	}
	b.WriteString("/>")
	return b.String()
}

func (m leaseMeta) domain(name string, s State) Domain {
	return Domain{Name: name, Lease: lease.ID(m.ID), Index: m.Index, Host: m.Host, State: s}
}

// readMeta returns a domain's lease metadata; ok is false for domains
// that are not fairlease's or are gone.
func readMeta(dom *libvirt.Domain) (m leaseMeta, ok bool, err error) {
	s, err := dom.GetMetadata(libvirt.DOMAIN_METADATA_ELEMENT, MetadataNS, libvirt.DOMAIN_AFFECT_CURRENT)
	if isCode(err, libvirt.ERR_NO_DOMAIN_METADATA, libvirt.ERR_NO_DOMAIN) {
		return leaseMeta{}, false, nil
	}
	if err != nil {
		return leaseMeta{}, false, err
	}
	if err := xml.Unmarshal([]byte(s), &m); err != nil {
		return leaseMeta{}, false, fmt.Errorf("parse fairlease metadata %q: %w", s, err)
	}
	return m, true, nil
}

// domainState maps libvirt's state to the agent's.
func domainState(s libvirt.DomainState) State {
	switch s {
	case libvirt.DOMAIN_RUNNING, libvirt.DOMAIN_BLOCKED, libvirt.DOMAIN_PAUSED, libvirt.DOMAIN_PMSUSPENDED:
		return Running
	case libvirt.DOMAIN_CRASHED:
		return Crashed
	case libvirt.DOMAIN_NOSTATE:
		return Starting
	default: // shut off, shutting down
		return Stopped
	}
}

func (d *Driver) checkSpec(s *Spec) error {
	if s.Host == "" {
		s.Host = d.opts.Host
	}
	switch {
	case s.Host != d.opts.Host:
		return fmt.Errorf("spec is for host %q, this driver is host %q", s.Host, d.opts.Host)
	case s.Cores < 1:
		return fmt.Errorf("cores %d: want at least 1", s.Cores)
	case s.MemoryMiB < 1:
		return fmt.Errorf("memory %d MiB: want at least 1", s.MemoryMiB)
	case s.BaseImage == "":
		return errors.New("no base image: give the path of the cached image")
	case s.BaseFormat != "qcow2" && s.BaseFormat != "raw":
		return fmt.Errorf("base image format %q: want qcow2 or raw", s.BaseFormat)
	}
	return nil
}

// Start creates the VM's overlay and seed, then defines and starts its
// domain. On failure it leaves no domain and no work directory behind.
func (d *Driver) Start(ctx context.Context, s Spec) (err error) {
	dir, err := d.vmDir(s.Name)
	if err != nil {
		return fmt.Errorf("virt: start: %w", err)
	}
	if err := d.checkSpec(&s); err != nil {
		return fmt.Errorf("virt: start %s: %w", s.Name, err)
	}
	seedConfig := seedConfig(s.Seed)
	if _, err := seed.Render(seedConfig); err != nil { // fail before touching anything
		return fmt.Errorf("virt: start %s: %w", s.Name, err)
	}
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		return fmt.Errorf("virt: start %s: qemu-img not found: install qemu-utils: %w", s.Name, err)
	}
	base, err := filepath.Abs(s.BaseImage)
	if err != nil {
		return fmt.Errorf("virt: start %s: base image: %w", s.Name, err)
	}
	if _, err := os.Stat(base); err != nil {
		return fmt.Errorf("virt: start %s: base image (fetch it into the image cache first): %w", s.Name, err)
	}
	if dom, err := d.conn.LookupDomainByName(s.Name); err == nil {
		dom.Free()
		return fmt.Errorf("virt: start %s: a domain of that name exists: stop it first", s.Name)
	} else if !isCode(err, libvirt.ERR_NO_DOMAIN) {
		return fmt.Errorf("virt: start %s: look up domain: %w", s.Name, err)
	}

	// From here on every failure undoes what was done.
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("virt: start %s: create work directory (a leftover of an earlier VM? stop it first): %w", s.Name, err)
	}
	var dom *libvirt.Domain
	defer func() {
		if err != nil {
			d.undo(s.Name, dir, dom)
		}
		if dom != nil {
			dom.Free()
		}
	}()
	overlay := filepath.Join(dir, overlayFile)
	cmd := exec.CommandContext(ctx, qemuImg, "create", "-q", "-f", "qcow2", "-b", base, "-F", s.BaseFormat, overlay)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("virt: start %s: create overlay on %s: %s: %w", s.Name, base, bytes.TrimSpace(out), err)
	}
	// The guest's disk and its seed (which holds the cluster's private
	// key) are for the qemu process only; libvirt hands them to its user.
	if err := os.Chmod(overlay, 0o600); err != nil {
		return fmt.Errorf("virt: start %s: %w", s.Name, err)
	}
	image, err := seed.Build(seedConfig)
	if err != nil {
		return fmt.Errorf("virt: start %s: %w", s.Name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, seedFile), image, 0o600); err != nil {
		return fmt.Errorf("virt: start %s: write seed: %w", s.Name, err)
	}
	// Created here so the file exists under every driver (the test driver
	// writes nothing).
	if err := os.WriteFile(filepath.Join(dir, consoleFile), nil, 0o644); err != nil {
		return fmt.Errorf("virt: start %s: create console log: %w", s.Name, err)
	}
	meta := leaseMeta{ID: string(s.Lease), Index: s.Index, Host: s.Host}
	if !s.End.IsZero() {
		meta.End = s.End.UTC().Format(time.RFC3339)
	}
	domXML, err := d.domainXML(s, dir, meta).Marshal()
	if err != nil {
		return fmt.Errorf("virt: start %s: domain XML: %w", s.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("virt: start %s: %w", s.Name, err)
	}
	d.remember(s.Name, meta) // before defining, so its first events are seen
	if dom, err = d.conn.DomainDefineXML(domXML); err != nil {
		return fmt.Errorf("virt: start %s: define domain: %w", s.Name, err)
	}
	if d.beforeCreate != nil {
		if err := d.beforeCreate(s.Name); err != nil {
			return fmt.Errorf("virt: start %s: %w", s.Name, err)
		}
	}
	if err := dom.Create(); err != nil {
		return fmt.Errorf("virt: start %s: start domain: %w", s.Name, err)
	}
	return nil
}

// undo removes what a failed Start made: the domain, if defined, and
// the work directory.
func (d *Driver) undo(name, dir string, dom *libvirt.Domain) {
	if dom != nil {
		if err := dom.Destroy(); err != nil && !isCode(err, libvirt.ERR_OPERATION_INVALID, libvirt.ERR_NO_DOMAIN) {
			d.log.Error("virt: undo failed start: destroy", "domain", name, "err", err)
		}
		if err := undefine(dom); err != nil {
			d.log.Error("virt: undo failed start: undefine", "domain", name, "err", err)
		}
	} else {
		d.forget(name)
	}
	if err := os.RemoveAll(dir); err != nil {
		d.log.Error("virt: undo failed start: remove work directory", "domain", name, "err", err)
	}
}

// undefine removes a domain's definition with its NVRAM, managed save
// image and snapshot and checkpoint metadata; drivers that refuse some
// of those flags (the test driver) get a plain undefine.
func undefine(dom *libvirt.Domain) error {
	err := dom.UndefineFlags(libvirt.DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
		libvirt.DOMAIN_UNDEFINE_NVRAM | libvirt.DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
	if isCode(err, libvirt.ERR_INVALID_ARG, libvirt.ERR_NO_SUPPORT) {
		err = dom.Undefine()
	}
	if isCode(err, libvirt.ERR_NO_DOMAIN) {
		return nil
	}
	return err
}

// domainXML describes a VM: overlay and seed as virtio disks, the serial
// console into a file, no graphics, a NIC on Bridge if set.
func (d *Driver) domainXML(s Spec, dir string, meta leaseMeta) *libvirtxml.Domain {
	port := uint(0)
	dom := &libvirtxml.Domain{
		Type:     d.kind,
		Name:     s.Name,
		Metadata: &libvirtxml.DomainMetadata{XML: meta.marshal()},
		Memory:   &libvirtxml.DomainMemory{Value: uint(s.MemoryMiB), Unit: "MiB"},
		VCPU:     &libvirtxml.DomainVCPU{Value: uint(s.Cores)},
		OS: &libvirtxml.DomainOS{
			Type:        &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "pc", Type: "hvm"},
			BootDevices: []libvirtxml.DomainBootDevice{{Dev: "hd"}},
		},
		// ACPI, so that Stop's shutdown reaches the guest as a power button.
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}, APIC: &libvirtxml.DomainFeatureAPIC{}},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Disks: []libvirtxml.DomainDisk{
				{
					Device: "disk",
					Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2"},
					Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: filepath.Join(dir, overlayFile)}},
					Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
				},
				{
					Device:   "disk",
					Driver:   &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
					Source:   &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: filepath.Join(dir, seedFile)}},
					Target:   &libvirtxml.DomainDiskTarget{Dev: "vdb", Bus: "virtio"},
					ReadOnly: &libvirtxml.DomainDiskReadOnly{},
				},
			},
			Serials: []libvirtxml.DomainSerial{{
				Source: &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{Path: filepath.Join(dir, consoleFile)}},
				Target: &libvirtxml.DomainSerialTarget{Port: &port},
			}},
		},
	}
	if d.kind == "kvm" {
		dom.CPU = &libvirtxml.DomainCPU{Mode: "host-passthrough"}
	}
	if d.opts.Bridge != "" {
		dom.Devices.Interfaces = []libvirtxml.DomainInterface{{
			Source: &libvirtxml.DomainInterfaceSource{Bridge: &libvirtxml.DomainInterfaceSourceBridge{Bridge: d.opts.Bridge}},
			Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio"},
		}}
	}
	return dom
}

// seedConfig converts the VM's seed for package seed.
func seedConfig(s Seed) seed.Config {
	c := seed.Config{
		InstanceID:        s.InstanceID,
		Hostname:          s.Hostname,
		Address:           s.Address,
		Prefix:            s.Prefix,
		ClusterPublicKey:  s.ClusterPublicKey,
		ClusterPrivateKey: s.ClusterPrivateKey,
		UserKeys:          s.UserKeys,
		UserData:          s.UserData,
	}
	for _, p := range s.Peers {
		c.Peers = append(c.Peers, seed.Peer{Name: p.Name, Address: p.Address})
	}
	return c
}

// Stop shuts a domain down, giving the guest grace to power off before
// destroying it, then undefines it and removes its work directory. A
// domain that is gone is not an error; another host's domain or one
// that is not fairlease's is.
func (d *Driver) Stop(ctx context.Context, name string, grace time.Duration) error {
	dir, err := d.vmDir(name)
	if err != nil {
		return fmt.Errorf("virt: stop: %w", err)
	}
	dom, err := d.conn.LookupDomainByName(name)
	if isCode(err, libvirt.ERR_NO_DOMAIN) {
		d.forget(name)
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("virt: stop %s: remove work directory: %w", name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("virt: stop %s: look up domain: %w", name, err)
	}
	defer dom.Free()
	meta, ok, err := readMeta(dom)
	if err != nil {
		return fmt.Errorf("virt: stop %s: read metadata: %w", name, err)
	}
	if !ok || meta.Host != d.opts.Host {
		return fmt.Errorf("virt: stop %s: not a fairlease domain of host %s: leaving it alone", name, d.opts.Host)
	}
	d.remember(name, meta)

	if active, err := dom.IsActive(); err != nil && !isCode(err, libvirt.ERR_NO_DOMAIN) {
		return fmt.Errorf("virt: stop %s: domain state: %w", name, err)
	} else if active {
		if err := d.shutdown(ctx, name, dom, grace); err != nil {
			return err
		}
	}
	if err := undefine(dom); err != nil {
		return fmt.Errorf("virt: stop %s: undefine domain: %w", name, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("virt: stop %s: remove work directory: %w", name, err)
	}
	return nil
}

// shutdown asks the guest to power off, waits up to grace for it and
// destroys the domain if it is still running.
func (d *Driver) shutdown(ctx context.Context, name string, dom *libvirt.Domain, grace time.Duration) error {
	if grace > 0 {
		stopped := d.await(name)
		defer d.unwait(name, stopped)
		if err := dom.Shutdown(); err != nil && !isCode(err, libvirt.ERR_OPERATION_INVALID) {
			d.log.Warn("virt: ACPI shutdown refused, destroying", "domain", name, "err", err)
		} else {
			d.waitShutoff(ctx, dom, stopped, grace)
		}
	}
	if err := dom.Destroy(); err != nil && !isCode(err, libvirt.ERR_OPERATION_INVALID, libvirt.ERR_NO_DOMAIN) {
		return fmt.Errorf("virt: stop %s: destroy domain: %w", name, err)
	}
	return nil
}

// waitShutoff returns once dom is inactive, grace has passed or ctx is
// done. Events wake it early; the poll covers a lost event.
func (d *Driver) waitShutoff(ctx context.Context, dom *libvirt.Domain, stopped <-chan struct{}, grace time.Duration) {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	for {
		if active, err := dom.IsActive(); err != nil || !active {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-stopped:
			return
		case <-poll.C:
		}
	}
}

// List returns this host's fairlease domains, running or not.
func (d *Driver) List(ctx context.Context) ([]Domain, error) {
	doms, err := d.conn.ListAllDomains(0)
	if err != nil {
		return nil, fmt.Errorf("virt: list domains: %w", err)
	}
	defer func() {
		for i := range doms {
			doms[i].Free()
		}
	}()
	var out []Domain
	for i := range doms {
		dom := &doms[i]
		name, err := dom.GetName()
		if err != nil {
			return nil, fmt.Errorf("virt: list domains: name: %w", err)
		}
		meta, ok, err := readMeta(dom)
		if err != nil {
			return nil, fmt.Errorf("virt: list domains: %s: %w", name, err)
		}
		if !ok || meta.Host != d.opts.Host {
			continue
		}
		state, _, err := dom.GetState()
		if isCode(err, libvirt.ERR_NO_DOMAIN) {
			continue // undefined since listed
		}
		if err != nil {
			return nil, fmt.Errorf("virt: list domains: %s: state: %w", name, err)
		}
		d.remember(name, meta)
		out = append(out, meta.domain(name, domainState(state)))
	}
	return out, nil
}
