# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding running daemons in /proc. A fake /proc tree stands in for the machine's: these tests must
not depend on which daemons happen to run (the integration tests use the real ones)."""

from __future__ import annotations

import socket

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.host.host_daemon import ProcessTable, socket_accepts


def write_process(root, pid, comm, state='S'):
    directory = root / str(pid)
    directory.mkdir()
    (directory / 'stat').write_text('%d (%s) %s 1 %d 0 0\n' % (pid, comm, state, pid))


def test_live_processes_are_found_by_comm_and_zombies_are_not(tmp_path):
    write_process(tmp_path, 10, 'libvirtd')
    write_process(tmp_path, 11, 'libvirtd', state='Z')
    write_process(tmp_path, 12, 'virtlogd')
    write_process(tmp_path, 13, 'odd) name (x')
    (tmp_path / 'self').mkdir()
    table = ProcessTable(str(tmp_path))
    assert table.pids_named('libvirtd') == [10]
    assert table.pids_named('odd) name (x') == [13]
    assert table.pids_named('tgtd') == []
    assert table.alive(10) and not table.alive(11) and not table.alive(99)


def test_long_names_match_the_kernels_15_characters(tmp_path):
    write_process(tmp_path, 20, 'a-very-long-dae')
    assert ProcessTable(str(tmp_path)).pids_named('a-very-long-daemon-name') == [20]


def test_socket_accepts_only_a_listening_socket(tmp_path):
    path = str(tmp_path / 'sock')
    assert not socket_accepts(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    assert not socket_accepts(path)  # bound, not listening
    server.listen(1)
    try:
        assert socket_accepts(path)
    finally:
        server.close()
