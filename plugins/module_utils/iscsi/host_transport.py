# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_attach with transport host: the kernel initiator through iscsiadm, as os-brick's ISCSIConnector does it.

Attach: the node record (``--op new`` when ``-m node -T IQN -p PORTAL`` finds none), ``node.session.scan=manual``,
CHAP in the node settings, login unless a session exists (exit code 15 also means logged in),
``node.startup=automatic``, then wait for ``/dev/disk/by-path/ip-PORTAL-iscsi-IQN-lun-N``: scan the LUN through
the session's SCSI host, sleeping 1, 4, 9... seconds, up to ``scan_tries`` scans.

The CHAP password never goes on a command line (``ps`` shows those): it is written into the node record file
by :meth:`IscsiadmRunner.set_node_password`; the user name and method go through ``--op update``.

Detach: flush the device's buffers, delete the SCSI device, and only when no other LUN of the session is in use:
``node.startup=manual``, logout and delete the node record.

:class:`HostTransport` plans this for one volume; the disk's source is the device. Everything goes through
:class:`IscsiadmRunner`, so the unit tests replay recorded iscsiadm outputs and exit codes
(this machine has no iscsi_tcp kernel module, so iscsiadm cannot log in here).
"""

from __future__ import annotations

import glob
import os
import re
import time

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import check_portal
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.probe import portal_text

# open-iscsi's exit codes (include/iscsi_err.h)
ISCSI_ERR_TRANS_TIMEOUT = 8
ISCSI_ERR_SESS_EXISTS = 15
ISCSI_ERR_LOGIN_AUTH_FAILED = 24
ISCSI_ERR_NO_OBJS_FOUND = 21
NODE_DIRS = ('/etc/iscsi/nodes', '/var/lib/iscsi/nodes')
# Rescans sleep tries ** 2 seconds each (os-brick): 20 of them sleep 2870 s in all, within MAX_TIMEOUT.
MAX_SCAN_TRIES = 20
_SESSION_RE = re.compile(r'^\S+: \[(\d+)\] (\S+?),(\d+) (\S+)')


def parse_sessions(text):
    """``iscsiadm -m session``: [{sid, portal, tpgt, iqn}]."""
    sessions = []
    for line in text.splitlines():
        match = _SESSION_RE.match(line.strip())
        if match:
            sessions.append({'sid': match.group(1), 'portal': match.group(2), 'tpgt': match.group(3),
                             'iqn': match.group(4)})
    return sessions


def parse_session_detail(text):
    """``iscsiadm -m session -r SID -P 3``: the SCSI host number and {lun: disk name} of the session."""
    host = None
    disks = {}
    lun = None
    for line in text.splitlines():
        line = line.strip()
        match = re.match(r'Host Number: (\d+)', line)
        if match:
            host = int(match.group(1))
        match = re.match(r'scsi\d+ Channel \d+ Id \d+ Lun: (\d+)', line)
        if match:
            lun = int(match.group(1))
        match = re.match(r'Attached scsi disk (\S+)', line)
        if match and lun is not None:
            disks[lun] = match.group(1)
    return host, disks


def node_settings(text):
    """``iscsiadm -m node -T IQN -p PORTAL``: {setting: value}."""
    settings = {}
    for line in text.splitlines():
        if ' = ' in line and not line.startswith('#'):
            key, value = line.split(' = ', 1)
            settings[key.strip()] = value.strip()
    return settings


class IscsiadmRunner(object):
    """The one seam to iscsiadm, the node record files, sysfs and the clock."""

    def __init__(self, module):
        self.module = module

    def iscsiadm(self, args):
        return self.module.run_command(['iscsiadm'] + list(args), check_rc=False, environ_update={'LC_ALL': 'C'})

    def exists(self, path):
        return os.path.exists(path)

    def realpath(self, path):
        return os.path.realpath(path)

    def write(self, path, text):
        with open(path, 'w') as handle:
            handle.write(text)

    def sleep(self, seconds):
        time.sleep(seconds)

    def flush(self, device):
        rc, _out, err = self.module.run_command(['blockdev', '--flushbufs', device], check_rc=False)
        if rc != 0:
            raise KvmhostError('blockdev --flushbufs %s failed: %s' % (device, err.strip()), field='volume')

    def node_record_files(self, iqn, host, port):
        found = []
        for base in NODE_DIRS:
            for entry in glob.glob(os.path.join(glob.escape(base), glob.escape(iqn), '%s,%d*' % (glob.escape(host), port))):
                found.extend(glob.glob(os.path.join(entry, '*')) if os.path.isdir(entry) else [entry])
        return found

    def node_password(self, iqn, host, port):
        for path in self.node_record_files(iqn, host, port):
            with open(path) as handle:
                for line in handle:
                    if line.startswith('node.session.auth.password = '):
                        return line.split(' = ', 1)[1].rstrip('\n')
        return None

    def set_node_password(self, iqn, host, port, password):
        paths = self.node_record_files(iqn, host, port)
        if not paths:
            raise KvmhostError('no node record file of %s at %s' % (iqn, portal_text(host, port)), field='volume')
        for path in paths:
            with open(path) as handle:
                lines = [line for line in handle if not line.startswith('node.session.auth.password = ')]
            lines.append('node.session.auth.password = %s\n' % password)
            fd = os.open(path + '.kvmhost', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, 'w') as handle:
                handle.writelines(lines)
            os.rename(path + '.kvmhost', path)


class HostTransport(object):
    """The host side of one volume: the node record, the session and the SCSI device of its LUN."""

    name = 'host'

    def __init__(self, module, runner, volume, disk, password):
        self.params = module.params
        self.runner = runner
        self.volume, self.disk, self.password = volume, disk, password
        self.attached = self.params['state'] == 'attached'
        self.iqn, self.lun = volume['target_iqn'], volume['target_lun']
        self.host, self.port = check_portal(volume['target_portal'], 'volume.target_portal')
        self.portal = portal_text(self.host, self.port)
        self.path = disk.path
        self.session = self.node = None

    def _iscsiadm(self, args, ok=(0,), what=None):
        rc, out, err = self.runner.iscsiadm(args)
        if rc not in ok:
            text = (err or out).strip()
            where = '%s at portal %s' % (self.iqn, self.portal)
            if rc == ISCSI_ERR_LOGIN_AUTH_FAILED:
                raise KvmhostError('authentication failed: target %s refused the CHAP credentials' % where,
                                   field='volume.auth')
            if rc == ISCSI_ERR_TRANS_TIMEOUT:
                raise KvmhostError('%s of %s timed out: %s' % (what or 'iscsiadm', where, text),
                                   field='volume.target_portal')
            raise KvmhostError('iscsiadm %s (%s) failed (rc %d): %s' % (args[1] if len(args) > 1 else '', where, rc,
                                                                        text), field='volume')
        return rc, out

    def _node(self, *args):
        return ['-m', 'node', '-T', self.iqn, '-p', self.portal] + list(args)

    def _update(self, name, value):
        return lambda: self._iscsiadm(self._node('--op', 'update', '-n', name, '-v', value))

    def _session(self):
        rc, out = self._iscsiadm(['-m', 'session'], ok=(0, ISCSI_ERR_NO_OBJS_FOUND))
        for session in parse_sessions(out if rc == 0 else ''):
            if session['iqn'] == self.iqn and session['portal'] == self.portal:
                return session
        return None

    def _session_detail(self, session):
        _rc, out = self._iscsiadm(['-m', 'session', '-r', session['sid'], '-P', '3'])
        return parse_session_detail(out)

    def state(self):
        """The host's side now: the node record, the session, the device."""
        self.session = self._session()
        rc, out = self._iscsiadm(self._node(), ok=(0, ISCSI_ERR_NO_OBJS_FOUND))
        self.node = node_settings(out) if rc == 0 else None
        return {'node_record': self.node is not None, 'session': self.session is not None,
                'device': self.runner.exists(self.path)}

    def plan_attach(self, plan):
        """The node record, the login and the device."""
        self._plan_login(plan, self.volume, self.node, self.session, self.password, self.path)
        plan.after.update(node_record=True, session=True, device=True)

    def plan_detach(self, plan):
        """The device gone, and the session and node record when no other LUN of the session is in use."""
        last = self._plan_logout(plan, self.session, self.node, self.path)
        plan.after.update(device=False, session=plan.before['session'] and not last,
                          node_record=plan.before['node_record'] and not last)

    def hotplug_disk(self):
        """The disk the domain gets: the host's block device."""
        return self.disk

    def secret_uuid(self):
        return None

    def device_path(self):
        return self.path if self.attached else None

    def source(self):
        return {'dev': self.path}

    def result_disk(self):
        """The disk of the result's disk_xml, when attached."""
        return self.disk if self.attached else None

    def _plan_login(self, plan, volume, node, session, password, path):
        if node is None:
            plan.add('create the node record of %s at %s' % (self.iqn, self.portal),
                     lambda: self._iscsiadm(self._node('--op', 'new')))
        node = node or {}
        if node.get('node.session.scan') != 'manual':
            plan.add('set node.session.scan=manual', self._update('node.session.scan', 'manual'))
        auth = volume.get('auth') or {}
        if auth:
            if node.get('node.session.auth.authmethod') != 'CHAP':
                plan.add('set node.session.auth.authmethod=CHAP', self._update('node.session.auth.authmethod', 'CHAP'))
            if node.get('node.session.auth.username') != auth['username']:
                plan.add('set node.session.auth.username', self._update('node.session.auth.username', auth['username']))
            if not node or self.runner.node_password(self.iqn, self.host, self.port) != password:
                plan.add('set the CHAP password in the node record',
                         lambda: self.runner.set_node_password(self.iqn, self.host, self.port, password))
        if session is None:
            plan.add('log in to %s at %s' % (self.iqn, self.portal),
                     lambda: self._iscsiadm(self._node('--login'), ok=(0, ISCSI_ERR_SESS_EXISTS), what='login'))
        if node.get('node.startup') != 'automatic':
            plan.add('set node.startup=automatic', self._update('node.startup', 'automatic'))
        if session is None or not self.runner.exists(path):
            plan.add('wait for %s' % path, lambda: self._wait_for_device(path))

    def _wait_for_device(self, path):
        """Scan the LUN and wait with growing sleeps, as os-brick (tries ** 2 seconds) does."""
        tries = 0
        while not self.runner.exists(path):
            if tries >= self.params['scan_tries']:
                raise KvmhostError('device %s did not appear after %d scans: target %s at portal %s may not export '
                                   'LUN %d' % (path, tries, self.iqn, self.portal, self.lun), field='volume.target_lun')
            session = self._session()
            if session is None:
                raise KvmhostError('no session to %s at %s after login' % (self.iqn, self.portal), field='volume')
            host, _disks = self._session_detail(session)
            self.runner.write('/sys/class/scsi_host/host%d/scan' % host, '- - %d' % self.lun)
            tries += 1
            self.runner.sleep(tries ** 2)
        return path

    def _plan_logout(self, plan, session, node, path):
        """Plan the detach; returns whether the session ends (no other LUN of it in use)."""
        if session is not None:
            _host, disks = self._session_detail(session)
        else:
            disks = {}
        mine = disks.get(self.lun)
        if mine is None and self.runner.exists(path):
            mine = os.path.basename(self.runner.realpath(path))
        if mine is not None:
            device = '/dev/%s' % mine
            plan.add('flush %s' % device, lambda: self.runner.flush(device))
            plan.add('delete SCSI device %s' % mine,
                     lambda: self.runner.write('/sys/block/%s/device/delete' % mine, '1'))
        others = sorted(lun for lun in disks if lun != self.lun)
        if others:
            return False
        if session is not None:
            plan.add('set node.startup=manual', self._update('node.startup', 'manual'))
            plan.add('log out of %s at %s' % (self.iqn, self.portal),
                     lambda: self._iscsiadm(self._node('--logout'), ok=(0, ISCSI_ERR_NO_OBJS_FOUND)))
        if node is not None:
            plan.add('delete the node record of %s at %s' % (self.iqn, self.portal),
                     lambda: self._iscsiadm(self._node('--op', 'delete'), ok=(0, ISCSI_ERR_NO_OBJS_FOUND)))
        return True
