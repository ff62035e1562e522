# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the lifecycle roles use to turn module results into what the next step needs.

Pure functions of their inputs, so the roles' data flow is unit-tested in tests/unit/plugins/filter.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# The module_utils these filters share with the modules are imported where they are used: every task's worker
# loads this file anew, and importing network.vif and virt.domain_spec (and what they import) up front cost each task
# that templates a filter about 50 ms of the controller's time.


def network_info(vifs, plug_results=None):
    """Nova's network info model of an instance's VIFs (what the info cache holds); see network/vif.py."""
    if not isinstance(vifs, list):
        raise AnsibleFilterError('network_info: vifs must be a list, got %s' % type(vifs).__name__)
    from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network import vif  # pylint: disable=import-outside-toplevel
    return vif.network_info(vifs, plug_results)


def volume_secret_placeholders(spec):
    """{volume id: placeholder secret UUID} for the CHAP volumes of an instance spec; see virt/domain_spec.py."""
    from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt import domain_spec  # pylint: disable=import-outside-toplevel
    return domain_spec.volume_secret_placeholders(spec)


def outcomes_by_uuid(results, uuid_path=('item', 'uuid')):
    """The results of a loop (or of async_status over a loop) as {uuid: outcome}.

    An outcome keeps ``failed`` and ``msg`` and the module's own keys, so a role can go on with the
    instances that succeeded and roll back or report the ones that failed, with their cause.
    """
    outcomes = {}
    for result in results or []:
        key = result
        for part in uuid_path:
            if not isinstance(key, dict) or part not in key:
                raise AnsibleFilterError('outcomes_by_uuid: a result has no %s' % '.'.join(uuid_path))
            key = key[part]
        outcome = dict((name, value) for name, value in result.items()
                       if name not in ('item', 'invocation', 'ansible_loop_var', '_ansible_item_label',
                                       '_ansible_no_log', 'results_file', 'started'))
        outcome['failed'] = bool(result.get('failed'))
        if outcome['failed']:
            outcome['msg'] = str(result.get('msg') or 'failed without a message')
        outcomes[str(key).lower()] = outcome
    return outcomes


def select_instances(specs, uuids=None, variable='uuids', missing='fail'):
    """The instance specs whose UUIDs are in ``uuids`` (all when None), in inventory order.

    Fails with the variable named on what a careless inventory may hold: a spec without a UUID, the
    same UUID twice, a UUID asked for that no spec has (unless ``missing`` is ``skip``: delete.yml reads
    the instances without a spec from the host).
    """
    if missing not in ('fail', 'skip'):
        raise AnsibleFilterError('select_instances: missing must be fail or skip, got %r' % (missing,))
    if not isinstance(specs, list):
        raise AnsibleFilterError('kvmhost_instances must be a list of instance specs, got %s' % type(specs).__name__)
    seen = set()
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get('uuid'), str):
            raise AnsibleFilterError('kvmhost_instances[%d] has no uuid' % index)
        key = spec['uuid'].lower()
        if key in seen:
            raise AnsibleFilterError('kvmhost_instances holds uuid %s twice' % key)
        seen.add(key)
    if uuids is None:
        return list(specs)
    if isinstance(uuids, str) or not isinstance(uuids, list):
        raise AnsibleFilterError('%s must be a list of UUIDs, got %r' % (variable, uuids))
    wanted = [str(uuid).lower() for uuid in uuids]
    unknown = [uuid for uuid in wanted if uuid not in seen]
    if unknown and missing == 'fail':
        raise AnsibleFilterError('%s names instances that kvmhost_instances does not hold: %s'
                                 % (variable, ', '.join(unknown)))
    return [spec for spec in specs if spec['uuid'].lower() in wanted]


def failure_cause(failed_result, step=None):
    """One line saying why a step failed, from ``ansible_failed_result`` (a loop's first failed item)."""
    cause = None
    if isinstance(failed_result, dict):
        for item in failed_result.get('results') or []:
            if isinstance(item, dict) and item.get('failed'):
                cause = item.get('msg')
                break
        if not cause:
            cause = failed_result.get('msg')
    cause = ' '.join(str(cause or 'failed without a message').split())
    return '%s: %s' % (step, cause) if step else cause


def instance_ref(spec):
    """{uuid, name} of an instance spec, the UUID in lower case as the modules return it."""
    return {'uuid': str(spec['uuid']).lower(), 'name': spec.get('name', '')}


def _results_by_uuid(registered):
    """{uuid: outcome} of a step module's batch result (empty for a skipped task)."""
    if not isinstance(registered, dict):
        return {}
    return dict((str(outcome.get('uuid')).lower(), outcome) for outcome in registered.get('results') or []
                if isinstance(outcome, dict))


def _ok(outcome):
    return isinstance(outcome, dict) and not outcome.get('failed') and not outcome.get('skipped')


def step_items(specs, step, earlier=None, instances_path=None, skip=None):
    """The ``instances`` items of one step module for the instance specs of a run.

    ``earlier`` is the registered result of the step whose output this one takes (the volumes'
    secrets for domain_xml, the XML for domain, the VIFs' network info for the info cache); an instance
    that did not succeed there is left out. ``skip`` lists UUIDs this step leaves out (a rebuild's
    instances whose new domain runs already skip the shutdown, the unplug and the move).
    """
    if not isinstance(specs, list):
        raise AnsibleFilterError('step_items: specs must be a list, got %s' % type(specs).__name__)
    done = _results_by_uuid(earlier)
    skipped = set(str(uuid).lower() for uuid in skip or [])
    items = []
    for spec in specs:
        uuid = str(spec['uuid']).lower()
        if uuid in skipped:
            continue
        outcome = done.get(uuid)
        if step in ('uuid', 'shutdown', 'disk'):
            items.append({'uuid': uuid})
        elif step == 'vifs':
            items.append({'instance_uuid': uuid, 'vifs': spec.get('vifs') or []})
        elif step == 'volumes':
            items.append({'instance_uuid': uuid, 'volumes': spec.get('volumes') or []})
        elif step == 'detach':
            items.append({'instance_uuid': uuid, 'domain_uuid': uuid, 'volumes': spec.get('volumes') or []})
        elif step == 'image':
            items.append({'uuid': uuid, 'image': spec.get('image'), 'flavor': spec.get('flavor')})
        elif step == 'domain_xml':
            if earlier is not None and not _ok(outcome):
                continue
            item = {'instance': spec, 'volume_secrets': (outcome or {}).get('volume_secrets') or {},
                    'host_volume_paths': (outcome or {}).get('host_volume_paths') or {}}
            if instances_path:
                item['dest'] = '%s/%s/libvirt.xml' % (instances_path.rstrip('/'), uuid)
            items.append(item)
        elif step == 'firewall':
            items.append({'instance_uuid': uuid, 'vifs': spec.get('vifs') or [],
                          'security_groups': spec.get('security_groups') or []})
        elif step == 'old_domain':
            items.append({'uuid': uuid, 'xml_file': '%s/%s/libvirt.xml' % (instances_path.rstrip('/'), uuid)})
        elif step == 'domain':
            if _ok(outcome):
                items.append({'uuid': uuid, 'xml': outcome['xml']})
        elif step == 'network_info':
            if _ok(outcome):
                # The name lets check mode predict the cache of an instance whose record a boot has not made yet.
                items.append({'uuid': uuid, 'name': spec.get('name'), 'network_info': outcome.get('network_info') or []})
        elif step == 'power_sync':
            items.append({'uuid': uuid, 'image': spec.get('image'), 'flavor': spec.get('flavor'),
                          'vm_state': 'active', 'sync_power_state': True, 'expect_running': True})
        elif step == 'schedule':
            items.append({'uuid': uuid, 'name': spec.get('name'), 'vm_state': 'building', 'task_state': 'scheduling',
                          'power_state': 0, 'image': spec.get('image'), 'flavor': spec.get('flavor')})
        elif step == 'deleted':
            items.append({'uuid': uuid, 'state': 'deleted', 'power_state': 0})
        elif step == 'arrived':
            items.append({'uuid': uuid, 'vm_state': 'active', 'task_state': 'none', 'power_state': 1})
        else:
            raise AnsibleFilterError('step_items: unknown step %r' % step)
    return items


def run_failures(steps, specs, rollback=None, prefix=''):
    """One line per instance a run failed for: its name, UUID, the step and the cause.

    ``steps`` is a list of [step name, registered batch result] pairs in the run's order. With
    ``rollback`` (the rollback's registered result), each line also says whether the old instance runs.
    ``prefix`` stands before the step's name (for example ``rebuild failed at``).
    """
    names = dict((str(spec['uuid']).lower(), spec.get('name', '')) for spec in specs or [])
    rolled = _results_by_uuid(rollback)
    lines, seen = [], set()
    for step, registered in steps or []:
        for uuid, outcome in _results_by_uuid(registered).items():
            if not outcome.get('failed') or uuid in seen:
                continue
            seen.add(uuid)
            cause = ' '.join(str(outcome.get('msg')).split())
            line = '%s (%s): %s%s: %s' % (names.get(uuid, ''), uuid, prefix, step, cause)
            if uuid in rolled:
                line += ('; rolled back, the old instance runs' if _ok(rolled[uuid])
                         else '; the rollback failed too (%s): run it again' % rolled[uuid].get('msg'))
            lines.append(line)
    return lines


def failed_uuids(registered_results):
    """The UUIDs that failed in any of these registered batch results."""
    failed = []
    for registered in registered_results or []:
        for uuid, outcome in _results_by_uuid(registered).items():
            if outcome.get('failed') and uuid not in failed:
                failed.append(uuid)
    return failed


UNFINISHED_REBUILD = ('rebuilding', 'rebuild_block_device_mapping', 'rebuild_spawning')


def boot_plan(specs, records, host=None):
    """Which instances a boot boots afresh and which it only converges, and which it refuses.

    ``records`` are instance_info's instances (every record with its live state). An instance that is
    active, has no task and runs is converged (nothing is recorded); one whose rebuild or migration did not
    finish is refused (rebuild.yml or migrate.yml finishes or rolls it back), and so is one that was migrated
    from this host (``host``, the inventory name) to another: its spec belongs to the other host now.
    """
    known = dict((str(record['uuid']).lower(), record) for record in records or [])
    plan = {'specs': [], 'fresh': [], 'refused': []}
    for spec in specs or []:
        uuid = str(spec['uuid']).lower()
        record = known.get(uuid)
        label = '%s (%s)' % (spec.get('name', ''), uuid)
        if record is not None and not record.get('deleted') and record.get('task_state') in UNFINISHED_REBUILD:
            plan['refused'].append('%s: its rebuild did not finish (task_state %s); run playbooks/rebuild.yml '
                                   'for it, which finishes or rolls it back' % (label, record['task_state']))
            continue
        if record is not None and not record.get('deleted') and record.get('task_state') == 'migrating':
            plan['refused'].append('%s: its migration did not finish (task_state migrating); run playbooks/migrate.yml '
                                   'for it again, which finishes it or starts it here again' % label)
            continue
        if (record is not None and record.get('deleted') and host is not None
                and record.get('host') not in (None, '', host)):
            plan['refused'].append('%s: it was migrated from this host to %s; its spec belongs in the '
                                   "kvmhost_instances of %s now" % (label, record['host'], record['host']))
            continue
        plan['specs'].append(spec)
        live = (record or {}).get('live') or {}
        if (record is None or record.get('deleted') or record.get('vm_state') != 'active'
                or record.get('task_state') is not None or live.get('power_state') != 1):
            plan['fresh'].append(uuid)
    return plan


def live_uuids(records):
    """The UUIDs of instance_info's records that are not marked deleted."""
    return [str(record['uuid']).lower() for record in records or [] if not record.get('deleted')]


# ---------------------------------------------------------------- cold migration (the instance_migrate role)

_UUID_CHARS = set('0123456789abcdef-')


def _specs_of(hostvars, host):
    specs = (hostvars[host] or {}).get('kvmhost_instances') or []
    if not isinstance(specs, list):
        raise AnsibleFilterError('kvmhost_instances of %s must be a list of instance specs' % host)
    return specs


def migration_plan(migrations, hostvars, hosts, me, variable='kvmhost_migrations'):
    """What this host (``me``) sends and receives in a cold migration of ``migrations`` ([{uuid, to}]).

    The source of each instance is the one host of the play other than ``to`` whose kvmhost_instances has its
    spec; the destination gets that spec. Fails naming the entry on what a careless inventory or -e may hold:
    an entry that is not {uuid, to}, a UUID twice, a destination that is not a host of the play, an instance
    no other host (or more than one) has a spec of. Returns ``outgoing`` and ``incoming`` (the specs),
    ``destinations`` and ``sources`` ({uuid: host}) and ``hosts`` (every host a migration involves).
    """
    if migrations is None:
        migrations = []
    if not isinstance(migrations, list):
        raise AnsibleFilterError('%s must be a list of {uuid, to}, got %r' % (variable, migrations))
    hosts = list(hosts or [])
    plan = {'outgoing': [], 'incoming': [], 'destinations': {}, 'sources': {}, 'hosts': []}
    seen = set()
    for index, entry in enumerate(migrations):
        where = '%s[%d]' % (variable, index)
        if not isinstance(entry, dict) or set(entry) != {'uuid', 'to'}:
            raise AnsibleFilterError('%s must be a dict of uuid and to (the destination host), got %r' % (where, entry))
        uuid, to = str(entry['uuid']).lower(), entry['to']
        if len(uuid) != 36 or not set(uuid) <= _UUID_CHARS:
            raise AnsibleFilterError('%s.uuid: %r is not a UUID' % (where, entry['uuid']))
        if uuid in seen:
            raise AnsibleFilterError('%s.uuid: %s is migrated twice' % (where, uuid))
        seen.add(uuid)
        if not isinstance(to, str) or to not in hosts:
            raise AnsibleFilterError('%s.to: %r is not a KVM host of this play (%s)' % (where, to, ', '.join(hosts)))
        holders = [(host, spec) for host in hosts if host != to for spec in _specs_of(hostvars, host)
                   if isinstance(spec, dict) and str(spec.get('uuid', '')).lower() == uuid]
        if not holders:
            raise AnsibleFilterError('%s.uuid: no KVM host of this play but %s has a spec of %s in kvmhost_instances'
                                     % (where, to, uuid))
        if len(holders) > 1:
            raise AnsibleFilterError('%s.uuid: %s all have a spec of %s; one host runs an instance'
                                     % (where, ', '.join(host for host, _spec in holders), uuid))
        source, spec = holders[0]
        plan['destinations'][uuid], plan['sources'][uuid] = to, source
        for host in (source, to):
            if host not in plan['hosts']:
                plan['hosts'].append(host)
        if source == me:
            plan['outgoing'].append(spec)
        if to == me:
            plan['incoming'].append(spec)
    return plan


def _host_result(hostvars, host, name):
    try:
        return (hostvars[host] or {}).get(name)
    except KeyError:
        return None


def _outcome(hostvars, host, name, uuid):
    """The outcome for ``uuid`` of the batch step result ``name`` that ``host`` registered, or None."""
    return _results_by_uuid(_host_result(hostvars, host, name)).get(uuid)


def peer_results(plan, hostvars, name, peers='destinations'):
    """{uuid: outcome} of the step result ``name`` that each instance's peer (its destination, or with ``peers``
    ``sources`` its source) registered; an instance whose peer has no such result is not in it."""
    outcomes = {}
    for uuid, host in (plan.get(peers) or {}).items():
        outcome = _outcome(hostvars, host, name, uuid)
        if outcome is not None:
            outcomes[uuid] = outcome
    return outcomes


def _check_host(hostvars, host, name):
    """The ``host`` part of an instance_check result another host registered ({} when it has none)."""
    registered = _host_result(hostvars, host, name)
    return (registered or {}).get('host') or {} if isinstance(registered, dict) else {}


def migration_progress(plan, hostvars, me):
    """Where this host (``me``) stands in the migrations of ``plan``, from what every host has registered so far.

    ``departed``: its outgoing instances its own record says an earlier run migrated away (to their
    destination); ``arrived``: those their destination runs already (an earlier run was killed before the
    source let them go); ``sending``: the outgoing instances this run moves; ``checking``: the incoming ones
    the destination checks (not departed from their source); ``receiving``: those it receives (not arrived);
    ``arrived_here``: those an earlier run started here already;
    ``transfer_bytes``: what each incoming one brings; ``exports``: their sources' manifests by UUID;
    ``moved``: the outgoing instances that run on their destination now (arrived before, or started there in
    this run).
    """
    departed = _check_host(hostvars, me, 'instance_migrate_check_out').get('departed') or {}
    destinations, sources = plan.get('destinations') or {}, plan.get('sources') or {}
    arrived = set()
    for uuid, host in destinations.items():
        if uuid in (_check_host(hostvars, host, 'instance_migrate_check_in').get('arrived') or []):
            arrived.add(uuid)
    outgoing = [spec for spec in plan.get('outgoing') or [] if str(spec['uuid']).lower() not in departed]
    sending = [spec for spec in outgoing if str(spec['uuid']).lower() not in arrived]
    checking, transfer_bytes = [], {}
    for spec in plan.get('incoming') or []:
        uuid = str(spec['uuid']).lower()
        source = _check_host(hostvars, sources[uuid], 'instance_migrate_check_out')
        if uuid in (source.get('departed') or {}):
            continue
        checking.append(spec)
        if uuid in (source.get('transfer_bytes') or {}):
            transfer_bytes[uuid] = source['transfer_bytes'][uuid]
    mine = set(_check_host(hostvars, me, 'instance_migrate_check_in').get('arrived') or [])
    receiving = [spec for spec in checking if str(spec['uuid']).lower() not in mine]
    arrived_here = [spec for spec in checking if str(spec['uuid']).lower() in mine]
    started = peer_results(plan, hostvars, 'instance_migrate_start')
    moved = [spec for spec in outgoing if str(spec['uuid']).lower() in arrived
             or _ok(started.get(str(spec['uuid']).lower()))]
    return {'departed': departed, 'arrived': sorted(arrived), 'sending': sending, 'checking': checking,
            'receiving': receiving, 'arrived_here': arrived_here, 'transfer_bytes': transfer_bytes,
            'exports': peer_results(plan, hostvars, 'instance_migrate_exported', 'sources'),
            'received': peer_results(plan, hostvars, 'instance_migrate_receiving'), 'moved': moved,
            'failed': [spec for spec in sending if spec not in moved]}


def migration_refusals(plan, hostvars, names):
    """Every refusal of the migrations' checks on every host they involve (the checks named ``names``), and the
    instances an earlier run migrated elsewhere; empty when all may go on. Every host computes the same list."""
    refusals = []
    for host in plan.get('hosts') or []:
        for name in names:
            registered = _host_result(hostvars, host, name)
            if registered is None:
                refusals.append('%s did not run %s (it failed or went away before)' % (host, name))
            elif registered.get('failed'):
                found = registered.get('refusals') or [registered.get('msg') or 'failed']
                refusals.extend('%s: %s' % (host, line) for line in found)
    for uuid, to in sorted((plan.get('destinations') or {}).items()):
        source = plan['sources'][uuid]
        departed = (_check_host(hostvars, source, 'instance_migrate_check_out').get('departed') or {}).get(uuid)
        if departed not in (None, to):
            refusals.append('%s: %s was migrated from it to %s already, not to %s; its spec belongs in the '
                            'kvmhost_instances of %s' % (source, uuid, departed, to, departed))
    return refusals


def _first_failure(steps, outcome_of):
    for step, name in steps:
        outcome = outcome_of(name)
        if isinstance(outcome, dict) and outcome.get('failed'):
            return step, ' '.join(str(outcome.get('msg') or 'failed').split())
    return None


def _loop_failure(registered, uuid):
    for result in (registered or {}).get('results') or [] if isinstance(registered, dict) else []:
        if isinstance(result, dict) and result.get('failed') and (result.get('item') or {}).get('uuid') == uuid:
            return ' '.join(str(result.get('msg') or 'failed').split())
    return None


def migration_failures(plan, hostvars, me, own_steps, peer_steps, confirm_steps, rollback=None):
    """One line per instance this host (the source) did not migrate, or migrated but did not let go: its name,
    UUID, the step (on which host) and the cause, and whether it runs here again (``rollback``, the rollback's
    registered result). ``own_steps``, ``peer_steps`` and ``confirm_steps`` are [step, registered name] pairs of
    the source's steps, the destination's, and the source's after the move."""
    progress = migration_progress(plan, hostvars, me)
    rolled = _results_by_uuid(rollback)
    lines = []
    for spec in progress['sending'] + [spec for spec in progress['moved'] if spec not in progress['sending']]:
        uuid = str(spec['uuid']).lower()
        to = plan['destinations'][uuid]
        label = '%s (%s)' % (spec.get('name', ''), uuid)
        if spec in progress['moved']:
            failure = _first_failure(confirm_steps, lambda name: _outcome(hostvars, me, name, uuid))
            if failure:
                lines.append('%s: migrated to %s, which runs it, but removing it from %s failed at %s: %s; run '
                             'migrate.yml again to finish' % (label, to, me, failure[0], failure[1]))
            continue
        failure = _first_failure(own_steps, lambda name: _outcome(hostvars, me, name, uuid))
        where = me
        if failure is None:
            cause = _loop_failure(_host_result(hostvars, me, 'instance_migrate_fetch'), uuid)
            failure = ('sending its files', cause) if cause else None
        if failure is None:
            cause = _loop_failure(_host_result(hostvars, to, 'instance_migrate_copy'), uuid)
            failure, where = (('receiving its files', cause), to) if cause else (None, to)
        if failure is None:
            failure = _first_failure(peer_steps, lambda name: _outcome(hostvars, to, name, uuid))
        if failure is None:
            failure = ('finish_migration', '%s did not report the instance running (it failed or went away)' % to)
        line = '%s: migration to %s failed at %s on %s: %s' % (label, to, failure[0], where, failure[1])
        outcome = rolled.get(uuid)
        if outcome is None:
            line += '; it was not started on %s again: run migrate.yml or boot.yml for it' % me
        elif _ok(outcome):
            line += '; rolled back, it runs on %s again' % me
        else:
            line += '; starting it on %s again failed too (%s): run migrate.yml again' % (me, outcome.get('msg'))
        lines.append(line)
    return lines


def rollback_records(specs, started, destinations, request_id):
    """instance_record items that end a source's failed migration: active and running again where the instance
    started (``started``, the registered start), error where it did not; the migrate action finished."""
    outcomes = _results_by_uuid(started)
    items = []
    for spec in specs or []:
        uuid = str(spec['uuid']).lower()
        outcome = outcomes.get(uuid)
        ok = _ok(outcome)
        note = ('migration to %s failed; it runs here again' % destinations[uuid] if ok else
                'migration to %s failed, and starting it here again failed: %s'
                % (destinations[uuid], ' '.join(str((outcome or {}).get('msg') or 'not started').split())))
        items.append({'uuid': uuid, 'vm_state': 'active' if ok else 'error', 'task_state': 'none',
                      'power_state': 1 if ok else 4,
                      'action': {'name': 'migrate', 'request_id': request_id, 'finished': True, 'note': note},
                      'event': {'name': 'rollback', 'phase': 'finish', 'result': 'success' if ok else 'error',
                                'note': note}})
    return items


def transfer_items(specs, exported, received, destinations, staging):
    """The files a source sends, as fetch items: each file of each exported instance whose destination is ready
    (``received``: the destinations' receiving outcomes by UUID), and the bases the destination asked for.

    Each item is {uuid, to, src (on the source), stage (on the controller), dest (on the destination)}.
    """
    done = _results_by_uuid(exported)
    items = []
    for spec in specs or []:
        uuid = str(spec['uuid']).lower()
        outcome, ready = done.get(uuid), (received or {}).get(uuid)
        if not _ok(outcome) or not _ok(ready):
            continue
        manifest = outcome['manifest']
        parts = [('%s/%s' % (uuid, entry['name']), entry['name']) for entry in manifest['files']]
        parts += [('_base/%s' % name, '_base/%s' % name) for name in ready.get('needed_bases') or []]
        for source_part, incoming_part in parts:
            items.append({'uuid': uuid, 'to': destinations[uuid],
                          'src': '%s/%s' % (manifest['instances_path'].rstrip('/'), source_part),
                          'stage': '%s/%s/%s' % (staging.rstrip('/'), uuid, incoming_part),
                          'dest': '%s/%s' % (ready['incoming'].rstrip('/'), incoming_part)})
    return items


def arrival_items(hostvars, sources, me, name):
    """The files fetched for this host (``me``) by its sources' fetch loop ``name``: copy items {uuid, src, dest}."""
    items = []
    for host in sorted(set((sources or {}).values())):
        for result in (_host_result(hostvars, host, name) or {}).get('results') or []:
            item = result.get('item') if isinstance(result, dict) else None
            if isinstance(item, dict) and item.get('to') == me and not result.get('failed') and not result.get('skipped'):
                items.append({'uuid': item['uuid'], 'src': item['stage'], 'dest': item['dest']})
    return items


def transfer_step_items(specs, outcomes, state, **options):
    """instance_transfer items of the instances whose ``outcomes`` ({uuid: outcome}, for example the sources'
    exports as peer_results gives them) succeeded: {uuid, state, manifest} and ``options``."""
    items = []
    for spec in specs or []:
        uuid = str(spec['uuid']).lower()
        outcome = (outcomes or {}).get(uuid)
        if _ok(outcome):
            items.append(dict(options, uuid=uuid, state=state, manifest=outcome.get('manifest')))
    return items


def migrated_records(specs, destinations, request_id, event='confirm_migration'):
    """instance_record items that end a source's part of a migration: the record marked deleted, its host the
    destination, the event finished and the migrate action finished with a note naming the destination."""
    return [{'uuid': str(spec['uuid']).lower(), 'state': 'deleted', 'power_state': 0,
             'host': destinations[str(spec['uuid']).lower()],
             'action': {'name': 'migrate', 'request_id': request_id, 'finished': True,
                        'note': 'migrated to %s' % destinations[str(spec['uuid']).lower()]},
             'event': {'name': event, 'phase': 'finish', 'result': 'success'}} for spec in specs or []]


def select_uuids(specs, uuids, keep=True):
    """The specs whose UUID is in ``uuids`` (or, with ``keep`` false, is not)."""
    wanted = set(str(uuid).lower() for uuid in uuids or [])
    return [spec for spec in specs or [] if (str(spec['uuid']).lower() in wanted) == bool(keep)]


class FilterModule(object):
    def filters(self):
        return {'network_info': network_info, 'outcomes_by_uuid': outcomes_by_uuid,
                'select_instances': select_instances, 'failure_cause': failure_cause,
                'instance_ref': instance_ref, 'volume_secret_placeholders': volume_secret_placeholders,
                'step_items': step_items, 'run_failures': run_failures, 'failed_uuids': failed_uuids,
                'boot_plan': boot_plan, 'live_uuids': live_uuids, 'migration_plan': migration_plan,
                'peer_results': peer_results, 'transfer_items': transfer_items, 'arrival_items': arrival_items,
                'transfer_step_items': transfer_step_items, 'migrated_records': migrated_records,
                'select_uuids': select_uuids, 'migration_progress': migration_progress,
                'migration_refusals': migration_refusals, 'migration_failures': migration_failures,
                'rollback_records': rollback_records}
