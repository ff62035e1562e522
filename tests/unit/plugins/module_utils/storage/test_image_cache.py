# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base image cache: sources, checksums, the lock, filling through a part file, cleanup.

The cache is given a fake ``tools`` object in place of qemu-img: the content fetched here is arbitrary
test bytes, not an image, and what qemu-img says of real images is the integration test's job
(tests/integration/test_instance_image.py). Files, locks and checksums are real.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import threading
import time

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.locks import FileLock
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.image_cache import (
    FILL_LOCK_TIMEOUT, ImageCache, check_image_info, copy_and_hash, image_base_name, is_base_name, parse_checksum,
    parse_source, read_record)

CONTENT = b'not really an image\n' * 1000
SHA256 = hashlib.sha256(CONTENT).hexdigest()


class FakeTools(object):
    """What qemu-img info would say of a standalone qcow2 image; records the calls."""

    def __init__(self, info=None):
        self.calls = []
        self.result = info or {'format': 'qcow2', 'virtual-size': 1 << 26}

    def info(self, path, field=None):
        self.calls.append(('info', path, field))
        return dict(self.result)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / 'image.qcow2'
    path.write_bytes(CONTENT)
    return parse_source(str(path))


@pytest.fixture
def cache(tmp_path):
    instances = tmp_path / 'instances'
    instances.mkdir()
    return ImageCache(str(instances), FakeTools())


def fill_from(cache, source, digest=SHA256, validate=None, image_id='img-1'):
    return lambda part: cache.fetch_image(part, image_id, source, 'sha256', digest, validate=validate)


# --- sources and checksums ---------------------------------------------------------------------------
@pytest.mark.parametrize('value, kind, location', [
    ('/srv/images/a.qcow2', 'file', '/srv/images/a.qcow2'),
    ('/srv/images/../images/a.qcow2', 'file', '/srv/images/a.qcow2'),
    ('file:///srv/a.qcow2', 'file', '/srv/a.qcow2'),
    ('file://localhost/srv/a.qcow2', 'file', '/srv/a.qcow2'),
    ('http://127.0.0.1:8080/a.qcow2', 'url', 'http://127.0.0.1:8080/a.qcow2'),
    ('HTTPS://images.example/a.qcow2?x=1', 'url', 'HTTPS://images.example/a.qcow2?x=1'),
])
def test_sources(value, kind, location):
    parsed = parse_source(value)
    assert (parsed.kind, parsed.location) == (kind, location)


def test_url_credentials_never_show():
    parsed = parse_source('https://user:secret@images.example:8443/a.qcow2')
    assert parsed.location == 'https://user:secret@images.example:8443/a.qcow2'
    assert parsed.display == 'https://images.example:8443/a.qcow2'


@pytest.mark.parametrize('value, words', [
    ('images/a.qcow2', 'absolute path'), ('ftp://host/a.qcow2', "scheme 'ftp'"), ('s3://bucket/a', "scheme 's3'"),
    ('file://otherhost/a.qcow2', 'local absolute path'), ('http:///a.qcow2', 'no host'), ('', 'absolute path'),
])
def test_bad_sources_name_the_field(value, words):
    with pytest.raises(KvmhostError) as caught:
        parse_source(value)
    assert caught.value.field == 'image.source' and words in str(caught.value)


def test_checksums():
    assert parse_checksum('sha256:' + SHA256.upper()) == ('sha256', SHA256)
    assert parse_checksum('SHA512:' + 'a' * 128) == ('sha512', 'a' * 128)


@pytest.mark.parametrize('value, words', [
    ('md5:' + 'a' * 32, "unsupported checksum algorithm 'md5'"), ('sha1:' + 'a' * 40, "algorithm 'sha1'"),
    ('sha256:abc', '64 hexadecimal digits'), ('sha256:' + 'g' * 64, '64 hexadecimal digits'),
    ('a' * 64, 'ALGORITHM:HEX'), (None, 'ALGORITHM:HEX'),
])
def test_bad_checksums_name_the_field(value, words):
    with pytest.raises(KvmhostError) as caught:
        parse_checksum(value)
    assert caught.value.field == 'image.checksum' and words in str(caught.value)


def test_base_names():
    assert image_base_name('demo-guest-v1') == hashlib.sha1(b'demo-guest-v1').hexdigest()
    assert all(is_base_name(name) for name in (image_base_name('x'), 'ephemeral_1_ext4', 'swap_64'))
    assert not any(is_base_name(name) for name in ('swap_64.lock', 'x.part', 'ephemeral_1_xfs', 'lost+found'))


@pytest.mark.parametrize('info, words', [
    ({'format': 'vmdk'}, "format 'vmdk' is not supported"),
    ({'format': 'qcow2', 'backing-filename': '/etc/shadow'}, 'has a backing file (/etc/shadow)'),
    ({'format': 'qcow2', 'format-specific': {'data': {'data-file': '/dev/sda'}}}, 'external data file'),
])
def test_a_base_must_stand_alone(info, words):
    with pytest.raises(KvmhostError) as caught:
        check_image_info(info)
    assert words in str(caught.value)


# --- the lock (core.locks.FileLock; its own tests are in core/test_locks.py) --------------------------
def test_a_base_s_lock_is_waited_for_an_hour_by_default(cache):
    lock = cache.lock(cache.path('swap_1'))
    assert lock.path == cache.path('swap_1') + '.lock'
    assert lock.timeout == FILL_LOCK_TIMEOUT == 3600 and lock.field == 'instances_path'


def test_a_fill_held_too_long_by_another_run_times_out_naming_the_lock(tmp_path):
    instances = tmp_path / 'instances'
    instances.mkdir()
    cache = ImageCache(str(instances), FakeTools(), lock_timeout=0.2)
    name = image_base_name('img-1')
    fills = []
    with cache.lock(cache.path(name)):  # another run, filling it
        with pytest.raises(KvmhostError) as caught:
            cache.use(name, fills.append)
    assert caught.value.field == 'instances_path' and cache.path(name) + '.lock' in str(caught.value)
    assert fills == [] and not os.path.exists(cache.path(name))


def test_the_lock_remakes_a_base_directory_removed_meanwhile(cache):
    """A failed fill removes the _base it created; a run waiting for its lock makes it again."""
    with cache.lock(cache.path('swap_1')):
        assert os.path.isdir(cache.directory)
        assert stat.S_IMODE(os.stat(cache.path('swap_1') + '.lock').st_mode) == 0o600


# --- filling -----------------------------------------------------------------------------------------
def test_fill_verifies_records_and_publishes_readable(cache, source):
    name = image_base_name('img-1')
    assert cache.use(name, fill_from(cache, source)) is True
    base = cache.path(name)
    with open(base, 'rb') as handle:
        assert handle.read() == CONTENT
    assert stat.S_IMODE(os.stat(base).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(cache.directory).st_mode) == 0o711
    record = read_record(base)
    assert record['checksum'] == 'sha256:' + SHA256 and record['image_id'] == 'img-1' and record['format'] == 'qcow2'
    assert not os.path.exists(base + '.part')
    assert cache.tools.calls == [('info', base + '.part', 'image.source')]  # probed before it was published


def test_a_cached_base_is_checked_not_filled_and_touched(cache, source):
    name = image_base_name('img-1')
    cache.use(name, fill_from(cache, source))
    os.utime(cache.path(name), (1, 1))
    checked, then = [], []
    assert cache.use(name, lambda part: pytest.fail('filled twice'), checked.append, then.append) is False
    assert checked == then == [cache.path(name)]
    assert os.stat(cache.path(name)).st_mtime > time.time() - 60


def refuse_size(info):
    raise KvmhostError('too small for %d bytes' % info['virtual-size'], field='flavor.root_gb')


@pytest.mark.parametrize('digest, validate, field', [
    ('0' * 64, None, 'image.checksum'),
    (SHA256, refuse_size, 'flavor.root_gb'),
])
def test_a_failed_fill_leaves_nothing(cache, source, digest, validate, field):
    with pytest.raises(KvmhostError) as caught:
        cache.use(image_base_name('img-1'), fill_from(cache, source, digest, validate))
    assert caught.value.field == field
    assert not os.path.exists(cache.directory)  # it created _base, so it removed it again


def test_a_failed_fill_keeps_a_base_directory_it_did_not_create(cache, source):
    os.mkdir(cache.directory)
    with pytest.raises(KvmhostError):
        cache.use(image_base_name('img-1'), fill_from(cache, source, '0' * 64))
    assert os.listdir(cache.directory) == []


def test_an_unreadable_source_names_the_field(cache, tmp_path):
    with pytest.raises(KvmhostError) as caught:
        cache.use('swap_1', fill_from(cache, parse_source(str(tmp_path / 'missing.qcow2'))))
    assert caught.value.field == 'image.source' and 'missing.qcow2' in str(caught.value)


def test_concurrent_users_fill_once(cache, source):
    fills, errors = [], []
    fill = fill_from(cache, source)

    def slow_fill(part):
        fills.append(part)
        time.sleep(0.2)
        return fill(part)

    def user():
        try:
            cache.use(image_base_name('img-1'), slow_fill)
        except Exception as exc:  # pylint: disable=broad-except  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=user) for _number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(fills) == 1


def test_cached_checksum_from_the_record_or_by_hashing(cache, source):
    name = image_base_name('img-1')
    cache.use(name, fill_from(cache, source))
    base = cache.path(name)
    assert cache.cached_checksum_matches(base, 'img-1', 'sha256', SHA256)
    assert not cache.cached_checksum_matches(base, 'img-1', 'sha256', '1' * 64)
    assert cache.cached_checksum_matches(base, 'img-1', 'sha512', hashlib.sha512(CONTENT).hexdigest())
    with pytest.raises(KvmhostError) as caught:
        cache.cached_checksum_matches(base, 'img-2', 'sha256', SHA256)
    assert caught.value.field == 'image.id'
    os.unlink(base + '.info')  # a base without a record is hashed
    assert cache.cached_checksum_matches(base, 'img-1', 'sha256', SHA256)


# --- cleanup -----------------------------------------------------------------------------------------
def aged(cache, name, seconds):
    path = cache.path(name)
    if not os.path.exists(path):
        os.makedirs(cache.directory, exist_ok=True)
        with open(path, 'wb') as handle:
            handle.write(b'x')
    past = time.time() - seconds
    os.utime(path, (past, past))
    return path


def test_only_old_unused_bases_expire_and_go_with_their_files(cache):
    old, used = aged(cache, 'swap_1', 7200), aged(cache, 'swap_3', 7200)
    aged(cache, 'swap_2', 10)
    for suffix in ('.info', '.lock'):
        open(old + suffix, 'w').close()
    in_use = {os.path.realpath(used)}
    assert [name for name in cache.bases() if cache.expired(name, 3600, in_use)] == ['swap_1']
    assert cache.remove_if_expired('swap_1', 3600, in_use) is True
    assert cache.remove_if_expired('swap_2', 3600, in_use) is False
    assert cache.remove_if_expired('swap_3', 3600, in_use) is False
    # the base, its record and its lock are gone; the others keep theirs (a lock file is made on first use)
    assert sorted(os.listdir(cache.directory)) == ['swap_2', 'swap_2.lock', 'swap_3', 'swap_3.lock']


def test_a_base_being_filled_or_used_is_not_removed(cache):
    aged(cache, 'swap_1', 7200)
    with FileLock(cache.path('swap_1') + '.lock'):
        assert cache.remove_if_expired('swap_1', 3600, set()) is False
    assert os.path.exists(cache.path('swap_1'))


def test_stale_parts(cache):
    part = aged(cache, 'swap_9.part', 7200)
    assert cache.stale_parts() == ['swap_9.part']
    with FileLock(cache.path('swap_9.lock')):
        assert cache.remove_stale_part('swap_9.part', 3600) is False  # a fill in progress
    assert cache.remove_stale_part('swap_9.part', 3600) is True
    assert not os.path.exists(part) and os.listdir(cache.directory) == []


class Answer(io.BytesIO):
    """An http(s) answer as open_url returns it: a byte stream with the headers the server sent."""

    def __init__(self, body, announced):
        super().__init__(body)
        self.headers = {'Content-Length': str(announced)}


def test_a_download_shorter_than_announced_is_the_source_s_error(tmp_path):
    with pytest.raises(KvmhostError) as raised:
        copy_and_hash(Answer(CONTENT[:100], len(CONTENT)), str(tmp_path / 'part'), 'sha256', 'http://x/img')
    assert raised.value.field == 'image.source'
    assert 'closed after 100 of the %d bytes' % len(CONTENT) in str(raised.value)


def test_a_complete_download_is_hashed(tmp_path):
    part = tmp_path / 'part'
    assert copy_and_hash(Answer(CONTENT, len(CONTENT)), str(part), 'sha256', 'http://x/img') == SHA256
    assert part.read_bytes() == CONTENT
    assert copy_and_hash(io.BytesIO(CONTENT), str(part), 'sha256', '/img') == SHA256  # a file: no length


def test_a_failed_write_names_the_instances_path(tmp_path, monkeypatch):
    class Full(io.BufferedWriter):
        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_fdopen = os.fdopen
    monkeypatch.setattr(os, 'fdopen', lambda fd, mode: Full(real_fdopen(fd, 'wb', buffering=0)))
    with pytest.raises(KvmhostError) as raised:
        copy_and_hash(io.BytesIO(CONTENT), str(tmp_path / 'part'), 'sha256', '/img')
    assert raised.value.field == 'instances_path' and 'No space left on device' in str(raised.value)
