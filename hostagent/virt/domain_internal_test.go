package virt

import (
	"context"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/fairlease/fairlease/hostagent/seed"
	"github.com/fairlease/fairlease/hostagent/seed/seedtest"
)

func TestSeedConfigCopiesEveryField(t *testing.T) {
	// A field added to Seed but not to seed.Config would be lost silently.
	if a, b := reflect.TypeFor[Seed]().NumField(), reflect.TypeFor[seed.Config]().NumField(); a != b {
		t.Fatalf("virt.Seed has %d fields, seed.Config %d: keep them in step and convert the new one in seedConfig", a, b)
	}
	in := Seed{
		InstanceID: "i", Hostname: "h", Address: "10.0.0.1", Prefix: 8,
		Peers:            []Peer{{Name: "p", Address: "10.0.0.2"}},
		ClusterPublicKey: "pub", ClusterPrivateKey: "priv", UserKeys: []string{"k"}, UserData: []byte("#!"),
	}
	want := seed.Config{
		InstanceID: "i", Hostname: "h", Address: "10.0.0.1", Prefix: 8,
		Peers:            []seed.Peer{{Name: "p", Address: "10.0.0.2"}},
		ClusterPublicKey: "pub", ClusterPrivateKey: "priv", UserKeys: []string{"k"}, UserData: []byte("#!"),
	}
	if diff := cmp.Diff(want, seedConfig(in)); diff != "" {
		t.Errorf("seedConfig: -want +got:\n%s", diff)
	}
}

func TestDomainXML(t *testing.T) {
	s := Spec{Name: "fl-l1-2", Lease: "l1", Index: 2, Host: "h1", Cores: 3, MemoryMiB: 512}
	meta := leaseMeta{ID: "l1", Index: 2, Host: `h"<&`, End: "2030-01-02T03:04:05Z"}
	tests := []struct {
		name       string
		kind       string
		bridge     string
		wantCPU    *libvirtxml.DomainCPU
		wantBridge string
	}{
		{"test driver", "test", "", nil, ""},
		{"tcg", "qemu", "", nil, ""},
		{"kvm with bridge", "kvm", "br0", &libvirtxml.DomainCPU{Mode: "host-passthrough"}, "br0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Driver{kind: tt.kind, opts: Options{Bridge: tt.bridge}}
			text, err := d.domainXML(s, "/vms/fl-l1-2", meta).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			// Read it back as libvirt would see it.
			var got libvirtxml.Domain
			if err := got.Unmarshal(text); err != nil {
				t.Fatalf("%v\n%s", err, text)
			}
			if got.Type != tt.kind || got.Name != s.Name || got.VCPU.Value != 3 || got.Memory.Value != 512 || got.Memory.Unit != "MiB" {
				t.Errorf("type %q name %q vcpu %d memory %d %s; want %s %s 3 512 MiB", got.Type, got.Name, got.VCPU.Value, got.Memory.Value, got.Memory.Unit, tt.kind, s.Name)
			}
			if got.OS.Type.Machine != "pc" || len(got.OS.BootDevices) != 1 || got.OS.BootDevices[0].Dev != "hd" || got.Features.ACPI == nil {
				t.Errorf("os %+v features %+v: want machine pc, boot from hd, ACPI", got.OS, got.Features)
			}
			if diff := cmp.Diff(tt.wantCPU, got.CPU, cmpopts.IgnoreFields(libvirtxml.DomainCPU{}, "XMLName")); diff != "" {
				t.Errorf("cpu: -want +got:\n%s", diff)
			}
			type disk struct {
				Dev, File, Format string
				ReadOnly          bool
			}
			var disks []disk
			for _, dd := range got.Devices.Disks {
				disks = append(disks, disk{dd.Target.Dev + "/" + dd.Target.Bus, dd.Source.File.File, dd.Driver.Type, dd.ReadOnly != nil})
			}
			wantDisks := []disk{{"vda/virtio", "/vms/fl-l1-2/overlay.qcow2", "qcow2", false}, {"vdb/virtio", "/vms/fl-l1-2/seed.iso", "raw", true}}
			if diff := cmp.Diff(wantDisks, disks); diff != "" {
				t.Errorf("disks: -want +got:\n%s", diff)
			}
			if n := len(got.Devices.Serials); n != 1 || got.Devices.Serials[0].Source.File.Path != "/vms/fl-l1-2/console.log" || *got.Devices.Serials[0].Target.Port != 0 {
				t.Errorf("serials %+v: want one, port 0, into /vms/fl-l1-2/console.log", got.Devices.Serials)
			}
			if len(got.Devices.Graphics) != 0 {
				t.Errorf("graphics %+v, want none", got.Devices.Graphics)
			}
			var bridge string
			for _, i := range got.Devices.Interfaces {
				bridge += i.Source.Bridge.Bridge
			}
			if bridge != tt.wantBridge {
				t.Errorf("NIC bridges %q, want %q", bridge, tt.wantBridge)
			}
			if !strings.Contains(got.Metadata.XML, `xmlns:fl="`+MetadataNS+`"`) {
				t.Errorf("metadata %s lacks the fairlease namespace", got.Metadata.XML)
			}
			var back leaseMeta
			if err := xml.Unmarshal([]byte(got.Metadata.XML), &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(meta, back, cmpopts.IgnoreFields(leaseMeta{}, "XMLName")); diff != "" {
				t.Errorf("metadata round trip: -want +got:\n%s", diff)
			}
		})
	}
}

func TestEventState(t *testing.T) {
	tests := []struct {
		event      libvirt.DomainEventType
		detail     int
		wantState  State
		wantReason string
		wantOK     bool
	}{
		{libvirt.DOMAIN_EVENT_DEFINED, 0, "", "", false},
		{libvirt.DOMAIN_EVENT_STARTED, int(libvirt.DOMAIN_EVENT_STARTED_BOOTED), Running, "started: booted", true},
		{libvirt.DOMAIN_EVENT_SUSPENDED, 0, Running, "paused", true},
		{libvirt.DOMAIN_EVENT_SHUTDOWN, 0, "", "", false},
		{libvirt.DOMAIN_EVENT_STOPPED, int(libvirt.DOMAIN_EVENT_STOPPED_DESTROYED), Stopped, "stopped: destroyed", true},
		{libvirt.DOMAIN_EVENT_STOPPED, int(libvirt.DOMAIN_EVENT_STOPPED_CRASHED), Crashed, "stopped: crashed", true},
		{libvirt.DOMAIN_EVENT_STOPPED, int(libvirt.DOMAIN_EVENT_STOPPED_FAILED), Crashed, "stopped: failed", true},
		{libvirt.DOMAIN_EVENT_STOPPED, 99, Stopped, "stopped: detail 99", true},
		{libvirt.DOMAIN_EVENT_CRASHED, 0, Crashed, "crashed", true},
		{libvirt.DOMAIN_EVENT_UNDEFINED, 0, Stopped, "undefined", true},
	}
	for _, tt := range tests {
		state, reason, ok := eventState(&libvirt.DomainEventLifecycle{Event: tt.event, Detail: tt.detail})
		if state != tt.wantState || reason != tt.wantReason || ok != tt.wantOK {
			t.Errorf("event %d detail %d: got %q %q %v, want %q %q %v", tt.event, tt.detail, state, reason, ok, tt.wantState, tt.wantReason, tt.wantOK)
		}
	}
}

// TestStartUndoesDefinedDomain fails Start between define and start,
// which the test driver never does on its own.
func TestStartUndoesDefinedDomain(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils)")
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "16M").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	d, err := Open(context.Background(), Options{URI: "test:///default", Host: "undo-host", Dir: filepath.Join(dir, "vms")})
	if errors.Is(err, ErrNoLibvirt) {
		t.Skipf("no libvirt here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	injected := errors.New("injected failure")
	var definedThen bool
	d.beforeCreate = func(name string) error {
		dom, err := d.conn.LookupDomainByName(name)
		if err == nil {
			definedThen = true
			dom.Free()
		}
		return injected
	}
	pub, priv := seedtest.KeyPair(1)
	s := Spec{
		Name: "fl-undo-0", Lease: "undo", Cores: 1, MemoryMiB: 64, BaseImage: base, BaseFormat: "qcow2",
		Seed: Seed{InstanceID: "fl-undo-0", Hostname: "node-0", Address: "10.0.0.1", Prefix: 24, ClusterPublicKey: pub, ClusterPrivateKey: priv},
	}
	err = d.Start(context.Background(), s)
	if !errors.Is(err, injected) {
		t.Fatalf("Start: %v, want the injected failure", err)
	}
	if !definedThen {
		t.Fatal("the domain was not defined when the failure was injected")
	}
	if dom, err := d.conn.LookupDomainByName(s.Name); !isCode(err, libvirt.ERR_NO_DOMAIN) {
		if err == nil {
			dom.Free()
		}
		t.Errorf("domain after failed Start: lookup error %v, want no domain", err)
	}
	if es, err := os.ReadDir(filepath.Join(dir, "vms")); err != nil || len(es) != 0 {
		t.Errorf("work directories after failed Start: %v, %v; want none", es, err)
	}
}
