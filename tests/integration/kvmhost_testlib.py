# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the collection's modules and playbooks for real from the integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')
COLLECTIONS = os.path.join(ROOT, '.build', 'collections')
TEST_PREFIX = 'kvmhost-test-'


def local_host_inventory(instances_path, state_db, timeline_dir, specs, **variables):
    """The inventory of this machine as the one KVM host (virt_type qemu, the venv's Python), with its instances
    path, state store, timeline directory and ``specs``; ``variables`` adds host variables."""
    return {'all': {
        'children': {'kvm_hosts': {'hosts': {'localhost': None}}},
        'vars': dict({
            'ansible_connection': 'local',
            'ansible_python_interpreter': os.path.join(VENV_BIN, 'python'),
            'kvmhost_virt_type': 'qemu',
            'kvmhost_instances_path': instances_path,
            'kvmhost_state_db': state_db,
            'kvmhost_timeline_dir': timeline_dir,
        }, kvmhost_instances=specs, **variables)}}


def run_module(name, args, check=False, diff=False, timeout=300):
    """Run plugins/modules/<name>.py as Ansible runs it on a host: a JSON args file in, JSON out.

    Returns the result dict (with 'failed' and 'msg' on failure). This is the module's real code,
    arguments and exit path, without the controller: fast enough for many cases per test.
    """
    payload = dict(args)
    payload['_ansible_check_mode'] = check
    payload['_ansible_diff'] = diff
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    process = subprocess.run(
        [sys.executable, '-m', 'ansible_collections.kvmhost.lifecycle.plugins.modules.%s' % name],
        input=json.dumps({'ANSIBLE_MODULE_ARGS': payload}), capture_output=True, text=True, env=env, check=False,
        timeout=timeout, cwd='/')
    try:
        return json.loads(process.stdout)
    except ValueError:
        raise AssertionError('module %s printed no JSON (rc %d): %s %s'
                             % (name, process.returncode, process.stdout, process.stderr))


def playbook_command(playbook, extra_vars=None, check=False, diff=False, inventory=None, verbosity=0, log_path=None):
    """The ansible-playbook command line and environment run_playbook uses (run from ROOT).

    ``verbosity`` adds that many -v; ``log_path`` sets Ansible's own log file (ANSIBLE_LOG_PATH).
    """
    command = [os.path.join(VENV_BIN, 'ansible-playbook'), playbook]
    if inventory:
        command += ['-i', str(inventory)]
    if extra_vars:
        command += ['-e', json.dumps(extra_vars)]
    if check:
        command.append('--check')
    if diff:
        command.append('--diff')
    if verbosity:
        command.append('-' + 'v' * verbosity)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_FORCE_COLOR='0')
    if log_path:
        env['ANSIBLE_LOG_PATH'] = str(log_path)
    return command, env


def run_playbook(playbook, extra_vars=None, check=False, diff=False, inventory=None, timeout=900, verbosity=0,
                 log_path=None):
    """Run ansible-playbook from the repository root; return (returncode, combined output)."""
    command, env = playbook_command(playbook, extra_vars, check, diff, inventory, verbosity, log_path)
    process = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout,
                             check=False)
    return process.returncode, process.stdout + process.stderr


def start_playbook(playbook, output, extra_vars=None, inventory=None):
    """Start ansible-playbook as run_playbook does, in a session (and process group) of its own, without
    waiting; its combined output goes to the open file ``output``. Returns the Popen: stop it with
    os.killpg(process.pid, signal): that group holds the playbook and the modules it runs (async jobs
    daemonize into sessions of their own and outlive it).
    """
    command, env = playbook_command(playbook, extra_vars, inventory=inventory)
    return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                            start_new_session=True)


def recap(output):
    """The PLAY RECAP counters of the one host, as a dict of ints."""
    for line in output.splitlines():
        if line.startswith('localhost') and 'ok=' in line:
            return dict((key, int(value)) for key, value in
                        (item.split('=') for item in line.split(':', 1)[1].split()))
    raise AssertionError('no PLAY RECAP line in:\n' + output[-3000:])


def host_pids(process_name):
    """Pids of the live processes named exactly ``process_name``."""
    return [int(pid) for pid in subprocess.run(['pgrep', '-x', process_name], capture_output=True, text=True,
                                               check=False).stdout.split()]


def restart_host_daemon(daemon, stop_timeout, kill_after=False):
    """Stop one of the host's daemons (started by the kvm_host role; ``daemon`` is its host_daemon arguments) by
    its pid, SIGTERM, and start it again with host_daemon, as host.yml would. One still alive ``stop_timeout``
    seconds later gets SIGKILL when ``kill_after``, and fails the test otherwise."""
    name = daemon.get('process_name') or daemon['name']
    pids = host_pids(name)
    assert len(pids) == 1, (name, pids)
    os.kill(pids[0], signal.SIGTERM)
    deadline = time.monotonic() + stop_timeout
    while os.path.exists('/proc/%d' % pids[0]):
        if time.monotonic() > deadline:
            assert kill_after, '%s %d did not stop within %d s' % (name, pids[0], stop_timeout)
            os.kill(pids[0], signal.SIGKILL)
            deadline, kill_after = time.monotonic() + 10, False
        time.sleep(0.05)
    started = run_module('host_daemon', daemon)
    assert started['changed'] is True and not started.get('failed'), started
    assert host_pids(name) and host_pids(name) != pids
