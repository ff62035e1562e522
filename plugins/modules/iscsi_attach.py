#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: iscsi_attach
short_description: Attach or detach an iSCSI volume on a compute host
version_added: 0.1.0
description:
  - Prepares an iSCSI volume of an instance (the volume spec of the instance, see O(volume)) on this host, or
    releases it.
  - Transport V(qemu) (QEMU's own initiator) - nothing logs in on the host. The module checks that the portal answers
    (a TCP connection bounded by O(timeout)), that SendTargets discovery lists the target, and that a login to the
    LUN succeeds with the CHAP credentials (libiscsi's C(iscsi-ls) and C(iscsi-inq), credentials passed in their
    environment, never on a command line). For CHAP it keeps the password in a libvirt secret of usage type iscsi
    (usage C(kvmhost-volume-<volume id>)), so the same volume always gets the same secret UUID, returned in
    RV(volume_secrets) for M(kvmhost.lifecycle.domain_xml). V(detached) removes the secret.
  - Transport V(host) (the kernel initiator with iscsiadm, as os-brick does it) - node record with
    C(node.session.scan=manual), CHAP in the node settings, login unless a session exists, then waiting for
    C(/dev/disk/by-path/ip-<portal>-iscsi-<iqn>-lun-<n>) with rescans; V(detached) flushes and deletes the SCSI
    device, logs out when no other LUN of the session is in use and deletes the node record.
  - With O(domain_uuid), the disk is also hot-plugged into (or out of) that domain, live when it runs and in its
    persistent definition, with the disk XML M(kvmhost.lifecycle.domain_xml) builds. A disk whose serial is the
    volume id counts as attached.
author:
  - kvmhost.lifecycle developers (@kvmhost)
extends_documentation_fragment:
  - kvmhost.lifecycle.libvirt
  - kvmhost.lifecycle.state_store
  - kvmhost.lifecycle.instances_path
  - kvmhost.lifecycle.batch
  - kvmhost.lifecycle.attributes
options:
  volume:
    description:
      - One volume of an instance spec. Mutually exclusive with O(volumes); one of them is required.
    type: dict
    suboptions: &volume_options
      id:
        description: The volume id (normally a UUID), the disk's serial in the guest.
        type: str
        required: true
      device_name:
        description: The disk's target in the guest, C(vdb) to C(vdz).
        type: str
        required: true
      target_portal:
        description: The portal, C(ADDRESS:PORT) with an IP address (IPv6 in brackets).
        type: str
        required: true
      target_iqn:
        description: The target's iSCSI name, C(iqn.YYYY-MM.reversed.domain[:name]) or C(eui.) and 16 hex digits.
        type: str
        required: true
      target_lun:
        description: The LUN (0..16383).
        type: int
        required: true
      transport:
        description: V(host) for the host's kernel initiator, V(qemu) for QEMU's own initiator.
        type: str
        choices: [host, qemu]
        default: host
      auth:
        description: CHAP credentials of the target.
        type: dict
        suboptions:
          method:
            description: The authentication method.
            type: str
            choices: [CHAP]
            default: CHAP
          username:
            description: The CHAP user name.
            type: str
          password:
            description: The CHAP password. Never returned and never on a command line.
            type: str
  state:
    description: Whether the volume should be attached.
    type: str
    choices: [attached, detached]
    default: attached
  volumes:
    description:
      - Every volume of one instance, attached (or detached) in order; the result merges their RV(volume_secrets) and
        RV(host_volume_paths) and holds each volume's result in RV(volumes).
    type: list
    elements: dict
    suboptions: *volume_options
  instance_uuid:
    description:
      - The instance the volumes belong to; the key of an item of O(instances) (a batch has one item per instance).
    type: str
  domain_uuid:
    description: The UUID of a libvirt domain to hot-plug the disk into (or out of).
    type: str
  disk_cache:
    description: The cache mode of the hot-plugged disk, as O(kvmhost.lifecycle.domain_xml#module:disk_cache).
    type: str
    choices: [none, writethrough, writeback, directsync, unsafe]
    default: none
  timeout:
    description: Seconds each check of the portal (connection, discovery, login) may take. Range V(1)..V(3600).
    type: int
    default: 10
  scan_tries:
    description: Transport V(host) - how many rescans to wait for the device, with growing sleeps (os-brick's
      C(num_volume_scan_tries)). Range V(1)..V(20).
    type: int
    default: 5
requirements:
  - libiscsi-bin (C(iscsi-ls), C(iscsi-inq)) for transport V(qemu); open-iscsi (C(iscsiadm)) for transport V(host).
  - lxml.
'''

EXAMPLES = r'''
- name: Attach the volumes of web-1 for QEMU's initiator
  kvmhost.lifecycle.iscsi_attach:
    volume: "{{ item }}"
  loop: "{{ instance.volumes }}"
  register: attached

- name: Build the domain XML with their secrets
  kvmhost.lifecycle.domain_xml:
    instance: "{{ instance }}"
    local_id: 1
    volume_secrets: "{{ attached.results | map(attribute='volume_secrets') | combine }}"
    host_volume_paths: "{{ attached.results | map(attribute='host_volume_paths') | combine }}"

- name: Hot-unplug a volume from a running instance
  kvmhost.lifecycle.iscsi_attach:
    volume: "{{ instance.volumes[0] }}"
    domain_uuid: "{{ instance.uuid }}"
    state: detached
'''

RETURN = r'''
volume_id:
  description: The volume id.
  returned: always
  type: str
transport:
  description: The transport used.
  returned: always
  type: str
source:
  description: Where the disk comes from - protocol, name (IQN/LUN), host, port, username for V(qemu); dev for V(host).
  returned: always
  type: dict
secret_uuid:
  description: The UUID of the libvirt secret holding the CHAP password (transport V(qemu) with CHAP), else null.
  returned: always
  type: str
volume_secrets:
  description: C({volume id - secret UUID}) for O(kvmhost.lifecycle.domain_xml#module:volume_secrets), or empty.
  returned: always
  type: dict
host_volume_paths:
  description: C({volume id - block device}) for O(kvmhost.lifecycle.domain_xml#module:host_volume_paths), or empty.
  returned: always
  type: dict
device_path:
  description: The host's block device of the LUN (transport V(host)), else null.
  returned: always
  type: str
domain_attached:
  description: Whether the domain of O(domain_uuid) has the disk after the call; null without O(domain_uuid).
  returned: always
  type: bool
disk_xml:
  description: The C(<disk>) element for the domain, when attached and known (not in check mode before the secret
    exists).
  returned: always
  type: str
actions:
  description: What was done (or would be done in check mode).
  returned: always
  type: list
  elements: str
volumes:
  description: With O(volumes), each volume's result (the values above), in order; RV(volume_secrets) and
    RV(host_volume_paths) then merge those of every volume.
  returned: when volumes is given
  type: list
  elements: dict
results:
  description:
    - With O(instances), each instance's outcome in the order given, the values above plus the keys below.
      Without O(instances) not returned (the one instance's values are at the top level).
  returned: when instances is given
  type: list
  elements: dict
  contains:
    uuid:
      description: The instance UUID (lower case).
      type: str
    changed:
      description: Whether this instance changed.
      type: bool
    failed:
      description: Whether the step failed for this instance.
      type: bool
    skipped:
      description: Whether this instance was skipped (it left the run at an earlier step, or O(record.only)).
      type: bool
    msg:
      description: Why it failed, or why it was skipped.
      type: str
failed_instances:
  description: With O(instances), each failed instance's UUID and the cause, as a dict.
  returned: when instances is given
  type: dict
succeeded:
  description: With O(instances), the UUIDs the step succeeded for, in order.
  returned: when instances is given
  type: list
  elements: str
skipped_instances:
  description: With O(instances), the UUIDs that were skipped.
  returned: when instances is given
  type: list
  elements: str
'''

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core import argument_specs
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.batch import run_step_module
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.iscsi_attach import VolumesDriver

ITEM_SPEC = argument_specs.merged(
    argument_specs.LIBVIRT,
    volume=dict(type='dict', options=argument_specs.VOLUME),
    volumes=dict(type='list', elements='dict', options=argument_specs.VOLUME),
    instance_uuid=dict(type='str'),
    state=dict(type='str', choices=['attached', 'detached'], default='attached'),
    domain_uuid=dict(type='str'),
    disk_cache=dict(type='str', choices=['none', 'writethrough', 'writeback', 'directsync', 'unsafe'],
                    default='none'),
    timeout=dict(type='int', default=10),
    scan_tries=dict(type='int', default=5),
)


def main():
    run_step_module(VolumesDriver, ITEM_SPEC, 'instance_uuid', required_one_of=[('volume', 'volumes')], mutually_exclusive=[('volume', 'volumes')])


if __name__ == '__main__':
    main()
