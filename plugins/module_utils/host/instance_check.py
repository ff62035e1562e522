# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""instance_check: every check the steps of a boot, rebuild or delete make, before the first of them runs.

Each instance spec goes through the collection's one schema of a spec (argument_specs.INSTANCE, so a
misspelt key is refused) and then through the very checks each step makes of its part (the VIF, the
firewall rules, the domain XML's spec, the image and flavor); the specs of the run are checked against
each other and against the host's other instances (MAC addresses and port ids); and the host's
preconditions that can be read at the start are read: libvirt answers, the instances path and the
state store's directory exist, the Open vSwitch bridges and physical interfaces are there, the domain
names the instances' local ids give are not another domain's, the iSCSI portals answer, and the host
has the memory and disk the new instances need. Nothing is changed: a refusal names the instance, the
field and the reason, and every refusal of the run is reported at once.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import time

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core import argument_specs
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import (
    KNOWN_ERRORS, describe_error, forget_passwords)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.batch import without_none
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.files import read_text
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    MAX_TIMEOUT, check_int, check_portal, check_uuid)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.host.resource_audit import read_meminfo
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network import links as hl
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.firewall_rules import check_firewall_spec
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.names import DEFAULT_OVS_BRIDGE
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.vif import check_vif_spec
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.known_instances import known_instance
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import (
    INTERRUPTED, MAX_CLAIM_STALE_SECONDS, MIN_CLAIM_STALE_SECONDS, StateStore, domain_name)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.image_cache import ImageCache, image_base_name, parse_source
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.instance_image import check_flavor, check_image
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import (
    LIBVIRT_TO_POWER_STATE, RUNNING, domains_by_local_id)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import (
    check_domain_spec, volume_secret_placeholders)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import NOVA_NS
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.drift import domain_drift, parse_xml
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.driver import VIR_DOMAIN_XML_INACTIVE, LibvirtDriver

ACTIONS = ('boot', 'rebuild', 'delete', 'migrate_source', 'migrate_destination')
# Nova's default cpu_allocation_ratio: the vCPUs a host's instances may have per physical CPU.
DEFAULT_CPU_ALLOCATION_RATIO = 16.0
CLAIM_POLL_INTERVAL = 1.0
PORTAL_TIMEOUT = 3.0
# What a new instance's directory needs besides its base images (overlays, libvirt.xml, console log).
DISK_MARGIN_MB = 64
MEMORY_MARGIN_MB = 64
_SPEC_VALIDATOR = ArgumentSpecValidator(argument_specs.INSTANCE)


def _scoped(prefix, call, *args):
    """Run one step's check; ``prefix`` is taken off its error's field, to leave the path in the spec."""
    try:
        return call(*args)
    except KvmhostError as exc:
        field = exc.field or ''
        if prefix and field.startswith(prefix):
            field = field[len(prefix):]
        raise KvmhostError(exc.msg, field=field or None)


def check_spec(spec, params):
    """One instance spec through the spec schema and every step's own checks.

    Returns (the validated spec or None, [KvmhostError]): each step's check runs on its own, so every
    part that is wrong is named, each error's field the path in the spec (``vifs[0].address``).
    """
    validated = _SPEC_VALIDATOR.validate(without_none(spec))
    if validated.error_messages:
        return None, [KvmhostError('unknown key %s' % error.error_message if isinstance(error, UnsupportedError)
                                   else error.error_message) for error in validated.errors]
    spec = validated.validated_parameters
    try:
        uuid = check_uuid(spec['uuid'], 'uuid')
    except KvmhostError as exc:
        return None, [exc]
    vifs = spec.get('vifs') or []
    checks = [(check_vif_spec, vif, uuid, 'vifs[%d]' % index) for index, vif in enumerate(vifs)]
    # The firewall's ports and its groups apart, so that a fault in one does not hide a fault in the other.
    checks.append((check_firewall_spec, {'instance_uuid': uuid, 'vifs': vifs, 'security_groups': []}))
    checks.append((check_firewall_spec, {'instance_uuid': uuid, 'vifs': [],
                                         'security_groups': spec.get('security_groups') or []}))
    if params['action'] != 'delete':
        checks.append((_scoped, 'instance.', check_domain_spec, {
            'instance': spec, 'local_id': 1, 'virt_type': params['virt_type'], 'vnc': params['vnc'],
            'instances_path': params['instances_path'], 'volume_secrets': volume_secret_placeholders(spec)}))
        checks.append((check_flavor, spec['flavor']))
        checks.append((check_image, spec['image']))
    else:  # the volumes' other fields are checked by the domain XML's spec check
        checks.extend((check_portal, volume['target_portal'], 'volumes[%d].target_portal' % index)
                      for index, volume in enumerate(spec.get('volumes') or []))
    errors = []
    for check in checks:
        try:
            check[0](*check[1:])
        except KvmhostError as exc:
            if not any((exc.field or str(exc)) == (seen.field or str(seen)) for seen in errors):  # found twice
                errors.append(exc)
    return spec, errors


def cross_checks(specs, others):
    """MAC addresses and port ids: unique over the run's specs and the host's other instances.

    ``specs`` are (uuid, name, spec) of the run; ``others`` {uuid: network info} of the host's other
    instances. Returns [(uuid, field, message)].
    """
    owners, found = {}, []
    for uuid, info in sorted(others.items()):
        for vif in info or []:
            for key in ('id', 'address'):
                if vif.get(key):
                    owners.setdefault((key, str(vif[key]).lower()), 'instance %s of this host' % uuid)
    for uuid, name, spec in specs:
        for index, vif in enumerate(spec.get('vifs') or []):
            for key, what in (('id', 'port id'), ('address', 'MAC address')):
                value = str(vif.get(key)).lower()
                owner = owners.get((key, value))
                if owner is not None:
                    found.append((uuid, 'vifs[%d].%s' % (index, key), '%s %s is also the one of %s' % (what, value, owner)))
                else:
                    owners[(key, value)] = '%s (%s) of this run' % (name, uuid)
    return found


def probe_portal(portal, timeout=PORTAL_TIMEOUT):
    """None when a TCP connection to ADDRESS:PORT opens within ``timeout``, else why not."""
    host, port = check_portal(portal, 'target_portal')
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return 'the iSCSI portal %s does not answer: %s' % (portal, exc.strerror or exc)


class InstanceCheckDriver(LibvirtDriver):
    """instance_check: the checks of one run, read-only; refusals fail the module, every one named."""

    def __init__(self, module, connection=None, runner=None, meminfo=None, statvfs=os.statvfs, clock=time.monotonic,
                 sleep=time.sleep):
        super().__init__(module, connection)
        self.clock, self.sleep = clock, sleep
        self.runner = runner or hl.HostRunner(module)
        self.meminfo = meminfo or read_meminfo
        self.statvfs = statvfs
        self.refusals = []
        self.unknown = []
        self.host = {}
        self._spawned = set()  # instances whose unfinished rebuild has spawned its new domain (see _find_resumable)

    def refuse(self, message, uuid=None, name=None, field=None):
        reason = '%s: %s' % (field, message) if field and not message.startswith(field) else message
        where = '%s (%s)' % (name, uuid) if uuid else 'host %s' % self.params['libvirt_uri']
        self.refusals.append({'uuid': uuid, 'name': name, 'reason': reason, 'msg': '%s: %s' % (where, reason)})

    def run(self):
        try:
            return self._run()
        finally:
            forget_passwords(self.module, self.params['instances'])  # checked; the checks never print them

    @staticmethod
    def check_options(params):
        """The module's own options; the instance specs are checked by :func:`check_spec`, each refusal named."""
        check_int(params['claim_wait'], 'claim_wait', 0, MAX_TIMEOUT, 'seconds')
        if params.get('uuids') is not None and params['action'] != 'delete':
            raise KvmhostError('is for action delete only (the instances without a spec that the host knows)',
                               field='uuids')
        if params.get('transfer_bytes') and params['action'] != 'migrate_destination':
            raise KvmhostError('is for action migrate_destination only', field='transfer_bytes')
        for uuid, size in (params.get('transfer_bytes') or {}).items():
            check_uuid(uuid, 'transfer_bytes')
            check_int(size, 'transfer_bytes[%s]' % uuid, 0, 2 ** 50, 'bytes')
        ratio = params.get('cpu_allocation_ratio')
        if ratio is not None and not 1 <= ratio <= 1024:
            raise KvmhostError('must be 1 to 1024, got %s' % ratio, field='cpu_allocation_ratio')
        if params.get('claim'):
            check_int(params['claim']['stale_after'], 'claim.stale_after', MIN_CLAIM_STALE_SECONDS,
                      MAX_CLAIM_STALE_SECONDS, 'seconds')

    def _run(self):
        params = self.params
        self.check_options(params)
        results, checked, seen = [], [], set()
        for index, spec in enumerate(params['instances']):
            uuid = str((spec or {}).get('uuid') or '').lower() if isinstance(spec, dict) else ''
            name = (spec or {}).get('name') if isinstance(spec, dict) else None
            label = uuid or 'instances[%d]' % index
            if uuid and uuid in seen:
                self.refuse('instances[%d] is this instance again' % index, label, name, 'uuid')
                continue
            seen.add(uuid)
            validated, errors = check_spec(spec, params)
            for exc in errors:
                self.refuse(exc.msg, label, name, exc.field)
            results.append({'uuid': label, 'name': name, 'failed': False})
            # The host is checked for the specs that passed their own checks: a refused part (a source that is
            # no URL) is not read again.
            if validated is not None and not errors:
                checked.append((uuid, name, validated))
        known = []
        if params.get('uuids') is not None:
            known = self.read_known(params['uuids'], seen)
            for spec in known:
                results.append({'uuid': spec['uuid'], 'name': spec['name'], 'failed': False})
                checked.append((spec['uuid'], spec['name'], spec))
        self.check_host(checked)
        by_uuid = dict((result['uuid'], result) for result in results)
        for refusal in self.refusals:
            outcome = by_uuid.get(refusal['uuid'])
            if outcome is None and refusal['uuid']:  # an instance of uuids whose domain XML cannot be read
                outcome = by_uuid[refusal['uuid']] = {'uuid': refusal['uuid'], 'name': refusal['name'], 'failed': True}
                results.append(outcome)
            if outcome is not None:
                outcome['msg'] = '; '.join(filter(None, [outcome.get('msg'), refusal['reason']]))
                outcome['failed'] = True
        if not self.refusals and params.get('claim'):
            self.claim([uuid for uuid, _name, _spec in checked], checked)
        result = {'changed': False, 'results': results, 'host': self.host,
                  'refusals': [refusal['msg'] for refusal in self.refusals]}
        if params.get('uuids') is not None:
            result.update(known_instances=known, unknown_uuids=self.unknown,
                          known_uuids=sorted(seen.union(spec['uuid'] for spec in known) - {''}))
        if self.refusals:
            raise KvmhostError('%d check(s) refused, nothing was changed: %s' % (
                len(self.refusals), '; '.join(result['refusals'])), **result)
        return result

    # ------------------------------------------------------------ instances without a spec
    def read_known(self, uuids, given):
        """What deleting each of ``uuids`` without a spec in ``given`` takes, from what this host knows of it.

        Sets ``self.unknown`` to those the host knows nothing of (no record, no domain, no directory).
        """
        self.unknown, known, wanted = [], [], []
        for index, uuid in enumerate(uuids):
            try:
                uuid = check_uuid(uuid, 'uuids[%d]' % index)
            except KvmhostError as exc:
                self.refuse(exc.msg, field=exc.field)
                continue
            if uuid not in given and uuid not in wanted:
                wanted.append(uuid)
        if not wanted:
            return known
        try:
            conn = self.connection.conn
        except KvmhostError:  # check_host refuses the host that does not answer
            return known
        records = {}
        path = self.params['state_db']
        try:
            # Opened as _read_store opens it: outside check mode an older schema is migrated, not refused (the
            # run writes the store anyway); no store yet (or no directory, which _check_paths refuses) knows none.
            store = StateStore.open(path, readonly=self.check_mode) if os.path.exists(path) else None
            if store is not None:
                with store:
                    for uuid in wanted:
                        record = store.get_instance(uuid)
                        if record is not None:
                            records[uuid] = (record, store.get_network_info(uuid))
        except KNOWN_ERRORS + (KvmhostError,) as exc:
            self.refuse(describe_error(exc) if not isinstance(exc, KvmhostError) else exc.msg, field='state_db')
            return known
        defined = dict((domain.UUIDString().lower(), domain) for domain in conn.listAllDomains(0))
        for uuid in wanted:
            record, network_info = records.get(uuid, (None, None))
            domain = defined.get(uuid)
            try:
                spec = known_instance(uuid, record, network_info,
                                      domain.XMLDesc(VIR_DOMAIN_XML_INACTIVE) if domain is not None else None,
                                      self.params['instances_path'])
            except KvmhostError as exc:
                self.refuse(exc.msg, uuid, (record or {}).get('name'), 'uuids')
                continue
            if spec is None:
                self.unknown.append(uuid)
            else:
                known.append(spec)
        return known

    # ------------------------------------------------------------ the run's claim
    def claim(self, uuids, checked):
        """Claim the run's instances for its request id, waiting up to claim_wait seconds for another run's.

        In check mode nothing is claimed; an instance another live run has is refused all the same.
        """
        request_id = self.params['claim']['request_id']
        wait = self.params['claim_wait']
        deadline = self.clock() + wait
        pending = list(uuids)
        held = {}
        while True:
            store = StateStore.open(self.params['state_db'], readonly=self.check_mode)
            if store is None:  # check mode, no store yet: nobody has anything
                pending = []
                break
            with store:
                for uuid in list(pending):
                    if self.check_mode:
                        holder = store.other_run_claim(uuid, request_id)
                    else:
                        holder = store.claim(uuid, request_id, self.params['action'],
                                             stale_after=self.params['claim']['stale_after'])
                    if holder is None:
                        pending.remove(uuid)
                        held.pop(uuid, None)
                    else:
                        held[uuid] = holder
            if not pending or self.clock() >= deadline or self.check_mode:
                break
            self.sleep(CLAIM_POLL_INTERVAL)
        if pending and not self.check_mode:
            with StateStore.open(self.params['state_db']) as store:
                store.release(request_id)  # all or nothing: the run does not start
        for uuid in pending:
            holder = held[uuid]
            self.refuse('another run on this host has it: request %s (%s) since %s, last heard from at %s (its claim '
                        'is taken over after %d s of silence); waited %d s'
                        % (holder['request_id'], holder['action'], holder['claimed_at'], holder['heartbeat_at'],
                           holder['stale_after'], wait), uuid, _name(checked, uuid), 'uuid')
        if not pending:
            self.host['claimed'] = [] if self.check_mode else list(uuids)

    # ------------------------------------------------------------ the host
    def check_host(self, checked):
        params = self.params
        action = params['action']
        self._check_paths(action)
        records, others = self._read_store(checked)
        for uuid, field, message in cross_checks(checked, others):
            self.refuse(message, uuid, _name(checked, uuid), field)
        try:
            conn = self.connection.conn
        except KvmhostError as exc:
            self.refuse(exc.msg, field='libvirt_uri')
            return
        self.host['libvirt_uri'] = params['libvirt_uri']
        if action == 'delete':
            return
        listed = conn.listAllDomains(0)
        if action == 'migrate_source':
            self._check_leaving(checked, records, listed)
            return
        if action == 'migrate_destination':
            records = self._check_arriving(checked, records, listed)
            checked = [entry for entry in checked if entry[0] not in self.host['arrived']]
        self._check_names(domains_by_local_id(listed), checked, records)
        if action == 'rebuild':
            self._find_resumable(checked, records)
        self._check_network(checked)
        self._check_portals(checked)
        self._check_resources(checked, records, set(domain.UUIDString().lower() for domain in listed))
        if action == 'migrate_destination':
            self._check_vcpus(checked, conn, listed)

    # ------------------------------------------------------------ cold migration
    def _check_leaving(self, checked, records, listed):
        """The source of a migration has each instance: its record (with no other task unfinished), its domain and
        its directory; the bytes of each directory (what travels besides the bases) go into
        ``host.transfer_bytes``. An instance this host's record says was migrated away goes into
        ``host.departed`` ({uuid: the host its record names}), not refused: a second run finds it gone."""
        domains = set(domain.UUIDString().lower() for domain in listed)
        sizes, departed = {}, {}
        for uuid, name, _spec in checked:
            record = records.get(uuid)
            directory = os.path.join(self.params['instances_path'], uuid)
            if record is not None and record['deleted'] and record['host']:
                departed[uuid] = record['host']
                continue
            if record is None or record['deleted']:
                self.refuse('this host has no record of it: it does not run here', uuid, name, 'uuid')
                continue
            if record['task_state'] not in (None, 'migrating'):
                self.refuse('its task %s did not finish here; finish it first' % record['task_state'], uuid, name,
                            'uuid')
            # A migration killed while it removed the instance here (its destination runs it) left part of it.
            unfinished = record['task_state'] == 'migrating'
            if uuid not in domains and not unfinished:
                self.refuse('libvirt has no domain of it here', uuid, name, 'uuid')
            if os.path.isdir(directory) and not os.path.islink(directory):
                sizes[uuid] = sum(entry.stat(follow_symlinks=False).st_size for entry in os.scandir(directory)
                                  if entry.is_file(follow_symlinks=False))
            elif not unfinished:
                self.refuse('its directory %s does not exist' % directory, uuid, name, 'uuid')
        self.host.update(transfer_bytes=sizes, departed=departed)

    def _check_arriving(self, checked, records, listed):
        """The destination of a migration must not have the instance (a domain, a live record, a directory).

        What an unfinished migration of it left here (its record in task_state migrating, its directory, its
        incoming copy, a domain defined but shut off) is no reason to refuse: the import replaces it. An
        instance an earlier migration brought here and started (its newest action a migrate, finished, or
        killed after the start with the record still migrating) goes into ``host.arrived``: that run ended
        before the source let it go. Returns the records that count as this host's (none of the arriving ones).
        """
        domains = dict((domain.UUIDString().lower(), domain) for domain in listed)
        kept, arrived = {}, []
        for uuid, name, _spec in checked:
            record = records.get(uuid)
            leftover = record is not None and not record['deleted'] and record['task_state'] == 'migrating'
            domain = domains.get(uuid)
            if domain is not None and record is not None and self._arrived(record, domain):
                arrived.append(uuid)
            elif domain is not None and not (leftover and not domain.isActive()):
                self.refuse('libvirt here has a domain of it already (%s): it runs on this host'
                            % domain.name(), uuid, name, 'to')
            elif record is not None and not record['deleted'] and not leftover:
                self.refuse('this host has it already (vm_state %s)' % record['vm_state'], uuid, name, 'to')
            elif os.path.isdir(os.path.join(self.params['instances_path'], uuid)) and not leftover:
                self.refuse('its directory %s exists here already' % os.path.join(self.params['instances_path'], uuid),
                            uuid, name, 'to')
            if record is not None and record['deleted']:
                kept[uuid] = record  # its local id is given back to it
        self.host['arrived'] = arrived
        return kept

    def _arrived(self, record, domain):
        if record['deleted'] or record['task_state'] not in (None, 'migrating') or not domain.isActive():
            return False
        store = StateStore.open(self.params['state_db'], readonly=True)
        if store is None:
            return False
        with store:
            actions = store.list_actions(record['uuid'], with_events=False)
        newest = actions[-1] if actions else None
        if newest is None or newest['action'] != 'migrate' or newest['message']:
            return False
        return bool(newest['finish_time']) or record['task_state'] == 'migrating'

    def _check_vcpus(self, checked, conn, listed):
        """The vCPUs of the domains that run here and of the arriving instances, against the host's CPUs times the
        allocation ratio (Nova's cpu_allocation_ratio)."""
        ratio = self.params.get('cpu_allocation_ratio') or DEFAULT_CPU_ALLOCATION_RATIO
        cpus = conn.getInfo()[2]
        used = sum(domain.info()[3] for domain in listed if domain.isActive())
        needed = sum(spec['flavor'].get('vcpus') or 1 for _uuid, _name, spec in checked)
        limit = int(cpus * ratio)
        self.host.update(vcpus=cpus, vcpus_used=used, vcpus_needed=needed, vcpus_limit=limit)
        if checked and used + needed > limit:
            self.refuse('the arriving instances need %d vCPUs, %d of the %d this host allows (%d CPUs x allocation '
                        'ratio %s) are in use' % (needed, used, limit, cpus, ratio), field='flavor.vcpus')

    def _check_paths(self, action):
        path = self.params['instances_path']
        if not os.path.isdir(path):
            self.refuse('%s is not a directory (host.yml makes it)' % path, field='instances_path')
        elif action != 'delete' and not os.access(path, os.W_OK | os.X_OK):
            self.refuse('%s is not writable' % path, field='instances_path')
        state_dir = os.path.dirname(self.params['state_db']) or '.'
        if not os.path.isdir(state_dir):
            self.refuse('the directory %s of the state store does not exist' % state_dir, field='state_db')

    def _read_store(self, checked):
        """{uuid: record} of the run's instances, {uuid: network info} of the host's other instances."""
        path = self.params['state_db']
        if not os.path.exists(path):
            self.host['next_local_id'] = 1
            return {}, {}
        try:
            # Outside check mode the run writes the store anyway (its claims): open it so, which migrates an
            # older schema first.
            store = StateStore.open(path, readonly=self.check_mode)
            if store is None:  # made by a writer that has not migrated it yet: empty so far
                self.host['next_local_id'] = 1
                return {}, {}
            with store:
                run = set(uuid for uuid, _name_, _spec in checked)
                records, others = {}, {}
                for record in store.list_instances(include_deleted=True):
                    if record['uuid'] in run:  # a deleted record booted again keeps its local id
                        records[record['uuid']] = record
                        self._note_spawned(store, record['uuid'])
                    elif not record['deleted']:
                        others[record['uuid']] = store.get_network_info(record['uuid']) or []
                self.host['next_local_id'] = store.next_local_id()
                return records, others
        except KNOWN_ERRORS + (KvmhostError,) as exc:
            self.refuse(describe_error(exc) if not isinstance(exc, KvmhostError) else exc.msg, field='state_db')
            return {}, {}

    def _check_names(self, holders, checked, records):
        """The domain name of each recorded instance's local id must not be another domain's.

        ``holders`` is {local id: domain UUID}. A new record skips the ids whose names other domains have
        (instance_record does), so the names of new instances are free by construction; ``local_ids`` holds
        the ids they are expected to get, in the run's order (records made concurrently may take them in
        another order).
        """
        next_id = self.host.get('next_local_id', 1)
        local_ids = {}
        for uuid, name, _spec in checked:
            record = records.get(uuid)
            if record is None:
                while holders.get(next_id) not in (None, uuid):
                    next_id += 1
                local_ids[uuid], next_id = next_id, next_id + 1
                continue
            local_ids[uuid] = record['local_id']
            holder = holders.get(record['local_id'])
            if holder is not None and holder != uuid:
                self.refuse('its local id %d names the domain %s, which libvirt has for another instance, %s '
                            '(another state store on this host?)' % (record['local_id'],
                                                                     domain_name(record['local_id']), holder),
                            uuid, name, 'uuid')
        self.host['local_ids'] = local_ids

    def _note_spawned(self, store, uuid):
        """Remember the instance when its newest rebuild is unfinished (open, or ended as interrupted when a later
        run took its claim over: a boot.yml run in between) and its spawning succeeded."""
        rebuilds = [action for action in store.list_actions(uuid, with_events=False) if action['action'] == 'rebuild']
        newest = rebuilds[-1] if rebuilds else None
        if newest is None or not (newest['finish_time'] is None
                                  or (newest['message'] or '').startswith(INTERRUPTED + ':')):
            return
        event = store.get_event(newest['id'], 'spawning')
        if event is not None and event['result'] == 'Success':
            self._spawned.add(uuid)

    def _find_resumable(self, checked, records):
        """The instances whose unfinished rebuild already runs the new domain: the rerun only finishes them.

        A run killed after its spawning step succeeded (at the power sync, before the old directory was
        deleted, or at the audit) left an unfinished rebuild action whose spawning event is a success, and
        the new domain running from the new directory's ``libvirt.xml`` on the spec's image. Shutting it
        down and rebuilding it again would throw a working instance away; the rerun skips the shutdown, the
        unplug and the move for it, and the later steps, which are idempotent, find it done and finish it.
        A run killed earlier (the old domain may still run, even on the spec's image) is rebuilt again.
        """
        resumable = []
        for uuid, _name, spec in checked:
            record = records.get(uuid)
            if record is None or uuid not in self._spawned:
                continue
            xml_path = os.path.join(self.params['instances_path'], uuid, 'libvirt.xml')
            try:
                domain = self.connection.domain_by_uuid(uuid)
                if (domain is None or LIBVIRT_TO_POWER_STATE.get(domain.state()[0]) != RUNNING
                        or not os.path.isfile(xml_path)):
                    continue
                wanted = read_text(xml_path)
                if domain_drift(wanted, domain.XMLDesc(VIR_DOMAIN_XML_INACTIVE)):
                    continue
                root = parse_xml(wanted).find('metadata/{%s}instance/{%s}root' % (NOVA_NS, NOVA_NS))
            except KNOWN_ERRORS + (KvmhostError,):  # not provably done: rebuilt again, as before
                continue
            if root is not None and root.get('uuid') == spec['image']['id']:
                resumable.append(uuid)
        self.host['resumable'] = resumable

    def _check_network(self, checked):
        bridges, physical = {}, {}
        for uuid, name, spec in checked:
            for index, vif in enumerate(spec.get('vifs') or []):
                if vif['type'] in ('ovs', 'ovs_hybrid'):
                    bridges.setdefault(vif.get('bridge') or DEFAULT_OVS_BRIDGE, []).append(
                        (uuid, name, 'vifs[%d].bridge' % index))
                if vif.get('physical_interface'):
                    physical.setdefault(vif['physical_interface'], []).append(
                        (uuid, name, 'vifs[%d].physical_interface' % index))
        if bridges:
            try:
                present = hl.read_ovs(self.runner, []).bridges
            except KvmhostError as exc:
                self.refuse('Open vSwitch cannot be read: %s' % exc.msg, field='vifs')
                present = None
            for bridge, users in sorted(bridges.items()):
                if present is not None and bridge not in present:
                    for uuid, name, field in users:
                        self.refuse('the Open vSwitch bridge %s does not exist' % bridge, uuid, name, field)
            self.host['ovs_bridges'] = sorted(bridges)
        if physical:
            links = hl.read_links(self.runner)
            for device, users in sorted(physical.items()):
                if device not in links:
                    for uuid, name, field in users:
                        self.refuse('the network device %s does not exist' % device, uuid, name, field)

    def _check_portals(self, checked):
        users = {}
        for uuid, name, spec in checked:
            for index, volume in enumerate(spec.get('volumes') or []):
                users.setdefault(volume['target_portal'], []).append(
                    (uuid, name, 'volumes[%d].target_portal' % index))
        if not users:
            return
        portals = sorted(users)
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(portals))) as pool:
            answers = dict(zip(portals, pool.map(probe_portal, portals)))
        for portal in portals:
            if answers[portal]:
                for uuid, name, field in users[portal]:
                    self.refuse(answers[portal], uuid, name, field)
        self.host['portals'] = portals

    def _check_resources(self, checked, records, domains):
        """Memory for the instances this run starts anew (no record, no domain), disk for their bases and
        directories."""
        new = [(uuid, name, spec) for uuid, name, spec in checked if uuid not in records and uuid not in domains]
        meminfo = self.meminfo()
        available_mb = meminfo.get('MemAvailable', meminfo.get('MemFree', 0)) // 1024
        needed_mb = sum(spec['flavor']['memory_mb'] for _uuid, _name, spec in new)
        self.host.update(new_instances=[uuid for uuid, _name, _spec in new], memory_available_mb=available_mb,
                         memory_needed_mb=needed_mb)
        if new and needed_mb + MEMORY_MARGIN_MB > available_mb:
            self.refuse('the new instances need %d MiB of memory (%s), the host has %d MiB available' % (
                needed_mb, ', '.join('%s %d' % (name, spec['flavor']['memory_mb']) for _u, name, spec in new),
                available_mb), field='flavor.memory_mb')
        cache = ImageCache(self.params['instances_path'], None)
        bases = {}
        for _uuid, _name, spec in new:
            image = spec['image']
            if image.get('source') and not os.path.exists(cache.path(image_base_name(image['id']))):
                source = parse_source(image['source'])
                # The size of an http(s) image is known once it is fetched: the fetch checks the disk then.
                if source.kind == 'file' and os.path.isfile(source.location):
                    bases[image['id']] = os.path.getsize(source.location)
        transfer = sum((self.params.get('transfer_bytes') or {}).get(uuid, 0) for uuid, _name, _spec in new)
        needed_disk_mb = ((sum(bases.values()) + transfer) // (1024 * 1024)) + DISK_MARGIN_MB * len(new)
        try:
            stats = self.statvfs(self.params['instances_path'])
        except OSError:
            return  # refused with the path already
        free_mb = stats.f_bavail * stats.f_frsize // (1024 * 1024)
        self.host.update(disk_free_mb=free_mb, disk_needed_mb=needed_disk_mb)
        if new and needed_disk_mb > free_mb:
            self.refuse('the new instances need %d MiB in %s (base images %s and their directories), %d MiB are '
                        'free' % (needed_disk_mb, self.params['instances_path'], ', '.join(sorted(bases)) or 'cached',
                                  free_mb), field='instances_path')


def _name(checked, uuid):
    for candidate, name, _spec in checked:
        if candidate == uuid:
            return name
    return None
