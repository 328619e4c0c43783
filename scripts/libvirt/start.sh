#!/bin/sh
# Starts virtlogd and libvirtd when they are not running (machines without
# systemd, such as containers and CI), and fixes /dev/kvm's group so that
# libvirt does not re-probe QEMU on every domain start. Needs root.
set -eu
if [ "$(id -u)" != 0 ]; then
	echo "start.sh: needs root to start libvirtd (or start it with your init system)" >&2
	exit 1
fi
if [ -e /dev/kvm ] && getent group kvm >/dev/null; then
	chgrp kvm /dev/kvm && chmod 660 /dev/kvm
fi
pgrep -x virtlogd >/dev/null || virtlogd -d
if ! pgrep -x libvirtd >/dev/null; then
	libvirtd -d
fi
# Wait until the daemon answers (bounded).
for _ in $(seq 1 50); do
	if virsh -c qemu:///system version >/dev/null 2>&1; then
		exit 0
	fi
	sleep 0.2
done
echo "start.sh: libvirtd did not answer on qemu:///system within 10 s" >&2
exit 1
