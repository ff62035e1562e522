# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit's arithmetic. A fake libvirt connection gives fixed figures, so the sums can be checked
exactly; tests/integration/test_resource_audit.py audits this machine's real libvirt."""

from __future__ import annotations

import collections
import os

import pytest

pytest.importorskip('libvirt')
pytest.importorskip('lxml')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.host.resource_audit import (  # noqa: E402
    audit_figures, cpu_info, memory_mb_used, over_committed_bytes, settled)

CAPABILITIES = '''<capabilities><host><cpu><arch>x86_64</arch><model>EPYC</model><vendor>AMD</vendor>
<topology sockets='1' dies='1' cores='4' threads='2'/><feature name='avx2'/><feature name='aes'/></cpu></host>
</capabilities>'''


class FakeDomain(object):
    def __init__(self, active, vcpus):
        self.active, self.vcpus = active, vcpus

    def isActive(self):
        return self.active

    def info(self):
        return [1, 0, 0, self.vcpus, 0]


class FakeConnection(object):
    def getInfo(self):
        return ['x86_64', 8000, 8, 2000, 1, 1, 4, 2]

    def listAllDomains(self, flags):
        return [FakeDomain(True, 2), FakeDomain(True, 1), FakeDomain(False, 4)]

    def getType(self):
        return 'QEMU'

    def getVersion(self):
        return 7002022

    def getHostname(self):
        return 'kvm1'

    def getLibVersion(self):
        return 9000000

    def getCapabilities(self):
        return CAPABILITIES


StatVfs = collections.namedtuple('StatVfs', 'f_frsize f_blocks f_bavail')


def test_figures_add_up(tmp_path):
    meminfo = {'MemTotal': 8192000, 'MemFree': 4096000, 'Buffers': 1024, 'Cached': 1024000}

    def statvfs(path):  # 100 GiB, 60 GiB free
        return StatVfs(4096, 100 * 262144, 60 * 262144)
    figures = audit_figures(FakeConnection(), str(tmp_path), meminfo, lambda path: {}, statvfs)
    assert (figures['vcpus'], figures['vcpus_used'], figures['running_vms'], figures['defined_vms']) == (8, 3, 2, 3)
    assert figures['memory_mb'] == 8000
    assert figures['memory_mb_used'] == 8000 - (4096000 + 1024 + 1024000) // 1024
    assert figures['free_ram_mb'] == figures['memory_mb'] - figures['memory_mb_used']
    assert (figures['local_gb'], figures['local_gb_used'], figures['free_disk_gb']) == (100, 40, 60)
    assert figures['disk_available_least'] == 60
    assert figures['cpu_info'] == {'arch': 'x86_64', 'model': 'EPYC', 'vendor': 'AMD',
                                   'topology': {'sockets': 1, 'cores': 4, 'threads': 2}, 'features': ['aes', 'avx2']}


def test_thin_disks_reduce_disk_available_least(tmp_path):
    instance = tmp_path / '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
    instance.mkdir()
    (instance / 'disk').write_bytes(b'\0' * 4096)
    (tmp_path / '_base').mkdir()  # the cache is not an instance
    (tmp_path / '_base' / 'disk').write_bytes(b'')
    allocated = os.stat(str(instance / 'disk')).st_blocks * 512
    grows = over_committed_bytes(str(tmp_path), lambda path: {'virtual-size': 10 * 1024 ** 3})
    assert grows == 10 * 1024 ** 3 - allocated


def test_memory_used_never_negative():
    assert memory_mb_used(100, {'MemFree': 10 ** 9}) == 0


def test_volatile_figures_do_not_count_as_a_change():
    first = {'vcpus': 2, 'memory_mb_used': 100, 'free_disk_gb': 5}
    assert settled(first) == settled(dict(first, memory_mb_used=120, free_disk_gb=4))
    assert settled(first) != settled(dict(first, vcpus=4))


def test_cpu_info_without_cpu_element():
    assert cpu_info('<capabilities><host/></capabilities>')['features'] == []
