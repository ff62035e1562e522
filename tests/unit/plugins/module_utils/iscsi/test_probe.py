# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""probe: is an iSCSI portal there, does it export the target and the LUN, does it take the CHAP credentials?

The TCP probe runs against real sockets on 127.0.0.1 (a listener on a free port, a port bound but not
listening, a listener whose accept queue is full). libiscsi's iscsi-ls and iscsi-inq need a target that
answers, which a unit test does not run, so a fake runner replays their outputs: written with the format
strings of libiscsi 1.19's tools (Debian 12's libiscsi-bin) and the values tgt gives.
tests/integration/test_iscsi_volumes.py runs them against the real tgtd.
"""

from __future__ import annotations

import socket
import sys

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.probe import (
    LibiscsiRunner, chap_environment, check_target_answers, parse_device_type, parse_iscsi_ls,
    portal_text, probe_portal)

IQN = 'iqn.2026-11.test.kvmhost:vol'
OTHER_IQN = 'iqn.2026-11.test.kvmhost:probe'

# iscsi-ls iscsi://127.0.0.1:3260 ("Target:%s Portal:%s" per SendTargets address; a target with an IPv4 and
# an IPv6 portal is printed once per portal).
ISCSI_LS = ('Target:%s Portal:127.0.0.1:3260,1\n'
            'Target:%s Portal:[::1]:3260,1\n'
            'Target:%s Portal:127.0.0.1:3260,1\n') % (IQN, IQN, OTHER_IQN)
# iscsi-ls -s: each target followed by its LUNs ("Lun:%-4d Type:%s").
ISCSI_LS_LUNS = ('Target:%s Portal:127.0.0.1:3260,1\n'
                 'Lun:0    Type:STORAGE_ARRAY_CONTROLLER\n'
                 'Lun:1    Type:DIRECT_ACCESS (Size:64M)\n') % IQN
# iscsi-inq iscsi://127.0.0.1:3260/<iqn>/1: the standard INQUIRY data of a tgt disk.
INQ_DISK = '''Peripheral Qualifier:CONNECTED
Peripheral Device Type:DIRECT_ACCESS
Removable:0
Version:5 SPC-3
NormACA:0
HiSup:1
ReponseDataFormat:2
SCCS:1
ACC:0
TPGS:0
3PC:1
Protect:0
EncServ:0
MultiP:0
SYNC:0
CmdQue:1
Vendor:IET
Product:VIRTUAL-DISK
Revision:0001
'''
INQ_CONTROLLER = INQ_DISK.replace('Type:DIRECT_ACCESS', 'Type:STORAGE_ARRAY_CONTROLLER').replace('VIRTUAL-DISK', 'Controller')
TARGET_NOT_FOUND = 'Login Failed. Failed to log in to target. Status: Target not found(515)\n'
AUTHORIZATION_FAILED = 'Login Failed. Failed to log in to target. Status: Authorization failure(514)\n'


@pytest.fixture
def portal():
    """A TCP listener on a free port of 127.0.0.1: (host, port, listener)."""
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen(4)
        listener.settimeout(5)
        yield '127.0.0.1', listener.getsockname()[1], listener


@pytest.fixture
def closed_port():
    """A port of 127.0.0.1 bound but not listening (held, so nothing else takes it): connecting is refused."""
    with socket.socket() as bound:
        bound.bind(('127.0.0.1', 0))
        yield bound.getsockname()[1]


# ---------------------------------------------------------------- portal_text, probe_portal

@pytest.mark.parametrize('host, port, text', [
    ('127.0.0.1', 3260, '127.0.0.1:3260'),
    ('192.0.2.10', 3261, '192.0.2.10:3261'),
    ('iscsi.example', 3260, 'iscsi.example:3260'),
    ('::1', 3260, '[::1]:3260'),
    ('fd00:1:2::10', 860, '[fd00:1:2::10]:860'),
])
def test_portal_text_brackets_only_ipv6(host, port, text):
    assert portal_text(host, port) == text


def test_probe_portal_connects_to_a_listening_portal_and_closes_again(portal):
    host, port, listener = portal
    assert probe_portal(host, port, 2) is None
    accepted, _address = listener.accept()  # the probe's connection reached the listener...
    with accepted:
        accepted.settimeout(5)
        assert accepted.recv(1) == b''  # ...and was closed by it, without sending anything


def test_probe_portal_names_a_refused_portal_and_the_field(closed_port):
    with pytest.raises(KvmhostError) as caught:
        probe_portal('127.0.0.1', closed_port, 2)
    assert caught.value.field == 'target_portal'
    assert str(caught.value) == 'target_portal: cannot connect to portal 127.0.0.1:%d: Connection refused' % closed_port
    with pytest.raises(KvmhostError) as caught:
        probe_portal('127.0.0.1', closed_port, 2, field='volumes[1].target_portal')
    assert caught.value.field == 'volumes[1].target_portal'


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='relies on Linux dropping SYNs to a full queue')
def test_probe_portal_names_a_portal_that_does_not_answer_within_the_timeout():
    # A listener with a backlog of 0 whose one queued connection is never accepted: Linux drops further SYNs,
    # as a portal behind a firewall that drops packets would.
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection(('127.0.0.1', port), 2):
            with pytest.raises(KvmhostError) as caught:
                probe_portal('127.0.0.1', port, 1, field='volume.target_portal')
    assert str(caught.value) == ('volume.target_portal: portal 127.0.0.1:%d did not answer within 1 s (timeout)'
                                 % port)


# ---------------------------------------------------------------- parsing libiscsi's output

def test_parse_iscsi_ls_gives_each_target_once_in_order():
    assert parse_iscsi_ls(ISCSI_LS) == [IQN, OTHER_IQN]


def test_parse_iscsi_ls_skips_lun_lines_and_noise():
    assert parse_iscsi_ls(ISCSI_LS_LUNS) == [IQN]
    assert parse_iscsi_ls('') == []
    assert parse_iscsi_ls('iscsi_discovery failed : Failed to connect\n') == []
    # Only a line that starts with the keyword is a target line.
    assert parse_iscsi_ls(' Target:%s Portal:127.0.0.1:3260,1\nTarget: %s Portal:x\n' % (OTHER_IQN, IQN)) == [IQN]
    assert parse_iscsi_ls('Target:\nTarget:%s Portal:127.0.0.1:3260,1\n' % IQN) == [IQN]  # a bare keyword names nothing


def test_parse_device_type_reads_the_peripheral_device_type():
    assert parse_device_type(INQ_DISK) == 'DIRECT_ACCESS'
    assert parse_device_type(INQ_CONTROLLER) == 'STORAGE_ARRAY_CONTROLLER'
    assert parse_device_type('Peripheral Qualifier:CONNECTED\n') is None
    assert parse_device_type('') is None


# ---------------------------------------------------------------- CHAP credentials

def test_chap_environment_carries_the_credentials_libiscsi_reads():
    assert chap_environment('u', 'secret-pw') == {'LIBISCSI_CHAP_USERNAME': 'u', 'LIBISCSI_CHAP_PASSWORD': 'secret-pw'}
    assert chap_environment('u', 'secret-pw', 'target-user', 'target-pw') == {
        'LIBISCSI_CHAP_USERNAME': 'u', 'LIBISCSI_CHAP_PASSWORD': 'secret-pw',
        'LIBISCSI_CHAP_TARGET_USERNAME': 'target-user', 'LIBISCSI_CHAP_TARGET_PASSWORD': 'target-pw'}


def test_chap_environment_without_a_username_is_empty():
    assert chap_environment(None, None) == {}
    assert chap_environment(None, 'secret-pw') == {}  # a password alone is not sent
    assert chap_environment(None, None, 'target-user', 'target-pw') == {
        'LIBISCSI_CHAP_TARGET_USERNAME': 'target-user', 'LIBISCSI_CHAP_TARGET_PASSWORD': 'target-pw'}


class Module(object):
    """AnsibleModule's run_command, recording its arguments."""

    def __init__(self):
        self.calls = []

    def run_command(self, argv, check_rc=True, environ_update=None):
        self.calls.append((argv, check_rc, environ_update))
        return 0, 'out', ''


def test_libiscsi_runner_passes_the_environment_and_the_c_locale():
    module = Module()
    assert LibiscsiRunner(module).run(['iscsi-ls', 'iscsi://127.0.0.1:3260'], env={'LIBISCSI_CHAP_USERNAME': 'u'}) \
        == (0, 'out', '')
    LibiscsiRunner(module).run(['iscsi-ls', 'iscsi://127.0.0.1:3260'])
    assert module.calls == [
        (['iscsi-ls', 'iscsi://127.0.0.1:3260'], False, {'LIBISCSI_CHAP_USERNAME': 'u', 'LC_ALL': 'C'}),
        (['iscsi-ls', 'iscsi://127.0.0.1:3260'], False, {'LC_ALL': 'C'})]


# ---------------------------------------------------------------- check_target_answers

class FakeLibiscsi(object):
    """Stands in for LibiscsiRunner: iscsi-ls and iscsi-inq need an iSCSI target that answers (tgtd), which unit
    tests do not start; it answers each tool with a recorded (rc, stdout, stderr) and records argv and env."""

    def __init__(self, ls=(0, ISCSI_LS, ''), inq=(0, INQ_DISK, '')):
        self.answers = {'iscsi-ls': ls, 'iscsi-inq': inq}
        self.calls = []

    def run(self, argv, env=None):
        self.calls.append((list(argv), dict(env or {})))
        return self.answers[argv[2]]


def test_a_target_that_answers_gives_its_facts_and_the_password_only_in_the_environment(portal):
    host, port, _listener = portal
    runner = FakeLibiscsi()
    facts = check_target_answers(runner, host, port, IQN, 1, 7, 'u', 'secret-pw')
    assert facts == {'portal': '127.0.0.1:%d' % port, 'iqn': IQN, 'lun': 1, 'exported_targets': [IQN, OTHER_IQN]}
    assert runner.calls == [
        (['timeout', '7', 'iscsi-ls', 'iscsi://127.0.0.1:%d' % port], {}),
        (['timeout', '7', 'iscsi-inq', 'iscsi://127.0.0.1:%d/%s/1' % (port, IQN)],
         {'LIBISCSI_CHAP_USERNAME': 'u', 'LIBISCSI_CHAP_PASSWORD': 'secret-pw'})]
    assert not any('secret-pw' in arg for argv, _env in runner.calls for arg in argv)


def test_a_target_without_chap_is_asked_with_an_empty_environment(portal):
    host, port, _listener = portal
    runner = FakeLibiscsi(inq=(0, 'Inquiry data without a type line\n', ''))
    assert check_target_answers(runner, host, port, OTHER_IQN, 0, 5)['lun'] == 0  # no type printed: not refused
    assert runner.calls[1] == (['timeout', '5', 'iscsi-inq', 'iscsi://127.0.0.1:%d/%s/0' % (port, OTHER_IQN)], {})


def test_a_closed_portal_fails_before_any_tool_runs(closed_port):
    runner = FakeLibiscsi()
    with pytest.raises(KvmhostError) as caught:
        check_target_answers(runner, '127.0.0.1', closed_port, IQN, 1, 2, 'u', 'secret-pw', field='volumes[0]')
    assert caught.value.field == 'volumes[0].target_portal'
    assert 'Connection refused' in str(caught.value) and runner.calls == []


def refusal(portal, runner, username='u', password='secret-pw', field='volume'):
    host, port, _listener = portal
    with pytest.raises(KvmhostError) as caught:
        check_target_answers(runner, host, port, IQN, 1, 5, username, password, field=field)
    return caught.value, port


def test_a_failed_discovery_names_the_portal_and_the_tools_words(portal):
    error, port = refusal(portal, FakeLibiscsi(ls=(1, '', 'iscsi_discovery failed : Failed to log in\n')))
    assert error.field == 'volume.target_portal'
    assert error.msg == ('SendTargets discovery of portal 127.0.0.1:%d failed (rc 1): iscsi_discovery failed : '
                         'Failed to log in' % port)
    # Nothing on stderr: stdout is the explanation.
    error, _port = refusal(portal, FakeLibiscsi(ls=(2, 'Failed to parse URL\n', '')))
    assert error.msg.endswith('failed (rc 2): Failed to parse URL')


def test_a_portal_exporting_nothing_says_so(portal):
    error, port = refusal(portal, FakeLibiscsi(ls=(0, '', '')))
    assert error.field == 'volume.target_iqn'
    assert error.msg == 'portal 127.0.0.1:%d does not export target %s to this host (it exports: nothing)' % (port, IQN)


def test_a_login_to_an_unknown_target_names_the_iqn(portal):
    error, port = refusal(portal, FakeLibiscsi(inq=(1, '', TARGET_NOT_FOUND)), field='volumes[2]')
    assert error.field == 'volumes[2].target_iqn'
    assert error.msg == 'portal 127.0.0.1:%d has no target %s' % (port, IQN)


def test_a_target_that_wants_chap_when_none_is_given_names_auth(portal):
    error, port = refusal(portal, FakeLibiscsi(inq=(1, '', AUTHORIZATION_FAILED)), username=None, password=None)
    assert error.field == 'volume.auth'
    assert error.msg == ('authentication failed: target %s at portal 127.0.0.1:%d requires CHAP credentials (auth)'
                         % (IQN, port))


def test_another_login_failure_is_reported_with_the_password_masked(portal):
    error, port = refusal(portal, FakeLibiscsi(inq=(1, 'Login Failed. iscsi_connect: secret-pw was rejected\n', '')))
    assert error.field == 'volume'
    assert error.msg == ('login to target %s LUN 1 at portal 127.0.0.1:%d failed (rc 1): Login Failed. '
                         'iscsi_connect: ******** was rejected' % (IQN, port))
    assert 'secret-pw' not in str(error)
