# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one file lock of the collection: an exclusive flock with a timeout.

Every lock taken on a file goes through :class:`FileLock`. It never waits forever: a holder that hangs
(a stuck command, a stalled download) makes the waiters fail after their timeout with a message naming
the lock file, instead of hanging the run.

- The lock is ``fcntl.flock`` on a file opened (created 0600, close-on-exec) for the lock; it is tried
  with ``LOCK_NB`` every ``poll_interval`` seconds until ``timeout`` seconds have passed. ``timeout=0``
  tries once.
- A holder may remove the lock file (``remove()``, or ``release(remove=True)``): it is unlinked while still
  locked, then unlocked. A waiter that was granted the flock of a file no longer at the path (same device
  and inode checked) did not get the lock: it opens the path again and locks the new file.
- flock belongs to an open file description, so two FileLock objects exclude each other in one process
  (threads of a batch) as in two.

Time and sleeping are arguments (``clock``, ``sleep``) so unit tests can run the timeout without waiting.
The SQLite state store does not use this: SQLite locks its database itself (busy timeout).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError

# Seconds a lock is waited for when the caller does not say: long enough for a holder's short critical
# section behind a queue of others, never forever.
DEFAULT_TIMEOUT = 60
DEFAULT_POLL_INTERVAL = 0.1
LOCK_FILE_MODE = 0o600
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


def _seconds(value):
    return '%g' % round(value, 1)


class FileLock(object):
    """An exclusive flock on ``path``, waited for at most ``timeout`` seconds; a context manager.

    ``field`` is the module option a timeout is reported against (KvmhostError's field). ``dir_mode``: a
    missing directory of ``path`` is created with this mode (None: a missing directory is an error).
    """

    def __init__(self, path, timeout=DEFAULT_TIMEOUT, poll_interval=DEFAULT_POLL_INTERVAL, field=None,
                 dir_mode=None, clock=time.monotonic, sleep=time.sleep):
        if timeout is None or timeout < 0:
            raise ValueError('a lock timeout is a number of seconds >= 0, got %r' % (timeout,))
        if poll_interval <= 0:
            raise ValueError('a lock poll interval is a number of seconds > 0, got %r' % (poll_interval,))
        self.path = path
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.field = field
        self.dir_mode = dir_mode
        self.clock = clock
        self.sleep = sleep
        self.fd = None

    @property
    def held(self):
        return self.fd is not None

    def _open(self):
        while True:
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, LOCK_FILE_MODE)
            except FileNotFoundError:
                directory = os.path.dirname(self.path)
                if self.dir_mode is None or not directory:
                    raise
                # exist_ok: another run (or thread) may create it, or the directory of a cache's lock may have
                # been removed by a failed fill and made again meanwhile
                os.makedirs(directory, self.dir_mode, exist_ok=True)

    def _try_lock(self):
        """One attempt: True when the flock was granted on the file that is at ``path`` now."""
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if self._is_at_path(fd):
                    self.fd, fd = fd, None
                    return True
                # its holder removed the file before unlocking it: the lock is the file at the path now
            except OSError as exc:
                if exc.errno in _BUSY:
                    return False
                raise
            finally:
                if fd is not None:
                    os.close(fd)

    def _is_at_path(self, fd):
        held = os.fstat(fd)
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino)

    def acquire(self, blocking=True):
        """Take the lock, waiting at most ``timeout`` seconds; True when taken.

        Past the timeout KvmhostError names the lock file and the wait. ``blocking=False`` tries once and
        returns False when another holds the lock.
        """
        if self.fd is not None:
            raise RuntimeError('the lock %s is already held by this FileLock' % self.path)
        start = self.clock()
        while True:
            if self._try_lock():
                return True
            if not blocking:
                return False
            waited = self.clock() - start
            if waited >= self.timeout:
                raise KvmhostError('timed out after %s s waiting for the lock %s: another process still holds it'
                                   % (_seconds(waited), self.path), field=self.field, lock_file=self.path)
            self.sleep(min(self.poll_interval, self.timeout - waited))

    def remove(self):
        """Delete the lock file now, while holding the lock (only if the file at the path is still this lock's).

        The lock stays held until ``release()``; a waiter granted the removed file then sees it is gone and
        locks a new one, so removing before unlocking is safe (unlocking first would not be).
        """
        if self.fd is None:
            raise RuntimeError('the lock %s is not held: only its holder may remove it' % self.path)
        if self._is_at_path(self.fd):
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def release(self, remove=False):
        """Unlock, removing the lock file first when ``remove``; nothing when not held."""
        if self.fd is None:
            return
        try:
            if remove:
                self.remove()
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()
