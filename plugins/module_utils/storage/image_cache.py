# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base image cache ``<instances_path>/_base`` (the instance_image module), as Nova's imagecache.

- An image's base is ``_base/<sha1(image id)>``; blank bases are ``ephemeral_<GB>_ext4`` and ``swap_<MB>``.
- Every base has its own lock file ``<base>.lock`` (core.locks.FileLock, waited for at most an hour by default:
  its holder may be downloading the image). A base is filled under its lock into
  ``<base>.part`` (0600), checked (checksum, format, no backing file), synced and renamed into place
  (0644: QEMU opens backing files as its own user), so concurrent boots fetch an image once and
  nobody ever sees a half-written base.
- Next to an image base, ``<base>.info`` records the image id, its verified checksum and format. A
  cached base is trusted after comparing the spec's checksum with that record (no re-hashing).
- A failed fill leaves nothing behind: the part file, the lock file of a base that does not exist and a
  ``_base`` directory this call created are removed.
- Bases are touched (mtime) each time they are used or found in use; cleanup removes bases no disk
  under the instances path uses and whose mtime is older than the age limit.

Commands (qemu-img, mkfs) are not run here: the cache is given a ``tools`` object (storage.disk_files.DiskTools).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time

from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit, urlunsplit

from ansible.module_utils.urls import open_url

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.files import write_atomic
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.locks import FileLock

BASE_DIR = '_base'
CHECKSUM_ALGORITHMS = ('sha256', 'sha512')
CHUNK = 1024 * 1024
BASE_MODE = 0o644
BASE_DIR_MODE = 0o711
IMAGE_FORMATS = ('raw', 'qcow2')
_HEX_LENGTH = {'sha256': 64, 'sha512': 128}
_BASE_NAME_RE = re.compile(r'^(?:[0-9a-f]{40}|ephemeral_[0-9]+_ext4|swap_[0-9]+)$')
# Seconds a run waits for the lock of a base another run is filling. The holder may be downloading a large image,
# which download_timeout does not bound (it limits each wait for the server, not the whole download), so the wait
# is the longest any timeout of the collection may be (validation.MAX_TIMEOUT): an hour.
FILL_LOCK_TIMEOUT = 3600
FILL_LOCK_POLL_INTERVAL = 0.5


class ImageSource(object):
    """Where an image comes from: ``kind`` is ``file`` (a local path) or ``url`` (http or https)."""

    def __init__(self, kind, location, display):
        self.kind = kind
        self.location = location
        self.display = display  # safe to show: a URL without user and password

    def __repr__(self):
        return 'ImageSource(%r, %r)' % (self.kind, self.display)


def parse_source(value, field='image.source'):
    """A local absolute path, a file:// URL (no host) or an http(s) URL; anything else is refused."""
    if not isinstance(value, str) or not value or '\x00' in value:
        raise KvmhostError('must be an absolute path or an http, https or file URL', field=field)
    if value.startswith('/'):
        return ImageSource('file', os.path.normpath(value), os.path.normpath(value))
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == 'file':
        if parts.netloc not in ('', 'localhost') or not parts.path.startswith('/'):
            raise KvmhostError('a file URL must name a local absolute path (file:///path), got %r' % value,
                               field=field)
        path = os.path.normpath(parts.path)
        return ImageSource('file', path, path)
    if scheme in ('http', 'https'):
        if not parts.hostname:
            raise KvmhostError('URL %r has no host' % value, field=field)
        display = urlunsplit((scheme, parts.netloc.rsplit('@', 1)[-1], parts.path, parts.query, ''))
        return ImageSource('url', value, display)
    if not scheme:
        raise KvmhostError('must be an absolute path or an http, https or file URL, got %r' % value, field=field)
    raise KvmhostError('URL scheme %r is not supported: use http, https or file' % scheme, field=field)


def parse_checksum(value, field='image.checksum'):
    """``sha256:<hex>`` or ``sha512:<hex>`` -> (algorithm, lower-case hex)."""
    if not isinstance(value, str) or ':' not in value:
        raise KvmhostError('must be ALGORITHM:HEX with ALGORITHM one of %s, got %r'
                           % (', '.join(CHECKSUM_ALGORITHMS), value), field=field)
    algorithm, digest = value.split(':', 1)
    algorithm, digest = algorithm.strip().lower(), digest.strip().lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise KvmhostError('unsupported checksum algorithm %r: use one of %s'
                           % (algorithm, ', '.join(CHECKSUM_ALGORITHMS)), field=field)
    if len(digest) != _HEX_LENGTH[algorithm] or not re.fullmatch(r'[0-9a-f]+', digest):
        raise KvmhostError('a %s checksum is %d hexadecimal digits, got %r'
                           % (algorithm, _HEX_LENGTH[algorithm], digest), field=field)
    return algorithm, digest


def image_base_name(image_id):
    return hashlib.sha1(image_id.encode('utf-8')).hexdigest()


def ephemeral_base_name(size_gb):
    return 'ephemeral_%d_ext4' % size_gb


def swap_base_name(size_mb):
    return 'swap_%d' % size_mb


def is_base_name(name):
    return bool(_BASE_NAME_RE.match(name))


def hash_file(path, algorithm):
    digest = hashlib.new(algorithm)
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def read_record(base_path):
    """The ``.info`` record of an image base, or None when there is none (or it is unreadable)."""
    try:
        with open(base_path + '.info') as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def open_source(source, timeout, validate_certs):
    """A readable binary stream of an image source; every failure names ``image.source``."""
    try:
        if source.kind == 'file':
            return open(source.location, 'rb')
        return open_url(source.location, timeout=timeout, validate_certs=validate_certs, decompress=False,
                        use_netrc=False, http_agent='kvmhost.lifecycle-instance_image')
    except (URLError, HTTPException, OSError, ValueError) as exc:
        raise KvmhostError('cannot read %s: %s' % (source.display, describe_fetch_error(exc)), field='image.source')


def describe_fetch_error(exc):
    if isinstance(exc, HTTPError):
        return 'HTTP %s %s' % (exc.code, exc.reason)
    if isinstance(exc, URLError):
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def expected_length(stream):
    """The body length an http(s) answer announced (Content-Length), else None (files, chunked answers)."""
    headers = getattr(stream, 'headers', None)
    value = headers.get('Content-Length') if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def copy_and_hash(stream, part_path, algorithm, source_display):
    """Copy ``stream`` into a new 0600 file, returning the hex digest of what was written.

    A download that ends before the length its server announced is an error of the source (the connection
    closed early), not a checksum mismatch. A write that fails (ENOSPC, EIO) names the instances path.
    """
    digest = hashlib.new(algorithm)
    announced = expected_length(stream)
    received = 0
    fd = os.open(part_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, 'wb') as out:
        while True:
            try:
                chunk = stream.read(CHUNK)
            except (URLError, HTTPException, OSError) as exc:
                raise KvmhostError('reading %s failed after %d bytes: %s'
                                   % (source_display, received, describe_fetch_error(exc)), field='image.source')
            if not chunk:
                break
            digest.update(chunk)
            received += len(chunk)
            try:
                out.write(chunk)
            except OSError as exc:
                raise KvmhostError('writing %s failed: %s' % (part_path, exc.strerror or exc), field='instances_path')
        try:
            out.flush()
        except OSError as exc:
            raise KvmhostError('writing %s failed: %s' % (part_path, exc.strerror or exc), field='instances_path')
    if announced is not None and received != announced:
        raise KvmhostError('reading %s failed: IncompleteRead, the connection closed after %d of the %d bytes '
                           'announced' % (source_display, received, announced), field='image.source')
    return digest.hexdigest()


def check_image_info(info, field='image.source'):
    """A base must be raw or qcow2 and stand alone: no backing file, no external data file."""
    fmt = info.get('format')
    if fmt not in IMAGE_FORMATS:
        raise KvmhostError('image format %r is not supported (use %s)' % (fmt, ' or '.join(IMAGE_FORMATS)),
                           field=field)
    if info.get('backing-filename'):
        raise KvmhostError('the image has a backing file (%s); a base image must stand alone'
                           % info['backing-filename'], field=field)
    data = (info.get('format-specific') or {}).get('data') or {}
    if data.get('data-file'):
        raise KvmhostError('the image has an external data file; a base image must stand alone', field=field)
    return info


class ImageCache(object):
    """The ``_base`` directory of one instances path."""

    def __init__(self, instances_path, tools, download_timeout=60, validate_certs=True,
                 lock_timeout=FILL_LOCK_TIMEOUT):
        self.instances_path = instances_path
        self.directory = os.path.join(instances_path, BASE_DIR)
        self.tools = tools
        self.download_timeout = download_timeout
        self.validate_certs = validate_certs
        self.lock_timeout = lock_timeout

    def path(self, name):
        return os.path.join(self.directory, name)

    def lock(self, base_path):
        """The lock of a base. A missing ``_base`` (removed by a failed fill meanwhile) is made again."""
        return FileLock(base_path + '.lock', timeout=self.lock_timeout, poll_interval=FILL_LOCK_POLL_INTERVAL,
                        field='instances_path', dir_mode=BASE_DIR_MODE)

    # --- reading ------------------------------------------------------------------------------
    def cached_checksum_matches(self, base_path, image_id, algorithm, digest):
        """Whether the cached base of ``image_id`` has the spec's checksum: from its record, else by hashing."""
        record = read_record(base_path)
        if record is not None and record.get('image_id') not in (None, image_id):
            raise KvmhostError('the cached base %s belongs to image %r, not %r'
                               % (base_path, record.get('image_id'), image_id), field='image.id')
        recorded = (record or {}).get('checksum', '')
        if recorded.startswith(algorithm + ':'):
            return recorded.split(':', 1)[1] == digest
        return hash_file(base_path, algorithm) == digest

    # --- filling ------------------------------------------------------------------------------
    def use(self, name, fill, check_existing=None, then=None):
        """Under the base's lock: fill it when missing, else ``check_existing(path)``; touch; ``then(path)``.

        ``fill(part_path)`` writes the base's content into ``part_path`` and returns the ``.info`` record to
        store (or None). Returns True when this call filled the base.
        """
        path = self.path(name)
        created_dir = not os.path.isdir(self.directory)
        if created_dir:
            os.makedirs(self.directory, BASE_DIR_MODE, exist_ok=True)
            os.chmod(self.directory, BASE_DIR_MODE)
        lock = self.lock(path)
        lock.acquire()
        try:
            filled = False
            if os.path.exists(path):
                if check_existing is not None:
                    check_existing(path)
            else:
                self._fill(path, fill, lock, created_dir)
                filled = True
            os.utime(path, None)
            if then is not None:
                then(path)
            return filled
        finally:
            lock.release()

    def _fill(self, path, fill, lock, created_dir):
        part = path + '.part'
        try:
            record = fill(part)
            _fsync_file(part)
            os.chmod(part, BASE_MODE)
            if record is not None:
                write_atomic(path + '.info', json.dumps(record, sort_keys=True), BASE_MODE)
            os.rename(part, path)
            _fsync_dir(self.directory)
        except BaseException:
            _unlink_quietly(part)
            _unlink_quietly(path + '.info')
            lock.remove()
            if created_dir:
                try:
                    os.rmdir(self.directory)
                except OSError:  # someone else put a file there meanwhile: it is theirs now
                    pass
            raise

    def fetch_image(self, part, image_id, source, algorithm, digest, validate=None):
        """Fill ``part`` from ``source``, verify the checksum and the image; return its ``.info`` record."""
        stream = open_source(source, self.download_timeout, self.validate_certs)
        try:
            actual = copy_and_hash(stream, part, algorithm, source.display)
        finally:
            stream.close()
        if actual != digest:
            raise KvmhostError('checksum mismatch for %s: expected %s:%s, got %s:%s'
                               % (source.display, algorithm, digest, algorithm, actual), field='image.checksum')
        info = check_image_info(self.tools.info(part, field='image.source'))
        if validate is not None:
            validate(info)
        return {'image_id': image_id, 'source': source.display, 'checksum': '%s:%s' % (algorithm, digest),
                'format': info['format'], 'virtual_size': info['virtual-size'],
                'fetched_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}

    def make_blank(self, part, size_bytes, kind):
        """A sparse raw file formatted as ext4 (``ephemeral``) or as swap (``swap``)."""
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size_bytes)
        finally:
            os.close(fd)
        if kind == 'ephemeral':
            self.tools.make_ext4(part, label='ephemeral0')
        else:
            self.tools.make_swap(part)

    # --- cleanup ------------------------------------------------------------------------------
    def bases(self):
        """Names of the base files in the cache."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(name for name in names if is_base_name(name) and os.path.isfile(self.path(name)))

    def stale_parts(self):
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(name for name in names if name.endswith('.part') and is_base_name(name[:-len('.part')]))

    def expired(self, name, max_age, in_use, now=None):
        """Whether base ``name`` exists, no disk uses it and its mtime is older than ``max_age`` seconds."""
        path = self.path(name)
        try:
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            return False
        if os.path.realpath(path) in in_use:
            return False
        return (now if now is not None else time.time()) - mtime > max_age

    def touch(self, name):
        """Mark a base in use now, as Nova does, so its age counts from when it was last seen in use."""
        try:
            os.utime(self.path(name), None)
        except FileNotFoundError:
            pass

    def remove_if_expired(self, name, max_age, in_use):
        """Remove base ``name`` when ``expired()`` still holds under its lock (a boot that started using it
        meanwhile has touched it, so it is kept). A busy lock means in use: skipped. True when removed."""
        path = self.path(name)
        lock = self.lock(path)
        if not lock.acquire(blocking=False):
            return False
        try:
            if not self.expired(name, max_age, in_use):
                return False
            os.unlink(path)
            _unlink_quietly(path + '.info')
            _unlink_quietly(path + '.part')
            lock.remove()
            return True
        finally:
            lock.release()

    def remove_stale_part(self, part_name, max_age, now=None):
        """A ``.part`` left by a killed fill: removed when its lock is free and it is older than ``max_age``."""
        base = self.path(part_name[:-len('.part')])
        lock = self.lock(base)
        if not lock.acquire(blocking=False):
            return False
        try:
            part = base + '.part'
            try:
                age = (now if now is not None else time.time()) - os.stat(part).st_mtime
            except FileNotFoundError:
                return False
            if age <= max_age:
                return False
            os.unlink(part)
            if not os.path.exists(base):
                lock.remove()
            return True
        finally:
            lock.release()
