# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""domain_xml against the real libvirt: its schema, libvirtd, QEMU, and the module run for real.

- every golden file of tests/unit/plugins/module_utils/virt/golden/domain_xml validates with ``virt-xml-validate``;
- libvirtd defines a generated domain (with schema validation on) and gives back XML that contains ours, as the
  domain module's drift check needs; the domain is undefined afterwards, even on failure;
- a generated domain boots the demo guest and its serial console lands in ``<instance dir>/console.log``;
- the module: check mode, apply, idempotent check, idempotent apply with ``dest``; bad input fails clearly and
  writes nothing.

Domains are named ``instance-%08x`` as the module names them, with ids in 0x7e570000-0x7e57dfff (never a real
instance's) and random UUIDs.
"""

from __future__ import annotations

import copy
import glob
import os
import random
import shutil
import stat
import subprocess
import uuid as uuid_lib

import pytest

from kvmhost_testlib import ROOT, run_module

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import check_domain_spec
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import build_domain_xml
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.drift import domain_drift

GOLDEN = sorted(glob.glob(os.path.join(ROOT, 'tests', 'unit', 'plugins', 'module_utils', 'virt', 'golden', 'domain_xml',
                                       '*.xml')))
TEST_LOCAL_IDS = (0x7e570000, 0x7e57dfff)  # test_compute_flow uses 0x7e57f000
PORT = '8dbfeeff-e21c-4b3d-b527-77845d2a998b'
VOLUME = '6f1c0b5e-3a52-4c8e-9d0a-6b7f1e2d3c4b'
SECRET = '0f2c4f2e-5d0b-4a59-9d36-2f6f0d6e8b11'


def virt_xml_validate(path):
    if shutil.which('virt-xml-validate') is None:
        pytest.skip('virt-xml-validate is not installed (package libvirt-clients)')
    return subprocess.run(['virt-xml-validate', str(path), 'domain'], capture_output=True, text=True, check=False)


def test_there_are_golden_files():
    assert len(GOLDEN) >= 7, GOLDEN


@pytest.mark.parametrize('path', GOLDEN, ids=[os.path.basename(path) for path in GOLDEN])
def test_golden_file_validates_with_libvirt_schema(path):
    process = virt_xml_validate(path)
    assert process.returncode == 0, process.stdout + process.stderr


def spec(instances_path, uuid=None, **changes):
    """Module parameters of a domain using every feature: three plug types, both volume transports, local disks."""
    instance = {
        'uuid': uuid or str(uuid_lib.uuid4()),
        'name': 'kvmhost-test <web> & "db"',
        'flavor': {'vcpus': 1, 'memory_mb': 128, 'root_gb': 1, 'ephemeral_gb': 1, 'swap_mb': 32, 'name': 'm1.test'},
        'image': {'id': 'demo-guest-v1', 'kernel': '/var/lib/kvmhost/images/demo-vmlinuz',
                  'ramdisk': '/var/lib/kvmhost/images/demo-initrd.gz', 'cmdline': 'console=ttyS0 no_timer_check'},
        'vifs': [
            {'id': PORT, 'address': 'fa:16:3e:81:a8:b4', 'type': 'ovs_hybrid', 'bridge': 'br-int', 'mtu': 1450,
             'network': {'ips': ['10.10.10.13']}},
            {'id': str(uuid_lib.uuid4()), 'address': 'fa:16:3e:81:a8:b5', 'type': 'ovs', 'bridge': 'br-int'},
            {'id': str(uuid_lib.uuid4()), 'address': 'fa:16:3e:81:a8:b6', 'type': 'bridge', 'bridge': 'brq-test',
             'vlan': 100, 'physical_interface': 'eth9', 'mtu': 1500},
        ],
        'volumes': [
            {'id': VOLUME, 'device_name': 'vdd', 'target_portal': '127.0.0.1:3260',
             'target_iqn': 'iqn.2026-11.org.example:volume-6f1c0b5e', 'target_lun': 1, 'transport': 'qemu',
             'auth': {'method': 'CHAP', 'username': 'u', 'password': 'chap-password-1'}},
            {'id': str(uuid_lib.uuid4()), 'device_name': 'vde', 'target_portal': '127.0.0.1:3260',
             'target_iqn': 'iqn.2026-11.org.example:volume-2', 'target_lun': 2, 'transport': 'host'},
        ],
        'security_groups': [],
    }
    params = {'instance': instance, 'local_id': random.randint(*TEST_LOCAL_IDS), 'virt_type': 'qemu',
              'instances_path': str(instances_path), 'vnc': True, 'volume_secrets': {VOLUME: SECRET}}
    params.update(changes)
    return params


@pytest.mark.parametrize('virt_type', ['qemu', 'kvm'])
def test_libvirt_defines_the_domain_and_keeps_what_we_wrote(libvirt_conn, libvirt_test_domains, libvirt_test_dir,
                                                            tmp_path, virt_type):
    libvirt = pytest.importorskip('libvirt')
    if "<domain type='%s'" % virt_type not in libvirt_conn.getCapabilities():
        pytest.skip('libvirt offers no %s domains on this host' % virt_type)
    params = spec(libvirt_test_dir, virt_type=virt_type)
    xml = build_domain_xml(params)
    path = tmp_path / 'domain.xml'
    path.write_text(xml)
    process = virt_xml_validate(path)
    assert process.returncode == 0, process.stdout + process.stderr

    name = check_domain_spec(params).domain_name
    assert name not in libvirt_conn.listDefinedDomains(), 'test domain %s exists already' % name
    dom = libvirt_conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    libvirt_test_domains.defined.append(dom)  # undefined by the fixture, even when an assertion below fails
    assert dom.name() == name
    assert dom.UUIDString() == params['instance']['uuid']
    defined = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert domain_drift(xml, defined) == []


def test_the_domain_boots_the_demo_guest_and_logs_its_console(libvirt_conn, libvirt_test_domains, libvirt_test_dir,
                                                              demo_images, demo_console):
    libvirt = pytest.importorskip('libvirt')
    params = spec(libvirt_test_dir, vnc=False, volume_secrets={})
    instance = params['instance']
    instance.update(vifs=[], volumes=[], flavor={'vcpus': 1, 'memory_mb': 192})
    instance['image'].update(kernel=str(demo_images.kernel), ramdisk=str(demo_images.initrd))
    instance_dir = libvirt_test_dir / instance['uuid']
    instance_dir.mkdir(mode=0o755)
    disk = instance_dir / 'disk'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b',
                    str(demo_images.image('demo-guest-v1')), str(disk)], check=True)
    shutil.copyfile(demo_images.kernel, instance_dir / 'kernel')
    shutil.copyfile(demo_images.initrd, instance_dir / 'ramdisk')
    for path in (disk, instance_dir / 'kernel', instance_dir / 'ramdisk'):
        path.chmod(0o644)

    dom = libvirt_test_domains.define(build_domain_xml(params))
    console = demo_console(instance_dir / 'console.log')
    console.mark()
    dom.create()
    lines = console.wait_boot(90.0)
    assert 'disk vda marker=demo-guest-v1 boots=1' in lines
    dom.destroy()
    assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF


# ---------------------------------------------------------------- the module, run for real

def domain_xml(params, check=False, diff=False):
    return run_module('domain_xml', params, check=check, diff=diff)


def test_check_apply_idempotent_check_idempotent_apply(tmp_path):
    dest = tmp_path / 'libvirt.xml'
    params = spec('/var/lib/kvmhost/instances', dest=str(dest), creation_time='2026-11-23T10:00:00Z')

    checked = domain_xml(params, check=True, diff=True)
    assert checked['changed'] is True, checked
    assert checked['diff']['before'] == '' and checked['diff']['after'] == checked['xml']
    assert checked['diff']['after_header'] == str(dest)
    assert not dest.exists(), 'check mode wrote the file'

    applied = domain_xml(params, diff=True)
    assert applied['changed'] is True
    assert applied['xml'] == checked['xml']
    assert dest.read_text() == applied['xml']
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert applied['dest'] == str(dest)
    assert applied['domain_name'] == 'instance-%08x' % params['local_id']
    assert [disk['target'] for disk in applied['devices']['disks']] == ['vda', 'vdb', 'vdc', 'vdd', 'vde']
    assert [vif['dev'] for vif in applied['devices']['interfaces']][0] == 'tap8dbfeeff-e2'

    again = domain_xml(params, check=True, diff=True)
    assert again['changed'] is False
    assert again['diff']['before'] == again['diff']['after']
    last = domain_xml(params)
    assert last['changed'] is False
    assert last['xml'] == applied['xml']
    assert sorted(os.listdir(str(tmp_path))) == ['libvirt.xml']

    changed = copy.deepcopy(params)
    changed['instance']['flavor']['memory_mb'] = 256
    rewritten = domain_xml(changed, diff=True)
    assert rewritten['changed'] is True
    assert '<memory unit="KiB">131072</memory>' in rewritten['diff']['before']
    assert '<memory unit="KiB">262144</memory>' in rewritten['diff']['after']
    assert dest.read_text() == rewritten['xml']


def test_without_dest_nothing_changes_and_the_xml_is_the_builders():
    params = spec('/var/lib/kvmhost/instances')
    # The CHAP password is no_log, and Ansible masks a no_log value wherever it occurs in the output: a short one
    # like the contract's example 'p' would mask letters of the XML. The module drops it after parsing.
    params['instance']['volumes'][0]['auth']['password'] = 'p'
    result = domain_xml(params)
    assert result['changed'] is False
    assert result['dest'] is None
    assert result['xml'] == build_domain_xml(params)
    assert result['invocation']['module_args']['instance']['volumes'][0]['auth']['password'] is None


BAD = [
    (('instance', 'uuid'), '1e0e6ed9-67fd', 'instance.uuid: must be a UUID'),
    (('instances_path',), 'var/lib/kvmhost/instances', 'instances_path: must be an absolute path'),
    (('instance', 'flavor', 'memory_mb'), 0, 'instance.flavor.memory_mb: must be 1..16777216, got 0'),
    (('instance', 'flavor', 'vcpus'), -1, 'instance.flavor.vcpus: must be 1..4096, got -1'),
    (('local_id',), 0, 'local_id: must be 1..'),
    (('instance', 'vifs', 0, 'id'), '../../tmp/x', 'instance.vifs[0].id: must be a port id'),
    (('instance', 'vifs', 0, 'address'), '01:16:3e:81:a8:b4', 'instance.vifs[0].address: must be a unicast MAC'),
    (('instance', 'vifs', 0, 'address'), 'fa:16:3e:81:a8', 'instance.vifs[0].address: must be a MAC address'),
    (('instance', 'vifs', 0, 'type'), 'macvtap', 'value of type must be one of: ovs_hybrid, ovs, bridge'),
    (('instance', 'vifs', 0, 'mtu'), 65536, 'instance.vifs[0].mtu: must be 68..65535'),
    (('instance', 'volumes', 0, 'target_iqn'), 'iqn.2026-11.org.example/x', 'instance.volumes[0].target_iqn: must be'),
    (('instance', 'volumes', 0, 'target_lun'), 16384, 'instance.volumes[0].target_lun: must be 0..16383'),
    (('instance', 'volumes', 0, 'target_portal'), '127.0.0.1:99999', 'instance.volumes[0].target_portal: port must'),
    (('instance', 'volumes', 0, 'target_portal'), 'localhost:3260', 'instance.volumes[0].target_portal: must be'),
    (('instance', 'volumes', 0, 'device_name'), 'vda', 'instance.volumes[0].device_name: must be vdb to vdz'),
    (('instance', 'volumes', 0, 'device_name'), 'vdb', 'instance.volumes[0].device_name: vdb is already the ephemeral'),
    (('instance', 'image', 'ramdisk'), None, 'instance.image.ramdisk: the kernel needs a ramdisk here'),
    (('volume_secrets',), {}, 'volume_secrets.%s: volume %s uses CHAP' % (VOLUME, VOLUME)),
    (('dest',), '/nonexistent-kvmhost-dir/libvirt.xml', 'dest: directory /nonexistent-kvmhost-dir does not exist'),
    (('instance', 'colour'), 'blue', 'Unsupported parameters'),
]


@pytest.mark.parametrize('where, value, message', BAD, ids=[message for _where, _value, message in BAD])
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, where, value, message):
    dest = tmp_path / 'libvirt.xml'
    params = spec('/var/lib/kvmhost/instances', dest=str(dest), ramdisk_required=True)
    target = params
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    result = domain_xml(params)
    assert result.get('failed') is True, result
    assert message in result['msg'], result['msg']
    assert not dest.exists()
    assert os.listdir(str(tmp_path)) == []
