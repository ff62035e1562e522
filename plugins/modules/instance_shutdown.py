#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: instance_shutdown
short_description: Shut an instance down gracefully, then destroy it, as Nova's libvirt driver does
version_added: 0.1.0
description:
  - Powers off the libvirt domain of an instance, found by its UUID, with the semantics of Nova's C(power_off)
    (C(_clean_shutdown) then C(_destroy)).
  - An instance already off (SHUTDOWN or CRASHED), or without a domain, is left as it is (no change).
  - Otherwise an ACPI shutdown request is sent; the request is re-sent every O(retry_interval) seconds, and after
    O(shutdown_timeout) seconds the domain is destroyed. V(0) destroys at once.
  - Destroy tolerates a domain that vanished or is already off, waits until libvirt reports it off, and destroys
    again if the domain came back with a new id meanwhile.
  - Unlike Nova, which looks at the guest once a second, the state is checked every 0.1 seconds (the retry countdown
    still counts whole seconds), so a guest that powers off is seen at once.
  - >-
    Nova's log lines (C(Instance shutdown successfully after N seconds.), C(Instance failed to shutdown in N
    seconds.), C(Instance destroyed successfully.)) are returned in RV(messages).
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
      - The instance UUID; its domain is found by this UUID.
      - Required unless O(instances) is given, whose items each give it.
    type: str
'''

EXAMPLES = r'''
- name: Shut web-1 down as Nova would before a rebuild
  kvmhost.lifecycle.instance_shutdown:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    shutdown_timeout: "{{ kvmhost_shutdown_timeout }}"
    retry_interval: "{{ kvmhost_shutdown_retry_interval }}"
  register: shutdown

- name: Shut every instance of the run down together, as the rebuild's first step, recorded in the state store
  kvmhost.lifecycle.instance_shutdown:
    instances:
      - uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
      - uuid: 5b1f7e0c-2f4e-4c55-8f0c-0d6a3c6c8e11
    shutdown_timeout: 60
    keep_going: true
    record: {request_id: req-5c1d, action: rebuild, event: shutdown_instance, task_state: rebuilding}
  register: shutdowns

- name: Pull the plug at once
  kvmhost.lifecycle.instance_shutdown:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    shutdown_timeout: 0
'''

RETURN = r'''
actions:
  description: What was done (or, in check mode, would be done), in order; empty when nothing had to change.
  returned: always
  type: list
  elements: str
found:
  description: Whether the instance has a domain on this host.
  returned: always
  type: bool
defined:
  description: Whether the domain is defined after the call (in check mode, as predicted).
  returned: always
  type: bool
clean:
  description:
    - True when the guest powered off by itself (or was already off); false when it had to be destroyed.
    - Null in check mode when a shutdown would happen.
  returned: always
  type: bool
already_off:
  description: Whether the domain was already off (or missing).
  returned: always
  type: bool
destroyed:
  description: Whether virDomainDestroy was called.
  returned: always
  type: bool
shutdown_requests:
  description: How many ACPI shutdown requests were sent.
  returned: always
  type: int
  sample: 1
seconds:
  description: How long the power-off took.
  returned: always
  type: float
  sample: 2.1
started_at:
  description: When this call began to shut the domain down (ISO 8601, UTC), or null when it had nothing to do.
  returned: always
  type: str
  sample: '2026-11-23T14:30:27.612345Z'
finished_at:
  description: When the domain was off (ISO 8601, UTC), or null when the call had nothing to do.
  returned: always
  type: str
  sample: '2026-11-23T14:30:31.402113Z'
messages:
  description: Nova's log lines for what happened.
  returned: always
  type: list
  elements: str
  sample: ['Instance shutdown successfully after 2 seconds.', 'Instance destroyed successfully.']
power_state:
  description: The Nova power_state code after the call (4 is SHUTDOWN, 0 no domain).
  returned: always
  type: int
  sample: 4
libvirt_state:
  description: The libvirt state name after the call.
  returned: always
  type: str
  sample: shutoff
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
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.instance_shutdown import ShutdownDriver

ITEM_SPEC = argument_specs.merged(
    argument_specs.LIBVIRT, argument_specs.SHUTDOWN,
    uuid=dict(type='str', required=True),
)


def main():
    run_step_module(ShutdownDriver, ITEM_SPEC, 'uuid')


if __name__ == '__main__':
    main()
