#!/bin/bash
# Builds the fairlease test image: a small bootable qcow2 disk made only from
# Debian packages (the distribution kernel, busybox-static, syslinux). The
# guest reads its cloud-init NoCloud seed and prints what it learned on the
# serial console; see scripts/testimage/README.md.
#
#   OUT=build/testimage scripts/testimage/build.sh
#
# Progress goes to stderr; the last line of stdout is the absolute path of
# the image. A second run reuses the downloaded kernel package and, when
# nothing changed, the image itself.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${OUT:-build/testimage}
case "$out" in /*) ;; *) out=$repo/$out ;; esac

# Kernel command line. No panic= : a guest whose init dies should stop
# where it is rather than reboot and print its lines again.
CMDLINE="console=ttyS0 quiet"
# Modules the guest needs to read its seed and to see the power button;
# built-in ones are skipped, dependencies are added from modules.dep.
MODULES="virtio_pci virtio_blk isofs button evdev"
IMAGE_NAME=fairlease-test.qcow2

log() { echo "testimage: $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- 1. host packages --------------------------------------------------------
need_pkgs="busybox-static syslinux syslinux-common mtools dosfstools qemu-utils cpio gzip"
missing=
for p in $need_pkgs; do
	if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ]; then
		log "installing:$missing"
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2
	else
		log "missing packages; as root run:"
		log "  apt-get install -y --no-install-recommends$missing"
		exit 1
	fi
fi

busybox=/bin/busybox
[ -x "$busybox" ] || die "$busybox not found (package busybox-static)"
if file -L "$busybox" 2>/dev/null | grep -q 'dynamically linked'; then
	die "$busybox is dynamically linked; install busybox-static"
fi

mkdir -p "$out/work/debs"
work=$out/work

# --- 2. the Debian kernel, downloaded, not installed --------------------------
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	awk '!n && $1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; n = 1 }')
if [ -z "$kpkg" ]; then
	# No package lists (apt-get update never ran): fall back to a download
	# made earlier.
	deb=$(find "$work/debs" -name 'linux-image-[0-9]*-amd64_*.deb' 2>/dev/null | sort | tail -n1)
	[ -n "$deb" ] || die "cannot resolve linux-image-amd64 (run apt-get update)"
	log "apt cannot resolve linux-image-amd64; using $(basename "$deb")"
else
	kver_pkg=$(apt-cache show --no-all-versions "$kpkg" 2>/dev/null | awk '!n && /^Version:/ { print $2; n = 1 }')
	deb=
	for f in "$work/debs/${kpkg}"_*.deb; do
		[ -f "$f" ] || continue
		if [ "$(dpkg-deb -f "$f" Version)" = "$kver_pkg" ]; then deb=$f; fi
	done
	if [ -z "$deb" ]; then
		log "downloading $kpkg $kver_pkg"
		rm -f "$work/debs/"*.deb
		aptopt=()
		# As root apt would drop to _apt, which may not reach this directory.
		[ "$(id -u)" = 0 ] && aptopt=(-o APT::Sandbox::User=root)
		(cd "$work/debs" && apt-get "${aptopt[@]}" download "$kpkg" >&2)
		deb=$(find "$work/debs" -name "${kpkg}_*.deb" | head -n1)
		[ -n "$deb" ] || die "apt-get download $kpkg produced no .deb"
	fi
fi
debbase=$(basename "$deb" .deb)

kroot=$work/kernel/$debbase
if [ ! -f "$kroot/.done" ]; then
	log "unpacking $debbase"
	rm -rf "$work/kernel"
	mkdir -p "$kroot"
	dpkg-deb -x "$deb" "$kroot"
	kver=$(basename "$(find "$kroot/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)")
	# The package does not ship modules.dep (depmod runs on install).
	if [ ! -f "$kroot/lib/modules/$kver/modules.dep" ]; then
		log "generating modules.dep"
		"$busybox" depmod -b "$kroot" "$kver"
	fi
	touch "$kroot/.done"
fi
kver=$(basename "$(find "$kroot/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)")
vmlinuz=$kroot/boot/vmlinuz-$kver
kconfig=$kroot/boot/config-$kver
moddir=$kroot/lib/modules/$kver
[ -f "$vmlinuz" ] || die "no $vmlinuz in $debbase"

# --- 3. modules, in dependency order ----------------------------------------
declare -A seen=()
order=()
modpath() { # module name -> path relative to $moddir, from modules.dep
	local n=${1//-/_}
	awk -F: -v n="$n" '{ b = $1; sub(/.*\//, "", b); sub(/\.ko(\.[a-z]+)?$/, "", b); gsub(/-/, "_", b)
		if (b == n) { print $1; exit } }' "$moddir/modules.dep"
}
add_module() { # path relative to $moddir; dependencies first
	local rel=$1 dep
	[ -n "${seen[$rel]:-}" ] && return 0
	seen[$rel]=1
	# shellcheck disable=SC2013 # the dependencies are words of one line
	for dep in $(awk -F: -v m="$rel" '$1 == m { print $2; exit }' "$moddir/modules.dep"); do
		add_module "$dep"
	done
	order+=("$rel")
}
for m in $MODULES; do
	rel=$(modpath "$m")
	if [ -n "$rel" ]; then
		add_module "$rel"
	elif grep -Eq "/${m}\.ko(\.[a-z]+)?\$" "$moddir/modules.builtin"; then
		log "module $m: built into the kernel"
	else
		die "module $m: neither built in nor in modules.dep of $kver"
	fi
done
for rel in "${order[@]}"; do
	case "$rel" in *.ko) ;; *) die "compressed module $rel: busybox insmod wants plain .ko" ;; esac
done
log "kernel $kver; modules: $(for r in "${order[@]}"; do basename "$r" .ko; done | tr '\n' ' ')"
log "config: $(grep -E '^CONFIG_(VIRTIO|VIRTIO_PCI|VIRTIO_BLK|ISO9660_FS|ACPI_BUTTON|INPUT_EVDEV)=' "$kconfig" | tr '\n' ' ')"

# --- is the image up to date? ------------------------------------------------
image=$out/$IMAGE_NAME
stamp=$(
	{
		echo "$debbase $CMDLINE $MODULES"
		dpkg-query -W -f='${Package} ${Version}\n' busybox-static syslinux syslinux-common
		cat "$here/build.sh" "$here/init"
	} | sha256sum | cut -d' ' -f1
)
if [ -f "$image" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
	log "up to date: $image"
	echo "$image"
	exit 0
fi

# --- 3b. initramfs ------------------------------------------------------------
stage=$work/initramfs
rm -rf "$stage"
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,run,mnt,etc/acpi/PWRF,root,lib/modules}
cp "$busybox" "$stage/bin/busybox"
for a in $("$busybox" --list); do
	[ "$a" = busybox ] || ln -s busybox "$stage/bin/$a"
done
install -m 0755 "$here/init" "$stage/init"
printf '#!/bin/sh\nsync\npoweroff -f\n' >"$stage/etc/acpi/PWRF/00000080"
chmod 0755 "$stage/etc/acpi/PWRF/00000080"
for rel in "${order[@]}"; do
	cp "$moddir/$rel" "$stage/lib/modules/"
	basename "$rel" .ko >>"$stage/lib/modules/load.order"
done
echo "root:x:0:0:root:/root:/bin/sh" >"$stage/etc/passwd"
echo "root:x:0:" >"$stage/etc/group"
initrd=$work/initrd.gz
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -9 -n >"$initrd"
log "initramfs: $(du -k "$initrd" | cut -f1) KiB"

# --- 4. bootable FAT superfloppy, syslinux ------------------------------------
cfg=$work/syslinux.cfg
cat >"$cfg" <<EOF
DEFAULT fairlease
PROMPT 0
TIMEOUT 0
LABEL fairlease
  LINUX vmlinuz
  INITRD initrd.gz
  APPEND $CMDLINE
EOF
raw=$work/disk.img
rm -f "$raw"
kb=$(($(du -k "$vmlinuz" | cut -f1) + $(du -k "$initrd" | cut -f1) + 1024))
kb=$(((kb + 1023) / 1024 * 1024)) # whole MiB
mkfs.vfat -C -n FLTEST "$raw" "$kb" >/dev/null
export MTOOLS_SKIP_CHECK=1
mcopy -i "$raw" "$vmlinuz" ::vmlinuz
mcopy -i "$raw" "$initrd" ::initrd.gz
mcopy -i "$raw" "$cfg" ::syslinux.cfg
syslinux --install "$raw"
log "boot disk: $kb KiB FAT"

tmpimg=$out/.$IMAGE_NAME.tmp
rm -f "$tmpimg"
qemu-img convert -q -O qcow2 "$raw" "$tmpimg"
mv -f "$tmpimg" "$image"
rm -f "$raw"
echo "$stamp" >"$out/.stamp"
log "built $image ($(du -k "$image" | cut -f1) KiB)"
echo "$image"
