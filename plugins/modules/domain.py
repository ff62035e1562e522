#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: domain
short_description: Define, start, stop or undefine the libvirt domain of an instance
version_added: 0.1.0
description:
  - Manages the libvirt domain of an instance, always found by its UUID, never by name.
  - With O(xml), defines the domain when it does not exist, and redefines it when the defined XML really differs from
    O(xml). Drift ignores what libvirt adds by itself (PCI addresses, controllers, consoles, aliases, the full
    machine type); the wanted XML must be contained in the defined one, and libvirt must not hold more disks,
    interfaces, serial ports or graphics than wanted. A second run with the same XML reports no change.
  - V(running) starts the domain (or resumes it) and waits until libvirt reports it RUNNING.
  - V(stopped) powers it off the way M(kvmhost.lifecycle.instance_shutdown) does.
  - V(absent) powers it off and undefines it, removing its managed save image, snapshot and checkpoint metadata and
    NVRAM.
  - A redefinition of a running domain changes its persistent definition; RV(restart_required) says the running guest
    still has the old one, unless O(restart_on_change) restarts it.
  - In check mode a drifted domain is predicted as a redefinition (with RV(restart_required) where it runs); the diff
    shows the drift found (C(drift) before, none after) and the state changes, not the XML texts.
author:
  - kvmhost.lifecycle developers (@kvmhost)
extends_documentation_fragment:
  - kvmhost.lifecycle.libvirt
  - kvmhost.lifecycle.shutdown
  - kvmhost.lifecycle.state_store
  - kvmhost.lifecycle.instances_path
  - kvmhost.lifecycle.batch
  - kvmhost.lifecycle.attributes
options:
  uuid:
    description:
      - The instance UUID. It must be the C(<uuid>) of O(xml).
      - Required unless O(instances) is given, whose items each give it.
    type: str
  xml:
    description:
      - The wanted domain XML, for example from M(kvmhost.lifecycle.domain_xml). Required (or O(xml_file)) to define
        a domain that does not exist yet.
    type: str
  xml_file:
    description:
      - A file holding the wanted domain XML, for example the C(libvirt.xml) that the roles keep in each instance
        directory (a rebuild's rollback defines the old domain from it). Mutually exclusive with O(xml).
    type: path
  state:
    description: What the domain should be.
    type: str
    choices: [running, stopped, absent]
    default: running
  wait_timeout:
    description: Seconds to wait for the domain to reach RUNNING after it starts. Range V(1)..V(3600).
    type: int
    default: 60
  restart_on_change:
    description: Restart a running domain (graceful shutdown, then start) when its definition changed.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Build the XML of web-1
  kvmhost.lifecycle.domain_xml:
    instance: "{{ instance }}"
    local_id: "{{ record.instance.local_id }}"
    virt_type: qemu
  register: built

- name: Define and start it
  kvmhost.lifecycle.domain:
    uuid: "{{ instance.uuid }}"
    xml: "{{ built.xml }}"
    state: running

- name: Remove it
  kvmhost.lifecycle.domain:
    uuid: "{{ instance.uuid }}"
    state: absent
    shutdown_timeout: 30
'''

RETURN = r'''
actions:
  description: What was done (or, in check mode, would be done), in order; empty when nothing had to change.
  returned: always
  type: list
  elements: str
uuid:
  description: The domain UUID.
  returned: always
  type: str
name:
  description: The domain name, or null when the domain does not exist.
  returned: always
  type: str
  sample: instance-00000001
defined:
  description: Whether the domain is defined after the call.
  returned: always
  type: bool
libvirt_state:
  description: The libvirt state name after the call (running, shutoff, ...), or null.
  returned: always
  type: str
  sample: running
power_state:
  description: The Nova power_state code after the call (1 RUNNING, 4 SHUTDOWN, 0 no domain).
  returned: always
  type: int
  sample: 1
drift:
  description: Where the defined XML differed from O(xml) (empty when they match).
  returned: always
  type: list
  elements: str
  sample: ["/domain/devices/interface[2]: missing"]
restart_required:
  description: Whether the running guest still runs an older definition.
  returned: always
  type: bool
power_off:
  description: What a power-off did (clean, destroyed, shutdown_requests, seconds, messages), when one happened.
  returned: when the domain was powered off
  type: dict
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
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain import DomainDriver

ITEM_SPEC = argument_specs.merged(
    argument_specs.LIBVIRT, argument_specs.SHUTDOWN,
    uuid=dict(type='str', required=True),
    xml=dict(type='str'),
    xml_file=dict(type='path'),
    state=dict(type='str', choices=['running', 'stopped', 'absent'], default='running'),
    wait_timeout=dict(type='int', default=60),
    restart_on_change=dict(type='bool', default=False),
)


def main():
    run_step_module(DomainDriver, ITEM_SPEC, 'uuid', mutually_exclusive=[('xml', 'xml_file')])


if __name__ == '__main__':
    main()
