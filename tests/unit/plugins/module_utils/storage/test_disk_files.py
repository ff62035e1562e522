# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning an instance's disk files (pure), the commands DiskTools runs, and the backing-file scan.

Planning takes summaries, not files, so no qemu-img is needed. DiskTools is tested against a fake
``run_command`` that records argument lists: the point there is the exact command line (-b/-F, -U,
prlimit), which a real run would not show. The integration test runs the real commands.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.disk_files import (
    GIB, MIB, DiskTools, Wanted, copy_file, overlay_summary, plan_files, publish, root_disk_size, scan_backing_files)

DIR = '/i/1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
BASE = '/i/_base/2de206198fdf5447187c95820815700cdf045cfe'


def wanted(**extra):
    files = {'disk': Wanted('disk', 'image', BASE, 'qcow2', GIB, size_field='flavor.root_gb'),
             'disk.local': Wanted('disk.local', 'flavor.ephemeral_gb', '/i/_base/ephemeral_1_ext4', 'raw', GIB),
             'disk.swap': Wanted('disk.swap', 'flavor.swap_mb', '/i/_base/swap_64', 'raw', 64 * MIB),
             'kernel': Wanted('kernel', 'image.kernel', source='/images/vmlinuz')}
    files.update(extra)
    return dict((name, want) for name, want in files.items() if want is not None)


def found_like(files, **changes):
    """What the directory would hold if ``files`` had been made; ``changes`` alter one summary each."""
    found = {}
    for name, want in files.items():
        entry = {'mode': 0o600}
        if name == 'kernel':
            entry.update(same=True, summary={'size': 1})
        else:
            entry['summary'] = dict(want.summary())
        found[name] = entry
    for name, change in changes.items():
        found[name.replace('_', '.')].update(change)
    return found


def test_root_disk_size():
    assert root_disk_size(0, 64 * MIB) == 64 * MIB
    assert root_disk_size(1, 64 * MIB) == GIB
    assert root_disk_size(1, None) == GIB  # the image is not known yet (an http source in check mode)
    with pytest.raises(KvmhostError) as caught:
        root_disk_size(1, GIB + 1)
    assert caught.value.field == 'flavor.root_gb'
    assert "Flavor's disk is too small for requested image" in str(caught.value)


def test_an_empty_directory_gets_everything_in_order():
    steps = plan_files(wanted(), {}, DIR)
    assert [(operation, name) for operation, name, _description in steps] == [
        ('create', 'disk'), ('create', 'disk.local'), ('create', 'disk.swap'), ('create', 'kernel')]
    assert steps[0][2] == 'create %s/disk as a qcow2 overlay of %s' % (DIR, BASE)


def test_matching_files_need_nothing():
    files = wanted()
    assert plan_files(files, found_like(files), DIR) == []


def test_an_unknown_base_format_or_size_is_not_compared():
    files = wanted(disk=Wanted('disk', 'image', BASE, None, None))
    assert plan_files(files, found_like(wanted()), DIR) == []


def test_loose_modes_are_tightened():
    files = wanted()
    steps = plan_files(files, found_like(files, disk={'mode': 0o644}), DIR)
    assert steps == [('chmod', 'disk', 'set mode 0600 on %s/disk (was 0644)' % DIR)]


def test_a_different_kernel_is_replaced_and_one_the_image_lacks_is_removed():
    files = wanted()
    assert plan_files(files, found_like(files, kernel={'same': False}), DIR)[0][:2] == ('replace', 'kernel')
    found = found_like(files)
    found['ramdisk'] = {'mode': 0o600, 'same': False, 'summary': {'size': 1}}
    assert plan_files(files, found, DIR) == [('remove', 'ramdisk', 'remove %s/ramdisk (the image has no ramdisk)'
                                              % DIR)]


@pytest.mark.parametrize('name, change, field, words', [
    ('disk', {'backing_file': '/i/_base/other'}, 'image', 'backing file is /i/_base/other, not ' + BASE),
    ('disk', {'virtual_size': 2 * GIB}, 'flavor.root_gb', 'virtual size is 2147483648, not 1073741824'),
    ('disk', {'format': 'raw', 'backing_file': None}, 'image', 'format is raw, not qcow2'),
    ('disk.local', {'virtual_size': 2 * GIB}, 'flavor.ephemeral_gb', 'disk.local does not match'),
    ('disk.swap', {'backing_format': 'qcow2'}, 'flavor.swap_mb', 'backing format is qcow2, not raw'),
])
def test_a_different_disk_is_never_replaced(name, change, field, words):
    files = wanted()
    found = found_like(files)
    found[name]['summary'].update(change)
    with pytest.raises(KvmhostError) as caught:
        plan_files(files, found, DIR)
    assert caught.value.field == field
    assert words in str(caught.value) and 'never replaced' in str(caught.value)


@pytest.mark.parametrize('name, field', [('disk.local', 'flavor.ephemeral_gb'), ('disk.swap', 'flavor.swap_mb')])
def test_a_disk_the_flavor_no_longer_has_is_not_removed(name, field):
    found = found_like(wanted())
    with pytest.raises(KvmhostError) as caught:
        plan_files(wanted(**{name: None}), found, DIR)
    assert caught.value.field == field and 'asks for none' in str(caught.value)


def test_overlay_summary_reads_qemu_img_info():
    info = {'format': 'qcow2', 'virtual-size': GIB, 'backing-filename': 'rel', 'full-backing-filename': BASE,
            'backing-filename-format': 'qcow2'}
    assert overlay_summary(info) == {'format': 'qcow2', 'backing_file': BASE, 'backing_format': 'qcow2',
                                     'virtual_size': GIB}


def test_publish_never_clobbers_and_copies_are_private(tmp_path):
    source = tmp_path / 'vmlinuz'
    source.write_bytes(b'kernel')
    copy_file(str(source), str(tmp_path), 'kernel')
    assert (tmp_path / 'kernel').read_bytes() == b'kernel'
    assert (tmp_path / 'kernel').stat().st_mode & 0o777 == 0o600
    other = tmp_path / '.kernel.x.tmp'
    other.write_bytes(b'other')
    with pytest.raises(KvmhostError):
        publish(str(other), str(tmp_path / 'kernel'))
    assert (tmp_path / 'kernel').read_bytes() == b'kernel' and not other.exists()
    source.write_bytes(b'kernel 2')
    copy_file(str(source), str(tmp_path), 'kernel', replace=True)
    assert sorted(os.listdir(tmp_path)) == ['kernel', 'vmlinuz']
    assert (tmp_path / 'kernel').read_bytes() == b'kernel 2'


# --- commands ----------------------------------------------------------------------------------------
class FakeModule(object):
    def __init__(self, results=None):
        self.commands = []
        self.results = list(results or [])

    @staticmethod
    def get_bin_path(name, required=False):  # pylint: disable=unused-argument
        return '/usr/bin/' + name

    def run_command(self, argv, environ_update=None):  # pylint: disable=unused-argument
        self.commands.append(argv)
        return self.results.pop(0) if self.results else (0, '{"format": "qcow2"}', '')


def test_overlays_name_their_backing_format_with_flags():
    module = FakeModule()
    DiskTools(module).create_overlay('/i/u/disk', '/i/_base/a,b', 'qcow2', GIB)
    assert module.commands == [['/usr/bin/qemu-img', 'create', '-q', '-f', 'qcow2', '-b', '/i/_base/a,b',
                                '-F', 'qcow2', '/i/u/disk', str(GIB)]]


def test_info_is_limited_and_shares_the_image():
    module = FakeModule()
    assert DiskTools(module).info('/i/u/disk') == {'format': 'qcow2'}
    assert module.commands == [['/usr/bin/prlimit', '--cpu=30', '--as=%d' % GIB, '/usr/bin/qemu-img', 'info',
                                '--output=json', '-U', '/i/u/disk']]


def test_a_failed_command_names_the_field():
    module = FakeModule([(1, '', "qemu-img: Could not open 'x': No such file")])
    with pytest.raises(KvmhostError) as caught:
        DiskTools(module).info('x', field='image.source')
    assert caught.value.field == 'image.source' and 'No such file' in str(caught.value)


def test_in_use_means_a_write_lock_is_held():
    busy = FakeModule([(1, '', 'qemu-img: Could not open: Failed to get shared "write" lock')])
    assert DiskTools(busy).in_use('/i/u/disk') is True
    assert '-U' not in busy.commands[0]
    assert DiskTools(FakeModule()).in_use('/i/u/disk') is False


class ChainTools(object):
    """Backing files by disk path; a path mapped to None cannot be read."""

    def __init__(self, chains):
        self.chains = chains

    def backing_files(self, path, field=None):  # pylint: disable=unused-argument
        if self.chains.get(path, []) is None:
            raise KvmhostError('cannot open %s' % path)
        return self.chains.get(path, [])


def test_scan_finds_bases_of_every_instance_directory_moved_aside_ones_too(tmp_path):
    layout = {'a': ['disk', 'disk.local', 'console.log'], 'b_del': ['disk'], '_base': ['swap_1']}
    for directory, names in layout.items():
        (tmp_path / directory).mkdir()
        for name in names:
            (tmp_path / directory / name).write_bytes(b'')
    (tmp_path / 'link').symlink_to(tmp_path / 'a')
    base = str(tmp_path / '_base')
    tools = ChainTools({str(tmp_path / 'a' / 'disk'): [base + '/one'],
                        str(tmp_path / 'a' / 'disk.local'): [base + '/ephemeral_1_ext4'],
                        str(tmp_path / 'b_del' / 'disk'): [base + '/two', base + '/one']})
    assert scan_backing_files(tools, str(tmp_path), '_base') == {
        base + '/one', base + '/two', base + '/ephemeral_1_ext4'}
    tools.chains[str(tmp_path / 'b_del' / 'disk')] = None
    with pytest.raises(KvmhostError) as caught:
        scan_backing_files(tools, str(tmp_path), '_base')
    assert caught.value.field == 'base_cleanup_age' and 'no base image can be proven unused' in str(caught.value)
