# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every step task of the lifecycle roles carries the name of the event it records as a tag, so that
``--tags audit_resources`` or ``--skip-tags unplug_vifs`` select the steps the timeline names; every other
task is tagged ``always`` (what any run needs: its request id, the check and claims, the report, the rescue).
tests/integration/test_tags.py checks the same through ansible-playbook --list-tasks."""

from __future__ import annotations

import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = ['instance_boot', 'instance_rebuild', 'instance_delete', 'instance_migrate']
EVENT = re.compile(r"""['"]event['"]\s*:\s*['"]([a-z_]+)['"]""")


def task_files(role):
    tasks = os.path.join(ROOT, 'roles', role, 'tasks')
    return [os.path.join(tasks, name) for name in sorted(os.listdir(tasks)) if name.endswith('.yml')]


def walk(tasks, block_vars=None):
    """(task, vars of its enclosing blocks) of every task, blocks' rescue and always sections included."""
    for task in tasks or []:
        scope = dict(block_vars or {}, **(task.get('vars') or {}))
        if 'block' in task:
            for section in ('block', 'rescue', 'always'):
                yield from walk(task.get(section), scope)
        else:
            yield task, scope


def role_tasks(role):
    """Every task of the role's task files, with the vars of its blocks; an included file sees the vars of the
    blocks of main.yml (where its include stands)."""
    found, shared = [], {}
    for path in task_files(role):
        with open(path) as handle:
            for task, scope in walk(yaml.safe_load(handle)):
                found.append((os.path.basename(path), task, scope))
                shared.update(scope)
    return [(name, task, dict(shared, **scope)) for name, task, scope in found]


def recorded_events(task, scope):
    """The event names a task records: a literal 'event' in its record (or resource_audit's record_event), or
    else the event of a block variable its record names (instance_delete_record, instance_rebuild_rollback_record)."""
    module_args = [value for key, value in task.items() if key.startswith('kvmhost.lifecycle.')]
    events = set()
    for args in module_args:
        for option in ('record', 'record_event'):
            text = args.get(option) if isinstance(args, dict) else None
            if text is None:
                continue
            text = text if isinstance(text, str) else yaml.safe_dump(text)
            literal = EVENT.findall(text)  # combine({'event': ...}) overrides the variable's event
            events.update(literal)
            for name, value in scope.items():
                if (not literal and re.search(r'\b%s\b' % re.escape(name), text) and isinstance(value, dict)
                        and value.get('event')):
                    events.add(value['event'])
    return events


def tags_of(task):
    tags = task.get('tags') or []
    return set([tags] if isinstance(tags, str) else tags)


@pytest.mark.parametrize('role', ROLES)
def test_every_recorded_step_is_tagged_with_its_event(role):
    missing, recording = [], 0
    for file_name, task, scope in role_tasks(role):
        events = recorded_events(task, scope)
        recording += bool(events)
        for event in sorted(events - tags_of(task)):
            missing.append('%s: %r records %s but has tags %s'
                           % (file_name, task['name'], event, sorted(tags_of(task))))
    assert not missing, missing
    assert recording >= 5  # the collection reads the real task files


@pytest.mark.parametrize('role', ROLES)
def test_every_task_is_a_step_or_always(role):
    """An untagged task would be skipped by every --tags run: each task is a step's or always."""
    untagged = ['%s: %r' % (file_name, task['name']) for file_name, task, _scope in role_tasks(role)
                if not tags_of(task)]
    assert not untagged, untagged


def test_the_steps_named_in_the_readme_are_tags():
    tags = set()
    for role in ROLES:
        for _file_name, task, _scope in role_tasks(role):
            tags |= tags_of(task)
    assert {'shutdown_instance', 'unplug_vifs', 'move_instance_dir', 'block_device_mapping', 'create_image',
            'spawning', 'power_sync', 'update_network_info_cache', 'delete_old_instance_dir', 'audit_resources',
            'scheduling', 'networking', 'delete_instance', 'rollback', 'always'} <= tags


@pytest.mark.parametrize('role', ['instance_boot', 'instance_rebuild', 'instance_delete'])
def test_the_check_and_the_claims_release_always_run(role):
    """--tags STEP still computes the run's request id, checks and claims, and releases the claims."""
    always = [task['name'] for _file_name, task, _scope in role_tasks(role) if 'always' in tags_of(task)]
    assert 'Start the run' in always
    assert any(name.startswith('Check ') for name in always)
    assert "Release the run's claims after a step that did not finish" in always
    assert 'Build the step timeline of this run' in always
