# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The file lock: real flocks on files under tmp_path, held by this process, a thread or another process.

Timeouts are run with a fake clock whose sleep advances it, except one that waits for real (a fraction of a
second) to show the real clock and sleep are used.
"""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core import locks
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.locks import FileLock

# Holds an flock on argv[1] until its stdin closes; says "locked" once it holds it.
HOLDER = '''
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
'''


class FakeClock(object):
    """Monotonic time that only sleeping advances; records the sleeps."""

    def __init__(self):
        self.time = 1000.0
        self.sleeps = []

    def now(self):
        return self.time

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 6))
        self.time += seconds


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / 'test.lock')


@pytest.fixture
def other_process(path):
    """A process that holds the lock until told to let go (``release()``)."""
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            universal_newlines=True)
    assert proc.stdout.readline().strip() == 'locked'

    def release():
        proc.stdin.close()
        proc.wait(10)

    yield release
    if proc.poll() is None:
        release()
    proc.stdout.close()


def locked_by_someone(path):
    """Whether a fresh open file description of ``path`` cannot get the flock now."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# --- exclusion --------------------------------------------------------------------------------------
def test_two_locks_in_one_process_exclude_each_other(path):
    holder = FileLock(path)
    assert holder.acquire() is True and holder.held
    other = FileLock(path, timeout=0)
    assert other.acquire(blocking=False) is False and not other.held
    holder.release()
    assert not holder.held
    assert other.acquire(blocking=False) is True
    assert locked_by_someone(path)
    other.release()
    assert not locked_by_someone(path)


def test_another_process_s_lock_excludes_until_it_lets_go(path, other_process):
    assert FileLock(path).acquire(blocking=False) is False
    with pytest.raises(KvmhostError):
        FileLock(path, timeout=0).acquire()
    other_process()
    with FileLock(path, timeout=0) as lock:
        assert lock.held and locked_by_someone(path)
    assert not lock.held and not locked_by_someone(path)


def test_a_waiter_gets_the_lock_when_the_holder_releases_it(path):
    holder = FileLock(path)
    holder.acquire()
    got = []

    def wait():
        with FileLock(path, timeout=30, poll_interval=0.01):
            got.append(holder.held)  # what the holder's side said when the waiter got in

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)
    assert got == []  # still waiting
    holder.release()
    waiter.join(10)
    assert got == [False]


def test_the_same_lock_cannot_be_taken_twice(path):
    with FileLock(path) as lock:
        with pytest.raises(RuntimeError, match='already held'):
            lock.acquire()


# --- timeout ----------------------------------------------------------------------------------------
def test_timeout_raises_naming_the_lock_the_wait_and_the_field(path):
    clock = FakeClock()
    with FileLock(path):
        with pytest.raises(KvmhostError) as raised:
            FileLock(path, timeout=1, poll_interval=0.3, field='lock_file', clock=clock.now,
                     sleep=clock.sleep).acquire()
    assert clock.sleeps == [0.3, 0.3, 0.3, 0.1]  # polled, the last sleep cut to the deadline
    message = str(raised.value)
    assert message == 'lock_file: timed out after 1 s waiting for the lock %s: another process still holds it' % path
    assert raised.value.field == 'lock_file' and raised.value.details == {'lock_file': path}


def test_timeout_zero_tries_once_without_sleeping(path, other_process):
    clock = FakeClock()
    lock = FileLock(path, timeout=0, clock=clock.now, sleep=clock.sleep)
    with pytest.raises(KvmhostError, match='another process still holds it'):
        lock.acquire()
    assert lock.acquire(blocking=False) is False
    assert clock.sleeps == [] and not lock.held


def test_the_real_clock_waits_the_timeout(path):
    with FileLock(path):
        start = time.monotonic()
        with pytest.raises(KvmhostError):
            FileLock(path, timeout=0.3, poll_interval=0.05).acquire()
        assert 0.3 <= time.monotonic() - start < 5


def test_a_lock_freed_before_the_timeout_is_taken(path):
    holder = FileLock(path)
    holder.acquire()
    clock = FakeClock()

    def sleep(seconds):
        clock.sleep(seconds)
        if len(clock.sleeps) == 3:
            holder.release()

    lock = FileLock(path, timeout=10, poll_interval=1, clock=clock.now, sleep=sleep)
    assert lock.acquire() is True and lock.held
    assert clock.sleeps == [1, 1, 1]
    lock.release()


@pytest.mark.parametrize('timeout', [None, -1])
def test_there_is_no_endless_wait(path, timeout):
    with pytest.raises(ValueError):
        FileLock(path, timeout=timeout)


def test_the_default_timeout_is_finite(path):
    assert FileLock(path).timeout == locks.DEFAULT_TIMEOUT > 0


# --- a holder that removes the lock file ----------------------------------------------------------
def test_a_waiter_granted_the_removed_file_locks_the_new_one(path, monkeypatch):
    """The holder removes the file and unlocks it just as a waiter that opened it is granted its flock: the
    waiter must not believe it holds the lock (a third comer would lock a new file at the path); it locks the
    file now at the path."""
    holder = FileLock(path)
    holder.acquire()
    real_flock = fcntl.flock
    calls = []

    def flock(fd, operation):
        calls.append(operation)
        if len(calls) == 1:  # the waiter opened the holder's file: the holder lets go of it now
            holder.release(remove=True)
            assert not os.path.exists(path)
        return real_flock(fd, operation)

    monkeypatch.setattr(locks.fcntl, 'flock', flock)
    waiter = FileLock(path, timeout=0)
    assert waiter.acquire() is True
    monkeypatch.setattr(locks.fcntl, 'flock', real_flock)
    assert len(calls) == 3  # the waiter granted the removed file, the holder's unlock, the waiter on the new file
    held = os.fstat(waiter.fd)
    assert (held.st_dev, held.st_ino) == (os.stat(path).st_dev, os.stat(path).st_ino)
    assert locked_by_someone(path)
    assert FileLock(path, timeout=0).acquire(blocking=False) is False
    waiter.release()


def test_release_removes_the_file_when_asked_and_waiters_go_on(path):
    holder = FileLock(path)
    holder.acquire()
    holder.release(remove=True)
    assert not os.path.exists(path) and not holder.held
    with FileLock(path, timeout=0):
        assert os.path.exists(path)  # a fresh file
    assert os.path.exists(path)  # kept by default


def test_remove_deletes_the_file_at_once_and_keeps_the_lock(path):
    """As a failed fill does: the lock file goes first (so its directory can go too), the lock is held on."""
    holder = FileLock(path)
    holder.acquire()
    stale_fd = os.open(path, os.O_RDWR)  # a waiter that opened the file before it was removed
    holder.remove()
    assert not os.path.exists(path) and holder.held
    with pytest.raises(BlockingIOError):
        fcntl.flock(stale_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    holder.release()
    os.close(stale_fd)


def test_only_the_holder_removes_and_only_its_own_file(path):
    with pytest.raises(RuntimeError, match='not held'):
        FileLock(path).remove()
    holder = FileLock(path)
    holder.acquire()
    os.unlink(path)
    with open(path, 'w'):  # someone else's file at the path now
        pass
    holder.release(remove=True)
    assert os.path.exists(path)


# --- the file ---------------------------------------------------------------------------------------
def test_lock_file_is_private_and_not_inherited(path):
    old = os.umask(0o022)
    try:
        with FileLock(path) as lock:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert fcntl.fcntl(lock.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        os.umask(old)


def test_a_missing_directory_is_made_only_when_asked(tmp_path):
    path = str(tmp_path / 'run' / 'kvmhost' / 'x.lock')
    with pytest.raises(FileNotFoundError):
        FileLock(path).acquire()
    with FileLock(path, dir_mode=0o711):
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o711


def test_a_directory_made_by_another_run_meanwhile_is_no_error(tmp_path, monkeypatch):
    """Two applies of a batch on a fresh host may both find the directory missing; the second must go on."""
    path = str(tmp_path / 'run' / 'kvmhost' / 'x.lock')
    real_makedirs = os.makedirs

    def raced(name, mode=0o777, exist_ok=False):
        real_makedirs(name, mode)  # the other run was first
        real_makedirs(name, mode, exist_ok=exist_ok)

    monkeypatch.setattr(locks.os, 'makedirs', raced)
    with FileLock(path, dir_mode=0o755):
        assert os.path.exists(path)
