# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Instance specs and domain_xml parameters the virt tests share (one spec, changed per test)."""

from __future__ import annotations

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
