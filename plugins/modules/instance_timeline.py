#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: instance_timeline
short_description: Report the step timeline of a boot or rebuild run from the state store
version_added: 0.1.0
description:
  - Builds the step timeline of one run (O(request_id)) from the host-local state store's instance actions
    and their events - for each instance, every step with its start time, duration, offset from the run's start
    and result - so it is the same whoever ran the play.
  - Returns it as a dict and as lines readable in a terminal and, with O(dest_dir), writes it as
    C(<request_id>.json) and a self-contained C(<request_id>.html) (inline CSS, no script or external resource).
  - The HTML page starts with a chart of the whole run - a row per instance, each of its steps a segment on the
    run's one time axis, a step's colour the same in every row, a legend of the step names, failed steps in red
    and marked, each segment's times and result in its tooltip - so how the instances overlapped shows at a
    glance. Then, per instance, a bar per step on the same time scale and a table of the same data.
  - Files are written atomically with mode C(0644), and only when their content differs. The timeline's
    C(generated_at) is the latest time recorded in its actions and events, not the current time, so a rerun
    over the same store content changes nothing.
  - Never writes the state store except to release a run's claims (O(release_claims)); a missing store file reads
    as an empty timeline and is not created.
  - An instance's result is C(Error) when any step failed, C(In progress) while its action or a step has no
    finish time, else C(Success).
author:
  - kvmhost.lifecycle developers (@kvmhost)
extends_documentation_fragment:
  - kvmhost.lifecycle.state_store
  - kvmhost.lifecycle.attributes
attributes:
  check_mode:
    details: In check mode the files are compared, not written.
  diff_mode:
    details: The diff shows each file that changes (before and after content) and each mode change.
options:
  request_id:
    description:
      - The run whose timeline to build, as recorded by M(kvmhost.lifecycle.instance_record) (O(uuids) unset -
        every instance with an action of this request id, deleted ones included).
      - When omitted, each instance's latest action (O(uuids) unset - every instance not deleted). Files can then
        only be written when those actions share one request id.
      - Names the files in O(dest_dir), so it must be 1-255 letters, digits and C(._:@+-) without C(..).
    type: str
  uuids:
    description:
      - Limit the timeline to these instances (deleted ones included). An instance without a record is left out;
        one without a matching action is listed with no steps.
    type: list
    elements: str
  dest_dir:
    description:
      - Directory to write the timeline files to (created with mode C(0755) when missing).
      - When omitted, nothing is written.
    type: path
  formats:
    description: The files to write in O(dest_dir).
    type: list
    elements: str
    choices: [json, html]
    default: [json, html]
  release_claims:
    description:
      - The run's last step - release the claims O(request_id) holds on its instances, taken by
        M(kvmhost.lifecycle.instance_check) with its O(kvmhost.lifecycle.instance_check#module:claim) option, so that
        the next run on the host need not wait for them. Needs O(request_id). Nothing is released in check mode.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Report the timeline of this rebuild and keep it next to the other runs
  kvmhost.lifecycle.instance_timeline:
    request_id: "{{ kvmhost_request_id }}"
    dest_dir: /var/lib/kvmhost/timelines
  register: timeline

- name: Print it
  ansible.builtin.debug:
    msg: "{{ timeline.text }}"

- name: The latest action of one instance, printed only
  kvmhost.lifecycle.instance_timeline:
    uuids: [1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0]
  register: web1_timeline

- name: Fail when a step of the run failed
  kvmhost.lifecycle.instance_timeline:
    request_id: "{{ kvmhost_request_id }}"
  register: run_timeline
  failed_when: run_timeline.timeline.instances | selectattr('result', 'equalto', 'Error') | list | length > 0
'''

RETURN = r'''
timeline:
  description: The timeline. Timestamps are ISO 8601 UTC strings as the state store holds them.
  returned: always
  type: dict
  contains:
    request_id:
      description: The run's request id (O(request_id), or the one request id the selected actions share).
      type: str
      sample: req-8a1c7c9e
    generated_at:
      description: The latest time recorded in the timeline's actions and events (not the current time).
      type: str
      sample: '2026-11-23T14:02:44.312000Z'
    started_at:
      description: The earliest start time of the run's actions and events.
      type: str
      sample: '2026-11-23T14:02:03.100000Z'
    finished_at:
      description: The latest finish time, or null while any action or step is unfinished.
      type: str
      sample: '2026-11-23T14:02:44.312000Z'
    duration_s:
      description: Seconds from RV(timeline.started_at) to RV(timeline.finished_at), one decimal; null while unfinished.
      type: float
      sample: 41.2
    instances:
      description: One entry per instance, sorted by name then UUID.
      type: list
      elements: dict
      contains:
        uuid:
          description: The instance UUID.
          type: str
          sample: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
        name:
          description: The instance's display name.
          type: str
          sample: web-1
        domain_name:
          description: The libvirt domain name.
          type: str
          sample: instance-00000001
        deleted:
          description: Whether the record is marked deleted.
          type: bool
          sample: false
        action:
          description: The action (create, rebuild, and so on); null when no action matched.
          type: str
          sample: rebuild
        request_id:
          description: The action's request id.
          type: str
          sample: req-8a1c7c9e
        start_time:
          description: The action's start time.
          type: str
          sample: '2026-11-23T14:02:03.100000Z'
        finish_time:
          description: The action's finish time; null while unfinished.
          type: str
          sample: '2026-11-23T14:02:44.312000Z'
        duration_s:
          description: The action's duration in seconds (one decimal); null while unfinished.
          type: float
          sample: 41.2
        result:
          description: C(Success), C(Error) (any step failed) or C(In progress); null without an action.
          type: str
          sample: Success
        message:
          description: The action's message, such as the cause of a failure.
          type: str
        events:
          description: The steps, by start time.
          type: list
          elements: dict
          contains:
            name:
              description: The step's event name.
              type: str
              sample: shutdown_instance
            start_time:
              description: The step's start time.
              type: str
              sample: '2026-11-23T14:02:03.100000Z'
            finish_time:
              description: The step's finish time; null while unfinished.
              type: str
              sample: '2026-11-23T14:02:34.500000Z'
            duration_s:
              description: The step's duration in seconds (one decimal); null while unfinished.
              type: float
              sample: 31.4
            offset_s:
              description: Seconds from the run's start to the step's start (one decimal).
              type: float
              sample: 0.0
            result:
              description: C(Success), C(Error) or C(In progress).
              type: str
              sample: Success
            message:
              description: What happened.
              type: str
              sample: Instance destroyed successfully.
            details:
              description: Structured facts of the step.
              type: dict
text:
  description: The timeline as lines readable in a terminal (times UTC), one per instance and one per step.
  returned: always
  type: list
  elements: str
  sample:
    - 'Timeline of request req-8a1c7c9e: 1 instance, started 2026-11-23 14:02:03 UTC, took 41.2 s'
    - instance-00000001 web-1 (1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0) rebuild req-8a1c7c9e Success in 41.2 s
    - '  1. shutdown_instance  14:02:03.1  +0.0 s  31.4 s  Success  Instance destroyed successfully.'
files:
  description:
    - The paths of the timeline's files in O(dest_dir), whether written now (or in check mode would be) or
      already up to date. Empty without O(dest_dir).
  returned: always
  type: list
  elements: str
  sample: [/var/lib/kvmhost/timelines/req-8a1c7c9e.json, /var/lib/kvmhost/timelines/req-8a1c7c9e.html]
actions:
  description: What was (or in check mode would be) done.
  returned: always
  type: list
  elements: str
  sample: ['write the json timeline to /var/lib/kvmhost/timelines/req-8a1c7c9e.json']
store_exists:
  description: Whether the state store file exists.
  returned: always
  type: bool
released:
  description: The instances whose claims of O(request_id) were released.
  returned: when O(release_claims=true)
  type: list
  elements: str
'''

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core import argument_specs
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import run_module
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.instance_timeline import FORMATS, TimelineDriver

ARGUMENT_SPEC = argument_specs.merged(
    argument_specs.STATE_STORE,
    request_id=dict(type='str'),
    uuids=dict(type='list', elements='str'),
    dest_dir=dict(type='path'),
    formats=dict(type='list', elements='str', choices=list(FORMATS), default=list(FORMATS)),
    release_claims=dict(type='bool', default=False),
)


def main():
    run_module(TimelineDriver, ARGUMENT_SPEC)


if __name__ == '__main__':
    main()
