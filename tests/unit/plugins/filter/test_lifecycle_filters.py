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
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.domain_xml import PLACEHOLDER_SECRET_UUID

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
