# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The instance_image module's checks of its image and flavor options (the driver runs in integration tests)."""

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.instance_image import check_flavor, check_image

CHECKSUM = 'sha256:' + '0' * 64


@pytest.fixture
def files(tmp_path):
    for name in ('image.qcow2', 'vmlinuz', 'initrd'):
        (tmp_path / name).write_bytes(b'x')
    return tmp_path


def image(files, **changes):
    spec = {'id': 'demo-guest-v1', 'source': str(files / 'image.qcow2'), 'checksum': CHECKSUM,
            'kernel': str(files / 'vmlinuz'), 'ramdisk': str(files / 'initrd'), 'cmdline': None}
    spec.update(changes)
    return spec


def test_a_good_image(files):
    image_id, source, algorithm, digest, copies = check_image(image(files))
    assert (image_id, source.kind, algorithm, digest) == ('demo-guest-v1', 'file', 'sha256', '0' * 64)
    assert copies == {'kernel': str(files / 'vmlinuz'), 'ramdisk': str(files / 'initrd')}


@pytest.mark.parametrize('changes, field, words', [
    ({'id': '../etc'}, 'image.id', 'without ".."'),
    ({'id': 'a/b'}, 'image.id', 'letters, digits'),
    ({'source': '/nonexistent/image.qcow2'}, 'image.source', 'does not exist'),
    ({'source': 'ftp://host/image'}, 'image.source', "scheme 'ftp'"),
    ({'checksum': 'md5:' + '0' * 32}, 'image.checksum', "'md5'"),
    ({'kernel': '/nonexistent/vmlinuz'}, 'image.kernel', 'does not exist'),
    ({'kernel': 'vmlinuz'}, 'image.kernel', 'absolute path'),
    ({'kernel': None}, 'image.ramdisk', 'needs a kernel'),
])
def test_bad_images_name_the_field(files, changes, field, words):
    with pytest.raises(KvmhostError) as caught:
        check_image(image(files, **changes))
    assert caught.value.field == field and words in str(caught.value)


def test_a_required_ramdisk(files):
    check_image(image(files, ramdisk=None))
    with pytest.raises(KvmhostError) as caught:
        check_image(image(files, ramdisk=None), ramdisk_required=True)
    assert caught.value.field == 'image.ramdisk'


def test_no_image():
    with pytest.raises(KvmhostError) as caught:
        check_image(None)
    assert caught.value.field == 'image'


def test_flavor():
    assert check_flavor(None) == {'root_gb': 0, 'ephemeral_gb': 0, 'swap_mb': 0}
    assert check_flavor({'root_gb': 1, 'vcpus': 2, 'swap_mb': None}) == {'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0}
    with pytest.raises(KvmhostError) as caught:
        check_flavor({'ephemeral_gb': -1})
    assert caught.value.field == 'flavor.ephemeral_gb'
