# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning the renames and removals of instance directories, from every state an interrupted run leaves."""

from __future__ import annotations

import os

import pytest

pytest.importorskip('libvirt')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.instance_disk import (  # noqa: E402
    OPERATIONS, instance_paths, plan_instance_dir)

UUID = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'


def layout(tmp_path, current, moved, discard=False):
    paths = instance_paths(str(tmp_path), UUID)
    for path, wanted in zip(paths, (current, moved, discard)):
        if wanted:
            os.mkdir(path)
            with open(os.path.join(path, 'disk'), 'w') as handle:
                handle.write(os.path.basename(path))
    return paths


def converge(tmp_path, state, domain_off=True):
    """Apply the plan, then plan again: the second plan must be empty (idempotence)."""
    paths = instance_paths(str(tmp_path), UUID)
    for round_number in (1, 2):
        steps = plan_instance_dir(state, *[(path, os.path.isdir(path)) for path in paths], domain_off=domain_off)
        if round_number == 2:
            assert steps == []
        for _description, operation, arguments in steps:
            OPERATIONS[operation](*arguments)
    return [os.path.isdir(path) for path in paths]


def content(path):
    with open(os.path.join(path, 'disk')) as handle:
        return handle.read()


@pytest.mark.parametrize('start', [(True, False), (False, True), (True, True), (False, False), (True, False, True)])
def test_absent_removes_everything_from_any_interrupted_state(tmp_path, start):
    layout(tmp_path, *start)
    assert converge(tmp_path, 'absent') == [False, False, False]


def test_moved_then_restored_brings_the_old_directory_back(tmp_path):
    current, moved, _discard = layout(tmp_path, True, False)
    assert converge(tmp_path, 'moved') == [False, True, False]
    os.mkdir(current)  # the rebuild starts a new directory, then fails
    assert converge(tmp_path, 'restored') == [True, False, False]
    assert content(current) == os.path.basename(current)  # the old disk, not the half-made one


def test_moved_then_committed_keeps_the_new_directory(tmp_path):
    current, _moved, _discard = layout(tmp_path, True, False)
    converge(tmp_path, 'moved')
    os.mkdir(current)
    assert converge(tmp_path, 'committed') == [True, False, False]


def test_moving_again_over_an_interrupted_rebuild_is_refused(tmp_path):
    paths = layout(tmp_path, True, True)
    with pytest.raises(KvmhostError, match='state: both .* exist'):
        plan_instance_dir('moved', (paths[0], True), (paths[1], True), (paths[2], False), domain_off=True)


@pytest.mark.parametrize('state', ['absent', 'moved'])
def test_directory_of_a_running_domain_is_never_moved(tmp_path, state):
    paths = layout(tmp_path, True, False)
    with pytest.raises(KvmhostError, match='uuid: the domain of this instance is not shut off'):
        plan_instance_dir(state, (paths[0], True), (paths[1], False), (paths[2], False), domain_off=False)


def test_restore_over_a_running_new_instance_is_refused(tmp_path):
    paths = layout(tmp_path, True, True)
    with pytest.raises(KvmhostError, match='not shut off'):
        plan_instance_dir('restored', (paths[0], True), (paths[1], True), (paths[2], False), domain_off=False)


def test_committing_while_the_new_domain_runs_is_allowed(tmp_path):
    paths = layout(tmp_path, True, True)
    steps = plan_instance_dir('committed', (paths[0], True), (paths[1], True), (paths[2], False), domain_off=False)
    assert [operation for _d, operation, _a in steps] == ['rmtree']
