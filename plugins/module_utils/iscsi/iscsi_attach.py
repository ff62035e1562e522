# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iscsi_attach module: an iSCSI volume on a compute host, for QEMU's own initiator or the host's.

The driver checks the volume, finds the domain of ``domain_uuid`` and picks the transport object of the volume's
``transport``: :class:`..iscsi.qemu_transport.QemuTransport` (nothing logs in on the host; a libvirt secret holds
the CHAP password) or :class:`..iscsi.host_transport.HostTransport` (the kernel initiator, through iscsiadm). The
transport plans the host's side; with ``domain_uuid``, :class:`..iscsi.hotplug.Hotplug` plans the domain's (the
disk attached once the host's side is ready, detached before it is released). The driver builds the result from
both. VolumesDriver, the class the module runs, does it for one volume or for each of an instance's volumes.
"""

from __future__ import annotations

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import Plan, forget_passwords
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.batch import EachDriver
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    MAX_TIMEOUT, check_int, check_uuid)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.host_transport import (
    MAX_SCAN_TRIES, HostTransport, IscsiadmRunner)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.hotplug import Hotplug, disk_xml
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.probe import LibiscsiRunner
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.qemu_transport import (
    PLACEHOLDER_UUID, QemuTransport)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import check_volume
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import require_lxml
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.driver import LibvirtDriver


class IscsiAttachDriver(LibvirtDriver):
    """iscsi_attach for one volume: attached or detached, through the transport object of the volume."""

    discovery_runner_class = LibiscsiRunner
    iscsiadm_runner_class = IscsiadmRunner
    detach_wait = 10.0

    @staticmethod
    def check_options(params):
        """scan_tries, the timeout and the volume; returns the volume's Disk (a placeholder secret for CHAP over
        qemu)."""
        check_int(params['scan_tries'], 'scan_tries', 1, MAX_SCAN_TRIES)
        check_int(params['timeout'], 'timeout', 1, MAX_TIMEOUT, 'seconds')
        volume = params['volume']
        qemu_chap = volume.get('transport') == 'qemu' and volume.get('auth')
        secrets = {volume['id']: PLACEHOLDER_UUID} if qemu_chap else {}
        return check_volume(volume, 'volume', {}, {'volume_secrets': secrets})

    def transport(self, volume, disk, password):
        """The transport object of the volume, given what it needs."""
        if volume.get('transport') == 'qemu':
            return QemuTransport(self.module, self.connection, self.discovery_runner_class(self.module), volume, disk,
                                 password)
        return HostTransport(self.module, self.iscsiadm_runner_class(self.module), volume, disk, password)

    def run(self):
        require_lxml(self.module)
        volume = self.params['volume']
        auth = volume.get('auth') or {}
        password = auth.get('password')
        forget_passwords(self.module, volume)  # the value is kept in ``password`` for the libvirt secret
        if auth and (auth.get('username') is None or password is None):
            raise KvmhostError('CHAP needs both username and password', field='volume.auth')
        disk = self.check_options(self.params)
        domain_uuid = self.params.get('domain_uuid')
        domain = None
        if domain_uuid is not None:
            domain_uuid = check_uuid(domain_uuid, 'domain_uuid')
            domain = self.connection.domain_by_uuid(domain_uuid)
            # A domain that is gone has no disk to detach: detaching then only removes the host's side.
            if domain is None and self.params['state'] == 'attached':
                raise KvmhostError('no libvirt domain has UUID %s' % domain_uuid, field='domain_uuid')
        volume_id = volume['id']
        transport = self.transport(volume, disk, password)
        hotplug = Hotplug(domain, volume_id, self.detach_wait)
        attached = self.params['state'] == 'attached'
        before = transport.state()
        before['domain_attached'] = hotplug.attached()
        after = dict(before, domain_attached=attached if domain is not None else before['domain_attached'])
        plan = Plan(before, after)
        if attached:
            transport.plan_attach(plan)
            if domain is not None:
                hotplug.plan_attach(plan, disk.target, transport.hotplug_disk, self.params['disk_cache'])
        else:
            if domain is not None:
                hotplug.plan_detach(plan)
            transport.plan_detach(plan)
        result = self.finish(plan)
        secret_uuid, device_path, final_disk = transport.secret_uuid(), transport.device_path(), transport.result_disk()
        result.update(volume_id=volume_id, transport=transport.name, secret_uuid=secret_uuid,
                      volume_secrets={volume_id: secret_uuid} if secret_uuid else {},
                      host_volume_paths={volume_id: device_path} if device_path else {},
                      device_path=device_path, domain_attached=after['domain_attached'], source=transport.source(),
                      disk_xml=disk_xml(final_disk, self.params['disk_cache']) if final_disk is not None else None)
        return result


class VolumesDriver(EachDriver):
    """iscsi_attach: one volume (option volume), or every volume of an instance in order (option volumes).

    With ``volumes`` the result merges the volumes' ``volume_secrets`` and ``host_volume_paths``, which is
    what domain_xml takes.
    """

    inner = IscsiAttachDriver
    one = 'volume'
    many = 'volumes'
    merged = ('volume_secrets', 'host_volume_paths')

    def record_note(self, result):
        volumes = self.params.get('volumes')
        if volumes is None:
            return super().record_note(result)
        verb = 'attached' if self.params['state'] == 'attached' else 'detached'
        return '%d volumes %s%s' % (len(volumes), verb, ': ' + ', '.join(
            '%s %s' % (v['device_name'], v['id']) for v in volumes) if volumes else '')
