# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""instance_record and instance_info for real: a real SQLite file, real libvirt, concurrent writers."""

from __future__ import annotations

import concurrent.futures
import os
import sqlite3
import uuid as uuid_lib

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import StateStore
from kvmhost_testlib import ROOT, recap, run_module, run_playbook

UUID = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'


@pytest.fixture
def state_db(tmp_path):
    return str(tmp_path / 'state.sqlite3')


def record(state_db, check=False, diff=False, **args):
    return run_module('instance_record', dict(args, state_db=state_db), check=check, diff=diff)


def test_check_apply_idempotent_check_idempotent_apply(state_db):
    args = dict(uuid=UUID, name='web-1', vm_state='building', task_state='scheduling',
                flavor={'vcpus': 1, 'memory_mb': 192}, action={'name': 'create', 'request_id': 'req-1'},
                event={'name': 'compute_build', 'phase': 'start'})
    checked = record(state_db, check=True, diff=True, **args)
    assert checked['changed'] is True
    assert checked['diff']['before'] == {'instance': None, 'action': None, 'event': None}
    assert not os.path.exists(state_db), 'check mode created the store'
    applied = record(state_db, **args)
    assert applied['changed'] is True
    assert applied['instance']['domain_name'] == 'instance-00000001'
    assert record(state_db, check=True, **args)['changed'] is False
    again = record(state_db, **args)
    assert again['changed'] is False
    assert again['instance'] == applied['instance']


@pytest.mark.parametrize('args, message', [
    (dict(uuid='web-1', name='x'), 'uuid: must be a UUID'),
    (dict(uuid=UUID, name='x', vm_state='running'), 'value of vm_state must be one of'),
    (dict(uuid=UUID, name='x', task_state='booting'), 'value of task_state must be one of'),
    (dict(uuid=UUID, name='x', power_state=2), 'value of power_state must be one of'),
    (dict(uuid=UUID, name='x', state_db='/nonexistent-dir/state.sqlite3'),
     'state_db: directory /nonexistent-dir does not exist'),
    (dict(uuid=UUID, name='x', state_db='relative.sqlite3'), 'state_db: must be an absolute path'),
])
def test_bad_input_fails_clearly_and_writes_nothing(state_db, args, message):
    args.setdefault('state_db', state_db)
    result = run_module('instance_record', args)
    assert result.get('failed') is True, result
    assert message in result['msg']
    assert not os.path.exists(state_db)


def test_unwritable_directory_is_named(tmp_path):
    # root bypasses permission bits; a read-only bind would need mount rights, so use a file as "directory".
    blocker = tmp_path / 'file'
    blocker.write_text('')
    result = run_module('instance_record', dict(uuid=UUID, name='x', state_db=str(blocker / 'state.sqlite3')))
    assert result.get('failed') is True
    assert 'state_db: directory %s does not exist' % blocker in result['msg']


def test_corrupted_store_fails_clearly_and_stays_as_it_was(state_db):
    with open(state_db, 'wb') as handle:
        handle.write(b'\x00garbage' * 512)
    before = open(state_db, 'rb').read()
    for module, args in (('instance_record', dict(uuid=UUID, name='x')), ('instance_info', dict(live=False))):
        result = run_module(module, dict(args, state_db=state_db))
        assert result.get('failed') is True, result
        assert 'is not a usable SQLite state store' in result['msg']
    assert open(state_db, 'rb').read() == before


def test_info_joins_live_libvirt_state_and_reports_drift(state_db, libvirt_conn):
    # A record that says RUNNING for a domain libvirt does not have: drift, as Nova's power sync sees it.
    ghost = str(uuid_lib.uuid4())
    record(state_db, uuid=ghost, name='ghost', vm_state='active', task_state='none', power_state=1)
    result = run_module('instance_info', dict(state_db=state_db, uuid=ghost, with_actions=True))
    assert result['changed'] is False
    (item,) = result['instances']
    assert item['live'] == {'found': False, 'name': None, 'id': None, 'libvirt_state': None, 'power_state': 0}
    assert item['power_sync']['drifted'] is True
    assert 'unexpectedly not found' in item['power_sync']['message']
    assert result['drifted'] == [ghost]


def test_info_on_missing_store_reads_nothing_and_creates_nothing(state_db):
    result = run_module('instance_info', dict(state_db=state_db, live=False))
    assert (result['changed'], result['instances'], result['store_exists']) == (False, [], False)
    assert not os.path.exists(state_db)
    missing = run_module('instance_info', dict(state_db=state_db, live=False, uuid=UUID, must_exist=True))
    assert missing['failed'] is True and 'has no record' in missing['msg']


def test_concurrent_writers_all_succeed(state_db):
    """Sixteen module runs at once on one store (eight instances, two steps each): none may fail."""
    uuids = [str(uuid_lib.uuid4()) for dummy in range(8)]

    def write(index):
        instance = uuids[index % 8]
        args = dict(uuid=instance, name='vm-%d' % (index % 8), task_state='spawning',
                    action={'name': 'create', 'request_id': 'req-%d' % (index % 8)},
                    event={'name': 'step-%d' % (index // 8), 'phase': 'finish'})
        return record(state_db, **args)

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(write, range(16)))
    failures = [result for result in results if result.get('failed')]
    assert not failures, failures
    conn = sqlite3.connect(state_db)
    assert conn.execute('SELECT count(*) FROM instances').fetchone()[0] == 8
    assert conn.execute('SELECT count(*) FROM action_events').fetchone()[0] == 16
    assert sorted(row[0] for row in conn.execute('SELECT local_id FROM instances')) == list(range(1, 9))
    conn.close()


def test_through_ansible_playbook_check_apply_and_idempotence(tmp_path):
    """The same rhythm through the controller: ansible-doc renders, check, apply, check, apply."""
    state_db = str(tmp_path / 'state.sqlite3')
    playbook = tmp_path / 'record.yml'
    playbook.write_text('''
- hosts: localhost
  gather_facts: false
  tasks:
    - kvmhost.lifecycle.instance_record:
        state_db: "{{ db }}"
        uuid: %s
        name: "web <1> & 'x'"
        vm_state: active
        task_state: none
        power_state: 1
        launched_at: now
    - kvmhost.lifecycle.instance_info:
        state_db: "{{ db }}"
        live: false
      register: info
    - ansible.builtin.assert:
        that: info.instances | length == expect | int
''' % UUID)
    inventory = os.path.join(ROOT, 'inventory', 'local')
    # The store has no record until the first real apply.
    runs = [run_playbook(str(playbook), {'db': state_db, 'expect': expect}, check=check, diff=True,
                         inventory=inventory)
            for check, expect in ((True, 0), (False, 1), (True, 1), (False, 1))]
    for returncode, output in runs:
        assert returncode == 0, output[-3000:]
    assert [recap(output)['changed'] for dummy, output in runs] == [1, 1, 0, 0]


LOCAL_ID_BASE = 0x7E57F300  # far above any real host-local id; the other test modules use 0x7E57F000-0x7E57F2FF


def test_a_new_record_skips_a_local_id_whose_domain_name_another_domain_has(state_db, libvirt_test_domains):
    # Another state store's instance (here a bare defined domain) holds the name the next local id would give.
    StateStore.open(state_db).close()  # a migrated store, made by the module code
    conn = sqlite3.connect(state_db, isolation_level=None)
    try:
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('instances', ?)", (LOCAL_ID_BASE,))
    finally:
        conn.close()
    holder = str(uuid_lib.uuid4())
    libvirt_test_domains.define(
        "<domain type='qemu'><name>instance-%08x</name><uuid>%s</uuid><memory unit='MiB'>32</memory>"
        "<os><type arch='x86_64'>hvm</type></os></domain>" % (LOCAL_ID_BASE + 1, holder))
    created = record(state_db, uuid=str(uuid_lib.uuid4()), name='skips-1')
    assert created['changed'] is True, created
    assert created['instance']['local_id'] == LOCAL_ID_BASE + 2
    assert created['instance']['domain_name'] == 'instance-%08x' % (LOCAL_ID_BASE + 2)
    following = record(state_db, uuid=str(uuid_lib.uuid4()), name='skips-2')
    assert following['instance']['local_id'] == LOCAL_ID_BASE + 3  # the sequence goes on after it, never back
