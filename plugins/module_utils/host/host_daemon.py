# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Starting host daemons where no service manager runs (containers, machines without systemd).

A daemon counts as running when a live process of its name exists (its pidfile is only a
hint: it can be stale). It is never started twice. A daemon that forks by itself is run
and waited for; one that stays in the foreground is started in a session of its own with
its output in a log file, so the module returns while it keeps running.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import ModuleDriver, Plan
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    MAX_TIMEOUT, check_absolute_path, check_int, check_token)

PROC = '/proc'


class ProcessTable(object):
    """Reads /proc. A seam: unit tests give it a fake root."""

    def __init__(self, root=PROC):
        self.root = root

    def pids_named(self, name):
        """Pids of live (not zombie) processes whose comm is ``name`` (cut to 15 characters, as the kernel)."""
        wanted = name[:15]
        found = []
        for entry in os.listdir(self.root):
            if not entry.isdigit():
                continue
            try:
                with open(os.path.join(self.root, entry, 'stat')) as handle:
                    stat = handle.read()
            except OSError:  # the process ended while we looked
                continue
            # stat is "pid (comm) state ...": comm may hold spaces or parentheses, so cut at the last ')'.
            comm = stat[stat.index('(') + 1:stat.rindex(')')]
            state = stat[stat.rindex(')') + 2:stat.rindex(')') + 3]
            if comm == wanted and state not in ('Z', 'X'):
                found.append(int(entry))
        return sorted(found)

    def alive(self, pid):
        try:
            with open(os.path.join(self.root, str(pid), 'stat')) as handle:
                stat = handle.read()
        except OSError:
            return False
        return stat[stat.rindex(')') + 2:stat.rindex(')') + 3] not in ('Z', 'X')


def socket_accepts(path):
    """True when a Unix stream socket at ``path`` accepts a connection."""
    if not os.path.exists(path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def read_tail(path, limit=2000):
    try:
        with open(path, 'rb') as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            return handle.read().decode('utf-8', 'replace')
    except OSError:
        return ''


class DaemonDriver(ModuleDriver):
    """The host_daemon module."""

    process_table_class = ProcessTable

    @staticmethod
    def check_options(params):
        check_int(params['wait_timeout'], 'wait_timeout', 0, MAX_TIMEOUT, 'seconds')

    def run(self):
        params = self.params
        name = check_token(params['name'], 'name')
        process_name = params['process_name'] or os.path.basename(params['command'][0])
        if not params['command'] or not params['command'][0]:
            raise KvmhostError('must name the program to run', field='command')
        self.check_options(params)
        log_file = check_absolute_path(params['log_file'] or '/var/log/kvmhost/%s.log' % name, 'log_file')
        socket_path = check_absolute_path(params['socket'], 'socket') if params['socket'] else None
        table = self.process_table_class()
        pids = table.pids_named(process_name)
        before = {'running': bool(pids), 'pids': pids}
        plan = Plan(before, {'running': True})
        started = {}
        if not pids:
            plan.add('start %s (%s)' % (name, ' '.join(params['command'])),
                     lambda: started.update(self._start(name, process_name, log_file, socket_path, table)))
        elif socket_path and not self.check_mode:
            self._wait_for_socket(name, socket_path, pids, table, log_file)
        result = self.finish(plan)
        result['pids'] = started.get('pids', pids)
        result['process_name'] = process_name
        result['log_file'] = log_file
        return result

    def _start(self, name, process_name, log_file, socket_path, table):
        command = self.params['command']
        log_dir = os.path.dirname(log_file)
        if not os.path.isdir(log_dir):
            os.makedirs(log_dir, 0o750)
        for directory in self.params['runtime_dirs']:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o755)
        if self.params['forks']:
            # The program daemonizes itself: run it and wait for the parent to return.
            rc, out, err = self.module.run_command(command)
            if rc != 0:
                raise KvmhostError('%s exited with %d: %s' % (' '.join(command), rc, (err or out).strip()),
                                   field='command')
            child = None
        else:
            with open(log_file, 'ab') as log, open(os.devnull, 'rb') as devnull:
                os.chmod(log_file, 0o640)
                try:
                    child = subprocess.Popen(command, stdin=devnull, stdout=log, stderr=log, cwd='/',
                                             close_fds=True, start_new_session=True)
                except OSError as exc:
                    raise KvmhostError('cannot run %s: %s' % (command[0], exc.strerror), field='command')
        deadline = time.monotonic() + self.params['wait_timeout']
        while True:
            pids = table.pids_named(process_name)
            ready = pids and (socket_path is None or socket_accepts(socket_path))
            if ready:
                return {'pids': pids}
            if child is not None and child.poll() is not None:
                raise KvmhostError('%s exited with %s right after it started; its log %s ends with: %s'
                                   % (name, child.returncode, log_file, read_tail(log_file)), field='command')
            if time.monotonic() > deadline:
                raise KvmhostError('%s did not come up within %d seconds (process %s%s); see %s'
                                   % (name, self.params['wait_timeout'], process_name,
                                      ', socket %s' % socket_path if socket_path else '', log_file),
                                   field='wait_timeout')
            time.sleep(0.1)

    def _wait_for_socket(self, name, socket_path, pids, table, log_file):
        """A daemon found running may still be starting: wait until its socket answers."""
        deadline = time.monotonic() + self.params['wait_timeout']
        while not socket_accepts(socket_path):
            if not any(table.alive(pid) for pid in pids):
                raise KvmhostError('%s (pid %s) ended while waiting for %s' % (name, pids, socket_path))
            if time.monotonic() > deadline:
                raise KvmhostError('%s runs (pid %s) but %s does not answer within %d seconds; see %s'
                                   % (name, pids, socket_path, self.params['wait_timeout'], log_file),
                                   field='socket')
            time.sleep(0.1)
