# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The instance_image module: plan the base, the instance's disk files and the cache cleanup, then apply.

Every check of the input runs before the first step, and the base is fetched and verified before the
instance directory is touched, so bad input (a missing source, a wrong checksum, a too small flavor)
fails with nothing changed. Order of the steps: fetch the base, create the instance directory, create
the overlays and copies, remove unused bases.
"""

from __future__ import annotations

import functools
import os

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import ModuleDriver, Plan
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    MAX_TIMEOUT, check_absolute_path, check_instances_path, check_int, check_token, check_uuid)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.disk_files import (
    COPIES, DISK_MODE, GIB, INSTANCE_DIR_MODE, MANAGED_FILES, MIB, OVERLAYS, DiskTools, Wanted, copy_file,
    create_overlay, find_files, overlay_summary, plan_files, regular_file, root_disk_size, scan_backing_files)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.image_cache import (
    BASE_DIR, ImageCache, check_image_info, ephemeral_base_name, hash_file, image_base_name, parse_checksum,
    parse_source, read_record, swap_base_name)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import (
    MAX_DISK_GB, MAX_MEMORY_MB, MAX_SWAP_MB, MAX_VCPUS)

# The oldest a base_cleanup_age may ask for, in seconds: ten years.
MAX_BASE_CLEANUP_AGE = 10 * 365 * 24 * 3600


def check_image(image, ramdisk_required=False):
    """The image option, checked: (id, ImageSource, algorithm, digest, {kernel/ramdisk: path})."""
    if not image:
        raise KvmhostError('is required with state present', field='image')
    image_id = check_token(image['id'], 'image.id')
    source = parse_source(image['source'])
    algorithm, digest = parse_checksum(image['checksum'])
    if source.kind == 'file':
        readable_file(source.location, 'image.source')
    files = {}
    for name in COPIES:
        if image.get(name):
            field = 'image.' + name
            files[name] = readable_file(check_absolute_path(image[name], field), field)
    if 'ramdisk' in files and 'kernel' not in files:
        raise KvmhostError('a ramdisk needs a kernel (direct kernel boot): set image.kernel too', field='image.ramdisk')
    if ramdisk_required and 'kernel' in files and 'ramdisk' not in files:
        raise KvmhostError('the kernel needs a ramdisk here (ramdisk_required is set)', field='image.ramdisk')
    return image_id, source, algorithm, digest, files


def readable_file(path, field):
    if not os.path.exists(path):
        raise KvmhostError('%s does not exist' % path, field=field)
    if not os.path.isfile(path):
        raise KvmhostError('%s is not a regular file' % path, field=field)
    if not os.access(path, os.R_OK):
        raise KvmhostError('%s is not readable' % path, field=field)
    return path


def check_flavor(flavor):
    """root_gb, ephemeral_gb, swap_mb (0 when unset); vcpus and memory_mb, not this module's, only checked."""
    sizes = {}
    for key, maximum in (('root_gb', MAX_DISK_GB), ('ephemeral_gb', MAX_DISK_GB), ('swap_mb', MAX_SWAP_MB)):
        sizes[key] = check_int((flavor or {}).get(key) or 0, 'flavor.' + key, 0, maximum)
    for key, maximum in (('vcpus', MAX_VCPUS), ('memory_mb', MAX_MEMORY_MB)):
        if (flavor or {}).get(key) is not None:
            check_int(flavor[key], 'flavor.' + key, 1, maximum)
    return sizes


class InstanceImageDriver(ModuleDriver):
    """instance_image."""

    def record_note(self, result):
        image = self.params.get('image') or {}
        done = '; '.join(result.get('actions') or []) or 'the disks were there already'
        return 'image %s: %s' % (image.get('id'), done) if image else done

    def __init__(self, module):
        super().__init__(module)
        self.tools = None
        self.cache = None

    @staticmethod
    def check_options(params):
        if params.get('base_cleanup_age') is not None:
            check_int(params['base_cleanup_age'], 'base_cleanup_age', 0, MAX_BASE_CLEANUP_AGE, 'seconds')
        check_int(params['download_timeout'], 'download_timeout', 1, MAX_TIMEOUT, 'seconds')
        if params.get('flavor') is not None:
            check_flavor(params['flavor'])

    def run(self):
        instances_path = check_instances_path(self.params['instances_path'])
        uuid = check_uuid(self.params['uuid']) if self.params['uuid'] is not None else None
        self.check_options(self.params)
        age = self.params['base_cleanup_age']
        self.tools = DiskTools(self.module)
        self.cache = ImageCache(instances_path, self.tools, self.params['download_timeout'],
                                self.params['validate_certs'])
        plan = Plan({}, {})
        result = {'instance_path': None, 'base': None, 'disks': {}, 'kernel': None, 'ramdisk': None,
                  'removed_bases': [], 'bases_in_use': []}
        report = None
        if uuid is not None:
            instance_dir = os.path.join(instances_path, uuid)
            result['instance_path'] = instance_dir
            if os.path.lexists(instance_dir) and (os.path.islink(instance_dir) or not os.path.isdir(instance_dir)):
                raise KvmhostError('%s exists and is not a directory' % instance_dir, field='uuid')
            if self.params['state'] == 'present':
                report = self._plan_present(plan, instance_dir)
            else:
                self._plan_absent(plan, instance_dir)
        in_use = []
        if age is not None:
            in_use = self._plan_cleanup(plan, age, result)
        result = self.finish(plan, **result)
        if not self.check_mode:
            for name in in_use:  # as Nova: a base's age counts from when it was last seen in use
                self.cache.touch(name)
        if report is not None:
            report(result)
        return result

    # --- present ------------------------------------------------------------------------------------
    def _plan_present(self, plan, instance_dir):
        image_id, source, algorithm, digest, files = check_image(self.params['image'],
                                                                 self.params['ramdisk_required'])
        sizes = check_flavor(self.params['flavor'])
        base_name = image_base_name(image_id)
        base = self.cache.path(base_name)
        cached = regular_file(base, 'image.id')
        image_info = None
        if cached:
            self._check_cached(base, image_id, algorithm, digest)
            image_info = check_image_info(self.tools.info(base, field='image.id'), field='image.id')
        elif source.kind == 'file':  # read-only look at the source: refuse a bad image before fetching it
            image_info = check_image_info(self.tools.info(source.location, field='image.source'))
            if self.check_mode and hash_file(source.location, algorithm) != digest:
                raise KvmhostError('checksum mismatch for %s: expected %s:%s' % (source.display, algorithm, digest),
                                   field='image.checksum')
        image_size = image_info['virtual-size'] if image_info else None
        wanted = {'disk': Wanted('disk', 'image', base, image_info and image_info['format'],
                                 root_disk_size(sizes['root_gb'], image_size), size_field='flavor.root_gb')}
        blanks = {}
        if sizes['ephemeral_gb']:
            blanks['disk.local'] = (ephemeral_base_name(sizes['ephemeral_gb']), 'ephemeral',
                                    sizes['ephemeral_gb'] * GIB, 'flavor.ephemeral_gb')
        if sizes['swap_mb']:
            blanks['disk.swap'] = (swap_base_name(sizes['swap_mb']), 'swap', sizes['swap_mb'] * MIB, 'flavor.swap_mb')
        for name, (blank, _kind, size, field) in blanks.items():
            wanted[name] = Wanted(name, field, self.cache.path(blank), 'raw', size)
        for name, path in files.items():
            wanted[name] = Wanted(name, 'image.' + name, source=path)
        # In check mode after a predicted move aside (a rebuild), the directory will not be there any more.
        exists = os.path.isdir(instance_dir) and not (self.check_mode and self.params.get('after_move'))
        found = find_files(self.tools, instance_dir, wanted) if exists else {}
        steps = plan_files(wanted, found, instance_dir)
        fetched = []

        def fill_image(part):
            return self.cache.fetch_image(part, image_id, source, algorithm, digest,
                                          validate=lambda info: root_disk_size(sizes['root_gb'], info['virtual-size']))

        def check_existing(path):
            self._check_cached(path, image_id, algorithm, digest)

        def fetch():
            if self.cache.use(base_name, fill_image, check_existing):
                fetched.append(base)

        def make_root(base_path):  # runs under the base's lock: a cleanup cannot remove the base meanwhile
            info = self.tools.info(base_path, field='image.id')
            create_overlay(self.tools, instance_dir, 'disk', base_path, info['format'],
                           root_disk_size(sizes['root_gb'], info['virtual-size']))

        if not cached:
            plan.add('fetch image %s from %s into %s' % (image_id, source.display, base), fetch)
        if not exists and steps:
            plan.add('create the instance directory %s' % instance_dir,
                     lambda: os.mkdir(instance_dir, INSTANCE_DIR_MODE))
        for operation, name, description in steps:
            path = os.path.join(instance_dir, name)
            if operation == 'remove':
                action = functools.partial(os.unlink, path)
            elif operation == 'chmod':
                action = functools.partial(os.chmod, path, DISK_MODE)
            elif name in COPIES:
                action = functools.partial(copy_file, wanted[name].source, instance_dir, name, operation == 'replace')
            elif name == 'disk':
                action = functools.partial(self.cache.use, base_name, fill_image, check_existing, then=make_root)
            else:
                blank, kind, size, _field = blanks[name]
                if not regular_file(self.cache.path(blank), 'instances_path'):
                    description += ' (making the blank %s base %s first)' % (kind, self.cache.path(blank))
                action = self._blank_overlay_action(instance_dir, name, blank, kind, size)
            plan.add(description, action)
        plan.before.update(instance_dir=exists, base_cached=cached,
                           files=dict((name, entry['summary']) for name, entry in sorted(found.items())))
        plan.after.update(instance_dir=True, base_cached=True,
                          files=dict((name, want.summary()) for name, want in sorted(wanted.items())))

        touched = set(name for _operation, name, _description in steps)

        def report(result):
            record = read_record(base) or {}
            result['base'] = {'path': base, 'image_id': image_id, 'checksum': '%s:%s' % (algorithm, digest),
                              'format': record.get('format') or (image_info or {}).get('format'),
                              'virtual_size': record.get('virtual_size') or image_size,
                              'cached': cached, 'fetched': bool(fetched)}
            for name, want in sorted(wanted.items()):
                path = os.path.join(instance_dir, name)
                if name in COPIES:
                    result[name] = path
                    continue
                if name in found and name not in touched:
                    info = found[name]['info']  # unchanged since it was read for planning
                else:
                    # (in check mode after a predicted move aside, the file there now is the old one)
                    info = self.tools.info(path) if os.path.isfile(path) and (exists or not self.check_mode) else None
                result['disks'][name] = dict(want.summary(), path=path, info=info)
                if info is not None:
                    result['disks'][name].update(overlay_summary(info))
        return report

    def _blank_overlay_action(self, instance_dir, name, blank, kind, size):
        def make(part):
            self.cache.make_blank(part, size, kind)

        def overlay(base_path):
            create_overlay(self.tools, instance_dir, name, base_path, 'raw', size)

        return lambda: self.cache.use(blank, make, then=overlay)

    def _check_cached(self, base, image_id, algorithm, digest):
        if not self.cache.cached_checksum_matches(base, image_id, algorithm, digest):
            raise KvmhostError('the cached base %s of image %s does not have the checksum %s:%s; an image id must '
                               'always name the same content: give new content a new image id'
                               % (base, image_id, algorithm, digest), field='image.checksum')

    # --- absent -------------------------------------------------------------------------------------
    def _plan_absent(self, plan, instance_dir):
        present = [name for name in MANAGED_FILES
                   if os.path.isdir(instance_dir) and os.path.lexists(os.path.join(instance_dir, name))]
        for name in present:
            path = os.path.join(instance_dir, name)
            if name in OVERLAYS and not os.path.islink(path) and self.tools.in_use(path):
                raise KvmhostError('%s is in use by a running QEMU; shut the instance down first' % path, field='uuid')
            plan.add('remove %s' % path, lambda p=path: os.unlink(p))
        plan.before['files'] = sorted(present)
        plan.after['files'] = []

    # --- cleanup ------------------------------------------------------------------------------------
    def _plan_cleanup(self, plan, age, result):
        """Plan removing the unused bases older than ``age`` seconds; returns the names of the bases in use."""
        used = scan_backing_files(self.tools, self.cache.instances_path, BASE_DIR)
        files = plan.after.get('files')
        for disk in (files.values() if isinstance(files, dict) else ()):  # what this run creates is in use too
            if disk.get('backing_file'):
                used.add(os.path.realpath(disk['backing_file']))
        names = self.cache.bases()
        in_use = [name for name in names if os.path.realpath(self.cache.path(name)) in used]
        expired = [name for name in names if self.cache.expired(name, age, used)]
        removed = result['removed_bases']

        def remove(name):
            if self.cache.remove_if_expired(name, age, used):
                removed.append(self.cache.path(name))

        for name in expired:
            plan.add('remove the unused base %s' % self.cache.path(name), lambda n=name: remove(n))
        for part in self.cache.stale_parts():
            if self.cache.expired(part, age, used):
                plan.add('remove the leftover %s of an interrupted fill' % self.cache.path(part),
                         lambda p=part: self.cache.remove_stale_part(p, age))
        if self.check_mode:
            removed.extend(self.cache.path(name) for name in expired)
        plan.before['bases'] = names
        plan.after['bases'] = [name for name in names if name not in expired]
        result['bases_in_use'] = [self.cache.path(name) for name in in_use]
        return in_use
