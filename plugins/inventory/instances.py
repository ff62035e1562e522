# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: instances
short_description: The instances of KVM hosts as Ansible hosts
version_added: 0.1.0
description:
  - Reads the libvirt domains of each KVM host listed in O(hosts) over its libvirt URI (C(qemu:///system) for this
    machine, C(qemu+ssh://root@host/system) for a remote host) and adds every instance of this collection as an
    Ansible host.
  - An instance is a domain whose XML holds the Nova-style metadata that M(kvmhost.lifecycle.domain_xml) writes
    (C(<nova:instance>) with C(<nova:package version="kvmhost.lifecycle">)). Every other domain of a host is skipped.
  - "Each instance gets the variables C(kvmhost_uuid), C(kvmhost_name) (its display name), C(kvmhost_host) (the KVM
    host's name as given in O(hosts)), C(kvmhost_libvirt_uri), C(kvmhost_domain_name), C(kvmhost_libvirt_state)
    (libvirt's state: running, shutoff, paused...), C(kvmhost_power_state) (Nova's power state name: running,
    shutdown, paused, crashed, suspended, pending) and C(kvmhost_power_state_code) (its Nova code: 1, 4, 3, 6, 7, 0),
    C(kvmhost_vm_state), C(kvmhost_flavor) (name, vcpus, memory_mb, root_gb, ephemeral_gb, swap_mb),
    C(kvmhost_image) (the image id), C(kvmhost_created_at), C(kvmhost_ports) (each port's id, MAC and IPs),
    C(kvmhost_ips), and C(ansible_host) (the first IP, see O(set_ansible_host))."
  - C(kvmhost_vm_state) is derived from the libvirt state as Nova's power sync would record it (active, stopped,
    paused, suspended, error, unknown). The host's state store may know more (building, rebuilding, error with its
    cause); M(kvmhost.lifecycle.instance_info) on the KVM host reads it.
  - "Every instance is in the group C(kvmhost_instances) and, unless O(default_groups=false), in
    C(kvmhost_host_<host>), C(kvmhost_vm_state_<vm_state>) and C(kvmhost_image_<image id>); characters other than
    letters, digits and C(_) become C(_) in these names (C(demo-guest-v1) gives C(kvmhost_image_demo_guest_v1))."
  - O(compose), O(groups) and O(keyed_groups) work as in P(ansible.builtin.constructed#inventory) over these
    variables.
  - The domains are read, never changed; the connection is opened read-only unless O(interface_addresses=agent).
author:
  - kvmhost.lifecycle developers (@kvmhost)
requirements:
  - libvirt-python (the C(libvirt) Python binding) on the controller, for example Debian's C(python3-libvirt) or
    C(pip install libvirt-python). Not needed when the inventory comes from the cache.
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description:
      - The name of this plugin; the file is read by it only when this is set.
    type: str
    required: true
    choices: [kvmhost.lifecycle.instances]
  hosts:
    description:
      - The KVM hosts whose instances become Ansible hosts.
      - An inventory plugin cannot read the hosts of another inventory source reliably (sources are parsed in an
        order the user chooses, and a cached source is not parsed at all), so the KVM hosts are listed here. Their
        names are the names of the C(kvm_hosts) group of your other inventory, so that C(kvmhost_host) and the
        C(kvmhost_host_<host>) groups point back to them.
      - Each item is C(name) (required) and C(uri) (the libvirt URI, default C(qemu:///system)). A remote host is
        reached as libvirt reaches it, for example C(qemu+ssh://root@kvm-1.example.org/system) (the controller's
        SSH keys and known_hosts apply; C(?keyfile=...) and C(?no_verify=1) go in the URI).
      - Host names must be unique.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The KVM host's name, as in your inventory's C(kvm_hosts) group.
        type: str
        required: true
      uri:
        description: The libvirt URI of the host.
        type: str
        default: qemu:///system
  hostname:
    description:
      - What names an instance's Ansible host.
      - V(name) is its display name (an instance without one is named by its UUID); V(uuid) is its UUID, always unique.
      - With V(name), a display name that two instances share, or that a host of an earlier inventory source already
        has, is handled as O(duplicate_names) says.
    type: str
    choices: [name, uuid]
    default: name
  duplicate_names:
    description:
      - With O(hostname=name), what happens to instances whose display name is not unique.
      - V(uuid) names every one of them by its UUID (none of them wins the name, so the result does not depend on the
        order in which the hosts answer) and warns.
      - V(error) fails the inventory, naming the instances.
    type: str
    choices: [uuid, error]
    default: uuid
  set_ansible_host:
    description:
      - Set C(ansible_host) to the instance's first IP address (of C(kvmhost_ips)) when it has one.
      - Turn it off when you reach the instances by their names (DNS) or set C(ansible_host) with O(compose).
    type: bool
    default: true
  interface_addresses:
    description:
      - Where the IPs of a running instance whose metadata names none are read from.
      - V(none) reads only the metadata (the fixed IPs of the instance spec's networks).
      - V(lease) asks libvirt's DHCP leases (libvirt-managed networks only), V(arp) the host's ARP table, V(agent)
        the QEMU guest agent (the guest must run it; the connection is then opened read-write).
      - Loopback and link-local addresses are left out.
    type: str
    choices: [none, lease, arp, agent]
    default: none
  default_groups:
    description:
      - Add the instances to the groups C(kvmhost_host_<host>), C(kvmhost_vm_state_<vm_state>) and
        C(kvmhost_image_<image id>). C(kvmhost_instances) holds them all either way.
    type: bool
    default: true
  skip_unreachable:
    description:
      - When a host's libvirt cannot be reached, warn and go on with the other hosts instead of failing.
      - The instances of that host are then missing from the inventory (and from the cache, when it is written).
    type: bool
    default: false
notes:
  - The file must be named so that it ends with C(instances.yml) or C(instances.yaml), for example
    C(kvmhost_instances.yml).
  - "With O(cache=true) the instances are read from the cache plugin while it holds them (see O(cache_timeout));
    C(ansible-inventory --flush-cache) or C(meta: refresh_inventory) reads the hosts again."
seealso:
  - module: kvmhost.lifecycle.instance_info
  - module: kvmhost.lifecycle.domain_xml
'''

EXAMPLES = r'''
# The least a kvmhost_instances.yml holds (the instances of this machine's libvirt):
#
#   plugin: kvmhost.lifecycle.instances
#   hosts:
#     - name: localhost
#
# kvmhost_instances.yml: two remote KVM hosts over SSH, cached for 10 minutes, grouped and composed
plugin: kvmhost.lifecycle.instances
hosts:
  - name: kvm-1
    uri: qemu+ssh://root@kvm-1.example.org/system
  - name: kvm-2
    uri: qemu+ssh://root@kvm-2.example.org/system?keyfile=/home/ops/.ssh/kvm
hostname: name
skip_unreachable: true
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/kvmhost-instances
cache_timeout: 600
compose:
  ansible_user: "'debian'"
  memory_mb: kvmhost_flavor.memory_mb
groups:
  big: kvmhost_flavor.memory_mb >= 4096
  web: kvmhost_name.startswith('web-')
keyed_groups:
  - key: kvmhost_power_state
    prefix: power
  - key: kvmhost_flavor.name
    prefix: flavor
    default_value: none

# ansible-inventory -i kvmhost_instances.yml --graph
# @all:
#   |--@kvmhost_instances:
#   |  |--web-1
#   |--@kvmhost_host_kvm_1:
#   |  |--web-1
#   |--@kvmhost_vm_state_active:
#   |  |--web-1
#   |--@kvmhost_image_demo_guest_v1:
#   |  |--web-1
'''

import ipaddress
import re
from xml.etree import ElementTree

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import NOVA_NS, PACKAGE
# libvirt-python's guarded import is virt/connection.py's, as the modules have it
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import (
    CRASHED, HAS_LIBVIRT, LIBVIRT_IMPORT_ERROR, LIBVIRT_STATE_NAMES, LIBVIRT_TO_POWER_STATE, NOSTATE, PAUSED,
    POWER_STATE_NAMES, RUNNING, SHUTDOWN, SUSPENDED, VIR_ERR_NO_DOMAIN, libvirt)

DEFAULT_URI = 'qemu:///system'
ALL_GROUP = 'kvmhost_instances'
# The vm_state Nova's power sync leaves an instance in, by its power state.
VM_STATE_OF_POWER_STATE = {RUNNING: 'active', PAUSED: 'paused', SHUTDOWN: 'stopped', CRASHED: 'error',
                           SUSPENDED: 'suspended', NOSTATE: 'unknown'}
# virDomainInterfaceAddressesSource (stable ABI), so that this table needs no import.
ADDRESS_SOURCES = {'lease': 0, 'agent': 1, 'arp': 2}
_GROUP_CHAR_RE = re.compile(r'[^A-Za-z0-9_]')


# ---------------------------------------------------------------- the domain XML, read

def _nova(path):
    return '/'.join('{%s}%s' % (NOVA_NS, tag) for tag in path.split('/'))


def _int_or_none(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _usable_ip(text):
    """The address as text when it is one an instance is reached at (not loopback, not link-local), else None."""
    try:
        address = ipaddress.ip_address((text or '').strip())
    except ValueError:
        return None
    if address.is_loopback or address.is_link_local or address.is_unspecified:
        return None
    return str(address)


def parse_instance_xml(xml):
    """The instance facts of a domain XML this collection wrote, or None when the domain is not one of its instances.

    The facts come from the C(<nova:instance>) metadata that domain_xml.build_domain_xml writes (name, creation
    time, flavor, root image, ports and their fixed IPs) and from the domain's own elements (name, UUID, interface
    MACs). Raises ValueError when the XML is not well-formed.
    """
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise ValueError('the domain XML is not well-formed: %s' % exc) from exc
    instance = root.find('metadata/' + _nova('instance'))
    if instance is None:
        return None
    package = instance.find(_nova('package'))
    if package is None or package.get('version') != PACKAGE:
        return None  # Nova's own metadata, or another tool's
    uuid = (root.findtext('uuid') or '').strip().lower()
    if not uuid:
        return None
    flavor_element = instance.find(_nova('flavor'))
    flavor = {'name': None, 'vcpus': None, 'memory_mb': None, 'root_gb': None, 'ephemeral_gb': None, 'swap_mb': None}
    if flavor_element is not None:
        flavor['name'] = flavor_element.get('name')
        for tag, key in (('vcpus', 'vcpus'), ('memory', 'memory_mb'), ('disk', 'root_gb'),
                         ('ephemeral', 'ephemeral_gb'), ('swap', 'swap_mb')):
            flavor[key] = _int_or_none(flavor_element.findtext(_nova(tag)))
    image = instance.find(_nova('root'))
    ports = _ports(root, instance)
    return {
        'uuid': uuid,
        'name': (instance.findtext(_nova('name')) or '').strip(),
        'domain_name': (root.findtext('name') or '').strip(),
        'created_at': instance.findtext(_nova('creationTime')),
        'flavor': flavor,
        'image': image.get('uuid') if image is not None else None,
        'ports': ports,
        'ips': [address for port in ports for address in port['ips']],
        'macs': [interface.get('address') for interface in root.iterfind('devices/interface/mac')],
    }


def _ports(root, instance):
    """The metadata's ports in VIF order, each with its MAC from the domain's interfaces.

    An OVS interface names its port id itself (virtualport parameters interfaceid); the others are matched by
    position, as domain_xml writes the ports and the interfaces in the order of the VIFs.
    """
    interfaces = list(root.iterfind('devices/interface'))
    mac_by_port = {}
    for interface in interfaces:
        parameters = interface.find('virtualport/parameters')
        mac = interface.find('mac')
        if parameters is not None and parameters.get('interfaceid') and mac is not None:
            mac_by_port[parameters.get('interfaceid')] = mac.get('address')
    ports = []
    for index, port in enumerate(instance.iterfind(_nova('ports/port'))):
        port_id = port.get('uuid')
        mac = mac_by_port.get(port_id)
        if mac is None and index < len(interfaces):
            mac_element = interfaces[index].find('mac')
            mac = mac_element.get('address') if mac_element is not None else None
        ips = [_usable_ip(ip.get('address')) for ip in port.iterfind(_nova('ip'))]
        ports.append({'id': port_id, 'mac': mac, 'ips': [address for address in ips if address]})
    return ports


def vm_state_of(power_state):
    """The vm_state Nova's power sync records for a power state code."""
    return VM_STATE_OF_POWER_STATE.get(power_state, 'unknown')


def safe_group_part(value):
    """A piece of a group name: characters other than letters, digits and _ become _."""
    return _GROUP_CHAR_RE.sub('_', str(value))


# ---------------------------------------------------------------- libvirt, read

def open_connection(uri, read_only=True):
    """The seam to libvirt: a virConnect of ``uri``. Unit tests replace it with a fake of the same methods."""
    if read_only:
        return libvirt.openReadOnly(uri)
    return libvirt.open(uri)


def _libvirt_error(exc):
    getter = getattr(exc, 'get_error_message', None)
    return (getter() if getter else None) or str(exc)


def _is_no_domain(exc):
    getter = getattr(exc, 'get_error_code', None)
    return getter is not None and getter() == VIR_ERR_NO_DOMAIN


def _guest_addresses(domain, source, macs):
    """The usable IPs libvirt reports for a running domain from ``source``, in the order of its interfaces."""
    reported = domain.interfaceAddresses(ADDRESS_SOURCES[source], 0) or {}
    by_mac = {}
    for details in reported.values():
        addresses = [_usable_ip(entry.get('addr')) for entry in (details or {}).get('addrs') or []]
        by_mac.setdefault((details or {}).get('hwaddr'), []).extend(address for address in addresses if address)
    ordered = [mac for mac in macs if mac in by_mac] + sorted(mac for mac in by_mac if mac not in macs and mac)
    return [address for mac in ordered for address in by_mac[mac]]


def read_host_instances(connection, host, uri, libvirt_error, interface_addresses='none'):
    """The facts of every instance of one host's libvirt ``connection``, sorted by UUID.

    A domain that vanishes while it is read is left out; a domain that is not one of the collection's instances
    too. ``libvirt_error`` is the exception class of the library (libvirt.libvirtError).
    """
    instances = []
    for domain in connection.listAllDomains(0):
        try:
            facts = parse_instance_xml(domain.XMLDesc(0))
            if facts is None:
                continue
            state, _reason = domain.state()
        except ValueError as exc:
            raise ValueError('domain %s: %s' % (domain.UUIDString(), exc)) from exc
        except libvirt_error as exc:
            if _is_no_domain(exc):
                continue
            raise
        power_state = LIBVIRT_TO_POWER_STATE.get(state, NOSTATE)
        if not facts['ips'] and interface_addresses != 'none' and power_state == RUNNING:
            try:
                facts['ips'] = _guest_addresses(domain, interface_addresses, facts['macs'])
            except libvirt_error:
                pass  # no agent, no lease: the instance has no IP we know
        facts.update(host=host, libvirt_uri=uri, libvirt_state=LIBVIRT_STATE_NAMES.get(state, 'unknown'),
                     power_state=POWER_STATE_NAMES.get(power_state, 'pending'), power_state_code=power_state,
                     vm_state=vm_state_of(power_state))
        del facts['macs']
        instances.append(facts)
    return sorted(instances, key=lambda item: item['uuid'])


def check_hosts(value):
    """The ``hosts`` option as a list of {name, uri}, or AnsibleParserError naming the item."""
    if not isinstance(value, list) or not value:
        raise AnsibleParserError('kvmhost.lifecycle.instances: hosts must be a non-empty list of {name, uri}')
    hosts, seen = [], set()
    for index, item in enumerate(value):
        where = 'hosts[%d]' % index
        if not isinstance(item, dict):
            raise AnsibleParserError('kvmhost.lifecycle.instances: %s must be a dict with name and uri' % where)
        unknown = sorted(set(item) - set(('name', 'uri')))
        if unknown:
            raise AnsibleParserError('kvmhost.lifecycle.instances: %s has unknown keys %s (name and uri are known)'
                                     % (where, ', '.join(unknown)))
        name, uri = item.get('name'), item.get('uri') or DEFAULT_URI
        if not isinstance(name, str) or not name.strip():
            raise AnsibleParserError('kvmhost.lifecycle.instances: %s.name must be a non-empty string' % where)
        if not isinstance(uri, str):
            raise AnsibleParserError('kvmhost.lifecycle.instances: %s.uri must be a string' % where)
        if name in seen:
            raise AnsibleParserError('kvmhost.lifecycle.instances: host %s is listed twice' % name)
        seen.add(name)
        hosts.append({'name': name, 'uri': uri})
    return hosts


def assign_hostnames(instances, hostname, duplicate_names, taken=()):
    """{uuid: Ansible host name} of the instances, and the display names that were not unique.

    With ``hostname`` uuid every instance is named by its UUID. With name, an instance is named by its display
    name unless it has none, another instance has it too, or it is in ``taken`` (hosts of earlier inventory
    sources): then by its UUID, or, with ``duplicate_names`` error, AnsibleParserError names them.
    """
    if hostname == 'uuid':
        return dict((item['uuid'], item['uuid']) for item in instances), {}
    holders = {}
    for item in instances:
        if item['name']:
            holders.setdefault(item['name'], []).append(item)
    uuids = set(item['uuid'] for item in instances)
    clashes = dict((name, items) for name, items in holders.items()
                   if len(items) > 1 or name in taken or name in uuids)
    if clashes and duplicate_names == 'error':
        raise AnsibleParserError(
            'kvmhost.lifecycle.instances: display names are not unique: %s; set hostname: uuid or '
            'duplicate_names: uuid' % '; '.join(
                '%s (%s)' % (name, ', '.join('%s on %s' % (item['uuid'], item['host']) for item in items)
                             + (', and a host of another inventory source' if name in taken else ''))
                for name, items in sorted(clashes.items())))
    names = {}
    for item in instances:
        names[item['uuid']] = item['uuid'] if not item['name'] or item['name'] in clashes else item['name']
    return names, clashes


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """The instances of the KVM hosts in ``hosts``, read from their libvirt domains' metadata."""

    NAME = 'kvmhost.lifecycle.instances'

    def __init__(self):
        super(InventoryModule, self).__init__()
        self._open_connection = open_connection

    def verify_file(self, path):
        return (super(InventoryModule, self).verify_file(path)
                and path.endswith(('instances.yml', 'instances.yaml')))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        hosts = check_hosts(self.get_option('hosts'))

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option('cache') and cache  # False on --flush-cache and refresh_inventory
        update_cache = self.get_option('cache') and not cache
        instances = None
        if use_cache:
            try:
                instances = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if instances is None:
            instances = self._read_instances(hosts)
        if update_cache:
            self._cache[cache_key] = instances
        self._populate(instances)

    def _read_instances(self, hosts):
        if not HAS_LIBVIRT:
            raise AnsibleParserError(
                'kvmhost.lifecycle.instances needs libvirt-python (the libvirt Python binding) in the Python that '
                'runs Ansible on the controller: apt install python3-libvirt, or pip install libvirt-python. '
                'Import error: %s' % LIBVIRT_IMPORT_ERROR.strip().splitlines()[-1])
        source = self.get_option('interface_addresses')
        instances = []
        for host in hosts:
            connection = None
            try:
                connection = self._open_connection(host['uri'], read_only=source != 'agent')
                instances.extend(read_host_instances(connection, host['name'], host['uri'], libvirt.libvirtError,
                                                     source))
            except libvirt.libvirtError as exc:
                message = 'kvmhost.lifecycle.instances: cannot read the domains of host %s at %s: %s' % (
                    host['name'], host['uri'], _libvirt_error(exc))
                if not self.get_option('skip_unreachable'):
                    raise AnsibleParserError(message)
                self.display.warning(message + '; its instances are left out')
            except ValueError as exc:
                raise AnsibleParserError('kvmhost.lifecycle.instances: host %s at %s: %s'
                                         % (host['name'], host['uri'], exc))
            finally:
                if connection is not None:
                    try:
                        connection.close()
                    except libvirt.libvirtError:
                        pass
        return instances

    def _populate(self, instances):
        taken = set(self.inventory.hosts) if self.get_option('hostname') == 'name' else set()
        names, clashes = assign_hostnames(instances, self.get_option('hostname'), self.get_option('duplicate_names'),
                                          taken)
        for name in sorted(clashes):
            self.display.warning('kvmhost.lifecycle.instances: the display name %s is not unique; its instances are '
                                 'named by their UUIDs (%s)' % (name, ', '.join(item['uuid'] for item in clashes[name])))
        strict = self.get_option('strict')
        self.inventory.add_group(ALL_GROUP)
        for item in instances:
            host = names[item['uuid']]
            self.inventory.add_host(host, group=ALL_GROUP)
            variables = self._host_variables(item)
            for key, value in variables.items():
                self.inventory.set_variable(host, key, value)
            if self.get_option('default_groups'):
                for group in ('kvmhost_host_' + safe_group_part(item['host']),
                              'kvmhost_vm_state_' + safe_group_part(item['vm_state']),
                              'kvmhost_image_' + safe_group_part(item['image']) if item['image'] else None):
                    if group:
                        self.inventory.add_group(group)
                        self.inventory.add_child(group, host)
            self._set_composite_vars(self.get_option('compose'), variables, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option('groups'), variables, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option('keyed_groups'), variables, host, strict=strict)

    def _host_variables(self, item):
        variables = {
            'kvmhost_uuid': item['uuid'],
            'kvmhost_name': item['name'],
            'kvmhost_host': item['host'],
            'kvmhost_libvirt_uri': item['libvirt_uri'],
            'kvmhost_domain_name': item['domain_name'],
            'kvmhost_libvirt_state': item['libvirt_state'],
            'kvmhost_power_state': item['power_state'],
            'kvmhost_power_state_code': item['power_state_code'],
            'kvmhost_vm_state': item['vm_state'],
            'kvmhost_flavor': item['flavor'],
            'kvmhost_image': item['image'],
            'kvmhost_created_at': item['created_at'],
            'kvmhost_ports': item['ports'],
            'kvmhost_ips': item['ips'],
        }
        if self.get_option('set_ansible_host') and item['ips']:
            variables['ansible_host'] = item['ips'][0]
        return variables
