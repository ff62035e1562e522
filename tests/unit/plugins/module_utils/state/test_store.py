# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state store against real SQLite files in a temporary directory."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import (
    APPLICATION_ID, SCHEMA_VERSION, StateStore, domain_name, parse_timestamp)

UUID_A = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
UUID_B = '2f1f7fea-78fe-4c75-a9e7-8cef5f7f5fb1'


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / 'state.sqlite3')


def test_new_store_is_created_private_in_wal_mode_with_schema(db_path):
    with StateStore.open(db_path) as store:
        assert store.schema_version() == SCHEMA_VERSION
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600
    conn = sqlite3.connect(db_path)
    assert conn.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
    assert conn.execute('PRAGMA application_id').fetchone()[0] == APPLICATION_ID
    conn.close()


def test_readonly_open_of_missing_file_creates_nothing(db_path):
    assert StateStore.open(db_path, readonly=True) is None
    assert not os.path.exists(db_path)


def test_local_ids_are_sequential_and_never_reused(db_path):
    with StateStore.open(db_path) as store:
        first = store.save_instance(UUID_A, {'name': 'a'})
        second = store.save_instance(UUID_B, {'name': 'b'})
        assert (first['local_id'], second['local_id']) == (1, 2)
        assert first['domain_name'] == 'instance-00000001'
        # Even with the newest row gone, its id is not handed out again (AUTOINCREMENT).
        store._conn.execute('DELETE FROM instances WHERE uuid = ?', (UUID_B,))
        third = store.save_instance('3a2a8a0b-89af-4d86-b0f8-9d0a6a8a6ac2', {'name': 'c'})
        assert third['local_id'] == 3


def test_a_new_record_skips_the_taken_local_ids(db_path):
    with StateStore.open(db_path) as store:
        assert store.save_instance('u-1', {'name': 'a'})['local_id'] == 1
        # ids 2 and 3 name domains other domains of the host have: the next record gets 4, and the one after 5
        assert store.save_instance('u-2', {'name': 'b'}, taken_local_ids=frozenset([2, 3]))['local_id'] == 4
        assert store.save_instance('u-3', {'name': 'c'}, taken_local_ids=frozenset([2]))['local_id'] == 5
        assert store.save_instance('u-2', {'name': 'b2'}, taken_local_ids=frozenset([4]))['local_id'] == 4
        assert store.next_local_id() == 6


def test_update_touches_only_given_fields(db_path):
    with StateStore.open(db_path) as store:
        created = store.save_instance(UUID_A, {'name': 'web-1', 'flavor': {'vcpus': 1}}, now='2026-01-01T00:00:00Z')
        assert created['vm_state'] == 'building'
        updated = store.save_instance(UUID_A, {'vm_state': 'active', 'power_state': 1}, now='2026-01-02T00:00:00Z')
        assert updated['name'] == 'web-1'
        assert updated['flavor'] == {'vcpus': 1}
        assert updated['created_at'] == '2026-01-01T00:00:00Z'
        assert updated['updated_at'] == '2026-01-02T00:00:00Z'
        with pytest.raises(KvmhostError, match='unknown instance field'):
            store.save_instance(UUID_A, {'local_id': 9})


def test_actions_and_events_are_keyed_by_request_and_name(db_path):
    with StateStore.open(db_path) as store:
        store.save_instance(UUID_A, {'name': 'web-1'})
        action = store.save_action(UUID_A, 'req-1', action='rebuild', start_time='2026-01-01T00:00:00Z')
        again = store.save_action(UUID_A, 'req-1', action='rebuild')
        assert again['id'] == action['id']
        store.save_event(action['id'], 'shutdown', start_time='2026-01-01T00:00:01Z')
        store.save_event(action['id'], 'shutdown', finish_time='2026-01-01T00:00:03Z', result='Success',
                         message='Instance shutdown successfully after 2 seconds.', details={'seconds': 2})
        events = store.list_actions(UUID_A)[0]['events']
        assert len(events) == 1
        assert events[0]['start_time'] == '2026-01-01T00:00:01Z'
        assert events[0]['result'] == 'Success'
        assert events[0]['details'] == {'seconds': 2}


def test_network_info_and_audits_round_trip(db_path):
    with StateStore.open(db_path) as store:
        store.save_instance(UUID_A, {'name': 'web-1'})
        store.set_network_info(UUID_A, [{'id': 'port', 'address': 'fa:16:3e:00:00:01'}])
        store.set_network_info(UUID_A, [{'id': 'port', 'address': 'fa:16:3e:00:00:02'}])
        assert store.get_network_info(UUID_A) == [{'id': 'port', 'address': 'fa:16:3e:00:00:02'}]
        store.add_audit('host1', {'vcpus': 2}, now='2026-01-01T00:00:00Z')
        store.add_audit('host1', {'vcpus': 4}, now='2026-01-02T00:00:00Z')
        assert store.latest_audit('host1')['data'] == {'vcpus': 4}
        assert store.latest_audit('other') is None


def test_failed_transaction_rolls_back(db_path):
    with StateStore.open(db_path) as store:
        with pytest.raises(RuntimeError):
            with store.transaction() as conn:
                conn.execute("INSERT INTO instances (uuid, vm_state, created_at, updated_at) "
                             "VALUES (?, 'building', 'x', 'x')", (UUID_A,))
                raise RuntimeError('boom')
        assert store.get_instance(UUID_A) is None


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(KvmhostError, match='state_db: directory .*/nope does not exist'):
        StateStore.open(str(tmp_path / 'nope' / 'state.sqlite3'))


def test_relative_path_is_refused():
    with pytest.raises(KvmhostError, match='must be an absolute path'):
        StateStore.open('state.sqlite3')


def test_unwritable_directory_is_named(tmp_path, monkeypatch):
    # Root may write anywhere, so the permission check itself is what must refuse.
    monkeypatch.setattr(os, 'access', lambda path, mode: False)
    with pytest.raises(KvmhostError, match='is not writable'):
        StateStore.open(str(tmp_path / 'state.sqlite3'))
    assert not os.path.exists(str(tmp_path / 'state.sqlite3'))


def test_corrupted_file_is_reported_and_left_alone(db_path):
    garbage = b'this is not a database' * 100
    with open(db_path, 'wb') as handle:
        handle.write(garbage)
    with pytest.raises(KvmhostError, match='not a usable SQLite state store'):
        StateStore.open(db_path)
    with pytest.raises(KvmhostError, match='not a usable SQLite state store'):
        StateStore.open(db_path, readonly=True)
    with open(db_path, 'rb') as handle:
        assert handle.read() == garbage


def test_foreign_sqlite_database_is_refused(db_path):
    conn = sqlite3.connect(db_path)
    conn.execute('CREATE TABLE other (x)')
    conn.commit()
    conn.close()
    with pytest.raises(KvmhostError, match='some other program'):
        StateStore.open(db_path)


def test_newer_schema_is_refused(db_path):
    StateStore.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute('PRAGMA user_version = %d' % (SCHEMA_VERSION + 1))
    conn.close()
    with pytest.raises(KvmhostError, match='newer than this collection knows'):
        StateStore.open(db_path)


def test_domain_name_and_timestamps():
    assert domain_name(0x2a) == 'instance-0000002a'
    assert parse_timestamp('2026-11-23T10:00:00+01:00', 'f') == '2026-11-23T09:00:00.000000Z'
    assert parse_timestamp('2026-11-23T10:00:00Z', 'f') == '2026-11-23T10:00:00.000000Z'
    with pytest.raises(KvmhostError, match='launched_at: must be an ISO 8601 timestamp'):
        parse_timestamp('yesterday', 'launched_at')


def test_readonly_open_of_a_file_not_yet_migrated_reads_as_empty(db_path):
    # A writer creates the file before it takes the lock to migrate: a reader in between sees no schema.
    os.close(os.open(db_path, os.O_CREAT | os.O_WRONLY, 0o600))
    assert StateStore.open(db_path, readonly=True) is None


def test_claims_keep_two_runs_apart_and_a_dead_runs_claim_is_taken_over(db_path):
    with StateStore.open(db_path) as store:
        assert store.claim('u-1', 'req-a', 'rebuild', now='2026-12-02T10:00:00.000000Z') is None
        assert store.claim('u-1', 'req-a', 'rebuild', now='2026-12-02T10:00:05.000000Z') is None  # ours: refreshed
        held = store.claim('u-1', 'req-b', 'boot', now='2026-12-02T10:00:30.000000Z')
        assert (held['request_id'], held['action']) == ('req-a', 'rebuild')
        assert held['claimed_at'] == '2026-12-02T10:00:00.000000Z'
        store.heartbeat('req-a', ['u-1'], now='2026-12-02T10:00:50.000000Z')
        assert store.claim('u-1', 'req-b', 'boot', now='2026-12-02T10:01:45.000000Z')['request_id'] == 'req-a'
        # Silent for more than 60 seconds: a dead run (killed ansible-playbook); the claim is taken over.
        assert store.claim('u-1', 'req-b', 'boot', now='2026-12-02T10:01:51.000000Z') is None
        assert store.get_claim('u-1')['request_id'] == 'req-b'
        assert store.release('req-a') == []
        assert store.release('req-b') == ['u-1'] and store.get_claim('u-1') is None


def test_a_dead_runs_action_ends_interrupted_when_its_claim_is_taken_over(db_path):
    with StateStore.open(db_path) as store:
        store.save_instance('u-1', {'name': 'vm', 'vm_state': 'active'})
        store.claim('u-1', 'req-a', 'rebuild', now='2026-12-02T10:00:00.000000Z')
        action = store.save_action('u-1', 'req-a', action='rebuild', start_time='2026-12-02T10:00:00.000000Z')
        store.save_event(action['id'], 'shutdown_instance', start_time='2026-12-02T10:00:01.000000Z',
                         finish_time='2026-12-02T10:00:02.000000Z', result='Success')
        store.save_event(action['id'], 'create_image', start_time='2026-12-02T10:00:03.000000Z')
        older = store.save_action('u-1', 'req-0', action='boot', start_time='2026-12-01T10:00:00.000000Z',
                                  finish_time='2026-12-01T10:01:00.000000Z')
        # Still alive (20 s): refused, and nothing of req-a changes.
        assert store.claim('u-1', 'req-b', 'rebuild', now='2026-12-02T10:00:20.000000Z')['request_id'] == 'req-a'
        assert store.get_action('u-1', 'req-a')['finish_time'] is None
        # Dead: taken over; req-a's action and its open event end, interrupted; finished ones stay as they were.
        assert store.claim('u-1', 'req-b', 'rebuild', now='2026-12-02T10:01:30.000000Z') is None
        ended = store.get_action('u-1', 'req-a')
        assert ended['finish_time'] == '2026-12-02T10:01:30.000000Z'
        assert ended['message'].startswith('interrupted:') and 'req-b' in ended['message']
        events = dict((event['event'], event) for event in store.list_actions('u-1')[1]['events'])
        assert events['shutdown_instance']['result'] == 'Success'
        assert events['shutdown_instance']['finish_time'] == '2026-12-02T10:00:02.000000Z'
        assert (events['create_image']['result'], events['create_image']['finish_time']) == (
            'Error', '2026-12-02T10:01:30.000000Z')
        assert store.get_action('u-1', 'req-0') == older


def test_a_claim_lives_as_long_as_its_run_said_it_may_be_silent(db_path):
    with StateStore.open(db_path) as store:
        assert store.claim('u-1', 'req-a', 'rebuild', now='2026-12-02T10:00:00.000000Z', stale_after=300) is None
        assert store.get_claim('u-1')['stale_after'] == 300
        # Silent for 120 s (its host waits for another host's long step): still the run's.
        held = store.claim('u-1', 'req-b', 'rebuild', now='2026-12-02T10:02:00.000000Z')
        assert held['request_id'] == 'req-a'
        assert store.other_run_claim('u-1', 'req-b', now='2026-12-02T10:05:00.000000Z')['request_id'] == 'req-a'
        # Silent for longer than it said: a dead run's, taken over with the new run's own lifetime.
        assert store.claim('u-1', 'req-b', 'rebuild', now='2026-12-02T10:05:01.000000Z') is None
        assert (store.get_claim('u-1')['request_id'], store.get_claim('u-1')['stale_after']) == ('req-b', 60)


def test_claims_of_a_schema_2_store_keep_the_old_lifetime(db_path):
    with StateStore.open(db_path) as store:
        store.claim('u-1', 'req-a', 'rebuild', now='2026-12-02T10:00:00.000000Z')
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute('ALTER TABLE claims DROP COLUMN stale_after')
    conn.execute('PRAGMA user_version = 2')
    conn.close()
    with StateStore.open(db_path) as store:
        assert store.schema_version() == 3
        assert store.get_claim('u-1')['stale_after'] == 60


def test_a_run_that_releases_its_claims_ends_its_open_actions_as_interrupted(db_path):
    with StateStore.open(db_path) as store:
        store.save_instance('u-1', {'name': 'vm', 'vm_state': 'active'})
        store.save_instance('u-2', {'name': 'vm2', 'vm_state': 'active'})
        for uuid in ('u-1', 'u-2'):
            store.claim(uuid, 'req-a', 'rebuild', now='2026-12-02T10:00:00.000000Z')
        done = store.save_action('u-1', 'req-a', action='rebuild', start_time='2026-12-02T10:00:00.000000Z',
                                 finish_time='2026-12-02T10:01:00.000000Z')
        open_action = store.save_action('u-2', 'req-a', action='rebuild', start_time='2026-12-02T10:00:00.000000Z')
        store.save_event(open_action['id'], 'create_image', start_time='2026-12-02T10:00:30.000000Z')
        assert store.release('req-a', now='2026-12-02T10:02:00.000000Z') == ['u-1', 'u-2']
        assert store.get_action('u-1', 'req-a') == done  # finished: as it was
        ended = store.get_action('u-2', 'req-a')
        assert ended['finish_time'] == '2026-12-02T10:02:00.000000Z'
        assert ended['message'] == 'interrupted: the run ended before this finished'
        assert store.get_event(open_action['id'], 'create_image')['result'] == 'Error'
