# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""resource_audit against this machine's libvirt and a real state store."""

from __future__ import annotations

import os
import sqlite3

from kvmhost_testlib import ROOT, recap, run_module, run_playbook


def test_audit_check_apply_idempotent_and_stored(tmp_path, libvirt_conn):
    args = dict(state_db=str(tmp_path / 'state.sqlite3'), instances_path=str(tmp_path), host='kvmhost-test-node')
    checked = run_module('resource_audit', args, check=True, diff=True)
    assert checked['changed'] is True and not os.path.exists(args['state_db'])
    applied = run_module('resource_audit', args)
    assert applied['changed'] is True and applied['audited_at']
    resources = applied['resources']
    assert resources['vcpus'] == libvirt_conn.getInfo()[2]
    assert resources['hypervisor_type'] == 'QEMU'
    assert resources['running_vms'] == len(libvirt_conn.listAllDomains(1))  # VIR_CONNECT_LIST_DOMAINS_ACTIVE
    assert 0 <= resources['memory_mb_used'] <= resources['memory_mb']
    assert resources['local_gb_used'] + resources['free_disk_gb'] <= resources['local_gb'] + 1
    assert resources['cpu_info']['arch'] == 'x86_64' and resources['cpu_info']['features']
    assert applied['messages'] == ['Auditing locally available compute resources for kvmhost-test-node (node: %s)'
                                   % resources['hypervisor_hostname']]
    for check in (True, False):
        again = run_module('resource_audit', args, check=check)
        assert again['changed'] is False, again
        assert again['audited_at'] == applied['audited_at']
    conn = sqlite3.connect(args['state_db'])
    assert conn.execute('SELECT count(*) FROM compute_node_audits').fetchone()[0] == 1
    conn.close()
    assert run_module('resource_audit', dict(args, always_record=True))['changed'] is True


def test_audit_bad_input(tmp_path):
    result = run_module('resource_audit', dict(instances_path='relative', state_db=str(tmp_path / 's')))
    assert result['failed'] is True and result['msg'].startswith('instances_path: must be an absolute path')
    result = run_module('resource_audit', dict(host='../x', instances_path=str(tmp_path), state_db=str(tmp_path / 's')))
    assert result['failed'] is True and result['msg'].startswith('host: must be')


def test_audit_playbook_records_once(tmp_path):
    """playbooks/audit.yml through the controller: the first run records, a rerun on the unchanged host does not."""
    extra = {'kvmhost_state_db': str(tmp_path / 'state.sqlite3'), 'kvmhost_instances_path': str(tmp_path)}
    changed = []
    for dummy in range(2):
        returncode, output = run_playbook(os.path.join(ROOT, 'playbooks', 'audit.yml'), extra)
        assert returncode == 0, output[-3000:]
        assert 'Auditing locally available compute resources for localhost' in output
        changed.append(recap(output)['changed'])
    assert changed == [1, 0]
