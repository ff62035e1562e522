# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host knows of an instance whose spec has left the inventory: round trips through the writers.

The domain XML is built by domain_xml.build_domain_xml from a spec and read back by volumes_of_domain_xml and
vifs_of_domain_xml; the network info cache is built by vif_plug.network_info and read back by
vifs_of_network_info. Whatever the writers put in and the readers do not give back is a test failure.
"""

from __future__ import annotations

import copy
import os

import pytest

pytest.importorskip('lxml.etree')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.vif import network_info  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.known_instances import (  # noqa: E402
    known_instance, vifs_of_domain_xml, vifs_of_network_info, volumes_of_domain_xml)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import check_domain_spec  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import build_domain_xml  # noqa: E402

UUID = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
HYBRID_PORT = '8dbfeeff-e21c-4b3d-b527-77845d2a998b'
OVS_PORT = '3b2c1d0e-9f8a-4b7c-8d6e-5f4a3b2c1d0e'
BRIDGE_PORT = 'c0ffee00-1234-4abc-8def-0123456789ab'
CHAP_VOLUME = '6f1c0b5e-3a52-4c8e-9d0a-6b7f1e2d3c4b'
SECRET = '0f2c4f2e-5d0b-4a59-9d36-2f6f0d6e8b11'
NETWORK = {'id': 'd0068b89-fb82-4864-99ac-0caa105fd660', 'label': 'internal', 'cidr': '10.10.10.0/24',
           'gateway': '10.10.10.1', 'ips': ['10.10.10.13']}

VIFS = [
    {'id': HYBRID_PORT, 'address': 'fa:16:3e:81:a8:b4', 'type': 'ovs_hybrid', 'bridge': 'br-int', 'mtu': 1450,
     'network': dict(NETWORK)},
    # Upper case as an inventory may write them: libvirt (and domain_xml) keep an OVS port id and a MAC in lower case.
    {'id': OVS_PORT.upper(), 'address': 'FA:16:3E:00:00:02', 'type': 'ovs', 'bridge': 'br-ex', 'mtu': 1500,
     'network': dict(NETWORK, ips=['10.10.10.14'])},
    {'id': BRIDGE_PORT, 'address': 'fa:16:3e:00:00:03', 'type': 'bridge', 'bridge': 'brq-vlan100', 'vlan': 100,
     'physical_interface': 'eth1', 'mtu': 9000},
]

# Given out of device order (the XML lists the disks by target), after an ephemeral disk and swap (vdb, vdc).
VOLUMES = [
    {'id': CHAP_VOLUME, 'device_name': 'vdf', 'target_portal': '192.0.2.10:3260',
     'target_iqn': 'iqn.2026-11.org.example:volume-6f1c0b5e', 'target_lun': 1, 'transport': 'qemu',
     'auth': {'method': 'CHAP', 'username': 'vol-user', 'password': 'chap-secret'}},
    {'id': 'vol-qemu-ipv6', 'device_name': 'vde', 'target_portal': '[fd00::7]:3261',
     'target_iqn': 'iqn.2026-11.org.example:volume-lun-2', 'target_lun': 0, 'transport': 'qemu'},
    {'id': 'vol-host-ipv4', 'device_name': 'vdd', 'target_portal': '192.0.2.11:3260',
     'target_iqn': 'iqn.2026-11.org.example:volume-3', 'target_lun': 7, 'transport': 'host'},
    {'id': 'vol-host-ipv6', 'device_name': 'vdg', 'target_portal': '[fd00::5]:3260',
     'target_iqn': 'eui.0123456789ABCDEF', 'target_lun': 16383, 'transport': 'host'},
]


def instance(name='web-1', vifs=None, volumes=None, uuid=UUID):
    return {
        'uuid': uuid, 'name': name,
        'flavor': {'vcpus': 1, 'memory_mb': 192, 'root_gb': 1, 'ephemeral_gb': 1, 'swap_mb': 64},
        'image': {'id': 'demo-guest-v1', 'source': '/var/lib/kvmhost/images/demo-guest-v1.qcow2',
                  'checksum': 'sha256:' + '0' * 64},
        'vifs': copy.deepcopy(VIFS if vifs is None else vifs),
        'volumes': copy.deepcopy(VOLUMES if volumes is None else volumes),
        'security_groups': [],
    }


def domain_xml_of(spec, instances_path='/var/lib/kvmhost/instances'):
    """The XML domain_xml writes of the spec, as the domain_xml module is called (CHAP over qemu has a secret)."""
    secrets = dict((volume['id'], SECRET) for volume in spec['volumes']
                   if volume.get('transport') == 'qemu' and volume.get('auth'))
    return build_domain_xml(check_domain_spec({
        'instance': spec, 'local_id': 7, 'virt_type': 'kvm', 'instances_path': instances_path, 'vnc': False,
        'volume_secrets': secrets, 'host_volume_paths': {}, 'creation_time': None, 'ramdisk_required': False,
        'cpu_mode': None, 'disk_cache': 'none'}))


def expected_volumes(volumes):
    """What deleting takes of each volume, in device order, without the CHAP password."""
    keys = ('id', 'device_name', 'target_portal', 'target_iqn', 'target_lun', 'transport')
    return sorted((dict((key, volume[key]) for key in keys) for volume in volumes),
                  key=lambda volume: volume['device_name'])


# ---------------------------------------------------------------- the domain XML

def test_the_volumes_of_a_domain_xml_are_the_specs():
    found = volumes_of_domain_xml(domain_xml_of(instance()))
    assert found == expected_volumes(VOLUMES)
    assert [volume['device_name'] for volume in found] == ['vdd', 'vde', 'vdf', 'vdg']  # not the local disks
    assert not any('auth' in volume for volume in found)


@pytest.mark.parametrize('volume', VOLUMES, ids=[volume['id'] for volume in VOLUMES])
def test_each_volume_alone_round_trips(volume):
    assert volumes_of_domain_xml(domain_xml_of(instance(volumes=[volume]))) == expected_volumes([volume])


def test_the_vifs_of_a_domain_xml_are_the_specs():
    found = vifs_of_domain_xml(domain_xml_of(instance()))
    assert found == [
        {'id': HYBRID_PORT, 'address': 'fa:16:3e:81:a8:b4', 'type': 'ovs_hybrid', 'mtu': 1450},
        {'id': OVS_PORT, 'address': 'fa:16:3e:00:00:02', 'type': 'ovs', 'mtu': 1500},
        {'id': BRIDGE_PORT, 'address': 'fa:16:3e:00:00:03', 'type': 'bridge', 'bridge': 'brq-vlan100', 'mtu': 9000},
    ]


def test_the_port_ids_of_hybrid_and_bridge_vifs_follow_the_metadata_order():
    # The OVS VIF (its port id in the interface itself) first: the others still take theirs by position.
    vifs = [VIFS[1], VIFS[2], VIFS[0]]
    found = vifs_of_domain_xml(domain_xml_of(instance(vifs=vifs)))
    assert [(vif['id'], vif['type']) for vif in found] == [
        (OVS_PORT, 'ovs'), (BRIDGE_PORT, 'bridge'), (HYBRID_PORT, 'ovs_hybrid')]


def test_a_vif_without_mtu_has_none():
    vif = dict(VIFS[2], mtu=None, vlan=None, physical_interface=None)
    assert vifs_of_domain_xml(domain_xml_of(instance(vifs=[vif]))) == [
        {'id': BRIDGE_PORT, 'address': 'fa:16:3e:00:00:03', 'type': 'bridge', 'bridge': 'brq-vlan100'}]


def test_a_domain_without_vifs_or_volumes():
    xml = domain_xml_of(instance(vifs=[], volumes=[]))
    assert vifs_of_domain_xml(xml) == [] and volumes_of_domain_xml(xml) == []


# As libvirt prints an inactive domain it was given: addresses, aliases and attributes of its own added.
LIBVIRT_XML = """<domain type='kvm'>
  <name>instance-00000007</name>
  <uuid>%(uuid)s</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>web-1</nova:name>
      <nova:ports>
        <nova:port uuid="%(hybrid)s"/>
        <nova:port uuid="%(ovs)s"/>
      </nova:ports>
    </nova:instance>
  </metadata>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/kvmhost/instances/%(uuid)s/disk'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <auth username='vol-user'>
        <secret type='iscsi' uuid='%(secret)s'/>
      </auth>
      <source protocol='iscsi' name='iqn.2026-11.org.example:volume-1/3'>
        <host name='fd00::9' port='3262'/>
      </source>
      <target dev='vdb' bus='virtio'/>
      <serial>vol-1</serial>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </disk>
    <interface type='bridge'>
      <mac address='fa:16:3e:81:a8:b4'/>
      <source bridge='qbr8dbfeeff-e2'/>
      <target dev='tap8dbfeeff-e2'/>
      <model type='virtio'/>
      <mtu size='1450'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </interface>
    <interface type='bridge'>
      <mac address='fa:16:3e:00:00:02'/>
      <source bridge='br-int'/>
      <virtualport type='openvswitch'>
        <parameters interfaceid='%(ovs)s'/>
      </virtualport>
      <target dev='tap3b2c1d0e-9f'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>
""" % {'uuid': UUID, 'hybrid': HYBRID_PORT, 'ovs': OVS_PORT, 'secret': SECRET}


def test_the_xml_as_libvirt_prints_it():
    assert volumes_of_domain_xml(LIBVIRT_XML) == [
        {'id': 'vol-1', 'device_name': 'vdb', 'target_portal': '[fd00::9]:3262',
         'target_iqn': 'iqn.2026-11.org.example:volume-1', 'target_lun': 3, 'transport': 'qemu'}]
    assert vifs_of_domain_xml(LIBVIRT_XML) == [
        {'id': HYBRID_PORT, 'address': 'fa:16:3e:81:a8:b4', 'type': 'ovs_hybrid', 'mtu': 1450},
        {'id': OVS_PORT, 'address': 'fa:16:3e:00:00:02', 'type': 'ovs'}]


def _disk(source, disk_type='block', serial='vol-x'):
    return ("<domain><devices><disk type='%s' device='disk'>%s<target dev='vdb' bus='virtio'/>"
            "<serial>%s</serial></disk></devices></domain>" % (disk_type, source, serial))


@pytest.mark.parametrize('xml, message', [
    (_disk("<source dev='/dev/mapper/volume-3'/>"), 'the disk of volume vol-x in the domain XML is at '
                                                    '/dev/mapper/volume-3, no iSCSI path of the host'),
    (_disk(''), 'the disk of volume vol-x in the domain XML has no source'),
    (_disk("<source protocol='rbd' name='pool/image'><host name='192.0.2.1' port='6789'/></source>", 'network'),
     'the disk of volume vol-x in the domain XML is no iSCSI LUN'),
    (_disk("<source protocol='iscsi' name='iqn.2026-11.org.example:v/x'><host name='192.0.2.1'/></source>",
           'network'), 'is no iSCSI LUN'),
    (_disk("<source protocol='iscsi' name='iqn.2026-11.org.example:v/1'/>", 'network'), 'is no iSCSI LUN'),
    ('<domain><devices>', 'the domain XML cannot be read'),
])
def test_volumes_the_collection_did_not_write_are_refused(xml, message):
    with pytest.raises(KvmhostError, match=message.replace('(', r'\(').replace(')', r'\)')):
        volumes_of_domain_xml(xml)


def test_a_disk_without_a_serial_is_no_volume():
    assert volumes_of_domain_xml(_disk("<source dev='/dev/sdb'/>", serial='')) == []


def test_an_iscsi_disk_without_a_port_is_at_the_default_one():
    xml = _disk("<source protocol='iscsi' name='iqn.2026-11.org.example:v/2'><host name='192.0.2.1'/></source>",
                'network')
    assert volumes_of_domain_xml(xml)[0]['target_portal'] == '192.0.2.1:3260'


@pytest.mark.parametrize('interface', [
    "<interface type='bridge'><mac address='fa:16:3e:00:00:05'/><source bridge='qbrx'/></interface>",  # no port
    "<interface type='bridge'><source bridge='br-int'/><virtualport type='openvswitch'><parameters "
    "interfaceid='%s'/></virtualport></interface>" % OVS_PORT,  # no MAC
])
def test_an_interface_without_port_id_or_mac_is_refused(interface):
    with pytest.raises(KvmhostError, match='interface 0 of the domain XML names no port id or MAC address'):
        vifs_of_domain_xml('<domain><devices>%s</devices></domain>' % interface)


# ---------------------------------------------------------------- the network info cache

def _vif_keys(vif):
    keys = ('id', 'address', 'type', 'bridge', 'vlan', 'physical_interface', 'mtu')
    found = dict((key, vif[key]) for key in keys if vif.get(key) is not None)
    found.update(id=found['id'].lower(), address=found['address'].lower())
    return found


def test_the_network_info_cache_round_trips():
    info = network_info(copy.deepcopy(VIFS))
    assert vifs_of_network_info(info) == [_vif_keys(vif) for vif in VIFS]
    # The same once stored: the cache is JSON.
    plugged = [{'port_id': HYBRID_PORT, 'devices': {'tap': 'tap8dbfeeff-e2', 'qbr': 'qbr8dbfeeff-e2'}}]
    assert vifs_of_network_info(network_info(copy.deepcopy(VIFS), plugged)) == [_vif_keys(vif) for vif in VIFS]


@pytest.mark.parametrize('vif', VIFS, ids=[vif['type'] for vif in VIFS])
def test_each_vif_type_round_trips_through_the_cache(vif):
    assert vifs_of_network_info(network_info([copy.deepcopy(vif)])) == [_vif_keys(vif)]


def test_a_minimal_vif_round_trips_through_the_cache():
    vif = {'id': HYBRID_PORT, 'address': 'fa:16:3e:81:a8:b4', 'type': 'ovs'}
    assert vifs_of_network_info(network_info([vif])) == [vif]


def test_entries_of_the_cache_without_id_or_address_are_skipped():
    assert vifs_of_network_info(None) == [] and vifs_of_network_info([]) == []
    assert vifs_of_network_info(['x', {'id': HYBRID_PORT}, {'address': 'fa:16:3e:00:00:01'}]) == []


# ---------------------------------------------------------------- known_instance

def save_xml(instances_path, uuid, xml, suffix=''):
    directory = os.path.join(str(instances_path), uuid + suffix)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, 'libvirt.xml'), 'w', encoding='utf-8') as handle:
        handle.write(xml)


SAVED = instance(vifs=[VIFS[0]], volumes=[VOLUMES[2]])  # what the instance directory's libvirt.xml holds
MOVED = instance(vifs=[VIFS[2]], volumes=[VOLUMES[3]])  # what the copy a killed rebuild moved aside holds
DEFINED = instance(name='web-1-domain', vifs=[VIFS[1]], volumes=[VOLUMES[0]])  # what libvirt's domain holds
LIVE = {'uuid': UUID, 'name': 'web-1', 'local_id': 7, 'deleted': False, 'vm_state': 'active'}
DELETED = dict(LIVE, deleted=True, vm_state='deleted')
CACHE = network_info(copy.deepcopy([VIFS[1], VIFS[2]]))


def test_an_instance_the_host_knows_nothing_of_is_none(tmp_path):
    save_xml(tmp_path, '0b7e1a52-44f1-4c37-8d0e-5e6f7a8b9c0d', domain_xml_of(SAVED))  # another instance's
    assert known_instance(UUID, None, None, None, str(tmp_path)) is None
    assert known_instance(UUID, None, None, None, str(tmp_path / 'missing')) is None


def test_a_deleted_record_does_not_read_the_saved_xml(tmp_path):
    save_xml(tmp_path, UUID, domain_xml_of(SAVED))
    save_xml(tmp_path, UUID, domain_xml_of(MOVED), '_del')
    assert known_instance(UUID, DELETED, CACHE, None, str(tmp_path)) == {
        'uuid': UUID, 'name': 'web-1', 'vifs': [], 'volumes': [], 'security_groups': []}


def test_a_deleted_record_with_a_domain_still_defined_reads_its_volumes_only(tmp_path):
    save_xml(tmp_path, UUID, domain_xml_of(SAVED))
    known = known_instance(UUID, DELETED, CACHE, domain_xml_of(DEFINED), str(tmp_path))
    assert known['vifs'] == [] and known['volumes'] == expected_volumes(DEFINED['volumes'])


def test_a_live_record_takes_its_vifs_from_the_network_info_cache(tmp_path):
    save_xml(tmp_path, UUID, domain_xml_of(SAVED))
    known = known_instance(UUID, LIVE, CACHE, None, str(tmp_path))
    assert known['vifs'] == [_vif_keys(VIFS[1]), _vif_keys(VIFS[2])]
    assert known['volumes'] == expected_volumes(SAVED['volumes'])  # the saved XML: the domain is gone
    assert known['name'] == 'web-1' and known['security_groups'] == []


def test_the_defined_domain_comes_before_the_saved_xml(tmp_path):
    save_xml(tmp_path, UUID, domain_xml_of(SAVED))
    known = known_instance(UUID, LIVE, CACHE, domain_xml_of(DEFINED), str(tmp_path))
    assert known['volumes'] == expected_volumes(DEFINED['volumes'])
    assert known['name'] == 'web-1'  # the record's name before the domain's metadata


@pytest.mark.parametrize('cache', [None, []])
def test_without_a_cache_the_vifs_are_the_xml_interfaces(tmp_path, cache):
    save_xml(tmp_path, UUID, domain_xml_of(SAVED))
    assert known_instance(UUID, LIVE, cache, domain_xml_of(DEFINED), str(tmp_path))['vifs'] == [
        {'id': OVS_PORT, 'address': 'fa:16:3e:00:00:02', 'type': 'ovs', 'mtu': 1500}]
    assert known_instance(UUID, LIVE, cache, None, str(tmp_path))['vifs'] == [
        {'id': HYBRID_PORT, 'address': 'fa:16:3e:81:a8:b4', 'type': 'ovs_hybrid', 'mtu': 1450}]


def test_a_record_without_cache_or_xml_is_known_with_nothing_to_remove(tmp_path):
    assert known_instance(UUID, dict(LIVE, name=None), None, None, str(tmp_path)) == {
        'uuid': UUID, 'name': '', 'vifs': [], 'volumes': [], 'security_groups': []}


def test_an_instance_without_record_is_known_by_its_directory(tmp_path):
    save_xml(tmp_path, UUID, domain_xml_of(SAVED))
    assert known_instance(UUID, None, None, None, str(tmp_path)) == {
        'uuid': UUID, 'name': 'web-1', 'security_groups': [],
        'vifs': [{'id': HYBRID_PORT, 'address': 'fa:16:3e:81:a8:b4', 'type': 'ovs_hybrid', 'mtu': 1450}],
        'volumes': expected_volumes(SAVED['volumes'])}


def test_an_instance_without_record_is_known_by_the_copy_a_rebuild_moved_aside(tmp_path):
    save_xml(tmp_path, UUID, domain_xml_of(MOVED), '_del')
    known = known_instance(UUID, None, None, None, str(tmp_path))
    assert known['vifs'] == vifs_of_domain_xml(domain_xml_of(MOVED)) and known['vifs'][0]['id'] == BRIDGE_PORT
    assert known['volumes'] == expected_volumes(MOVED['volumes'])
    save_xml(tmp_path, UUID, domain_xml_of(SAVED))  # the directory's own comes first
    assert known_instance(UUID, None, None, None, str(tmp_path))['volumes'] == expected_volumes(SAVED['volumes'])


def test_an_instance_without_record_is_known_by_its_domain(tmp_path):
    known = known_instance(UUID, None, None, domain_xml_of(DEFINED), str(tmp_path))
    assert known['name'] == 'web-1-domain' and known['vifs'][0]['id'] == OVS_PORT
    assert known['volumes'] == expected_volumes(DEFINED['volumes'])


@pytest.mark.parametrize('content', [b'<domain><devices>', b'', b'\xff\xfe not utf-8'])
def test_an_unreadable_saved_xml_is_refused(tmp_path, content):
    save_xml(tmp_path, UUID, '')
    (tmp_path / UUID / 'libvirt.xml').write_bytes(content)
    with pytest.raises(KvmhostError, match='the domain XML cannot be read'):
        known_instance(UUID, LIVE, None, None, str(tmp_path))
    with pytest.raises(KvmhostError, match='the domain XML cannot be read'):
        known_instance(UUID, None, None, None, str(tmp_path))


def test_an_unreadable_domain_xml_is_refused(tmp_path):
    with pytest.raises(KvmhostError, match='the domain XML cannot be read'):
        known_instance(UUID, LIVE, CACHE, 'not xml <', str(tmp_path))
