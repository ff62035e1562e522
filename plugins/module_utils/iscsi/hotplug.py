# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_attach's hot plug, the same for both transports: a volume's disk attached to (or detached from) a libvirt
domain, live when it runs and in its persistent definition, with the disk XML domain_xml builds. A disk whose
serial is the volume id counts as attached.
"""

from __future__ import annotations

import dataclasses
import time

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import disk_element, etree
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.driver import VIR_DOMAIN_XML_INACTIVE

VIR_DOMAIN_AFFECT_LIVE = 1
VIR_DOMAIN_AFFECT_CONFIG = 2


@dataclasses.dataclass(frozen=True)
class _DiskOptions:
    """The one DomainSpec field domain_xml's disk builder reads for a volume."""
    disk_cache: str


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


class Hotplug(object):
    """The disk of one volume in one domain; domain None (no domain_uuid, or a domain that is gone) has none."""

    def __init__(self, domain, volume_id, detach_wait):
        self.domain, self.volume_id, self.detach_wait = domain, volume_id, detach_wait

    def _domain_xmls(self):
        domain = self.domain
        xmls = [domain.XMLDesc(VIR_DOMAIN_XML_INACTIVE)]
        if domain.isActive():
            xmls.append(domain.XMLDesc(0))
        return xmls

    def attached(self):
        """Whether the domain has the disk (live and persistent), None without a domain."""
        if self.domain is None:
            return None
        return all(find_volume_disk(xml, self.volume_id) is not None for xml in self._domain_xmls())

    def plan_attach(self, plan, target, final_disk, disk_cache):
        """Attach the disk final_disk() gives (when the step runs) as target where the domain lacks it."""
        domain, volume_id = self.domain, self.volume_id
        live = domain.isActive()
        config_xml = domain.XMLDesc(VIR_DOMAIN_XML_INACTIVE)
        flags = 0
        if find_volume_disk(config_xml, volume_id) is None:
            flags |= VIR_DOMAIN_AFFECT_CONFIG
            if disk_target_taken(config_xml, target, volume_id):
                raise KvmhostError('the domain already has another disk %s' % target,
                                   field='volume.device_name')
        if live and find_volume_disk(domain.XMLDesc(0), volume_id) is None:
            flags |= VIR_DOMAIN_AFFECT_LIVE
        if flags:
            names = ((VIR_DOMAIN_AFFECT_LIVE, 'running'), (VIR_DOMAIN_AFFECT_CONFIG, 'persistent'))
            where = ' and '.join(name for bit, name in names if flags & bit)
            plan.add('attach volume %s as %s to the %s domain' % (volume_id, target, where),
                     lambda: domain.attachDeviceFlags(disk_xml(final_disk(), disk_cache), flags))

    def plan_detach(self, plan):
        domain, volume_id = self.domain, self.volume_id
        for flag, xml, where in ((VIR_DOMAIN_AFFECT_CONFIG, domain.XMLDesc(VIR_DOMAIN_XML_INACTIVE), 'persistent'),
                                 (VIR_DOMAIN_AFFECT_LIVE, domain.XMLDesc(0) if domain.isActive() else None, 'running')):
            element = find_volume_disk(xml, volume_id) if xml else None
            if element is not None:
                text = etree.tostring(element, encoding='unicode')
                plan.add('detach volume %s from the %s domain' % (volume_id, where),
                         lambda text=text, flag=flag: self._detach(text, flag))

    def _detach(self, text, flag):
        domain, volume_id = self.domain, self.volume_id
        domain.detachDeviceFlags(text, flag)
        if flag != VIR_DOMAIN_AFFECT_LIVE:
            return
        deadline = time.monotonic() + self.detach_wait
        while find_volume_disk(domain.XMLDesc(0), volume_id) is not None:
            if time.monotonic() > deadline:
                raise KvmhostError('the guest did not release volume %s within %d s' % (volume_id, self.detach_wait),
                                   field='domain_uuid')
            time.sleep(0.2)
