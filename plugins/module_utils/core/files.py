# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small text files written whole: read one, or replace one atomically (temporary file, fsync, rename)."""

from __future__ import annotations

import os
import tempfile

FILE_MODE = 0o600


def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return ''  # not our XML: it will be replaced


def write_atomic(path, text, mode=FILE_MODE):
    """Write through a temporary file in the same directory, fsync, then rename over ``path``."""
    directory = os.path.dirname(path) or '.'
    fd, part = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.part', dir=directory)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.rename(part, path)
    except BaseException:
        try:
            os.unlink(part)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
