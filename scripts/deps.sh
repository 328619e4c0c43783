#!/bin/sh
# Installs the Debian packages fairlease needs, when they are missing:
#   deps.sh runtime   libvirt's library (host agents, --driver test) and qemu-img
#   deps.sh qemu      runtime + libvirtd and QEMU, for real VMs (--driver qemu)
#   deps.sh ci        qemu + what the tests use besides: aria2c (a third-party
#                     BitTorrent client), iproute2 (network namespaces) and
#                     awscli (the stock aws CLI, against the EC2 API)
# As root it installs them; otherwise it names them and fails.
set -eu
level=${1:-runtime}
pkgs="libvirt0 qemu-utils"
case "$level" in
runtime) ;;
qemu) pkgs="$pkgs libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86" ;;
ci) pkgs="$pkgs libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 aria2 iproute2 awscli" ;;
*)
	echo "deps.sh: unknown level $level (runtime, qemu or ci)" >&2
	exit 2
	;;
esac
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "fairlease needs these Debian packages:$missing" >&2
	echo "install them with: sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
