# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many instances in one module run: validation before anything runs, concurrency, per-instance outcomes,
and steps that record themselves in a real SQLite state store."""

from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import ModuleDriver, Plan
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.batch import (
    BATCH, BatchRunner, EachDriver, check_record, step_argument_spec)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import StateStore

A = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
B = '5b1f7e0c-2f4e-4c55-8f0c-0d6a3c6c8e11'
ITEM_SPEC = dict(uuid=dict(type='str', required=True), wait=dict(type='float', default=0.0),
                 fail=dict(type='bool', default=False), secret=dict(type='str', no_log=True))


class FakeModule(object):
    """The AnsibleModule surface the runner uses; params as AnsibleModule would hold them."""

    def __init__(self, check_mode=False, diff=False, **params):
        self.params = dict((name, definition.get('default')) for name, definition in
                           step_argument_spec(ITEM_SPEC).items())
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = diff
        self.no_log_values = set()


class SleepDriver(ModuleDriver):
    """Waits ``wait`` seconds, then changes something (or fails)."""

    running = 0
    peak = 0
    lock = threading.Lock()

    def run(self):
        with SleepDriver.lock:
            SleepDriver.running += 1
            SleepDriver.peak = max(SleepDriver.peak, SleepDriver.running)
        try:
            time.sleep(self.params['wait'])
        finally:
            with SleepDriver.lock:
                SleepDriver.running -= 1
        if self.params['fail']:
            raise KvmhostError('the guest would not go', field='uuid')
        plan = Plan({'done': False}, {'done': True})
        plan.add('do the work for %s' % self.params['uuid'], lambda: None)
        return self.finish(plan, seen=self.params['uuid'])


@pytest.fixture
def store_path(tmp_path):
    path = str(tmp_path / 'state.sqlite3')
    with StateStore.open(path) as store:
        for uuid in (A, B):
            store.save_instance(uuid, {'name': 'i-' + uuid[:4], 'vm_state': 'active'})
    return path


def run(module):
    return BatchRunner(module, SleepDriver, ITEM_SPEC, 'uuid').run()


def test_each_instance_has_its_own_outcome_and_one_failure_stops_no_other():
    result = run(FakeModule(instances=[{'uuid': A.upper()}, {'uuid': B, 'fail': True}]))
    first, second = result['results']
    assert (first['uuid'], first['changed'], first['failed'], first['seen']) == (A, True, False, A.upper())
    assert (second['uuid'], second['failed'], second['changed']) == (B, True, False)
    assert 'the guest would not go' in second['msg']
    assert result['failed_instances'] == {B: second['msg']}
    assert result['succeeded'] == [A] and result['changed'] is True


def test_the_waits_overlap_up_to_the_concurrency_bound():
    SleepDriver.peak = 0
    items = [{'uuid': '%08d-0000-4000-8000-000000000000' % index, 'wait': 0.2} for index in range(6)]
    started = time.monotonic()
    run(FakeModule(instances=items, concurrency=3))
    assert SleepDriver.peak == 3
    assert time.monotonic() - started < 6 * 0.2


def test_a_bad_item_fails_before_any_item_runs():
    SleepDriver.peak = 0
    with pytest.raises(KvmhostError) as failure:
        run(FakeModule(instances=[{'uuid': A, 'wait': 0.1}, {'uuid': B, 'wait': 'soon'}]))
    assert 'instances[1] (%s)' % B in str(failure.value) and 'wait' in str(failure.value)
    assert SleepDriver.peak == 0
    with pytest.raises(KvmhostError, match='twice'):
        run(FakeModule(instances=[{'uuid': A}, {'uuid': A.upper()}]))
    with pytest.raises(KvmhostError, match='concurrency'):
        run(FakeModule(instances=[{'uuid': A}], concurrency=0))


def test_secrets_of_items_are_masked():
    module = FakeModule(instances=[{'uuid': A, 'secret': 's3cr3t-value'}])
    run(module)
    assert 's3cr3t-value' in module.no_log_values


def test_diff_mode_gives_one_diff_per_instance():
    result = run(FakeModule(diff=True, instances=[{'uuid': A}, {'uuid': B}]))
    assert [diff['before_header'] for diff in result['diff']] == [A, B]


def record(**overrides):
    return check_record(dict(dict(request_id='req-1', action='rebuild', event='create_image'), **overrides))


def events(path, uuid, request_id='req-1'):
    with StateStore.open(path) as store:
        action = store.get_action(uuid, request_id)
        (entry,) = [item for item in store.list_actions(uuid) if item['id'] == action['id']]
        return action, dict((event['event'], event) for event in entry['events']), store.get_instance(uuid)


def test_a_step_records_each_instance_start_finish_and_state(store_path):
    rec = record(task_state='rebuild_spawning', on_error={'vm_state': 'error', 'task_state': 'none',
                                                          'finish_action': True})
    run(FakeModule(instances=[{'uuid': A}, {'uuid': B, 'fail': True}], state_db=store_path, record=rec))
    action, by_name, instance = events(store_path, A)
    assert by_name['create_image']['result'] == 'Success'
    assert by_name['create_image']['message'] == 'do the work for %s' % A
    assert instance['task_state'] == 'rebuild_spawning' and action['finish_time'] is None
    action, by_name, instance = events(store_path, B)
    assert by_name['create_image']['result'] == 'Error'
    assert 'the guest would not go' in by_name['create_image']['message']
    assert (instance['vm_state'], instance['task_state']) == ('error', None)
    assert action['finish_time'] is not None and action['message'].startswith('create_image failed')


def test_an_instance_that_failed_earlier_in_the_run_is_skipped(store_path):
    run(FakeModule(instances=[{'uuid': B, 'fail': True}], state_db=store_path, record=record()))
    result = run(FakeModule(instances=[{'uuid': A}, {'uuid': B}], state_db=store_path,
                            record=record(event='spawning')))
    assert result['skipped_instances'] == [B] and result['succeeded'] == [A]
    assert 'stopped at create_image' in result['results'][1]['msg']


def test_a_rollback_selects_only_the_instances_that_failed_at_its_steps(store_path):
    run(FakeModule(instances=[{'uuid': A}, {'uuid': B, 'fail': True}], state_db=store_path, record=record()))
    rollback = record(event='rollback', select='failed', failed_at=['create_image'],
                      on_success={'vm_state': 'active', 'task_state': 'none', 'finish_action': True})
    result = run(FakeModule(instances=[{'uuid': A}, {'uuid': B}], state_db=store_path, record=rollback))
    assert result['skipped_instances'] == [A] and result['succeeded'] == [B]
    action, by_name, instance = events(store_path, B)
    assert by_name['rollback']['result'] == 'Success' and instance['vm_state'] == 'active'


def test_only_records_the_instances_it_names_and_still_runs_the_others(store_path):
    result = run(FakeModule(instances=[{'uuid': A}, {'uuid': B}], state_db=store_path, record=record(only=[A])))
    assert result['succeeded'] == [A, B]
    with StateStore.open(store_path) as store:
        assert store.get_action(B, 'req-1') is None
        assert store.get_action(A, 'req-1') is not None


def test_check_mode_records_nothing(store_path):
    run(FakeModule(check_mode=True, instances=[{'uuid': A}], state_db=store_path, record=record()))
    with StateStore.open(store_path) as store:
        assert store.get_action(A, 'req-1') is None


def test_an_instance_without_a_record_fails_alone(store_path):
    other = '0c0c0c0c-0000-4000-8000-000000000000'
    result = run(FakeModule(instances=[{'uuid': A}, {'uuid': other}], state_db=store_path, record=record()))
    assert result['succeeded'] == [A]
    assert 'never booted here' in result['failed_instances'][other]


def test_an_instance_another_live_run_has_is_refused_and_the_runs_claims_are_kept_alive(store_path):
    with StateStore.open(store_path) as store:
        assert store.claim(B, 'req-other', 'rebuild') is None
        assert store.claim(A, 'req-1', 'rebuild', now='2026-12-02T10:00:00.000000Z') is None
    result = run(FakeModule(instances=[{'uuid': A}, {'uuid': B}], state_db=store_path, record=record()))
    assert result['succeeded'] == [A]
    assert 'is in request req-other (rebuild) of another run on this host' in result['failed_instances'][B]
    with StateStore.open(store_path) as store:
        assert store.get_claim(A)['heartbeat_at'] > '2026-12-02T10:00:00.000000Z'  # the step's heartbeat
        assert store.get_action(B, 'req-1') is None  # nothing recorded for the other run's instance


def test_one_instance_with_today_options_returns_its_own_result():
    result = BatchRunner(FakeModule(uuid=A), SleepDriver, ITEM_SPEC, 'uuid').run()
    assert result['seen'] == A and 'results' not in result


def test_record_options_are_checked():
    with pytest.raises(KvmhostError, match='action'):
        check_record({'request_id': 'r', 'action': 'launch', 'event': 'x'})
    assert set(BATCH) == {'instances', 'concurrency', 'keep_going', 'record'}


def test_each_driver_runs_the_inner_driver_per_element_and_says_what_was_done_before_a_failure():
    class Inner(ModuleDriver):
        def run(self):
            if self.params['thing'] == 'bad':
                raise KvmhostError('bad thing')
            plan = Plan()
            plan.add('made %s' % self.params['thing'], lambda: None)
            return self.finish(plan, made={self.params['thing']: True})

    class Things(EachDriver):
        inner = Inner
        one = 'thing'
        many = 'things'
        merged = ('made',)

    module = FakeModule(things=['a', 'b'])
    result = Things(module).run()
    assert result['actions'] == ['made a', 'made b'] and result['made'] == {'a': True, 'b': True}
    with pytest.raises(KvmhostError) as failure:
        Things(FakeModule(things=['a', 'bad'])).run()
    assert str(failure.value) == 'things[1]: bad thing' and failure.value.applied == ['made a']


def test_each_driver_diff_is_a_mapping_a_callback_can_show():
    class Inner(ModuleDriver):
        def run(self):
            plan = Plan({'made': False}, {'made': True})
            plan.add('made %s' % self.params['thing'], lambda: None)
            return self.finish(plan)

    class Things(EachDriver):
        inner = Inner
        one = 'thing'
        many = 'things'

    result = Things(FakeModule(diff=True, things=['a', 'b'])).run()
    assert result['diff'] == {'before': {'things': [{'made': False}] * 2}, 'after': {'things': [{'made': True}] * 2}}


class Closing(ModuleDriver):
    """Says which items' drivers were opened and closed."""

    opened, closed = [], []

    def open(self):
        Closing.opened.append(self.params.get('uuid') or self.params.get('thing'))

    def run(self):
        if self.params.get('fail') or self.params.get('thing') == 'bad':
            raise KvmhostError('the guest would not go')
        return {'changed': False}

    def close(self):
        Closing.closed.append(self.params.get('uuid') or self.params.get('thing'))


def test_every_driver_the_runner_runs_is_closed_a_failed_one_too():
    Closing.opened, Closing.closed = [], []
    BatchRunner(FakeModule(instances=[{'uuid': A}, {'uuid': B, 'fail': True}]), Closing, ITEM_SPEC, 'uuid').run()
    BatchRunner(FakeModule(uuid=A), Closing, ITEM_SPEC, 'uuid').run()
    assert sorted(Closing.opened) == sorted(Closing.closed) == sorted([A, A, B])

    class Things(EachDriver):
        inner = Closing
        one = 'thing'
        many = 'things'

    Closing.opened, Closing.closed = [], []
    with pytest.raises(KvmhostError):
        Things(FakeModule(things=['a', 'bad', 'c'])).outcome()
    assert Closing.opened == Closing.closed == ['a', 'bad']
