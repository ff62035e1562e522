#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: instance_info
short_description: Read instance records from the state store with their live libvirt state
version_added: 0.1.0
description:
  - Reads one instance record (O(uuid)) or all of them from the host-local state store, with the network info
    cache and, on request, the instance actions and their events.
  - With O(live=true), joins each record with the live state of the libvirt domain found by the instance's
    UUID, maps it to Nova's power_state codes, and reports power-state drift the way Nova's power sync
    sees it (C(_sync_instance_power_state)).
  - Never changes anything; a missing store file reads as no instances and is not created.
author:
  - kvmhost.lifecycle developers (@kvmhost)
extends_documentation_fragment:
  - kvmhost.lifecycle.state_store
  - kvmhost.lifecycle.libvirt
  - kvmhost.lifecycle.attributes.INFO_MODULE
options:
  uuid:
    description: The instance to read. All instances when omitted.
    type: str
  include_deleted:
    description: Also return records marked deleted.
    type: bool
    default: false
  with_actions:
    description: Return each instance's actions and their events (the step timeline).
    type: bool
    default: false
  live:
    description: Join with the live libvirt domain state and report power-state drift.
    type: bool
    default: true
  must_exist:
    description: Fail when O(uuid) is given and has no record.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Read one instance with its timeline
  kvmhost.lifecycle.instance_info:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    with_actions: true
  register: web1

- name: Fail when any instance's recorded power state differs from the hypervisor's
  kvmhost.lifecycle.instance_info:
  register: all_instances
  failed_when: all_instances.drifted | length > 0
'''

RETURN = r'''
instances:
  description: The instance records, oldest local id first.
  returned: always
  type: list
  elements: dict
  contains:
    uuid: {description: The instance UUID., type: str, sample: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0}
    local_id: {description: The host-local id., type: int, sample: 1}
    domain_name: {description: The libvirt domain name., type: str, sample: instance-00000001}
    vm_state: {description: The recorded vm_state., type: str, sample: active}
    task_state: {description: The recorded task_state., type: str, sample: null}
    power_state: {description: The recorded power_state., type: int, sample: 1}
    network_info: {description: The network info cache., type: list, sample: []}
    actions:
      description: Actions with their events, when O(with_actions=true).
      type: list
      returned: when O(with_actions=true)
    live:
      description: The live domain (found, name, id, libvirt_state, power_state), when O(live=true).
      type: dict
      returned: when O(live=true)
      sample: {found: true, name: instance-00000001, id: 3, libvirt_state: running, power_state: 1}
    power_sync:
      description:
        - Nova's power-sync verdict, when O(live=true) - C(db_power_state), C(vm_power_state), C(drifted),
          C(action) (none, skip, update_power_state, stop, force_stop) and C(message).
      type: dict
      returned: when O(live=true)
drifted:
  description: UUIDs of the instances whose recorded power_state differs from the hypervisor's.
  returned: always
  type: list
  elements: str
store_exists:
  description: Whether the state store file exists.
  returned: always
  type: bool
'''

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core import argument_specs
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import run_module
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.instance_info import InfoDriver

ARGUMENT_SPEC = argument_specs.merged(
    argument_specs.STATE_STORE, argument_specs.LIBVIRT,
    uuid=dict(type='str'),
    include_deleted=dict(type='bool', default=False),
    with_actions=dict(type='bool', default=False),
    live=dict(type='bool', default=True),
    must_exist=dict(type='bool', default=False),
)


def main():
    run_module(InfoDriver, ARGUMENT_SPEC)


if __name__ == '__main__':
    main()
