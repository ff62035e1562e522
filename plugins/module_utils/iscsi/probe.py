# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Does an iSCSI portal answer, export the target and the LUN, and accept the CHAP credentials?

Used by iscsi_attach for the qemu transport, where nothing on the host logs in. Three steps, each bounded:

1. a TCP connection to the portal with a timeout (unreachable and refused portals are told apart);
2. a SendTargets discovery with libiscsi's ``iscsi-ls`` (is the target exported to us?);
3. a login and an INQUIRY of the LUN with ``iscsi-inq`` (CHAP accepted? LUN exported?).

CHAP credentials go to libiscsi through its environment variables ``LIBISCSI_CHAP_USERNAME`` and
``LIBISCSI_CHAP_PASSWORD`` (and ``LIBISCSI_CHAP_TARGET_*`` for mutual CHAP), never on the command line, which
``ps`` shows to every user. Both tools run under coreutils ``timeout`` so that a portal that accepts the
connection but never answers cannot hang the module.
"""

from __future__ import annotations

import socket

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError

TIMEOUT_RC = 124  # coreutils timeout


def portal_text(host, port):
    return '[%s]:%d' % (host, port) if ':' in host else '%s:%d' % (host, port)


def probe_portal(host, port, timeout, field='target_portal', connect=socket.create_connection):
    """Open and close a TCP connection to the portal, or raise naming it and the timeout."""
    try:
        connection = connect((host, port), timeout)
    except socket.timeout:
        raise KvmhostError('portal %s did not answer within %d s (timeout)' % (portal_text(host, port), timeout),
                           field=field)
    except OSError as exc:
        raise KvmhostError('cannot connect to portal %s: %s' % (portal_text(host, port), exc.strerror or exc),
                           field=field)
    connection.close()


def parse_iscsi_ls(text):
    """The target names of ``iscsi-ls`` output (``Target:<iqn> Portal:<portal>,<tpgt>`` lines)."""
    names = []
    for line in text.splitlines():
        fields = line[len('Target:'):].split() if line.startswith('Target:') else []
        if fields and fields[0] not in names:  # a bare 'Target:' line names nothing
            names.append(fields[0])
    return names


def parse_device_type(text):
    """The ``Peripheral Device Type`` of ``iscsi-inq`` output (DIRECT_ACCESS for a disk), or None."""
    for line in text.splitlines():
        if line.startswith('Peripheral Device Type:'):
            return line.split(':', 1)[1].strip()
    return None


def chap_environment(username, password, mutual_username=None, mutual_password=None):
    env = {}
    if username is not None:
        env.update(LIBISCSI_CHAP_USERNAME=username, LIBISCSI_CHAP_PASSWORD=password)
    if mutual_username is not None:
        env.update(LIBISCSI_CHAP_TARGET_USERNAME=mutual_username, LIBISCSI_CHAP_TARGET_PASSWORD=mutual_password)
    return env


class LibiscsiRunner(object):
    """The seam to libiscsi's tools: ``run(argv, env)`` returns (rc, stdout, stderr)."""

    def __init__(self, module):
        self.module = module

    def run(self, argv, env=None):
        return self.module.run_command(argv, check_rc=False, environ_update=dict(env or {}, LC_ALL='C'))


def check_target_answers(runner, host, port, iqn, lun, timeout, username=None, password=None, field='volume'):
    """Discovery, then a login to LUN ``lun``; raises KvmhostError naming the portal, IQN or LUN."""
    portal = portal_text(host, port)
    probe_portal(host, port, timeout, field=field + '.target_portal')
    rc, out, err = runner.run(['timeout', str(timeout), 'iscsi-ls', 'iscsi://%s' % portal])
    if rc == TIMEOUT_RC:
        raise KvmhostError('SendTargets discovery of portal %s did not finish within %d s (timeout)'
                           % (portal, timeout), field=field + '.target_portal')
    if rc != 0:
        raise KvmhostError('SendTargets discovery of portal %s failed (rc %d): %s'
                           % (portal, rc, (err or out).strip()), field=field + '.target_portal')
    exported = parse_iscsi_ls(out)
    if iqn not in exported:
        raise KvmhostError('portal %s does not export target %s to this host (it exports: %s)'
                           % (portal, iqn, ', '.join(exported) or 'nothing'), field=field + '.target_iqn')
    env = chap_environment(username, password)
    rc, out, err = runner.run(['timeout', str(timeout), 'iscsi-inq', 'iscsi://%s/%s/%d' % (portal, iqn, lun)],
                              env=env)
    message = (err or out or '').strip()
    if password:
        message = message.replace(password, '********')
    if rc == TIMEOUT_RC:
        raise KvmhostError('login to target %s at portal %s did not finish within %d s (timeout)'
                           % (iqn, portal, timeout), field=field + '.target_portal')
    if rc == 0:
        device_type = parse_device_type(out)
        if device_type not in (None, 'DIRECT_ACCESS'):
            raise KvmhostError('LUN %d of target %s at portal %s is not a disk (%s); tgt keeps LUN 0 for its '
                               'controller' % (lun, iqn, portal, device_type), field=field + '.target_lun')
        return {'portal': portal, 'iqn': iqn, 'lun': lun, 'exported_targets': exported}
    if 'Authentication failure' in message or 'Authorization failure' in message:
        raise KvmhostError('authentication failed: target %s at portal %s refused the CHAP credentials of user %s'
                           % (iqn, portal, username) if username else
                           'authentication failed: target %s at portal %s requires CHAP credentials (auth)'
                           % (iqn, portal), field=field + '.auth')
    if 'LOGICAL_UNIT_NOT_SUPPORTED' in message:
        raise KvmhostError('target %s at portal %s does not export LUN %d' % (iqn, portal, lun),
                           field=field + '.target_lun')
    if 'Target not found' in message:
        raise KvmhostError('portal %s has no target %s' % (portal, iqn), field=field + '.target_iqn')
    raise KvmhostError('login to target %s LUN %d at portal %s failed (rc %d): %s' % (iqn, lun, portal, rc, message),
                       field=field)
