# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_attach with transport host, replaying iscsiadm outputs and exit codes through the runner seam.

Why a fake: this machine's kernel has no iscsi_tcp module, so iscsiadm cannot log in (and iscsid does not run);
tests/integration/test_iscsi_volumes.py::test_host_transport runs where /sys/module/iscsi_tcp exists.
golden/iscsiadm/node_show.txt is a real ``iscsiadm -m node -T IQN -p PORTAL`` (open-iscsi 2.1.8, after
``--op new``); session.txt and session_P3.txt follow open-iscsi 2.1.8's formats for ``-m session`` and
``-m session -r SID -P 3`` (written by hand: no session can exist here). Exit codes from include/iscsi_err.h.
"""

from __future__ import annotations

import copy
import os

import pytest

pytest.importorskip('libvirt')
pytest.importorskip('lxml')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.host_transport import (  # noqa: E402
    node_settings, parse_session_detail, parse_sessions)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.iscsi_attach import IscsiAttachDriver  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden', 'iscsiadm')
IQN = 'iqn.2026-11.test.kvmhost:vol'
VOLUME_ID = 'vol-1'
DEVICE = '/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-%s-lun-1' % IQN


def recorded(name):
    with open(os.path.join(GOLDEN, name)) as handle:
        return handle.read()


NODE_SHOW = recorded('node_show.txt').replace('iqn.2026-11.test.kvmhost:nodeprobe', IQN)
NODE_READY = (NODE_SHOW.replace('node.startup = manual', 'node.startup = automatic')
              .replace('node.session.auth.authmethod = None', 'node.session.auth.authmethod = CHAP')
              .replace('node.session.auth.username = <empty>', 'node.session.auth.username = u'))


def test_parsers_on_recorded_output():
    sessions = parse_sessions(recorded('session.txt'))
    assert sessions[0] == {'sid': '3', 'portal': '127.0.0.1:3260', 'tpgt': '1', 'iqn': IQN}
    assert len(sessions) == 2
    assert parse_session_detail(recorded('session_P3.txt')) == (5, {1: 'sdb', 2: 'sdc'})
    settings = node_settings(NODE_SHOW)
    assert settings['node.session.scan'] == 'manual' and settings['node.startup'] == 'manual'


class FakeIscsiadm(object):
    """Answers iscsiadm calls from a table of (argument tuple prefix -> (rc, out, err)) and a list of devices."""

    def __init__(self, answers, devices=(), appear_after=None, password=None):
        self.answers = answers
        self.devices = set(devices)
        self.appear_after = appear_after  # the device appears after this many scans
        self.password = password
        self.calls, self.writes, self.sleeps, self.flushed = [], [], [], []

    def __call__(self, module):
        return self

    def iscsiadm(self, args):
        self.calls.append(list(args))
        key = ' '.join(args)
        answer = next((answer for pattern, answer in self.answers if key.endswith(pattern)), (0, '', ''))
        if args[-1] == '--login' and answer[0] in (0, 15):  # logged in: the session now exists
            self.answers = [a for a in self.answers if a[0] != '-m session'] + [SESSION]
        return answer

    def exists(self, path):
        return path in self.devices

    def realpath(self, path):
        return '/dev/sdb'

    def write(self, path, text):
        self.writes.append((path, text))
        if path.endswith('/scan') and self.appear_after is not None:
            self.appear_after -= 1
            if self.appear_after <= 0:
                self.devices.add(DEVICE)

    def sleep(self, seconds):
        self.sleeps.append(seconds)

    def flush(self, device):
        self.flushed.append(device)

    def node_password(self, iqn, host, port):
        return self.password

    def set_node_password(self, iqn, host, port, password):
        self.password = password


class FakeModule(object):
    def __init__(self, params, check_mode=False):
        self.params, self.check_mode, self._diff = params, check_mode, True
        self.no_log_values = set()


def volume(**overrides):
    spec = {'id': VOLUME_ID, 'device_name': 'vdb', 'target_portal': '127.0.0.1:3260', 'target_iqn': IQN,
            'target_lun': 1, 'transport': 'host', 'auth': {'method': 'CHAP', 'username': 'u', 'password': 'pw'}}
    spec.update(overrides)
    return spec


def drive(fake, check_mode=False, **params):
    full = dict(libvirt_uri='test:///default', state='attached', domain_uuid=None, disk_cache='none', timeout=5,
                scan_tries=5, volume=volume())
    full.update(copy.deepcopy(params))

    class Driver(IscsiAttachDriver):
        iscsiadm_runner_class = fake

    return Driver(FakeModule(full, check_mode)).outcome()


NO_SESSION = ('-m session', (21, '', 'iscsiadm: No active sessions.\n'))
NO_NODE = ('-p 127.0.0.1:3260', (21, '', 'iscsiadm: No records found\n'))
SESSION = ('-m session', (0, recorded('session.txt'), ''))
DETAIL = ('-P 3', (0, recorded('session_P3.txt'), ''))


def test_fresh_attach_as_os_brick_does_it():
    fake = FakeIscsiadm([NO_SESSION, NO_NODE, DETAIL], appear_after=2)
    checked = drive(fake, check_mode=True)
    assert checked['changed'] and fake.password is None and all(c[-1] != '--login' for c in fake.calls)
    fake.calls = []
    result = drive(fake)
    node = ['-m', 'node', '-T', IQN, '-p', '127.0.0.1:3260']
    changes = [call for call in fake.calls if call[:2] == ['-m', 'node'] and len(call) > 6]
    assert changes == [node + ['--op', 'new'], node + ['--op', 'update', '-n', 'node.session.scan', '-v', 'manual'],
                       node + ['--op', 'update', '-n', 'node.session.auth.authmethod', '-v', 'CHAP'],
                       node + ['--op', 'update', '-n', 'node.session.auth.username', '-v', 'u'],
                       node + ['--login'],
                       node + ['--op', 'update', '-n', 'node.startup', '-v', 'automatic']]
    assert fake.password == 'pw' and not any('pw' in call for call in fake.calls)  # never on a command line
    assert fake.writes == [('/sys/class/scsi_host/host5/scan', '- - 1')] * 2 and fake.sleeps == [1, 4]
    assert result['device_path'] == DEVICE and result['host_volume_paths'] == {VOLUME_ID: DEVICE}
    assert 'pw' not in str(result) and '<source dev="%s"/>' % DEVICE in result['disk_xml']


def test_already_logged_in_exit_code_15_is_success():
    fake = FakeIscsiadm([NO_SESSION, ('-p 127.0.0.1:3260', (0, NODE_READY, '')), ('--login', (15, '', 'exists')),
                         DETAIL], appear_after=1, password='pw')
    result = drive(fake)
    assert result['changed'] and result['device_path'] == DEVICE


def test_attached_volume_is_unchanged():
    fake = FakeIscsiadm([SESSION, ('-p 127.0.0.1:3260', (0, NODE_READY, '')), DETAIL], devices=[DEVICE],
                        password='pw')
    result = drive(fake)
    assert result['changed'] is False and result['actions'] == []


def test_wrong_chap_credentials():
    fake = FakeIscsiadm([NO_SESSION, NO_NODE, ('--login', (24, '', 'iscsiadm: Login failed: pw'))])
    with pytest.raises(KvmhostError) as info:
        drive(fake)
    assert str(info.value).startswith('volume.auth: authentication failed') and 'pw' not in str(info.value)


def test_login_timeout_names_the_portal():
    fake = FakeIscsiadm([NO_SESSION, NO_NODE, ('--login', (8, '', 'iscsiadm: connection timed out'))])
    with pytest.raises(KvmhostError, match=r'^volume.target_portal: login of .* at portal 127.0.0.1:3260 timed out'):
        drive(fake)


def test_device_never_appears():
    fake = FakeIscsiadm([NO_SESSION, NO_NODE, DETAIL])
    with pytest.raises(KvmhostError) as info:
        drive(fake, scan_tries=3)
    assert str(info.value).startswith('volume.target_lun') and 'after 3 scans' in str(info.value)
    assert fake.sleeps == [1, 4, 9]


def test_detach_keeps_the_session_while_another_lun_is_in_use():
    fake = FakeIscsiadm([SESSION, ('-p 127.0.0.1:3260', (0, NODE_READY, '')), DETAIL], devices=[DEVICE])
    result = drive(fake, state='detached')
    assert fake.flushed == ['/dev/sdb'] and fake.writes == [('/sys/block/sdb/device/delete', '1')]
    assert not any(call[-1] in ('--logout', 'delete') for call in fake.calls)
    assert result['diff']['after']['session'] is True


def test_detach_last_lun_logs_out_and_deletes_the_node():
    detail = recorded('session_P3.txt').split('\t\tscsi5 Channel 00 Id 0 Lun: 2')[0]
    fake = FakeIscsiadm([SESSION, ('-p 127.0.0.1:3260', (0, NODE_READY, '')), ('-P 3', (0, detail, ''))],
                        devices=[DEVICE])
    drive(fake, state='detached')
    node = ['-m', 'node', '-T', IQN, '-p', '127.0.0.1:3260']
    assert [call for call in fake.calls if call[:2] == ['-m', 'node'] and len(call) > 6] == [
        node + ['--op', 'update', '-n', 'node.startup', '-v', 'manual'], node + ['--logout'],
        node + ['--op', 'delete']]
    assert fake.flushed == ['/dev/sdb']


def test_detach_when_nothing_is_there():
    fake = FakeIscsiadm([NO_SESSION, NO_NODE])
    assert drive(fake, state='detached')['changed'] is False
