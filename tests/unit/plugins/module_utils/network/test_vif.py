# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning VIF plugs from recorded ``ip -json`` and ``ovs-vsctl --format=json`` outputs.

A fake runner stands in for the host: unit tests must not create bridges, veth pairs or OVS ports on the
machine that runs them (tests/integration/test_vif.py does that against the real kernel and Open vSwitch).
The recorded outputs below were taken from iproute2 6.1 and Open vSwitch 3.1 and trimmed to the fields read.
"""

from __future__ import annotations

import json

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network import links as host_links
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.vif import VifPlanner, check_vif_spec

INSTANCE = '11111111-2222-4333-8444-555555555555'
PORT = '7e57aaaa-0000-4000-8000-000000000001'
MAC = 'fa:16:3e:00:00:01'
QBR, QVB, QVO, TAP = 'qbr7e57aaaa-00', 'qvb7e57aaaa-00', 'qvo7e57aaaa-00', 'tap7e57aaaa-00'
BR_INT_PORTS = ['uuid', '5215ba89-33e4-4a1c-bbee-3b8f373ee35a']
QVO_UUID = '29f86920-83b1-4369-bc3a-d7a646ffd984'
EXTERNAL_IDS = [['attached-mac', MAC], ['iface-id', PORT], ['iface-status', 'active'], ['vm-uuid', INSTANCE]]


def link(name, kind=None, flags=('BROADCAST', 'MULTICAST'), mtu=1500, master=None, peer=None, info=None):
    entry = {'ifname': name, 'flags': list(flags), 'mtu': mtu}
    if master:
        entry['master'] = master
    if peer:
        entry['link'] = peer
    if kind:
        entry['linkinfo'] = {'info_kind': kind}
        if info:
            entry['linkinfo']['info_data'] = info
    return entry


UP = ('BROADCAST', 'MULTICAST', 'PROMISC', 'UP', 'LOWER_UP')
PLUGGED_LINKS = [
    link('lo', flags=('LOOPBACK', 'UP')),
    link(QBR, 'bridge', ('BROADCAST', 'MULTICAST', 'UP'), 1400, info={'forward_delay': 0, 'stp_state': 0}),
    link(QVO, 'veth', UP, 1400, peer=QVB),
    link(QVB, 'veth', UP, 1400, master=QBR, peer=QVO),
]


def ovs_output(ports=None, external_ids=None, qvo_bridge='br-kt0001'):
    """Three JSON tables, as ``ovs-vsctl --format=json -- list Bridge -- list Port -- list Interface`` prints."""
    kt_ports = ['set', [['uuid', QVO_UUID], ['uuid', 'b22246a1-e7c5-41fe-b928-11fca6f3e74f']]] \
        if ports else ['uuid', 'b22246a1-e7c5-41fe-b928-11fca6f3e74f']
    bridges = {'data': [['br-int', BR_INT_PORTS, 'netdev'], ['br-kt0001', kt_ports, 'netdev']],
               'headings': ['name', 'ports', 'datapath_type']}
    if ports and qvo_bridge == 'br-int':
        bridges['data'][0][1] = ['set', [BR_INT_PORTS, ['uuid', QVO_UUID]]]
        bridges['data'][1][1] = ['uuid', 'b22246a1-e7c5-41fe-b928-11fca6f3e74f']
    port_rows = [[['uuid', QVO_UUID], QVO]] if ports else []
    iface_rows = [[QVO, '', ['map', external_ids if external_ids is not None else EXTERNAL_IDS]]] if ports else []
    return '\n'.join(json.dumps(doc) for doc in (
        bridges, {'data': port_rows, 'headings': ['_uuid', 'name']},
        {'data': iface_rows, 'headings': ['name', 'type', 'external_ids']})) + '\n'


class FakeRunner(object):
    """Answers reads from recorded outputs and records every other command instead of running it."""

    def __init__(self, links, ovs=None, sysctl=None):
        self.links = links
        self.ovs = ovs if ovs is not None else ovs_output()
        self.sysctl = dict(sysctl or {})
        self.commands = []

    def run(self, args):
        if args[:3] == ['ip', '-json', '-details']:
            return json.dumps(self.links)
        if args[0] == 'ovs-vsctl' and '--format=json' in args:
            return self.ovs
        self.commands.append(list(args))
        return ''

    def read_sysctl(self, path):
        return self.sysctl.get(path, '0' if path.endswith('/default/disable_ipv6') else None)

    def write_sysctl(self, path, value):
        self.commands.append(['sysctl', path, value])


def spec(**changes):
    vif = dict(id=PORT, address=MAC, type='ovs_hybrid', bridge='br-kt0001', mtu=1400)
    vif.update(changes)
    return check_vif_spec(vif, INSTANCE)


def plan_and_apply(runner, vif_spec, state='plugged'):
    planner = VifPlanner(runner, vif_spec)
    plan = planner.plug() if state == 'plugged' else planner.unplug()
    plan.apply()
    return plan


def test_hybrid_plug_on_a_clean_host_creates_everything_in_order():
    runner = FakeRunner([link('lo')])
    plan = plan_and_apply(runner, spec())
    assert runner.commands == [
        ['ip', 'link', 'add', 'name', QBR, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0'],
        ['sysctl', '/proc/sys/net/ipv6/conf/%s/disable_ipv6' % QBR, '1'],
        ['ip', 'link', 'set', 'dev', QBR, 'up'],
        ['ip', 'link', 'add', 'name', QVB, 'mtu', '1400', 'type', 'veth', 'peer', 'name', QVO, 'mtu', '1400'],
        ['ip', 'link', 'set', 'dev', QVB, 'promisc', 'on', 'up'],
        ['ip', 'link', 'set', 'dev', QVO, 'promisc', 'on', 'up'],
        ['ip', 'link', 'set', 'dev', QVB, 'master', QBR],
        ['ovs-vsctl', '--timeout=120', '--', 'add-port', 'br-kt0001', QVO, '--', 'set', 'Interface', QVO,
         'external_ids:attached-mac="%s"' % MAC, 'external_ids:iface-id="%s"' % PORT,
         'external_ids:iface-status="active"', 'external_ids:vm-uuid="%s"' % INSTANCE],
    ]
    assert plan.before == {'links': {QBR: None, QVB: None, QVO: None}, 'ovs_ports': {QVO: None}}
    assert plan.after['ovs_ports'][QVO]['external_ids']['vm-uuid'] == INSTANCE
    assert plan.after['links'][QVB] == {'kind': 'veth', 'up': True, 'promisc': True, 'mtu': 1400, 'master': QBR}


def test_hybrid_plug_when_everything_is_there_changes_nothing():
    runner = FakeRunner(PLUGGED_LINKS, ovs_output(ports=True),
                        sysctl={'/proc/sys/net/ipv6/conf/%s/disable_ipv6' % QBR: '1'})
    plan = plan_and_apply(runner, spec())
    assert not plan.changed and runner.commands == []
    assert plan.before == plan.after


def test_existing_qvo_with_another_mtu_and_a_stale_external_id_fixes_only_those():
    links = [dict(entry, mtu=1500) if entry['ifname'] in (QVB, QVO) else entry for entry in PLUGGED_LINKS]
    stale = [pair if pair[0] != 'vm-uuid' else ['vm-uuid', 'old'] for pair in EXTERNAL_IDS]
    runner = FakeRunner(links, ovs_output(ports=True, external_ids=stale),
                        sysctl={'/proc/sys/net/ipv6/conf/%s/disable_ipv6' % QBR: '1'})
    plan = plan_and_apply(runner, spec())
    assert runner.commands == [
        ['ip', 'link', 'set', 'dev', QVB, 'mtu', '1400'],
        ['ip', 'link', 'set', 'dev', QVO, 'mtu', '1400'],
        ['ovs-vsctl', '--timeout=120', '--', 'set', 'Interface', QVO, 'external_ids:vm-uuid="%s"' % INSTANCE],
    ]
    assert plan.before['ovs_ports'][QVO]['external_ids']['vm-uuid'] == 'old'
    assert plan.after['ovs_ports'][QVO]['external_ids']['vm-uuid'] == INSTANCE
    assert (plan.before['links'][QVO]['mtu'], plan.after['links'][QVO]['mtu']) == (1500, 1400)


def test_qvo_in_another_bridge_moves_in_one_transaction():
    runner = FakeRunner(PLUGGED_LINKS, ovs_output(ports=True, qvo_bridge='br-int'),
                        sysctl={'/proc/sys/net/ipv6/conf/%s/disable_ipv6' % QBR: '1'})
    plan_and_apply(runner, spec())
    assert runner.commands == [
        ['ovs-vsctl', '--timeout=120', '--', 'del-port', 'br-int', QVO, '--', 'add-port', 'br-kt0001', QVO,
         '--', 'set', 'Interface', QVO, 'external_ids:attached-mac="%s"' % MAC, 'external_ids:iface-id="%s"' % PORT,
         'external_ids:iface-status="active"', 'external_ids:vm-uuid="%s"' % INSTANCE]]


def test_bridge_with_stp_on_and_ipv6_on_is_tuned():
    links = [dict(entry, linkinfo={'info_kind': 'bridge', 'info_data': {'forward_delay': 1500, 'stp_state': 1}})
             if entry['ifname'] == QBR else entry for entry in PLUGGED_LINKS]
    runner = FakeRunner(links, ovs_output(ports=True), sysctl={'/proc/sys/net/ipv6/conf/%s/disable_ipv6' % QBR: '0'})
    plan_and_apply(runner, spec())
    assert runner.commands == [
        ['ip', 'link', 'set', 'dev', QBR, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0'],
        ['sysctl', '/proc/sys/net/ipv6/conf/%s/disable_ipv6' % QBR, '1']]


def test_hybrid_unplug_removes_bridge_port_veth_and_a_leftover_tap():
    links = PLUGGED_LINKS + [link(TAP, 'tun', UP, 1400, master=QBR)]
    runner = FakeRunner(links, ovs_output(ports=True))
    plan = plan_and_apply(runner, spec(), 'unplugged')
    assert runner.commands == [
        ['ip', 'link', 'delete', 'dev', TAP],
        ['ip', 'link', 'set', 'dev', QBR, 'down'], ['ip', 'link', 'delete', 'dev', QBR],
        ['ip', 'link', 'set', 'dev', QVB, 'down'],
        ['ovs-vsctl', '--timeout=120', '--', '--if-exists', 'del-port', 'br-kt0001', QVO],
        ['ip', 'link', 'delete', 'dev', QVB]]
    assert plan.after == {'links': {TAP: None, QBR: None, QVB: None, QVO: None}, 'ovs_ports': {QVO: None}}


def test_unplug_of_nothing_changes_nothing():
    runner = FakeRunner([link('lo')])
    assert not plan_and_apply(runner, spec(), 'unplugged').changed and runner.commands == []


def test_ovs_plug_only_checks_the_bridge_and_unplug_removes_a_leftover_port():
    runner = FakeRunner([link('lo')])
    assert not plan_and_apply(runner, spec(type='ovs')).changed
    with pytest.raises(KvmhostError, match='vif.bridge: the Open vSwitch bridge br-nope does not exist'):
        VifPlanner(runner, spec(type='ovs', bridge='br-nope')).plug()
    recorded = ovs_output(ports=True).replace(QVO, TAP)
    runner = FakeRunner([link('lo')], recorded)
    plan_and_apply(runner, spec(type='ovs'), 'unplugged')
    assert runner.commands == [['ovs-vsctl', '--timeout=120', '--', '--if-exists', 'del-port', 'br-kt0001', TAP]]


def test_vlan_bridge_creates_vlan_then_bridge_then_enslaves():
    runner = FakeRunner([link('lo'), link('eth1', 'veth', UP)])
    plan = plan_and_apply(runner, spec(type='bridge', bridge='brq100', vlan=100, physical_interface='eth1'))
    assert runner.commands == [
        ['ip', 'link', 'add', 'link', 'eth1', 'name', 'vlan100', 'mtu', '1400', 'type', 'vlan', 'id', '100'],
        ['ip', 'link', 'set', 'dev', 'vlan100', 'up'],
        ['ip', 'link', 'add', 'name', 'brq100', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0'],
        ['sysctl', '/proc/sys/net/ipv6/conf/brq100/disable_ipv6', '1'],
        ['ip', 'link', 'set', 'dev', 'brq100', 'up'],
        ['ip', 'link', 'set', 'dev', 'vlan100', 'master', 'brq100']]
    assert plan.after['links']['vlan100']['master'] == 'brq100'


def test_vlan_bridge_already_there_and_unplug_never_deletes_the_shared_bridge():
    links = [link('lo'), link('eth1', 'veth', UP),
             link('vlan100', 'vlan', UP, 1400, master='brq100', peer='eth1', info={'id': 100}),
             link('brq100', 'bridge', UP, 1400, info={'forward_delay': 0, 'stp_state': 0}),
             link(TAP, 'tun', UP, 1400, master='brq100')]
    vif_spec = spec(type='bridge', bridge='brq100', vlan=100, physical_interface='eth1')
    runner = FakeRunner(links)
    assert not plan_and_apply(runner, vif_spec).changed
    plan_and_apply(runner, vif_spec, 'unplugged')
    assert runner.commands == [['ip', 'link', 'delete', 'dev', TAP]]


def test_vlan_interface_of_another_vlan_or_taken_uplink_fails_naming_the_field():
    links = [link('lo'), link('eth1', 'veth', UP), link('vlan100', 'vlan', UP, peer='eth2', info={'id': 100})]
    with pytest.raises(KvmhostError, match=r'^vif.vlan: vlan100 exists with VLAN id 100 on eth2'):
        VifPlanner(FakeRunner(links), spec(type='bridge', bridge='brq100', vlan=100,
                                           physical_interface='eth1')).plug()
    links = [link('lo'), link('eth1', 'veth', UP, master='other')]
    with pytest.raises(KvmhostError, match=r'^vif.physical_interface: eth1 is already a port of other'):
        VifPlanner(FakeRunner(links), spec(type='bridge', bridge='brq100', physical_interface='eth1')).plug()
    with pytest.raises(KvmhostError, match=r'^vif.physical_interface: the network device eth9 does not exist'):
        VifPlanner(FakeRunner(links), spec(type='bridge', bridge='brq100', physical_interface='eth9')).plug()
    with pytest.raises(KvmhostError, match=r'^vif.bridge: eth1 exists and is a veth device, not a bridge'):
        VifPlanner(FakeRunner(links), spec(type='bridge', bridge='eth1')).plug()


@pytest.mark.parametrize('changes, message', [
    ({'address': 'fa:16:3e:00:00'}, r'^vif.address: must be a MAC address'),
    ({'address': '01:16:3e:00:00:01'}, r'^vif.address: must be a unicast'),
    ({'id': '../etc'}, r'^vif.id: must be a port id'),
    ({'id': 'a/b'}, r'^vif.id: must be a port id'),
    ({'mtu': 67}, r'^vif.mtu: must be 68..65535'),
    ({'mtu': 65536}, r'^vif.mtu: must be 68..65535'),
    ({'type': 'bridge', 'bridge': 'brq', 'vlan': 0, 'physical_interface': 'eth1'}, r'^vif.vlan: must be a VLAN id'),
    ({'type': 'bridge', 'bridge': 'brq', 'vlan': 4095, 'physical_interface': 'eth1'}, r'^vif.vlan: must be'),
    ({'type': 'bridge', 'bridge': 'brq', 'vlan': 10}, r'^vif.vlan: a VLAN bridge needs physical_interface'),
    ({'type': 'bridge', 'bridge': 'a-bridge-name-too-long'}, r'^vif.bridge: must be a network device name'),
    ({'type': 'bridge', 'bridge': None}, r'^vif.bridge: is required with type bridge'),
    ({'vlan': 10, 'physical_interface': 'eth1'}, r'^vif.type: vlan and physical_interface are for type bridge'),
    ({'type': 'ovs', 'id': 'not-a-uuid'}, r'^vif.id: must be a UUID'),
])
def test_bad_input_names_the_field(changes, message):
    with pytest.raises(KvmhostError, match=message):
        spec(**changes)


def test_bad_instance_uuid_names_the_field():
    with pytest.raises(KvmhostError, match='^instance_uuid: must be a UUID'):
        check_vif_spec(dict(id=PORT, address=MAC, type='ovs'), 'nope')


def test_names_and_interface_details_for_domain_xml():
    hybrid = spec()
    assert hybrid.devices() == {'tap': TAP, 'qbr': QBR, 'qvb': QVB, 'qvo': QVO}
    assert hybrid.interface()['source_bridge'] == QBR and hybrid.interface()['virtualport'] is None
    ovs = spec(type='ovs', address='FA:16:3E:00:00:01')
    assert ovs.mac == MAC and ovs.bridge == 'br-kt0001'
    assert ovs.interface()['virtualport'] == {'type': 'openvswitch', 'interfaceid': PORT}
    assert check_vif_spec(dict(id=PORT, address=MAC, type='ovs'), INSTANCE).bridge == 'br-int'


def test_ovs_json_values_are_decoded():
    assert host_links.ovs_value(['set', [['uuid', 'a'], ['uuid', 'b']]]) == ['a', 'b']
    assert host_links.ovs_value(['map', [['k', 'v']]]) == {'k': 'v'}
    assert host_links.ovs_value(['uuid', 'a']) == 'a'
    assert host_links.ovs_value(1500) == 1500
    with pytest.raises(KvmhostError, match='expected 3'):
        host_links.read_ovs(FakeRunner([], ovs='{"data": [], "headings": []}'), ['x'])
