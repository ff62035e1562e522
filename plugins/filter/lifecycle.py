# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the lifecycle roles use to turn module results into what the next step needs.

Pure functions of their inputs, so the roles' data flow is unit-tested in tests/unit/plugins/filter.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.kvmhost.lifecycle.plugins.module_utils import vif_plug


def network_info(vifs, plug_results=None):
    """Nova's network info model of an instance's VIFs (what the info cache holds); see vif_plug.network_info."""
    if not isinstance(vifs, list):
        raise AnsibleFilterError('network_info: vifs must be a list, got %s' % type(vifs).__name__)
    return vif_plug.network_info(vifs, plug_results)


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


def select_instances(specs, uuids=None, variable='uuids'):
    """The instance specs whose UUIDs are in ``uuids`` (all when None), in inventory order.

    Fails with the variable named on what a careless inventory may hold: a spec without a UUID, the
    same UUID twice, a UUID asked for that no spec has.
    """
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
    if unknown:
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


PLACEHOLDER_SECRET_UUID = '00000000-0000-4000-8000-000000000000'


def volume_secret_placeholders(spec):
    """{volume id: a placeholder secret UUID} for the CHAP volumes of the qemu transport.

    Checking a spec with domain_xml before anything exists needs a secret UUID for each such volume;
    the real ones come from iscsi_attach once the secret is made.
    """
    placeholders = {}
    for volume in (spec or {}).get('volumes') or []:
        if isinstance(volume, dict) and volume.get('transport') == 'qemu' and volume.get('auth'):
            placeholders[str(volume.get('id')).lower()] = PLACEHOLDER_SECRET_UUID
    return placeholders


class FilterModule(object):
    def filters(self):
        return {'network_info': network_info, 'outcomes_by_uuid': outcomes_by_uuid,
                'select_instances': select_instances, 'failure_cause': failure_cause,
                'instance_ref': instance_ref, 'volume_secret_placeholders': volume_secret_placeholders}
