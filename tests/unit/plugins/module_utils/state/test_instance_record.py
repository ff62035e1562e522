# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning writes to the state store: what changes, what does not, and refusals."""

from __future__ import annotations

import os

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.instance_record import (
    RecordDriver, plan_record, read_snapshot)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import LazyStore, StateStore
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt import connection as libvirt_connection

UUID = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'


def params(**overrides):
    base = dict(uuid=UUID, state='present', name=None, vm_state=None, task_state=None, power_state=None,
                image=None, flavor=None, host=None, launched_at=None, network_info=None, action=None, event=None)
    base.update(overrides)
    return base


def action(name='create', request_id='req-1', finished=False, note=None):
    return dict(name=name, request_id=request_id, finished=finished, note=note)


def event(name='spawn', phase='start', result=None, note=None, details=None):
    return dict(name=name, phase=phase, result=result, note=note, details=details)


def run(db_path, now='2026-11-23T10:00:00.000000Z', **overrides):
    """Plan and apply one call; return the plan."""
    args = params(**overrides)
    snapshot = read_snapshot(db_path, UUID, args)
    store = LazyStore(db_path)
    try:
        plan = plan_record(args, snapshot, store, now=now)
        plan.apply()
    finally:
        store.close()
    return plan


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / 'state.sqlite3')


def test_planning_a_new_record_does_not_create_the_store(db_path):
    args = params(name='web-1')
    plan = plan_record(args, read_snapshot(db_path, UUID, args), LazyStore(db_path))
    assert plan.changed
    assert plan.diff()['before'] == {'instance': None}
    assert plan.diff()['after']['instance']['vm_state'] == 'building'
    assert not os.path.exists(db_path)


def test_second_identical_call_changes_nothing(db_path):
    first = run(db_path, name='web-1', vm_state='building', task_state='scheduling', flavor={'vcpus': 1},
                network_info=[{'id': 'p1'}], action=action(), event=event())
    assert first.changed
    second = run(db_path, now='2026-11-23T10:05:00.000000Z', name='web-1', vm_state='building',
                 task_state='scheduling', flavor={'vcpus': 1}, network_info=[{'id': 'p1'}], action=action(),
                 event=event())
    assert not second.changed
    assert second.descriptions == []


def test_update_diff_shows_only_changed_fields(db_path):
    run(db_path, name='web-1', task_state='scheduling')
    plan = run(db_path, task_state='none', vm_state='active', power_state=1)
    assert plan.diff() == {'before': {'instance': {'task_state': 'scheduling', 'vm_state': 'building',
                                                   'power_state': 0}},
                           'after': {'instance': {'task_state': None, 'vm_state': 'active', 'power_state': 1}}}
    with StateStore.open(db_path) as store:
        assert store.get_instance(UUID)['task_state'] is None


def test_launched_at_now_stamps_once(db_path):
    run(db_path, name='web-1', launched_at='now', now='2026-11-23T10:00:00.000000Z')
    plan = run(db_path, launched_at='now', now='2026-11-23T11:00:00.000000Z')
    assert not plan.changed
    plan = run(db_path, launched_at='2026-11-23T12:00:00Z')
    assert plan.changed
    with StateStore.open(db_path) as store:
        assert store.get_instance(UUID)['launched_at'] == '2026-11-23T12:00:00.000000Z'


def test_event_start_then_finish_records_times_and_result(db_path):
    run(db_path, name='web-1', action=action('rebuild'), event=event('shutdown'), now='2026-11-23T10:00:00.000000Z')
    plan = run(db_path, action=action('rebuild'), event=event('shutdown', 'finish', note='Instance destroyed.'),
               now='2026-11-23T10:00:02.000000Z')
    assert plan.descriptions == ['finish event shutdown of action req-1']
    assert not run(db_path, action=action('rebuild'),
                   event=event('shutdown', 'finish', note='Instance destroyed.')).changed
    with StateStore.open(db_path) as store:
        recorded = store.list_actions(UUID)[0]['events'][0]
    assert recorded['start_time'] == '2026-11-23T10:00:00.000000Z'
    assert recorded['finish_time'] == '2026-11-23T10:00:02.000000Z'
    assert (recorded['result'], recorded['message']) == ('Success', 'Instance destroyed.')


def test_event_finished_as_error_after_success_is_a_change(db_path):
    run(db_path, name='web-1', action=action(), event=event('spawn', 'finish'))
    plan = run(db_path, action=action(), event=event('spawn', 'finish', result='error'))
    assert plan.changed
    with StateStore.open(db_path) as store:
        assert store.list_actions(UUID)[0]['events'][0]['result'] == 'Error'


def test_action_finish_and_note(db_path):
    run(db_path, name='web-1', action=action())
    assert run(db_path, action=action(finished=True, note='done')).changed
    assert not run(db_path, action=action(finished=True, note='done')).changed
    with StateStore.open(db_path) as store:
        recorded = store.get_action(UUID, 'req-1')
    assert recorded['finish_time'] and recorded['message'] == 'done'


def test_request_id_of_another_action_kind_is_refused(db_path):
    run(db_path, name='web-1', action=action('create'))
    with pytest.raises(KvmhostError, match='is a create action, not rebuild'):
        run(db_path, action=action('rebuild'))


def test_deleted_and_revived(db_path):
    run(db_path, name='web-1', vm_state='active', task_state='none')
    plan = run(db_path, state='deleted', now='2026-11-23T10:00:00.000000Z')
    assert plan.changed
    assert not run(db_path, state='deleted').changed
    with StateStore.open(db_path) as store:
        record = store.get_instance(UUID)
    assert (record['deleted'], record['vm_state'], record['deleted_at']) == (True, 'deleted',
                                                                             '2026-11-23T10:00:00.000000Z')
    run(db_path, name='web-1', vm_state='building')
    with StateStore.open(db_path) as store:
        record = store.get_instance(UUID)
    assert (record['deleted'], record['local_id']) == (False, 1)


@pytest.mark.parametrize('overrides, message', [
    (dict(uuid='not-a-uuid', name='x'), 'uuid: must be a UUID'),
    (dict(uuid='1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0/../x', name='x'), 'uuid: must be a UUID'),
    (dict(name='a\nb'), 'name: must not contain control characters'),
    (dict(name='x', host='../etc'), 'host: must be'),
    (dict(name='x', launched_at='tomorrow'), 'launched_at: must be an ISO 8601'),
    (dict(name='x', action=action(request_id='req/../1')), 'action.request_id: must be'),
    (dict(name='x', event=event()), 'event: an event belongs to an action'),
    (dict(name='x', action=action(), event=event(result='success')), 'event.result: a result is given'),
    (dict(), 'name: instance .* has no record yet'),
    (dict(state='deleted'), 'uuid: instance .* has no record to mark deleted'),
])
def test_bad_input_is_refused_before_anything_is_written(db_path, overrides, message):
    with pytest.raises(KvmhostError, match=message):
        run(db_path, **overrides)
    assert not os.path.exists(db_path)


class FakeConnection(object):
    """The domain of UUID runs; another domain has the name local id 1 would give."""

    made = []

    def __init__(self, uri):
        self.calls, self.closed = [], False
        FakeConnection.made.append(self)

    @property
    def conn(self):
        return self

    def domain_state(self, uuid):
        self.calls.append('domain_state')
        return {'found': True, 'name': 'instance-00000002', 'id': 1, 'libvirt_state': 'running', 'power_state': 1}

    def listAllDomains(self, _flags):
        self.calls.append('listAllDomains')
        return [FakeDomain('instance-00000001', '5b1f7e0c-2f4e-4c55-8f0c-0d6a3c6c8e11')]

    def close(self):
        self.closed = True


class FakeDomain(object):
    def __init__(self, name, uuid):
        self._name, self._uuid = name, uuid

    def name(self):
        return self._name

    def UUIDString(self):
        return self._uuid


class DriverModule(object):
    def __init__(self, check_mode=False, **overrides):
        self.params = dict(libvirt_uri='test:///default', sync_power_state=False, expect_running=False)
        self.params.update(params(**overrides))
        self.check_mode, self._diff = check_mode, False

    def fail_json(self, msg, **_kwargs):
        raise KvmhostError(msg)


class Driver(RecordDriver):
    connection_class = FakeConnection


def test_the_driver_uses_one_connection_for_the_power_sync_and_the_local_ids_and_closes_it(db_path):
    FakeConnection.made = []
    result = Driver(DriverModule(name='web-1', sync_power_state=True, state_db=db_path)).outcome()
    assert result['instance']['power_state'] == 1 and result['instance']['local_id'] == 2
    assert len(FakeConnection.made) == 1
    assert FakeConnection.made[0].calls == ['domain_state', 'listAllDomains'] and FakeConnection.made[0].closed


def test_the_driver_needs_no_libvirt_when_it_does_not_ask_it(db_path, monkeypatch):
    FakeConnection.made = []
    monkeypatch.setattr(libvirt_connection, 'HAS_LIBVIRT', False)
    assert Driver(DriverModule(check_mode=True, name='web-1', state_db=db_path)).outcome()['changed']
    assert FakeConnection.made == []
    with pytest.raises(KvmhostError, match='libvirt-python'):
        Driver(DriverModule(name='web-1', state_db=db_path)).outcome()  # a new record's local id
