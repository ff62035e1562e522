# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving an instance directory aside, back, and deleting it (the instance_disk module).

Nova's ``delete_instance_files`` renames ``<instances>/<uuid>`` to ``<uuid>_del`` (atomic) and
then removes the tree, so an interrupted delete leaves only ``_del`` for the next run. We keep
that, and split it so a rebuild can keep the old directory until the new instance runs:

- ``moved``: ``<uuid>`` -> ``<uuid>_del``
- ``restored``: ``<uuid>_del`` -> ``<uuid>`` (a half-made new ``<uuid>`` is discarded first)
- ``committed``: remove ``<uuid>_del``, keep ``<uuid>``
- ``absent``: remove both, through the rename

Each step is one rename or one tree removal, so a run killed at any point leaves a state the
next run of any of these finishes. Directories of a domain that is not shut off are never
moved or deleted.
"""

from __future__ import annotations

import os
import shutil

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import Plan
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import check_instances_path, check_uuid
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import NOSTATE
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.driver import LibvirtDriver, describe
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.power import SHUTDOWN_STATES

MOVED_SUFFIX = '_del'
DISCARD_SUFFIX = '_discard'


def instance_paths(instances_path, uuid):
    """The instance directory, its moved-aside copy and the name a discarded new copy gets."""
    base = os.path.join(instances_path, uuid)
    return base, base + MOVED_SUFFIX, base + DISCARD_SUFFIX


def _exists(path, field):
    """A real directory (True), nothing (False); a symlink or a file there is refused."""
    if os.path.islink(path):
        raise KvmhostError('%s is a symbolic link; refusing to move or delete through it' % path, field=field)
    if os.path.exists(path) and not os.path.isdir(path):
        raise KvmhostError('%s exists and is not a directory' % path, field=field)
    return os.path.isdir(path)


def plan_instance_dir(state, current, moved, discard, domain_off, resume=False):
    """Pure: the steps (as (description, operation, arguments)) that bring the directories to ``state``.

    ``current``, ``moved``, ``discard`` are the three paths with whether each exists. With ``resume``,
    ``moved`` finding both directories (a run interrupted after its move) discards the half-made new
    one and keeps the old copy aside.
    """
    (cur_path, cur), (mov_path, mov), (dis_path, dis) = current, moved, discard
    steps = []
    if dis:  # left by a restore that was interrupted after discarding the new copy
        steps.append(('remove the discarded copy %s' % dis_path, 'rmtree', (dis_path,)))
    if state == 'absent':
        if cur:
            if mov:
                steps.append(('remove the leftover %s of an interrupted delete' % mov_path, 'rmtree', (mov_path,)))
            steps.append(('move %s to %s' % (cur_path, mov_path), 'rename', (cur_path, mov_path)))
            mov = True
        if mov:
            steps.append(('remove %s' % mov_path, 'rmtree', (mov_path,)))
    elif state == 'moved':
        if cur and mov and resume:
            steps.append(('set the half-made new %s aside as %s' % (cur_path, dis_path), 'rename', (cur_path, dis_path)))
            steps.append(('remove the discarded copy %s' % dis_path, 'rmtree', (dis_path,)))
            cur = False
        if cur and mov:
            raise KvmhostError('both %s and %s exist: an earlier run was interrupted after moving the instance aside; '
                               'use state restored to roll back or committed to keep the new directory'
                               % (cur_path, mov_path), field='state')
        if cur:
            steps.append(('move %s to %s' % (cur_path, mov_path), 'rename', (cur_path, mov_path)))
    elif state == 'restored':
        if mov:
            if cur:
                steps.append(('set the new %s aside as %s' % (cur_path, dis_path), 'rename', (cur_path, dis_path)))
                steps.append(('remove the discarded copy %s' % dis_path, 'rmtree', (dis_path,)))
            steps.append(('move %s back to %s' % (mov_path, cur_path), 'rename', (mov_path, cur_path)))
    elif state == 'committed':
        if mov:
            steps.append(('remove the old copy %s' % mov_path, 'rmtree', (mov_path,)))
    touches_current = any(op == 'rename' and args[0] == cur_path for _d, op, args in steps)
    if touches_current and not domain_off:
        raise KvmhostError('the domain of this instance is not shut off; refusing to move or delete %s while it may '
                           'use its disks' % cur_path, field='uuid')
    return steps


OPERATIONS = {'rename': os.rename, 'rmtree': shutil.rmtree}


class InstanceDiskDriver(LibvirtDriver):
    """instance_disk."""

    def record_note(self, result):
        if result.get('actions'):
            return '; '.join(result['actions'])
        return {'moved': 'already moved to %s' % result['moved_path'], 'committed': 'nothing was left to delete',
                'restored': 'nothing to restore', 'absent': 'nothing to delete'}[self.params['state']]

    def run(self):
        uuid = check_uuid(self.params['uuid'])
        instances_path = check_instances_path(self.params['instances_path'])
        paths = instance_paths(instances_path, uuid)
        exists = [_exists(path, 'instances_path') for path in paths]
        domain = self.connection.domain_by_uuid(uuid)
        power_state = describe(domain)['power_state']
        domain_off = domain is None or power_state in SHUTDOWN_STATES + (NOSTATE,)
        if self.check_mode and self.params.get('after_shutdown'):
            domain_off = True  # the run's shutdown step, predicted to have run
        steps = plan_instance_dir(self.params['state'], *zip(paths, exists), domain_off=domain_off,
                                  resume=self.params['resume'])
        before = {'directory': exists[0], 'moved_aside': exists[1]}
        after = dict(before)
        plan = Plan(before, after)
        for description, operation, arguments in steps:
            plan.add(description, lambda op=operation, args=arguments: OPERATIONS[op](*args))
        state = self.params['state']
        after.update({'absent': {'directory': False, 'moved_aside': False},
                      'moved': {'directory': False, 'moved_aside': exists[0] or exists[1]},
                      'restored': {'directory': exists[0] or exists[1], 'moved_aside': False},
                      'committed': {'moved_aside': False}}[state])
        result = self.finish(plan)
        result.update(path=paths[0], moved_path=paths[1],
                      directory=after['directory'] if self.check_mode else os.path.isdir(paths[0]),
                      moved_aside=after['moved_aside'] if self.check_mode else os.path.isdir(paths[1]))
        return result
