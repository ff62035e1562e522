# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    check_absolute_path, check_display_name, check_token, check_uuid)


def test_uuid_is_canonicalized():
    assert check_uuid('1E0E6ED9-67FD-4B64-98D6-7BDE4F6F4FA0') == '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'


@pytest.mark.parametrize('value', ['', 'x', '1e0e6ed967fd4b6498d67bde4f6f4fa0', '../1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0',
                                   '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0\n', None, 42])
def test_bad_uuids(value):
    with pytest.raises(KvmhostError, match='uuid: must be a UUID'):
        check_uuid(value)


@pytest.mark.parametrize('value', ['../x', 'a/b', '..', 'a..b', '', ' x', 'x y', 'x;rm', '<x>', 'é'])
def test_bad_tokens(value):
    with pytest.raises(KvmhostError, match='image.id: must be'):
        check_token(value, 'image.id')


def test_good_tokens():
    assert check_token('demo-guest-v1', 'id') == 'demo-guest-v1'
    assert check_token('req-8a1c7c9e:1@x+y', 'id') == 'req-8a1c7c9e:1@x+y'


def test_display_names_allow_text_but_not_control_characters():
    assert check_display_name('web <1> & "db"') == 'web <1> & "db"'
    with pytest.raises(KvmhostError):
        check_display_name('x' * 256)
    with pytest.raises(KvmhostError):
        check_display_name('tab\there')


def test_absolute_paths():
    assert check_absolute_path('/var/lib/../lib/kvmhost', 'p') == '/var/lib/kvmhost'
    with pytest.raises(KvmhostError, match='p: must be an absolute path'):
        check_absolute_path('var/lib', 'p')
