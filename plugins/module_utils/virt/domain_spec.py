# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checked spec of an instance's domain: :func:`check_domain_spec` turns the domain_xml module's parameters
(the instance spec and the host's choices) into a :class:`DomainSpec`, or raises KvmhostError naming the field.
Nothing is read from the host. The XML is built from it in domain_xml.py.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import re

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.argument_specs import VIF_TYPES
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    MAX_LUN, MAX_MTU, MAX_VLAN, MIN_MTU, MIN_VLAN, check_absolute_path, check_display_name, check_ifname, check_iqn,
    check_mac, check_portal, check_uuid)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.names import (
    DEFAULT_OVS_BRIDGE, check_port_id, qbr_name, tap_name)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import domain_name

VIRT_TYPES = ('kvm', 'qemu')
VNC_VIRT_TYPES = ('kvm', 'qemu')  # Nova: every virt type but lxc and uml
CPU_MODES = ('host-model', 'host-passthrough', 'none')
DISK_CACHE_MODES = ('none', 'writethrough', 'writeback', 'directsync', 'unsafe')
TRANSPORTS = ('host', 'qemu')
MAX_LOCAL_ID = 0xffffffff
MAX_CMDLINE = 2048  # COMMAND_LINE_SIZE on x86
# Bounds of a flavor: beyond them QEMU or qemu-img refuses (a disk of 64 TiB is the most a qcow2 overlay holds here).
MAX_VCPUS = 4096
MAX_MEMORY_MB = 16 * 1024 * 1024
MAX_DISK_GB = 64 * 1024
MAX_SWAP_MB = MAX_DISK_GB * 1024
# libvirt's diskSerial pattern is [A-Za-z0-9_.+\- ]+; a volume id is also a key in the other options.
_VOLUME_ID_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.+-]{0,254}')
# libvirt's genericName: what <auth username=...> of a network disk accepts.
_LIBVIRT_USERNAME_RE = re.compile(r'[A-Za-z0-9_+-]{1,255}')
_DEVICE_NAME_RE = re.compile(r'vd[b-z]')
# Characters XML 1.0 cannot carry at all; lxml would raise a bare ValueError on them.
_NOT_XML_CHAR_RE = re.compile('[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]')
_CONTROL_RE = re.compile('[\x00-\x1f\x7f]')


def iscsi_by_path(host, port, iqn, lun):
    """Where udev puts a host-attached iSCSI LUN, as os-brick expects it."""
    portal = '[%s]:%d' % (host, port) if ':' in host else '%s:%d' % (host, port)
    return '/dev/disk/by-path/ip-%s-iscsi-%s-lun-%d' % (portal, iqn, lun)


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
