# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The options and return values every step module shares: many instances in one run, and steps
    # that record themselves in the state store.
    DOCUMENTATION = r'''
notes:
  - >-
    One instance or many: give this module's options for one instance (the result is that instance's), or a list of
    them in O(instances) (the result is RV(results), one outcome per instance, in the order given). The module's
    other options are the items' defaults; an item may override any of them.
  - >-
    In a batch, every item is validated before any item runs (a bad item fails the module naming
    C(instances[N]) and the field, and nothing changes); then the items run at most O(concurrency) at a time, and one
    instance's failure never stops the others.
  - >-
    This module is in the action group C(kvmhost.lifecycle.steps): C(module_defaults) for
    C(group/kvmhost.lifecycle.steps) can set O(libvirt_uri), O(state_db), O(instances_path), O(keep_going) and
    O(concurrency) for every step. A step module that has no use for one of the first three accepts and ignores it.
options:
  instances:
    description:
      - A list of instances to run this step for, each a dict of this module's one-instance options.
      - Mutually exclusive with the one-instance key option.
    type: list
    elements: dict
  concurrency:
    description:
      - How many items of O(instances) run at once (1..64). Each runs in its own thread of the module process;
        the waits (guest shutdown, domain start, image fetch, volume probe, commands) overlap.
      - A module whose work must not overlap on one host says so and runs its items one at a time.
    type: int
    default: 16
  keep_going:
    description:
      - With V(false), a batch in which any instance failed fails the task (after every instance was tried), with
        RV(failed_instances) naming each and its cause.
      - With V(true) the task succeeds and each instance's failure is in RV(results) and RV(failed_instances), so a
        role can go on with the others and fail at the end naming every failed instance.
    type: bool
    default: false
  record:
    description:
      - Record this step in the state store (O(state_db)) for each instance, as one event of the run's action.
      - Before an instance's work, the event's start is written (and O(record.task_state) set); after it, the finish
        with its result (C(Success) or C(Error)), a note (what was done, or why it failed) and details, and the
        instance fields the outcome implies (O(record.on_success), O(record.on_error)).
      - An instance whose action in this request already failed at another step is skipped (RV(skipped_instances)),
        so every step of a run can be given all of its instances.
      - Nothing is written in check mode.
    type: dict
    suboptions:
      request_id:
        description: The run's request id (the action's identity with the instance UUID).
        type: str
        required: true
      action:
        description: The action the run is.
        type: str
        required: true
        choices: [create, rebuild, delete, migrate, stop, start, reboot, audit]
      event:
        description: The step's event name (for example V(shutdown_instance), V(spawning)).
        type: str
        required: true
      finish:
        description:
          - Whether a success finishes the event. V(false) for a step made of several modules but the last (the
            event's start is written once, and a failure always finishes it with C(Error)).
        type: bool
        default: true
      task_state:
        description: The task_state the instance is given when the step starts; V(none) clears it.
        type: str
        choices:
          - none
          - scheduling
          - block_device_mapping
          - networking
          - spawning
          - rebuilding
          - rebuild_block_device_mapping
          - rebuild_spawning
          - powering-off
          - powering-on
          - rebooting
          - reboot_started
          - deleting
          - image_snapshot
          - migrating
          - resize_prep
      on_success:
        description: What the instance record becomes when the step succeeded.
        type: dict
        suboptions:
          vm_state:
            description: The new vm_state.
            type: str
            choices:
              - building
              - active
              - stopped
              - paused
              - suspended
              - rescued
              - resized
              - shelved
              - shelved_offloaded
              - soft-delete
              - deleted
              - error
          task_state:
            description: The new task_state; V(none) clears it.
            type: str
            choices:
              - none
              - scheduling
              - block_device_mapping
              - networking
              - spawning
              - rebuilding
              - rebuild_block_device_mapping
              - rebuild_spawning
              - powering-off
              - powering-on
              - rebooting
              - reboot_started
              - deleting
              - image_snapshot
              - migrating
              - resize_prep
          launched_at:
            description: Stamp the launch time now.
            type: bool
            default: false
          finish_action:
            description: The run's action ends with this step.
            type: bool
            default: false
          action_note:
            description: With O(record.on_success.finish_action), the action's closing message.
            type: str
      on_error:
        description: What the instance record becomes when the step failed.
        type: dict
        suboptions:
          vm_state:
            description: The new vm_state (for example V(error)).
            type: str
            choices:
              - building
              - active
              - stopped
              - paused
              - suspended
              - rescued
              - resized
              - shelved
              - shelved_offloaded
              - soft-delete
              - deleted
              - error
          task_state:
            description: The new task_state; V(none) clears it.
            type: str
            choices:
              - none
              - scheduling
              - block_device_mapping
              - networking
              - spawning
              - rebuilding
              - rebuild_block_device_mapping
              - rebuild_spawning
              - powering-off
              - powering-on
              - rebooting
              - reboot_started
              - deleting
              - image_snapshot
              - migrating
              - resize_prep
          finish_action:
            description: The run's action ends with this failure (its message names the step and the cause).
            type: bool
            default: false
      select:
        description:
          - V(running) works on the instances still in the run (none of their other events of this request failed).
          - V(failed) works only on the instances of this request that failed at one of the steps
            O(record.failed_at) (a rollback), and not at this step already.
        type: str
        choices: [running, failed]
        default: running
      failed_at:
        description: With O(record.select=failed), the events whose failure selects an instance.
        type: list
        elements: str
      only:
        description:
          - Record only these instance UUIDs. The other instances of the batch run the step without being recorded
            (for example a boot that only converges an instance that already runs as specified).
        type: list
        elements: str
'''
