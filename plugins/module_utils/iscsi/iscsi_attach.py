# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iscsi_attach module: an iSCSI volume on a compute host, for QEMU's own initiator or the host's.

Transport ``qemu``: nothing logs in on the host. The module checks that the target answers
(:mod:`..iscsi.probe`), keeps the CHAP password in a libvirt secret of usage type iscsi (usage id
``kvmhost-volume-<volume id>``, so the same volume always has the same secret UUID), and returns what
domain_xml needs (``volume_secrets``). With ``domain_uuid`` it also hot-plugs the disk into the domain
(live and persistent) with the disk XML domain_xml builds.

Transport ``host``: the kernel initiator, see :mod:`..iscsi.host_transport` (iscsiadm, as os-brick does it).
"""

from __future__ import annotations

import dataclasses
import time

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import Plan, forget_passwords
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.driver import LibvirtDriver
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import check_volume
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import disk_element, etree, require_lxml
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.probe import (
    LibiscsiRunner, check_target_answers)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import libvirt
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import MAX_TIMEOUT, check_int, check_uuid

SECRET_USAGE_PREFIX = 'kvmhost-volume-'
VIR_SECRET_USAGE_TYPE_ISCSI = 3
VIR_ERR_NO_SECRET = 66
VIR_DOMAIN_AFFECT_LIVE = 1
VIR_DOMAIN_AFFECT_CONFIG = 2
VIR_DOMAIN_XML_INACTIVE = 2
PLACEHOLDER_UUID = '00000000-0000-0000-0000-000000000000'


@dataclasses.dataclass(frozen=True)
class _DiskOptions:
    """The one DomainSpec field domain_xml's disk builder reads for a volume."""
    disk_cache: str


def secret_usage(volume_id):
    return SECRET_USAGE_PREFIX + volume_id


def secret_xml(volume_id):
    secret = etree.Element('secret', ephemeral='no', private='no')
    etree.SubElement(secret, 'description').text = 'CHAP password of volume %s (kvmhost.lifecycle)' % volume_id
    usage = etree.SubElement(secret, 'usage', type='iscsi')
    etree.SubElement(usage, 'target').text = secret_usage(volume_id)
    return etree.tostring(secret, encoding='unicode')


def disk_xml(disk, disk_cache):
    """The <disk> element domain_xml writes for this volume, as text for attachDeviceFlags."""
    devices = etree.Element('devices')
    disk_element(devices, _DiskOptions(disk_cache), disk)
    return etree.tostring(devices[0], encoding='unicode')


def find_volume_disk(xml, volume_id):
    """The <disk> element of the domain XML whose serial is the volume id, or None."""
    for element in etree.fromstring(xml.encode('utf-8')).iterfind('devices/disk'):
        if (element.findtext('serial') or '').strip() == volume_id:
            return element
    return None


def disk_target_taken(xml, target, volume_id):
    for element in etree.fromstring(xml.encode('utf-8')).iterfind('devices/disk'):
        node = element.find('target')
        if node is not None and node.get('dev') == target and (element.findtext('serial') or '') != volume_id:
            return True
    return False


class SecretStore(object):
    """libvirt secrets of usage type iscsi, through the module's libvirt connection seam."""

    def __init__(self, connection):
        self.connection = connection

    def lookup(self, volume_id):
        try:
            return self.connection.conn.secretLookupByUsage(VIR_SECRET_USAGE_TYPE_ISCSI, secret_usage(volume_id))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == VIR_ERR_NO_SECRET:
                return None
            raise

    def holds(self, secret, password):
        try:
            return secret.value() == password.encode('utf-8')
        except libvirt.libvirtError:
            return False  # no value set yet, or private

    def ensure(self, volume_id, password):
        secret = self.lookup(volume_id) or self.connection.conn.secretDefineXML(secret_xml(volume_id))
        secret.setValue(password.encode('utf-8'))
        return secret.UUIDString()


class IscsiAttachDriver(LibvirtDriver):
    """iscsi_attach: attached or detached, for the qemu or host transport."""

    discovery_runner_class = LibiscsiRunner
    detach_wait = 10.0

    @staticmethod
    def check_options(params):
        """The timeout and the volume; returns the volume's Disk (a placeholder secret for CHAP over qemu)."""
        check_int(params['timeout'], 'timeout', 1, MAX_TIMEOUT, 'seconds')
        volume = params['volume']
        qemu_chap = volume.get('transport') == 'qemu' and volume.get('auth')
        secrets = {volume['id']: PLACEHOLDER_UUID} if qemu_chap else {}
        return check_volume(volume, 'volume', {}, {'volume_secrets': secrets})

    def run(self):
        require_lxml(self.module)
        volume = self.params['volume']
        auth = volume.get('auth') or {}
        password = auth.get('password')
        forget_passwords(self.module, volume)  # the value is kept in ``password`` for the libvirt secret
        if auth and (auth.get('username') is None or password is None):
            raise KvmhostError('CHAP needs both username and password', field='volume.auth')
        disk = self.check_options(self.params)
        qemu = volume.get('transport') == 'qemu'
        domain_uuid = self.params.get('domain_uuid')
        domain = None
        if domain_uuid is not None:
            domain_uuid = check_uuid(domain_uuid, 'domain_uuid')
            domain = self.connection.domain_by_uuid(domain_uuid)
            # A domain that is gone has no disk to detach: detaching then only removes the host's side.
            if domain is None and self.params['state'] == 'attached':
                raise KvmhostError('no libvirt domain has UUID %s' % domain_uuid, field='domain_uuid')
        self.disk, self.password = disk, password
        if qemu:
            return self.run_qemu(volume, disk, password, domain)
        return self.run_host(volume, disk, password, domain)

    # ------------------------------------------------------------ transport qemu

    def run_qemu(self, volume, disk, password, domain):
        volume_id = volume['id']
        store = SecretStore(self.connection)
        secret = store.lookup(volume_id)
        attached = self.params['state'] == 'attached'
        before = {'secret': secret is not None, 'domain_attached': self._domain_has(domain, volume_id)}
        after = {'secret': attached and password is not None,
                 'domain_attached': attached if domain is not None else before['domain_attached']}
        plan = Plan(before, after)
        holder = {'uuid': secret.UUIDString() if secret is not None else None}
        if attached:
            host, port = disk.host, disk.port
            lun = int(disk.iscsi_name.rsplit('/', 1)[1])
            check_target_answers(self.discovery_runner_class(self.module), host, port, volume['target_iqn'], lun,
                                 self.params['timeout'], disk.auth_username, password, field='volume')
            if password is not None and (secret is None or not store.holds(secret, password)):
                plan.add('store the CHAP password of volume %s in a libvirt secret' % volume_id,
                         lambda: holder.update(uuid=store.ensure(volume_id, password)))
            elif password is None and secret is not None:
                plan.add('remove the libvirt secret of volume %s' % volume_id, secret.undefine)
            if domain is not None:
                self._plan_attach(plan, domain, volume_id,
                                  lambda: dataclasses.replace(disk, secret_uuid=holder['uuid'] or PLACEHOLDER_UUID))
        else:
            if domain is not None:
                self._plan_detach(plan, domain, volume_id)
            if secret is not None:
                plan.add('remove the libvirt secret of volume %s' % volume_id, secret.undefine)
        result = self.finish(plan)
        final_disk = dataclasses.replace(disk, secret_uuid=holder['uuid']) if attached else disk
        uuid = holder['uuid'] if attached and password is not None else None
        result.update(volume_id=volume_id, transport='qemu', secret_uuid=uuid,
                      volume_secrets={volume_id: uuid} if uuid else {}, host_volume_paths={},
                      device_path=None, domain_attached=after['domain_attached'],
                      source={'protocol': 'iscsi', 'name': disk.iscsi_name, 'host': disk.host, 'port': disk.port,
                              'username': disk.auth_username},
                      disk_xml=disk_xml(final_disk, self.params['disk_cache']) if attached and
                      (uuid or password is None) else None)
        return result

    # ------------------------------------------------------------ transport host

    def run_host(self, volume, disk, password, domain):
        """Implemented by host_transport.HostIscsiAttachDriver, the class the module runs."""
        raise KvmhostError('transport host needs the host_transport driver', field='volume.transport')

    # ------------------------------------------------------------ hot plug

    def _domain_xmls(self, domain):
        xmls = [domain.XMLDesc(VIR_DOMAIN_XML_INACTIVE)]
        if domain.isActive():
            xmls.append(domain.XMLDesc(0))
        return xmls

    def _domain_has(self, domain, volume_id):
        if domain is None:
            return None
        return all(find_volume_disk(xml, volume_id) is not None for xml in self._domain_xmls(domain))

    def _plan_attach(self, plan, domain, volume_id, final_disk):
        live = domain.isActive()
        config_xml = domain.XMLDesc(VIR_DOMAIN_XML_INACTIVE)
        flags = 0
        if find_volume_disk(config_xml, volume_id) is None:
            flags |= VIR_DOMAIN_AFFECT_CONFIG
            if disk_target_taken(config_xml, self.disk.target, volume_id):
                raise KvmhostError('the domain already has another disk %s' % self.disk.target,
                                   field='volume.device_name')
        if live and find_volume_disk(domain.XMLDesc(0), volume_id) is None:
            flags |= VIR_DOMAIN_AFFECT_LIVE
        if flags:
            names = ((VIR_DOMAIN_AFFECT_LIVE, 'running'), (VIR_DOMAIN_AFFECT_CONFIG, 'persistent'))
            where = ' and '.join(name for bit, name in names if flags & bit)
            plan.add('attach volume %s as %s to the %s domain' % (volume_id, self.disk.target, where),
                     lambda: domain.attachDeviceFlags(disk_xml(final_disk(), self.params['disk_cache']), flags))

    def _plan_detach(self, plan, domain, volume_id):
        for flag, xml, where in ((VIR_DOMAIN_AFFECT_CONFIG, domain.XMLDesc(VIR_DOMAIN_XML_INACTIVE), 'persistent'),
                                 (VIR_DOMAIN_AFFECT_LIVE, domain.XMLDesc(0) if domain.isActive() else None, 'running')):
            element = find_volume_disk(xml, volume_id) if xml else None
            if element is not None:
                text = etree.tostring(element, encoding='unicode')
                plan.add('detach volume %s from the %s domain' % (volume_id, where),
                         lambda text=text, flag=flag: self._detach(domain, text, flag, volume_id))

    def _detach(self, domain, text, flag, volume_id):
        domain.detachDeviceFlags(text, flag)
        if flag != VIR_DOMAIN_AFFECT_LIVE:
            return
        deadline = time.monotonic() + self.detach_wait
        while find_volume_disk(domain.XMLDesc(0), volume_id) is not None:
            if time.monotonic() > deadline:
                raise KvmhostError('the guest did not release volume %s within %d s' % (volume_id, self.detach_wait),
                                   field='domain_uuid')
            time.sleep(0.2)
