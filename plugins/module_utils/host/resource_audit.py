# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The compute node's resources as Nova's resource tracker sees them (``update_available_resource``).

Figures come from libvirt (host CPUs, memory, hypervisor, CPU model and topology, the domains and
their vCPUs), from ``/proc/meminfo`` (memory in use, as the libvirt driver counts it for QEMU/KVM)
and from the file system of the instances path (disk). ``disk_available_least`` subtracts what the
thin qcow2 disks of the instances may still grow by, as Nova does.
"""

from __future__ import annotations

import json
import os
import socket

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import KNOWN_ERRORS, Plan, describe_error
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.batch import Recorder, check_record
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    check_instances_path, check_token, check_uuid)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import (
    LazyStore, StateStore, utcnow)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.drift import parse_xml
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.driver import LibvirtDriver

GIB = 1024 ** 3
DISK_FILES = ('disk', 'disk.local', 'disk.swap')


def read_meminfo(path='/proc/meminfo'):
    """/proc/meminfo as a dict of KiB values."""
    values = {}
    with open(path) as handle:
        for line in handle:
            name, _sep, rest = line.partition(':')
            fields = rest.split()
            if fields and fields[0].isdigit():
                values[name] = int(fields[0])
    return values


def memory_mb_used(total_mb, meminfo):
    """Nova's libvirt driver for QEMU/KVM: total minus (MemFree + Buffers + Cached)."""
    available_kib = meminfo.get('MemFree', 0) + meminfo.get('Buffers', 0) + meminfo.get('Cached', 0)
    return max(0, total_mb - available_kib // 1024)


def cpu_info(capabilities_xml):
    """Nova's cpu_info: arch, model, vendor, topology and features of the host CPU."""
    cpu = parse_xml(capabilities_xml, field='capabilities').find('host/cpu')
    topology = cpu.find('topology') if cpu is not None else None
    return {
        'arch': cpu.findtext('arch') if cpu is not None else None,
        'model': cpu.findtext('model') if cpu is not None else None,
        'vendor': cpu.findtext('vendor') if cpu is not None else None,
        'topology': dict((key, int(topology.get(key))) for key in ('sockets', 'cores', 'threads')
                         if topology is not None and topology.get(key)),
        'features': sorted(feature.get('name') for feature in cpu.findall('feature')) if cpu is not None else [],
    }


def over_committed_bytes(instances_path, image_info):
    """What the thin disks of the instances may still grow by: virtual size minus allocated size.

    ``image_info(path)`` returns ``qemu-img info`` as a dict. Moved-aside copies count too: their
    disks still hold space until they are committed away.
    """
    total = 0
    for entry in sorted(os.listdir(instances_path)):
        directory = os.path.join(instances_path, entry)
        if entry.startswith('_') or os.path.islink(directory) or not os.path.isdir(directory):
            continue
        for name in DISK_FILES:
            path = os.path.join(directory, name)
            if not os.path.isfile(path):
                continue
            info = image_info(path)
            allocated = os.stat(path).st_blocks * 512
            total += max(0, int(info.get('virtual-size', 0)) - allocated)
    return total


def audit_figures(conn, instances_path, meminfo, image_info, statvfs=os.statvfs):
    """The audit as a dict, from a libvirt connection and the host."""
    info = conn.getInfo()  # [arch, memory MiB, cpus, MHz, nodes, sockets, cores, threads]
    vcpus = info[2]
    # Nova takes the total from libvirt and the use from /proc/meminfo. Where the two disagree (libvirt
    # can report less than the kernel, as on some virtualized hosts) the use would not fit the total:
    # take both from the kernel, and libvirt's figure only when meminfo has none.
    memory_mb = meminfo['MemTotal'] // 1024 if 'MemTotal' in meminfo else info[1]
    domains = conn.listAllDomains(0)
    active = [domain for domain in domains if domain.isActive()]
    vcpus_used = sum(domain.info()[3] for domain in active)
    fs = statvfs(instances_path)
    local_gb = fs.f_frsize * fs.f_blocks // GIB
    free_disk = fs.f_frsize * fs.f_bavail
    local_gb_used = local_gb - free_disk // GIB
    used_memory = memory_mb_used(memory_mb, meminfo)
    return {
        'vcpus': vcpus,
        'vcpus_used': vcpus_used,
        'memory_mb': memory_mb,
        'memory_mb_used': used_memory,
        'free_ram_mb': memory_mb - used_memory,
        'local_gb': local_gb,
        'local_gb_used': local_gb_used,
        'free_disk_gb': free_disk // GIB,
        'disk_available_least': (free_disk - over_committed_bytes(instances_path, image_info)) // GIB,
        'running_vms': len(active),
        'defined_vms': len(domains),
        'hypervisor_type': conn.getType(),
        'hypervisor_version': conn.getVersion(),
        'hypervisor_hostname': conn.getHostname(),
        'libvirt_version': conn.getLibVersion(),
        'cpu_info': cpu_info(conn.getCapabilities()),
    }


# Figures that move on their own between two audits of an idle host; a change in them alone is
# not worth a new audit row, or every run would report a change.
VOLATILE = ('memory_mb_used', 'free_ram_mb', 'local_gb_used', 'free_disk_gb', 'disk_available_least')


def settled(figures):
    return dict((key, value) for key, value in figures.items() if key not in VOLATILE)


class AuditDriver(LibvirtDriver):
    """resource_audit: compute the figures, store them as the host's latest audit when they changed."""

    def run(self):
        """The audit, recorded as an event of each instance in ``record_instances`` when ``record_event`` is given."""
        event = self.params.get('record_event')
        if not event:
            return self.audit()
        recorder = Recorder(self.params['state_db'], check_record(event), self.check_mode)
        uuids = [check_uuid(uuid, 'record_instances') for uuid in self.params.get('record_instances') or []]
        uuids = [uuid for uuid in uuids if recorder.skip_reason(uuid) is None]
        started_at = utcnow()
        for uuid in uuids:
            recorder.start(uuid, started_at)
        try:
            result = self.audit()
        except KNOWN_ERRORS + (KvmhostError,) as exc:
            for uuid in uuids:
                recorder.finish(uuid, False, describe_error(exc) if not isinstance(exc, KvmhostError) else str(exc))
            raise
        for uuid in uuids:
            recorder.finish(uuid, True, result['messages'][0])
        result['recorded_instances'] = uuids
        return result

    def audit(self):
        """The audit itself, stored when its figures changed."""
        instances_path = check_instances_path(self.params['instances_path'])
        host = check_token(self.params['host'] or socket.gethostname(), 'host')
        figures = audit_figures(self.connection.conn, instances_path, read_meminfo(), self._image_info)
        messages = ['Auditing locally available compute resources for %s (node: %s)'
                    % (host, figures['hypervisor_hostname'])]
        store = StateStore.open(self.params['state_db'], readonly=True)
        latest = None
        if store is not None:
            with store:
                latest = store.latest_audit(host)
        previous = latest['data'] if latest else None
        plan = Plan({'audit': previous}, {'audit': figures})
        writable = LazyStore(self.params['state_db'])
        stored = {}
        if self.params['record'] and (previous is None or settled(previous) != settled(figures)
                                      or self.params['always_record']):
            plan.add('record the resource audit of %s' % host,
                     lambda: stored.update(writable().add_audit(host, figures, utcnow())))
        try:
            result = self.finish(plan)
        finally:
            writable.close()
        result.update(resources=figures, host=host, messages=messages,
                      audited_at=stored.get('audited_at') or (latest['audited_at'] if latest else None))
        return result

    def _image_info(self, path):
        rc, out, err = self.module.run_command(['qemu-img', 'info', '-U', '--output=json', path])
        if rc != 0:
            self.module.warn('cannot read %s: %s' % (path, err.strip()))
            return {}
        return json.loads(out)
