# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""instance_info: the state store's records joined with the live libvirt domains, and the driver of the module.

The state store is a real SQLite file in tmp_path, written through StateStore's API. libvirtd is not run by unit
tests, so the libvirt side is the real LibvirtConnection over a fake virConnect that knows the domains given
(lookupByUUIDString raises libvirt's "no domain" error for the others); tests/integration/test_playbooks.py
reads a booted instance through the real libvirtd.
"""

from __future__ import annotations

import os

import pytest

libvirt = pytest.importorskip('libvirt')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.instance_info import (  # noqa: E402
    InfoDriver, describe_instances)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import StateStore  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt import connection as libvirt_connection  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import (  # noqa: E402
    NOSTATE, RUNNING, SHUTDOWN, VIR_ERR_NO_DOMAIN, LibvirtConnection)

WEB1 = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
WEB2 = '2f1f7fea-78fe-4c75-a9e7-8cef5f7f5fb1'
GONE = '3a2a8a0b-89af-4d86-b0f8-9d0a6a8a6ac2'
UNKNOWN = '4b3b9b1c-9ab0-4e97-81f9-ae1b7b9b7bd3'
NETWORK_INFO = [{'id': 'b3b356e1-d350-50fc-bb39-d645334738f8', 'address': 'fa:16:3e:00:00:01', 'type': 'ovs_hybrid',
                 'devname': 'tapb3b356e1-d3', 'network': {'bridge': 'br-int', 'subnets': [{'cidr': '10.0.0.0/24'}]}}]
VIR_DOMAIN_RUNNING, VIR_DOMAIN_SHUTOFF = 1, 5


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / 'state.sqlite3')


@pytest.fixture
def store(db_path):
    """A store with web-1 (active, running, with its network info and a finished create action), web-2
    (stopped) and a deleted instance, written as the step modules write them."""
    with StateStore.open(db_path) as writer:
        writer.save_instance(WEB1, {'name': 'web-1', 'vm_state': 'active', 'power_state': RUNNING, 'host': 'kvm1',
                                    'image': {'id': 'cirros-0.6.2'}, 'flavor': {'vcpus': 1, 'memory_mb': 192},
                                    'launched_at': '2026-12-01T10:01:00.000000Z'}, now='2026-12-01T10:00:00.000000Z')
        writer.set_network_info(WEB1, NETWORK_INFO)
        action = writer.save_action(WEB1, 'req-boot', action='create', start_time='2026-12-01T10:00:00.000000Z',
                                    finish_time='2026-12-01T10:01:00.000000Z')
        writer.save_event(action['id'], 'spawning', start_time='2026-12-01T10:00:10.000000Z',
                          finish_time='2026-12-01T10:00:50.000000Z', result='Success', details={'seconds': 40})
        writer.save_instance(WEB2, {'name': 'web-2', 'vm_state': 'stopped', 'power_state': SHUTDOWN})
        writer.save_instance(GONE, {'name': 'old', 'vm_state': 'deleted', 'power_state': NOSTATE, 'deleted': True,
                                    'deleted_at': '2026-11-30T09:00:00.000000Z'})
        yield writer


# ---------------------------------------------------------------- a fake virConnect under the real LibvirtConnection

class NoDomain(libvirt.libvirtError):
    def __init__(self):
        super().__init__('Domain not found: no domain with matching uuid')

    def get_error_code(self):
        return VIR_ERR_NO_DOMAIN


class FakeDomain(object):
    def __init__(self, name, state, domain_id):
        self._name, self._state, self._id = name, state, domain_id

    def name(self):
        return self._name

    def state(self):
        return [self._state, 1]

    def ID(self):
        return self._id


class FakeVirConnect(object):
    """The virConnect methods LibvirtConnection calls."""

    def __init__(self, domains):
        self.domains = dict(domains)
        self.lookups = []
        self.closed = False

    def lookupByUUIDString(self, uuid):
        self.lookups.append(uuid)
        if uuid not in self.domains:
            raise NoDomain()
        return self.domains[uuid]

    def close(self):
        self.closed = True


def connection(domains):
    live = LibvirtConnection('qemu:///system')
    live._conn = FakeVirConnect(domains)  # pylint: disable=protected-access
    return live


def test_records_without_live_state_are_the_stored_ones_with_their_network_info(store):
    described = describe_instances(store, None)
    assert [item['uuid'] for item in described] == [WEB1, WEB2]  # by local id; the deleted one left out
    web1, web2 = described
    assert web1 == dict(store.get_instance(WEB1), network_info=NETWORK_INFO)
    assert (web1['domain_name'], web1['flavor'], web1['deleted']) == ('instance-00000001', {'vcpus': 1, 'memory_mb': 192},
                                                                      False)
    assert web2['network_info'] is None
    assert not any(key in web1 for key in ('live', 'power_sync', 'actions'))


def test_include_deleted_adds_the_deleted_records(store):
    described = describe_instances(store, None, include_deleted=True)
    assert [(item['uuid'], item['deleted']) for item in described] == [(WEB1, False), (WEB2, False), (GONE, True)]
    assert described[2]['deleted_at'] == '2026-11-30T09:00:00.000000Z'


def test_a_uuid_selects_one_record_and_a_deleted_one_only_when_asked(store):
    assert [item['name'] for item in describe_instances(store, None, WEB2)] == ['web-2']
    assert describe_instances(store, None, GONE) == []
    assert [item['name'] for item in describe_instances(store, None, GONE, include_deleted=True)] == ['old']
    assert describe_instances(store, None, UNKNOWN, include_deleted=True) == []


def test_with_actions_adds_each_records_actions_and_their_events(store):
    web1, web2 = describe_instances(store, None, with_actions=True)
    assert [(action['action'], action['request_id']) for action in web1['actions']] == [('create', 'req-boot')]
    event = web1['actions'][0]['events'][0]
    assert (event['event'], event['result'], event['details']) == ('spawning', 'Success', {'seconds': 40})
    assert web1['actions'] == store.list_actions(WEB1)
    assert web2['actions'] == []


def test_no_store_describes_nothing():
    assert describe_instances(None, None) == []
    assert describe_instances(None, connection({}), WEB1, include_deleted=True) == []


def test_live_state_and_power_sync_of_each_record(store):
    live = connection({WEB1: FakeDomain('instance-00000001', VIR_DOMAIN_RUNNING, 3),
                       WEB2: FakeDomain('instance-00000002', VIR_DOMAIN_SHUTOFF, -1)})
    web1, web2 = describe_instances(store, live)
    assert web1['live'] == {'found': True, 'name': 'instance-00000001', 'id': 3, 'libvirt_state': 'running',
                            'power_state': RUNNING}
    assert (web1['power_sync']['drifted'], web1['power_sync']['action']) == (False, 'none')
    # A shut off domain has no id.
    assert web2['live'] == {'found': True, 'name': 'instance-00000002', 'id': None, 'libvirt_state': 'shutoff',
                            'power_state': SHUTDOWN}
    assert web2['power_sync']['drifted'] is False
    assert live.conn.lookups == [WEB1, WEB2]


def test_a_domain_that_stopped_by_itself_and_one_that_is_gone_are_drifted(store):
    live = connection({WEB1: FakeDomain('instance-00000001', VIR_DOMAIN_SHUTOFF, -1)})
    web1, web2 = describe_instances(store, live)
    assert web1['power_sync'] == {'db_power_state': RUNNING, 'vm_power_state': SHUTDOWN, 'drifted': True,
                                  'action': 'stop', 'message': 'instance shutdown by itself; record it stopped'}
    assert web2['live'] == {'found': False, 'name': None, 'id': None, 'libvirt_state': None, 'power_state': NOSTATE}
    assert (web2['power_sync']['drifted'], web2['power_sync']['action']) == (True, 'update_power_state')


# ---------------------------------------------------------------- the driver

class FakeModule(object):
    """What a driver uses of AnsibleModule: the parameters (the module's defaults filled in) and the modes."""

    def __init__(self, check_mode=False, **params):
        self.params = dict(state_db=None, libvirt_uri='qemu:///system', uuid=None, include_deleted=False,
                           with_actions=False, live=True, must_exist=False)
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = False

    def fail_json(self, msg, **_kwargs):
        raise AssertionError(msg)


def run_driver(domains=None, check_mode=False, **params):
    """InfoDriver (through outcome(), as the modules run it) with its connection_class replaced, as the other drivers'
    tests do; returns (result, virConnect)."""
    opened = []

    class Connection(LibvirtConnection):
        def __init__(self, uri):
            super().__init__(uri)
            assert uri == params.get('libvirt_uri', 'qemu:///system')
            self._conn = FakeVirConnect(domains or {})
            opened.append(self._conn)

    driver_class = type('Driver', (InfoDriver,), {'connection_class': Connection})
    result = driver_class(FakeModule(check_mode=check_mode, **params)).outcome()
    return result, (opened[0] if opened else None)


def test_driver_reports_records_live_state_and_the_drifted(store, db_path):
    result, conn = run_driver({WEB1: FakeDomain('instance-00000001', VIR_DOMAIN_SHUTOFF, -1),
                               WEB2: FakeDomain('instance-00000002', VIR_DOMAIN_SHUTOFF, -1)}, state_db=db_path)
    assert result['changed'] is False and result['store_exists'] is True
    assert [item['uuid'] for item in result['instances']] == [WEB1, WEB2]
    assert result['drifted'] == [WEB1]
    assert result['instances'][0]['power_sync']['action'] == 'stop'
    assert conn.closed  # the driver closes the connection it opened


def test_driver_without_live_opens_no_connection(store, db_path):
    result, conn = run_driver(state_db=db_path, live=False, include_deleted=True, with_actions=True)
    assert conn is None
    assert [item['name'] for item in result['instances']] == ['web-1', 'web-2', 'old']
    assert result['instances'][0]['actions'][0]['request_id'] == 'req-boot'
    assert result['drifted'] == [] and 'live' not in result['instances'][0]


def test_driver_check_mode_reads_the_same(store, db_path):
    assert run_driver(state_db=db_path, live=False, check_mode=True)[0] == run_driver(state_db=db_path, live=False)[0]


def test_driver_canonicalizes_the_uuid(store, db_path):
    result, conn = run_driver(state_db=db_path, uuid=WEB2.upper())
    assert [item['uuid'] for item in result['instances']] == [WEB2]
    assert conn.lookups == [WEB2]


def test_driver_refuses_a_bad_uuid_before_connecting(store, db_path):
    with pytest.raises(KvmhostError) as caught:
        run_driver(state_db=db_path, uuid='web-1')
    assert caught.value.field == 'uuid' and str(caught.value).startswith('uuid: must be a UUID')


def test_driver_must_exist(store, db_path):
    result, _conn = run_driver(state_db=db_path, uuid=UNKNOWN)
    assert result['instances'] == [] and result['drifted'] == []
    with pytest.raises(KvmhostError) as caught:
        run_driver(state_db=db_path, uuid=UNKNOWN, must_exist=True)
    assert caught.value.field == 'uuid'
    assert str(caught.value) == 'uuid: instance %s has no record in %s' % (UNKNOWN, db_path)
    # A deleted record exists for must_exist only when deleted records are asked for.
    with pytest.raises(KvmhostError):
        run_driver(state_db=db_path, uuid=GONE, must_exist=True, live=False)
    result, _conn = run_driver(state_db=db_path, uuid=GONE, must_exist=True, live=False, include_deleted=True)
    assert [item['uuid'] for item in result['instances']] == [GONE]


def test_driver_without_a_store_file_reports_none_and_creates_none(tmp_path):
    db_path = str(tmp_path / 'state.sqlite3')
    result, conn = run_driver(state_db=db_path)
    assert result == {'changed': False, 'instances': [], 'drifted': [], 'store_exists': False}
    assert conn.lookups == [] and conn.closed
    assert not os.path.exists(db_path)
    with pytest.raises(KvmhostError, match='^uuid: instance %s has no record in ' % WEB1):
        run_driver(state_db=db_path, uuid=WEB1, must_exist=True)


def test_driver_reads_the_store_read_only(store, db_path):
    before = store.get_instance(WEB1)
    run_driver({WEB1: FakeDomain('instance-00000001', VIR_DOMAIN_SHUTOFF, -1)}, state_db=db_path)
    # Drift is reported, never written back: that is instance_record's job.
    assert store.get_instance(WEB1) == before


def test_driver_without_live_needs_no_libvirt_python(store, db_path, monkeypatch):
    monkeypatch.setattr(libvirt_connection, 'HAS_LIBVIRT', False)
    result, conn = run_driver(state_db=db_path, live=False)
    assert conn is None and [item['uuid'] for item in result['instances']] == [WEB1, WEB2]


def test_driver_refuses_a_bad_uuid_before_it_requires_libvirt_python(store, db_path, monkeypatch):
    monkeypatch.setattr(libvirt_connection, 'HAS_LIBVIRT', False)
    with pytest.raises(KvmhostError, match='^uuid: must be a UUID'):
        run_driver(state_db=db_path, uuid='web-1')
