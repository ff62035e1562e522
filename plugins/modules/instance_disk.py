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
  - kvmhost.lifecycle.attributes
options:
  uuid:
    description: The instance UUID, the name of its directory.
    type: str
    required: true
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
'''

from ansible_collections.kvmhost.lifecycle.plugins.module_utils import argument_specs
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.base import run_module
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.instance_dirs import InstanceDiskDriver

ARGUMENT_SPEC = argument_specs.merged(
    argument_specs.INSTANCES_PATH, argument_specs.LIBVIRT,
    uuid=dict(type='str', required=True),
    state=dict(type='str', choices=['absent', 'moved', 'restored', 'committed'], default='absent'),
)


def main():
    run_module(InstanceDiskDriver, ARGUMENT_SPEC)


if __name__ == '__main__':
    main()
