#!/usr/bin/env bash
# The baseline tools/bench compares playbooks/boot.yml with: define and start domains whose instance
# directories (disk, kernel, ramdisk, libvirt.xml) and VIFs boot.yml already made, by hand.
#
#   tools/bench-script-boot.sh [--uri URI] [--instances-path DIR] [--start-timeout S] [--parallel] UUID ...
#
# For each instance: virsh define <instances path>/<uuid>/libvirt.xml, virsh start, wait until running.
# Sequential by default (one process per instance, one after the other); --parallel starts each instance in a
# background process of its own and waits for them all. The exit status is 1 if any instance failed.
set -euo pipefail
shopt -s inherit_errexit

uri=qemu:///system
instances_path=/var/lib/kvmhost/instances
start_timeout=60
parallel=0
uuids=()
while [ $# -gt 0 ]; do
    case $1 in
        --uri) uri=$2; shift 2 ;;
        --instances-path) instances_path=$2; shift 2 ;;
        --start-timeout) start_timeout=$2; shift 2 ;;
        --parallel) parallel=1; shift ;;
        -*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
        *) uuids+=("$1"); shift ;;
    esac
done
[ ${#uuids[@]} -gt 0 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

us() { echo "${EPOCHREALTIME/[.,]/}"; }       # microseconds (bash 5)
secs() { printf '%d.%01d' $(( $1 / 1000000 )) $(( $1 % 1000000 / 100000 )); }
state() { virsh -q -c "$uri" domstate "$1" 2>/dev/null || echo missing; }

boot_one() {
    local uuid=$1 t0 deadline
    t0=$(us)
    virsh -q -c "$uri" define "$instances_path/$uuid/libvirt.xml" >/dev/null
    virsh -q -c "$uri" start "$uuid" >/dev/null
    deadline=$(( $(us) + start_timeout * 1000000 ))
    until [ "$(state "$uuid")" = running ]; do
        [ "$(us)" -lt "$deadline" ] || { echo "$uuid: not running after ${start_timeout}s" >&2; return 1; }
        sleep 0.1
    done
    echo "$uuid: running in $(secs $(( $(us) - t0 ))) s"
}

rc=0
if [ $parallel = 1 ]; then
    pids=()
    for uuid in "${uuids[@]}"; do
        boot_one "$uuid" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || rc=1
    done
else
    for uuid in "${uuids[@]}"; do
        boot_one "$uuid" &    # one process per instance, waited for at once (set -e holds in it)
        wait $! || rc=1
    done
fi
exit $rc
