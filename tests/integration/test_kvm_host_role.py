# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kvm_host role and host_daemon against this machine's real daemons.

`make test` runs `make setup` first, which applies playbooks/host.yml: here the role must find
everything in place (check mode and apply both report no change) and the daemons must answer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from kvmhost_testlib import ROOT, TEST_PREFIX, recap, run_module, run_playbook


@pytest.mark.parametrize('check', [True, False], ids=['check', 'apply'])
def test_host_playbook_is_idempotent(check):
    returncode, output = run_playbook(os.path.join(ROOT, 'playbooks', 'host.yml'), check=check, diff=True)
    assert returncode == 0, output[-3000:]
    assert recap(output)['changed'] == 0, output[-5000:]


def test_daemons_answer(libvirt_conn):
    assert libvirt_conn.getVersion() > 0
    assert libvirt_conn.getType() == 'QEMU'
    bridges = json.loads(subprocess.run(['ovs-vsctl', '--format=json', '--columns=name,datapath_type', 'find',
                                         'Bridge', 'name=br-int'], check=True, capture_output=True,
                                        text=True).stdout)['data']
    expected = 'system' if os.path.exists('/sys/module/openvswitch') else 'netdev'
    assert bridges == [['br-int', expected]]
    portals = subprocess.run(['tgtadm', '--lld', 'iscsi', '--mode', 'portal', '--op', 'show'], check=True,
                             capture_output=True, text=True).stdout
    assert '127.0.0.1:3260' in portals


def test_the_modules_run_on_the_host_s_own_python(tmp_path):
    """A remote host runs the modules with its /usr/bin/python3, not the controller's venv: the role installs
    the libvirt and lxml bindings they need there. instance_info and domain_xml (check mode) run with it."""
    if not os.path.exists('/usr/bin/python3'):
        pytest.skip('no /usr/bin/python3 here')
    playbook = tmp_path / 'own-python.yml'
    state_db = tmp_path / 'state.sqlite3'
    playbook.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'kvmhost.lifecycle.instance_info': {'state_db': str(state_db)}, 'register': 'info'},
        {'kvmhost.lifecycle.domain_xml': {
            'instance': {'uuid': '7e57f300-0000-4000-8000-000000000001', 'name': TEST_PREFIX + 'own-python',
                         'flavor': {'vcpus': 1, 'memory_mb': 128, 'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0},
                         'image': {'id': 'x', 'source': '/nonexistent', 'checksum': 'sha256:' + '0' * 64},
                         'vifs': [], 'volumes': []},
            'local_id': 7, 'virt_type': 'qemu', 'state_db': str(state_db)}, 'check_mode': True, 'register': 'xml'},
        {'ansible.builtin.assert': {'that': ['info.instances | length == 0', "'<domain' in xml.xml"]}}]}]))
    returncode, output = run_playbook(str(playbook), {'ansible_python_interpreter': '/usr/bin/python3',
                                                      'ansible_connection': 'local'},
                                      inventory='localhost,')
    assert returncode == 0 and 'All assertions passed' in output, output[-3000:]


def test_libvirtd_runs_once_under_a_subreaper():
    pids = subprocess.run(['pgrep', '-x', 'libvirtd'], capture_output=True, text=True, check=False).stdout.split()
    assert len(pids) == 1
    if os.path.exists('/run/systemd/system'):
        pytest.skip('systemd runs libvirtd here and reaps QEMU itself')
    with open('/proc/%s/stat' % pids[0]) as handle:
        parent = handle.read().rsplit(')', 1)[1].split()[1]
    with open('/proc/%s/comm' % parent) as handle:
        assert handle.read().strip() == 'catatonit'


def test_host_daemon_finds_the_running_libvirtd_and_starts_no_second():
    args = dict(name='libvirtd', command=['catatonit', '--', 'libvirtd'], process_name='libvirtd',
                socket='/run/libvirt/libvirt-sock')
    before = subprocess.run(['pgrep', '-x', 'libvirtd'], capture_output=True, text=True, check=False).stdout.split()
    for check in (True, False):
        result = run_module('host_daemon', args, check=check, diff=True)
        assert result['changed'] is False, result
        assert result['pids'] == [int(pid) for pid in before]


@pytest.fixture
def test_daemon_binary(tmp_path):
    """A copy of sleep under a test name: a foreground 'daemon' whose process name nothing else has."""
    path = tmp_path / (TEST_PREFIX + 'dmn')
    shutil.copy('/bin/sleep', str(path))
    started = []
    yield str(path), started
    for pid in started:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def test_host_daemon_starts_a_foreground_daemon_once(test_daemon_binary, tmp_path):
    binary, started = test_daemon_binary
    name = os.path.basename(binary)
    args = dict(name=name, command=[binary, '300'], log_file=str(tmp_path / 'daemon.log'), wait_timeout=10)
    checked = run_module('host_daemon', args, check=True, diff=True)
    assert checked['changed'] is True and checked['pids'] == []
    assert checked['diff'] == {'before': {'running': False, 'pids': []}, 'after': {'running': True}}
    first = run_module('host_daemon', args)
    started.extend(first['pids'])
    assert first['changed'] is True and len(first['pids']) == 1
    # It outlives the module run, in a session of its own.
    time.sleep(0.2)
    assert os.getsid(first['pids'][0]) == first['pids'][0]
    for check in (True, False):
        again = run_module('host_daemon', args, check=check)
        assert again['changed'] is False and again['pids'] == first['pids']


def test_host_daemon_reports_a_daemon_that_dies_at_once(tmp_path):
    log_file = tmp_path / 'false.log'
    binary = tmp_path / (TEST_PREFIX + 'false')
    shutil.copy('/bin/false', str(binary))
    result = run_module('host_daemon', dict(name='false', command=[str(binary)], log_file=str(log_file),
                                            wait_timeout=5))
    assert result['failed'] is True
    assert 'exited with 1 right after it started' in result['msg']


def test_host_daemon_bad_name_fails_before_starting_anything(tmp_path):
    result = run_module('host_daemon', dict(name='../evil', command=['/bin/true']))
    assert result['failed'] is True and result['msg'].startswith('name: must be')


def test_host_daemon_negative_wait_timeout_fails_before_starting_anything(test_daemon_binary, tmp_path):
    binary, _started = test_daemon_binary
    result = run_module('host_daemon', dict(name=os.path.basename(binary), command=[binary, '300'],
                                            log_file=str(tmp_path / 'daemon.log'), wait_timeout=-1))
    assert result['failed'] is True and result['msg'] == 'wait_timeout: must be 0..3600 seconds, got -1'
    assert not os.path.exists(str(tmp_path / 'daemon.log'))  # nothing was started
