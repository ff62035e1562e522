# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libvirt domain XML of an instance, as Nova's ``_get_guest_config`` builds it (the domain_xml module).

Three layers, each usable without the next:

- os-vif's device names: :func:`tap_name`, :func:`qbr_name`, :func:`qvb_name`, :func:`qvo_name`.
- :func:`check_domain_spec` turns the module's parameters (the instance spec and the host's choices) into a
  checked :class:`DomainSpec`, or raises KvmhostError naming the field. Nothing is read from the host.
- :func:`build_domain_xml` turns a DomainSpec into the XML text with lxml: every name, path and id is an
  element text or attribute value, so XML metacharacters are escaped by construction. The output is
  pretty-printed with a fixed element and attribute order, so the same input always gives the same bytes.

:class:`DomainXmlDriver` is the module: it builds the XML and, with ``dest``, writes it (mode 0600, atomically)
when the file's content differs.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import re
import stat
import tempfile
import traceback

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.argument_specs import VIF_TYPES
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import ModuleDriver, Plan, forget_passwords
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import StateStore
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    check_absolute_path, check_display_name, check_uuid, check_writable_parent)

try:
    from lxml import etree
    HAS_LXML = True
    LXML_IMPORT_ERROR = None
except ImportError:
    etree = None
    HAS_LXML = False
    LXML_IMPORT_ERROR = traceback.format_exc()

NOVA_NS = 'http://openstack.org/xmlns/libvirt/nova/1.1'
# Written as <nova:package version=...>: the producer, without a version number, so that upgrading the
# collection does not change the XML of every instance (and make the domain module redefine them all).
PACKAGE = 'kvmhost.lifecycle'
SMBIOS_MANUFACTURER = 'kvmhost'
SMBIOS_PRODUCT = 'kvmhost.lifecycle'
SMBIOS_FAMILY = 'Virtual Machine'

VIRT_TYPES = ('kvm', 'qemu')
VNC_VIRT_TYPES = ('kvm', 'qemu')  # Nova: every virt type but lxc and uml
CPU_MODES = ('host-model', 'host-passthrough', 'none')
DISK_CACHE_MODES = ('none', 'writethrough', 'writeback', 'directsync', 'unsafe')
TRANSPORTS = ('host', 'qemu')
DEFAULT_OVS_BRIDGE = 'br-int'
VNC_LISTEN = '127.0.0.1'
CONSOLE_LOG = 'console.log'
NIC_NAME_LEN = 14  # nova.network.model.NIC_NAME_LEN, os-vif's device names
MIN_MTU, MAX_MTU = 68, 65535
MIN_VLAN, MAX_VLAN = 1, 4094  # 802.1Q: 0 and 4095 are reserved
MIN_PORT, MAX_PORT = 1, 65535  # TCP and UDP ports
MAX_LUN = 16383
MAX_LOCAL_ID = 0xffffffff
MAX_CMDLINE = 2048  # COMMAND_LINE_SIZE on x86
# Bounds of a flavor: beyond them QEMU or qemu-img refuses (a disk of 64 TiB is the most a qcow2 overlay holds here).
MAX_VCPUS = 4096
MAX_MEMORY_MB = 16 * 1024 * 1024
MAX_DISK_GB = 64 * 1024
MAX_SWAP_MB = MAX_DISK_GB * 1024
FILE_MODE = 0o600

_PORT_ID_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,254}')
# libvirt's diskSerial pattern is [A-Za-z0-9_.+\- ]+; a volume id is also a key in the other options.
_VOLUME_ID_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.+-]{0,254}')
# libvirt's genericName: what <auth username=...> of a network disk accepts.
_LIBVIRT_USERNAME_RE = re.compile(r'[A-Za-z0-9_+-]{1,255}')
_IFNAME_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,14}')
_MAC_RE = re.compile(r'[0-9a-f]{2}(?::[0-9a-f]{2}){5}')
_DEVICE_NAME_RE = re.compile(r'vd[b-z]')
_IQN_RE = re.compile(r'iqn\.[0-9]{4}-(?:0[1-9]|1[0-2])\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?'
                     r'(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[a-z0-9.:-]+)?', re.IGNORECASE)
_EUI_RE = re.compile(r'eui\.[0-9a-f]{16}', re.IGNORECASE)
_MAX_IQN = 223  # RFC 3720: an iSCSI name is at most 223 bytes
_PORTAL_RE = re.compile(r'(?:\[(?P<ipv6>[^\]]+)\]|(?P<ipv4>[0-9.]+)):(?P<port>[0-9]{1,5})')
# Characters XML 1.0 cannot carry at all; lxml would raise a bare ValueError on them.
_NOT_XML_CHAR_RE = re.compile('[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]')
_CONTROL_RE = re.compile('[\x00-\x1f\x7f]')


def require_lxml(module):
    """Fail the module with Ansible's standard message when lxml is missing."""
    if not HAS_LXML:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib('lxml'), exception=LXML_IMPORT_ERROR)


# ---------------------------------------------------------------- os-vif device names

def check_port_id(value, field='port_id'):
    """A Neutron port id (normally a UUID): it becomes part of device names, so no '/', no '..'."""
    if not isinstance(value, str) or not _PORT_ID_RE.fullmatch(value) or '..' in value:
        raise KvmhostError('must be a port id (normally a UUID) of letters, digits and ._- without "..", '
                           'starting with a letter or digit; got %r' % (value,), field=field)
    return value


def _device_name(prefix, port_id):
    return (prefix + check_port_id(port_id))[:NIC_NAME_LEN]


def tap_name(port_id):
    """The tap device libvirt creates for the port: ``tap8dbfeeff-e2``."""
    return _device_name('tap', port_id)


def qbr_name(port_id):
    """The per-port Linux bridge of a hybrid plug: ``qbr8dbfeeff-e2``."""
    return _device_name('qbr', port_id)


def qvb_name(port_id):
    """The bridge end of the hybrid plug's veth pair: ``qvb8dbfeeff-e2``."""
    return _device_name('qvb', port_id)


def qvo_name(port_id):
    """The OVS end of the hybrid plug's veth pair: ``qvo8dbfeeff-e2``."""
    return _device_name('qvo', port_id)


def domain_name(local_id):
    """The libvirt domain name of a host-local instance id."""
    return 'instance-%08x' % local_id


def iscsi_by_path(host, port, iqn, lun):
    """Where udev puts a host-attached iSCSI LUN, as os-brick expects it."""
    portal = '[%s]:%d' % (host, port) if ':' in host else '%s:%d' % (host, port)
    return '/dev/disk/by-path/ip-%s-iscsi-%s-lun-%d' % (portal, iqn, lun)


# ---------------------------------------------------------------- the checked spec

@dataclasses.dataclass(frozen=True)
class Vif:
    port_id: str
    vif_type: str
    mac: str
    source_bridge: str  # the bridge the tap goes into: qbr... for ovs_hybrid, the OVS or Linux bridge otherwise
    tap: str
    mtu: int | None
    ips: tuple


@dataclasses.dataclass(frozen=True)
class Disk:
    target: str
    kind: str  # root, ephemeral, swap, volume
    path: str | None = None  # a file or block device
    volume_id: str | None = None
    transport: str | None = None
    iscsi_name: str | None = None  # IQN/LUN, qemu transport
    host: str | None = None
    port: int | None = None
    auth_username: str | None = None
    secret_uuid: str | None = None


@dataclasses.dataclass(frozen=True)
class DomainSpec:
    uuid: str
    name: str
    domain_name: str
    virt_type: str
    instance_dir: str
    vcpus: int
    memory_mb: int
    flavor: dict
    image_id: str
    kernel: bool
    ramdisk: bool
    cmdline: str | None
    creation_time: str | None
    cpu_mode: str
    disk_cache: str
    vnc: bool
    disks: tuple
    vifs: tuple

    def path(self, name):
        return os.path.join(self.instance_dir, name)


def _text(value, field, required=True, limit=255):
    """A string for the XML: no control characters, nothing XML cannot carry."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise KvmhostError('must be a non-empty string, got %r' % (value,), field=field)
    if len(value) > limit:
        raise KvmhostError('must be at most %d characters, got %d' % (limit, len(value)), field=field)
    if _CONTROL_RE.search(value) or _NOT_XML_CHAR_RE.search(value):
        raise KvmhostError('must not contain control characters or characters XML cannot carry', field=field)
    return value


def _int(value, field, minimum, maximum=None, default=None):
    if value is None:
        if default is None:
            raise KvmhostError('is required', field=field)
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise KvmhostError('must be an integer, got %r' % (value,), field=field)
    try:
        number = int(value)
    except ValueError:
        raise KvmhostError('must be an integer, got %r' % (value,), field=field)
    if number < minimum or (maximum is not None and number > maximum):
        bounds = ('%d..%d' % (minimum, maximum)) if maximum is not None else ('at least %d' % minimum)
        raise KvmhostError('must be %s, got %d' % (bounds, number), field=field)
    return number


def _dict(value, field, required=True):
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise KvmhostError('must be a dictionary', field=field)
    return value


def _list(value, field):
    if value is None:
        return []
    if not isinstance(value, list):
        raise KvmhostError('must be a list', field=field)
    return value


def _choice(value, field, choices, default=None):
    if value is None:
        value = default
    if value not in choices:
        raise KvmhostError('must be one of %s, got %r' % (', '.join(choices), value), field=field)
    return value


def _path(value, field):
    path = check_absolute_path(value, field)
    _text(path, field, limit=4096)
    return path


def check_mac(value, field):
    """A unicast 6-octet MAC address, returned in lower case."""
    mac = value.lower() if isinstance(value, str) else value
    if not isinstance(mac, str) or not _MAC_RE.fullmatch(mac):
        raise KvmhostError('must be a MAC address of 6 hex octets like fa:16:3e:81:a8:b4, got %r' % (value,),
                           field=field)
    if int(mac[:2], 16) & 1:
        raise KvmhostError('must be a unicast MAC address (the lowest bit of the first octet clear), got %s' % mac,
                           field=field)
    if mac == '00:00:00:00:00:00':
        raise KvmhostError('must not be all zeros', field=field)
    return mac


def check_ifname(value, field):
    """A Linux network device name: at most 15 characters, no '/', no spaces, no ':'."""
    if not isinstance(value, str) or not _IFNAME_RE.fullmatch(value) or '..' in value:
        raise KvmhostError('must be a network device name of 1-15 letters, digits and ._- without "..", '
                           'starting with a letter or digit; got %r' % (value,), field=field)
    return value


def check_iqn(value, field):
    """An iSCSI qualified name: iqn.YYYY-MM.reversed.domain[:name] or eui. and 16 hex digits."""
    if (not isinstance(value, str) or len(value) > _MAX_IQN
            or not (_IQN_RE.fullmatch(value) or _EUI_RE.fullmatch(value))):
        raise KvmhostError('must be an iSCSI name like iqn.2026-11.org.example:volume-1 '
                           '(iqn.YYYY-MM.reversed.domain[:name]) or eui. and 16 hex digits; got %r' % (value,),
                           field=field)
    return value


def check_portal(value, field):
    """``ADDRESS:PORT`` with an IPv4 address or a bracketed IPv6 address; returns (address, port)."""
    match = _PORTAL_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise KvmhostError('must be ADDRESS:PORT with an IP address (IPv6 in brackets), like 127.0.0.1:3260; '
                           'got %r' % (value,), field=field)
    address = match.group('ipv4') or match.group('ipv6')
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise KvmhostError('%r is not a valid IP address' % address, field=field)
    if (parsed.version == 6) != bool(match.group('ipv6')):
        raise KvmhostError('an IPv6 address must be written in brackets, like [fd00::1]:3260', field=field)
    port = int(match.group('port'))
    if not MIN_PORT <= port <= MAX_PORT:
        raise KvmhostError('port must be %d..%d, got %d' % (MIN_PORT, MAX_PORT, port), field=field)
    return str(parsed), port


def check_creation_time(value, field='creation_time'):
    """ISO 8601 (naive means UTC, Z allowed) to Nova's ``YYYY-MM-DD HH:MM:SS`` in UTC; None stays None."""
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.endswith(('Z', 'z')):
        text = text[:-1] + '+00:00'
    try:
        moment = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise KvmhostError('must be a date and time like 2026-11-23T10:00:00Z, got %r' % (value,), field=field)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment.strftime('%Y-%m-%d %H:%M:%S')


def _check_image(image, ramdisk_required):
    image = _dict(image, 'instance.image')
    image_id = _text(image.get('id'), 'instance.image.id')
    if '/' in image_id or '..' in image_id:
        raise KvmhostError('must not contain "/" or "..", got %r' % image_id, field='instance.image.id')
    kernel = image.get('kernel')
    ramdisk = image.get('ramdisk')
    if kernel:
        _path(kernel, 'instance.image.kernel')
    if ramdisk:
        _path(ramdisk, 'instance.image.ramdisk')
    if ramdisk and not kernel:
        raise KvmhostError('a ramdisk needs a kernel (direct kernel boot): set instance.image.kernel too',
                           field='instance.image.ramdisk')
    if kernel and not ramdisk and ramdisk_required:
        raise KvmhostError('the kernel needs a ramdisk here (ramdisk_required is set)', field='instance.image.ramdisk')
    cmdline = image.get('cmdline')
    if cmdline is not None and cmdline != '':
        _text(cmdline, 'instance.image.cmdline', limit=MAX_CMDLINE)
        if not kernel:
            raise KvmhostError('a kernel command line needs a kernel (direct kernel boot): set instance.image.kernel',
                               field='instance.image.cmdline')
    else:
        cmdline = None
    return image_id, bool(kernel), bool(ramdisk), cmdline


def _check_flavor(flavor):
    flavor = _dict(flavor, 'instance.flavor')
    checked = {
        'vcpus': _int(flavor.get('vcpus'), 'instance.flavor.vcpus', 1, MAX_VCPUS),
        'memory_mb': _int(flavor.get('memory_mb'), 'instance.flavor.memory_mb', 1, MAX_MEMORY_MB),
        'root_gb': _int(flavor.get('root_gb'), 'instance.flavor.root_gb', 0, MAX_DISK_GB, default=0),
        'ephemeral_gb': _int(flavor.get('ephemeral_gb'), 'instance.flavor.ephemeral_gb', 0, MAX_DISK_GB, default=0),
        'swap_mb': _int(flavor.get('swap_mb'), 'instance.flavor.swap_mb', 0, MAX_SWAP_MB, default=0),
        'name': _text(flavor.get('name'), 'instance.flavor.name', required=False),
    }
    return checked


def _check_vif(vif, field):
    vif = _dict(vif, field)
    port_id = check_port_id(vif.get('id'), field + '.id')
    vif_type = _choice(vif.get('type'), field + '.type', VIF_TYPES)
    if vif_type == 'ovs':  # libvirt's openvswitch virtualport takes the port id as a UUID (and prints it lower case)
        port_id = check_uuid(port_id, field + '.id')
    mac = check_mac(vif.get('address'), field + '.address')
    bridge = vif.get('bridge')
    if bridge is not None:
        check_ifname(bridge, field + '.bridge')
    elif vif_type == 'bridge':
        raise KvmhostError('is required with type bridge: the Linux bridge to plug into', field=field + '.bridge')
    vlan, physical = vif.get('vlan'), vif.get('physical_interface')
    if vif_type != 'bridge' and (vlan is not None or physical is not None):
        raise KvmhostError('vlan and physical_interface are for type bridge only', field=field + '.type')
    if vlan is not None:
        _int(vlan, field + '.vlan', MIN_VLAN, MAX_VLAN)
        if physical is None:
            raise KvmhostError('a VLAN bridge needs physical_interface too', field=field + '.vlan')
    if physical is not None:
        check_ifname(physical, field + '.physical_interface')
    mtu = vif.get('mtu')
    if mtu is not None:
        mtu = _int(mtu, field + '.mtu', MIN_MTU, MAX_MTU)
    ips = []
    network = _dict(vif.get('network'), field + '.network', required=False)
    for index, address in enumerate(_list(network.get('ips'), field + '.network.ips')):
        try:
            ips.append(ipaddress.ip_address(address))
        except ValueError:
            raise KvmhostError('%r is not an IP address' % (address,), field='%s.network.ips[%d]' % (field, index))
    if vif_type == 'ovs_hybrid':
        source = qbr_name(port_id)
    else:
        source = bridge or DEFAULT_OVS_BRIDGE
    return Vif(port_id=port_id, vif_type=vif_type, mac=mac, source_bridge=source, tap=tap_name(port_id), mtu=mtu,
               ips=tuple(ips))


def _check_vifs(vifs):
    checked = []
    seen = {}
    for index, vif in enumerate(_list(vifs, 'instance.vifs')):
        field = 'instance.vifs[%d]' % index
        checked_vif = _check_vif(vif, field)
        for key, value, what in (('id', checked_vif.port_id, 'port id'), ('address', checked_vif.mac, 'MAC address'),
                                 ('id', checked_vif.tap, 'device name')):
            if (what, value) in seen:
                raise KvmhostError('%s %s is also the one of %s%s' % (
                    what, value, seen[(what, value)],
                    ': port ids must differ in their first 11 characters' if what == 'device name' else ''),
                    field='%s.%s' % (field, key))
            seen[(what, value)] = 'instance.vifs[%d]' % index
        checked.append(checked_vif)
    return tuple(checked)


def check_volume(volume, field, taken, params):
    volume = _dict(volume, field)
    volume_id = volume.get('id')
    if not isinstance(volume_id, str) or not _VOLUME_ID_RE.fullmatch(volume_id) or '..' in volume_id:
        raise KvmhostError('must be a volume id (normally a UUID) of letters, digits and ._+- without "..", '
                           'starting with a letter or digit; got %r' % (volume_id,), field=field + '.id')
    device = volume.get('device_name')
    if not isinstance(device, str) or not _DEVICE_NAME_RE.fullmatch(device):
        raise KvmhostError('must be vdb to vdz (vda is the root disk), got %r' % (device,),
                           field=field + '.device_name')
    if device in taken:
        raise KvmhostError('%s is already the %s' % (device, taken[device]), field=field + '.device_name')
    host, port = check_portal(volume.get('target_portal'), field + '.target_portal')
    iqn = check_iqn(volume.get('target_iqn'), field + '.target_iqn')
    lun = _int(volume.get('target_lun'), field + '.target_lun', 0, MAX_LUN)
    transport = _choice(volume.get('transport'), field + '.transport', TRANSPORTS, default='host')
    auth = _dict(volume.get('auth'), field + '.auth', required=False)
    username = None
    if auth:
        _choice(auth.get('method'), field + '.auth.method', ('CHAP',), default='CHAP')
        username = _text(auth.get('username'), field + '.auth.username')
    secrets = params.get('volume_secrets') or {}
    paths = params.get('host_volume_paths') or {}
    if transport == 'host':
        if volume_id in secrets:
            raise KvmhostError('volume %s uses the host transport: the host initiator does CHAP, not libvirt'
                               % volume_id, field='volume_secrets.' + volume_id)
        path = paths.get(volume_id)
        if path is None:
            path = iscsi_by_path(host, port, iqn, lun)
        else:
            path = _path(path, 'host_volume_paths.' + volume_id)
        return Disk(target=device, kind='volume', path=path, volume_id=volume_id, transport=transport)
    if volume_id in paths:
        raise KvmhostError('volume %s uses the qemu transport: QEMU connects to the portal itself' % volume_id,
                           field='host_volume_paths.' + volume_id)
    secret = None
    if username is not None:
        if not _LIBVIRT_USERNAME_RE.fullmatch(username):
            raise KvmhostError('with transport qemu, libvirt takes a CHAP user name of letters, digits and _+- '
                               'only; got %r' % username, field=field + '.auth.username')
        if secrets.get(volume_id) is None:
            raise KvmhostError('volume %s uses CHAP over the qemu transport: give the UUID of the libvirt secret '
                               'that holds its password' % volume_id, field='volume_secrets.' + volume_id)
        secret = check_uuid(secrets[volume_id], 'volume_secrets.' + volume_id)
    elif volume_id in secrets:
        raise KvmhostError('volume %s has no auth: a secret is only used with CHAP' % volume_id,
                           field='volume_secrets.' + volume_id)
    return Disk(target=device, kind='volume', volume_id=volume_id, transport=transport, iscsi_name='%s/%d' % (iqn, lun),
                host=host, port=port, auth_username=username, secret_uuid=secret)


# A secret UUID for the CHAP volumes of the qemu transport when a spec is checked before anything exists:
# the real ones come from iscsi_attach once the secret is made.
PLACEHOLDER_SECRET_UUID = '00000000-0000-4000-8000-000000000000'


def volume_secret_placeholders(spec):
    """{volume id: PLACEHOLDER_SECRET_UUID} for the CHAP volumes of the qemu transport of an instance spec."""
    placeholders = {}
    for volume in (spec or {}).get('volumes') or []:
        if isinstance(volume, dict) and volume.get('transport') == 'qemu' and volume.get('auth'):
            placeholders[str(volume.get('id')).lower()] = PLACEHOLDER_SECRET_UUID
    return placeholders


def _check_disks(flavor, volumes, params):
    disks = [Disk(target='vda', kind='root', path='disk')]
    letters = iter('bcdefghijklmnopqrstuvwxyz')
    if flavor['ephemeral_gb']:
        disks.append(Disk(target='vd' + next(letters), kind='ephemeral', path='disk.local'))
    if flavor['swap_mb']:
        disks.append(Disk(target='vd' + next(letters), kind='swap', path='disk.swap'))
    taken = dict((disk.target, '%s disk' % disk.kind) for disk in disks)
    attached = []
    for index, volume in enumerate(_list(volumes, 'instance.volumes')):
        field = 'instance.volumes[%d]' % index
        disk = check_volume(volume, field, taken, params)
        if any(other.volume_id == disk.volume_id for other in attached):
            raise KvmhostError('volume %s is listed twice' % disk.volume_id, field=field + '.id')
        taken[disk.target] = 'device of volume %s' % disk.volume_id
        attached.append(disk)
    known = set(disk.volume_id for disk in attached)
    for option in ('volume_secrets', 'host_volume_paths'):
        given = _dict(params.get(option), option, required=False)
        for volume_id in sorted(given):
            if volume_id not in known:
                raise KvmhostError('the instance has no volume %s' % volume_id, field='%s.%s' % (option, volume_id))
    return tuple(disks + sorted(attached, key=lambda disk: disk.target))


def check_domain_spec(params):
    """The module's parameters, checked, as a DomainSpec. Raises KvmhostError naming the field.

    ``params`` holds ``instance`` (the instance spec) and ``local_id``; ``virt_type``, ``instances_path``,
    ``vnc``, ``cpu_mode``, ``disk_cache``, ``volume_secrets``, ``host_volume_paths``, ``creation_time`` and
    ``ramdisk_required`` are optional here (the module's defaults apply).
    """
    instance = _dict(params.get('instance'), 'instance')
    uuid = check_uuid(instance.get('uuid'), 'instance.uuid')
    name = check_display_name(instance.get('name'), 'instance.name')
    _text(name, 'instance.name')
    local_id = _int(params.get('local_id'), 'local_id', 1, MAX_LOCAL_ID)
    virt_type = _choice(params.get('virt_type'), 'virt_type', VIRT_TYPES, default='kvm')
    instances_path = _path(params.get('instances_path') or '/var/lib/kvmhost/instances', 'instances_path')
    if instances_path == '/':
        raise KvmhostError('must not be the root directory', field='instances_path')
    cpu_mode = params.get('cpu_mode')
    if cpu_mode is None:  # Nova's default
        cpu_mode = 'host-model' if virt_type == 'kvm' else 'none'
    _choice(cpu_mode, 'cpu_mode', CPU_MODES)
    if virt_type == 'qemu' and cpu_mode != 'none':
        raise KvmhostError('%s needs virt_type kvm; software emulation takes none' % cpu_mode, field='cpu_mode')
    vnc = params.get('vnc') or False
    if vnc and virt_type not in VNC_VIRT_TYPES:
        raise KvmhostError('virt_type %s has no VNC console' % virt_type, field='vnc')
    flavor = _check_flavor(instance.get('flavor'))
    image_id, kernel, ramdisk, cmdline = _check_image(instance.get('image'), params.get('ramdisk_required'))
    return DomainSpec(
        uuid=uuid, name=name, domain_name=domain_name(local_id), virt_type=virt_type,
        instance_dir=os.path.join(instances_path, uuid), vcpus=flavor['vcpus'], memory_mb=flavor['memory_mb'],
        flavor=flavor, image_id=image_id, kernel=kernel, ramdisk=ramdisk, cmdline=cmdline,
        creation_time=check_creation_time(params.get('creation_time')), cpu_mode=cpu_mode,
        disk_cache=_choice(params.get('disk_cache'), 'disk_cache', DISK_CACHE_MODES, default='none'), vnc=bool(vnc),
        disks=_check_disks(flavor, instance.get('volumes'), params), vifs=_check_vifs(instance.get('vifs')))


# ---------------------------------------------------------------- the XML

def _sub(parent, tag, text=None, **attributes):
    """A child element; attributes keep the order given, so the output is stable."""
    element = etree.SubElement(parent, tag)
    for key, value in attributes.items():
        element.set(key.rstrip('_'), str(value))
    if text is not None:
        element.text = str(text)
    return element


def _nova(tag):
    return '{%s}%s' % (NOVA_NS, tag)


def _metadata(parent, spec):
    instance = etree.SubElement(_sub(parent, 'metadata'), _nova('instance'), nsmap={'nova': NOVA_NS})
    _sub(instance, _nova('package'), version=PACKAGE)
    _sub(instance, _nova('name'), spec.name)
    if spec.creation_time:
        _sub(instance, _nova('creationTime'), spec.creation_time)
    flavor = spec.flavor
    flavor_element = _sub(instance, _nova('flavor'), **({'name': flavor['name']} if flavor['name'] else {}))
    for tag, value in (('memory', flavor['memory_mb']), ('disk', flavor['root_gb']), ('swap', flavor['swap_mb']),
                       ('ephemeral', flavor['ephemeral_gb']), ('vcpus', flavor['vcpus'])):
        _sub(flavor_element, _nova(tag), value)
    _sub(instance, _nova('root'), type_='image', uuid=spec.image_id)
    if spec.vifs:
        ports = _sub(instance, _nova('ports'))
        for vif in spec.vifs:
            port = _sub(ports, _nova('port'), uuid=vif.port_id)
            for address in vif.ips:
                _sub(port, _nova('ip'), type_='fixed', address=address, ipVersion=address.version)


def _sysinfo(parent, spec):
    system = _sub(_sub(parent, 'sysinfo', type_='smbios'), 'system')
    for name, value in (('manufacturer', SMBIOS_MANUFACTURER), ('product', SMBIOS_PRODUCT), ('serial', spec.uuid),
                        ('uuid', spec.uuid), ('family', SMBIOS_FAMILY)):
        _sub(system, 'entry', value, name=name)


def _os(parent, spec):
    os_element = _sub(parent, 'os')
    _sub(os_element, 'type', 'hvm', arch='x86_64', machine='pc')
    if spec.kernel:
        _sub(os_element, 'kernel', spec.path('kernel'))
        if spec.ramdisk:
            _sub(os_element, 'initrd', spec.path('ramdisk'))
        if spec.cmdline:
            _sub(os_element, 'cmdline', spec.cmdline)
    else:
        _sub(os_element, 'boot', dev='hd')
    _sub(os_element, 'smbios', mode='sysinfo')


def disk_element(parent, spec, disk):
    if disk.kind != 'volume':
        element = _sub(parent, 'disk', type_='file', device='disk')
        _sub(element, 'driver', name='qemu', type_='qcow2', cache=spec.disk_cache)
        _sub(element, 'source', file=spec.path(disk.path))
    elif disk.transport == 'host':
        element = _sub(parent, 'disk', type_='block', device='disk')
        io_mode = {'io': 'native'} if spec.disk_cache in ('none', 'directsync') else {}
        _sub(element, 'driver', name='qemu', type_='raw', cache=spec.disk_cache, **io_mode)
        _sub(element, 'source', dev=disk.path)
    else:
        element = _sub(parent, 'disk', type_='network', device='disk')
        _sub(element, 'driver', name='qemu', type_='raw', cache=spec.disk_cache)
        source = _sub(element, 'source', protocol='iscsi', name=disk.iscsi_name)
        _sub(source, 'host', name=disk.host, port=disk.port)
        if disk.auth_username:
            auth = _sub(source, 'auth', username=disk.auth_username)
            _sub(auth, 'secret', type_='iscsi', uuid=disk.secret_uuid)
    _sub(element, 'target', dev=disk.target, bus='virtio')
    if disk.volume_id:
        _sub(element, 'serial', disk.volume_id)


def _interface(parent, vif):
    element = _sub(parent, 'interface', type_='bridge')
    _sub(element, 'mac', address=vif.mac)
    _sub(element, 'model', type_='virtio')
    _sub(element, 'source', bridge=vif.source_bridge)
    if vif.vif_type == 'ovs':
        _sub(_sub(element, 'virtualport', type_='openvswitch'), 'parameters', interfaceid=vif.port_id)
    if vif.mtu:
        _sub(element, 'mtu', size=vif.mtu)
    _sub(element, 'target', dev=vif.tap)


def build_domain_xml(spec):
    """The domain XML text of a DomainSpec (a dict of module parameters is checked first)."""
    if not isinstance(spec, DomainSpec):
        spec = check_domain_spec(spec)
    domain = etree.Element('domain', type=spec.virt_type)
    _sub(domain, 'name', spec.domain_name)
    _sub(domain, 'uuid', spec.uuid)
    _metadata(domain, spec)
    _sub(domain, 'memory', spec.memory_mb * 1024, unit='KiB')
    _sub(domain, 'vcpu', spec.vcpus)
    _sysinfo(domain, spec)
    _os(domain, spec)
    features = _sub(domain, 'features')
    _sub(features, 'acpi')
    _sub(features, 'apic')
    if spec.cpu_mode != 'none':
        _sub(domain, 'cpu', mode=spec.cpu_mode)
    clock = _sub(domain, 'clock', offset='utc')
    _sub(clock, 'timer', name='pit', tickpolicy='delay')
    _sub(clock, 'timer', name='rtc', tickpolicy='catchup')
    _sub(clock, 'timer', name='hpet', present='no')
    _sub(domain, 'on_poweroff', 'destroy')
    _sub(domain, 'on_reboot', 'restart')
    _sub(domain, 'on_crash', 'destroy')
    devices = _sub(domain, 'devices')
    for disk in spec.disks:
        disk_element(devices, spec, disk)
    for vif in spec.vifs:
        _interface(devices, vif)
    # A pty (virsh console works) whose output virtlogd appends to console.log, as Nova does with virtlogd.
    serial = _sub(devices, 'serial', type_='pty')
    _sub(serial, 'log', file=spec.path(CONSOLE_LOG), append='on')
    _sub(serial, 'target', port=0)
    _sub(_sub(devices, 'console', type_='pty'), 'target', type_='serial', port=0)
    if spec.vnc:
        _sub(devices, 'graphics', type_='vnc', autoport='yes', listen=VNC_LISTEN)
        _sub(_sub(devices, 'video'), 'model', type_='vga')
    _sub(_sub(devices, 'memballoon', model='virtio'), 'stats', period=10)
    return etree.tostring(domain, pretty_print=True, encoding='unicode')


def domain_devices(spec):
    """What the module returns as ``devices``: disk targets and their sources, interface device names."""
    disks = []
    for disk in spec.disks:
        entry = {'target': disk.target, 'kind': disk.kind}
        if disk.kind != 'volume':
            entry['source'] = spec.path(disk.path)
        elif disk.transport == 'host':
            entry.update(source=disk.path, volume_id=disk.volume_id, transport=disk.transport)
        else:
            entry.update(source='iscsi://%s/%s' % (
                '[%s]:%d' % (disk.host, disk.port) if ':' in disk.host else '%s:%d' % (disk.host, disk.port),
                disk.iscsi_name), volume_id=disk.volume_id, transport=disk.transport)
        disks.append(entry)
    interfaces = [{'port_id': vif.port_id, 'type': vif.vif_type, 'mac': vif.mac, 'dev': vif.tap,
                   'bridge': vif.source_bridge} for vif in spec.vifs]
    return {'disks': disks, 'interfaces': interfaces, 'console_log': spec.path(CONSOLE_LOG)}


# ---------------------------------------------------------------- the module

def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return ''  # not our XML: it will be replaced


def write_atomic(path, text, mode=FILE_MODE):
    """Write through a temporary file in the same directory, fsync, then rename over ``path``."""
    directory = os.path.dirname(path) or '.'
    fd, part = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.part', dir=directory)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.rename(part, path)
    except BaseException:
        try:
            os.unlink(part)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def plan_dest(dest, xml):
    """The Plan of writing ``xml`` to ``dest`` (0600): nothing when the file already has that content and mode."""
    current = read_text(dest)
    plan = Plan(before=current if current is not None else '', after=xml)
    if current != xml:
        plan.add('write the domain XML to %s' % dest, lambda: write_atomic(dest, xml))
    elif stat.S_IMODE(os.stat(dest).st_mode) != FILE_MODE:
        plan.add('set the mode of %s to 0600' % dest, lambda: os.chmod(dest, FILE_MODE))
    return plan


def recorded_local_id(state_db, uuid, check_mode):
    """The host-local id of the instance's record in the state store.

    In check mode an instance without a record yet gets the id its record would get.
    """
    store = StateStore.open(state_db, readonly=True)
    if store is None:
        if check_mode:
            return 1
        raise KvmhostError('no state store at %s to read the local id of %s from' % (state_db, uuid), field='local_id')
    with store:
        record = store.get_instance(uuid)
        if record is not None:
            return record['local_id']
        if check_mode:
            return store.next_local_id()
    raise KvmhostError('instance %s has no record in %s: give local_id, or record the instance first'
                       % (uuid, state_db), field='local_id')


class DomainXmlDriver(ModuleDriver):
    """domain_xml."""

    @staticmethod
    def check_options(params):
        """The spec check, before the local id is read from the state store (an unread id checks as 1)."""
        check_domain_spec(dict(params, local_id=1) if params.get('local_id') is None else params)

    def run(self):
        require_lxml(self.module)
        forget_passwords(self.module, self.params.get('instance'))  # this module never needs them
        if self.params.get('local_id') is None:
            uuid = check_uuid((self.params.get('instance') or {}).get('uuid'), 'instance.uuid')
            self.params['local_id'] = recorded_local_id(self.params['state_db'], uuid, self.check_mode)
        spec = check_domain_spec(self.params)
        dest = self.params.get('dest')
        if dest is not None:
            # In check mode the instance directory of a new instance is not made yet (instance_image makes it).
            dest = check_writable_parent(_path(dest, 'dest'), 'dest', predicted_parent=self.check_mode)
        xml = build_domain_xml(spec)
        result = {'xml': xml, 'domain_name': spec.domain_name, 'uuid': spec.uuid, 'instance_dir': spec.instance_dir,
                  'devices': domain_devices(spec), 'dest': dest}
        plan = plan_dest(dest, xml) if dest else Plan(before='', after='')
        result = self.finish(plan, **result)
        if self.diff_mode and dest:
            result['diff'].update(before_header=dest, after_header=dest)
        return result
