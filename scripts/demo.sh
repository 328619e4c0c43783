#!/usr/bin/env bash
# The README's demo: start a whole broker on this machine (fairlease up),
# ask it for a one-click cluster, watch the cluster run and expire.
set -euo pipefail
BIN=${BIN:-bin/fairlease}
DATA=${DATA:-out/demo-data}
LENGTH=${LENGTH:-30s}

rm -rf "$DATA"
mkdir -p "$(dirname "$DATA")"
# Ports 0: the demo must not collide with a broker already running here.
"$BIN" up --data "$DATA" --listen 127.0.0.1:0 --raft 127.0.0.1:0 --ec2-listen 127.0.0.1:0 --hosts 4 >"$DATA.log" 2>&1 &
UP=$!
trap 'kill $UP 2>/dev/null; wait $UP 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	[ -f "$DATA/up.env" ] && break
	kill -0 $UP 2>/dev/null || { cat "$DATA.log"; exit 1; }
	sleep 0.1
done
[ -f "$DATA/up.env" ] || { echo "fairlease up did not start; its log: $DATA.log" >&2; exit 1; }
grep -v '^{' "$DATA.log" || true
# shellcheck disable=SC1091
. "$DATA/up.env"

step() { printf '\n$ %s\n' "$*"; "$@"; }
# The hosts' agents run libvirt's test driver: domains without a guest, so
# any disk will do. (fairlease up --driver qemu boots real VMs: push the
# image of make testimage.)
qemu-img create -q -f qcow2 "$DATA/blank.qcow2" 1G
step "$BIN" image push "$DATA/blank.qcow2" --name blank --public
step "$BIN" lease create --group physics --count 3 --cores 2 --memory 4GiB --image blank --duration "$LENGTH" --wait running
ID=$("$BIN" lease list --output json | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -n 1)
step "$BIN" lease show "$ID"
step "$BIN" host list
# More than is free now: it waits, fairly ordered, and starts when the
# first cluster's cores come back.
step "$BIN" lease create --group biology --count 28 --cores 1 --memory 1GiB --image blank --duration 20m
step "$BIN" share list
printf '\n(waiting %s for the first cluster to expire)\n' "$LENGTH"
sleep "$(( ${LENGTH%s} + 2 ))"
step "$BIN" lease list
step "$BIN" share list

# The same site through the EC2 API, with the stock aws CLI when it is
# installed (Debian: apt-get install awscli).
if [ -x /usr/bin/aws ]; then
	"$BIN" user create eve --group chemistry >/dev/null
	eval "$("$BIN" user keys create --user eve 2>/dev/null)"
	export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_PAGER=""
	aws() { /usr/bin/aws --endpoint-url "$FAIRLEASE_EC2_ENDPOINT" --region fairlease ec2 "$@"; }
	AMI=$(aws describe-images --query 'Images[0].ImageId' --output text)
	step aws run-instances --image-id "$AMI" --count 2:2 --instance-type t3.small \
		--query 'Instances[].[InstanceId,InstanceType,State.Name]' --output table
	sleep 2
	step aws describe-instances --query 'Reservations[].Instances[].[InstanceId,State.Name,PrivateIpAddress]' --output table
fi
