# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The instances inventory plugin against this machine's libvirtd, run as a user runs it: ansible-inventory.

Two instances whose XML the collection's builder makes (renamed kvmhost-test-...): one defined and shut off, with a
port and its fixed IP in the metadata; one running the demo guest (software emulation, nothing waited for). Beside
them a domain without the collection's metadata, which must not become a host. Every domain is undefined afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid as uuid_lib

import pytest

from kvmhost_testlib import ROOT, VENV_BIN

libvirt = pytest.importorskip('libvirt')
etree = pytest.importorskip('lxml.etree')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import check_domain_spec  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import build_domain_xml  # noqa: E402

PORT = '8dbfeeff-e21c-4b3d-b527-77845d2a998b'


def instance_xml(domain_name, uuid, name, directory, images, vifs=()):
    """The XML the domain_xml module writes for this instance, under a test domain name."""
    spec = {'uuid': uuid, 'name': name,
            'flavor': {'name': 'm1.test', 'vcpus': 1, 'memory_mb': 128, 'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0},
            'image': {'id': 'demo-guest-v1', 'source': str(images.image('demo-guest-v1')),
                      'checksum': 'sha256:' + '0' * 64, 'kernel': str(images.kernel), 'ramdisk': str(images.initrd),
                      'cmdline': 'console=ttyS0 no_timer_check'},
            'vifs': list(vifs), 'volumes': []}
    root = etree.fromstring(build_domain_xml(check_domain_spec(
        {'instance': spec, 'local_id': 1, 'virt_type': 'qemu', 'instances_path': str(directory)})).encode())
    root.find('name').text = domain_name
    return etree.tostring(root, encoding='unicode')


def instance_files(directory, uuid, images):
    """The instance directory the XML points at: a qcow2 overlay of the demo image, the kernel and the ramdisk."""
    path = directory / uuid
    path.mkdir(mode=0o755)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b',
                    str(images.image('demo-guest-v1')), str(path / 'disk')], check=True)
    shutil.copyfile(images.kernel, path / 'kernel')
    shutil.copyfile(images.initrd, path / 'ramdisk')


def ansible_inventory(config_path):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    done = subprocess.run([os.path.join(VENV_BIN, 'ansible-inventory'), '-i', str(config_path), '--list'],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def plain(value):
    """Without the untrusted-string wrappers of --list."""
    if isinstance(value, dict):
        if list(value) == ['__ansible_unsafe']:
            return value['__ansible_unsafe']
        return dict((key, plain(item)) for key, item in value.items())
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def test_instances_of_this_host(demo_images, libvirt_test_dir, libvirt_test_domains, tmp_path):
    tag = uuid_lib.uuid4().hex[:8]
    stopped_uuid, running_uuid = str(uuid_lib.uuid4()), str(uuid_lib.uuid4())
    stopped_name, running_name = 'kvmhost-test-inv-%s-stopped' % tag, 'kvmhost-test-inv-%s-running' % tag
    vif = {'id': PORT, 'address': 'fa:16:3e:7e:57:01', 'type': 'bridge', 'bridge': 'kvmhost-test-br',
           'network': {'id': 'd0068b89-fb82-4864-99ac-0caa105fd660', 'label': 'internal', 'cidr': '10.10.10.0/24',
                       'gateway': '10.10.10.1', 'ips': ['10.10.10.13']}}
    libvirt_test_domains.define(instance_xml(libvirt_test_domains.unique_name('inv-stopped'), stopped_uuid,
                                             stopped_name, libvirt_test_dir, demo_images, vifs=[vif]))
    instance_files(libvirt_test_dir, running_uuid, demo_images)
    libvirt_test_domains.define(instance_xml(libvirt_test_domains.unique_name('inv-running'), running_uuid,
                                             running_name, libvirt_test_dir, demo_images)).create()
    foreign_uuid = str(uuid_lib.uuid4())
    libvirt_test_domains.define(
        "<domain type='qemu'><name>%s</name><uuid>%s</uuid><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64'>hvm</type></os></domain>" % (libvirt_test_domains.unique_name('inv-foreign'),
                                                              foreign_uuid))

    config = tmp_path / 'kvmhost_instances.yml'
    config.write_text(json.dumps({
        'plugin': 'kvmhost.lifecycle.instances', 'hosts': [{'name': 'this-host', 'uri': 'qemu:///system'}],
        'keyed_groups': [{'key': 'kvmhost_power_state', 'prefix': 'power'}]}))
    listing, stderr = ansible_inventory(config)
    hostvars = plain(listing['_meta']['hostvars'])
    assert foreign_uuid not in json.dumps(listing)  # a domain without the collection's metadata is no instance

    stopped = hostvars[stopped_name]
    assert (stopped['kvmhost_uuid'], stopped['kvmhost_host'], stopped['kvmhost_libvirt_uri']) == (
        stopped_uuid, 'this-host', 'qemu:///system')
    assert stopped['kvmhost_domain_name'].startswith('kvmhost-test-inv-stopped-')
    assert (stopped['kvmhost_vm_state'], stopped['kvmhost_power_state'], stopped['kvmhost_power_state_code'],
            stopped['kvmhost_libvirt_state']) == ('stopped', 'shutdown', 4, 'shutoff')
    assert stopped['kvmhost_flavor'] == {'name': 'm1.test', 'vcpus': 1, 'memory_mb': 128, 'root_gb': 1,
                                         'ephemeral_gb': 0, 'swap_mb': 0}
    assert stopped['kvmhost_image'] == 'demo-guest-v1'
    assert stopped['kvmhost_ports'] == [{'id': PORT, 'mac': 'fa:16:3e:7e:57:01', 'ips': ['10.10.10.13']}]
    assert stopped['kvmhost_ips'] == ['10.10.10.13'] and stopped['ansible_host'] == '10.10.10.13'

    running = hostvars[running_name]
    assert running['kvmhost_uuid'] == running_uuid
    assert (running['kvmhost_vm_state'], running['kvmhost_power_state'], running['kvmhost_power_state_code'],
            running['kvmhost_libvirt_state']) == ('active', 'running', 1, 'running')
    assert running['kvmhost_ips'] == [] and 'ansible_host' not in running

    def hosts_of(group):
        return set(listing.get(group, {}).get('hosts', []))
    assert {stopped_name, running_name} <= hosts_of('kvmhost_instances') & hosts_of('kvmhost_host_this_host')
    assert {stopped_name, running_name} <= hosts_of('kvmhost_image_demo_guest_v1')
    assert stopped_name in hosts_of('kvmhost_vm_state_stopped') and running_name in hosts_of('kvmhost_vm_state_active')
    assert running_name in hosts_of('power_running') and stopped_name in hosts_of('power_shutdown')
