#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: instance_record
short_description: Write an instance's record in the host-local state store
version_added: 0.1.0
description:
  - Creates or updates the record of one instance in the host's state store, the way Nova's compute
    manager writes its database while it boots, rebuilds or deletes an instance.
  - Sets C(vm_state), C(task_state), C(power_state), the display name, image, flavor, host and launch time;
    replaces the network info cache; records instance actions (create, rebuild, delete, ...) and the start and
    finish of their events, which are the step timeline of each boot and rebuild.
  - The first record of an instance gets a host-local integer id that never changes and is never reused;
    it names the libvirt domain C(instance-%08x).
  - Only what differs from the store is written, so a second identical run reports no change. Events are
    identified by the instance, the action's request id and the event name.
author:
  - kvmhost.lifecycle developers (@kvmhost)
extends_documentation_fragment:
  - kvmhost.lifecycle.state_store
  - kvmhost.lifecycle.libvirt
  - kvmhost.lifecycle.instances_path
  - kvmhost.lifecycle.batch
  - kvmhost.lifecycle.attributes
options:
  uuid:
    description:
      - The instance UUID, the instance's identity.
      - Required unless O(instances) is given, whose items each give it.
    type: str
  state:
    description:
      - V(present) creates or updates the record.
      - V(deleted) marks the record deleted (vm_state V(deleted), task_state cleared, C(deleted_at) set). The
        record, its actions and its local id are kept, as Nova keeps soft-deleted rows.
    type: str
    choices: [present, deleted]
    default: present
  name:
    description: The display name. Required when the record does not exist yet.
    type: str
  vm_state:
    description: The instance's vm_state. A new record starts as V(building) unless given.
    type: str
    choices: [building, active, stopped, paused, suspended, rescued, resized, shelved, shelved_offloaded,
              soft-delete, deleted, error]
  task_state:
    description: The task in progress; V(none) clears it.
    type: str
    choices: [none, scheduling, block_device_mapping, networking, spawning, rebuilding,
              rebuild_block_device_mapping, rebuild_spawning, powering-off, powering-on, rebooting,
              reboot_started, deleting, image_snapshot, migrating, resize_prep]
  power_state:
    description: Nova's power_state code (0 NOSTATE, 1 RUNNING, 3 PAUSED, 4 SHUTDOWN, 6 CRASHED, 7 SUSPENDED).
    type: int
    choices: [0, 1, 3, 4, 6, 7]
  image:
    description: The image the instance was built from (as in the instance spec).
    type: dict
  flavor:
    description: The flavor (vcpus, memory_mb, root_gb, ephemeral_gb, swap_mb).
    type: dict
  host:
    description: The compute host name recorded on the instance.
    type: str
  launched_at:
    description:
      - When the instance was launched, ISO 8601. V(now) stamps the current time only when the record has
        no launch time yet; an explicit timestamp sets exactly that.
    type: str
  network_info:
    description: The network info cache of the instance, a list of VIF descriptions; replaces the cache.
    type: list
    elements: dict
  sync_power_state:
    description:
      - Nova's power sync after a lifecycle event. The domain found by O(uuid) over O(libvirt_uri) gives the power
        state that is recorded (O(power_state) is then ignored). As a recorded step, the event's note names the
        store's and the hypervisor's power states.
    type: bool
    default: false
  expect_running:
    description: With O(sync_power_state), fail unless the domain runs.
    type: bool
    default: false
  action:
    description: The instance action this call belongs to; created on first mention.
    type: dict
    suboptions:
      name:
        description: What the action does.
        type: str
        required: true
        choices: [create, rebuild, delete, migrate, stop, start, reboot, audit]
      request_id:
        description: The action's request id, unique per instance (for example C(req-<uuid>)).
        type: str
        required: true
      finished:
        description: Mark the action finished (its finish time is set once).
        type: bool
        default: false
      note:
        description: A message on the action, such as the cause of a failure.
        type: str
  event:
    description: An event of O(action), one step of the timeline.
    type: dict
    suboptions:
      name:
        description: The event name, for example C(compute_rebuild_instance) or C(shutdown_instance).
        type: str
        required: true
      phase:
        description: V(start) records the start time; V(finish) the finish time and result.
        type: str
        choices: [start, finish]
        default: start
      result:
        description: The result of a finished event. Defaults to V(success) with O(event.phase=finish).
        type: str
        choices: [success, error]
      note:
        description: What happened, for example C(Instance shutdown successfully after 2 seconds.).
        type: str
      details:
        description: Structured facts of the step (durations, counts) shown by the timeline.
        type: dict
'''

EXAMPLES = r'''
- name: Record a new instance at the start of a boot
  kvmhost.lifecycle.instance_record:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    name: web-1
    vm_state: building
    task_state: scheduling
    flavor: {vcpus: 1, memory_mb: 192, root_gb: 1, ephemeral_gb: 0, swap_mb: 0}
    action: {name: create, request_id: req-8a1c7c9e}

- name: Start the networking step
  kvmhost.lifecycle.instance_record:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    task_state: networking
    action: {name: create, request_id: req-8a1c7c9e}
    event: {name: compute_allocate_networking, phase: start}

- name: The instance runs
  kvmhost.lifecycle.instance_record:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    vm_state: active
    task_state: none
    power_state: 1
    launched_at: now
    action: {name: create, request_id: req-8a1c7c9e, finished: true}
    event: {name: compute_spawn, phase: finish, result: success, note: Instance spawned successfully.}

- name: Mark it deleted
  kvmhost.lifecycle.instance_record:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    state: deleted
'''

RETURN = r'''
instance:
  description: The instance record as stored after the call (as it would be, in check mode).
  returned: always
  type: dict
  contains:
    uuid:
      description: The instance UUID.
      type: str
      sample: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    local_id:
      description: The host-local id (null in check mode for a new record).
      type: int
      sample: 1
    domain_name:
      description: The libvirt domain name, C(instance-%08x) of the local id.
      type: str
      sample: instance-00000001
    name:
      description: The display name.
      type: str
      sample: web-1
    vm_state:
      description: The vm_state.
      type: str
      sample: active
    task_state:
      description: The task_state, or null.
      type: str
      sample: null
    power_state:
      description: Nova's power_state code.
      type: int
      sample: 1
    launched_at:
      description: Launch time (UTC).
      type: str
      sample: '2026-11-23T10:00:00.000000Z'
    deleted:
      description: Whether the record is marked deleted.
      type: bool
      sample: false
network_info:
  description: The network info cache after the call.
  returned: always
  type: list
  elements: dict
actions:
  description: The writes made (or that would be made in check mode).
  returned: always
  type: list
  elements: str
  sample: ['update task_state of instance 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0']
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
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.instance_record import RecordDriver
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import (
    ACTIONS, TASK_STATES, VM_STATES)

ITEM_SPEC = argument_specs.merged(
    argument_specs.STATE_STORE,
    uuid=dict(type='str', required=True),
    state=dict(type='str', choices=['present', 'deleted'], default='present'),
    name=dict(type='str'),
    vm_state=dict(type='str', choices=list(VM_STATES)),
    task_state=dict(type='str', choices=['none'] + list(TASK_STATES)),
    power_state=dict(type='int', choices=[0, 1, 3, 4, 6, 7]),
    image=dict(type='dict'),
    flavor=dict(type='dict'),
    host=dict(type='str'),
    launched_at=dict(type='str'),
    network_info=dict(type='list', elements='dict'),
    sync_power_state=dict(type='bool', default=False),
    expect_running=dict(type='bool', default=False),
    action=dict(type='dict', options=dict(
        name=dict(type='str', required=True, choices=list(ACTIONS)),
        request_id=dict(type='str', required=True),
        finished=dict(type='bool', default=False),
        note=dict(type='str'),
    )),
    event=dict(type='dict', options=dict(
        name=dict(type='str', required=True),
        phase=dict(type='str', choices=['start', 'finish'], default='start'),
        result=dict(type='str', choices=['success', 'error']),
        note=dict(type='str'),
        details=dict(type='dict'),
    )),
)


def main():
    run_step_module(RecordDriver, ITEM_SPEC, 'uuid')


if __name__ == '__main__':
    main()
