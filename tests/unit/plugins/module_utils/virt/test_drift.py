# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drift between a wanted domain XML and what libvirt defined from it."""

from __future__ import annotations

import pytest

pytest.importorskip('lxml')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.drift import domain_drift  # noqa: E402

WANTED = '''<domain type="qemu">
  <name>instance-00000001</name>
  <uuid>1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0</uuid>
  <memory unit="MiB">192</memory>
  <vcpu>1</vcpu>
  <os><type arch="x86_64" machine="pc">hvm</type><kernel>/i/kernel</kernel></os>
  <devices>
    <disk type="file" device="disk"><driver name="qemu" type="qcow2" cache="none"/>
      <source file="/i/disk"/><target dev="vda" bus="virtio"/></disk>
    <interface type="bridge"><mac address="FA:16:3E:81:A8:B4"/><source bridge="qbr8dbfeeff-e2"/>
      <target dev="tap8dbfeeff-e2"/><model type="virtio"/></interface>
  </devices>
</domain>'''

# What libvirt 9 gives back for it: defaults, addresses, a console, the versioned machine, KiB.
DEFINED = '''<domain type='qemu'>
  <name>instance-00000001</name>
  <uuid>1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0</uuid>
  <memory unit='KiB'>196608</memory>
  <currentMemory unit='KiB'>196608</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type><kernel>/i/kernel</kernel><boot dev='hd'/></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/>
      <source file='/i/disk'/><target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></disk>
    <controller type='usb' index='0' model='piix3-uhci'/>
    <interface type='bridge'><mac address='fa:16:3e:81:a8:b4'/><source bridge='qbr8dbfeeff-e2'/>
      <target dev='tap8dbfeeff-e2'/><model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></interface>
    <input type='mouse' bus='ps2'/>
  </devices>
</domain>'''


def test_what_libvirt_adds_is_not_drift():
    assert domain_drift(WANTED, DEFINED) == []


@pytest.mark.parametrize('old, new, where', [
    ('<memory unit="MiB">192</memory>', '<memory unit="MiB">256</memory>', '/domain/memory'),
    ('<source file="/i/disk"/>', '<source file="/i/disk2"/>', '/domain/devices/disk/source/@file'),
    ('<vcpu>1</vcpu>', '<vcpu>2</vcpu>', '/domain/vcpu: text'),
    ('<kernel>/i/kernel</kernel>', '<kernel>/i/kernel</kernel><initrd>/i/ramdisk</initrd>', '/domain/os/initrd[1]: missing'),
    ('machine="pc"', 'machine="q35"', '/domain/os/type/@machine'),
])
def test_a_real_change_is_drift(old, new, where):
    drift = domain_drift(WANTED.replace(old, new), DEFINED)
    assert drift and any(line.startswith(where) for line in drift), drift


def test_a_second_interface_wanted_is_drift():
    wanted = WANTED.replace('</devices>', '<interface type="bridge"><source bridge="br-int"/></interface></devices>')
    assert domain_drift(wanted, DEFINED) == ['/domain/devices/interface[2]: missing']


def test_a_disk_added_behind_our_back_is_drift():
    extra_disk = "<disk type='file' device='disk'><source file='/x'/><target dev='vdz' bus='virtio'/></disk>"
    defined = DEFINED.replace("<controller", extra_disk + "<controller")
    assert domain_drift(WANTED, defined) == ['/domain/devices/disk: 1 more defined than wanted']


def test_malformed_wanted_xml_names_the_option():
    with pytest.raises(KvmhostError, match='xml: is not well-formed XML'):
        domain_drift('<domain><name>x</domain>', DEFINED)
