# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iscsi_target module: an iSCSI target on tgt (``tgtadm --lld iscsi``), the volume host's side.

- :func:`parse_tgtadm_show` reads ``tgtadm --op show --mode target`` (tgt has no JSON output).
- :func:`check_target_spec` checks the module's parameters; :func:`render_config` is the persisted
  tgt-admin configuration (``/etc/tgt/conf.d/kvmhost-<IQN>.conf``, mode 0600, read by ``tgt-admin -e``
  when tgtd starts).
- :class:`IscsiTargetDriver` plans the tgtadm calls against the live configuration, then applies them.

tgt cannot report an account's password. The persisted file holds it (it is what tgt-admin needs at
start-up), so a password counts as changed when the file does not hold the one given.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import ModuleDriver, Plan, forget_secret
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.files import read_text, write_atomic
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    MAX_LUN, check_absolute_path, check_iqn)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.probe import TIMEOUT_RC

CONFIG_MODE = 0o600
# Each tgtadm call is bounded: a tgtd that does not answer within this many seconds is asked to stop the call
# (SIGTERM through coreutils timeout, SIGKILL 5 s later). The plan's order keeps a target that was stopped
# half-way closed to logins, and the next run finishes it.
TGTADM_TIMEOUT = 30
_SIZE_RE = re.compile(r'([0-9]+)\s*([KMGT]?)(i?B?)?', re.IGNORECASE)
_UNITS = {'': 1, 'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3, 'T': 1024 ** 4}
_CHAP_USER_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9._@:-]{0,254}')
_CHAP_PASSWORD_RE = re.compile(r'[\x21-\x7e]{1,255}')  # printable, no spaces: one token in the config file
_ACL_RE = re.compile(r'ALL|[0-9A-Fa-f.:/]{2,49}')


# ---------------------------------------------------------------- reading tgt

def parse_tgtadm_show(text):
    """``tgtadm --op show --mode target`` as {iqn: {tid, luns {n: path}, sessions, incoming, outgoing, acl}}."""
    targets = {}
    target = section = lun = None
    for raw in text.splitlines():
        line = raw.strip()
        indent = len(raw) - len(raw.lstrip(' '))
        match = re.match(r'Target (\d+): (\S+)$', raw)
        if match:
            target = {'tid': int(match.group(1)), 'iqn': match.group(2), 'luns': {}, 'sessions': 0,
                      'incoming': [], 'outgoing': [], 'acl': []}
            targets[target['iqn']] = target
            section = lun = None
            continue
        if target is None or not line:
            continue
        if indent == 4 and line.endswith(':'):
            section = line[:-1]
            continue
        if section == 'I_T nexus information' and line.startswith('I_T nexus:'):
            target['sessions'] += 1
        elif section == 'LUN information':
            if line.startswith('LUN: '):
                lun = int(line[5:])
                target['luns'][lun] = None
            elif line.startswith('Backing store path:') and lun is not None:
                path = line.split(':', 1)[1].strip()
                target['luns'][lun] = None if path in ('', 'None') else path
        elif section == 'Account information' and indent == 8:
            if line.endswith(' (outgoing)'):
                target['outgoing'].append(line[:-len(' (outgoing)')])
            else:
                target['incoming'].append(line)
        elif section == 'ACL information' and indent == 8:
            target['acl'].append(line)
    return targets


def parse_account_list(text):
    """``tgtadm --op show --mode account``: the account names."""
    return [line.strip() for line in text.splitlines()[1:] if line.strip()]


def lowest_free_tid(targets):
    used = set(target['tid'] for target in targets.values())
    tid = 1
    while tid in used:
        tid += 1
    return tid


# ---------------------------------------------------------------- checking the parameters

def parse_size(value, field):
    """``10G``, ``512M``, ``1GiB``, ``4096`` (bytes) to bytes."""
    match = _SIZE_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif match is None:
        raise KvmhostError('must be a size like 10G, 512M or a number of bytes; got %r' % (value,), field=field)
    else:
        number = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if number < 512 or number % 512:
        raise KvmhostError('must be a positive multiple of 512 bytes, got %r' % (value,), field=field)
    return number


def _inside(path, directory):
    real = os.path.realpath(path)
    return real == directory or real.startswith(directory.rstrip('/') + '/')


def check_lun(lun, field):
    if isinstance(lun, bool) or not isinstance(lun, int) or not 0 <= lun <= MAX_LUN:
        raise KvmhostError('must be a LUN 0..%d, got %r' % (MAX_LUN, lun), field=field)
    if lun == 0:
        raise KvmhostError('LUN 0 is the target controller on tgt; use 1..%d for a backing store' % MAX_LUN,
                           field=field)
    return lun


def _check_chap(params, user_key, password_key):
    user, password = params.get(user_key), params.get(password_key)
    if user is None and password is None:
        return None
    if user is None or password is None:
        raise KvmhostError('%s and %s must be given together' % (user_key, password_key), field=user_key)
    if not _CHAP_USER_RE.fullmatch(user):
        raise KvmhostError('must be 1-255 letters, digits and ._@:-, got %r' % user, field=user_key)
    if not _CHAP_PASSWORD_RE.fullmatch(password):  # the value is never shown
        raise KvmhostError('must be 1-255 printable characters without spaces', field=password_key)
    return (user, password)


def check_initiator_address(address, field):
    """ALL, an IP address or a network in CIDR notation (prefix length within its family), as tgt's ACL takes it."""
    if address == 'ALL':
        return address
    if isinstance(address, str) and _ACL_RE.fullmatch(address):
        try:
            if '/' in address:
                ipaddress.ip_network(address, strict=False)
            else:
                ipaddress.ip_address(address)
            return address
        except ValueError:
            pass
    raise KvmhostError('must be an IP address, a network in CIDR notation (prefix length 0-32 for IPv4, 0-128 for '
                       'IPv6) or ALL, got %r' % (address,), field=field)


def check_target_spec(params):
    """The wanted target as a dict; raises KvmhostError naming the field."""
    iqn = check_iqn(params['iqn'], 'iqn')
    volume_dir = os.path.realpath(check_absolute_path(params['volume_dir'], 'volume_dir'))
    config_dir = check_absolute_path(params['config_dir'], 'config_dir')
    luns = {}
    for index, entry in enumerate(params.get('luns') or []):
        field = 'luns[%d]' % index
        lun = check_lun(entry.get('lun'), field + '.lun')
        if lun in luns:
            raise KvmhostError('LUN %d is listed twice' % lun, field=field + '.lun')
        path = check_absolute_path(entry.get('path'), field + '.path')
        size = parse_size(entry['size'], field + '.size') if entry.get('size') is not None else None
        if os.path.exists(path) and stat.S_ISBLK(os.stat(path).st_mode):
            kind = 'block'
        else:
            if not _inside(path, volume_dir):
                raise KvmhostError('%s is outside the allowed volume directory %s' % (path, volume_dir),
                                   field=field + '.path')
            if os.path.exists(path) and not os.path.isfile(path):
                raise KvmhostError('%s is neither a regular file nor a block device' % path, field=field + '.path')
            if not os.path.exists(path) and size is None:
                raise KvmhostError('%s does not exist: give size to create it' % path, field=field + '.size')
            kind = 'file'
        luns[lun] = {'path': path, 'size': size, 'kind': kind}
    acl = []
    for index, address in enumerate(params.get('initiator_addresses') or []):
        acl.append(check_initiator_address(address, 'initiator_addresses[%d]' % index))
    incoming = _check_chap(params, 'chap_username', 'chap_password')
    outgoing = _check_chap(params, 'mutual_chap_username', 'mutual_chap_password')
    if outgoing and not incoming:
        raise KvmhostError('mutual CHAP needs chap_username and chap_password too', field='mutual_chap_username')
    return {'iqn': iqn, 'luns': luns, 'acl': acl, 'incoming': incoming, 'outgoing': outgoing,
            'volume_dir': volume_dir, 'config_path': config_path(config_dir, iqn)}


def config_path(config_dir, iqn):
    return os.path.join(config_dir, 'kvmhost-%s.conf' % iqn)


def render_config(spec):
    """The tgt-admin configuration that recreates the target when tgtd starts again."""
    lines = ['# Managed by kvmhost.lifecycle.iscsi_target; changes are overwritten.',
             '<target %s>' % spec['iqn']]
    for lun in sorted(spec['luns']):
        lines += ['    <backing-store %s>' % spec['luns'][lun]['path'], '        lun %d' % lun, '    </backing-store>']
    for address in spec['acl']:
        lines.append('    initiator-address %s' % address)
    if spec['incoming']:
        lines.append('    incominguser %s %s' % spec['incoming'])
    if spec['outgoing']:
        lines.append('    outgoinguser %s %s' % spec['outgoing'])
    lines.append('</target>')
    return '\n'.join(lines) + '\n'


def persisted_password(text, keyword, user):
    """The password the persisted file holds for ``user`` (incominguser/outgoinguser), or None."""
    for line in (text or '').splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == keyword and parts[1] == user:
            return parts[2]
    return None


def describe_target(live):
    """Facts of the live target for results and diffs (no passwords)."""
    if live is None:
        return {'exists': False}
    return {'exists': True, 'tid': live['tid'], 'luns': dict((str(n), p) for n, p in live['luns'].items() if n),
            'initiator_addresses': list(live['acl']), 'chap_username': (live['incoming'] or [None])[0],
            'mutual_chap_username': (live['outgoing'] or [None])[0], 'sessions': live['sessions']}


# ---------------------------------------------------------------- the host seam

class TgtRunner(object):
    """tgtadm by argument list; ``secret`` is a value replaced by ******** in any error message."""

    def __init__(self, module):
        self.module = module

    def tgtadm(self, args, secret=None):
        command = ['tgtadm', '--lld', 'iscsi'] + list(args)
        rc, out, err = self.module.run_command(['timeout', '--kill-after=5', str(TGTADM_TIMEOUT)] + command,
                                               check_rc=False, environ_update={'LC_ALL': 'C'})
        shown = ' '.join('********' if secret is not None and arg == secret else arg for arg in command)
        if rc in (TIMEOUT_RC, 128 + 9):
            raise KvmhostError('%s did not finish within %d s (timeout): tgtd is not answering'
                               % (shown, TGTADM_TIMEOUT), field='tgtadm')
        if rc != 0:
            message = (err or out).strip()
            if secret:
                message = message.replace(secret, '********')
            raise KvmhostError('%s failed (rc %d): %s' % (shown, rc, message), field='tgtadm')
        return out

    def create_sparse(self, path, size):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- planning

class IscsiTargetDriver(ModuleDriver):
    """iscsi_target: present (created, LUNs, ACL, CHAP, persisted) or absent."""

    runner_class = TgtRunner
    check_options = staticmethod(check_target_spec)

    def run(self):
        spec = check_target_spec(self.params)
        for key in ('chap_password', 'mutual_chap_password'):  # kept in spec, for the accounts
            forget_secret(self.module, self.params, key)
        self.runner = self.runner_class(self.module)
        targets = parse_tgtadm_show(self.runner.tgtadm(['--op', 'show', '--mode', 'target']))
        accounts = parse_account_list(self.runner.tgtadm(['--op', 'show', '--mode', 'account']))
        live = targets.get(spec['iqn'])
        before = describe_target(live)
        if self.params['state'] == 'absent':
            plan = self.plan_absent(spec, live, targets, before)
        else:
            plan = self.plan_present(spec, live, targets, accounts, before)
        result = self.finish(plan, iqn=spec['iqn'], config_path=spec['config_path'])
        if self.check_mode or not plan.changed:
            result['target'] = plan.after
        else:
            result['target'] = describe_target(parse_tgtadm_show(
                self.runner.tgtadm(['--op', 'show', '--mode', 'target'])).get(spec['iqn']))
        return result

    def plan_absent(self, spec, live, targets, before):
        plan = Plan(before, {'exists': False})
        tgt = self.runner.tgtadm
        if live is not None:
            if live['sessions'] and not self.params['force']:
                raise KvmhostError('target %s has %d connected session(s): detach its initiators first, or set force'
                                   % (spec['iqn'], live['sessions']), field='force')
            tid = str(live['tid'])
            plan.add('delete target %s (tid %s)' % (spec['iqn'], tid),
                     lambda: tgt(['--op', 'delete', '--force', '--mode', 'target', '--tid', tid]))
            others = set()
            for iqn, target in targets.items():
                if iqn != spec['iqn']:
                    others.update(target['incoming'] + target['outgoing'])
            for user in live['incoming'] + live['outgoing']:
                if user not in others:
                    plan.add('delete CHAP account %s' % user,
                             lambda user=user: tgt(['--op', 'delete', '--mode', 'account', '--user', user]))
        if os.path.exists(spec['config_path']):
            plan.add('remove %s' % spec['config_path'], lambda: os.unlink(spec['config_path']))
        return plan

    def plan_present(self, spec, live, targets, accounts, before):
        tgt = self.runner.tgtadm
        config = render_config(spec)
        current_config = read_text(spec['config_path'])
        after = {'exists': True, 'tid': live['tid'] if live else lowest_free_tid(targets),
                 'luns': dict((str(n), e['path']) for n, e in spec['luns'].items()),
                 'initiator_addresses': list(spec['acl']),
                 'chap_username': spec['incoming'][0] if spec['incoming'] else None,
                 'mutual_chap_username': spec['outgoing'][0] if spec['outgoing'] else None,
                 'sessions': live['sessions'] if live else 0}
        plan = Plan(before, after)
        tid = str(after['tid'])
        files = [entry for entry in spec['luns'].values() if entry['kind'] == 'file']
        if files and not os.path.isdir(spec['volume_dir']):
            plan.add('create the volume directory %s (mode 0700)' % spec['volume_dir'],
                     lambda: os.makedirs(spec['volume_dir'], 0o700))
        for lun, entry in sorted(spec['luns'].items()):
            if entry['kind'] == 'file' and not os.path.exists(entry['path']):
                plan.add('create sparse file %s of %d bytes' % (entry['path'], entry['size']),
                         lambda entry=entry: self.runner.create_sparse(entry['path'], entry['size']))
        if live is None:
            plan.add('create target %s (tid %s)' % (spec['iqn'], tid),
                     lambda: tgt(['--op', 'new', '--mode', 'target', '--tid', tid, '-T', spec['iqn']]))
        live_luns = live['luns'] if live else {}
        for lun in sorted(set(live_luns) - set(spec['luns']) - {0}):
            self._lun_change_allowed(live, lun)
            plan.add('delete LUN %d (%s)' % (lun, live_luns[lun]),
                     lambda lun=lun: tgt(['--op', 'delete', '--mode', 'logicalunit', '--tid', tid, '--lun', str(lun)]))
        for lun, entry in sorted(spec['luns'].items()):
            if lun in live_luns and live_luns[lun] == entry['path']:
                continue
            if lun in live_luns:
                self._lun_change_allowed(live, lun)
                plan.add('delete LUN %d (%s)' % (lun, live_luns[lun]), lambda lun=lun: tgt(
                    ['--op', 'delete', '--mode', 'logicalunit', '--tid', tid, '--lun', str(lun)]))
            plan.add('add LUN %d backed by %s' % (lun, entry['path']), lambda lun=lun, entry=entry: tgt(
                ['--op', 'new', '--mode', 'logicalunit', '--tid', tid, '--lun', str(lun), '-b', entry['path']]))
        # The ACL opens the target to new logins, so it opens last: addresses the spec no longer allows go
        # first, the CHAP accounts are in place before any address is allowed, and a target whose accounts
        # change is closed to its addresses meanwhile. A run stopped half-way leaves a target that refuses
        # logins rather than one that takes them without CHAP; the next run finishes it.
        live_acl = live['acl'] if live else []
        for address in live_acl:
            if address not in spec['acl']:
                plan.add('remove initiator address %s' % address, lambda address=address: tgt(
                    ['--op', 'unbind', '--mode', 'target', '--tid', tid, '-I', address]))
        open_to = [address for address in live_acl if address in spec['acl']]
        accounts_plan = Plan()
        self._plan_account(accounts_plan, spec['incoming'], live['incoming'] if live else [], accounts,
                           current_config, 'incominguser', [], tid)
        self._plan_account(accounts_plan, spec['outgoing'], live['outgoing'] if live else [], accounts,
                           current_config, 'outgoinguser', ['--outgoing'], tid)
        if accounts_plan.steps:
            for address in open_to:
                plan.add('remove initiator address %s while the CHAP accounts change' % address,
                         lambda address=address: tgt(['--op', 'unbind', '--mode', 'target', '--tid', tid,
                                                      '-I', address]))
            open_to = []
            plan.steps.extend(accounts_plan.steps)
        for address in spec['acl']:
            if address not in open_to:
                plan.add('allow initiator address %s' % address, lambda address=address: tgt(
                    ['--op', 'bind', '--mode', 'target', '--tid', tid, '-I', address]))
        if current_config != config:
            plan.add('write %s' % spec['config_path'], lambda: write_atomic(spec['config_path'], config, CONFIG_MODE))
        elif stat.S_IMODE(os.stat(spec['config_path']).st_mode) != CONFIG_MODE:
            plan.add('set the mode of %s to 0600' % spec['config_path'],
                     lambda: os.chmod(spec['config_path'], CONFIG_MODE))
        return plan

    def _lun_change_allowed(self, live, lun):
        if live['sessions'] and not self.params['force']:
            raise KvmhostError('LUN %d of %s would change while %d session(s) are connected; set force to allow it'
                               % (lun, live['iqn'], live['sessions']), field='luns')

    def _plan_account(self, plan, wanted, bound, accounts, current_config, keyword, flags, tid):
        tgt = self.runner.tgtadm
        for user in bound:
            if not wanted or user != wanted[0]:
                plan.add('unbind CHAP account %s' % user, lambda user=user: tgt(
                    ['--op', 'unbind', '--mode', 'account', '--tid', tid, '--user', user] + flags))
        if not wanted:
            return
        user, password = wanted
        stale = user in accounts and persisted_password(current_config, keyword, user) != password
        if stale:
            if user in bound:
                plan.add('unbind CHAP account %s to set its password' % user, lambda: tgt(
                    ['--op', 'unbind', '--mode', 'account', '--tid', tid, '--user', user] + flags))
            plan.add('delete CHAP account %s to set its password' % user,
                     lambda: tgt(['--op', 'delete', '--mode', 'account', '--user', user]))
        if stale or user not in accounts:
            plan.add('create CHAP account %s' % user, lambda: tgt(
                ['--op', 'new', '--mode', 'account', '--user', user, '--password', password], secret=password))
        if stale or user not in bound:
            plan.add('bind CHAP account %s (%s)' % (user, keyword), lambda: tgt(
                ['--op', 'bind', '--mode', 'account', '--tid', tid, '--user', user] + flags))
