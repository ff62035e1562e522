# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The disk files of one instance (the instance_image module), as Nova's Qcow2 image backend makes them.

``<instances_path>/<uuid>/`` gets ``disk`` (a qcow2 overlay on the image's base, ``backing_fmt`` set),
``disk.local`` (overlay on a formatted blank ext4 base), ``disk.swap`` (overlay on a blank swap base),
``kernel`` and ``ramdisk`` (copies). The directory is 0711 (QEMU must traverse it), files are 0600 root
(libvirt's dynamic ownership hands them to QEMU's user when the domain starts).

An existing disk that does not match the spec is never replaced: that would destroy the instance's data.
A rebuild moves the old directory aside first (instance_disk ``state=moved``). Kernel and ramdisk are
the image's files, not the instance's, and are replaced when they differ.

``plan_files`` is pure; commands go through ``DiskTools``, the seam unit tests replace.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import tempfile

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError

GIB = 1024 ** 3
MIB = 1024 ** 2
DISK_MODE = 0o600
INSTANCE_DIR_MODE = 0o711
OVERLAYS = ('disk', 'disk.local', 'disk.swap')
COPIES = ('kernel', 'ramdisk')
MANAGED_FILES = OVERLAYS + COPIES
NEVER_REPLACED = ('existing disks are never replaced; move the instance directory aside first '
                  '(kvmhost.lifecycle.instance_disk state=moved)')


class DiskTools(object):
    """qemu-img, mkfs.ext4 and mkswap through ``module.run_command`` (argument lists, JSON output).

    qemu-img info runs under prlimit (30 s CPU, 1 GiB address space), as Nova does, since it parses
    images that came from elsewhere.
    """

    def __init__(self, module):
        self.module = module
        self.qemu_img = module.get_bin_path('qemu-img', required=True)
        prlimit = module.get_bin_path('prlimit')
        self.limits = [prlimit, '--cpu=30', '--as=%d' % GIB] if prlimit else []

    def _run(self, argv, field=None):
        rc, out, err = self.module.run_command(argv, environ_update={'LC_ALL': 'C'})
        if rc != 0:
            raise KvmhostError('%s failed (rc %d): %s' % (' '.join(argv), rc, (err or out).strip()), field=field)
        return out

    def info(self, path, force_share=True, backing_chain=False, field=None):
        argv = self.limits + [self.qemu_img, 'info', '--output=json'] + (['-U'] if force_share else [])
        argv += (['--backing-chain'] if backing_chain else []) + [path]
        out = self._run(argv, field=field)
        try:
            return json.loads(out)
        except ValueError:
            raise KvmhostError('qemu-img info %s printed no JSON: %s' % (path, out[:200]), field=field)

    def in_use(self, path):
        """True when a running QEMU holds the image's write lock (qemu-img then cannot open it unshared)."""
        rc, _out, err = self.module.run_command([self.qemu_img, 'info', '--output=json', path],
                                                environ_update={'LC_ALL': 'C'})
        return rc != 0 and 'lock' in err

    def backing_files(self, path, field=None):
        """Every file below ``path`` in its backing chain; falls back to the direct backing file when the
        chain cannot be opened (a base that is gone)."""
        try:
            chain = self.info(path, backing_chain=True, field=field)
        except KvmhostError:
            chain = [self.info(path, field=field)]
        chain = chain if isinstance(chain, list) else [chain]
        return [entry['full-backing-filename'] for entry in chain if entry.get('full-backing-filename')]

    def create_overlay(self, path, base, base_format, size):
        self._run([self.qemu_img, 'create', '-q', '-f', 'qcow2', '-b', base, '-F', base_format, path, str(size)])

    def rebase_unsafe(self, path, base, base_format):
        """Point an overlay at the same base content under another path (its data is not touched)."""
        self._run([self.qemu_img, 'rebase', '-u', '-f', 'qcow2', '-b', base, '-F', base_format, path])

    def make_ext4(self, path, label):
        self._run([self.module.get_bin_path('mkfs.ext4', required=True), '-F', '-q', '-L', label, path])

    def make_swap(self, path):
        self._run([self.module.get_bin_path('mkswap', required=True), path])


# --- pure planning ---------------------------------------------------------------------------------
class Wanted(object):
    """A file the instance should have. Overlays: ``base``, ``base_format`` (None until the base is known),
    ``size`` in bytes (None until known). Copies: ``source``. ``field`` is the option that asks for the
    file, ``size_field`` the one that sizes it."""

    def __init__(self, name, field, base=None, base_format=None, size=None, source=None, size_field=None):
        self.name = name
        self.field = field
        self.size_field = size_field or field
        self.base = base
        self.base_format = base_format
        self.size = size
        self.source = source

    def summary(self):
        if self.name in COPIES:
            return {'source': self.source}
        return {'format': 'qcow2', 'backing_file': self.base, 'backing_format': self.base_format,
                'virtual_size': self.size}


def root_disk_size(root_gb, image_size):
    """Bytes of the root disk: ``root_gb`` GiB, or the image's size with 0; refused when too small."""
    if not root_gb:
        return image_size
    if image_size is not None and root_gb * GIB < image_size:
        raise KvmhostError("Flavor's disk is too small for requested image: flavor.root_gb %d GiB is %d bytes, "
                           "the image's virtual size is %d bytes" % (root_gb, root_gb * GIB, image_size),
                           field='flavor.root_gb')
    return root_gb * GIB


def overlay_summary(info):
    """What matters of a ``qemu-img info`` for comparing a disk to the spec."""
    return {'format': info.get('format'), 'backing_file': info.get('full-backing-filename'),
            'backing_format': info.get('backing-filename-format'), 'virtual_size': info.get('virtual-size')}


def _differences(wanted, found):
    expected = wanted.summary()
    return ['%s is %s, not %s' % (key.replace('_', ' '), found.get(key), value)
            for key, value in sorted(expected.items()) if value is not None and found.get(key) != value]


def plan_files(wanted, found, instance_dir):
    """The file operations that make the instance's files match ``wanted``.

    ``wanted``: {name: Wanted}; ``found``: {name: {'summary': ..., 'same': bool (copies), 'mode': int}}.
    Returns [(operation, name, description)] with operation create, replace, remove or chmod.
    """
    steps = []
    for name in MANAGED_FILES:
        path = os.path.join(instance_dir, name)
        want, have = wanted.get(name), found.get(name)
        if want is None and have is None:
            continue
        if have is None:
            what = ('copy %s to %s' % (want.source, path) if name in COPIES else
                    'create %s as a qcow2 overlay of %s' % (path, want.base))
            steps.append(('create', name, what))
            continue
        if want is None:
            if name in COPIES:
                steps.append(('remove', name, 'remove %s (the image has no %s)' % (path, name)))
                continue
            field = 'flavor.ephemeral_gb' if name == 'disk.local' else 'flavor.swap_mb'
            raise KvmhostError('%s exists but the flavor asks for none; %s' % (path, NEVER_REPLACED), field=field)
        if name in COPIES:
            if not have['same']:
                steps.append(('replace', name, 'replace %s with a copy of %s' % (path, want.source)))
                continue
        else:
            differences = _differences(want, have['summary'])
            if differences:
                only_size = all(item.startswith('virtual size') for item in differences)
                raise KvmhostError('%s does not match the spec (%s); %s' % (path, '; '.join(differences),
                                                                            NEVER_REPLACED),
                                   field=want.size_field if only_size else want.field)
        if have['mode'] != DISK_MODE:
            steps.append(('chmod', name, 'set mode 0600 on %s (was %04o)' % (path, have['mode'])))
    return steps


# --- file operations ---------------------------------------------------------------------------------
def _temporary(directory, name):
    fd, path = tempfile.mkstemp(prefix='.%s.' % name, suffix='.tmp', dir=directory)  # 0600
    os.close(fd)
    return path


def publish(temporary, path, replace=False):
    """Give ``temporary`` its final name; without ``replace``, a file that appeared meanwhile is kept."""
    try:
        if replace:
            os.rename(temporary, path)
            return
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise KvmhostError('%s was created by someone else meanwhile; run again to compare it' % path,
                               field='uuid')
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def create_overlay(tools, instance_dir, name, base, base_format, size):
    temporary = _temporary(instance_dir, name)
    try:
        tools.create_overlay(temporary, base, base_format, size)
        os.chmod(temporary, DISK_MODE)
    except BaseException:
        os.unlink(temporary)
        raise
    publish(temporary, os.path.join(instance_dir, name))


def copy_file(source, instance_dir, name, replace=False):
    temporary = _temporary(instance_dir, name)
    try:
        shutil.copyfile(source, temporary)
        with open(temporary, 'rb') as handle:
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(temporary)
        raise
    publish(temporary, os.path.join(instance_dir, name), replace=replace)


def regular_file(path, field='uuid'):
    """True for a regular file, False for nothing; anything else (a link, a directory) is refused."""
    if not os.path.lexists(path):
        return False
    if os.path.islink(path) or not os.path.isfile(path):
        raise KvmhostError('%s exists and is not a regular file' % path, field=field)
    return True


def find_files(tools, instance_dir, wanted):
    """What the instance directory holds of the managed files: summaries, sameness of copies, modes."""
    found = {}
    for name in MANAGED_FILES:
        path = os.path.join(instance_dir, name)
        if not regular_file(path):
            continue
        entry = {'mode': os.stat(path).st_mode & 0o7777}
        if name in COPIES:
            want = wanted.get(name)
            entry['same'] = want is not None and filecmp.cmp(want.source, path, shallow=False)
            if entry['same']:
                entry['summary'] = {'source': want.source}
            else:
                entry['summary'] = {'source': None, 'size': os.path.getsize(path)}
        else:
            entry['info'] = tools.info(path, field='uuid')
            entry['summary'] = overlay_summary(entry['info'])
        found[name] = entry
    return found


def scan_backing_files(tools, instances_path, skip):
    """Real paths of every file some disk (``disk``, ``disk.*``) of an instance directory is backed by.

    Every directory of the instances path counts, moved-aside ``<uuid>_del`` copies too: a rollback needs
    their bases. A disk whose backing cannot be read stops the cleanup: no base could be proven unused.
    """
    used = set()
    for entry in sorted(os.listdir(instances_path)):
        directory = os.path.join(instances_path, entry)
        if entry == skip or os.path.islink(directory) or not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if (name == 'disk' or name.startswith('disk.')) and os.path.isfile(path) and not os.path.islink(path):
                try:
                    backing = tools.backing_files(path)
                except KvmhostError as exc:
                    raise KvmhostError('cannot read the backing chain of %s, so no base image can be proven '
                                       'unused: %s' % (path, exc), field='base_cleanup_age')
                used.update(os.path.realpath(item) for item in backing)
    return used
