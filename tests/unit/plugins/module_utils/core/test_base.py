# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""base: what every module shares; here, dropping the CHAP passwords from the parameters a module exits with, and
the one way a driver runs (open, run, close)."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import ModuleDriver, forget_passwords
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError


class Module(object):
    """The one attribute of AnsibleModule that forget_passwords uses: the values Ansible masks."""

    def __init__(self, *values):
        self.no_log_values = set(values)


def volume(password, transport='qemu'):
    return {'id': 'v1', 'transport': transport, 'auth': {'method': 'CHAP', 'username': 'u', 'password': password}}


def test_every_password_of_every_spec_is_dropped_and_unmasked():
    params = {'instances': [{'uuid': 'a', 'volumes': [volume('secret-one-1'), volume('secret-two-2', 'host')]},
                            {'uuid': 'b', 'volumes': []}, None, 'not a spec'],
              'volume': volume('secret-three'), 'other': 'p'}
    module = Module('secret-one-1', 'secret-two-2', 'secret-three', 'unrelated')
    kept = copy.deepcopy(params)
    forget_passwords(module, params)
    assert [v['auth']['password'] for v in params['instances'][0]['volumes']] == [None, None]
    assert params['volume']['auth'] == {'method': 'CHAP', 'username': 'u', 'password': None}
    assert module.no_log_values == {'unrelated'}
    assert 'secret' not in repr(params)
    # A validated copy made before keeps them, for the step that needs them.
    assert kept['volume']['auth']['password'] == 'secret-three'


def test_specs_without_passwords_are_left_as_they_are():
    params = {'instances': [{'uuid': 'a', 'volumes': [{'id': 'v1', 'auth': None}, {'id': 'v2'}]}]}
    before = copy.deepcopy(params)
    module = Module('x')
    forget_passwords(module, params)
    assert params == before and module.no_log_values == {'x'}


class Calls(ModuleDriver):
    """Says which of open, run and close were called, in order."""

    def __init__(self, module, calls, fail=False):
        super().__init__(module)
        self.calls, self.fail = calls, fail

    def open(self):
        self.calls.append('open')

    def run(self):
        self.calls.append('run')
        if self.fail:
            raise KvmhostError('the run failed')
        return {'changed': False}

    def close(self):
        self.calls.append('close')


class DriverModule(object):
    params, check_mode, _diff = {}, False, False


def test_a_driver_runs_between_open_and_close_and_close_follows_a_failure_too():
    calls = []
    assert Calls(DriverModule(), calls).outcome() == {'changed': False}
    assert calls == ['open', 'run', 'close']
    calls = []
    with pytest.raises(KvmhostError, match='the run failed'):
        Calls(DriverModule(), calls, fail=True).outcome()
    assert calls == ['open', 'run', 'close']
