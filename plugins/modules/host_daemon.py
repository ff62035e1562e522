#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: host_daemon
short_description: Start a host daemon where no service manager runs
version_added: 0.1.0
description:
  - Ensures a daemon (libvirtd, virtlogd, ovsdb-server, ovs-vswitchd, tgtd, iscsid) runs on a host without
    systemd, such as a container or a machine whose PID 1 is not an init.
  - The daemon counts as running when a live process named O(process_name) exists; then nothing is started,
    so the module never starts a second copy. Otherwise it starts O(command) and waits until the process
    exists and, when O(socket) is given, until that Unix socket accepts connections.
  - With O(forks=false) the program stays in the foreground; the module starts it in a session of its own
    with its output appended to O(log_file). With O(forks=true) the program daemonizes itself and the module
    waits for the command to return.
  - On hosts with systemd use M(ansible.builtin.service) instead; the C(kvm_host) role chooses.
author:
  - kvmhost.lifecycle developers (@kvmhost)
extends_documentation_fragment:
  - kvmhost.lifecycle.attributes
options:
  name:
    description: A short name for the daemon, used in messages and the default log file name.
    type: str
    required: true
  command:
    description: The program and its arguments, as a list (never run through a shell).
    type: list
    elements: str
    required: true
  process_name:
    description:
      - The process name (C(/proc/PID/comm)) that shows the daemon runs. Defaults to the base name of the
        first element of O(command); set it when a wrapper such as C(catatonit) starts the daemon.
    type: str
  forks:
    description: Whether the program daemonizes itself (V(true)) or stays in the foreground (V(false)).
    type: bool
    default: false
  socket:
    description: A Unix socket the daemon listens on; the module waits until it accepts connections.
    type: path
  runtime_dirs:
    description: Directories the daemon needs before it starts (created with mode C(0755) when missing).
    type: list
    elements: path
    default: []
  log_file:
    description: Where a foreground daemon's output goes. Defaults to C(/var/log/kvmhost/<name>.log).
    type: path
  wait_timeout:
    description: Seconds to wait for the process (and socket) to appear. Range V(0)..V(3600).
    type: int
    default: 30
  state:
    description: Only V(started) is supported; stopping is left to the host's administrator.
    type: str
    choices: [started]
    default: started
'''

EXAMPLES = r'''
- name: Run libvirtd under a subreaper, so QEMU processes are reaped at once
  kvmhost.lifecycle.host_daemon:
    name: libvirtd
    command: [catatonit, --, libvirtd]
    process_name: libvirtd
    socket: /run/libvirt/libvirt-sock
    runtime_dirs: [/run/libvirt]

- name: Start ovsdb-server, which daemonizes itself
  kvmhost.lifecycle.host_daemon:
    name: ovsdb-server
    command: [ovsdb-server, --remote=punix:/var/run/openvswitch/db.sock, --pidfile, --detach, --log-file]
    forks: true
    socket: /var/run/openvswitch/db.sock
'''

RETURN = r'''
actions:
  description: What was done (or, in check mode, would be done), in order; empty when nothing had to change.
  returned: always
  type: list
  elements: str
pids:
  description: The pids of the running daemon's processes.
  returned: always
  type: list
  elements: int
  sample: [4242]
process_name:
  description: The process name looked for.
  returned: always
  type: str
  sample: libvirtd
log_file:
  description: The log file of a foreground daemon.
  returned: always
  type: str
  sample: /var/log/kvmhost/libvirtd.log
'''

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import run_module
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.host.host_daemon import DaemonDriver

ARGUMENT_SPEC = dict(
    name=dict(type='str', required=True),
    command=dict(type='list', elements='str', required=True),
    process_name=dict(type='str'),
    forks=dict(type='bool', default=False),
    socket=dict(type='path'),
    runtime_dirs=dict(type='list', elements='path', default=[]),
    log_file=dict(type='path'),
    wait_timeout=dict(type='int', default=30),
    state=dict(type='str', choices=['started'], default='started'),
)


def main():
    run_module(DaemonDriver, ARGUMENT_SPEC)


if __name__ == '__main__':
    main()
