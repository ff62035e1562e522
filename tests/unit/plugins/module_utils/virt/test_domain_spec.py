# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checked spec of a domain: what check_domain_spec accepts, and the field it names when it refuses."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import (
    check_creation_time, check_domain_spec, iscsi_by_path)

from .instance_specs import PORT, SECRET, VOLUME, hybrid_vif, instance, params, qemu_volume


def test_iscsi_by_path():
    assert iscsi_by_path('fd00::5', 3260, 'iqn.2026-11.org.example:v', 3) == (
        '/dev/disk/by-path/ip-[fd00::5]:3260-iscsi-iqn.2026-11.org.example:v-lun-3')


@pytest.mark.parametrize('value, wanted', [
    ('2026-11-23T10:00:00Z', '2026-11-23 10:00:00'),
    ('2026-11-23 10:00:00', '2026-11-23 10:00:00'),
    ('2026-11-23T12:00:00+02:00', '2026-11-23 10:00:00'),
    ('2026-11-23T10:00:00.123456', '2026-11-23 10:00:00'),
    (None, None),
])
def test_creation_time(value, wanted):
    assert check_creation_time(value) == wanted


def _with(path, value, base=None):
    """A copy of the params (default params()) with the value at a dotted path (ints index lists)."""
    result = copy.deepcopy(base if base is not None else params())
    target = result
    keys = path.split('.')
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    target[int(last) if last.isdigit() else last] = value
    return result


WITH_VIF = params(instance(vifs=[hybrid_vif()]))
WITH_VOLUME = params(instance(volumes=[qemu_volume()]), volume_secrets={VOLUME: SECRET})


def _vol(path, value):
    """WITH_VOLUME with the value at a path inside its one volume."""
    return _with('instance.volumes.0.' + path, value, WITH_VOLUME)


WITH_VOLUME_NO_AUTH = params(instance(volumes=[qemu_volume(auth=None)]))
V0 = r'instance.volumes\[0\].'
WITH_EPHEMERAL = params(instance(flavor={'vcpus': 1, 'memory_mb': 64, 'ephemeral_gb': 1}))


@pytest.mark.parametrize('bad, field', [
    (_with('instance.uuid', '1e0e6ed9-67fd-4b64-98d6'), 'instance.uuid: must be a UUID'),
    (_with('instance.uuid', '../1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'), 'instance.uuid: must be a UUID'),
    (_with('instance.uuid', None), 'instance.uuid: must be a UUID'),
    (_with('instance.name', ''), 'instance.name: must be a non-empty string'),
    (_with('instance.name', 'web\n1'), 'instance.name: must not contain control characters'),
    (_with('instance.name', 'web\ufffe'), 'instance.name: must not contain control characters'),
    (_with('instance', None), 'instance: must be a dictionary'),
    (_with('local_id', 0), 'local_id: must be 1..4294967295, got 0'),
    (_with('local_id', -3), 'local_id: must be 1..4294967295'),
    (_with('local_id', 'x'), 'local_id: must be an integer'),
    (_with('local_id', True), 'local_id: must be an integer'),
    (_with('virt_type', 'lxc'), 'virt_type: must be one of kvm, qemu'),
    (_with('instances_path', 'var/lib/kvmhost/instances'), 'instances_path: must be an absolute path'),
    (_with('instances_path', '/'), 'instances_path: must not be the root directory'),
    (_with('instances_path', '/srv/x\ny'), 'instances_path: must not contain control characters'),
    (_with('instance.flavor.memory_mb', 0), 'instance.flavor.memory_mb: must be 1..16777216, got 0'),
    (_with('instance.flavor.memory_mb', -64), 'instance.flavor.memory_mb: must be 1..16777216'),
    (_with('instance.flavor.vcpus', 0), 'instance.flavor.vcpus: must be 1..4096, got 0'),
    (_with('instance.flavor.root_gb', 10 ** 9), 'instance.flavor.root_gb: must be 0..65536, got 1000000000'),
    (_with('instance.flavor.vcpus', None), 'instance.flavor.vcpus: is required'),
    (_with('instance.flavor.swap_mb', -1), 'instance.flavor.swap_mb: must be 0..67108864'),
    (_with('instance.flavor', None), 'instance.flavor: must be a dictionary'),
    (_with('instance.image.id', '../x'), 'instance.image.id: must not contain "/" or ".."'),
    (_with('instance.image.id', None), 'instance.image.id: must be a non-empty string'),
    (_with('instance.image.kernel', 'vmlinuz'), 'instance.image.kernel: must be an absolute path'),
    (_with('instance.image.ramdisk', '/r'), 'instance.image.ramdisk: a ramdisk needs a kernel'),
    (_with('instance.image.cmdline', 'console=ttyS0'), 'instance.image.cmdline: a kernel command line needs a kernel'),
    (_with('ramdisk_required', True, _with('instance.image.kernel', '/k')),
     'instance.image.ramdisk: the kernel needs a ramdisk here'),
    (_with('cpu_mode', 'host-model', params(virt_type='qemu')), 'cpu_mode: host-model needs virt_type kvm'),
    (_with('cpu_mode', 'max'), 'cpu_mode: must be one of'),
    (_with('disk_cache', 'fast'), 'disk_cache: must be one of'),
    (_with('creation_time', 'yesterday'), 'creation_time: must be a date and time'),
    # VIFs
    (_with('instance.vifs.0.id', '../../etc', WITH_VIF), r'instance.vifs\[0\].id: must be a port id'),
    (_with('instance.vifs.0.id', 'a/b', WITH_VIF), r'instance.vifs\[0\].id: must be a port id'),
    (_with('instance.vifs.0.address', 'fa:16:3e:81:a8', WITH_VIF), r'instance.vifs\[0\].address: must be a MAC'),
    (_with('instance.vifs.0.address', 'fa-16-3e-81-a8-b4', WITH_VIF), r'instance.vifs\[0\].address: must be a MAC'),
    (_with('instance.vifs.0.address', 'fa:16:3e:81:a8:zz', WITH_VIF), r'instance.vifs\[0\].address: must be a MAC'),
    (_with('instance.vifs.0.address', '01:00:5e:00:00:01', WITH_VIF), r'instance.vifs\[0\].address: must be a unicast'),
    (_with('instance.vifs.0.address', 'ff:ff:ff:ff:ff:ff', WITH_VIF), r'instance.vifs\[0\].address: must be a unicast'),
    (_with('instance.vifs.0.address', '00:00:00:00:00:00', WITH_VIF), r'instance.vifs\[0\].address: must not be all'),
    (_with('instance.vifs.0.type', 'macvtap', WITH_VIF), r'instance.vifs\[0\].type: must be one of ovs_hybrid'),
    (_with('instance.vifs.0.type', None, WITH_VIF), r'instance.vifs\[0\].type: must be one of'),
    (_with('instance.vifs.0.mtu', 67, WITH_VIF), r'instance.vifs\[0\].mtu: must be 68..65535, got 67'),
    (_with('instance.vifs.0.mtu', 65536, WITH_VIF), r'instance.vifs\[0\].mtu: must be 68..65535'),
    (_with('instance.vifs.0.mtu', 0, WITH_VIF), r'instance.vifs\[0\].mtu: must be 68..65535'),
    (_with('instance.vifs.0.bridge', 'br/../int', WITH_VIF), r'instance.vifs\[0\].bridge: must be a network device'),
    (_with('instance.vifs.0.bridge', 'a-bridge-name-too-long', WITH_VIF),
     r'instance.vifs\[0\].bridge: must be a network device'),
    (_with('instance.vifs.0.vlan', 100, WITH_VIF), r'instance.vifs\[0\].type: vlan and physical_interface are for'),
    (_with('instance.vifs.0', hybrid_vif(type='bridge', bridge=None), WITH_VIF),
     r'instance.vifs\[0\].bridge: is required with type bridge'),
    (_with('instance.vifs.0', hybrid_vif(type='bridge', vlan=4095, physical_interface='eth1'), WITH_VIF),
     r'instance.vifs\[0\].vlan: must be 1..4094'),
    (_with('instance.vifs.0', hybrid_vif(type='bridge', vlan=10), WITH_VIF),
     r'instance.vifs\[0\].vlan: a VLAN bridge needs physical_interface'),
    (_with('instance.vifs.0', hybrid_vif(type='bridge', vlan=10, physical_interface='eth/1'), WITH_VIF),
     r'instance.vifs\[0\].physical_interface: must be a network device'),
    (_with('instance.vifs.0.network.ips', ['10.10.10.300'], WITH_VIF), r'instance.vifs\[0\].network.ips\[0\]: '),
    (_with('instance.vifs', [hybrid_vif(), hybrid_vif(address='fa:16:3e:81:a8:b5')], WITH_VIF),
     r'instance.vifs\[1\].id: port id 8dbfeeff-e21c-4b3d-b527-77845d2a998b is also the one of instance.vifs\[0\]'),
    (_with('instance.vifs', [hybrid_vif(), hybrid_vif(id=PORT[:11] + 'x')], WITH_VIF),
     r'instance.vifs\[1\].address: MAC address fa:16:3e:81:a8:b4 is also'),
    (_with('instance.vifs', [hybrid_vif(), hybrid_vif(id=PORT[:11] + 'x', address='fa:16:3e:81:a8:b5')], WITH_VIF),
     r'instance.vifs\[1\].id: device name tap8dbfeeff-e2 is also the one of instance.vifs\[0\]: port ids must'),
    (_with('instance.vifs', {'id': PORT}), 'instance.vifs: must be a list'),
    (_with('instance.vifs.0', hybrid_vif(type='ovs', id='port-1'), WITH_VIF), r'instance.vifs\[0\].id: must be a UUID'),
    # Volumes
    (_vol('id', '../v'), V0 + r'id: must be a volume id'),
    (_vol('id', 'a/b'), V0 + r'id: must be a volume id'),
    (_vol('device_name', 'vda'), V0 + r'device_name: must be vdb'),
    (_vol('device_name', 'sdb'), V0 + r'device_name: must be vdb'),
    (_vol('device_name', '/dev/vdb'), V0 + r'device_name: must be'),
    (_vol('device_name', '../vdb'), V0 + r'device_name: must be'),
    (_vol('device_name', 'vdaa'), V0 + r'device_name: must be'),
    (_with('instance.volumes', [qemu_volume()], WITH_EPHEMERAL),
     V0 + r'device_name: vdb is already the ephemeral disk'),
    (_with('instance.volumes', [qemu_volume(auth=None), qemu_volume(id='v2', auth=None)], WITH_VOLUME_NO_AUTH),
     r'instance.volumes\[1\].device_name: vdb is already the device of volume 6f1c0b5e'),
    (_with('instance.volumes', [qemu_volume(auth=None), qemu_volume(device_name='vdc', auth=None)],
           WITH_VOLUME_NO_AUTH),
     r'instance.volumes\[1\].id: volume 6f1c0b5e-3a52-4c8e-9d0a-6b7f1e2d3c4b is listed twice'),
    (_vol('target_iqn', 'iqn.2026-13.org.example:v'),
     V0 + r'target_iqn: must be an iSCSI name'),
    (_vol('target_iqn', 'iqn.26-11.org.example'), V0 + r'target_iqn: must be an iSCSI'),
    (_vol('target_iqn', 'iqn.2026-11.org..example'), V0 + r'target_iqn: must be an iSCSI'),
    (_vol('target_iqn', 'iqn.2026-11.org.example:a/b'), V0 + r'target_iqn: must be'),
    (_vol('target_iqn', 'iqn.2026-11.org.example:a b'), V0 + r'target_iqn: must be'),
    (_vol('target_iqn', 'eui.0123456789abcde'), V0 + r'target_iqn: must be an iSCSI'),
    (_vol('target_iqn', 'naa.0123456789abcdef'), V0 + r'target_iqn: must be an iSCSI'),
    (_vol('target_lun', 16384),
     V0 + r'target_lun: must be 0..16383, got 16384'),
    (_vol('target_lun', -1), V0 + r'target_lun: must be 0..16383'),
    (_vol('target_portal', '127.0.0.1'),
     V0 + r'target_portal: must be ADDRESS:PORT'),
    (_vol('target_portal', 'iscsi.example:3260'), V0 + r'target_portal: must be ADDRESS'),
    (_vol('target_portal', '127.0.0.256:3260'),
     V0 + r"target_portal: '127.0.0.256' is not a valid IP address"),
    (_vol('target_portal', '127.0.0.1:0'), V0 + r'target_portal: port must be 1..65535'),
    (_vol('target_portal', '127.0.0.1:65536'), V0 + r'target_portal: port must be 1..'),
    (_vol('target_portal', 'fd00::1:3260'), V0 + r'target_portal: must be ADDRESS:PORT'),
    (_vol('target_portal', '[127.0.0.1]:3260'), V0 + r'target_portal: an IPv6 address'),
    (_vol('transport', 'rbd'), V0 + r'transport: must be one of'),
    (_vol('auth', {'method': 'CHAP', 'username': None}),
     V0 + r'auth.username: must be a non-empty string'),
    (_vol('auth.username', 'u@example'), V0 + r'auth.username: with transport qemu, libvirt takes a CHAP user'),
    (_vol('auth.method', 'kerberos'), V0 + r'auth.method: must be one of CHAP'),
    (_with('volume_secrets', {}, WITH_VOLUME),
     'volume_secrets.%s: volume %s uses CHAP over the qemu' % (VOLUME, VOLUME)),
    (_with('volume_secrets', {VOLUME: 'not-a-uuid'}, WITH_VOLUME), 'volume_secrets.%s: must be a UUID' % VOLUME),
    (_with('volume_secrets', {VOLUME: SECRET, 'other': SECRET}, WITH_VOLUME),
     'volume_secrets.other: the instance has no volume other'),
    (_with('host_volume_paths', {VOLUME: '/dev/sdb'}, WITH_VOLUME),
     'host_volume_paths.%s: volume %s uses the qemu transport' % (VOLUME, VOLUME)),
    (_with('host_volume_paths', {VOLUME: 'dev/sdb'}, _vol('transport', 'host')),
     'volume_secrets.%s: volume %s uses the host transport' % (VOLUME, VOLUME)),
    (_with('host_volume_paths', {VOLUME: 'dev/sdb'},
           _with('volume_secrets', {}, _vol('transport', 'host'))),
     'host_volume_paths.%s: must be an absolute path' % VOLUME),
])
def test_bad_input_names_the_field(bad, field):
    with pytest.raises(KvmhostError, match='^' + field):
        check_domain_spec(bad)
