# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""instance_check's checks. The spec checks are pure; the host checks run against a fake libvirt connection
and a fake command runner (canned ip/ovs-vsctl JSON), with the real file system, a real SQLite state store and
real sockets on 127.0.0.1. tests/integration/test_playbooks.py runs the module against this machine's libvirt
and OVS through boot.yml and rebuild.yml."""

from __future__ import annotations

import collections
import copy
import json
import socket
import sqlite3

import pytest

pytest.importorskip('libvirt')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.host.instance_check import (  # noqa: E402
    InstanceCheckDriver, check_spec, cross_checks, probe_portal)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import StateStore  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import build_domain_xml  # noqa: E402

UUID_A = '8f3c6f4e-2b6a-4d0e-9a51-1c2d3e4f5a6b'
UUID_B = '0b7e1a52-44f1-4c37-8d0e-5e6f7a8b9c0d'
PORT_A = 'b3b356e1-d350-50fc-bb39-d645334738f8'
PORT_B = 'c4c467f2-e461-41ad-8c4a-e756445849a9'
CHECKSUM = 'sha256:' + '0' * 64


def spec(uuid=UUID_A, name='web-1', port=PORT_A, mac='fa:16:3e:00:00:01', image_source=None, memory_mb=192):
    return {
        'uuid': uuid, 'name': name,
        'flavor': {'vcpus': 1, 'memory_mb': memory_mb, 'root_gb': 1},
        'image': {'id': 'guest-v1', 'source': image_source or 'https://images.example/guest.qcow2',
                  'checksum': CHECKSUM},
        'vifs': [{'id': port, 'address': mac, 'type': 'ovs_hybrid',
                  'network': {'cidr': '10.10.10.0/24', 'ips': ['10.10.10.13']}}],
        'security_groups': [{'name': 'default', 'rules': [
            {'direction': 'ingress', 'protocol': 'tcp', 'port_range_min': 22, 'port_range_max': 22}]}],
    }


PARAMS = {'action': 'boot', 'virt_type': 'qemu', 'vnc': False, 'instances_path': '/var/lib/kvmhost/instances'}


def errors_of(instance, **params):
    _validated, errors = check_spec(instance, dict(PARAMS, **params))
    return [str(error) for error in errors]


def test_a_good_spec_passes():
    assert errors_of(spec()) == []


def test_every_faulty_part_is_named_with_its_path_in_the_spec():
    bad = spec()
    bad['security_groups'][0]['rules'][0].update(port_range_min=90, port_range_max=80)
    bad['security_groups'][0]['name'] = 'web; rm -rf /'
    bad['image'].update(checksum='sha256:xyz', source='https://images.example/guest.qcow2')
    bad['flavor']['root_gb'] = 10 ** 9
    bad['vifs'][0]['network']['ips'] = ['10.10.11.5']
    found = errors_of(bad)
    assert any(error.startswith('security_groups[0].name: must be 1-255 letters') for error in found), found
    assert 'vifs[0].network.ips[0]: 10.10.11.5 is not in the network 10.10.10.0/24' in found
    assert any(error.startswith('image.checksum: a sha256 checksum is 64 hexadecimal digits') for error in found)
    assert any(error.startswith('flavor.root_gb: must be 0..65536') for error in found), found


@pytest.mark.parametrize('change, expected', [
    (lambda s: s['security_groups'][0]['rules'][0].update(port_min=1), 'unknown key security_groups.rules.port_min'),
    (lambda s: s['security_groups'][0]['rules'][0].update(port_range_min=90, port_range_max=80),
     'security_groups[0].rules[0].port_range_min: port_range_min 90 is above port_range_max 80'),
    (lambda s: s['vifs'][0]['network'].update(cidr='10.10.10.0/33'), 'vifs[0].network.cidr: must be a network'),
    (lambda s: s['image'].update(checksum='md5:' + '0' * 32), "image.checksum: unsupported checksum algorithm 'md5'"),
    (lambda s: s['image'].update(source='ftp://images.example/guest.qcow2'), "image.source: URL scheme 'ftp'"),
    (lambda s: s['image'].update(source='/nonexistent/guest.qcow2'), 'image.source: /nonexistent/guest.qcow2 does not'),
    (lambda s: s['vifs'][0].update(address='ff:ff:ff:ff:ff:ff'), 'vifs[0].address: must be a unicast MAC address'),
    (lambda s: s['vifs'][0].update(id='a;b'), 'vifs[0].id: must be a port id'),
    (lambda s: s.update(uuid='nope'), 'uuid: '),
    (lambda s: s['flavor'].update(vcpus=0), 'flavor.vcpus: must be 1..4096'),
    (lambda s: s.update(volumes=[{'id': 'vol-1', 'device_name': 'vdb', 'target_portal': '10.0.0.1:3260',
                                  'target_iqn': 'not an iqn', 'target_lun': 0}]), 'volumes[0].target_iqn: '),
])
def test_each_step_check_runs_before_any_change(change, expected):
    bad = spec()
    change(bad)
    found = errors_of(bad)
    assert any(error.startswith(expected) for error in found), found


def test_a_delete_is_not_refused_for_an_image_it_does_not_use():
    bad = spec(image_source='ftp://images.example/guest.qcow2')
    assert errors_of(bad, action='delete') == []
    bad['vifs'][0]['id'] = 'a;b'
    assert errors_of(bad, action='delete')[0].startswith('vifs[0].id: must be a port id')


def test_macs_and_port_ids_are_unique_over_the_run_and_the_host():
    first, second = spec(), spec(uuid=UUID_B, name='web-2', port=PORT_B)
    checked = [(UUID_A, 'web-1', first), (UUID_B, 'web-2', second)]
    assert cross_checks(checked, {}) == [
        (UUID_B, 'vifs[0].address', 'MAC address fa:16:3e:00:00:01 is also the one of web-1 (%s) of this run' % UUID_A)]
    other = '11111111-2222-4333-8444-555555555555'
    found = cross_checks([(UUID_B, 'web-2', second)], {other: [{'id': PORT_B, 'address': 'fa:16:3e:00:00:09'}]})
    assert found == [(UUID_B, 'vifs[0].id', 'port id %s is also the one of instance %s of this host' % (PORT_B, other))]


def test_probe_portal_tells_an_answering_portal_from_a_closed_one():
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen(1)
        assert probe_portal('127.0.0.1:%d' % listener.getsockname()[1]) is None
    with socket.socket() as closed:
        closed.bind(('127.0.0.1', 0))
        port = closed.getsockname()[1]
    assert 'does not answer' in probe_portal('127.0.0.1:%d' % port, timeout=1)


# ---------------------------------------------------------------- the host, with fakes for libvirt and commands

class FakeDomain(object):
    def __init__(self, name, uuid, xml=None, running=True):
        self._name, self._uuid, self._xml, self._running = name, uuid, xml, running

    def name(self):
        return self._name

    def UUIDString(self):
        return self._uuid

    def state(self):
        return [1 if self._running else 5, 0]

    def XMLDesc(self, _flags):
        return self._xml

    def isActive(self):
        return self._running

    def info(self):  # state, max memory, memory, vCPUs, CPU time
        return [1 if self._running else 5, 2097152, 2097152, self.vcpus, 0]

    vcpus = 1


class FakeConnection(object):
    def __init__(self, domains=(), broken=False):
        self.domains = list(domains)
        self.broken = broken

    @property
    def conn(self):
        if self.broken:
            raise KvmhostError('cannot connect to libvirt at qemu:///nosuch: no such URI', field='libvirt_uri')
        return self

    def listAllDomains(self, _flags):
        return self.domains

    @staticmethod
    def getInfo():  # model, memory MiB, CPUs, ...
        return ['x86_64', 24000, 2, 2000, 1, 1, 2, 1]

    def domain_by_uuid(self, uuid):
        return next((domain for domain in self.domains if domain.UUIDString() == uuid), None)

    def close(self):
        pass


class FakeRunner(object):
    """ip -json and ovs-vsctl --format=json as this machine prints them, for the bridges and links given."""

    def __init__(self, bridges=('br-int',), links=('lo', 'eth0')):
        self.bridges, self.links = bridges, links

    def run(self, args):
        if args[0] == 'ip':
            return json.dumps([{'ifname': name} for name in self.links])
        tables = [{'headings': ['name', 'ports', 'datapath_type'],
                   'data': [[name, ['set', []], 'netdev'] for name in self.bridges]},
                  {'headings': ['_uuid', 'name'], 'data': []},
                  {'headings': ['name', 'type', 'external_ids'], 'data': []}]
        return '\n'.join(json.dumps(table) for table in tables)


StatVfs = collections.namedtuple('StatVfs', 'f_frsize f_bavail')


class Module(object):
    def __init__(self, params):
        self.params, self.check_mode, self._diff = params, False, False


def driver(tmp_path, instances, connection=None, runner=None, available_mb=4096, free_mb=10240, **params):
    instances_path = tmp_path / 'instances'
    instances_path.mkdir(exist_ok=True)
    values = dict(PARAMS, instances=instances, libvirt_uri='qemu:///system', state_db=str(tmp_path / 'state.db'),
                  instances_path=str(instances_path), claim=None, claim_wait=90)
    values.update(params)
    if values['claim'] is not None:  # as Ansible fills in the suboption's default
        values['claim'] = dict({'stale_after': 60}, **values['claim'])
    return InstanceCheckDriver(
        Module(values), connection=connection or FakeConnection(), runner=runner or FakeRunner(),
        meminfo=lambda: {'MemAvailable': available_mb * 1024},
        statvfs=lambda _path: StatVfs(1024 * 1024, free_mb))


def refusals(run):
    with pytest.raises(KvmhostError) as caught:
        run.run()
    return caught.value.details['refusals']


def test_a_good_run_reads_the_host(tmp_path):
    result = driver(tmp_path, [spec()]).run()
    assert result['changed'] is False and result['refusals'] == []
    assert result['results'] == [{'uuid': UUID_A, 'name': 'web-1', 'failed': False}]
    assert result['host']['new_instances'] == [UUID_A] and result['host']['memory_needed_mb'] == 192
    assert result['host']['ovs_bridges'] == ['br-int'] and result['host']['next_local_id'] == 1


def test_host_preconditions_are_refused_with_the_field(tmp_path):
    run = driver(tmp_path, [spec()], runner=FakeRunner(bridges=()), available_mb=200,
                 state_db=str(tmp_path / 'missing' / 'state.db'))
    found = refusals(run)
    assert 'web-1 (%s): vifs[0].bridge: the Open vSwitch bridge br-int does not exist' % UUID_A in found
    assert any(line.startswith('host qemu:///system: state_db: the directory ') for line in found), found
    assert any('flavor.memory_mb: the new instances need 192 MiB of memory (web-1 192)' in line for line in found)


def test_a_missing_instances_path_and_a_dead_libvirt_are_refused(tmp_path):
    found = refusals(driver(tmp_path, [spec()], connection=FakeConnection(broken=True),
                            instances_path=str(tmp_path / 'nope')))
    assert found == ['host qemu:///system: instances_path: %s is not a directory (host.yml makes it)' % (tmp_path / 'nope'),
                     'host qemu:///system: libvirt_uri: cannot connect to libvirt at qemu:///nosuch: no such URI']


def test_domain_names_other_domains_have(tmp_path):
    other = '99999999-8888-4777-8666-555555555555'
    taken = FakeConnection([FakeDomain('instance-00000001', other)])
    # A new record skips the id whose name another domain (another state store's instance) has.
    assert driver(tmp_path, [spec()], connection=taken).run()['host']['local_ids'] == {UUID_A: 2}
    # A recorded instance whose name another domain has is refused.
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        store.save_instance(UUID_A, {'name': 'web-1'})
    found = refusals(driver(tmp_path, [spec()], connection=taken))
    assert found == ['web-1 (%s): uuid: its local id 1 names the domain instance-00000001, which libvirt has for '
                     'another instance, %s (another state store on this host?)' % (UUID_A, other)]


def test_the_host_store_is_read_for_local_ids_and_other_instances(tmp_path):
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        store.save_instance(UUID_B, {'name': 'web-2', 'vm_state': 'active'})
        store.set_network_info(UUID_B, [{'id': PORT_B, 'address': 'fa:16:3e:00:00:01'}])
    found = refusals(driver(tmp_path, [spec()]))
    assert found == ['web-1 (%s): vifs[0].address: MAC address fa:16:3e:00:00:01 is also the one of instance %s '
                     'of this host' % (UUID_A, UUID_B)]
    result = driver(tmp_path, [spec(mac='fa:16:3e:00:00:02')]).run()
    assert result['host']['next_local_id'] == 2


def test_the_disk_of_uncached_local_bases_is_counted(tmp_path):
    image = tmp_path / 'guest.qcow2'
    image.write_bytes(b'\0' * (3 * 1024 * 1024))
    found = refusals(driver(tmp_path, [spec(image_source=str(image))], free_mb=10))
    assert any('instances_path: the new instances need 67 MiB' in line for line in found), found


def test_an_instance_given_twice_is_refused(tmp_path):
    found = refusals(driver(tmp_path, [spec(), copy.deepcopy(spec())]))
    assert found == ['web-1 (%s): uuid: instances[1] is this instance again' % UUID_A]


NEW_XML = ("<domain type='qemu'><name>instance-00000001</name><uuid>%s</uuid><metadata>"
           "<nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'><nova:root type='image' "
           "uuid='guest-v1'/></nova:instance></metadata><memory unit='MiB'>192</memory></domain>" % UUID_A)


SPAWNED = {'shutdown_instance': 'Success', 'spawning': 'Success'}


@pytest.mark.parametrize('task_state, events, finished, running, image, defined, expected', [
    ('rebuild_spawning', SPAWNED, False, True, 'guest-v1', NEW_XML, [UUID_A]),  # killed after spawning: finish it
    # ... and a boot.yml in between took its claim over, ending it as interrupted: finish it all the same
    ('rebuild_spawning', SPAWNED, 'interrupted', True, 'guest-v1', NEW_XML, [UUID_A]),
    (None, dict(SPAWNED, power_sync='Success', audit_resources=None), False, True, 'guest-v1', NEW_XML,
     [UUID_A]),                                                                # killed at the audit: finish it
    (None, SPAWNED, True, True, 'guest-v1', NEW_XML, []),                      # that rebuild ended: rebuild again
    ('rebuilding', {'shutdown_instance': None}, False, True, 'guest-v1', NEW_XML, []),  # killed before spawning
    ('rebuild_spawning', {'spawning': 'Error'}, False, True, 'guest-v1', NEW_XML, []),  # spawning failed
    ('rebuild_spawning', SPAWNED, False, False, 'guest-v1', NEW_XML, []),      # the new domain does not run
    ('rebuild_spawning', SPAWNED, False, True, 'guest-v2', NEW_XML, []),       # the spec names another image now
    ('rebuild_spawning', SPAWNED, False, True, 'guest-v1', NEW_XML.replace('192', '256'), []),  # another definition
])
def test_a_killed_rebuild_whose_new_domain_runs_is_resumable(tmp_path, task_state, events, finished, running, image,
                                                             defined, expected):
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        store.save_instance(UUID_A, {'name': 'web-1', 'vm_state': 'active', 'task_state': task_state})
        store.save_action(UUID_A, 'req-boot', action='boot', start_time='2026-12-01T10:00:00.000000Z',
                          finish_time='2026-12-01T10:01:00.000000Z')
        action = store.save_action(UUID_A, 'req-killed', action='rebuild', start_time='2026-12-02T10:00:00.000000Z',
                                   finish_time='2026-12-02T10:05:00.000000Z' if finished else None,
                                   message='interrupted: taken over' if finished == 'interrupted' else None)
        for name, result in events.items():
            store.save_event(action['id'], name, start_time='2026-12-02T10:00:01.000000Z', result=result,
                             finish_time='2026-12-02T10:00:02.000000Z' if result else None)
    (tmp_path / 'instances' / UUID_A).mkdir(parents=True)
    (tmp_path / 'instances' / UUID_A / 'libvirt.xml').write_text(NEW_XML)
    instance = spec()
    instance['image']['id'] = image
    connection = FakeConnection([FakeDomain('instance-00000001', UUID_A, defined, running)])
    result = driver(tmp_path, [instance], connection=connection, action='rebuild').run()
    assert result['host']['resumable'] == expected


class FakeClock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_the_run_claims_its_instances_all_or_nothing(tmp_path):
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        assert store.claim(UUID_B, 'req-other', 'rebuild') is None  # another live run has web-2
    clock = FakeClock()
    run = driver(tmp_path, [spec(), spec(uuid=UUID_B, name='web-2', port=PORT_B, mac='fa:16:3e:00:00:02')],
                 claim={'request_id': 'req-mine'}, claim_wait=5)
    run.clock, run.sleep = clock, clock.sleep
    found = refusals(run)
    assert len(found) == 1 and found[0].startswith('web-2 (%s): uuid: another run on this host has it: request '
                                                   'req-other (rebuild) since ' % UUID_B), found
    assert found[0].endswith('; waited 5 s') and clock.now >= 5
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        assert store.get_claim(UUID_A) is None  # released: the run does not start
        store.release('req-other')
    result = driver(tmp_path, [spec()], claim={'request_id': 'req-mine'}, claim_wait=5).run()
    assert result['host']['claimed'] == [UUID_A]
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        assert store.get_claim(UUID_A)['request_id'] == 'req-mine'


def test_a_store_of_the_previous_schema_is_migrated_not_refused(tmp_path):
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        store.save_instance(UUID_B, {'name': 'web-2'})
    conn = sqlite3.connect(str(tmp_path / 'state.db'), isolation_level=None)
    conn.execute('DROP TABLE claims')
    conn.execute('PRAGMA user_version = 1')
    conn.close()
    result = driver(tmp_path, [spec()], claim={'request_id': 'req-1'}).run()
    assert result['host']['next_local_id'] == 2 and result['host']['claimed'] == [UUID_A]


def test_a_refused_spec_is_not_read_again_by_the_host_checks(tmp_path):
    # A new instance whose source is no URL: its refusal stands with the others, the disk check does not
    # parse the source again (it used to raise there and hide every other refusal).
    bad = spec(image_source='ftp://images.example/guest.qcow2')
    other = spec(uuid=UUID_B, name='web-2', port=PORT_B, mac='fa:16:3e:00:00:02')
    found = refusals(driver(tmp_path, [bad, other], runner=FakeRunner(bridges=())))
    assert found == ["web-1 (%s): image.source: URL scheme 'ftp' is not supported: use http, https or file" % UUID_A,
                     'web-2 (%s): vifs[0].bridge: the Open vSwitch bridge br-int does not exist' % UUID_B]


# ---------------------------------------------------------------- delete: the instances without a spec (uuids)

UUID_KNOWN = '5d1e7f1c-3f53-4c0a-9a43-2a9f4c1b2e77'
UUID_UNKNOWN = '2f0e9d8c-7b6a-4594-8372-615049382716'
PORT_KNOWN = 'd5d578a3-f572-42be-9d5b-f867556950ba'
VOLUME_KNOWN = {'id': 'vol-data-1', 'device_name': 'vdb', 'target_portal': '192.0.2.10:3260',
                'target_iqn': 'iqn.2010-10.org.openstack:vol-data-1', 'target_lun': 1, 'transport': 'qemu'}


def known_domain_xml(tmp_path):
    gone = spec(uuid=UUID_KNOWN, name='web-9', port=PORT_KNOWN, mac='fa:16:3e:00:00:09')
    gone['volumes'] = [dict(VOLUME_KNOWN)]
    return build_domain_xml({'instance': gone, 'local_id': 3, 'virt_type': 'qemu',
                             'instances_path': str(tmp_path / 'instances')})


def known_host(tmp_path, network_info=True):
    """UUID_KNOWN has left the inventory: its record (with the cache of one hybrid VIF) and its domain remain."""
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        store.save_instance(UUID_KNOWN, {'name': 'web-9', 'vm_state': 'active'})
        if network_info:
            store.set_network_info(UUID_KNOWN, [{
                'id': PORT_KNOWN, 'address': 'fa:16:3e:00:00:09', 'type': 'ovs',
                'network': {'bridge': 'br-int', 'meta': {'mtu': None}},
                'details': {'ovs_hybrid_plug': True, 'vlan': None, 'physical_interface': None}}])
    return FakeConnection([FakeDomain('instance-00000003', UUID_KNOWN, known_domain_xml(tmp_path))])


KNOWN_VIF = {'id': PORT_KNOWN, 'address': 'fa:16:3e:00:00:09', 'type': 'ovs_hybrid', 'bridge': 'br-int'}


def test_uuids_are_for_a_delete_only(tmp_path):
    for action in ('boot', 'rebuild'):
        with pytest.raises(KvmhostError) as caught:
            driver(tmp_path, [spec()], action=action, uuids=[UUID_A]).run()
        assert caught.value.field == 'uuids' and 'for action delete only' in str(caught.value)
    assert 'known_instances' not in driver(tmp_path, [spec()], action='delete').run()  # not without uuids


def test_a_delete_reads_the_instances_without_a_spec_from_the_host(tmp_path):
    connection = known_host(tmp_path)
    result = driver(tmp_path, [spec()], connection=connection, action='delete',
                    uuids=[UUID_A, UUID_KNOWN.upper(), UUID_UNKNOWN, UUID_KNOWN]).run()
    assert result['refusals'] == []
    assert result['results'] == [{'uuid': UUID_A, 'name': 'web-1', 'failed': False},
                                 {'uuid': UUID_KNOWN, 'name': 'web-9', 'failed': False}]
    assert result['known_instances'] == [{
        'uuid': UUID_KNOWN, 'name': 'web-9', 'vifs': [KNOWN_VIF], 'volumes': [VOLUME_KNOWN], 'security_groups': []}]
    assert result['unknown_uuids'] == [UUID_UNKNOWN]
    assert result['known_uuids'] == sorted([UUID_A, UUID_KNOWN])


def test_without_a_cache_the_vifs_of_a_known_instance_are_its_domains(tmp_path):
    connection = known_host(tmp_path, network_info=False)
    result = driver(tmp_path, [], connection=connection, action='delete', uuids=[UUID_KNOWN]).run()
    (known,) = result['known_instances']
    assert known['vifs'] == [{'id': PORT_KNOWN, 'address': 'fa:16:3e:00:00:09', 'type': 'ovs_hybrid'}]
    assert known['volumes'] == [VOLUME_KNOWN]


def test_a_known_instance_is_known_by_its_directory_once_record_and_domain_are_gone(tmp_path):
    (tmp_path / 'instances' / UUID_KNOWN).mkdir(parents=True)
    (tmp_path / 'instances' / UUID_KNOWN / 'libvirt.xml').write_text(known_domain_xml(tmp_path))
    result = driver(tmp_path, [], action='delete', uuids=[UUID_KNOWN, UUID_UNKNOWN]).run()
    assert [known['uuid'] for known in result['known_instances']] == [UUID_KNOWN]
    assert result['known_instances'][0]['volumes'] == [VOLUME_KNOWN]
    assert result['unknown_uuids'] == [UUID_UNKNOWN] and result['known_uuids'] == [UUID_KNOWN]


def test_an_invalid_uuid_in_uuids_is_refused_by_its_index(tmp_path):
    found = refusals(driver(tmp_path, [spec()], action='delete', uuids=[UUID_A, 'nope', '../etc']))
    assert found == ["host qemu:///system: uuids[1]: must be a UUID like 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0, "
                     "got 'nope'",
                     "host qemu:///system: uuids[2]: must be a UUID like 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0, "
                     "got '../etc'"]


def test_a_domain_xml_the_collection_did_not_write_is_refused_naming_the_instance(tmp_path):
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        store.save_instance(UUID_KNOWN, {'name': 'web-9', 'vm_state': 'active'})
    connection = FakeConnection([FakeDomain('instance-00000003', UUID_KNOWN, '<domain><devices>')])
    with pytest.raises(KvmhostError) as caught:
        driver(tmp_path, [], connection=connection, action='delete', uuids=[UUID_KNOWN]).run()
    (refusal,) = caught.value.details['refusals']
    assert refusal.startswith('web-9 (%s): uuids: the domain XML cannot be read' % UUID_KNOWN), refusal
    (outcome,) = caught.value.details['results']
    assert (outcome['uuid'], outcome['name'], outcome['failed']) == (UUID_KNOWN, 'web-9', True)
    assert 'the domain XML cannot be read' in outcome['msg']


def test_the_known_instances_are_claimed_like_the_given_ones(tmp_path):
    connection = known_host(tmp_path)
    result = driver(tmp_path, [spec()], connection=connection, action='delete', uuids=[UUID_A, UUID_KNOWN],
                    claim={'request_id': 'req-delete'}).run()
    assert result['host']['claimed'] == [UUID_A, UUID_KNOWN]
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        assert store.get_claim(UUID_KNOWN)['request_id'] == 'req-delete'
        store.release('req-delete')
        assert store.claim(UUID_KNOWN, 'req-other', 'rebuild') is None  # another live run has it now
    clock = FakeClock()
    run = driver(tmp_path, [spec()], connection=connection, action='delete', uuids=[UUID_A, UUID_KNOWN],
                 claim={'request_id': 'req-delete'}, claim_wait=2)
    run.clock, run.sleep = clock, clock.sleep
    found = refusals(run)
    assert len(found) == 1 and found[0].startswith('web-9 (%s): uuid: another run on this host has it: request '
                                                   'req-other (rebuild)' % UUID_KNOWN), found
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        assert store.get_claim(UUID_A) is None  # all or nothing


def test_a_delete_with_uuids_migrates_a_store_of_the_previous_schema(tmp_path):
    connection = known_host(tmp_path)
    conn = sqlite3.connect(str(tmp_path / 'state.db'), isolation_level=None)
    conn.execute('DROP TABLE claims')
    conn.execute('PRAGMA user_version = 1')
    conn.close()
    result = driver(tmp_path, [], connection=connection, action='delete', uuids=[UUID_KNOWN],
                    claim={'request_id': 'req-1'}).run()
    assert result['known_uuids'] == [UUID_KNOWN] and result['host']['claimed'] == [UUID_KNOWN]


def test_a_delete_with_uuids_and_no_store_yet(tmp_path):
    result = driver(tmp_path, [], action='delete', uuids=[UUID_UNKNOWN]).run()
    assert (result['known_instances'], result['unknown_uuids'], result['known_uuids']) == ([], [UUID_UNKNOWN], [])
    assert not (tmp_path / 'state.db').exists()
    found = refusals(driver(tmp_path, [], action='delete', uuids=[UUID_UNKNOWN],
                            state_db=str(tmp_path / 'missing' / 'state.db')))
    assert found == ['host qemu:///system: state_db: the directory %s of the state store does not exist'
                     % (tmp_path / 'missing')]


def test_a_delete_in_check_mode_reads_the_known_instances_without_writing(tmp_path):
    connection = known_host(tmp_path)
    run = driver(tmp_path, [], connection=connection, action='delete', uuids=[UUID_KNOWN],
                 claim={'request_id': 'req-check'})
    run.check_mode = True
    result = run.run()
    assert result['known_instances'][0]['vifs'] == [KNOWN_VIF] and result['host']['claimed'] == []
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        assert store.get_claim(UUID_KNOWN) is None


# ---------------------------------------------------------------- cold migration: the source and the destination

def leaving(tmp_path, record=True, domain=True, directory=True, task_state=None, deleted=False):
    if record:
        with StateStore.open(str(tmp_path / 'state.db')) as store:
            store.save_instance(UUID_A, {'name': 'web-1', 'vm_state': 'active', 'task_state': task_state,
                                         'deleted': deleted})
    if directory:
        (tmp_path / 'instances' / UUID_A).mkdir(parents=True)
        (tmp_path / 'instances' / UUID_A / 'disk').write_bytes(b'\0' * 4096)
        (tmp_path / 'instances' / UUID_A / 'console.log').write_bytes(b'login: ')
    return FakeConnection([FakeDomain('instance-00000001', UUID_A, running=False)] if domain else [])


def test_the_source_of_a_migration_has_the_instance_and_says_what_travels(tmp_path):
    connection = leaving(tmp_path)
    result = driver(tmp_path, [spec()], connection=connection, action='migrate_source').run()
    assert result['host']['transfer_bytes'] == {UUID_A: 4096 + 7}
    assert 'new_instances' not in result['host']  # its resources are not read: the instance leaves


@pytest.mark.parametrize('state, expected', [
    (dict(record=False), 'uuid: this host has no record of it: it does not run here'),
    (dict(deleted=True), 'uuid: this host has no record of it: it does not run here'),
    (dict(task_state='rebuilding'), 'uuid: its task rebuilding did not finish here; finish it first'),
    (dict(domain=False), 'uuid: libvirt has no domain of it here'),
    (dict(directory=False), 'uuid: its directory %s does not exist'),
])
def test_the_source_refuses_an_instance_it_does_not_run(tmp_path, state, expected):
    connection = leaving(tmp_path, **state)
    found = refusals(driver(tmp_path, [spec()], connection=connection, action='migrate_source'))
    assert found == ['web-1 (%s): %s' % (UUID_A, expected.replace('%s', str(tmp_path / 'instances' / UUID_A)))]


def test_the_destination_takes_an_instance_it_can_run(tmp_path):
    result = driver(tmp_path, [spec()], action='migrate_destination', transfer_bytes={UUID_A: 5 * 1024 * 1024}).run()
    host = result['host']
    assert host['new_instances'] == [UUID_A] and host['disk_needed_mb'] == 5 + 64
    assert (host['vcpus'], host['vcpus_used'], host['vcpus_needed'], host['vcpus_limit']) == (2, 0, 1, 32)


@pytest.mark.parametrize('change, expected', [
    (dict(available_mb=100), 'host qemu:///system: flavor.memory_mb: the new instances need 192 MiB of memory'),
    (dict(free_mb=60), 'host qemu:///system: instances_path: the new instances need 69 MiB'),
    (dict(runner=FakeRunner(bridges=())), 'web-1 (%s): vifs[0].bridge: the Open vSwitch bridge br-int does not exist'
     % UUID_A),
    (dict(cpu_allocation_ratio=1.0), 'host qemu:///system: flavor.vcpus: the arriving instances need 1 vCPUs, 2 of '
     'the 2 this host allows (2 CPUs x allocation ratio 1.0) are in use'),
    (dict(image='/nonexistent/guest.qcow2'), 'web-1 (%s): image.source: /nonexistent/guest.qcow2 does not exist'
     % UUID_A),
])
def test_a_destination_that_cannot_take_the_instance_is_refused(tmp_path, change, expected):
    busy = FakeDomain('instance-00000009', UUID_B)
    busy.vcpus = 2
    image = change.pop('image', None)
    found = refusals(driver(tmp_path, [spec(image_source=image)], connection=FakeConnection([busy]),
                            action='migrate_destination', transfer_bytes={UUID_A: 5 * 1024 * 1024}, **change))
    assert any(line.startswith(expected) for line in found), found


def test_the_destination_must_not_have_the_instance_but_may_have_a_leftover_of_its_migration(tmp_path):
    found = refusals(driver(tmp_path, [spec()], connection=FakeConnection([FakeDomain('instance-00000001', UUID_A)]),
                            action='migrate_destination'))
    assert found == ['web-1 (%s): to: libvirt here has a domain of it already (instance-00000001): it runs on this '
                     'host' % UUID_A]
    leaving(tmp_path, domain=False)
    found = refusals(driver(tmp_path, [spec()], action='migrate_destination'))
    assert found == ['web-1 (%s): to: this host has it already (vm_state active)' % UUID_A]
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        store.save_instance(UUID_A, {'task_state': 'migrating'})  # what a failed migration left here
    result = driver(tmp_path, [spec()], action='migrate_destination').run()
    assert result['host']['new_instances'] == [UUID_A]
    # ... also with the domain it defined and did not start
    stopped = FakeConnection([FakeDomain('instance-00000001', UUID_A, running=False)])
    assert driver(tmp_path, [spec()], connection=stopped, action='migrate_destination').run()['host']['arrived'] == []


@pytest.mark.parametrize('params, expected', [
    (dict(action='boot', transfer_bytes={UUID_A: 1}), 'transfer_bytes: is for action migrate_destination only'),
    (dict(action='migrate_destination', transfer_bytes={'nope': 1}), 'transfer_bytes: '),
    (dict(action='migrate_destination', transfer_bytes={UUID_A: -1}), 'transfer_bytes[%s]: ' % UUID_A),
    (dict(action='migrate_destination', cpu_allocation_ratio=0.5), 'cpu_allocation_ratio: must be 1 to 1024'),
])
def test_the_migration_options_are_checked(tmp_path, params, expected):
    with pytest.raises(KvmhostError) as caught:
        driver(tmp_path, [spec()], **params).run()
    assert str(caught.value).startswith(expected), str(caught.value)


def test_an_instance_migrated_away_is_no_refusal_on_its_source(tmp_path):
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        store.save_instance(UUID_A, {'name': 'web-1', 'vm_state': 'deleted', 'deleted': True, 'host': 'kvm2'})
    result = driver(tmp_path, [spec()], action='migrate_source').run()
    assert result['host']['departed'] == {UUID_A: 'kvm2'} and result['host']['transfer_bytes'] == {}


@pytest.mark.parametrize('task_state, finished, message, running, arrived', [
    (None, True, None, True, True),        # an earlier migration brought it here and it runs: the source lets go
    (None, False, None, True, False),      # that migration did not finish
    (None, True, 'failed', True, False),   # ... or ended with an error
    (None, True, None, False, False),      # the domain does not run
    ('migrating', False, None, True, True),  # killed after the start, before its record was finished
    ('rebuilding', False, None, True, False),
])
def test_an_instance_an_earlier_migration_brought_here_is_found(
        tmp_path, task_state, finished, message, running, arrived):
    with StateStore.open(str(tmp_path / 'state.db')) as store:
        store.save_instance(UUID_A, {'name': 'web-1', 'vm_state': 'active', 'task_state': task_state})
        store.save_action(UUID_A, 'req-boot', action='create', start_time='2026-12-01T10:00:00.000000Z',
                          finish_time='2026-12-01T10:01:00.000000Z')
        store.save_action(UUID_A, 'req-move', action='migrate', start_time='2026-12-02T10:00:00.000000Z',
                          finish_time='2026-12-02T10:05:00.000000Z' if finished else None, message=message)
    connection = FakeConnection([FakeDomain('instance-00000001', UUID_A, running=running)])
    run = driver(tmp_path, [spec()], connection=connection, action='migrate_destination')
    if arrived:
        assert run.run()['host']['arrived'] == [UUID_A]
    else:
        assert refusals(run) == ['web-1 (%s): to: libvirt here has a domain of it already (instance-00000001): it '
                                 'runs on this host' % UUID_A]
