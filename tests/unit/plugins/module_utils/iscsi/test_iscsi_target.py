# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_target: the tgtadm parser on recorded output, the persisted configuration, and plans against a fake tgt.

golden/tgtadm/*.txt were recorded from tgt 1.0.85 (Debian 12) on this machine: a target with one file LUN, an ACL,
an incoming and an outgoing CHAP account; and the same target while libiscsi's iscsi-perf was logged in.
tests/integration/test_iscsi_volumes.py runs the module against the real tgtd.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.iscsi_target import (
    TGTADM_TIMEOUT, IscsiTargetDriver, TgtRunner, check_target_spec, lowest_free_tid, parse_account_list, parse_size, parse_tgtadm_show,
    persisted_password, render_config)

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden', 'tgtadm')
IQN = 'iqn.2026-11.test.kvmhost:probe'


def recorded(name):
    with open(os.path.join(GOLDEN, name)) as handle:
        return handle.read()


def test_parse_recorded_show_with_chap_and_acl():
    targets = parse_tgtadm_show(recorded('tgtadm_show_chap.txt'))
    assert list(targets) == [IQN]
    target = targets[IQN]
    assert target['tid'] == 9
    assert target['luns'] == {0: None, 1: '/tmp/iscsi_dev/b1'}
    assert target['incoming'] == ['u1'] and target['outgoing'] == ['o1']
    assert target['acl'] == ['127.0.0.1'] and target['sessions'] == 0


def test_parse_recorded_show_with_a_session():
    target = parse_tgtadm_show(recorded('tgtadm_show_session.txt'))[IQN]
    assert target['sessions'] == 1 and target['luns'][1] == '/tmp/iscsi_dev/b1'


def test_parse_several_targets_and_empty_output():
    text = recorded('tgtadm_show_chap.txt')
    second = text.replace('Target 9: ' + IQN, 'Target 2: iqn.2026-11.test.kvmhost:other')
    targets = parse_tgtadm_show(text + second)
    assert sorted(t['tid'] for t in targets.values()) == [2, 9]
    assert parse_tgtadm_show('') == {}
    assert lowest_free_tid(targets) == 1
    assert lowest_free_tid({'a': {'tid': 1}, 'b': {'tid': 3}}) == 2


def test_parse_account_list():
    assert parse_account_list('Account list:\n    o1\n    u1\n') == ['o1', 'u1']
    assert parse_account_list('') == []


@pytest.mark.parametrize('value, expected', [('16M', 16 << 20), ('1G', 1 << 30), ('1GiB', 1 << 30), ('4096', 4096),
                                             ('2k', 2048), (1024, 1024)])
def test_parse_size(value, expected):
    assert parse_size(value, 'size') == expected


@pytest.mark.parametrize('value', ['ten', '1.5G', '-1G', '100', '0', '', '1P'])
def test_parse_size_refuses(value):
    with pytest.raises(KvmhostError) as info:
        parse_size(value, 'luns[0].size')
    assert str(info.value).startswith('luns[0].size')


def params(tmp_path, **overrides):
    base = dict(iqn='iqn.2026-11.test.kvmhost:unit', state='present', volume_dir=str(tmp_path),
                config_dir=str(tmp_path), luns=[dict(lun=1, path=str(tmp_path / 'v.img'), size='1M')],
                initiator_addresses=['127.0.0.1'], chap_username='u', chap_password='p',
                mutual_chap_username=None, mutual_chap_password=None, force=False)
    base.update(overrides)
    return base


@pytest.mark.parametrize('overrides, field', [
    (dict(iqn='iqn.2026-13.bad'), 'iqn'),
    (dict(iqn='volume-1'), 'iqn'),
    (dict(luns=[dict(lun=0, path='/x', size='1M')]), 'luns[0].lun'),
    (dict(luns=[dict(lun=16384, path='/x', size='1M')]), 'luns[0].lun'),
    (dict(luns=[dict(lun=1, path='/etc/passwd', size=None)]), 'luns[0].path'),
    (dict(luns=[dict(lun=1, path='/var/lib/kvmhost-other/v.img', size='1M')]), 'luns[0].path'),
    (dict(luns=[dict(lun=1, path='VOLDIR/../escape.img', size='1M')]), 'luns[0].path'),
    (dict(luns=[dict(lun=1, path='VOLDIR/n.img', size='big')]), 'luns[0].size'),
    (dict(luns=[dict(lun=1, path='VOLDIR/n.img', size=None)]), 'luns[0].size'),
    (dict(luns=[dict(lun=1, path='VOLDIR/a', size='1M'), dict(lun=1, path='VOLDIR/b', size='1M')]), 'luns[1].lun'),
    (dict(initiator_addresses=['host name']), 'initiator_addresses[0]'),
    (dict(initiator_addresses=['127.0.0.1', '10.1.2.0/33']), 'initiator_addresses[1]'),
    (dict(initiator_addresses=['fd00::/129']), 'initiator_addresses[0]'),
    (dict(initiator_addresses=['10.1.2.300']), 'initiator_addresses[0]'),
    (dict(chap_password=None), 'chap_username'),
    (dict(chap_password='has space'), 'chap_password'),
    (dict(chap_username=None, chap_password=None, mutual_chap_username='o', mutual_chap_password='q'),
     'mutual_chap_username'),
])
def test_check_target_spec_refuses(tmp_path, overrides, field):
    for entry in overrides.get('luns', []):
        entry['path'] = entry['path'].replace('VOLDIR', str(tmp_path))
    with pytest.raises(KvmhostError) as info:
        check_target_spec(params(tmp_path, **overrides))
    assert str(info.value).startswith(field)
    assert 'has space' not in str(info.value)


def test_initiator_addresses_take_addresses_networks_and_all(tmp_path):
    spec = check_target_spec(params(tmp_path, initiator_addresses=['ALL', '10.1.2.0/24', 'fd00::1', 'fd00::/64']))
    assert spec['acl'] == ['ALL', '10.1.2.0/24', 'fd00::1', 'fd00::/64']


def test_render_config_and_persisted_password(tmp_path):
    spec = check_target_spec(params(tmp_path, mutual_chap_username='o', mutual_chap_password='q'))
    text = render_config(spec)
    assert text == ('# Managed by kvmhost.lifecycle.iscsi_target; changes are overwritten.\n'
                    '<target iqn.2026-11.test.kvmhost:unit>\n'
                    '    <backing-store %s/v.img>\n        lun 1\n    </backing-store>\n'
                    '    initiator-address 127.0.0.1\n'
                    '    incominguser u p\n    outgoinguser o q\n</target>\n' % tmp_path)
    assert spec['config_path'] == str(tmp_path / 'kvmhost-iqn.2026-11.test.kvmhost:unit.conf')
    assert persisted_password(text, 'incominguser', 'u') == 'p'
    assert persisted_password(text, 'outgoinguser', 'o') == 'q'
    assert persisted_password(text, 'incominguser', 'x') is None
    assert persisted_password(None, 'incominguser', 'u') is None


class FakeModule(object):
    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self._diff = True
        self.no_log_values = set(v for v in (params.get('chap_password'), params.get('mutual_chap_password')) if v)


class FakeTgt(object):
    """Replays ``show`` outputs and records every other tgtadm call."""

    def __init__(self, show='', accounts=''):
        self.show, self.accounts, self.calls, self.created = show, accounts, [], []

    def __call__(self, module):
        return self

    def tgtadm(self, args, secret=None):
        if args[:4] == ['--op', 'show', '--mode', 'target']:
            return self.show
        if args[:4] == ['--op', 'show', '--mode', 'account']:
            return self.accounts
        self.calls.append(list(args))
        return ''

    def create_sparse(self, path, size):
        self.created.append((path, size))
        with open(path, 'wb') as handle:
            handle.truncate(size)


def drive(module_params, tgt, check_mode=False):
    driver = IscsiTargetDriver.__new__(IscsiTargetDriver)
    module = FakeModule(module_params, check_mode)
    driver.module, driver.params, driver.check_mode, driver.diff_mode = module, module.params, check_mode, True
    driver.runner_class = tgt
    return driver.run(), module


def test_new_target_plan_and_apply(tmp_path):
    show = recorded('tgtadm_show_chap.txt')  # another target holds tid 9
    tgt = FakeTgt(show, 'Account list:\n    o1\n    u1\n')
    result, module = drive(params(tmp_path), tgt, check_mode=True)
    assert result['changed'] and tgt.calls == [] and tgt.created == []
    assert not os.path.exists(result['config_path'])
    assert 'p' not in module.no_log_values and module.params['chap_password'] is None  # dropped after checking
    result, _module = drive(params(tmp_path), tgt)
    assert tgt.created == [(str(tmp_path / 'v.img'), 1 << 20)]
    assert tgt.calls == [
        ['--op', 'new', '--mode', 'target', '--tid', '1', '-T', 'iqn.2026-11.test.kvmhost:unit'],
        ['--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '1', '-b', str(tmp_path / 'v.img')],
        ['--op', 'new', '--mode', 'account', '--user', 'u', '--password', 'p'],
        ['--op', 'bind', '--mode', 'account', '--tid', '1', '--user', 'u'],
        ['--op', 'bind', '--mode', 'target', '--tid', '1', '-I', '127.0.0.1']]  # CHAP first: the ACL opens last
    assert oct(os.stat(result['config_path']).st_mode & 0o777) == '0o600'
    assert result['diff']['after']['tid'] == 1 and 'password' not in str(result['diff'])


def live_show(tmp_path, sessions=''):
    return recorded('tgtadm_show_session.txt' if sessions else 'tgtadm_show_chap.txt').replace(
        IQN, 'iqn.2026-11.test.kvmhost:unit').replace('/tmp/iscsi_dev/b1', str(tmp_path / 'v.img')).replace(
        '        u1\n        o1 (outgoing)\n', '        u\n')


def test_matching_target_is_unchanged(tmp_path):
    spec_params = params(tmp_path)
    (tmp_path / 'v.img').write_bytes(b'')
    config = render_config(check_target_spec(dict(spec_params)))
    path = tmp_path / 'kvmhost-iqn.2026-11.test.kvmhost:unit.conf'
    path.write_text(config)
    path.chmod(0o600)
    tgt = FakeTgt(live_show(tmp_path), 'Account list:\n    u\n')
    result, _module = drive(spec_params, tgt)
    assert result['changed'] is False and tgt.calls == [], result['actions']


def test_changed_password_resets_the_account(tmp_path):
    (tmp_path / 'v.img').write_bytes(b'')
    path = tmp_path / 'kvmhost-iqn.2026-11.test.kvmhost:unit.conf'
    path.write_text(render_config(check_target_spec(params(tmp_path, chap_password='old'))))
    path.chmod(0o600)
    tgt = FakeTgt(live_show(tmp_path), 'Account list:\n    u\n')
    result, _module = drive(params(tmp_path, chap_password='new'), tgt)
    # Closed to its address while its account has no password (no login without CHAP meanwhile), then reopened.
    assert tgt.calls == [['--op', 'unbind', '--mode', 'target', '--tid', '9', '-I', '127.0.0.1'],
                         ['--op', 'unbind', '--mode', 'account', '--tid', '9', '--user', 'u'],
                         ['--op', 'delete', '--mode', 'account', '--user', 'u'],
                         ['--op', 'new', '--mode', 'account', '--user', 'u', '--password', 'new'],
                         ['--op', 'bind', '--mode', 'account', '--tid', '9', '--user', 'u'],
                         ['--op', 'bind', '--mode', 'target', '--tid', '9', '-I', '127.0.0.1']]
    assert 'incominguser u new' in path.read_text() and 'new' not in str(result['actions'])


def test_lun_and_acl_changes(tmp_path):
    (tmp_path / 'w.img').write_bytes(b'')
    tgt = FakeTgt(live_show(tmp_path), 'Account list:\n    u\n')
    wanted = params(tmp_path, luns=[dict(lun=2, path=str(tmp_path / 'w.img'), size=None)],
                    initiator_addresses=['10.0.0.0/24'], chap_username=None, chap_password=None)
    drive(wanted, tgt)
    assert tgt.calls == [['--op', 'delete', '--mode', 'logicalunit', '--tid', '9', '--lun', '1'],
                         ['--op', 'new', '--mode', 'logicalunit', '--tid', '9', '--lun', '2', '-b',
                          str(tmp_path / 'w.img')],
                         ['--op', 'unbind', '--mode', 'target', '--tid', '9', '-I', '127.0.0.1'],
                         ['--op', 'unbind', '--mode', 'account', '--tid', '9', '--user', 'u'],
                         ['--op', 'bind', '--mode', 'target', '--tid', '9', '-I', '10.0.0.0/24']]


def test_absent_refuses_connected_target_unless_forced(tmp_path):
    tgt = FakeTgt(live_show(tmp_path, sessions=True), 'Account list:\n    u\n')
    with pytest.raises(KvmhostError) as info:
        drive(params(tmp_path, state='absent'), tgt)
    assert str(info.value).startswith('force') and '1 connected session' in str(info.value)
    assert tgt.calls == []
    drive(params(tmp_path, state='absent', force=True), tgt)
    assert tgt.calls == [['--op', 'delete', '--force', '--mode', 'target', '--tid', '9'],
                         ['--op', 'delete', '--mode', 'account', '--user', 'u']]


def test_absent_without_target_is_unchanged(tmp_path):
    tgt = FakeTgt('', '')
    result, _module = drive(params(tmp_path, state='absent'), tgt)
    assert result['changed'] is False and result['target'] == {'exists': False}


class FailingTgt(FakeTgt):
    """tgtd refuses (or the call is cut short) at the first call whose arguments start with ``at``."""

    def __init__(self, show, accounts, at):
        super().__init__(show, accounts)
        self.at = at

    def tgtadm(self, args, secret=None):
        if list(args[:len(self.at)]) == self.at:
            raise KvmhostError('tgtadm failed (rc 22): cut short', field='tgtadm')
        return super().tgtadm(args, secret)


@pytest.mark.parametrize('fails_at', [['--op', 'new', '--mode', 'account'], ['--op', 'bind', '--mode', 'account']])
def test_a_target_stopped_half_way_refuses_logins_rather_than_take_them_without_chap(tmp_path, fails_at):
    for show, accounts in ((recorded('tgtadm_show_chap.txt'), 'Account list:\n'),  # a new target
                           (live_show(tmp_path), 'Account list:\n    u\n')):  # a new password on a live one
        path = tmp_path / 'kvmhost-iqn.2026-11.test.kvmhost:unit.conf'
        path.write_text(render_config(check_target_spec(params(tmp_path, chap_password='old'))))
        tgt = FailingTgt(show, accounts, fails_at)
        with pytest.raises(KvmhostError):
            drive(params(tmp_path, chap_password='new'), tgt)
        binds = [call for call in tgt.calls if call[:4] == ['--op', 'bind', '--mode', 'target']]
        assert binds == [], tgt.calls


class CommandModule(object):
    """run_command of AnsibleModule, answering with ``rc``; records the argument lists."""

    def __init__(self, rc, err=''):
        self.rc, self.err, self.commands = rc, err, []

    def run_command(self, args, check_rc=False, environ_update=None):
        self.commands.append(list(args))
        return self.rc, '', self.err


@pytest.mark.parametrize('rc', [124, 137])
def test_tgtadm_calls_are_bounded_and_a_timeout_says_so_without_the_password(rc):
    module = CommandModule(rc)
    with pytest.raises(KvmhostError) as raised:
        TgtRunner(module).tgtadm(['--op', 'new', '--mode', 'account', '--user', 'u', '--password', 's3cret-pw'],
                                 secret='s3cret-pw')
    assert module.commands[0][:3] == ['timeout', '--kill-after=5', str(TGTADM_TIMEOUT)]
    assert module.commands[0][3:6] == ['tgtadm', '--lld', 'iscsi']
    assert 'did not finish within %d s (timeout)' % TGTADM_TIMEOUT in str(raised.value)
    assert 's3cret-pw' not in str(raised.value) and '--password ********' in str(raised.value)


def test_a_tgtadm_refusal_is_reported_without_the_password():
    module = CommandModule(22, err='tgtadm: this account s3cret-pw already exists')
    with pytest.raises(KvmhostError) as raised:
        TgtRunner(module).tgtadm(['--op', 'new', '--mode', 'account', '--user', 'u', '--password', 's3cret-pw'],
                                 secret='s3cret-pw')
    assert 'failed (rc 22)' in str(raised.value) and 's3cret-pw' not in str(raised.value)
