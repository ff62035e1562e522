# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""read_text and write_atomic on real files."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core import files
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.files import FILE_MODE, read_text, write_atomic


def test_read_text_of_a_missing_file_is_none(tmp_path):
    assert read_text(str(tmp_path / 'absent.xml')) is None


def test_read_text_of_a_file_that_is_not_utf8_is_empty(tmp_path):
    path = tmp_path / 'binary'
    path.write_bytes(b'\xff\xfe\x00garbage')
    assert read_text(str(path)) == ''


def test_write_atomic_replaces_the_content_and_sets_the_mode(tmp_path):
    path = tmp_path / 'libvirt.xml'
    path.write_text('old')
    os.chmod(str(path), 0o644)
    write_atomic(str(path), '<domain/>\n')
    assert read_text(str(path)) == '<domain/>\n'
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == FILE_MODE == 0o600
    write_atomic(str(path), 'x', mode=0o640)
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o640
    assert sorted(os.listdir(str(tmp_path))) == ['libvirt.xml']


def test_write_atomic_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / 'libvirt.xml'
    path.write_text('old')

    def refuse(_source, _dest):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(files.os, 'rename', refuse)
    with pytest.raises(OSError, match='No space left'):
        write_atomic(str(path), 'new')
    assert path.read_text() == 'old'
    assert sorted(os.listdir(str(tmp_path))) == ['libvirt.xml']  # the temporary file is gone
