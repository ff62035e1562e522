# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_attach's driver: the transport object it picks by the volume's transport, the hot plug both transports
share, and VolumesDriver (the class the module runs) for an instance's volumes.

test_qemu_transport.py and test_host_transport.py drive each transport through the driver in detail.
"""

from __future__ import annotations

import pytest

pytest.importorskip('libvirt')
pytest.importorskip('lxml')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.host_transport import HostTransport  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.hotplug import (  # noqa: E402
    VIR_DOMAIN_AFFECT_CONFIG, find_volume_disk)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.iscsi_attach import (  # noqa: E402
    IscsiAttachDriver, VolumesDriver)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.qemu_transport import QemuTransport  # noqa: E402

IQN = 'iqn.2026-11.test.kvmhost:vol'
DOMAIN_UUID = '11111111-2222-4333-8444-555555555555'
NODE_READY = 'node.name = %s\nnode.session.scan = manual\nnode.startup = automatic\n' % IQN


def device(lun):
    return '/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-%s-lun-%d' % (IQN, lun)


class LoggedIn(object):
    """iscsiadm and the devices of a host logged in to the target, every LUN's device there."""

    def __init__(self, module):
        self.calls = []

    def iscsiadm(self, args):
        self.calls.append(list(args))
        if args == ['-m', 'session']:
            return 0, 'tcp: [3] 127.0.0.1:3260,1 %s (non-flash)\n' % IQN, ''
        return 0, NODE_READY, ''

    def exists(self, path):
        return True


class FakeDomain(object):
    """A shut-off domain with one disk."""

    def __init__(self):
        self.xml = '<domain><devices><disk type="file"><target dev="vda"/></disk></devices></domain>'
        self.attached = []

    def isActive(self):
        return False

    def XMLDesc(self, flags):
        return self.xml

    def attachDeviceFlags(self, xml, flags):
        self.attached.append((xml, flags))
        self.xml = self.xml.replace('</devices>', xml + '</devices>')


class FakeConnection(object):
    domain = None

    def __init__(self, uri):
        pass

    def domain_by_uuid(self, uuid):
        return self.domain

    def close(self):
        pass


class FakeModule(object):
    def __init__(self, params, check_mode=False):
        self.params = dict(libvirt_uri='test:///default', state='attached', domain_uuid=None, disk_cache='none',
                           timeout=5, scan_tries=5, volume=None, volumes=None)
        self.params.update(params)
        self.check_mode, self._diff = check_mode, False
        self.no_log_values = set()

    def warn(self, warning):
        raise AssertionError(warning)


def volume(volume_id='vol-1', lun=1, transport='host', device_name='vdb'):
    return {'id': volume_id, 'device_name': device_name, 'target_portal': '127.0.0.1:3260', 'target_iqn': IQN,
            'target_lun': lun, 'transport': transport, 'auth': None}


class Driver(IscsiAttachDriver):
    connection_class = FakeConnection
    iscsiadm_runner_class = LoggedIn


class Volumes(VolumesDriver):
    inner = Driver


@pytest.mark.parametrize('transport, kind', [('qemu', QemuTransport), ('host', HostTransport), (None, HostTransport)])
def test_the_driver_picks_the_transport_object_of_the_volume(transport, kind):
    spec = volume(transport=transport)
    driver = Driver(FakeModule({'volume': spec}))
    assert isinstance(driver.transport(spec, driver.check_options(driver.params), None), kind)


def test_the_hot_plug_attaches_the_host_transport_s_device_too():
    domain = FakeConnection.domain = FakeDomain()
    result = Driver(FakeModule({'volume': volume(), 'domain_uuid': DOMAIN_UUID})).outcome()
    assert result['actions'] == ['attach volume vol-1 as vdb to the persistent domain']
    assert [flags for _xml, flags in domain.attached] == [VIR_DOMAIN_AFFECT_CONFIG]
    assert '<source dev="%s"/>' % device(1) in domain.attached[0][0] and result['domain_attached'] is True
    assert find_volume_disk(domain.xml, 'vol-1') is not None
    assert result['source'] == {'dev': device(1)} and result['disk_xml'] == domain.attached[0][0]


def test_the_volumes_of_an_instance_merge_their_paths():
    FakeConnection.domain = None
    result = Volumes(FakeModule({'volumes': [volume(), volume('vol-2', 2, device_name='vdc')]})).outcome()
    assert result['changed'] is False and [one['volume_id'] for one in result['volumes']] == ['vol-1', 'vol-2']
    assert result['host_volume_paths'] == {'vol-1': device(1), 'vol-2': device(2)} and result['volume_secrets'] == {}
