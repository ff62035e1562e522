# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The domain XML builder: golden files, devices, and the file the module writes.

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

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import check_domain_spec  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import (  # noqa: E402
    NOVA_NS, build_domain_xml, domain_devices, plan_dest)

from .instance_specs import NETWORK, PORT, SECRET, UUID, VOLUME, hybrid_vif, instance, params, qemu_volume  # noqa: E402

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden', 'domain_xml')
REGENERATE = os.environ.get('KVMHOST_REGENERATE_GOLDEN') == '1'


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
