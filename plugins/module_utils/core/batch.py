# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One step for many instances in one module run, and steps that record themselves.

Every step module takes its options for one instance (as it always did) or a list of them in
``instances``. In a batch, each item is validated against the module's own argument spec before
anything runs, then the module's driver runs once per item in a thread pool of at most
``concurrency`` workers: the waits (guest shutdown, domain start, image fetch, volume probe)
overlap, and one instance's failure never stops the others. Each instance's outcome is reported
on its own in ``results``.

Given ``record`` (the run's request id, its action and this step's event), the step writes each
instance's event start to the state store before the work and its finish (result, note, details)
after it, with the task_state/vm_state change the step implies. Instances whose action in this
request already failed at an earlier step are skipped, so a role passes every instance of the run
to every step and the store says which are still in it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import threading
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core import argument_specs
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import (
    KNOWN_ERRORS, ModuleDriver, describe_error, forget_passwords)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import check_int
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import (
    ACTIONS, TASK_STATES, VM_STATES, StateStore, utcnow)

MAX_CONCURRENCY = 64
# Seconds between the heartbeats a step sends for the run's claims (see instance_check's claim option).
HEARTBEAT_INTERVAL = 10
DEFAULT_CONCURRENCY = 16

# doc fragment kvmhost.lifecycle.batch
BATCH = dict(
    instances=dict(type='list', elements='dict'),
    concurrency=dict(type='int', default=DEFAULT_CONCURRENCY),
    keep_going=dict(type='bool', default=False),
    record=dict(type='dict', options=dict(
        request_id=dict(type='str', required=True),
        action=dict(type='str', required=True, choices=list(ACTIONS)),
        event=dict(type='str', required=True),
        finish=dict(type='bool', default=True),
        task_state=dict(type='str', choices=['none'] + list(TASK_STATES)),
        on_success=dict(type='dict', options=dict(
            vm_state=dict(type='str', choices=list(VM_STATES)),
            task_state=dict(type='str', choices=['none'] + list(TASK_STATES)),
            launched_at=dict(type='bool', default=False),
            finish_action=dict(type='bool', default=False),
            action_note=dict(type='str'),
        )),
        on_error=dict(type='dict', options=dict(
            vm_state=dict(type='str', choices=list(VM_STATES)),
            task_state=dict(type='str', choices=['none'] + list(TASK_STATES)),
            finish_action=dict(type='bool', default=False),
        )),
        select=dict(type='str', choices=['running', 'failed'], default='running'),
        failed_at=dict(type='list', elements='str'),
        only=dict(type='list', elements='str'),
    )),
)
BATCH_OPTIONS = tuple(BATCH)
# Options every module of the action group kvmhost.lifecycle.steps accepts, so that module_defaults
# of the group can carry them; a module that has no use for one ignores it.
HOST_OPTIONS = ('libvirt_uri', 'state_db', 'instances_path')
SHARED_HOST_SPECS = argument_specs.merged(argument_specs.LIBVIRT, argument_specs.STATE_STORE,
                                          argument_specs.INSTANCES_PATH)


def relaxed(spec):
    """A copy of a one-instance argument spec in which nothing is required (a batch gives it per item)."""
    copied = copy.deepcopy(spec)
    for definition in copied.values():
        definition.pop('required', None)
    return copied


def check_record(record):
    """A ``record`` dict given without its argument spec (resource_audit's record_event), validated."""
    result = ArgumentSpecValidator(BATCH['record']['options']).validate(without_none(record or {}))
    if result.error_messages:
        raise KvmhostError('; '.join(result.error_messages), field='record_event')
    return result.validated_parameters


class ItemModule(object):
    """What a driver sees of the AnsibleModule when it runs for one item of a batch.

    Commands, binary look-ups and no_log values go to the real module; warnings are kept per item;
    ``fail_json`` (a missing library) becomes a KvmhostError of this item.
    """

    def __init__(self, module, params):
        self._module = module
        self.params = params
        self.check_mode = module.check_mode
        self._diff = module._diff
        self.no_log_values = module.no_log_values
        self.warnings = []

    def run_command(self, *args, **kwargs):
        return self._module.run_command(*args, **kwargs)

    def get_bin_path(self, *args, **kwargs):
        return self._module.get_bin_path(*args, **kwargs)

    def warn(self, warning):
        self.warnings.append(warning)

    def fail_json(self, msg, **_kwargs):
        raise KvmhostError(msg)


class Recorder(object):
    """Writes a step's events to the state store, one writer at a time, one short connection per write."""

    def __init__(self, path, record, check_mode):
        self.path = path
        self.record = record
        self.check_mode = check_mode
        self._lock = threading.Lock()

    def _store(self, readonly=False):
        return StateStore.open(self.path, readonly=readonly)

    def _run_events(self, store, uuid):
        action = store.get_action(uuid, self.record['request_id'])
        if action is None:
            return None, []
        events = store.list_actions(uuid)
        for candidate in events:
            if candidate['id'] == action['id']:
                return action, candidate['events']
        return action, []

    def records(self, uuid):
        """Whether this run records this instance (O(record.only))."""
        only = self.record.get('only')
        return only is None or uuid in [str(u).lower() for u in only]

    def skip_reason(self, uuid):
        """Why this instance is not (or no longer) in this step's part of the run, or None."""
        record = self.record
        with self._lock:
            store = self._store(readonly=True)
            if store is None:
                action, events = None, []
            else:
                with store:
                    action, events = self._run_events(store, uuid)
        errors = [event for event in events if event['result'] == 'Error' and event['event'] != record['event']]
        if record['select'] == 'failed':
            own = [event for event in events if event['event'] == record['event'] and event['result'] == 'Error']
            if own:
                return '%s failed already: %s' % (record['event'], own[0].get('message') or 'failed')
            counted = [event for event in errors if event['event'] in record['failed_at']]
            if not counted:
                return 'nothing to do: %s did not fail at %s in request %s' % (
                    uuid, ', '.join(record['failed_at']), record['request_id'])
            return None
        if action is not None and action.get('finish_time') and not _is_event(events, record['event']):
            return 'request %s of %s has ended' % (record['request_id'], uuid)
        if errors:
            return 'stopped at %s: %s' % (errors[0]['event'], errors[0].get('message') or 'failed')
        return None

    def start(self, uuid, started_at):
        if self.check_mode:
            return
        record = self.record
        with self._lock, self._store() as store:
            if store.get_instance(uuid) is None:
                raise KvmhostError('instance %s has no record on this host (in %s): it was never booted here'
                                   % (uuid, self.path), field='record')
            claim = store.other_run_claim(uuid, record['request_id'])
            if claim is not None:
                raise KvmhostError('instance %s is in request %s (%s) of another run on this host since %s'
                                   % (uuid, claim['request_id'], claim['action'], claim['claimed_at']),
                                   field='record.request_id')
            action = store.save_action(uuid, record['request_id'], action=record['action'], start_time=started_at)
            if action['action'] != record['action']:
                raise KvmhostError('request %s of instance %s is a %s action, not %s'
                                   % (record['request_id'], uuid, action['action'], record['action']),
                                   field='record.request_id')
            if store.get_event(action['id'], record['event']) is None:
                store.save_event(action['id'], record['event'], start_time=started_at)
            if record.get('task_state'):
                store.save_instance(uuid, {'task_state': _task_state(record['task_state'])})

    @contextlib.contextmanager
    def heartbeat(self, uuids):
        """While the step works, refresh the run's claims on ``uuids`` every HEARTBEAT_INTERVAL seconds."""
        if self.check_mode or not uuids:
            yield
            return
        stop = threading.Event()

        def beat():
            while True:
                try:
                    with self._lock, self._store() as store:
                        store.heartbeat(self.record['request_id'], uuids)
                except KNOWN_ERRORS + (KvmhostError,):
                    pass  # a missed beat: the next one, or the step's own writes, will tell
                if stop.wait(HEARTBEAT_INTERVAL):
                    return

        thread = threading.Thread(target=beat, name='kvmhost-heartbeat', daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def finish(self, uuid, ok, note, details=None, fields=None):
        """The step's end: the event's result, the instance fields it implies, the action's end."""
        if self.check_mode:
            return
        record = self.record
        outcome = (record.get('on_success') if ok else record.get('on_error')) or {}
        instance_fields = {}
        if outcome.get('vm_state'):
            instance_fields['vm_state'] = outcome['vm_state']
        if outcome.get('task_state'):
            instance_fields['task_state'] = _task_state(outcome['task_state'])
        if ok:
            if outcome.get('launched_at'):
                instance_fields['launched_at'] = utcnow()
            instance_fields.update(fields or {})
        network_info = instance_fields.pop('network_info', None)
        now = utcnow()
        with self._lock, self._store() as store:
            action = store.get_action(uuid, record['request_id'])
            if action is None:
                return
            if record['finish'] or not ok:
                store.save_event(action['id'], record['event'], finish_time=now,
                                 result='Success' if ok else 'Error', message=note or None, details=details)
            if instance_fields:
                store.save_instance(uuid, instance_fields, now)
            if network_info is not None:
                store.set_network_info(uuid, network_info, now)
            if outcome.get('finish_action') and not action.get('finish_time'):
                store.save_action(uuid, record['request_id'], finish_time=now,
                                  message=outcome.get('action_note') if ok else '%s failed: %s' % (
                                      record['event'], note))


class BatchRunner(object):
    """Runs a driver class for one instance (today's options) or once per item of ``instances``."""

    def __init__(self, module, driver_class, item_spec, key, validator_kwargs=None):
        self.module = module
        self.driver_class = driver_class
        # The host options are every item's too, so that a step records itself in the module's state store.
        self.item_spec = dict(copy.deepcopy(SHARED_HOST_SPECS), **item_spec)
        self.key = key
        self.validator = ArgumentSpecValidator(self.item_spec, **(validator_kwargs or {}))

    # ------------------------------------------------------------ validation
    def validate(self, params, where):
        """``params`` checked against the one-instance spec; the validated copy, or a KvmhostError.

        Values that are None are unset: they take their defaults again.
        """
        result = self.validator.validate(without_none(params))
        self.module.no_log_values.update(getattr(result, '_no_log_values', None) or ())
        if result.error_messages:
            raise KvmhostError('%s%s' % (where, '; '.join(result.error_messages)), field='instances' if where else None)
        validated = result.validated_parameters
        try:  # the ranges and the rest of the driver's checks of its options, which read nothing
            getattr(self.driver_class, 'check_options', lambda _params: None)(validated)
        except KvmhostError as exc:
            if not where:
                raise
            raise KvmhostError('%s%s' % (where, exc), field='instances')
        return validated

    def items(self):
        """Every item validated, with the module's own options as the items' defaults, before anything runs."""
        params = self.module.params
        shared = dict((name, params[name]) for name in self.item_spec
                      if name in params and params[name] is not None)
        validated = []
        seen = set()
        for index, item in enumerate(params['instances']):
            merged = dict(shared)
            merged.update(item)
            where = 'instances[%d] (%s): ' % (index, _key_of(item, self.key) or 'no %s' % self.key)
            item_params = self.validate(merged, where)
            key = str(_key_of(item_params, self.key) or '').lower()
            if not key:
                raise KvmhostError('instances[%d] has no %s' % (index, self.key), field='instances')
            if key in seen:
                raise KvmhostError('instances holds %s twice' % key, field='instances')
            seen.add(key)
            validated.append((key, item_params))
        forget_passwords(self.module, params['instances'])  # the validated copies keep them for the steps
        return validated

    def recorder(self):
        record = self.module.params.get('record')
        if not record:
            return None
        if record['select'] == 'failed' and not record.get('failed_at'):
            raise KvmhostError('select failed needs failed_at, the steps whose failure counts',
                               field='record.failed_at')
        return Recorder(self.module.params['state_db'], record, self.module.check_mode)

    # ------------------------------------------------------------ running
    def run(self):
        params = self.module.params
        concurrency = check_int(params['concurrency'], 'concurrency', 1, MAX_CONCURRENCY)
        if params.get('instances') is None:
            return self.run_single()
        items = self.items()
        recorder = self.recorder()
        workers = max(1, min(concurrency, getattr(self.driver_class, 'max_concurrency', MAX_CONCURRENCY),
                             len(items) or 1))
        beating = recorder.heartbeat([key for key, _params in items]) if recorder else contextlib.nullcontext()
        with beating, concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(lambda pair: self.run_item(pair[0], pair[1], recorder), items))
        return self.result(outcomes)

    def run_single(self):
        """Today's options for one instance: the driver's own result, recorded when ``record`` is given."""
        params = self.module.params
        item_params = self.validate(dict((name, params[name]) for name in self.item_spec
                                         if params.get(name) is not None), '')
        forget_passwords(self.module, params)  # the validated copy keeps them for the step
        recorder = self.recorder()
        if recorder is None:
            self.module.params = dict(params, **item_params)
            return self.driver_class(self.module).outcome()
        key = str(_key_of(item_params, self.key)).lower()
        with recorder.heartbeat([key]):
            outcome = self.run_item(key, item_params, recorder)
        if outcome['failed']:
            details = dict((k, v) for k, v in outcome.items() if k not in ('failed', 'changed', 'msg'))
            raise KvmhostError(outcome['msg'], **details)
        return outcome

    def run_item(self, key, item_params, recorder):
        outcome = {'uuid': key, 'changed': False, 'failed': False, 'skipped': False}
        facade = ItemModule(self.module, item_params)
        if recorder is not None and not recorder.records(key):
            recorder = None
        try:
            reason = recorder.skip_reason(key) if recorder is not None else None
            if reason:
                outcome.update(skipped=True, msg=reason)
                return outcome
            started_at = utcnow()
            creates = getattr(self.driver_class, 'creates_record', False)
            if recorder is not None and not creates:
                recorder.start(key, started_at)
            driver = self.driver_class(facade)
            result = driver.outcome()
            outcome.update(result)
            outcome.update(failed=False, skipped=False)
            if recorder is not None:
                if creates:
                    recorder.start(key, started_at)
                recorder.finish(key, True, driver.record_note(result), driver.record_details(result),
                                driver.record_fields(result))
        except KvmhostError as exc:
            self._fail(outcome, recorder, str(exc), exc.details, getattr(exc, 'applied', None))
        except KNOWN_ERRORS as exc:
            self._fail(outcome, recorder, describe_error(exc))
        except Exception as exc:  # pylint: disable=broad-except
            # A bug must not cost the other instances their outcomes: this one fails with the cause and
            # its traceback, the others go on.
            self._fail(outcome, recorder, '%s: %s' % (type(exc).__name__, exc), {'exception': traceback.format_exc()})
        if facade.warnings:
            outcome['warnings'] = facade.warnings
        return outcome

    @staticmethod
    def _fail(outcome, recorder, message, details=None, applied=None):
        outcome.update(details or {})
        outcome.update(failed=True, msg=message, changed=bool(applied))
        if applied:
            outcome['actions'] = list(applied)
        if recorder is None or outcome.get('skipped'):
            return
        try:
            recorder.finish(outcome['uuid'], False, message)
        except KNOWN_ERRORS + (KvmhostError,) as exc:  # the item failed already; say both
            outcome['msg'] = '%s; recording the failure failed too: %s' % (message, exc)

    def result(self, outcomes):
        failures = dict((o['uuid'], o['msg']) for o in outcomes if o['failed'])
        warnings = ['%s: %s' % (o['uuid'], w) for o in outcomes for w in o.pop('warnings', [])]
        result = {
            'changed': any(o.get('changed') for o in outcomes),
            'results': outcomes,
            'failed_instances': failures,
            'succeeded': [o['uuid'] for o in outcomes if not o['failed'] and not o['skipped']],
            'skipped_instances': [o['uuid'] for o in outcomes if o['skipped']],
        }
        if self.module._diff:
            result['diff'] = [dict(o['diff'], before_header=o['uuid'], after_header=o['uuid'])
                              for o in outcomes if isinstance(o.get('diff'), dict)]
        if warnings:
            result['warnings'] = warnings
        return result


def step_argument_spec(item_spec):
    """The module's argument spec: its one-instance options (none required), the batch options, the host options."""
    spec = relaxed(item_spec)
    for name, definition in BATCH.items():
        spec[name] = copy.deepcopy(definition)
    for name in HOST_OPTIONS:
        spec.setdefault(name, copy.deepcopy(SHARED_HOST_SPECS[name]))
    return spec


def run_step_module(driver_class, item_spec, key, required_one_of=None, required_if=None, mutually_exclusive=None,
                    required_together=None):
    """The entry point of a step module: one instance or a batch, and the collection's one error path.

    The constraints (``required_one_of`` ...) are those of one instance: they are checked per item.
    """
    top = key.split('.')[0]
    module = AnsibleModule(argument_spec=step_argument_spec(item_spec), supports_check_mode=True,
                           mutually_exclusive=[(top, 'instances')])
    runner = BatchRunner(module, driver_class, item_spec, key, dict(
        required_one_of=required_one_of, required_if=required_if, mutually_exclusive=mutually_exclusive,
        required_together=required_together))
    try:
        result = runner.run()
    except KvmhostError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except KNOWN_ERRORS as exc:
        module.fail_json(msg=describe_error(exc))
    if module.params.get('instances') is not None and result['failed_instances'] and not module.params['keep_going']:
        module.fail_json(msg='the step failed for %d of %d instances: %s' % (
            len(result['failed_instances']), len(result['results']),
            '; '.join('%s: %s' % pair for pair in result['failed_instances'].items())), **result)
    module.exit_json(**result)


def _is_event(events, name):
    return any(event['event'] == name for event in events)


def _task_state(value):
    return None if value == 'none' else value


def without_none(value):
    if isinstance(value, dict):
        return dict((key, without_none(item)) for key, item in value.items() if item is not None)
    if isinstance(value, list):
        return [without_none(item) for item in value]
    return value


def _key_of(item, key):
    value = item
    for part in key.split('.'):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class EachDriver(ModuleDriver):
    """A driver for one instance whose option ``many`` lists what ``inner`` does one of (its VIFs, its volumes).

    Without ``many`` it is ``inner`` as it was. With it, ``inner`` runs once per element, in order, with the
    ``one`` option set to the element; the result holds each element's result in ``many`` and the keys of
    ``merged`` (dicts) merged. An element that fails stops the instance's others, and the error says what the
    earlier ones changed. Each run of ``inner`` is its ``outcome()``: it opens and closes what it needs itself.
    """

    inner = None
    one = None
    many = None
    merged = ()

    @classmethod
    def check_options(cls, params):
        """``inner``'s checks of its options, for ``one`` or for each element of ``many`` (its fields named
        ``many[N].field``), so that a bad element fails before the first element changes anything."""
        check = getattr(cls.inner, 'check_options', None)
        if check is None or params.get(cls.many) is None:
            return check(params) if check is not None else None
        for index, element in enumerate(params[cls.many]):
            try:
                check(dict(params, **{cls.one: element, cls.many: None}))
            except KvmhostError as exc:
                field = exc.field or ''
                if field != cls.one and not field.startswith(cls.one + '.'):
                    raise
                raise KvmhostError(exc.msg, field='%s[%d]%s' % (cls.many, index, field[len(cls.one):]))
        return None

    def run(self):
        if self.params.get(self.many) is None:
            self.driver = self.inner(self.module)
            return self.driver.outcome()
        self.check_options(self.params)
        results, applied = [], []
        for index, element in enumerate(self.params[self.many]):
            module = ItemModule(self.module, dict(self.params, **{self.one: element, self.many: None}))
            try:
                result = self.inner(module).outcome()
            except KvmhostError as exc:
                exc.applied = applied + list(getattr(exc, 'applied', None) or [])
                if not str(exc).startswith(self.many):
                    exc.msg, exc.field = '%s[%d]: %s' % (self.many, index, exc), None
                raise
            if getattr(module, 'warnings', None) and hasattr(self.module, 'warn'):
                for warning in module.warnings:
                    self.module.warn(warning)
            applied.extend(result.get('actions') or [])
            results.append(result)
        combined = {'changed': any(result['changed'] for result in results), 'actions': applied,
                    self.many: results}
        for key in self.merged:
            combined[key] = {}
            for result in results:
                combined[key].update(result.get(key) or {})
        if self.module._diff:
            # A mapping, which Ansible's callbacks show as a diff (a list they cannot).
            combined['diff'] = dict((side, {self.many: [result.get('diff', {}).get(side) for result in results]})
                                    for side in ('before', 'after'))
        return combined
