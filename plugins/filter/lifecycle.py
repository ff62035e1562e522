# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the lifecycle roles use to turn module results into what the next step needs.

Pure functions of their inputs, so the roles' data flow is unit-tested in tests/unit/plugins/filter.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# The module_utils these filters share with the modules are imported where they are used: every task's worker
# loads this file anew, and importing vif_plug and domain_xml (and what they import) up front cost each task
# that templates a filter about 50 ms of the controller's time.


def network_info(vifs, plug_results=None):
    """Nova's network info model of an instance's VIFs (what the info cache holds); see vif_plug.network_info."""
    if not isinstance(vifs, list):
        raise AnsibleFilterError('network_info: vifs must be a list, got %s' % type(vifs).__name__)
    from ansible_collections.kvmhost.lifecycle.plugins.module_utils import vif_plug  # pylint: disable=import-outside-toplevel
    return vif_plug.network_info(vifs, plug_results)


def volume_secret_placeholders(spec):
    """{volume id: placeholder secret UUID} for the CHAP volumes of an instance spec; see domain_xml."""
    from ansible_collections.kvmhost.lifecycle.plugins.module_utils import domain_xml  # pylint: disable=import-outside-toplevel
    return domain_xml.volume_secret_placeholders(spec)


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


def boot_plan(specs, records):
    """Which instances a boot boots afresh and which it only converges, and which it refuses.

    ``records`` are instance_info's instances (every record with its live state). An instance that is
    active, has no task and runs is converged (nothing is recorded); one whose rebuild did not finish
    is refused (rebuild.yml finishes or rolls it back).
    """
    known = dict((str(record['uuid']).lower(), record) for record in records or [])
    plan = {'specs': [], 'fresh': [], 'refused': []}
    for spec in specs or []:
        uuid = str(spec['uuid']).lower()
        record = known.get(uuid)
        if record is not None and not record.get('deleted') and record.get('task_state') in UNFINISHED_REBUILD:
            plan['refused'].append('%s (%s): its rebuild did not finish (task_state %s); run playbooks/rebuild.yml '
                                   'for it, which finishes or rolls it back' % (spec.get('name', ''), uuid,
                                                                                record['task_state']))
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


class FilterModule(object):
    def filters(self):
        return {'network_info': network_info, 'outcomes_by_uuid': outcomes_by_uuid,
                'select_instances': select_instances, 'failure_cause': failure_cause,
                'instance_ref': instance_ref, 'volume_secret_placeholders': volume_secret_placeholders,
                'step_items': step_items, 'run_failures': run_failures, 'failed_uuids': failed_uuids,
                'boot_plan': boot_plan, 'live_uuids': live_uuids}
