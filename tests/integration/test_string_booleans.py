# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every user boolean of the roles works given as a string with -e name=value (which is how -e key=value
passes it), through the real playbooks against this machine in check mode: nothing on the host changes.
The lifecycle playbooks run with an empty kvmhost_instances, so no guest is touched."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from kvmhost_testlib import ROOT, VENV_BIN, recap

PLAYBOOKS = {
    'host.yml': ('kvm_host', {}),
    'boot.yml': ('instance_boot', {'kvmhost_instances': []}),
    'rebuild.yml': ('instance_rebuild', {'kvmhost_instances': []}),
    'delete.yml': ('instance_delete', {'kvmhost_instances': [], 'kvmhost_delete_uuids': 'all'}),
    'migrate.yml': ('instance_migrate', {'kvmhost_instances': [], 'kvmhost_migrations': []}),
}


def bool_options(role):
    with open(os.path.join(ROOT, 'roles', role, 'meta', 'argument_specs.yml')) as handle:
        options = yaml.safe_load(handle)['argument_specs']['main']['options']
    return sorted(name for name, option in options.items() if option.get('type') == 'bool')


@pytest.mark.parametrize('values', [('false', 'yes'), ('no', 'true')], ids=['false-yes', 'no-true'])
@pytest.mark.parametrize('playbook', sorted(PLAYBOOKS))
def test_boolean_strings_from_the_command_line(playbook, values):
    role, extra = PLAYBOOKS[playbook]
    names = bool_options(role)
    command = [os.path.join(VENV_BIN, 'ansible-playbook'), os.path.join(ROOT, 'playbooks', playbook), '--check',
               '-e', json.dumps(extra)]
    for index, name in enumerate(names):
        command += ['-e', '%s=%s' % (name, values[index % 2])]  # key=value: a string, as a user types it
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    process = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600, check=False)
    output = process.stdout + process.stderr
    assert 'Conditionals must have a boolean result' not in output, output[-3000:]
    assert process.returncode == 0, output[-3000:]
    counters = recap(output)
    assert counters['failed'] == 0 and counters['changed'] == 0, output[-3000:]
    assert role == 'instance_delete' or names  # the roles with booleans were given them all
