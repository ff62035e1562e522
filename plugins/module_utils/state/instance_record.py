# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning and applying writes to the state store (the logic of the instance_record module).

``plan_record`` is pure apart from reading the store: it compares what the module was asked
for with what the store holds and returns a :class:`Plan` whose steps write only what
differs. Events are keyed by (instance, request id, event name), so recording the same step
twice changes nothing the second time.
"""

from __future__ import annotations

import copy

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import Plan
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    check_display_name, check_token, check_uuid, check_writable_parent)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import (
    EVENT_RESULTS, LazyStore, StateStore, canonical_json, parse_timestamp, utcnow)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import RUNNING, domains_by_local_id
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.driver import LibvirtDriver

RECORD_OPTIONS = ('name', 'vm_state', 'task_state', 'power_state', 'image', 'flavor', 'host', 'launched_at')
_RESULT_NAMES = dict((name.lower(), name) for name in EVENT_RESULTS)


class Snapshot(object):
    """What the store holds now about one instance (empty when the store does not exist yet)."""

    def __init__(self, instance=None, network_info=None, action=None, event=None):
        self.instance = instance
        self.network_info = network_info
        self.action = action
        self.event = event

    @classmethod
    def read(cls, store, uuid, request_id=None, event_name=None):
        if store is None:
            return cls()
        action = store.get_action(uuid, request_id) if request_id else None
        event = store.get_event(action['id'], event_name) if action and event_name else None
        return cls(store.get_instance(uuid), store.get_network_info(uuid), action, event)


def validate_params(params):
    """Check what argument_spec cannot; return the normalized UUID."""
    uuid = check_uuid(params['uuid'])
    if params.get('name') is not None:
        check_display_name(params['name'])
    if params.get('host') is not None:
        check_token(params['host'], 'host')
    if params.get('launched_at') not in (None, 'now'):
        parse_timestamp(params['launched_at'], 'launched_at')
    action = params.get('action')
    if action:
        check_token(action['request_id'], 'action.request_id')
    event = params.get('event')
    if event:
        if not action:
            raise KvmhostError('an event belongs to an action: give action.name and action.request_id too',
                               field='event')
        check_token(event['name'], 'event.name')
        if event['phase'] == 'start' and event.get('result'):
            raise KvmhostError('a result is given with phase finish, not start', field='event.result')
    return uuid


def wanted_instance_fields(params, current, now):
    """The instance columns the parameters ask for, in the store's representation."""
    wanted = {}
    for key in RECORD_OPTIONS:
        value = params.get(key)
        if value is None:
            continue
        if key == 'task_state' and value == 'none':
            value = None
        elif key == 'launched_at':
            if value == 'now':
                # 'now' stamps the launch once; an explicit timestamp sets exactly that.
                if current and current.get('launched_at'):
                    continue
                value = now
            else:
                value = parse_timestamp(value, 'launched_at')
        wanted[key] = value
    if params.get('state') == 'deleted':
        wanted.update(vm_state='deleted', task_state=None, deleted=True)
        if not (current and current.get('deleted')):
            wanted['deleted_at'] = now
    elif current and current.get('deleted'):
        # Recording an instance again brings it back under the same local id.
        wanted.update(deleted=False, deleted_at=None)
    return wanted


def plan_record(params, snapshot, store, now=None, taken_local_ids=()):
    """Return the Plan for one instance_record call.

    ``store`` is a callable returning a writable StateStore (a :class:`LazyStore`); it is
    called only when the plan is applied, so check mode never creates or migrates the file.
    A new record skips ``taken_local_ids``.
    """
    now = now or utcnow()
    uuid = validate_params(params)
    current = snapshot.instance
    before, after = {}, {}
    plan = Plan(before, after)

    # ---- the instance record
    wanted = wanted_instance_fields(params, current, now)
    if current is None:
        if params.get('state') == 'deleted':
            raise KvmhostError('instance %s has no record to mark deleted' % uuid, field='uuid')
        if params.get('name') is None:
            raise KvmhostError('instance %s has no record yet: give name to create it' % uuid, field='name')
        before['instance'] = None
        after['instance'] = dict(wanted, uuid=uuid)
        after['instance'].setdefault('vm_state', 'building')
        plan.add('create the record of instance %s' % uuid,
                 lambda: store().save_instance(uuid, wanted, now, taken_local_ids))
    else:
        differing = dict((key, value) for key, value in wanted.items() if _differs(current.get(key), value))
        if differing:
            before['instance'] = dict((key, current.get(key)) for key in differing)
            after['instance'] = copy.deepcopy(differing)
            plan.add('update %s of instance %s' % (', '.join(sorted(differing)), uuid),
                     lambda: store().save_instance(uuid, differing, now))

    # ---- the network info cache
    network_info = params.get('network_info')
    if network_info is not None and _differs(snapshot.network_info, network_info):
        before['network_info'] = snapshot.network_info
        after['network_info'] = network_info
        plan.add('update the network info cache of instance %s' % uuid,
                 lambda: store().set_network_info(uuid, network_info, now))

    # ---- the action and its event
    action = params.get('action')
    if action:
        _plan_action(plan, store, uuid, action, params.get('event'), snapshot, now)
    return plan


def _plan_action(plan, store, uuid, action, event, snapshot, now):
    request_id = action['request_id']
    current = snapshot.action
    if current is not None and current['action'] != action['name']:
        raise KvmhostError('request %s of instance %s is a %s action, not %s'
                           % (request_id, uuid, current['action'], action['name']), field='action.request_id')
    finish = now if action.get('finished') and not (current and current.get('finish_time')) else None
    message = action.get('note')
    if message is not None and current is not None and current.get('message') == message:
        message = None
    if current is None or finish or message is not None:
        plan.before['action'] = _public_action(current)
        plan.after['action'] = dict(_public_action(current) or {}, action=action['name'], request_id=request_id)
        if finish:
            plan.after['action']['finish_time'] = finish
        if message is not None:
            plan.after['action']['message'] = message
        plan.add('%s action %s of instance %s' % ('record' if current is None else 'update', request_id, uuid),
                 lambda: store().save_action(uuid, request_id, action=action['name'], start_time=now,
                                             finish_time=finish, message=message))
    if not event:
        return
    name = event['name']
    current_event = snapshot.event
    changes = {}
    if event['phase'] == 'finish':
        result = _RESULT_NAMES[event.get('result') or 'success']
        if current_event is None or not current_event.get('finish_time') or current_event.get('result') != result:
            changes.update(finish_time=now, result=result)
    for option, key in (('note', 'message'), ('details', 'details')):
        if event.get(option) is not None and (current_event is None or _differs(current_event.get(key), event[option])):
            changes[key] = event[option]
    if current_event is not None and not changes:
        return
    plan.before['event'] = current_event
    plan.after['event'] = dict(current_event or {'event': name, 'start_time': now}, **changes)

    def save_event():
        saved_action = store().get_action(uuid, request_id)
        store().save_event(saved_action['id'], name, start_time=now, **changes)

    plan.add('%s event %s of action %s' % (
        'record' if current_event is None else 'finish' if 'finish_time' in changes else 'update',
        name, request_id), save_event)


def _public_action(action):
    if action is None:
        return None
    return dict((key, action[key]) for key in ('action', 'request_id', 'start_time', 'finish_time', 'message'))


def _differs(current, wanted):
    if isinstance(current, (dict, list)) or isinstance(wanted, (dict, list)):
        return canonical_json(current) != canonical_json(wanted)
    return current != wanted


def read_snapshot(path, uuid, params):
    """Read the snapshot without creating or migrating anything."""
    action = params.get('action') or {}
    event = params.get('event') or {}
    store = StateStore.open(path, readonly=True)
    if store is None:
        return Snapshot()
    with store:
        return Snapshot.read(store, uuid, action.get('request_id'), event.get('name'))


class RecordDriver(LibvirtDriver):
    """The instance_record module: plan against a read-only snapshot, write only on apply."""

    # As a step that records itself, the record this module writes must exist before its event can.
    creates_record = True
    # libvirt only for sync_power_state and a new record's local id.
    connect_at_open = False

    def record_note(self, result):
        notes = []
        if self.params.get('sync_power_state'):
            notes.append(self.power_sync_note)
        if self.params.get('network_info') is not None:
            notes.append('%d VIFs' % len(self.params['network_info']))
        if not notes and result.get('instance') and result['instance'].get('local_id') is not None:
            notes.append('local id %d' % result['instance']['local_id'])
        return '; '.join(notes) or super().record_note(result)

    def sync_power_state(self, uuid):
        """Nova's power sync after a lifecycle event: the hypervisor's power state becomes the record's."""
        live = self.connect().domain_state(uuid)
        if self.params['expect_running'] and live['power_state'] != RUNNING:
            raise KvmhostError('the domain of %s is %s, not running' % (uuid, live['libvirt_state'] or 'not defined'),
                               field='expect_running')
        store = StateStore.open(self.params['state_db'], readonly=True)
        record = None
        if store is not None:
            with store:
                record = store.get_instance(uuid)
        self.power_sync_note = 'vm_state %s, task_state %s, DB power_state %s, VM power_state %d' % (
            self.params.get('vm_state') or (record or {}).get('vm_state'), (record or {}).get('task_state'),
            (record or {}).get('power_state'), live['power_state'])
        self.params['power_state'] = live['power_state']

    def taken_local_ids(self, uuid):
        """The local ids whose domain names (instance-%08x) other domains of the host already have."""
        return frozenset(local_id for local_id, holder in domains_by_local_id(self.connect().conn.listAllDomains(0)).items()
                         if holder != uuid)

    def run(self):
        uuid = validate_params(self.params)
        if self.params.get('sync_power_state'):
            self.sync_power_state(uuid)
        path = self.params['state_db']
        snapshot = read_snapshot(path, uuid, self.params)
        if snapshot.instance is None and not self.check_mode:
            # Fail on an unusable path before planning anything, not half-way through applying.
            check_writable_parent(path, 'state_db')
        taken = self.taken_local_ids(uuid) if snapshot.instance is None and not self.check_mode else ()
        store = LazyStore(path)
        try:
            plan = plan_record(self.params, snapshot, store, taken_local_ids=taken)
            result = self.finish(plan)
            if plan.changed and not self.check_mode:
                instance = store().get_instance(uuid)
                network_info = store().get_network_info(uuid)
            else:
                instance = _preview_instance(snapshot.instance, plan.after.get('instance'))
                network_info = plan.after.get('network_info', snapshot.network_info)
        finally:
            store.close()
        result.update(instance=instance, network_info=network_info)
        return result


def _preview_instance(current, changes):
    """The record as it would be after the plan (check mode), from the snapshot and the changes."""
    if current is None and changes is None:
        return None
    preview = dict(current or {'local_id': None, 'domain_name': None, 'deleted': False, 'power_state': 0,
                               'task_state': None})
    preview.update(changes or {})
    return preview
