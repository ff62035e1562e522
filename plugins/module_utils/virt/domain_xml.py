# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libvirt domain XML of an instance, as Nova's ``_get_guest_config`` builds it (the domain_xml module).

:func:`build_domain_xml` turns a checked DomainSpec (domain_spec.py) into the XML text with lxml: every name, path
and id is an element text or attribute value, so XML metacharacters are escaped by construction. The output is
pretty-printed with a fixed element and attribute order, so the same input always gives the same bytes.

:class:`DomainXmlDriver` is the module: it builds the XML and, with ``dest``, writes it (mode 0600, atomically)
when the file's content differs.
"""

from __future__ import annotations

import os
import stat
import traceback

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import ModuleDriver, Plan, forget_passwords
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.files import FILE_MODE, read_text, write_atomic
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import check_uuid, check_writable_parent
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import StateStore
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import DomainSpec, _path, check_domain_spec

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
VNC_LISTEN = '127.0.0.1'
CONSOLE_LOG = 'console.log'


def require_lxml(module):
    """Fail the module with Ansible's standard message when lxml is missing."""
    if not HAS_LXML:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib('lxml'), exception=LXML_IMPORT_ERROR)


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
