# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the state store joined with live libvirt state (the logic of instance_info)."""

from __future__ import annotations

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import check_uuid
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import StateStore
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import power_sync
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.driver import LibvirtDriver


def describe_instances(store, connection, uuid=None, include_deleted=False, with_actions=False):
    """Records (one, or all) with their info cache, live domain state and power-sync verdict."""
    if uuid is not None:
        record = store.get_instance(uuid) if store is not None else None
        records = [record] if record is not None and (include_deleted or not record['deleted']) else []
    else:
        records = store.list_instances(include_deleted=include_deleted) if store is not None else []
    described = []
    for record in records:
        item = dict(record)
        item['network_info'] = store.get_network_info(record['uuid'])
        if with_actions:
            item['actions'] = store.list_actions(record['uuid'])
        if connection is not None:
            live = connection.domain_state(record['uuid'])
            item['live'] = live
            item['power_sync'] = power_sync(record, live['power_state'])
        described.append(item)
    return described


class InfoDriver(LibvirtDriver):
    """The instance_info module: never changes anything, so check mode is the same run."""

    # libvirt only for the live state (option live).
    connect_at_open = False

    def run(self):
        uuid = self.params.get('uuid')
        if uuid is not None:
            uuid = check_uuid(uuid)
        connection = self.connect() if self.params['live'] else None
        store = StateStore.open(self.params['state_db'], readonly=True)
        try:
            instances = describe_instances(store, connection, uuid, self.params['include_deleted'],
                                           self.params['with_actions'])
        finally:
            if store is not None:
                store.close()
        if uuid is not None and not instances and self.params['must_exist']:
            raise KvmhostError('instance %s has no record in %s' % (uuid, self.params['state_db']), field='uuid')
        drifted = [item['uuid'] for item in instances if item.get('power_sync', {}).get('drifted')]
        return {'changed': False, 'instances': instances, 'drifted': drifted,
                'store_exists': store is not None}
