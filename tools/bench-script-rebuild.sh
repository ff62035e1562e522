#!/usr/bin/env bash
# The baseline tools/bench compares playbooks/rebuild.yml with: the same rebuild steps by hand, on guests
# that boot.yml booted (and rebuild.yml already rebuilt), one after the other or all at once.
#
#   tools/bench-script-rebuild.sh [options] [--parallel] UUID,PORT_ID,MAC ...
#
# For each instance, as rebuild.yml (and Nova's libvirt driver) does it:
#   wait until the guest has booted (its console.log ends with "kvmhost-demo: boot complete")
#   virsh shutdown, re-sent every --retry-interval, until shut off; virsh destroy after --shutdown-timeout
#   unplug the ovs_hybrid VIF: ovs-vsctl del-port qvo, ip link del qvb (and its peer qvo), ip link del qbr
#   mv the instance directory to <dir>_del, rm -rf it (its libvirt.xml kept aside first)
#   a new directory: qemu-img create -f qcow2 -b <base> -F <format> disk <root_gb>G, kernel and ramdisk copies,
#   the kept libvirt.xml
#   plug the VIF again: bridge qbr (forward delay 0, STP off, IPv6 off), veth qvb/qvo (MTU, promiscuous, up),
#   qvb in qbr, qvo in the OVS bridge with iface-id, iface-status, attached-mac, vm-uuid
#   virsh define libvirt.xml, virsh start, wait until running
# Device names as os-vif derives them: qbr/qvb/qvo + the port id cut to 14 characters. The domain keeps its
# name, UUID and MACs; the firewall (keyed on the tap, which libvirt makes again at the start) is left as is.
# Sequential by default (one instance after the other); --parallel rebuilds each instance in a background
# process of its own and waits for them all. The exit status is 1 if any instance failed.
set -euo pipefail
shopt -s inherit_errexit

uri=qemu:///system
instances_path=/var/lib/kvmhost/instances
base=
base_format=qcow2
root_gb=1
kernel=
ramdisk=
bridge=br-int
mtu=1450
shutdown_timeout=60
retry_interval=10
start_timeout=60
boot_timeout=300
parallel=0
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    cat >&2 <<'EOF'
options: --uri URI --instances-path DIR --base PATH --base-format FMT --root-gb N --kernel PATH --ramdisk PATH
         --bridge BR --mtu N --shutdown-timeout S --retry-interval S --start-timeout S --boot-timeout S --parallel
EOF
    exit 2
}
instances=()
while [ $# -gt 0 ]; do
    case $1 in
        --uri) uri=$2; shift 2 ;;
        --instances-path) instances_path=$2; shift 2 ;;
        --base) base=$2; shift 2 ;;
        --base-format) base_format=$2; shift 2 ;;
        --root-gb) root_gb=$2; shift 2 ;;
        --kernel) kernel=$2; shift 2 ;;
        --ramdisk) ramdisk=$2; shift 2 ;;
        --bridge) bridge=$2; shift 2 ;;
        --mtu) mtu=$2; shift 2 ;;
        --shutdown-timeout) shutdown_timeout=$2; shift 2 ;;
        --retry-interval) retry_interval=$2; shift 2 ;;
        --start-timeout) start_timeout=$2; shift 2 ;;
        --boot-timeout) boot_timeout=$2; shift 2 ;;
        --parallel) parallel=1; shift ;;
        -h|--help) usage ;;
        -*) echo "unknown option $1" >&2; usage ;;
        *) instances+=("$1"); shift ;;
    esac
done
if [ -z "$base" ] || [ ${#instances[@]} -eq 0 ]; then usage; fi
[ -f "$base" ] || { echo "no base image $base" >&2; exit 2; }

keep=$(mktemp -d /tmp/bench-script-rebuild.XXXXXX)
trap 'rm -rf "$keep"' EXIT

us() { echo "${EPOCHREALTIME/[.,]/}"; }       # microseconds (bash 5)
secs() { printf '%d.%01d' $(( $1 / 1000000 )) $(( $1 % 1000000 / 100000 )); }
state() { virsh -q -c "$uri" domstate "$1" 2>/dev/null || echo missing; }

wait_booted() {  # the last kvmhost-demo line of the console log is (or has) "boot complete"
    local log=$1 deadline=$(( $(us) + boot_timeout * 1000000 ))
    until [ -f "$log" ] && [[ $(grep -a 'kvmhost-demo:' "$log" | tail -n 1) == *'kvmhost-demo: boot complete'* ]]; do
        [ "$(us)" -lt "$deadline" ] || { echo "$log: no boot complete after ${boot_timeout}s" >&2; return 1; }
        sleep 0.1
    done
}

shutdown_domain() {  # echoes clean or destroyed
    local uuid=$1 start now last
    start=$(us); last=$start
    [ "$(state "$uuid")" = "shut off" ] && { echo clean; return; }
    virsh -q -c "$uri" shutdown "$uuid" >/dev/null
    while :; do
        [ "$(state "$uuid")" = "shut off" ] && { echo clean; return; }
        now=$(us)
        if [ $(( now - start )) -ge $(( shutdown_timeout * 1000000 )) ]; then
            virsh -q -c "$uri" destroy "$uuid" >/dev/null
            echo destroyed; return
        fi
        if [ $(( now - last )) -ge $(( retry_interval * 1000000 )) ]; then
            virsh -q -c "$uri" shutdown "$uuid" >/dev/null 2>&1 || true
            last=$now
        fi
        sleep 0.1
    done
}

link_exists() { ip link show dev "$1" >/dev/null 2>&1; }

unplug() {  # port id -> the hybrid VIF's devices removed
    local dev=${1:0:11}
    ovs-vsctl --timeout=120 -- --if-exists del-port "$bridge" "qvo$dev"
    if link_exists "qvb$dev"; then ip link del dev "qvb$dev"; fi     # its peer qvo goes with it
    if link_exists "qvo$dev"; then ip link del dev "qvo$dev"; fi
    if link_exists "qbr$dev"; then ip link set dev "qbr$dev" down; ip link del dev "qbr$dev"; fi
}

plug() {  # port id, mac, instance uuid
    local port=$1 mac=$2 uuid=$3 dev=${1:0:11}
    ip link add name "qbr$dev" type bridge forward_delay 0 stp_state 0
    if [ -e "/proc/sys/net/ipv6/conf/qbr$dev/disable_ipv6" ]; then
        echo 1 >"/proc/sys/net/ipv6/conf/qbr$dev/disable_ipv6"
    fi
    ip link set dev "qbr$dev" up
    ip link add name "qvb$dev" mtu "$mtu" type veth peer name "qvo$dev" mtu "$mtu"
    ip link set dev "qvb$dev" promisc on up
    ip link set dev "qvo$dev" promisc on up
    ip link set dev "qvb$dev" master "qbr$dev"
    ovs-vsctl --timeout=120 -- --may-exist add-port "$bridge" "qvo$dev" -- set Interface "qvo$dev" \
        "external_ids:attached-mac=\"$mac\"" "external_ids:iface-id=\"$port\"" \
        'external_ids:iface-status=active' "external_ids:vm-uuid=\"$uuid\""
}

rebuild_one() {  # UUID,PORT_ID,MAC
    local uuid port mac dir t0 t1 how deadline
    IFS=, read -r uuid port mac <<<"$1"
    dir=$instances_path/$uuid
    [ -f "$dir/libvirt.xml" ] || { echo "$uuid: no $dir/libvirt.xml" >&2; return 1; }
    wait_booted "$dir/console.log"
    t0=$(us)
    how=$(shutdown_domain "$uuid")
    t1=$(us)
    unplug "$port"
    cp -p "$dir/libvirt.xml" "$keep/$uuid.xml"
    mv "$dir" "${dir}_del"
    rm -rf "${dir}_del"
    install -d -m 0711 "$dir"
    qemu-img create -q -f qcow2 -b "$base" -F "$base_format" "$dir/disk" "${root_gb}G"
    chmod 0600 "$dir/disk"
    if [ -n "$kernel" ]; then install -m 0600 "$kernel" "$dir/kernel"; fi
    if [ -n "$ramdisk" ]; then install -m 0600 "$ramdisk" "$dir/ramdisk"; fi
    install -m 0600 "$keep/$uuid.xml" "$dir/libvirt.xml"
    plug "$port" "$mac" "$uuid"
    virsh -q -c "$uri" define "$dir/libvirt.xml" >/dev/null
    virsh -q -c "$uri" start "$uuid" >/dev/null
    deadline=$(( $(us) + start_timeout * 1000000 ))
    until [ "$(state "$uuid")" = running ]; do
        [ "$(us)" -lt "$deadline" ] || { echo "$uuid: not running after ${start_timeout}s" >&2; return 1; }
        sleep 0.1
    done
    echo "$uuid: rebuilt in $(secs $(( $(us) - t0 ))) s (shutdown $how in $(secs $(( t1 - t0 ))) s)"
}

rc=0
if [ $parallel = 1 ]; then
    pids=()
    for instance in "${instances[@]}"; do
        rebuild_one "$instance" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || rc=1
    done
else
    for instance in "${instances[@]}"; do
        # One process per instance, so that set -e stops this instance only; run in the background and waited
        # for at once, since a subshell tested with || would run without set -e.
        rebuild_one "$instance" &
        wait $! || rc=1
    done
fi
exit $rc
