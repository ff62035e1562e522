# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""errors: KvmhostError's message, field and details, and what the one error path (base.run_module) makes of
them. run_module builds a real AnsibleModule from module arguments given through ansible-core's
ansible.module_utils.testing.patch_module_args; its fail_json prints the result as JSON and exits, and the test
reads that JSON as the controller would."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import ModuleDriver, run_module
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError

SPEC = dict(name=dict(type='str', required=True), password=dict(type='str', no_log=True))


def test_message_field_and_details_are_kept_as_given():
    error = KvmhostError('must be a UUID', field='uuid', value='nope', refusals=['a', 'b'])
    assert (error.msg, error.field) == ('must be a UUID', 'uuid')
    assert error.details == {'value': 'nope', 'refusals': ['a', 'b']}
    assert error.args == ('must be a UUID',)
    assert isinstance(error, Exception)


def test_the_text_names_the_field_first():
    assert str(KvmhostError('must be a UUID', field='uuid')) == 'uuid: must be a UUID'
    assert str(KvmhostError('must be 68..65535', field='vif.mtu')) == 'vif.mtu: must be 68..65535'


def test_the_field_is_not_repeated_when_the_message_starts_with_it():
    error = KvmhostError('state_db: directory /nope does not exist', field='state_db')
    assert str(error) == 'state_db: directory /nope does not exist'


def test_a_message_that_starts_with_the_field_as_a_word_is_not_prefixed():
    assert str(KvmhostError('volume v1 is listed twice', field='volume')) == 'volume v1 is listed twice'
    assert str(KvmhostError('instances[2] has no uuid', field='instances')) == 'instances[2] has no uuid'


def test_a_message_that_only_starts_with_the_fields_letters_is_prefixed():
    assert str(KvmhostError('uuids must be a list', field='uuid')) == 'uuid: uuids must be a list'
    assert str(KvmhostError('port must be 1..65535, got 0', field='p')) == 'p: port must be 1..65535, got 0'


def test_without_a_field_the_text_is_the_message_and_details_are_empty():
    error = KvmhostError('ip link set dev x up failed (rc 1): Cannot find device "x"')
    assert error.field is None and error.details == {}
    assert str(error) == 'ip link set dev x up failed (rc 1): Cannot find device "x"'
    assert str(KvmhostError('no such file', field='')) == 'no such file'


# ---------------------------------------------------------------- through base.run_module

class Raising(ModuleDriver):
    """A driver that fails as the error of the test says."""

    error = RuntimeError('the test gives the error')

    def run(self):
        raise self.error


def module_result(capsys, error, args=None):
    """Run the driver through run_module; return its exit code and the JSON result it printed."""
    driver_class = type('Driver', (Raising,), {'error': error})
    with patch_module_args(args or {'name': 'web-1'}):
        with pytest.raises(SystemExit) as exited:
            run_module(driver_class, SPEC)
    return exited.value.code, json.loads(capsys.readouterr().out)


def test_run_module_fails_with_the_text_and_every_detail(capsys):
    error = KvmhostError('3 of 4 instances are refused', field='instances', refusals=['web-1: x', 'web-2: y'],
                         rc=2, command=['ip', 'link', 'show'])
    code, result = module_result(capsys, error)
    assert code == 1
    assert result['failed'] is True
    assert result['msg'] == 'instances: 3 of 4 instances are refused'
    assert result['refusals'] == ['web-1: x', 'web-2: y']
    assert (result['rc'], result['command']) == (2, ['ip', 'link', 'show'])
    # The field is in the message only; it is not a key of the result.
    assert 'field' not in result and 'changed' not in result


def test_run_module_fails_with_only_msg_when_there_are_no_details(capsys):
    code, result = module_result(capsys, KvmhostError('instance has no record', field='uuid'))
    assert code == 1
    assert result['msg'] == 'uuid: instance has no record'
    assert set(result) == {'failed', 'msg', 'invocation'}
    assert result['invocation'] == {'module_args': {'name': 'web-1', 'password': None}}


def test_a_detail_holding_a_no_log_value_is_masked_in_the_failure(capsys):
    # Details are "never secrets"; if one slips through, Ansible's masking of no_log values still applies.
    error = KvmhostError('login failed for secret-pw-1', field='auth', stderr='CHAP secret secret-pw-1 refused')
    _code, result = module_result(capsys, error, {'name': 'web-1', 'password': 'secret-pw-1'})
    assert 'secret-pw-1' not in json.dumps(result)
    assert result['msg'] == 'auth: login failed for ********'
    assert result['stderr'] == 'CHAP secret ******** refused'


def test_an_error_that_is_not_a_kvmhost_error_is_not_turned_into_a_failure(capsys):
    # Only KvmhostError and the known library errors are the module's failures; a bug stays a traceback.
    with pytest.raises(ValueError, match='a bug'):
        module_result(capsys, ValueError('a bug'))
    assert capsys.readouterr().out == ''
