#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: instance_disk
short_description: Move an instance directory aside, back, or delete it, as Nova deletes instance files
version_added: 0.1.0
description:
  - Works on the directory C(<instances_path>/<uuid>) of one instance and its moved-aside copy C(<uuid>_del).
  - V(absent) deletes the instance's files the way Nova's C(delete_instance_files) does - an atomic rename to
    C(<uuid>_del), then removal of that tree. A C(_del) left by an interrupted delete is removed on the next run.
  - V(moved) only renames C(<uuid>) to C(<uuid>_del), so a rebuild can keep the old disks until the new instance runs
    (Nova deletes them first). V(restored) renames C(<uuid>_del) back, discarding a half-made new C(<uuid>) first, to
    roll a failed rebuild back. V(committed) removes C(<uuid>_del) once the new instance runs.
  - Each step is one rename or one tree removal, so a run killed at any point leaves a state that the next run
    finishes.
  - Only direct children of O(instances_path) named by the instance UUID are touched; symbolic links there are
    refused. The directory of a domain that is not shut off is never moved or deleted.
author:
  - kvmhost.lifecycle developers (@kvmhost)
extends_documentation_fragment:
  - kvmhost.lifecycle.instances_path
  - kvmhost.lifecycle.libvirt
  - kvmhost.lifecycle.state_store
  - kvmhost.lifecycle.batch
  - kvmhost.lifecycle.attributes
options:
  resume:
    description:
      - With O(state=moved), finding both the directory and its copy moved aside (a run interrupted after its move
        made part of a new directory) discards the half-made new directory and keeps the old copy aside, instead of
        failing. The domain must be shut off.
    type: bool
    default: false
  after_shutdown:
    description:
      - An earlier step of the same run shuts the domain down (a rebuild's M(kvmhost.lifecycle.instance_shutdown)).
        In check mode a domain that still runs is then not a reason to refuse; outside check mode it changes
        nothing, and a domain that is not shut off is always refused.
    type: bool
    default: false
  uuid:
    description:
      - The instance UUID, the name of its directory.
      - Required unless O(instances) is given, whose items each give it.
    type: str
  state:
    description: What should become of the instance directory.
    type: str
    choices: [absent, moved, restored, committed]
    default: absent
'''

EXAMPLES = r'''
- name: Keep the old disks aside while the instance is rebuilt
  kvmhost.lifecycle.instance_disk:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    state: moved

- name: The new instance runs, drop the old disks
  kvmhost.lifecycle.instance_disk:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    state: committed

- name: Delete an instance's files
  kvmhost.lifecycle.instance_disk:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    state: absent
'''

RETURN = r'''
path:
  description: The instance directory.
  returned: always
  type: str
  sample: /var/lib/kvmhost/instances/1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
moved_path:
  description: The moved-aside copy.
  returned: always
  type: str
  sample: /var/lib/kvmhost/instances/1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0_del
directory:
  description: Whether the instance directory exists after the call.
  returned: always
  type: bool
moved_aside:
  description: Whether the moved-aside copy exists after the call.
  returned: always
  type: bool
actions:
  description: The renames and removals made (or that would be made in check mode), in order.
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
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.instance_disk import InstanceDiskDriver

ITEM_SPEC = argument_specs.merged(
    argument_specs.INSTANCES_PATH, argument_specs.LIBVIRT,
    uuid=dict(type='str', required=True),
    state=dict(type='str', choices=['absent', 'moved', 'restored', 'committed'], default='absent'),
    resume=dict(type='bool', default=False),
    after_shutdown=dict(type='bool', default=False),
)


def main():
    run_step_module(InstanceDiskDriver, ITEM_SPEC, 'uuid')


if __name__ == '__main__':
    main()
