# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host knows of an instance whose spec has left the inventory: enough of a spec to delete it.

Deleting takes an instance's VIFs (to unplug them) and volumes (to detach them); its firewall chains are found by
its UUID. A host holds both without the spec:

- the VIFs in the network info cache of its state store (:func:`vifs_of_network_info`, the inverse of
  ``network.vif.network_info``), or else in the domain XML's interfaces with the ports of its Nova metadata
  (:func:`vifs_of_domain_xml`);
- the volumes in the domain XML's disks that carry a volume id as their serial (:func:`volumes_of_domain_xml`, the
  inverse of ``domain_xml.disk_element``): the defined domain's XML, or once the domain is gone the ``libvirt.xml``
  of the instance directory (or of the copy an interrupted rebuild moved aside).

:func:`known_instance` puts them together. A volume's CHAP password is never on the host outside libvirt's secret,
and detaching needs none: the volumes carry no ``auth``.
"""

from __future__ import annotations

import os
import re

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.files import read_text
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.instance_disk import instance_paths
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import NOVA_NS, etree

# domain_spec.iscsi_by_path, read back: the portal (an IPv6 address in brackets), the IQN and the LUN.
_BY_PATH_RE = re.compile(r'^/dev/disk/by-path/ip-(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]]+):(?P<port>\d+)'
                         r'-iscsi-(?P<iqn>.+)-lun-(?P<lun>\d+)$')
_HYBRID_BRIDGE_PREFIX = 'qbr'


def vifs_of_network_info(network_info):
    """The instance spec's VIFs (id, address, type, bridge, vlan, physical_interface, mtu) of a network info cache."""
    vifs = []
    for entry in network_info or []:
        if not isinstance(entry, dict) or not entry.get('id') or not entry.get('address'):
            continue
        details = entry.get('details') or {}
        network = entry.get('network') or {}
        if entry.get('type') == 'bridge':
            vif_type = 'bridge'
        else:
            vif_type = 'ovs_hybrid' if details.get('ovs_hybrid_plug') else 'ovs'
        vif = {'id': entry['id'], 'address': entry['address'], 'type': vif_type, 'bridge': network.get('bridge'),
               'vlan': details.get('vlan'), 'physical_interface': details.get('physical_interface'),
               'mtu': (network.get('meta') or {}).get('mtu')}
        vifs.append(dict((key, value) for key, value in vif.items() if value is not None))
    return vifs


def _root(xml):
    try:
        return etree.fromstring(xml.encode('utf-8'))
    except etree.XMLSyntaxError as exc:
        raise KvmhostError('the domain XML cannot be read: %s' % exc)


def vifs_of_domain_xml(xml):
    """The VIFs of a domain XML this collection wrote: its interfaces, in order, with the port ids of its metadata.

    An OVS interface names its port id itself (the virtualport's interfaceid); a hybrid one (on a qbr bridge) and
    a Linux-bridge one take theirs from the metadata's ports, which domain_xml writes in the order of the VIFs.
    """
    root = _root(xml)
    ports = [port.get('uuid') for port in root.iterfind('metadata/{%s}instance/{%s}ports/{%s}port'
                                                        % (NOVA_NS, NOVA_NS, NOVA_NS))]
    vifs = []
    for index, interface in enumerate(root.iterfind('devices/interface')):
        mac = interface.find('mac')
        source = interface.find('source')
        parameters = interface.find('virtualport/parameters')
        bridge = source.get('bridge') if source is not None else None
        port_id = parameters.get('interfaceid') if parameters is not None else None
        if port_id is not None:
            vif_type = 'ovs'
        else:
            port_id = ports[index] if index < len(ports) else None
            vif_type = 'ovs_hybrid' if (bridge or '').startswith(_HYBRID_BRIDGE_PREFIX) else 'bridge'
        if port_id is None or mac is None or not mac.get('address'):
            raise KvmhostError('interface %d of the domain XML names no port id or MAC address' % index)
        vif = {'id': port_id, 'address': mac.get('address'), 'type': vif_type}
        if vif_type == 'bridge':
            vif['bridge'] = bridge
        mtu = interface.find('mtu')
        if mtu is not None and mtu.get('size'):
            vif['mtu'] = int(mtu.get('size'))
        vifs.append(vif)
    return vifs


def volumes_of_domain_xml(xml):
    """The volumes (id, device_name, target_portal, target_iqn, target_lun, transport) a domain XML attaches.

    A volume's disk is the one with a serial (its volume id): an iSCSI network disk for the qemu transport, a block
    device at its ``/dev/disk/by-path`` name for the host transport.
    """
    volumes = []
    for disk in _root(xml).iterfind('devices/disk'):
        volume_id = (disk.findtext('serial') or '').strip()
        target = disk.find('target')
        if not volume_id or target is None:
            continue
        source = disk.find('source')
        if source is None:
            raise KvmhostError('the disk of volume %s in the domain XML has no source' % volume_id)
        if disk.get('type') == 'network':
            host = source.find('host')
            iqn, _slash, lun = (source.get('name') or '').rpartition('/')
            if source.get('protocol') != 'iscsi' or host is None or not iqn or not lun.isdigit():
                raise KvmhostError('the disk of volume %s in the domain XML is no iSCSI LUN' % volume_id)
            address = host.get('name') or ''
            portal = '%s:%s' % ('[%s]' % address if ':' in address else address, host.get('port') or 3260)
            transport = 'qemu'
        else:
            found = _BY_PATH_RE.match(source.get('dev') or '')
            if found is None:
                raise KvmhostError('the disk of volume %s in the domain XML is at %s, no iSCSI path of the host'
                                   % (volume_id, source.get('dev')))
            portal = '%s:%s' % (found.group('host'), found.group('port'))
            iqn, lun, transport = found.group('iqn'), found.group('lun'), 'host'
        volumes.append({'id': volume_id, 'device_name': target.get('dev'), 'target_portal': portal,
                        'target_iqn': iqn, 'target_lun': int(lun), 'transport': transport})
    return volumes


def _saved_xml(instances_path, uuid):
    """The libvirt.xml of the instance directory, or of the copy an interrupted rebuild moved aside; or None."""
    for directory in instance_paths(instances_path, uuid)[:2]:
        path = os.path.join(directory, 'libvirt.xml')
        try:
            text = read_text(path)
        except OSError as exc:
            raise KvmhostError('cannot read %s: %s' % (path, exc.strerror or exc))
        if text is not None:
            return text
    return None


def known_instance(uuid, record, network_info, domain_xml, instances_path):
    """What deleting ``uuid`` takes, from what the host knows of it; None when it knows nothing of it.

    ``record`` is its state store record (or None), ``network_info`` its network info cache, ``domain_xml`` the
    inactive XML of its libvirt domain (None when libvirt has none). Of a deleted record only a domain still
    defined is read: the port ids and volumes it had may belong to another instance since. Raises KvmhostError
    when the XML is not one the collection wrote.
    """
    deleted = record is not None and record.get('deleted')
    # A deleted instance's saved XML is not read: its volumes may be attached to another instance since.
    xml = domain_xml if domain_xml is not None or deleted else _saved_xml(instances_path, uuid)
    if record is None and xml is None:
        return None
    name = (record or {}).get('name') or ''
    if not name and xml is not None:
        name = _root(xml).findtext('metadata/{%s}instance/{%s}name' % (NOVA_NS, NOVA_NS)) or ''
    if deleted:
        vifs = []
    elif network_info:
        vifs = vifs_of_network_info(network_info)
    else:
        vifs = vifs_of_domain_xml(xml) if xml is not None else []
    return {'uuid': uuid, 'name': name, 'vifs': vifs, 'volumes': volumes_of_domain_xml(xml) if xml is not None else [],
            'security_groups': []}
