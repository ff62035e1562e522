# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving an instance's directory and history to another host (the instance_transfer module), for a cold migration.

The source's side, ``exported``, reads what the instance is made of and writes nothing: every file of its
directory with its size and SHA-256, the image-cache bases its overlays stand on (with their ``.info``
records), and its record, network info cache and actions from the state store. That is the manifest. The
files then travel (migrate.yml copies them through the controller) into ``<instances_path>/<uuid>_incoming``
on the destination, which ``receiving`` makes empty first; ``receiving`` also says which bases the
destination's own cache holds already, with the same content, so that only the others travel.

``imported`` verifies every file against the manifest (size and SHA-256) before it changes anything, then puts
the bases that travelled into the destination's cache (under the cache's lock), points each overlay at the
destination's cache path when the instances paths differ (``qemu-img rebase -u``: the content is the same),
renames ``<uuid>_incoming`` to ``<uuid>`` and writes the instance's record, network info and history into the
destination's state store with this run's migrate action. ``absent`` removes the incoming directory.

Nothing here touches the source: its directory and domain stay until the destination runs the instance
(migrate.yml removes them then, or starts the instance on the source again).
"""

from __future__ import annotations

import os
import shutil

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import Plan
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    check_instances_path, check_token, check_uuid)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import StateStore, utcnow
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.disk_files import (
    DISK_MODE, INSTANCE_DIR_MODE, DiskTools)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.image_cache import (
    BASE_DIR, ImageCache, hash_file, is_base_name, read_record)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.instance_disk import instance_paths
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import NOSTATE, domains_by_local_id
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.driver import LibvirtDriver, describe
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.power import SHUTDOWN_STATES

INCOMING_SUFFIX = '_incoming'
STATES = ('exported', 'receiving', 'imported', 'absent')
ALGORITHM = 'sha256'
SHUTDOWN = 4  # Nova's power_state of the imported record: the destination starts the domain next
# The record fields that travel with the instance; its local id does not (the destination gives its own).
RECORD_FIELDS = ('name', 'vm_state', 'image', 'flavor', 'launched_at')
# The formats of the bases under an instance's overlays (an image as fetched, or a blank ephemeral or swap base).
BASE_FORMATS = ('raw', 'qcow2')
MANIFEST_KEYS = ('uuid', 'instances_path', 'files', 'bases', 'record', 'network_info', 'actions')


def incoming_path(instances_path, uuid):
    return os.path.join(instances_path, uuid + INCOMING_SUFFIX)


def _safe_name(name, field):
    """A file name of the manifest: one path component, nothing hidden behind it."""
    if not isinstance(name, str) or not name or name in ('.', '..') or '/' in name or '\0' in name:
        raise KvmhostError('%r is not a file name' % (name,), field=field)
    return name


def list_files(directory, subdirectory=None):
    """{name: size} of the instance directory's regular files; anything else in it is refused (a link, a
    subdirectory other than ``subdirectory``, a socket), since a copy of it could not be verified."""
    found = {}
    for entry in sorted(os.scandir(directory), key=lambda item: item.name):
        if entry.name == subdirectory and entry.is_dir(follow_symlinks=False):
            continue
        if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            raise KvmhostError('%s is not a regular file; the instance directory cannot be migrated with it'
                               % entry.path, field='uuid')
        found[entry.name] = entry.stat(follow_symlinks=False).st_size
    return found


def check_manifest(manifest, uuid):
    """The manifest of ``imported`` and ``receiving`` (made by ``exported`` on the source), checked."""
    field = 'manifest'
    if not isinstance(manifest, dict):
        raise KvmhostError('is required with state %s' % '/'.join(STATES[1:3]), field=field)
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise KvmhostError('has no %s (give the manifest state exported returned)' % ', '.join(missing), field=field)
    if str(manifest['uuid']).lower() != uuid:
        raise KvmhostError('is the manifest of %s, not of %s' % (manifest['uuid'], uuid), field='manifest.uuid')
    names = set()
    for key in ('files', 'bases'):
        if not isinstance(manifest[key], list):
            raise KvmhostError('must be a list', field='manifest.' + key)
        for index, entry in enumerate(manifest[key]):
            where = 'manifest.%s[%d]' % (key, index)
            if not isinstance(entry, dict) or not isinstance(entry.get('size'), int) or entry['size'] < 0:
                raise KvmhostError('must have a name, a size and a sha256', field=where)
            _safe_name(entry.get('name'), where + '.name')
            if key == 'files':
                names.add(entry['name'])
            digest = entry.get('sha256')
            if not isinstance(digest, str) or len(digest) != 64 or any(c not in '0123456789abcdef' for c in digest):
                raise KvmhostError('must be 64 lower-case hex digits', field=where + '.sha256')
            if key == 'bases' and not is_base_name(entry['name']):
                raise KvmhostError('%r is not the name of an image-cache base' % entry['name'], field=where + '.name')
            if key == 'bases' and entry.get('format') not in BASE_FORMATS:
                raise KvmhostError('must be one of %s, got %r' % (', '.join(BASE_FORMATS), entry.get('format')),
                                   field=where + '.format')
            if key == 'bases' and not (isinstance(entry.get('used_by'), list)
                                       and all(_safe_name(name, where + '.used_by') in names for name in entry['used_by'])):
                raise KvmhostError('must list files of the manifest', field=where + '.used_by')
    if not isinstance(manifest['record'], dict) or not isinstance(manifest['actions'], list):
        raise KvmhostError('record must be a dict and actions a list', field=field)
    return manifest


def read_manifest(tools, instances_path, uuid, store):
    """What the source instance is made of (see the module docstring); reads, writes nothing."""
    directory = instance_paths(instances_path, uuid)[0]
    if not os.path.isdir(directory) or os.path.islink(directory):
        raise KvmhostError('the instance directory %s does not exist' % directory, field='uuid')
    cache = ImageCache(instances_path, tools)
    files, bases = [], {}
    for name, size in list_files(directory).items():
        path = os.path.join(directory, name)
        files.append({'name': name, 'size': size, 'sha256': hash_file(path, ALGORITHM)})
        if name.endswith('.xml') or name.endswith('.log') or name in ('kernel', 'ramdisk'):
            continue
        info = tools.info(path, field='uuid')
        backing = info.get('full-backing-filename')
        if info.get('format') != 'qcow2' or not backing:
            continue
        if os.path.dirname(backing) != cache.directory or not is_base_name(os.path.basename(backing)):
            raise KvmhostError('%s stands on %s, which is not in the image cache %s; it cannot be migrated'
                               % (path, backing, cache.directory), field='uuid')
        base = bases.get(backing)
        if base is None:
            base = bases[backing] = {'name': os.path.basename(backing), 'size': os.path.getsize(backing),
                                     'sha256': base_sha256(backing), 'info': read_record(backing),
                                     'format': info.get('backing-filename-format')
                                     or tools.info(backing, field='uuid').get('format'), 'used_by': []}
        base['used_by'].append(name)
    record = store.get_instance(uuid) if store is not None else None
    if record is None or record['deleted']:
        raise KvmhostError('instance %s has no record in the state store %s: it was never booted here'
                           % (uuid, store.path if store is not None else 'that does not exist'), field='uuid')
    actions = []
    for action in store.list_actions(uuid):
        events = [dict((key, event[key]) for key in ('event', 'start_time', 'finish_time', 'result', 'message',
                                                     'details')) for event in action['events']]
        kept = dict((key, action[key]) for key in ('action', 'request_id', 'start_time', 'finish_time', 'message'))
        actions.append(dict(kept, events=events))
    return {'uuid': uuid, 'instances_path': instances_path, 'files': files,
            'bases': sorted(bases.values(), key=lambda base: base['name']),
            'record': dict((key, record[key]) for key in RECORD_FIELDS + ('local_id', 'host', 'created_at')),
            'network_info': store.get_network_info(uuid) or [], 'actions': actions,
            'bytes': sum(entry['size'] for entry in files) + sum(base['size'] for base in bases.values())}


def base_sha256(path):
    """The SHA-256 of an image-cache base: the one its ``.info`` record holds (the image cache verified it when it
    filled the base, and the base is kept as fetched), else hashed. A base that no longer matches its record fails
    the destination's verification of the copy, so trusting the record never lets a damaged base through."""
    recorded = str((read_record(path) or {}).get('checksum') or '')
    if recorded.startswith(ALGORITHM + ':'):
        return recorded.split(':', 1)[1]
    return hash_file(path, ALGORITHM)


def cached_base_matches(cache, base):
    """Whether the destination's cache holds ``base`` (a manifest entry) with the same content."""
    path = cache.path(base['name'])
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    return os.path.getsize(path) == base['size'] and base_sha256(path) == base['sha256']


def verify_file(path, entry):
    """The travelled file must be the source's: the size, then the SHA-256."""
    if not os.path.isfile(path) or os.path.islink(path):
        raise KvmhostError('%s did not arrive' % path, field='manifest')
    size = os.path.getsize(path)
    if size != entry['size']:
        raise KvmhostError('%s has %d bytes, the source had %d: the copy is incomplete' % (path, size, entry['size']),
                           field='manifest')
    digest = hash_file(path, ALGORITHM)
    if digest != entry['sha256']:
        raise KvmhostError('%s has sha256 %s, the source had %s: the copy is damaged' % (path, digest, entry['sha256']),
                           field='manifest')


class InstanceTransferDriver(LibvirtDriver):
    """instance_transfer."""

    store_class = StateStore
    tools_class = DiskTools

    def record_note(self, result):
        return '; '.join(result.get('actions') or []) or {
            'exported': 'read %d files' % len((result.get('manifest') or {}).get('files') or []),
            'receiving': 'the incoming directory is ready', 'imported': 'imported already',
            'absent': 'nothing to remove'}[self.params['state']]

    @staticmethod
    def check_options(params):
        if params.get('host') is not None:
            check_token(params['host'], 'host')
        if params.get('request_id') is not None:
            check_token(params['request_id'], 'request_id')
        if params['state'] == 'imported' and not (params.get('host') and params.get('request_id')):
            raise KvmhostError('state imported needs host and request_id (the destination and the run)', field='state')

    def run(self):
        params = self.params
        self.check_options(params)
        uuid = check_uuid(params['uuid'])
        instances_path = check_instances_path(params['instances_path'])
        state = params['state']
        if state in ('receiving', 'imported'):
            check_manifest(params.get('manifest'), uuid)
        return getattr(self, '_' + state)(uuid, instances_path)

    # ---------------------------------------------------------------- source
    def _exported(self, uuid, instances_path):
        domain = self.connection.domain_by_uuid(uuid)
        power_state = describe(domain)['power_state']
        if domain is None:
            raise KvmhostError('instance %s has no domain on this host' % uuid, field='uuid')
        if power_state not in SHUTDOWN_STATES + (NOSTATE,) and not (self.check_mode and self.params['after_shutdown']):
            raise KvmhostError('the domain of %s is not shut off; its disks are read only when it is' % uuid,
                               field='uuid')
        store = self.store_class.open(self.params['state_db'], readonly=True)
        try:
            manifest = read_manifest(self.tools_class(self.module), instances_path, uuid, store)
        finally:
            if store is not None:
                store.close()
        return {'changed': False, 'actions': [], 'manifest': manifest}

    # ----------------------------------------------------------- destination
    def _receiving(self, uuid, instances_path):
        manifest = self.params['manifest']
        cache = ImageCache(instances_path, None)
        incoming = incoming_path(instances_path, uuid)
        if os.path.islink(incoming) or (os.path.exists(incoming) and not os.path.isdir(incoming)):
            raise KvmhostError('%s exists and is not a directory' % incoming, field='uuid')
        cached, needed = [], []
        for base in manifest['bases']:
            if cached_base_matches(cache, base):
                cached.append(base['name'])
            elif os.path.lexists(cache.path(base['name'])):
                raise KvmhostError('the image cache here has another %s than the source (size or sha256 differ); '
                                   'the overlays stand on the source\'s' % cache.path(base['name']), field='manifest')
            else:
                needed.append(base['name'])
        leftover = sorted(os.listdir(incoming)) if os.path.isdir(incoming) else None
        wanted = [BASE_DIR] if needed else []
        ready = leftover == wanted and not (needed and os.listdir(os.path.join(incoming, BASE_DIR)))
        plan = Plan({'incoming': leftover}, {'incoming': wanted})
        if not ready:
            if leftover is not None:
                plan.add('remove %s, left by an interrupted migration' % incoming, lambda: shutil.rmtree(incoming))
            plan.add('create %s' % incoming, lambda: os.mkdir(incoming, INSTANCE_DIR_MODE))
            if needed:
                plan.add('create %s/%s for the bases the image cache here does not hold' % (incoming, BASE_DIR),
                         lambda: os.mkdir(os.path.join(incoming, BASE_DIR), 0o700))
        return self.finish(plan, incoming=incoming, needed_bases=needed, cached_bases=cached)

    def _absent(self, uuid, instances_path):
        incoming = incoming_path(instances_path, uuid)
        if os.path.islink(incoming):
            raise KvmhostError('%s is a symbolic link; refusing to remove through it' % incoming, field='uuid')
        plan = Plan({'incoming': os.path.isdir(incoming)}, {'incoming': False})
        if os.path.isdir(incoming):
            plan.add('remove %s' % incoming, lambda: shutil.rmtree(incoming))
        return self.finish(plan, incoming=incoming)

    def _imported(self, uuid, instances_path):
        params = self.params
        manifest = params['manifest']
        directory, moved, _discard = instance_paths(instances_path, uuid)
        incoming = incoming_path(instances_path, uuid)
        store = self.store_class.open(params['state_db'], readonly=self.check_mode)
        try:
            done = store is not None and store.get_action(uuid, params['request_id']) is not None
            record = store.get_instance(uuid) if store is not None else None
        finally:
            if store is not None:
                store.close()
        if done and not os.path.isdir(incoming):
            return dict(self.finish(Plan({'imported': True}, {'imported': True})), path=directory, incoming=incoming,
                        bases=[], rebased=[])
        if not os.path.isdir(incoming) or os.path.islink(incoming):
            raise KvmhostError('%s does not exist: nothing arrived (state receiving makes it, the copy fills it)'
                               % incoming, field='uuid')
        leftover = record is not None and not record['deleted'] and record['task_state'] == 'migrating'
        domain = self.connection.domain_by_uuid(uuid)
        if domain is not None and not (leftover and describe(domain)['power_state'] in SHUTDOWN_STATES + (NOSTATE,)):
            raise KvmhostError('libvirt on this host has a domain with the UUID %s already (%s)'
                               % (uuid, describe(domain)['libvirt_state']), field='uuid')
        if record is not None and not record['deleted'] and not leftover:
            raise KvmhostError('this host has instance %s already (vm_state %s); it is not a leftover of an '
                               'unfinished migration' % (uuid, record['vm_state']), field='uuid')
        if (os.path.isdir(directory) or os.path.isdir(moved)) and not leftover:
            raise KvmhostError('%s exists, and this host has no unfinished migration of the instance it could be left '
                               'by; refusing to replace it' % directory, field='uuid')
        cache = ImageCache(instances_path, self.tools_class(self.module))
        # Everything is verified before anything changes.
        arrived = list_files(incoming, subdirectory=BASE_DIR)
        for entry in manifest['files']:
            verify_file(os.path.join(incoming, entry['name']), entry)
        unexpected = sorted(set(arrived) - set(entry['name'] for entry in manifest['files']))
        if unexpected:
            raise KvmhostError('%s holds files the source did not send: %s' % (incoming, ', '.join(unexpected)),
                               field='manifest')
        travelled = []
        for base in manifest['bases']:
            staged = os.path.join(incoming, BASE_DIR, base['name'])
            if os.path.exists(staged):
                verify_file(staged, base)
                travelled.append(base)
            elif not cached_base_matches(cache, base):
                raise KvmhostError('the base %s is neither in the image cache %s nor did it arrive'
                                   % (base['name'], cache.directory), field='manifest')
        plan = Plan({'imported': False, 'path': directory if os.path.isdir(directory) else None},
                    {'imported': True, 'path': directory})
        for base in travelled:
            plan.add('put the base %s into the image cache %s' % (base['name'], cache.directory),
                     lambda base=base: self._cache_base(cache, incoming, base))
        if os.path.isdir(os.path.join(incoming, BASE_DIR)):
            plan.add('remove %s/%s' % (incoming, BASE_DIR), lambda: shutil.rmtree(os.path.join(incoming, BASE_DIR)))
        rebased = []
        for base in manifest['bases']:
            source_path = os.path.join(manifest['instances_path'], BASE_DIR, base['name'])
            if source_path == cache.path(base['name']):
                continue
            for name in base['used_by']:
                rebased.append(name)
                description = "point %s at %s (the same content as the source's %s)" % (
                    name, cache.path(base['name']), source_path)
                plan.add(description,
                         lambda name=name, base=base: cache.tools.rebase_unsafe(
                             os.path.join(incoming, name), cache.path(base['name']), base['format']))
        plan.add('give the files their modes', lambda: self._modes(incoming, manifest['files']))
        if domain is not None:
            plan.add('undefine the shut-off domain %s that an unfinished migration defined' % domain.name(),
                     domain.undefine)
        if os.path.isdir(directory) or os.path.isdir(moved):
            plan.add('remove %s, left by an unfinished migration' % directory, lambda: self._remove_leftover(
                directory, moved))
        plan.add('move %s to %s' % (incoming, directory), lambda: os.rename(incoming, directory))
        history = [action for action in manifest['actions'] if action['request_id'] != params['request_id']]
        plan.add('record the instance, its network info and its %d earlier actions in the state store'
                 % len(history), lambda: self._record(uuid, manifest, history, len(travelled)))
        result = self.finish(plan, path=directory, incoming=incoming, bases=[base['name'] for base in travelled],
                             rebased=rebased)
        return result

    @staticmethod
    def _cache_base(cache, incoming, base):
        staged = os.path.join(incoming, BASE_DIR, base['name'])

        def fill(part):
            os.rename(staged, part)
            return base.get('info')

        def check_existing(path):  # another run put it there meanwhile: it must be the same
            if not cached_base_matches(cache, base):
                raise KvmhostError('the image cache has another %s than the source' % path, field='manifest')

        cache.use(base['name'], fill, check_existing)

    @staticmethod
    def _modes(incoming, files):
        os.chmod(incoming, INSTANCE_DIR_MODE)
        for entry in files:
            os.chmod(os.path.join(incoming, entry['name']), DISK_MODE)

    @staticmethod
    def _remove_leftover(directory, moved):
        if os.path.isdir(directory):
            if os.path.isdir(moved):
                shutil.rmtree(moved)
            os.rename(directory, moved)
        shutil.rmtree(moved)

    def _record(self, uuid, manifest, history, travelled):
        params = self.params
        taken = domains_by_local_id(self.connection.conn.listAllDomains(0))
        source = manifest['record']
        fields = dict((key, source.get(key)) for key in RECORD_FIELDS)
        fields.update(host=params['host'], task_state='migrating', power_state=SHUTDOWN, deleted=False,
                      deleted_at=None)
        now = utcnow()
        with self.store_class.open(params['state_db']) as store:
            store.save_instance(uuid, fields, now, taken_local_ids=set(taken))
            store.set_network_info(uuid, manifest['network_info'], now)
            # the source's own action of this run stays the source's: this host records its part of it
            store.import_actions(uuid, history)
            action = store.save_action(uuid, params['request_id'], action='migrate', start_time=now)
            store.save_event(action['id'], 'receive_instance', start_time=now, finish_time=utcnow(), result='Success',
                             message='%d files verified (sha256) from %s; %d of its %d image bases travelled, the '
                             'others were cached here' % (len(manifest['files']), source.get('host') or 'the source',
                                                          travelled, len(manifest['bases'])))
