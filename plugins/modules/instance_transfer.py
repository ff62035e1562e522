#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: instance_transfer
short_description: Carry an instance's directory and history from one KVM host to another, for a cold migration
version_added: 0.2.0
description:
  - The host-side halves of moving a shut-off instance to another host, as Nova's C(migrate_disk_and_power_off) and
    C(finish_migration) do with its disks. The files themselves travel between the two calls (the
    C(kvmhost.lifecycle.instance_migrate) role copies them through the controller).
  - V(exported), on the source, reads the instance and writes nothing - every file of C(<instances_path>/<uuid>)
    with its size and SHA-256, the image-cache bases its overlays stand on, its state store record, network info
    cache and actions. That is RV(manifest). The domain must be shut off.
  - V(receiving), on the destination, makes C(<instances_path>/<uuid>_incoming) empty (with a C(_base) directory for
    the bases the destination's image cache does not hold with the same content) and says which bases must travel
    (RV(needed_bases)) and which are cached here already (RV(cached_bases)).
  - V(imported), on the destination, verifies every file that arrived against the manifest (size, SHA-256) before
    it changes anything, puts the bases that travelled into the image cache, points the overlays at this host's
    cache when the instances paths differ (C(qemu-img rebase -u); the content is the same), renames the incoming
    directory to C(<uuid>) and writes the record (with a local id of this host), the network info and the earlier
    actions into this host's state store, with the run's C(migrate) action and its C(receive_instance) event.
    Importing again in the same run changes nothing. A directory and record left by an unfinished migration of
    the instance (task_state C(migrating), no domain) are replaced; a live instance of the same UUID is refused.
  - V(absent) removes the incoming directory (what a failed migration left on the destination).
author:
  - kvmhost.lifecycle developers (@kvmhost)
requirements:
  - libvirt-python on the managed host
  - qemu-img (qemu-utils) on the managed host
extends_documentation_fragment:
  - kvmhost.lifecycle.instances_path
  - kvmhost.lifecycle.libvirt
  - kvmhost.lifecycle.state_store
  - kvmhost.lifecycle.batch
  - kvmhost.lifecycle.attributes
options:
  uuid:
    description:
      - The instance UUID.
      - Required unless O(instances) is given, whose items each give it.
    type: str
  state:
    description: Which half of the transfer to make.
    type: str
    choices: [exported, receiving, imported, absent]
    default: exported
  manifest:
    description:
      - The RV(manifest) the source's O(state=exported) returned. Required with O(state=receiving) and
        O(state=imported).
    type: dict
  host:
    description: With O(state=imported), this host's name, written into the instance's record.
    type: str
  request_id:
    description: With O(state=imported), the migration's request id, the action the import starts on this host.
    type: str
  after_shutdown:
    description:
      - An earlier step of the same run shuts the domain down. In check mode a domain that still runs is then not a
        reason to refuse O(state=exported); outside check mode a domain that is not shut off is always refused.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Read what the instance is made of (its domain is shut off)
  kvmhost.lifecycle.instance_transfer:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    state: exported
  register: exported

- name: Make the incoming directory on the destination
  kvmhost.lifecycle.instance_transfer:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    state: receiving
    manifest: "{{ exported.manifest }}"
  delegate_to: kvm2

- name: Verify and import what arrived
  kvmhost.lifecycle.instance_transfer:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    state: imported
    manifest: "{{ exported.manifest }}"
    host: kvm2
    request_id: req-3f0c3b52-4d6e-4d55-9a35-0d2b1f1f6a10
  delegate_to: kvm2
'''

RETURN = r'''
manifest:
  description: With O(state=exported), what the instance is made of.
  returned: with state exported
  type: dict
  contains:
    uuid:
      description: The instance UUID.
      type: str
    instances_path:
      description: The source's instances path.
      type: str
    files:
      description: Each file of the instance directory, as C(name), C(size) (bytes) and C(sha256).
      type: list
      elements: dict
    bases:
      description:
        - Each image-cache base the overlays stand on, as C(name), C(size), C(sha256), C(format), C(info) (its
          C(.info) record, or null) and C(used_by) (the overlays on it).
      type: list
      elements: dict
    record:
      description: The state store record's C(name), C(vm_state), C(image), C(flavor), C(launched_at), C(local_id),
        C(host) and C(created_at) on the source.
      type: dict
    network_info:
      description: The network info cache.
      type: list
      elements: dict
    actions:
      description: The instance's actions on the source, each with its C(events).
      type: list
      elements: dict
    bytes:
      description: The bytes the files and the bases make together.
      type: int
incoming:
  description: The incoming directory on the destination.
  returned: with state receiving, imported and absent
  type: str
  sample: /var/lib/kvmhost/instances/1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0_incoming
needed_bases:
  description: With O(state=receiving), the names of the bases that must travel.
  returned: with state receiving
  type: list
  elements: str
cached_bases:
  description: With O(state=receiving), the names of the bases this host's image cache holds with the same content.
  returned: with state receiving
  type: list
  elements: str
path:
  description: With O(state=imported), the instance directory on this host.
  returned: with state imported
  type: str
bases:
  description: With O(state=imported), the bases put into the image cache (they travelled).
  returned: with state imported
  type: list
  elements: str
rebased:
  description: With O(state=imported), the overlays pointed at this host's image cache path.
  returned: with state imported
  type: list
  elements: str
actions:
  description: What was done (or would be in check mode), in order.
  returned: always
  type: list
  elements: str
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
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.instance_transfer import STATES, InstanceTransferDriver

ITEM_SPEC = argument_specs.merged(
    argument_specs.INSTANCES_PATH, argument_specs.LIBVIRT, argument_specs.STATE_STORE,
    uuid=dict(type='str', required=True),
    state=dict(type='str', choices=list(STATES), default='exported'),
    manifest=dict(type='dict'),
    host=dict(type='str'),
    request_id=dict(type='str'),
    after_shutdown=dict(type='bool', default=False),
)


def main():
    run_step_module(InstanceTransferDriver, ITEM_SPEC, 'uuid',
                    required_if=[('state', 'receiving', ('manifest',)), ('state', 'imported', ('manifest', 'host',
                                                                                               'request_id'))])


if __name__ == '__main__':
    main()
