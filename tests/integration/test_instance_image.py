# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""instance_image for real: qemu-img, mkfs.ext4, mkswap, files under a fresh instances path, the demo images,
and an http server on 127.0.0.1 for URL sources.

Rhythm of the first test: check mode (nothing made), apply, idempotent check, idempotent apply.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import http.server
import json
import os
import pathlib
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid as uuid_lib

import pytest

from kvmhost_testlib import TEST_PREFIX, run_module

IMAGES = pathlib.Path(os.environ.get('KVMHOST_IMAGES', '/var/lib/kvmhost/images'))
TEST_TMP_ROOT = pathlib.Path(os.environ.get('KVMHOST_TEST_TMP', '/var/lib/kvmhost/test-tmp'))
GIB = 1024 ** 3

pytestmark = pytest.mark.skipif(shutil.which('qemu-img') is None, reason='qemu-img is not installed')


@pytest.fixture(scope='module')
def manifest():
    path = IMAGES / 'manifest.json'
    if not path.exists():
        pytest.skip('demo images missing: run tools/build-demo-images %s' % IMAGES)
    data = json.loads(path.read_text())
    data['by_id'] = dict((image['id'], image) for image in data['images'])
    return data


@pytest.fixture
def instances():
    """A fresh instances path QEMU's user can traverse (0711, as the kvm_host role makes it)."""
    TEST_TMP_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = pathlib.Path(tempfile.mkdtemp(prefix=TEST_PREFIX, dir=TEST_TMP_ROOT))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def image_spec(manifest, image_id='demo-guest-v1', source=None, kernel=True):
    image = manifest['by_id'][image_id]
    spec = {'id': image_id, 'source': source or image['path'], 'checksum': image['checksum']}
    if kernel:
        spec.update(kernel=manifest['kernel']['path'], ramdisk=manifest['ramdisk']['path'], cmdline='console=ttyS0 no_timer_check')
    return spec


def present(instances, uuid, image, flavor=None, check=False, diff=False, **extra):
    args = dict(uuid=uuid, instances_path=str(instances), image=image, **extra)
    if flavor is not None:
        args['flavor'] = flavor
    return run_module('instance_image', args, check=check, diff=diff)


def tree(path):
    """Every file and directory under ``path`` with its size and mode: 'nothing changed' means this is equal."""
    listing = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            info = os.lstat(full)
            listing[os.path.relpath(full, path)] = (info.st_size, stat.S_IMODE(info.st_mode), info.st_mtime)
    return listing


def qemu_info(path):
    return json.loads(subprocess.run(['qemu-img', 'info', '--output=json', '-U', str(path)], check=True,
                                     capture_output=True, text=True).stdout)


def sha256(path):
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def blkid(path):
    return subprocess.run(['blkid', '-o', 'export', str(path)], capture_output=True, text=True, check=False).stdout


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# --- the http server of URL sources ------------------------------------------------------------------
class ImageServer(object):
    """Serves the demo images on 127.0.0.1; logs each request; answers can be delayed.

    /slow/<name> never answers; /cut/<name> sends the headers of the whole file and half its body, then closes
    the connection; /stall/<name> sends the same half, then stops sending with the connection left open.
    """

    def __init__(self):
        self.requests = []
        self.delay = 0.0
        self.stop = threading.Event()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path.startswith('/slow/'):
                    server.stop.wait(30)
                    return
                for mode in ('/cut/', '/stall/'):
                    if self.path.startswith(mode):
                        self.send_half(IMAGES / self.path[len(mode):], stall=mode == '/stall/')
                        return
                time.sleep(server.delay)
                super().do_GET()

            def send_half(self, path, stall):
                data = path.read_bytes()
                self.send_response(200)
                self.send_header('Content-Type', 'application/octet-stream')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                if stall:
                    server.stop.wait(30)
                self.close_connection = True

            def log_message(self, *args):  # pylint: disable=arguments-differ
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ('127.0.0.1', 0), functools.partial(Handler, directory=str(IMAGES)))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name):
        return 'http://127.0.0.1:%d/%s' % (self.httpd.server_address[1], name)

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def image_server():
    server = ImageServer()
    yield server
    server.close()


# --- tests -------------------------------------------------------------------------------------------
def test_check_apply_idempotent(instances, manifest):
    uuid = str(uuid_lib.uuid4())
    image = image_spec(manifest)
    flavor = {'vcpus': 1, 'memory_mb': 192, 'root_gb': 1, 'ephemeral_gb': 1, 'swap_mb': 64}

    checked = present(instances, uuid, image, flavor, check=True, diff=True)
    assert checked['changed'] is True, checked
    assert os.listdir(instances) == []  # check mode made nothing, not even _base
    assert checked['actions'][0].startswith('fetch image demo-guest-v1 from ')
    assert checked['diff']['before'] == {'instance_dir': False, 'base_cached': False, 'files': {}}
    assert checked['diff']['after']['files']['disk']['virtual_size'] == GIB
    assert checked['disks']['disk']['info'] is None

    started = time.monotonic()
    made = present(instances, uuid, image, flavor)
    made_seconds = time.monotonic() - started
    assert made['changed'] is True and made['actions'] == checked['actions'], made
    base = pathlib.Path(made['base']['path'])
    instance = instances / uuid
    assert base == instances / '_base' / hashlib.sha1(b'demo-guest-v1').hexdigest()
    assert made['base']['fetched'] is True and made['base']['format'] == 'qcow2'
    assert 'sha256:' + sha256(base) == manifest['by_id']['demo-guest-v1']['checksum']

    disk = qemu_info(instance / 'disk')
    assert (disk['format'], disk['virtual-size']) == ('qcow2', GIB)
    assert (disk['backing-filename'], disk['backing-filename-format']) == (str(base), 'qcow2')
    assert made['disks']['disk']['info']['backing-filename-format'] == 'qcow2'
    local, swap = qemu_info(instance / 'disk.local'), qemu_info(instance / 'disk.swap')
    assert (local['backing-filename'], local['backing-filename-format'], local['virtual-size']) == (
        str(instances / '_base' / 'ephemeral_1_ext4'), 'raw', GIB)
    assert (swap['backing-filename'], swap['backing-filename-format'], swap['virtual-size']) == (
        str(instances / '_base' / 'swap_64'), 'raw', 64 * 1024 * 1024)
    head = instances / 'disk.local.head'  # the overlay's first 2 MiB hold the ext4 superblock
    subprocess.run(['qemu-img', 'dd', '-f', 'qcow2', '-O', 'raw', 'bs=1M', 'count=2',
                    'if=%s' % (instance / 'disk.local'), 'of=%s' % head], check=True)
    assert 'TYPE=ext4' in blkid(head) and 'LABEL=ephemeral0' in blkid(head)
    head.unlink()
    assert 'TYPE=swap' in blkid(instances / '_base' / 'swap_64')
    for name, source in (('kernel', manifest['kernel']['path']), ('ramdisk', manifest['ramdisk']['path'])):
        assert (instance / name).read_bytes() == pathlib.Path(source).read_bytes()
        assert made[name] == str(instance / name)

    # Tight permissions, yet QEMU's user reaches the bases; libvirt hands it the 0600 files at domain start.
    assert mode(instance) == 0o711 and mode(instances / '_base') == 0o711
    assert [mode(instance / name) for name in ('disk', 'disk.local', 'disk.swap', 'kernel', 'ramdisk')] == [0o600] * 5
    assert all(mode(instances / '_base' / name) == 0o644 for name in (base.name, 'ephemeral_1_ext4', 'swap_64'))
    as_qemu = subprocess.run(['runuser', '-u', 'libvirt-qemu', '--', 'qemu-img', 'info', '-U', str(base)],
                             capture_output=True, text=True, check=False)
    assert as_qemu.returncode == 0, as_qemu.stderr
    assert sorted(os.listdir(instances / '_base')) == sorted(
        [name + suffix for name in (base.name, 'ephemeral_1_ext4', 'swap_64') for suffix in ('', '.lock')]
        + [base.name + '.info'])

    before = tree(instances)
    for check in (True, False):
        started = time.monotonic()
        again = present(instances, uuid, image, flavor, check=check, diff=True)
        seconds = time.monotonic() - started
        assert again['changed'] is False and again['actions'] == [], again
        assert again['diff']['before']['files'] == again['diff']['after']['files']
        assert again['disks']['disk']['info']['virtual-size'] == GIB
        assert again['base']['cached'] is True and again['base']['fetched'] is False
    assert {key: value[:2] for key, value in tree(instances).items()} == {
        key: value[:2] for key, value in before.items()}
    print('\ninstance_image: first run %.2f s, cached idempotent run %.2f s' % (made_seconds, seconds))


def test_a_second_instance_uses_the_cached_base(instances, manifest):
    image = image_spec(manifest, kernel=False)
    present(instances, str(uuid_lib.uuid4()), image)
    uuid = str(uuid_lib.uuid4())
    started = time.monotonic()
    second = present(instances, uuid, image)  # no flavor: the root disk has the image's size
    seconds = time.monotonic() - started
    assert second['changed'] is True and second['base']['cached'] is True and second['base']['fetched'] is False
    assert not any(action.startswith('fetch') for action in second['actions'])
    assert qemu_info(instances / uuid / 'disk')['virtual-size'] == manifest['by_id']['demo-guest-v1']['virtual_size']
    assert second['kernel'] is None and not (instances / uuid / 'kernel').exists()
    print('\ninstance_image: overlay on a cached base %.2f s' % seconds)


def test_a_raw_image_from_a_file_url(instances, manifest):
    raw = pathlib.Path(str(instances) + '-raw.img')
    subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', manifest['by_id']['demo-guest-v1']['path'],
                    str(raw)], check=True)
    try:
        image = {'id': 'demo-guest-v1-raw', 'source': 'file://' + str(raw), 'checksum': 'sha256:' + sha256(raw)}
        uuid = str(uuid_lib.uuid4())
        made = present(instances, uuid, image, {'root_gb': 1})
        assert made['changed'] is True and made['base']['format'] == 'raw', made
        disk = qemu_info(instances / uuid / 'disk')
        assert (disk['backing-filename-format'], disk['virtual-size']) == ('raw', GIB)
        assert present(instances, uuid, image, {'root_gb': 1})['changed'] is False
    finally:
        raw.unlink()


def test_concurrent_boots_fetch_an_http_image_once(instances, manifest, image_server):
    image_server.delay = 0.5  # the fetch lasts long enough for all the others to wait on its lock
    image = image_spec(manifest, source=image_server.url('demo-guest-v2.qcow2'), image_id='demo-guest-v2')
    uuids = [str(uuid_lib.uuid4()) for _number in range(4)]
    with concurrent.futures.ThreadPoolExecutor(len(uuids)) as pool:
        results = list(pool.map(lambda uuid: present(instances, uuid, image, {'root_gb': 1}), uuids))
    assert all(result['changed'] and not result.get('failed') for result in results), results
    assert image_server.requests == ['/demo-guest-v2.qcow2']
    assert [result['base']['fetched'] for result in results].count(True) == 1
    # More than one run found the base missing when it planned, so they really waited on each other's lock.
    assert sum(result['actions'][0].startswith('fetch image') for result in results) >= 2, results
    base = results[0]['base']['path']
    assert all(qemu_info(instances / uuid / 'disk')['backing-filename'] == base for uuid in uuids)
    assert 'sha256:' + sha256(base) == manifest['by_id']['demo-guest-v2']['checksum']
    assert json.loads(pathlib.Path(base + '.info').read_text())['source'] == image['source']


@pytest.mark.parametrize('where, words', [
    ('missing.qcow2', 'HTTP 404'),
    ('slow/demo-guest-v1.qcow2', 'timed out'),
    ('closed-port', 'Connection refused'),
    # The source stops mid-download: the connection closes early, or stays open and sends nothing more.
    ('cut/demo-guest-v1.qcow2', 'IncompleteRead'),
    ('stall/demo-guest-v1.qcow2', 'timed out'),
])
def test_http_failures_are_bounded_and_leave_nothing(instances, manifest, image_server, where, words):
    if where == 'closed-port':
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(('127.0.0.1', 0))
            url = 'http://127.0.0.1:%d/demo-guest-v1.qcow2' % probe.getsockname()[1]
    else:
        url = image_server.url(where)
    uuid = str(uuid_lib.uuid4())
    started = time.monotonic()
    result = present(instances, uuid, image_spec(manifest, source=url), download_timeout=2)
    assert time.monotonic() - started < 10
    assert result.get('failed') and result['msg'].startswith('image.source: '), result
    assert words in result['msg'], result['msg']
    assert os.listdir(instances) == []
    # The next run, with the source back, finishes the instance.
    again = present(instances, uuid, image_spec(manifest, source=image_server.url('demo-guest-v1.qcow2')))
    assert again['changed'] is True and not again.get('failed'), again
    assert qemu_info(instances / uuid / 'disk')['format'] == 'qcow2'


@pytest.fixture
def small_instances():
    """An instances path on a 640 KiB tmpfs: room for a qcow2 overlay, not for the 1 MiB demo image."""
    TEST_TMP_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = pathlib.Path(tempfile.mkdtemp(prefix=TEST_PREFIX + 'enospc-', dir=TEST_TMP_ROOT))
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=640k,mode=0711', TEST_PREFIX + 'enospc', str(path)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        path.rmdir()
        pytest.skip('cannot mount a tmpfs here: %s' % mounted.stderr.strip())
    yield path
    subprocess.run(['umount', str(path)], check=False)
    path.rmdir()


def test_a_full_instances_path_fails_cleanly_and_the_next_run_finishes(small_instances, manifest):
    """ENOSPC while the base is written: the step fails naming the cause, leaves no part file, no empty
    instance directory and no lock behind; with room made, the same call finishes the instance."""
    uuid = str(uuid_lib.uuid4())
    image = image_spec(manifest)
    result = present(small_instances, uuid, image)
    assert result.get('failed'), result
    assert 'No space left on device' in result['msg'], result['msg']
    assert result['msg'].startswith('instances_path: '), result['msg']
    assert 'Traceback' not in result['msg']
    assert os.listdir(small_instances) == []
    subprocess.run(['mount', '-o', 'remount,size=16m', str(small_instances)], check=True)
    again = present(small_instances, uuid, image)
    assert again['changed'] is True and not again.get('failed'), again
    assert qemu_info(small_instances / uuid / 'disk')['backing-filename'] == again['base']['path']


@pytest.fixture
def odd_images(instances):
    """A 2 GiB qcow2 (bigger than root_gb 1) and a qcow2 with a backing file, outside the instances path."""
    directory = pathlib.Path(str(instances) + '-src')
    directory.mkdir()
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(directory / 'big.qcow2'), '2G'], check=True)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', '/etc/hostname', '-F', 'raw',
                    str(directory / 'chained.qcow2'), '1M'], check=True)
    yield dict((name, {'id': name, 'source': str(directory / (name + '.qcow2')),
                       'checksum': 'sha256:' + sha256(directory / (name + '.qcow2'))}) for name in ('big', 'chained'))
    shutil.rmtree(directory, ignore_errors=True)


BAD_INPUTS = [
    # (label, changes to the arguments, the field the message must name, words it must contain)
    ('uuid', {'uuid': '1e0e6ed9-67fd-4b64-98d6'}, 'uuid', 'must be a UUID'),
    ('image id with ../', {'image': {'id': '../demo'}}, 'image.id', '".."'),
    ('image id with /', {'image': {'id': 'a/b'}}, 'image.id', 'letters, digits'),
    ('relative instances path', {'instances_path': 'instances'}, 'instances_path', 'absolute path'),
    ('instances path a file', {'instances_path': '/etc/hostname'}, 'instances_path', 'is not a directory'),
    ('missing source', {'image': {'source': '/nonexistent/demo.qcow2'}}, 'image.source', 'does not exist'),
    ('checksum mismatch', {'image': {'checksum': 'sha256:' + '0' * 64}}, 'image.checksum', 'checksum mismatch'),
    ('md5 checksum', {'image': {'checksum': 'md5:' + '0' * 32}}, 'image.checksum', "algorithm 'md5'"),
    ('sha1 checksum', {'image': {'checksum': 'sha1:' + '0' * 40}}, 'image.checksum', "algorithm 'sha1'"),
    ('ftp source', {'image': {'source': 'ftp://127.0.0.1/demo.qcow2'}}, 'image.source', "scheme 'ftp'"),
    ('kernel without ramdisk', {'image': {'ramdisk': None}, 'ramdisk_required': True}, 'image.ramdisk',
     'needs a ramdisk'),
    ('ramdisk without kernel', {'image': {'kernel': None}}, 'image.ramdisk', 'needs a kernel'),
    ('missing kernel', {'image': {'kernel': '/nonexistent/vmlinuz'}}, 'image.kernel', 'does not exist'),
    ('negative swap', {'flavor': {'swap_mb': -1}}, 'flavor.swap_mb', 'must be 0..67108864, got -1'),
    ('flavor too small', {'image': 'big'}, 'flavor.root_gb', "Flavor's disk is too small for requested image"),
    ('image with a backing file', {'image': 'chained'}, 'image.source', 'has a backing file (/etc/hostname)'),
]


@pytest.mark.parametrize('check', [False, True], ids=['apply', 'check'])
@pytest.mark.parametrize('label, changes, field, words', BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_fails_naming_the_field_and_changes_nothing(
        instances, manifest, odd_images, check, label, changes, field, words):
    args = {'uuid': str(uuid_lib.uuid4()), 'instances_path': str(instances), 'image': image_spec(manifest),
            'flavor': {'root_gb': 1, 'ephemeral_gb': 1, 'swap_mb': 64}}
    for key, value in changes.items():
        if isinstance(value, str) and key == 'image':
            args['image'] = odd_images[value]
        elif isinstance(value, dict):
            args[key] = dict(args.get(key) or {}, **value)
        else:
            args[key] = value
    before = tree(instances)
    result = run_module('instance_image', args, check=check)
    assert result.get('failed'), (label, result)
    assert result['msg'].startswith(field + ': ') and words in result['msg'], (label, result['msg'])
    assert tree(instances) == before == {}, label


def test_an_image_id_names_one_content(instances, manifest):
    present(instances, str(uuid_lib.uuid4()), image_spec(manifest, kernel=False))
    other = dict(image_spec(manifest, 'demo-guest-v2', kernel=False), id='demo-guest-v1')
    before = tree(instances)
    result = present(instances, str(uuid_lib.uuid4()), other)
    assert result.get('failed') and result['msg'].startswith('image.checksum: the cached base ')
    assert 'an image id must always name the same content' in result['msg']
    assert tree(instances) == before


def test_an_existing_disk_of_another_image_is_never_replaced(instances, manifest):
    uuid = str(uuid_lib.uuid4())
    present(instances, uuid, image_spec(manifest))
    (instances / uuid / 'console.log').write_text('old')
    before = tree(instances)
    result = present(instances, uuid, image_spec(manifest, 'demo-guest-v2'))
    assert result.get('failed') and result['msg'].startswith('image: ') and 'never replaced' in result['msg']
    assert tree(instances) == before
    # A rebuild moves the old directory aside first (instance_disk state=moved); the old base stays in use.
    os.rename(instances / uuid, instances / (uuid + '_del'))
    rebuilt = present(instances, uuid, image_spec(manifest, 'demo-guest-v2'))
    assert rebuilt['changed'] is True and not rebuilt.get('failed'), rebuilt
    assert qemu_info(instances / uuid / 'disk')['backing-filename'] == rebuilt['base']['path']
    cleanup = run_module('instance_image', {'instances_path': str(instances), 'base_cleanup_age': 0})
    assert cleanup['changed'] is False and len(cleanup['bases_in_use']) == 2  # v1 (the _del copy) and v2


def test_absent_removes_only_the_files_it_made(instances, manifest):
    uuid = str(uuid_lib.uuid4())
    present(instances, uuid, image_spec(manifest), {'swap_mb': 16})
    (instances / uuid / 'console.log').write_text('kept')
    args = {'uuid': uuid, 'instances_path': str(instances), 'state': 'absent'}
    checked = run_module('instance_image', args, check=True)
    assert checked['changed'] is True and len(checked['actions']) == 4
    assert len(os.listdir(instances / uuid)) == 5
    removed = run_module('instance_image', args)
    assert removed['changed'] is True and os.listdir(instances / uuid) == ['console.log']
    assert run_module('instance_image', args)['changed'] is False


def test_cleanup_removes_only_old_unused_bases(instances, manifest):
    kept, dropped = str(uuid_lib.uuid4()), str(uuid_lib.uuid4())
    kept_base = present(instances, kept, image_spec(manifest, kernel=False), {'swap_mb': 16})['base']['path']
    dropped_base = present(instances, dropped, image_spec(manifest, 'demo-guest-v2', kernel=False))['base']['path']
    young = present(instances, str(uuid_lib.uuid4()), image_spec(manifest, kernel=False), {'ephemeral_gb': 1})
    run_module('instance_image', {'uuid': dropped, 'instances_path': str(instances), 'state': 'absent'})
    shutil.rmtree(young['instance_path'])  # its ephemeral base is unused now, but young
    two_hours_ago = time.time() - 7200
    for name in os.listdir(instances / '_base'):
        if not name.startswith('ephemeral_'):
            os.utime(instances / '_base' / name, (two_hours_ago, two_hours_ago))
    args = {'instances_path': str(instances), 'base_cleanup_age': 3600}

    checked = run_module('instance_image', args, check=True, diff=True)
    assert checked['changed'] is True and checked['removed_bases'] == [dropped_base], checked
    assert os.path.exists(dropped_base)
    assert os.stat(kept_base).st_mtime < two_hours_ago + 1  # check mode does not touch either

    cleaned = run_module('instance_image', args)
    assert cleaned['changed'] is True and cleaned['removed_bases'] == [dropped_base]
    assert sorted(os.path.basename(path) for path in cleaned['bases_in_use']) == sorted(
        [os.path.basename(kept_base), 'swap_16'])
    assert not any(name.startswith(os.path.basename(dropped_base)) for name in os.listdir(instances / '_base'))
    assert os.path.exists(instances / '_base' / 'ephemeral_1_ext4')
    assert os.stat(kept_base).st_mtime > time.time() - 60  # in use: touched, its age starts again
    assert run_module('instance_image', args)['changed'] is False
