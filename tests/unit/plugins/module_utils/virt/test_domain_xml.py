# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The domain XML builder: golden files, os-vif device names, and refusals of bad input.

The golden files are golden/domain_xml/<name>.xml, one per entry of SPECS. After an intended change of the
output, regenerate them and review the diff:

    KVMHOST_REGENERATE_GOLDEN=1 .venv/bin/pytest tests/unit/plugins/module_utils/virt/test_domain_xml.py

tests/integration/test_domain_xml_schema.py validates every golden file with libvirt's schema.
"""

from __future__ import annotations

import copy
import os
import stat

import pytest

etree = pytest.importorskip('lxml.etree')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import (  # noqa: E402
    NOVA_NS, build_domain_xml, check_creation_time, check_domain_spec, domain_devices, iscsi_by_path, plan_dest,
    qbr_name, qvb_name, qvo_name, tap_name)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError  # noqa: E402

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden', 'domain_xml')
REGENERATE = os.environ.get('KVMHOST_REGENERATE_GOLDEN') == '1'

UUID = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
PORT = '8dbfeeff-e21c-4b3d-b527-77845d2a998b'
VOLUME = '6f1c0b5e-3a52-4c8e-9d0a-6b7f1e2d3c4b'
SECRET = '0f2c4f2e-5d0b-4a59-9d36-2f6f0d6e8b11'
NETWORK = {'id': 'd0068b89-fb82-4864-99ac-0caa105fd660', 'label': 'internal_network', 'cidr': '10.10.10.0/24',
           'gateway': '10.10.10.1', 'dhcp_server': '10.10.10.2', 'ips': ['10.10.10.13']}


def instance(**changes):
    spec = {
        'uuid': UUID,
        'name': 'web-1',
        'flavor': {'vcpus': 1, 'memory_mb': 192, 'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0},
        'image': {'id': 'demo-guest-v1', 'source': '/var/lib/kvmhost/images/demo-guest-v1.qcow2',
                  'checksum': 'sha256:' + '0' * 64},
        'vifs': [],
        'volumes': [],
        'security_groups': [{'name': 'default', 'rules': [{'direction': 'ingress', 'protocol': 'icmp'}]}],
    }
    spec.update(changes)
    return spec


def hybrid_vif(**changes):
    vif = {'id': PORT, 'address': 'fa:16:3e:81:a8:b4', 'type': 'ovs_hybrid', 'bridge': 'br-int', 'vlan': None,
           'physical_interface': None, 'mtu': 1450, 'network': dict(NETWORK)}
    vif.update(changes)
    return vif


def qemu_volume(**changes):
    volume = {'id': VOLUME, 'device_name': 'vdb', 'target_portal': '127.0.0.1:3260',
              'target_iqn': 'iqn.2026-11.org.example:volume-6f1c0b5e', 'target_lun': 1, 'transport': 'qemu',
              'auth': {'method': 'CHAP', 'username': 'u', 'password': 'p'}}
    volume.update(changes)
    return volume


def params(spec=None, **options):
    result = {'instance': spec or instance(), 'local_id': 1, 'virt_type': 'kvm',
              'instances_path': '/var/lib/kvmhost/instances', 'vnc': False, 'volume_secrets': {},
              'host_volume_paths': {}, 'creation_time': None, 'ramdisk_required': False, 'cpu_mode': None,
              'disk_cache': 'none', 'dest': None}
    result.update(options)
    return result


SPECS = {
    # Software emulation, nothing but the root disk.
    'minimal': params(virt_type='qemu'),
    # One port of each plug type; a VLAN Linux bridge; IPv4 and IPv6 addresses in the metadata.
    'vifs': params(instance(vifs=[
        hybrid_vif(),
        hybrid_vif(id='3b2c1d0e-9f8a-4b7c-8d6e-5f4a3b2c1d0e', address='fa:16:3e:00:00:02', type='ovs', mtu=1500,
                   network=dict(NETWORK, ips=['10.10.10.14', 'fd00:10::14'])),
        hybrid_vif(id='c0ffee00-1234-4abc-8def-0123456789ab', address='FA:16:3E:00:00:03', type='bridge',
                   bridge='brq-vlan100', vlan=100, physical_interface='eth1', mtu=None, network=None),
    ]), local_id=0x2a),
    # Host transport (default by-path device and an explicit one) and qemu transport with and without CHAP.
    'volumes': params(instance(volumes=[
        qemu_volume(device_name='vdd'),
        qemu_volume(id='a1b2c3d4-0000-4000-8000-000000000002', device_name='vdb', transport='host',
                    target_iqn='iqn.2026-11.org.example:volume-2', target_lun=0),
        qemu_volume(id='a1b2c3d4-0000-4000-8000-000000000003', device_name='vdc', transport='host',
                    target_portal='[fd00::5]:3260', target_iqn='eui.0123456789ABCDEF', target_lun=16383,
                    auth=None),
        qemu_volume(id='a1b2c3d4-0000-4000-8000-000000000004', device_name='vde', auth=None,
                    target_portal='192.0.2.7:3261'),
    ]), volume_secrets={VOLUME: SECRET},
        host_volume_paths={'a1b2c3d4-0000-4000-8000-000000000003': '/dev/mapper/volume-3'}),
    # Ephemeral and swap take vdb and vdc; the volume comes after them.
    'local_disks': params(instance(
        flavor={'vcpus': 2, 'memory_mb': 512, 'root_gb': 2, 'ephemeral_gb': 1, 'swap_mb': 64, 'name': 'm1.small'},
        volumes=[qemu_volume(device_name='vdd', transport='host', auth=None)])),
    # Direct kernel boot, the creation time in the metadata, writethrough disks.
    'kernel_boot': params(instance(image={
        'id': 'demo-guest-v2', 'source': 'http://images.example/demo-guest-v2.qcow2', 'checksum': 'sha256:' + '1' * 64,
        'kernel': '/var/lib/kvmhost/images/demo-vmlinuz', 'ramdisk': '/var/lib/kvmhost/images/demo-initrd.gz',
        'cmdline': 'console=ttyS0 root=/dev/vda rw'}), virt_type='qemu', creation_time='2026-11-23T10:00:00Z',
        disk_cache='writethrough', ramdisk_required=True),
    # VNC console and host-passthrough CPU.
    'vnc': params(vnc=True, cpu_mode='host-passthrough'),
    # Everything a user writes, with XML metacharacters: escaped by lxml, never interpreted.
    'metacharacters': params(instance(
        name='<web-1> & "db" \'prod\' ]]> <!-- x --> ../../etc/passwd',
        flavor={'vcpus': 1, 'memory_mb': 192, 'name': 'tiny & <fast>'},
        image={'id': 'img<&>"\'', 'kernel': '/k&<>"\'/vmlinuz', 'cmdline': 'console=ttyS0 x="<&>" y=\'1\''},
        vifs=[hybrid_vif(type='bridge', bridge='br-meta', mtu=68)],
        volumes=[qemu_volume(auth={'method': 'CHAP', 'username': 'u<&>"\'', 'password': None}, transport='host')]),
        instances_path='/srv/a&b/<c>/"d"/\'e\'',
        host_volume_paths={VOLUME: '/dev/disk/by-id/<&>"\''}),
}


def golden_path(name):
    return os.path.join(GOLDEN_DIR, name + '.xml')


@pytest.mark.parametrize('name', sorted(SPECS))
def test_output_matches_the_golden_file(name):
    xml = build_domain_xml(check_domain_spec(copy.deepcopy(SPECS[name])))
    path = golden_path(name)
    if REGENERATE:
        os.makedirs(GOLDEN_DIR, exist_ok=True)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(xml)
    with open(path, encoding='utf-8') as handle:
        assert xml == handle.read(), 'regenerate with KVMHOST_REGENERATE_GOLDEN=1 and review the diff'


def test_every_golden_file_has_a_spec():
    assert sorted(name[:-4] for name in os.listdir(GOLDEN_DIR) if name.endswith('.xml')) == sorted(SPECS)


@pytest.mark.parametrize('name', sorted(SPECS))
def test_output_is_deterministic_and_well_formed(name):
    first = build_domain_xml(copy.deepcopy(SPECS[name]))
    assert first == build_domain_xml(copy.deepcopy(SPECS[name]))
    assert first.endswith('</domain>\n')
    root = etree.fromstring(first.encode('utf-8'))
    assert root.tag == 'domain'
    assert root.findtext('uuid') == UUID


def test_metacharacters_survive_as_data():
    spec = copy.deepcopy(SPECS['metacharacters'])
    root = etree.fromstring(build_domain_xml(spec).encode('utf-8'))
    nova = {'nova': NOVA_NS}
    assert root.findtext('metadata/nova:instance/nova:name', namespaces=nova) == spec['instance']['name']
    assert root.find('metadata/nova:instance/nova:flavor', namespaces=nova).get('name') == 'tiny & <fast>'
    assert root.find('metadata/nova:instance/nova:root', namespaces=nova).get('uuid') == 'img<&>"\''
    instance_dir = '/srv/a&b/<c>/"d"/\'e\'/' + UUID
    assert root.find('devices/disk/source').get('file') == instance_dir + '/disk'
    assert root.findtext('os/kernel') == instance_dir + '/kernel'
    assert root.findtext('os/cmdline') == 'console=ttyS0 x="<&>" y=\'1\''
    assert root.find('devices/disk[@type="block"]/source').get('dev') == '/dev/disk/by-id/<&>"\''
    assert root.find('devices/serial/log').get('file') == instance_dir + '/console.log'
    # Nothing the user wrote became markup: one comment-free tree with the expected elements only.
    assert not root.xpath('//comment()')
    assert len(root.findall('devices/disk')) == 2


def test_domain_name_and_devices():
    spec = check_domain_spec(SPECS['local_disks'])
    assert spec.domain_name == 'instance-00000001'
    assert check_domain_spec(params(local_id=0x7e570001)).domain_name == 'instance-7e570001'
    devices = domain_devices(spec)
    assert [(disk['target'], disk['kind']) for disk in devices['disks']] == [
        ('vda', 'root'), ('vdb', 'ephemeral'), ('vdc', 'swap'), ('vdd', 'volume')]
    assert devices['disks'][1]['source'] == '/var/lib/kvmhost/instances/%s/disk.local' % UUID
    assert devices['disks'][3]['source'] == (
        '/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-iqn.2026-11.org.example:volume-6f1c0b5e-lun-1')
    assert devices['console_log'] == '/var/lib/kvmhost/instances/%s/console.log' % UUID


def test_interfaces_of_each_type():
    spec = check_domain_spec(SPECS['vifs'])
    assert [(vif['type'], vif['dev'], vif['bridge'], vif['mac']) for vif in domain_devices(spec)['interfaces']] == [
        ('ovs_hybrid', 'tap8dbfeeff-e2', 'qbr8dbfeeff-e2', 'fa:16:3e:81:a8:b4'),
        ('ovs', 'tap3b2c1d0e-9f', 'br-int', 'fa:16:3e:00:00:02'),
        ('bridge', 'tapc0ffee00-12', 'brq-vlan100', 'fa:16:3e:00:00:03'),
    ]
    root = etree.fromstring(build_domain_xml(spec).encode('utf-8'))
    interfaces = root.findall('devices/interface')
    assert interfaces[0].find('virtualport') is None
    assert interfaces[1].find('virtualport/parameters').get('interfaceid') == '3b2c1d0e-9f8a-4b7c-8d6e-5f4a3b2c1d0e'
    assert interfaces[2].find('mtu') is None


def test_an_ovs_port_id_is_written_as_libvirt_prints_it():
    spec = check_domain_spec(params(instance(vifs=[hybrid_vif(type='ovs', id=PORT.upper())])))
    assert (spec.vifs[0].port_id, spec.vifs[0].tap) == (PORT, 'tap8dbfeeff-e2')
    assert '<parameters interfaceid="%s"/>' % PORT in build_domain_xml(spec)


def test_volume_disks():
    root = etree.fromstring(build_domain_xml(SPECS['volumes']).encode('utf-8'))
    disks = dict((disk.find('target').get('dev'), disk) for disk in root.findall('devices/disk'))
    targets = [disk.find('target').get('dev') for disk in root.findall('devices/disk')]
    assert targets == ['vda', 'vdb', 'vdc', 'vdd', 'vde']
    assert disks['vdb'].get('type') == 'block'
    assert disks['vdb'].find('driver').get('io') == 'native'
    assert disks['vdb'].findtext('serial') == 'a1b2c3d4-0000-4000-8000-000000000002'
    assert disks['vdc'].find('source').get('dev') == '/dev/mapper/volume-3'
    assert disks['vdd'].find('source').get('name') == 'iqn.2026-11.org.example:volume-6f1c0b5e/1'
    assert disks['vdd'].find('source/auth/secret').get('uuid') == SECRET
    assert disks['vde'].find('source/auth') is None
    assert disks['vde'].find('source/host').get('port') == '3261'


def test_vnc_only_when_asked():
    assert '<graphics' not in build_domain_xml(SPECS['minimal'])
    assert '<graphics type="vnc" autoport="yes" listen="127.0.0.1"/>' in build_domain_xml(SPECS['vnc'])


def test_cpu_mode_follows_nova_defaults():
    assert '<cpu mode="host-model"/>' in build_domain_xml(params())
    assert '<cpu' not in build_domain_xml(params(virt_type='qemu'))


@pytest.mark.parametrize('port_id, names', [
    (PORT, ('tap8dbfeeff-e2', 'qbr8dbfeeff-e2', 'qvb8dbfeeff-e2', 'qvo8dbfeeff-e2')),
    ('short', ('tapshort', 'qbrshort', 'qvbshort', 'qvoshort')),
])
def test_os_vif_device_names(port_id, names):
    assert (tap_name(port_id), qbr_name(port_id), qvb_name(port_id), qvo_name(port_id)) == names


@pytest.mark.parametrize('port_id', ['../etc', 'a/b', '', None, 'a b', 'x..y'])
def test_device_names_refuse_unsafe_port_ids(port_id):
    with pytest.raises(KvmhostError, match='port_id: must be a port id'):
        tap_name(port_id)


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


def test_dest_plan_changes_only_when_the_content_differs(tmp_path):
    dest = str(tmp_path / 'libvirt.xml')
    xml = build_domain_xml(SPECS['minimal'])
    plan = plan_dest(dest, xml)
    assert plan.changed and plan.before == '' and plan.after == xml
    plan.apply()
    with open(dest, encoding='utf-8') as handle:
        assert handle.read() == xml
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert not plan_dest(dest, xml).changed
    os.chmod(dest, 0o644)
    plan = plan_dest(dest, xml)
    assert plan.descriptions == ['set the mode of %s to 0600' % dest]
    plan.apply()
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert plan_dest(dest, xml.replace('192', '256')).changed
    assert sorted(os.listdir(str(tmp_path))) == ['libvirt.xml']  # no temporary file left behind


def _with(path, value, base=None):
    """A copy of the params (default SPECS['minimal']) with the value at a dotted path (ints index lists)."""
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
