# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters the lifecycle roles pass their data through."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.kvmhost.lifecycle.plugins.filter import lifecycle
from ansible_collections.kvmhost.lifecycle.plugins.filter.lifecycle import (
    failure_cause, instance_ref, network_info, outcomes_by_uuid, select_instances,
    volume_secret_placeholders)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import PLACEHOLDER_SECRET_UUID

A = '1E0E6ED9-67FD-4B64-98D6-7BDE4F6F4FA0'
B = '5b7e4c2a-0d3f-4e8b-9a61-2c4d8e0f1a3b'
SPECS = [{'uuid': A, 'name': 'web'}, {'uuid': B, 'name': 'db'}]


def test_select_all_or_some_in_inventory_order():
    assert select_instances(SPECS) == SPECS
    assert select_instances(SPECS, [B.upper(), A.lower()]) == SPECS
    assert select_instances(SPECS, [B]) == [SPECS[1]]
    assert select_instances(SPECS, []) == []


@pytest.mark.parametrize('specs, uuids, message', [
    ({'uuid': A}, None, 'must be a list'),
    ([{'name': 'x'}], None, 'kvmhost_instances[0] has no uuid'),
    ([{'uuid': A}, {'uuid': A.lower()}], None, 'twice'),
    (SPECS, 'all', 'kvmhost_rebuild_uuids must be a list'),
    (SPECS, ['../../etc'], 'does not hold: ../../etc'),
])
def test_select_refuses_bad_input_naming_the_variable(specs, uuids, message):
    with pytest.raises(AnsibleFilterError, match=message.replace('[', r'\[').replace(']', r'\]')):
        select_instances(specs, uuids, 'kvmhost_rebuild_uuids')


def test_select_skips_the_uuids_no_spec_has_when_told():
    other = '2f0e9d8c-7b6a-4594-8372-615049382716'
    assert select_instances(SPECS, [other, B], 'kvmhost_delete_uuids', 'skip') == [SPECS[1]]
    assert select_instances(SPECS, [other], 'kvmhost_delete_uuids', 'skip') == []
    assert select_instances(SPECS, None, 'kvmhost_delete_uuids', 'skip') == SPECS
    with pytest.raises(AnsibleFilterError, match='kvmhost_delete_uuids names instances that kvmhost_instances '
                                                 'does not hold: %s' % other):
        select_instances(SPECS, [other, B], 'kvmhost_delete_uuids', 'fail')
    # What the inventory holds is still checked.
    with pytest.raises(AnsibleFilterError, match='twice'):
        select_instances([{'uuid': A}, {'uuid': A.lower()}], [other], 'kvmhost_delete_uuids', 'skip')
    with pytest.raises(AnsibleFilterError, match='kvmhost_delete_uuids must be a list'):
        select_instances(SPECS, 'all', 'kvmhost_delete_uuids', 'skip')


@pytest.mark.parametrize('missing', ['ignore', None, '', 'Skip'])
def test_select_refuses_an_unknown_missing(missing):
    with pytest.raises(AnsibleFilterError, match='select_instances: missing must be fail or skip, got %r' % (missing,)):
        select_instances(SPECS, [B], 'kvmhost_delete_uuids', missing)


def test_network_info_follows_nova_model():
    vifs = [{'id': '8DBFEEFF-E21C-4B3D-B527-77845D2A998B', 'address': 'FA:16:3E:81:A8:B4', 'type': 'ovs_hybrid',
             'bridge': 'br-int', 'mtu': 1450,
             'network': {'id': 'n1', 'label': 'internal', 'cidr': '10.10.10.0/24', 'gateway': '10.10.10.1',
                         'ips': ['10.10.10.13']}},
            {'id': '3c9a1f7e-5b2d-4c8a-8e6f-0a1b2c3d4e5f', 'address': 'fa:16:3e:3c:9a:1f', 'type': 'bridge',
             'bridge': 'brq0'}]
    plugged = [{'port_id': '8dbfeeff-e21c-4b3d-b527-77845d2a998b', 'devices': {'tap': 'tap8dbfeeff-e2',
                                                                               'qbr': 'qbr8dbfeeff-e2'}}]
    first, second = network_info(vifs, plugged)
    assert first['id'] == '8dbfeeff-e21c-4b3d-b527-77845d2a998b' and first['address'] == 'fa:16:3e:81:a8:b4'
    assert (first['type'], first['details']['ovs_hybrid_plug'], first['ovs_interfaceid']) == (
        'ovs', True, '8dbfeeff-e21c-4b3d-b527-77845d2a998b')
    assert first['devname'] == 'tap8dbfeeff-e2' and first['devices']['qbr'] == 'qbr8dbfeeff-e2'
    assert first['network']['subnets'][0]['ips'] == [{'address': '10.10.10.13', 'type': 'fixed'}]
    assert first['network']['meta'] == {'mtu': 1450}
    assert (second['type'], second['ovs_interfaceid'], second['network']['subnets']) == ('bridge', None, [])
    assert second['devname'] == 'tap3c9a1f7e-5b'  # derived like the vif module when it was not plugged here
    with pytest.raises(AnsibleFilterError):
        network_info({'id': 'x'})


def test_network_info_of_a_dual_stack_port_has_a_subnet_per_family():
    vifs = [{'id': 'p1', 'address': 'fa:16:3e:00:00:01', 'type': 'ovs',
             'network': {'cidr': '10.10.10.0/24', 'gateway': '10.10.10.1', 'ips': ['10.10.10.13', '2001:db8::13'],
                         'subnets': [{'cidr': '2001:db8::/64', 'gateway': '2001:db8::1'}]}}]
    (info,) = network_info(vifs)
    assert [(subnet['cidr'], subnet['gateway'], subnet['ips']) for subnet in info['network']['subnets']] == [
        ('10.10.10.0/24', '10.10.10.1', [{'address': '10.10.10.13', 'type': 'fixed'}]),
        ('2001:db8::/64', '2001:db8::1', [{'address': '2001:db8::13', 'type': 'fixed'}])]


def test_outcomes_keep_cause_and_module_keys():
    results = [{'item': {'item': {'uuid': A}}, 'failed': False, 'power_state': 1, 'invocation': {'x': 1}},
               {'item': {'item': {'uuid': B}}, 'failed': True, 'msg': 'libvirt said no'},
               {'item': {'item': {'uuid': 'c'}}, 'failed': True}]
    outcomes = outcomes_by_uuid(results, ['item', 'item', 'uuid'])
    assert outcomes[A.lower()] == {'failed': False, 'power_state': 1}
    assert outcomes[B] == {'failed': True, 'msg': 'libvirt said no'}
    assert outcomes['c']['msg'] == 'failed without a message'
    with pytest.raises(AnsibleFilterError, match='item.uuid'):
        outcomes_by_uuid([{'failed': False}])


def test_failure_cause_prefers_the_failed_item():
    looped = {'failed': True, 'msg': 'One or more items failed',
              'results': [{'failed': False}, {'failed': True, 'msg': 'checksum\n  mismatch'}]}
    assert failure_cause(looped, 'create_image') == 'create_image: checksum mismatch'
    assert failure_cause({'msg': 'boom'}) == 'boom'
    assert failure_cause(None, 'spawning') == 'spawning: failed without a message'


def test_instance_ref_and_secret_placeholders():
    assert instance_ref({'uuid': A, 'name': 'web', 'volumes': []}) == {'uuid': A.lower(), 'name': 'web'}
    spec = {'volumes': [{'id': 'V1', 'transport': 'qemu', 'auth': {'username': 'u', 'password': 'p'}},
                        {'id': 'v2', 'transport': 'qemu'}, {'id': 'v3', 'transport': 'host', 'auth': {}}]}
    assert volume_secret_placeholders(spec) == {'v1': PLACEHOLDER_SECRET_UUID}
    assert volume_secret_placeholders({}) == {}


def _batch(*outcomes):
    return {'results': [dict({'failed': False, 'skipped': False}, **outcome) for outcome in outcomes]}


BATCH_SPECS = [
    {'uuid': 'AAAA0000-0000-4000-8000-000000000000', 'name': 'a', 'vifs': [{'id': 'p1'}], 'image': {'id': 'i'},
     'flavor': {'vcpus': 1}},
    {'uuid': 'bbbb0000-0000-4000-8000-000000000000', 'name': 'b'},
]
UA, UB = 'aaaa0000-0000-4000-8000-000000000000', 'bbbb0000-0000-4000-8000-000000000000'


def test_step_items_build_each_steps_items_and_drop_what_failed_before():
    assert lifecycle.step_items(BATCH_SPECS, 'vifs') == [
        {'instance_uuid': UA, 'vifs': [{'id': 'p1'}]}, {'instance_uuid': UB, 'vifs': []}]
    xml = _batch({'uuid': UA, 'xml': '<domain/>'}, {'uuid': UB, 'failed': True, 'msg': 'no'})
    assert lifecycle.step_items(BATCH_SPECS, 'domain', xml) == [{'uuid': UA, 'xml': '<domain/>'}]
    volumes = _batch({'uuid': UA, 'volume_secrets': {'v': 's'}}, {'uuid': UB, 'skipped': True})
    (item,) = lifecycle.step_items(BATCH_SPECS, 'domain_xml', volumes, '/srv/i/')
    assert item['volume_secrets'] == {'v': 's'} and item['dest'] == '/srv/i/%s/libvirt.xml' % UA
    with pytest.raises(AnsibleFilterError, match='unknown step'):
        lifecycle.step_items(BATCH_SPECS, 'teleport')


def test_run_failures_name_each_failed_instance_once_with_its_step_and_rollback():
    steps = [['create_image', _batch({'uuid': UA}, {'uuid': UB, 'failed': True, 'msg': 'checksum\n mismatch'})],
             ['spawning', _batch({'uuid': UA, 'failed': True, 'msg': 'no start'}, {'uuid': UB, 'skipped': True})]]
    rollback = _batch({'uuid': UB}, {'uuid': UA, 'failed': True, 'msg': 'gone'})
    assert lifecycle.run_failures(steps, BATCH_SPECS, rollback, 'rebuild failed at ') == [
        'b (%s): rebuild failed at create_image: checksum mismatch; rolled back, the old instance runs' % UB,
        'a (%s): rebuild failed at spawning: no start; the rollback failed too (gone): run it again' % UA]
    assert lifecycle.run_failures([['x', {'skipped': True}]], BATCH_SPECS) == []
    assert lifecycle.failed_uuids([steps[0][1], steps[1][1], {'skipped': True}]) == [UB, UA]


def test_boot_plan_boots_afresh_converges_and_refuses():
    records = [{'uuid': UA, 'vm_state': 'active', 'task_state': None, 'deleted': False, 'live': {'power_state': 1}},
               {'uuid': UB, 'vm_state': 'active', 'task_state': 'rebuild_spawning', 'deleted': False, 'live': {}}]
    plan = lifecycle.boot_plan(BATCH_SPECS, records)
    assert [spec['name'] for spec in plan['specs']] == ['a'] and plan['fresh'] == []
    assert 'rebuild did not finish' in plan['refused'][0]
    assert lifecycle.boot_plan(BATCH_SPECS, [])['fresh'] == [UA, UB]
    assert lifecycle.live_uuids(records + [{'uuid': 'X', 'deleted': True}]) == [UA, UB]


def test_boot_plan_refuses_an_unfinished_migration_and_an_instance_migrated_away():
    records = [{'uuid': UA, 'vm_state': 'active', 'task_state': 'migrating', 'deleted': False, 'live': {}},
               {'uuid': UB, 'vm_state': 'deleted', 'task_state': None, 'deleted': True, 'host': 'kvm2', 'live': {}}]
    plan = lifecycle.boot_plan(BATCH_SPECS, records, 'kvm1')
    assert plan['specs'] == [] and plan['fresh'] == []
    assert 'its migration did not finish (task_state migrating); run playbooks/migrate.yml' in plan['refused'][0]
    assert plan['refused'][1] == ('b (%s): it was migrated from this host to kvm2; its spec belongs in the '
                                  'kvmhost_instances of kvm2 now' % UB)
    # deleted here by delete.yml (its host is this one): booted again
    records[1]['host'] = 'kvm1'
    assert lifecycle.boot_plan(BATCH_SPECS, records, 'kvm1')['fresh'] == [UB]


# ---------------------------------------------------------------- cold migration

KVM = ['kvm1', 'kvm2', 'kvm3']


def fleet(**registered):
    """hostvars of three hosts: kvm1 has BATCH_SPECS[0], kvm2 has BATCH_SPECS[1]; ``registered`` is
    {host: {variable: value}}."""
    hostvars = {'kvm1': {'kvmhost_instances': [BATCH_SPECS[0]]}, 'kvm2': {'kvmhost_instances': [BATCH_SPECS[1]]},
                'kvm3': {}}
    for host, values in registered.items():
        hostvars[host].update(values)
    return hostvars


def test_migration_plan_finds_each_source_and_gives_the_destination_the_spec():
    migrations = [{'uuid': UA.upper(), 'to': 'kvm2'}, {'uuid': UB, 'to': 'kvm1'}]
    plan = lifecycle.migration_plan(migrations, fleet(), KVM, 'kvm1')
    assert plan['outgoing'] == [BATCH_SPECS[0]] and plan['incoming'] == [BATCH_SPECS[1]]
    assert plan['destinations'] == {UA: 'kvm2', UB: 'kvm1'} and plan['sources'] == {UA: 'kvm1', UB: 'kvm2'}
    assert plan['hosts'] == ['kvm1', 'kvm2']
    third = lifecycle.migration_plan(migrations, fleet(), KVM, 'kvm3')
    assert third['outgoing'] == [] and third['incoming'] == []
    assert lifecycle.migration_plan(None, fleet(), KVM, 'kvm1')['hosts'] == []


@pytest.mark.parametrize('migrations, message', [
    ({'uuid': UA, 'to': 'kvm2'}, 'kvmhost_migrations must be a list'),
    ([{'uuid': UA}], r'kvmhost_migrations\[0\] must be a dict of uuid and to'),
    ([{'uuid': UA, 'to': 'kvm2', 'from': 'kvm1'}], r'kvmhost_migrations\[0\] must be a dict of uuid and to'),
    ([{'uuid': '../../etc/passwd-xxxxxxxxxxxxxxxxxxxx', 'to': 'kvm2'}], r'\[0\].uuid: .* is not a UUID'),
    ([{'uuid': UA, 'to': 'kvm9'}], r"\[0\].to: 'kvm9' is not a KVM host of this play \(kvm1, kvm2, kvm3\)"),
    ([{'uuid': UA, 'to': 'kvm1'}], r'\[0\].uuid: no KVM host of this play but kvm1 has a spec of'),
    ([{'uuid': UA, 'to': 'kvm2'}, {'uuid': UA, 'to': 'kvm3'}], r'\[1\].uuid: .* is migrated twice'),
])
def test_migration_plan_refuses_what_a_careless_inventory_holds(migrations, message):
    with pytest.raises(AnsibleFilterError, match=message):
        lifecycle.migration_plan(migrations, fleet(), KVM, 'kvm1')


def test_migration_plan_refuses_two_hosts_with_one_instance():
    hostvars = fleet()
    hostvars['kvm3']['kvmhost_instances'] = [BATCH_SPECS[0]]
    with pytest.raises(AnsibleFilterError, match=r'\[0\].uuid: kvm1, kvm3 all have a spec of'):
        lifecycle.migration_plan([{'uuid': UA, 'to': 'kvm2'}], hostvars, KVM, 'kvm2')


MANIFEST = {'instances_path': '/srv/instances', 'files': [{'name': 'disk'}, {'name': 'console.log'}]}


def test_the_files_travel_from_the_source_through_the_controller_to_the_destination():
    plan = lifecycle.migration_plan([{'uuid': UA, 'to': 'kvm2'}], fleet(), KVM, 'kvm1')
    exported = _batch({'uuid': UA, 'manifest': MANIFEST})
    received = {UA: {'uuid': UA, 'failed': False, 'incoming': '/var/lib/kvmhost/instances/%s_incoming' % UA,
                     'needed_bases': ['b' * 40]}}
    items = lifecycle.transfer_items(plan['outgoing'], exported, received, plan['destinations'], '/tmp/stage/')
    incoming = received[UA]['incoming']
    assert items == [
        {'uuid': UA, 'to': 'kvm2', 'src': '/srv/instances/%s/disk' % UA, 'stage': '/tmp/stage/%s/disk' % UA,
         'dest': incoming + '/disk'},
        {'uuid': UA, 'to': 'kvm2', 'src': '/srv/instances/%s/console.log' % UA,
         'stage': '/tmp/stage/%s/console.log' % UA, 'dest': incoming + '/console.log'},
        {'uuid': UA, 'to': 'kvm2', 'src': '/srv/instances/_base/' + 'b' * 40,
         'stage': '/tmp/stage/%s/_base/%s' % (UA, 'b' * 40), 'dest': incoming + '/_base/' + 'b' * 40}]
    # a destination that is not ready, or a failed export: nothing travels
    assert lifecycle.transfer_items(plan['outgoing'], exported, {UA: dict(received[UA], failed=True)},
                                    plan['destinations'], '/tmp/stage') == []
    fetched = {'results': [{'item': item, 'failed': index == 1} for index, item in enumerate(items)]}
    arrivals = lifecycle.arrival_items(fleet(kvm1={'instance_migrate_fetch': fetched}), plan['sources'], 'kvm2',
                                       'instance_migrate_fetch')
    assert arrivals == [{'uuid': UA, 'src': items[0]['stage'], 'dest': items[0]['dest']},
                        {'uuid': UA, 'src': items[2]['stage'], 'dest': items[2]['dest']}]
    assert lifecycle.arrival_items(fleet(kvm1={'instance_migrate_fetch': fetched}), plan['sources'], 'kvm3',
                                   'instance_migrate_fetch') == []


def _check(**host):
    return {'failed': False, 'host': host}


def test_migration_progress_follows_what_every_host_registered():
    migrations = [{'uuid': UA, 'to': 'kvm2'}, {'uuid': UB, 'to': 'kvm3'}]
    hostvars = fleet(kvm1={'instance_migrate_check_out': _check(departed={}, transfer_bytes={UA: 100})},
                     kvm2={'instance_migrate_check_out': _check(departed={UB: 'kvm3'}, transfer_bytes={})})
    plan = lifecycle.migration_plan(migrations, hostvars, KVM, 'kvm1')
    progress = lifecycle.migration_progress(plan, hostvars, 'kvm1')
    assert progress['sending'] == [BATCH_SPECS[0]] and progress['moved'] == [] and progress['failed'] == [BATCH_SPECS[0]]
    on_kvm2 = lifecycle.migration_progress(lifecycle.migration_plan(migrations, hostvars, KVM, 'kvm2'), hostvars, 'kvm2')
    assert on_kvm2['checking'] == [BATCH_SPECS[0]] and on_kvm2['transfer_bytes'] == {UA: 100}
    assert on_kvm2['sending'] == []  # b left kvm2 for kvm3 in an earlier run
    on_kvm3 = lifecycle.migration_progress(lifecycle.migration_plan(migrations, hostvars, KVM, 'kvm3'), hostvars, 'kvm3')
    assert on_kvm3['checking'] == []  # ... so kvm3 does not receive it again
    # kvm2 ran a and started it: kvm1 lets it go
    hostvars['kvm2']['instance_migrate_check_in'] = _check(arrived=[])
    hostvars['kvm2']['instance_migrate_start'] = _batch({'uuid': UA})
    progress = lifecycle.migration_progress(plan, hostvars, 'kvm1')
    assert progress['moved'] == [BATCH_SPECS[0]] and progress['failed'] == []
    # an earlier, killed run left a running on kvm2: kvm1 sends nothing and lets it go
    hostvars['kvm2']['instance_migrate_check_in'] = _check(arrived=[UA])
    del hostvars['kvm2']['instance_migrate_start']
    progress = lifecycle.migration_progress(plan, hostvars, 'kvm1')
    assert progress['sending'] == [] and progress['moved'] == [BATCH_SPECS[0]]
    on_kvm2 = lifecycle.migration_progress(lifecycle.migration_plan(migrations, hostvars, KVM, 'kvm2'), hostvars, 'kvm2')
    assert on_kvm2['receiving'] == [] and on_kvm2['arrived_here'] == [BATCH_SPECS[0]]
    assert lifecycle.step_items(on_kvm2['arrived_here'], 'arrived') == [
        {'uuid': UA, 'vm_state': 'active', 'task_state': 'none', 'power_state': 1}]


def test_migration_refusals_gather_every_hosts_and_stop_all():
    migrations = [{'uuid': UA, 'to': 'kvm2'}]
    hostvars = fleet(kvm1={'instance_migrate_check_out': _check(departed={})},
                     kvm2={'instance_migrate_check_in': {'failed': True, 'refusals': ['a (x): to: too little memory']}})
    plan = lifecycle.migration_plan(migrations, hostvars, KVM, 'kvm3')
    names = ['instance_migrate_check_out', 'instance_migrate_check_in']
    hostvars['kvm2']['instance_migrate_check_out'] = {'skipped': True}
    hostvars['kvm1']['instance_migrate_check_in'] = {'skipped': True}
    assert lifecycle.migration_refusals(plan, hostvars, names) == ['kvm2: a (x): to: too little memory']
    hostvars['kvm2']['instance_migrate_check_in'] = _check()
    assert lifecycle.migration_refusals(plan, hostvars, names) == []
    del hostvars['kvm1']['instance_migrate_check_out']  # kvm1 went away before its check
    assert lifecycle.migration_refusals(plan, hostvars, names) == [
        'kvm1 did not run instance_migrate_check_out (it failed or went away before)']
    hostvars['kvm1']['instance_migrate_check_out'] = _check(departed={UA: 'kvm3'})
    assert lifecycle.migration_refusals(plan, hostvars, names) == [
        'kvm1: %s was migrated from it to kvm3 already, not to kvm2; its spec belongs in the kvmhost_instances of '
        'kvm3' % UA]


def test_migration_failures_name_the_step_the_host_and_the_rollback():
    migrations = [{'uuid': UA, 'to': 'kvm2'}]
    hostvars = fleet(kvm1={'instance_migrate_check_out': _check(departed={})},
                     kvm2={'instance_migrate_check_in': _check(arrived=[]),
                           'instance_migrate_imported': _batch({'uuid': UA, 'failed': True,
                                                                'msg': 'disk has sha256 x, the source had y'})})
    plan = lifecycle.migration_plan(migrations, hostvars, KVM, 'kvm1')
    own = [['shutdown_instance', 'instance_migrate_shutdown']]
    peer = [['receive_instance', 'instance_migrate_imported'], ['finish_migration', 'instance_migrate_start']]
    confirm = [['confirm_migration', 'instance_migrate_confirmed']]
    rolled = _batch({'uuid': UA})
    assert lifecycle.migration_failures(plan, hostvars, 'kvm1', own, peer, confirm, rolled) == [
        'a (%s): migration to kvm2 failed at receive_instance on kvm2: disk has sha256 x, the source had y; rolled '
        'back, it runs on kvm1 again' % UA]
    hostvars['kvm1']['instance_migrate_shutdown'] = _batch({'uuid': UA, 'failed': True, 'msg': 'no ACPI'})
    assert lifecycle.migration_failures(plan, hostvars, 'kvm1', own, peer, confirm, None) == [
        'a (%s): migration to kvm2 failed at shutdown_instance on kvm1: no ACPI; it was not started on kvm1 again: '
        'run migrate.yml or boot.yml for it' % UA]
    del hostvars['kvm1']['instance_migrate_shutdown'], hostvars['kvm2']['instance_migrate_imported']
    hostvars['kvm1']['instance_migrate_fetch'] = {'results': [{'item': {'uuid': UA}, 'failed': True, 'msg': 'EIO'}]}
    failed_rollback = _batch({'uuid': UA, 'failed': True, 'msg': 'no start'})
    assert lifecycle.migration_failures(plan, hostvars, 'kvm1', own, peer, confirm, failed_rollback) == [
        'a (%s): migration to kvm2 failed at sending its files on kvm1: EIO; starting it on kvm1 again failed too '
        '(no start): run migrate.yml again' % UA]
    del hostvars['kvm1']['instance_migrate_fetch']
    assert 'kvm2 did not report the instance running' in lifecycle.migration_failures(
        plan, hostvars, 'kvm1', own, peer, confirm, rolled)[0]
    # moved, but not let go here
    hostvars['kvm2']['instance_migrate_start'] = _batch({'uuid': UA})
    hostvars['kvm1']['instance_migrate_confirmed'] = _batch({'uuid': UA, 'failed': True, 'msg': 'locked'})
    assert lifecycle.migration_failures(plan, hostvars, 'kvm1', own, peer, confirm, None) == [
        'a (%s): migrated to kvm2, which runs it, but removing it from kvm1 failed at confirm_migration: locked; '
        'run migrate.yml again to finish' % UA]
    del hostvars['kvm1']['instance_migrate_confirmed']
    assert lifecycle.migration_failures(plan, hostvars, 'kvm1', own, peer, confirm, None) == []


def test_the_records_that_end_a_migration_on_the_source():
    destinations = {UA: 'kvm2', UB: 'kvm3'}
    assert lifecycle.migrated_records(BATCH_SPECS[:1], destinations, 'req-1') == [
        {'uuid': UA, 'state': 'deleted', 'power_state': 0, 'host': 'kvm2',
         'action': {'name': 'migrate', 'request_id': 'req-1', 'finished': True, 'note': 'migrated to kvm2'},
         'event': {'name': 'confirm_migration', 'phase': 'finish', 'result': 'success'}}]
    items = lifecycle.rollback_records(BATCH_SPECS, _batch({'uuid': UA}, {'uuid': UB, 'failed': True, 'msg': 'x'}),
                                       destinations, 'req-1')
    assert [(item['vm_state'], item['power_state'], item['event']['result']) for item in items] == [
        ('active', 1, 'success'), ('error', 4, 'error')]
    assert items[1]['action']['note'] == 'migration to kvm3 failed, and starting it here again failed: x'
    assert lifecycle.select_uuids(BATCH_SPECS, [UB.upper()]) == [BATCH_SPECS[1]]
    assert lifecycle.select_uuids(BATCH_SPECS, [UB], False) == [BATCH_SPECS[0]]
    assert lifecycle.transfer_step_items(BATCH_SPECS, {UA: {'failed': False, 'manifest': MANIFEST}}, 'imported',
                                         host='kvm2') == [{'uuid': UA, 'state': 'imported', 'manifest': MANIFEST,
                                                           'host': 'kvm2'}]
