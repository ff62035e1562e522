# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Nova's power-state mapping and power-sync decisions (pure functions)."""

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import (
    CRASHED, LIBVIRT_TO_POWER_STATE, NOSTATE, PAUSED, RUNNING, SHUTDOWN, SUSPENDED, domains_by_local_id, power_sync)


def test_libvirt_states_map_as_nova_maps_them():
    # nova/virt/libvirt/guest.py: BLOCKED counts as RUNNING, SHUTOFF as SHUTDOWN, PMSUSPENDED as SUSPENDED.
    assert LIBVIRT_TO_POWER_STATE == {0: NOSTATE, 1: RUNNING, 2: RUNNING, 3: PAUSED, 4: SHUTDOWN, 5: SHUTDOWN,
                                      6: CRASHED, 7: SUSPENDED}


@pytest.mark.parametrize('vm_state, task_state, db_state, vm_power, drifted, verdict', [
    ('active', None, RUNNING, RUNNING, False, 'none'),
    ('active', None, RUNNING, SHUTDOWN, True, 'stop'),
    ('active', None, RUNNING, CRASHED, True, 'stop'),
    ('active', None, RUNNING, PAUSED, True, 'update_power_state'),
    ('active', None, RUNNING, NOSTATE, True, 'update_power_state'),
    ('stopped', None, SHUTDOWN, RUNNING, True, 'force_stop'),
    ('stopped', None, SHUTDOWN, SHUTDOWN, False, 'none'),
    ('active', 'rebuild_spawning', SHUTDOWN, RUNNING, True, 'skip'),
    ('paused', None, PAUSED, SHUTDOWN, True, 'stop'),
])
def test_power_sync_follows_nova(vm_state, task_state, db_state, vm_power, drifted, verdict):
    result = power_sync({'vm_state': vm_state, 'task_state': task_state, 'power_state': db_state}, vm_power)
    assert result['drifted'] is drifted
    assert result['action'] == verdict
    assert result['db_power_state'] == db_state and result['vm_power_state'] == vm_power


def test_missing_domain_of_an_active_instance_is_explained():
    result = power_sync({'vm_state': 'active', 'task_state': None, 'power_state': RUNNING}, NOSTATE)
    assert 'unexpectedly not found' in result['message']


class NamedDomain(object):
    def __init__(self, name, uuid):
        self._name, self._uuid = name, uuid

    def name(self):
        return self._name

    def UUIDString(self):
        return self._uuid


def test_domains_by_local_id_reads_only_the_names_local_ids_give():
    domains = [NamedDomain('instance-0000000a', 'AAAA'), NamedDomain('instance-1', 'bbbb'),
               NamedDomain('web', 'cccc'), NamedDomain('instance-0000000b-x', 'dddd')]
    assert domains_by_local_id(domains) == {10: 'aaaa'}
