#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: resource_audit
short_description: Audit a KVM host's compute resources as Nova's resource tracker does
version_added: 0.1.0
description:
  - Computes the figures of Nova's C(update_available_resource) for this host - vCPUs and vCPUs used by running
    domains, memory and memory in use (total minus free, buffers and cache, as the libvirt driver counts it), local
    disk of the instances path and its use, free figures, C(disk_available_least) (free disk minus what thin qcow2
    disks may still grow by), running domains, hypervisor type, version and host name, and the host CPU's
    architecture, model, vendor, topology and features.
  - Stores them in the state store as the host's latest audit and returns them.
  - A new audit row is written when the figures differ from the latest audit in more than the ones that move on an
    idle host (memory and disk in use), so a second run on an unchanged host reports no change. O(always_record)
    writes every audit.
requirements:
  - qemu-img (qemu-utils) on the managed host, for the disks' allocation (C(qemu-img info -U)).
author:
  - kvmhost.lifecycle developers (@kvmhost)
extends_documentation_fragment:
  - kvmhost.lifecycle.state_store
  - kvmhost.lifecycle.libvirt
  - kvmhost.lifecycle.instances_path
  - kvmhost.lifecycle.attributes
options:
  host:
    description: The compute host name the audit is recorded under. Defaults to this machine's host name.
    type: str
  record:
    description: Store the audit in the state store. V(false) only computes and returns it.
    type: bool
    default: true
  always_record:
    description: Write a new audit row even when the figures match the latest audit.
    type: bool
    default: false
  record_event:
    description:
      - Record the audit as an event of each instance in O(record_instances) that is still in the run, the way the
        step modules' C(record) option does (same keys, see M(kvmhost.lifecycle.instance_shutdown)), with the audit's
        log line as its note. A rebuild's last step.
    type: dict
  record_instances:
    description: The instance UUIDs O(record_event) is recorded on.
    type: list
    elements: str
    default: []
'''

EXAMPLES = r'''
- name: Audit the host after a rebuild
  kvmhost.lifecycle.resource_audit:
    host: "{{ inventory_hostname }}"
  register: audit

- name: Show what is left
  ansible.builtin.debug:
    msg: "{{ audit.resources.free_ram_mb }} MiB and {{ audit.resources.vcpus - audit.resources.vcpus_used }} vCPUs free"
'''

RETURN = r'''
actions:
  description: What was done (or, in check mode, would be done), in order; empty when nothing had to change.
  returned: always
  type: list
  elements: str
resources:
  description: The figures of the audit.
  returned: always
  type: dict
  contains:
    vcpus: {description: Host CPUs., type: int, sample: 2}
    vcpus_used: {description: vCPUs of the running domains., type: int, sample: 1}
    memory_mb: {description: Host memory in MiB., type: int, sample: 5082}
    memory_mb_used: {description: Memory in use in MiB., type: int, sample: 1200}
    free_ram_mb: {description: Memory not in use in MiB., type: int, sample: 3882}
    local_gb: {description: Size of the instances path's file system in GiB., type: int, sample: 251}
    local_gb_used: {description: GiB used on it., type: int, sample: 30}
    free_disk_gb: {description: GiB free on it., type: int, sample: 221}
    disk_available_least: {description: Free GiB minus what thin disks may still grow by., type: int, sample: 219}
    running_vms: {description: Running domains., type: int, sample: 1}
    defined_vms: {description: Defined domains (running or not)., type: int, sample: 2}
    hypervisor_type: {description: The libvirt driver type., type: str, sample: QEMU}
    hypervisor_version: {description: The hypervisor version as libvirt encodes it., type: int, sample: 7002022}
    hypervisor_hostname: {description: The host name libvirt reports., type: str, sample: kvm1}
    libvirt_version: {description: The libvirt version as libvirt encodes it., type: int, sample: 9000000}
    cpu_info:
      description: The host CPU (arch, model, vendor, topology, features).
      type: dict
host:
  description: The host name the audit is recorded under.
  returned: always
  type: str
audited_at:
  description: When the stored audit with these figures was recorded (null when none is stored).
  returned: always
  type: str
messages:
  description: Nova's log line for the audit.
  returned: always
  type: list
  elements: str
  sample: ['Auditing locally available compute resources for kvm1 (node: kvm1)']
recorded_instances:
  description: With O(record_event), the instances the audit was recorded on (those still in the run).
  returned: when record_event is given
  type: list
  elements: str
'''

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core import argument_specs
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import run_module
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.host.resource_audit import AuditDriver

ARGUMENT_SPEC = argument_specs.merged(
    argument_specs.STATE_STORE, argument_specs.LIBVIRT, argument_specs.INSTANCES_PATH,
    host=dict(type='str'),
    record=dict(type='bool', default=True),
    always_record=dict(type='bool', default=False),
    record_event=dict(type='dict'),
    record_instances=dict(type='list', elements='str', default=[]),
)


def main():
    run_module(AuditDriver, ARGUMENT_SPEC)


if __name__ == '__main__':
    main()
