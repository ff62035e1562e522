# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The step tags of boot.yml, rebuild.yml and delete.yml as ansible-playbook sees them (--list-tags,
--list-tasks --tags STEP): cheap, no guest is booted, nothing on the host is read or changed."""

from __future__ import annotations

import functools
import os
import re
import subprocess

import pytest

from kvmhost_testlib import ROOT, VENV_BIN

STEPS = {
    'boot.yml': ['scheduling', 'networking', 'block_device_mapping', 'spawning'],
    'rebuild.yml': ['shutdown_instance', 'unplug_vifs', 'move_instance_dir', 'block_device_mapping', 'create_image',
                    'spawning', 'power_sync', 'update_network_info_cache', 'delete_old_instance_dir',
                    'audit_resources', 'rollback'],
    'delete.yml': ['shutdown_instance', 'delete_instance'],
    'migrate.yml': ['shutdown_instance', 'detach_volumes', 'migrate_disk', 'receive_instance', 'finish_migration',
                    'confirm_migration', 'abort_migration', 'rollback'],
}
TASK_LINE = re.compile(r'^\s+(?P<role>\S+) : (?P<name>.*?)\tTAGS: \[(?P<tags>[^\]]*)\]$')


@functools.lru_cache(maxsize=None)
def ansible_playbook(playbook, *args):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    process = subprocess.run([os.path.join(VENV_BIN, 'ansible-playbook'), os.path.join(ROOT, 'playbooks', playbook)]
                             + list(args), capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False)
    assert process.returncode == 0, process.stdout + process.stderr
    return process.stdout


def listed_tasks(playbook, *args):
    """[(task name, set of tags)] that --list-tasks prints (with the given --tags / --skip-tags)."""
    tasks = []
    for line in ansible_playbook(playbook, '--list-tasks', *args).splitlines():
        match = TASK_LINE.match(line)
        if match:
            tags = set(tag.strip() for tag in match.group('tags').split(',') if tag.strip())
            tasks.append((match.group('name'), tags))
    assert tasks, 'no task listed'
    return tasks


@pytest.mark.parametrize('playbook', sorted(STEPS))
def test_every_step_is_a_tag(playbook):
    output = ansible_playbook(playbook, '--list-tags')
    listed = set(tag.strip() for tag in re.search(r'TASK TAGS: \[([^\]]*)\]', output).group(1).split(','))
    assert set(STEPS[playbook]) | {'always'} == listed


@pytest.mark.parametrize('playbook', sorted(STEPS))
def test_every_task_is_a_step_or_always(playbook):
    for name, tags in listed_tasks(playbook):
        assert tags, 'untagged: %s' % name
        assert tags <= set(STEPS[playbook]) | {'always'}, name


@pytest.mark.parametrize('playbook,step', [(playbook, step) for playbook in sorted(STEPS) for step in STEPS[playbook]])
def test_tags_step_lists_the_step_and_the_always_tasks(playbook, step):
    tasks = listed_tasks(playbook, '--tags', step)
    assert any(step in tags for _name, tags in tasks), 'no task of %s' % step
    for name, tags in tasks:
        assert step in tags or 'always' in tags, name


def test_tags_audit_resources_runs_the_audit_and_only_what_every_run_needs():
    names = [name for name, _tags in listed_tasks('rebuild.yml', '--tags', 'audit_resources')]
    assert names == [
        names[0],  # the role's argument validation, which ansible tags always
        'Start the run',
        'Check every instance spec and the host before anything changes',
        "Audit the compute node's resources",
        'Roll back every instance that failed after its shutdown',
        'Build the step timeline of this run',
        'Show the step timeline',
        'Fail for the instances that were not rebuilt',
    ]
    assert names[0].startswith('Validating arguments against arg spec')


def test_skip_tags_leaves_the_step_out():
    everything = listed_tasks('rebuild.yml')
    skipped = listed_tasks('rebuild.yml', '--skip-tags', 'unplug_vifs')
    assert [task for task in everything if 'unplug_vifs' not in task[1]] == skipped
    assert len(everything) == len(skipped) + 1
