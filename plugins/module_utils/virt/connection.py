# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one seam to libvirt: a connection object that finds domains by UUID, never by name,
and Nova's mapping of libvirt states to power_state codes."""

from __future__ import annotations

import re
import traceback

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError

try:
    import libvirt
    HAS_LIBVIRT = True
    LIBVIRT_IMPORT_ERROR = None
except ImportError:
    libvirt = None
    HAS_LIBVIRT = False
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()

# nova/objects/fields.py PowerState
NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED = 0, 1, 3, 4, 6, 7
POWER_STATE_NAMES = {NOSTATE: 'pending', RUNNING: 'running', PAUSED: 'paused', SHUTDOWN: 'shutdown',
                     CRASHED: 'crashed', SUSPENDED: 'suspended'}

# virDomainState values, as libvirt numbers them (stable ABI), so this table needs no import.
LIBVIRT_STATE_NAMES = {0: 'nostate', 1: 'running', 2: 'blocked', 3: 'paused', 4: 'shutdown', 5: 'shutoff',
                       6: 'crashed', 7: 'pmsuspended'}
# nova/virt/libvirt/guest.py LIBVIRT_POWER_STATE
LIBVIRT_TO_POWER_STATE = {0: NOSTATE, 1: RUNNING, 2: RUNNING, 3: PAUSED, 4: SHUTDOWN, 5: SHUTDOWN,
                          6: CRASHED, 7: SUSPENDED}
VIR_ERR_NO_DOMAIN = 42


def require_libvirt(module):
    """Fail the module with Ansible's standard message when libvirt-python is missing."""
    if not HAS_LIBVIRT:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib('libvirt-python'), exception=LIBVIRT_IMPORT_ERROR)


class LibvirtConnection(object):
    """A lazily opened libvirt connection. Tests replace it with a fake of the same methods."""

    def __init__(self, uri):
        self.uri = uri
        self._conn = None

    @property
    def conn(self):
        if self._conn is None:
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise KvmhostError('cannot connect to libvirt at %s: %s' % (self.uri, exc.get_error_message()),
                                   field='libvirt_uri')
        return self._conn

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def domain_by_uuid(self, uuid):
        """The virDomain with this UUID, or None when libvirt has no such domain."""
        try:
            return self.conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == VIR_ERR_NO_DOMAIN:
                return None
            raise

    def domain_state(self, uuid):
        """Live facts of the domain with this UUID, as a dict (found False when undefined)."""
        domain = self.domain_by_uuid(uuid)
        if domain is None:
            return {'found': False, 'name': None, 'id': None, 'libvirt_state': None, 'power_state': NOSTATE}
        try:
            state, _reason = domain.state()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == VIR_ERR_NO_DOMAIN:  # undefined between lookup and state()
                return {'found': False, 'name': None, 'id': None, 'libvirt_state': None, 'power_state': NOSTATE}
            raise
        domain_id = domain.ID()
        return {'found': True, 'name': domain.name(), 'id': domain_id if domain_id >= 0 else None,
                'libvirt_state': LIBVIRT_STATE_NAMES.get(state, 'unknown'),
                'power_state': LIBVIRT_TO_POWER_STATE.get(state, NOSTATE)}


_DOMAIN_NAME_RE = re.compile(r'instance-([0-9a-f]{8})')


def domains_by_local_id(domains):
    """{local id: domain UUID} of the ``domains`` (virDomain, from listAllDomains) named instance-%08x.

    Another state store on the host (or a domain made by hand) may hold the name a new record's id would
    give: a new record skips those ids, and a recorded instance whose name another domain has is refused.
    """
    found = {}
    for domain in domains:
        match = _DOMAIN_NAME_RE.fullmatch(domain.name())
        if match:
            found[int(match.group(1), 16)] = domain.UUIDString().lower()
    return found


def power_sync(record, vm_power_state):
    """Nova's _sync_instance_power_state as a pure decision.

    Returns ``drifted`` (the store's power_state differs from the hypervisor's) and the
    ``action`` Nova's periodic task would take: none, update_power_state, stop (record the
    instance stopped), force_stop, or skip (a task is in progress).
    """
    db_power_state = record.get('power_state', NOSTATE)
    vm_state = record.get('vm_state')
    result = {'db_power_state': db_power_state, 'vm_power_state': vm_power_state,
              'drifted': db_power_state != vm_power_state, 'action': 'none', 'message': ''}
    if record.get('task_state'):
        result.update(action='skip', message='task %s is in progress' % record['task_state'])
        return result
    if result['drifted']:
        result.update(action='update_power_state',
                      message='power_state in the store is %d, the hypervisor reports %d'
                      % (db_power_state, vm_power_state))
    if vm_state in ('active', 'paused') and vm_power_state in (SHUTDOWN, CRASHED):
        result.update(action='stop', message='instance shutdown by itself; record it stopped')
    elif vm_state == 'active' and vm_power_state == NOSTATE:
        result.update(message='instance is unexpectedly not found on the hypervisor')
    elif vm_state == 'stopped' and vm_power_state not in (NOSTATE, SHUTDOWN, CRASHED):
        result.update(action='force_stop', message='instance is not stopped on the hypervisor; stop it')
    elif vm_state == 'deleted' and vm_power_state not in (NOSTATE, SHUTDOWN):
        result.update(message='instance is deleted in the store but its domain still runs')
    return result
