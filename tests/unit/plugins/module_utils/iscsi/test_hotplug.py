# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_attach's hot plug on its own: whether a domain has a volume's disk, and a guest that keeps it.

test_qemu_transport.py and test_iscsi_attach.py attach and detach through the driver, with either transport.
"""

from __future__ import annotations

import pytest

pytest.importorskip('lxml')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import Plan  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.hotplug import (  # noqa: E402
    VIR_DOMAIN_AFFECT_CONFIG, VIR_DOMAIN_AFFECT_LIVE, VIR_DOMAIN_XML_INACTIVE, Hotplug)

DISK = '<disk type="block"><source dev="/dev/sdb"/><target dev="vdb"/><serial>vol-1</serial></disk>'


class FakeDomain(object):
    """A running domain; its guest releases nothing that is detached live."""

    def __init__(self, live, persistent):
        self.xml = {0: self.devices(live), VIR_DOMAIN_XML_INACTIVE: self.devices(persistent)}
        self.detached = []

    @staticmethod
    def devices(disk):
        return '<domain><devices>%s</devices></domain>' % (DISK if disk else '')

    def isActive(self):
        return True

    def XMLDesc(self, flags):
        return self.xml[flags]

    def detachDeviceFlags(self, xml, flags):
        self.detached.append(flags)
        if flags == VIR_DOMAIN_AFFECT_CONFIG:
            self.xml[VIR_DOMAIN_XML_INACTIVE] = self.devices(False)


def test_attached_means_live_and_persistent():
    assert Hotplug(None, 'vol-1', 1).attached() is None
    assert Hotplug(FakeDomain(True, False), 'vol-1', 1).attached() is False
    assert Hotplug(FakeDomain(True, True), 'vol-1', 1).attached() is True


def test_a_guest_that_keeps_the_disk_fails_the_live_detach_after_the_wait():
    domain = FakeDomain(True, True)
    plan = Plan()
    Hotplug(domain, 'vol-1', 0.3).plan_detach(plan)
    assert plan.descriptions == ['detach volume vol-1 from the persistent domain',
                                 'detach volume vol-1 from the running domain']
    with pytest.raises(KvmhostError, match='^domain_uuid: the guest did not release volume vol-1') as failure:
        plan.apply()
    assert domain.detached == [VIR_DOMAIN_AFFECT_CONFIG, VIR_DOMAIN_AFFECT_LIVE]
    assert failure.value.applied == ['detach volume vol-1 from the persistent domain']
