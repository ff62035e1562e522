# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_attach with transport qemu, and the portal checks, against fakes of libvirt and libiscsi's tools.

The libiscsi outputs are the ones iscsi-ls / iscsi-inq 1.19 (Debian 12) print against tgt on this machine.
tests/integration/test_iscsi_volumes.py runs the module against the real tgtd, libvirtd and QEMU.
"""

from __future__ import annotations

import copy
import functools
import socket

import pytest

libvirt = pytest.importorskip('libvirt')
pytest.importorskip('lxml')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi import probe  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.hotplug import (  # noqa: E402
    VIR_DOMAIN_AFFECT_CONFIG, VIR_DOMAIN_AFFECT_LIVE, disk_xml, find_volume_disk)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.iscsi_attach import IscsiAttachDriver  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.qemu_transport import secret_xml  # noqa: E402

IQN = 'iqn.2026-11.test.kvmhost:vol'
VOLUME_ID = '6f1c0b5e-3a52-4c8e-9d0a-6b7f1e2d3c4b'
DOMAIN_UUID = '11111111-2222-4333-8444-555555555555'
ISCSI_LS = 'Target:%s Portal:127.0.0.1:3260,1\n' % IQN
AUTH_FAILED = 'Login Failed. Failed to log in to target. Status: Authentication failure(513)\n'
NO_LUN = 'Login Failed. SENSE KEY:ILLEGAL_REQUEST(5) ASCQ:LOGICAL_UNIT_NOT_SUPPORTED(0x2500)\n'


class FakeLibiscsi(object):
    def __init__(self, ls=(0, ISCSI_LS, ''), inq=(0, 'Peripheral Device Type:DIRECT_ACCESS\n', '')):
        self.ls, self.inq, self.calls = ls, inq, []

    def __call__(self, module):
        return self

    def run(self, argv, env=None):
        self.calls.append((list(argv), dict(env or {})))
        return self.ls if argv[2] == 'iscsi-ls' else self.inq


def connected(address, timeout):
    return socket.socket()


@pytest.fixture(autouse=True)
def reachable_portal(monkeypatch):
    # probe_portal binds socket.create_connection as its default when it is defined: patching the socket module
    # alone left the probe on a real connection, which passed only where a portal listens on 127.0.0.1:3260.
    monkeypatch.setattr(probe, 'probe_portal', functools.partial(probe.probe_portal, connect=connected))


def test_check_target_passes_chap_in_the_environment_only():
    runner = FakeLibiscsi()
    facts = probe.check_target_answers(runner, '127.0.0.1', 3260, IQN, 1, 5, 'u', 'p')
    assert facts['exported_targets'] == [IQN]
    (ls_argv, ls_env), (inq_argv, inq_env) = runner.calls
    assert ls_argv == ['timeout', '5', 'iscsi-ls', 'iscsi://127.0.0.1:3260'] and ls_env == {}
    assert inq_argv == ['timeout', '5', 'iscsi-inq', 'iscsi://127.0.0.1:3260/%s/1' % IQN]
    assert inq_env == {'LIBISCSI_CHAP_USERNAME': 'u', 'LIBISCSI_CHAP_PASSWORD': 'p'}
    assert not any('p' == arg for arg in inq_argv)


@pytest.mark.parametrize('runner, field, text', [
    (FakeLibiscsi(inq=(10, '', AUTH_FAILED + ' secret-pw')), 'volume.auth', 'authentication failed'),
    (FakeLibiscsi(inq=(10, '', NO_LUN)), 'volume.target_lun', 'does not export LUN 1'),
    (FakeLibiscsi(ls=(0, 'Target:iqn.2026-11.other:x Portal:127.0.0.1:3260,1\n', '')), 'volume.target_iqn',
     'does not export target'),
    (FakeLibiscsi(ls=(124, '', '')), 'volume.target_portal', 'within 5 s (timeout)'),
    (FakeLibiscsi(inq=(124, '', '')), 'volume.target_portal', 'within 5 s (timeout)'),
    (FakeLibiscsi(inq=(0, 'Peripheral Qualifier:CONNECTED\nPeripheral Device Type:STORAGE_ARRAY_CONTROLLER\n', '')),
     'volume.target_lun', 'is not a disk (STORAGE_ARRAY_CONTROLLER)'),
])
def test_check_target_errors(runner, field, text):
    with pytest.raises(KvmhostError) as info:
        probe.check_target_answers(runner, '127.0.0.1', 3260, IQN, 1, 5, 'u', 'secret-pw')
    assert str(info.value).startswith(field) and text in str(info.value)
    assert 'secret-pw' not in str(info.value)


def test_probe_portal_timeout_and_refusal():
    def slow(address, timeout):
        raise socket.timeout()

    def refused(address, timeout):
        raise ConnectionRefusedError(111, 'Connection refused')

    with pytest.raises(KvmhostError, match=r'^volume.target_portal: portal \[fd00::1\]:3260 did not answer within 3 s'):
        probe.probe_portal('fd00::1', 3260, 3, 'volume.target_portal', connect=slow)
    with pytest.raises(KvmhostError, match='Connection refused'):
        probe.probe_portal('127.0.0.1', 1, 3, connect=refused)


# ---------------------------------------------------------------- the driver, transport qemu

class NoSecret(libvirt.libvirtError):
    def __init__(self):
        super().__init__('no secret')

    def get_error_code(self):
        return 66


class FakeSecret(object):
    def __init__(self, store, usage):
        self.store, self.usage, self.data = store, usage, None

    def UUIDString(self):
        return 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee'

    def value(self):
        if self.data is None:
            raise NoSecret()
        return self.data

    def setValue(self, data):
        self.data = data

    def undefine(self):
        del self.store[self.usage]


class FakeDomain(object):
    def __init__(self, active=True):
        self.active = active
        self.xml = {0: self.empty(), 2: self.empty()}
        self.calls = []

    @staticmethod
    def empty():
        return '<domain><devices><disk type="file"><target dev="vda"/></disk></devices></domain>'

    def isActive(self):
        return self.active

    def XMLDesc(self, flags):
        return self.xml[flags]

    def attachDeviceFlags(self, xml, flags):
        self.calls.append(('attach', flags))
        for flag, key in ((VIR_DOMAIN_AFFECT_LIVE, 0), (VIR_DOMAIN_AFFECT_CONFIG, 2)):
            if flags & flag:
                self.xml[key] = self.xml[key].replace('</devices>', xml + '</devices>')

    def detachDeviceFlags(self, xml, flags):
        self.calls.append(('detach', flags))
        self.xml[0 if flags == VIR_DOMAIN_AFFECT_LIVE else 2] = self.empty()


class FakeConnection(object):
    secrets = {}
    domain = None

    def __init__(self, uri):
        self.conn = self

    def close(self):
        pass

    def domain_by_uuid(self, uuid):
        return self.domain

    def secretLookupByUsage(self, usage_type, usage):
        assert usage_type == 3
        if usage not in self.secrets:
            raise NoSecret()
        return self.secrets[usage]

    def secretDefineXML(self, xml):
        usage = 'kvmhost-volume-' + VOLUME_ID
        assert '<target>%s</target>' % usage in xml
        self.secrets[usage] = FakeSecret(self.secrets, usage)
        return self.secrets[usage]


class FakeModule(object):
    def __init__(self, params, check_mode=False):
        self.params, self.check_mode, self._diff = params, check_mode, True
        self.no_log_values = set()


def volume(**overrides):
    spec = {'id': VOLUME_ID, 'device_name': 'vdb', 'target_portal': '127.0.0.1:3260', 'target_iqn': IQN,
            'target_lun': 1, 'transport': 'qemu', 'auth': {'method': 'CHAP', 'username': 'u', 'password': 'p'}}
    spec.update(overrides)
    return spec


def drive(params, check_mode=False, libiscsi=None):
    full = dict(libvirt_uri='test:///default', state='attached', domain_uuid=None, disk_cache='none', timeout=5,
                scan_tries=5)
    full.update(copy.deepcopy(params))

    class Driver(IscsiAttachDriver):
        connection_class = FakeConnection
        discovery_runner_class = libiscsi or FakeLibiscsi()
        detach_wait = 1.0

    module = FakeModule(full, check_mode)
    return Driver(module).outcome(), module


@pytest.fixture
def libvirt_fakes():
    FakeConnection.secrets = {}
    FakeConnection.domain = None
    yield FakeConnection


def test_qemu_attach_rhythm_with_secret(libvirt_fakes):
    result, module = drive(dict(volume=volume()), check_mode=True)
    assert result['changed'] and libvirt_fakes.secrets == {} and result['secret_uuid'] is None
    assert module.params['volume']['auth']['password'] is None  # dropped after parsing
    result, _module = drive(dict(volume=volume()))
    assert result['changed'] and result['volume_secrets'] == {VOLUME_ID: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee'}
    assert libvirt_fakes.secrets['kvmhost-volume-' + VOLUME_ID].data == b'p'
    assert 'uuid="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"' in result['disk_xml']
    assert result['source'] == {'protocol': 'iscsi', 'name': IQN + '/1', 'host': '127.0.0.1', 'port': 3260,
                                'username': 'u'}
    again, _module = drive(dict(volume=volume()))
    assert again['changed'] is False and again['secret_uuid'] == result['secret_uuid']
    changed, _module = drive(dict(volume=volume(auth={'method': 'CHAP', 'username': 'u', 'password': 'new'})))
    assert changed['changed'] and libvirt_fakes.secrets['kvmhost-volume-' + VOLUME_ID].data == b'new'
    gone, _module = drive(dict(volume=volume(), state='detached'))
    assert gone['changed'] and libvirt_fakes.secrets == {}
    assert drive(dict(volume=volume(), state='detached'))[0]['changed'] is False


def test_qemu_attach_without_chap_has_no_secret(libvirt_fakes):
    result, _module = drive(dict(volume=volume(auth=None)))
    assert result['changed'] is False and result['volume_secrets'] == {} and '<auth' not in result['disk_xml']


def test_qemu_hot_plug_live_and_persistent(libvirt_fakes):
    domain = libvirt_fakes.domain = FakeDomain()
    params = dict(volume=volume(), domain_uuid=DOMAIN_UUID)
    checked, _module = drive(params, check_mode=True)
    assert checked['domain_attached'] is True and domain.calls == []
    result, _module = drive(params)
    assert domain.calls == [('attach', VIR_DOMAIN_AFFECT_LIVE | VIR_DOMAIN_AFFECT_CONFIG)]
    assert find_volume_disk(domain.XMLDesc(0), VOLUME_ID) is not None and result['domain_attached'] is True
    assert drive(params)[0]['changed'] is False
    detached, _module = drive(dict(params, state='detached'))
    assert domain.calls[1:] == [('detach', VIR_DOMAIN_AFFECT_CONFIG), ('detach', VIR_DOMAIN_AFFECT_LIVE)]
    assert detached['domain_attached'] is False
    assert drive(dict(params, state='detached'))[0]['changed'] is False


def test_hot_plug_refuses_a_taken_target(libvirt_fakes):
    domain = libvirt_fakes.domain = FakeDomain(active=False)
    domain.xml[2] = domain.xml[2].replace('</devices>', '<disk><target dev="vdb"/><serial>x</serial></disk></devices>')
    with pytest.raises(KvmhostError, match='^volume.device_name'):
        drive(dict(volume=volume(), domain_uuid=DOMAIN_UUID))


def test_wrong_password_fails_without_change(libvirt_fakes):
    with pytest.raises(KvmhostError) as info:
        drive(dict(volume=volume()), libiscsi=FakeLibiscsi(inq=(10, '', AUTH_FAILED)))
    assert 'authentication failed' in str(info.value) and libvirt_fakes.secrets == {}


@pytest.mark.parametrize('overrides, field', [
    (dict(target_iqn='iqn.bad'), 'volume.target_iqn'), (dict(target_lun=16384), 'volume.target_lun'),
    (dict(target_portal='127.0.0.1'), 'volume.target_portal'), (dict(target_portal='300.0.0.1:3260'),
                                                                'volume.target_portal'),
    (dict(auth={'method': 'CHAP', 'username': 'u', 'password': None}), 'volume.auth'),
])
def test_bad_volume(libvirt_fakes, overrides, field):
    with pytest.raises(KvmhostError) as info:
        drive(dict(volume=volume(**overrides)))
    assert str(info.value).startswith(field)


def test_secret_and_disk_xml():
    assert '<usage type="iscsi"><target>kvmhost-volume-v1</target></usage>' in secret_xml('v1')
    from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import Disk
    disk = Disk(target='vdb', kind='volume', volume_id='v1', transport='qemu', iscsi_name=IQN + '/1',
                host='127.0.0.1', port=3260, auth_username='u', secret_uuid='aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee')
    text = disk_xml(disk, 'none')
    assert text.startswith('<disk type="network" device="disk">') and '<serial>v1</serial>' in text
