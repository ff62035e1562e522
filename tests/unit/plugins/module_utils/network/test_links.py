# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""links: the one command runner, reading links and OVS records as JSON, and the argument lists that change them.

HostRunner runs against a fake module that records the argument lists it is given (and, for one test, runs the
read-only ``ip -json -details link show`` of this machine for real). The other outputs are recorded: the link
list in iproute2 6.1's ``ip -json -details link show`` format, the OVS tables in Open vSwitch 3.1's
``ovs-vsctl --format=json`` format, trimmed to a few fields besides the ones read. No test changes a link or
an OVS record (tests/integration/test_vif.py does, against the real kernel and Open vSwitch).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.links import (
    IPV6_CONF, OVS_TIMEOUT, HostRunner, _json_documents, external_ids_args, ip_bridge_add, ip_bridge_settings,
    ip_link_delete, ip_link_set, ip_veth_add, ip_vlan_add, ipv6_disabled, ovs_string, ovs_value, ovs_vsctl,
    read_links, read_ovs)

INSTANCE = '11111111-2222-4333-8444-555555555555'
PORT = '7e57aaaa-0000-4000-8000-000000000001'
MAC = 'fa:16:3e:00:00:01'
QBR, QVB, QVO, TAP = 'qbr7e57aaaa-00', 'qvb7e57aaaa-00', 'qvo7e57aaaa-00', 'tap7e57aaaa-00'

# ip -json -details link show: a hybrid plug (bridge, veth pair, tap), a VLAN bridge port, and a veth whose
# peer is in another network namespace (link_index and link_netnsid instead of link).
IP_LINKS = '''[
{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN",
 "linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00",
 "broadcast":"00:00:00:00:00:00","promiscuity":0,"allmulti":0,"min_mtu":0,"max_mtu":0},
{"ifindex":2,"ifname":"eth1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"mq",
 "operstate":"UP","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether",
 "address":"52:54:00:12:34:56","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,
 "max_mtu":65535},
{"ifindex":12,"ifname":"qbr7e57aaaa-00","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1400,
 "qdisc":"noqueue","operstate":"UP","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether",
 "address":"6a:3b:1c:2d:4e:5f","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,
 "max_mtu":65535,"linkinfo":{"info_kind":"bridge","info_data":{"forward_delay":0,"hello_time":200,"max_age":2000,
 "ageing_time":30000,"stp_state":0,"priority":32768,"vlan_filtering":0,"vlan_protocol":"802.1Q",
 "bridge_id":"8000.6a:3b:1c:2d:4e:5f"}}},
{"ifindex":13,"link":"qvo7e57aaaa-00","ifname":"qvb7e57aaaa-00",
 "flags":["BROADCAST","MULTICAST","PROMISC","UP","LOWER_UP"],"mtu":1400,"qdisc":"noqueue","master":"qbr7e57aaaa-00",
 "operstate":"UP","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether",
 "address":"b2:0c:8d:1e:2f:30","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":2,"allmulti":0,"min_mtu":68,
 "max_mtu":65535,"linkinfo":{"info_kind":"veth","info_slave_kind":"bridge","info_slave_data":{"state":"forwarding",
 "priority":32,"cost":2,"learning":true,"flood":true}}},
{"ifindex":14,"link":"qvb7e57aaaa-00","ifname":"qvo7e57aaaa-00",
 "flags":["BROADCAST","MULTICAST","PROMISC","UP","LOWER_UP"],"mtu":1400,"qdisc":"noqueue","operstate":"UP",
 "linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether","address":"c6:1d:9e:2f:30:41",
 "broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":1,"allmulti":0,"min_mtu":68,"max_mtu":65535,
 "linkinfo":{"info_kind":"veth"}},
{"ifindex":15,"ifname":"tap7e57aaaa-00","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1400,
 "qdisc":"fq_codel","master":"qbr7e57aaaa-00","operstate":"UNKNOWN","linkmode":"DEFAULT","group":"default",
 "txqlen":1000,"link_type":"ether","address":"fe:16:3e:00:00:01","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":1,
 "allmulti":0,"min_mtu":68,"max_mtu":65521,"linkinfo":{"info_kind":"tun","info_data":{"type":"tap","pi":false,
 "vnet_hdr":true,"multi_queue":false,"persist":false},"info_slave_kind":"bridge"}},
{"ifindex":20,"link":"eth1","ifname":"vlan100","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1400,
 "qdisc":"noqueue","master":"brq100","operstate":"UP","linkmode":"DEFAULT","group":"default","txqlen":1000,
 "link_type":"ether","address":"52:54:00:12:34:56","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":1,"allmulti":0,
 "min_mtu":0,"max_mtu":65535,"linkinfo":{"info_kind":"vlan","info_data":{"protocol":"802.1Q","id":100,
 "flags":["REORDER_HDR"]},"info_slave_kind":"bridge"}},
{"ifindex":21,"link_index":3,"ifname":"veth-ns0","flags":["BROADCAST","MULTICAST"],"mtu":1500,"qdisc":"noop",
 "operstate":"DOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether",
 "address":"9a:8b:7c:6d:5e:4f","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"promiscuity":0,"allmulti":0,
 "min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"veth"}}
]
'''

BR_INT_PORT = '5215ba89-33e4-4a1c-bbee-3b8f373ee35a'
QVO_UUID = '29f86920-83b1-4369-bc3a-d7a646ffd984'
KT_PORT = 'b22246a1-e7c5-41fe-b928-11fca6f3e74f'
# ovs-vsctl --format=json -- list Bridge -- list Port -- list Interface: one JSON table per command, one per line.
# A set of one element is printed as the element itself (br-int's ports); an empty set or map as ["set",[]] /
# ["map",[]].
OVS_TABLES = '''{"data":[["br-int",["uuid","5215ba89-33e4-4a1c-bbee-3b8f373ee35a"],"netdev"],\
["br-kt0001",["set",[["uuid","29f86920-83b1-4369-bc3a-d7a646ffd984"],["uuid","b22246a1-e7c5-41fe-b928-11fca6f3e74f"]]],\
"netdev"],["br-empty",["set",[]],""]],"headings":["name","ports","datapath_type"]}
{"data":[[["uuid","29f86920-83b1-4369-bc3a-d7a646ffd984"],"qvo7e57aaaa-00"],\
[["uuid","0d5c3b8a-1e2f-4a5b-8c7d-9e0f1a2b3c4d"],"tap-lost"]],"headings":["_uuid","name"]}
{"data":[["qvo7e57aaaa-00","",["map",[["attached-mac","fa:16:3e:00:00:01"],\
["iface-id","7e57aaaa-0000-4000-8000-000000000001"],["iface-status","active"],\
["vm-uuid","11111111-2222-4333-8444-555555555555"]]]],["tap-lost","internal",["map",[]]]],\
"headings":["name","type","external_ids"]}
'''


class Module(object):
    """What HostRunner uses of AnsibleModule: get_bin_path, and run_command recording each argument list."""

    def __init__(self, answers=None, installed=('ip', 'ovs-vsctl')):
        self.answers = list(answers or [])
        self.installed = installed
        self.lookups = []
        self.commands = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        self.lookups.append((name, required, opt_dirs))
        return '/usr/sbin/' + name if name in self.installed else None

    def run_command(self, args, check_rc=True):
        assert check_rc is False  # HostRunner reports a failed command itself, naming it
        self.commands.append(args)
        return self.answers.pop(0) if self.answers else (0, '', '')


class Runner(object):
    """Stands in for HostRunner with the recorded outputs (see the module docstring)."""

    def __init__(self, ip=IP_LINKS, ovs=OVS_TABLES, sysctl=None):
        self.ip, self.ovs, self.sysctl = ip, ovs, dict(sysctl or {})
        self.commands = []

    def run(self, args):
        self.commands.append(list(args))
        return self.ip if args[0] == 'ip' else self.ovs

    def read_sysctl(self, path):
        self.commands.append(['read', path])
        return self.sysctl.get(path)


# ---------------------------------------------------------------- HostRunner

def test_host_runner_runs_the_argument_list_with_the_found_binary_and_returns_stdout():
    module = Module([(0, '[]\n', ''), (0, '', '')])
    runner = HostRunner(module)
    assert runner.run(['ip', '-json', '-details', 'link', 'show']) == '[]\n'
    runner.run(ip_link_set(QVB, up=True))
    assert module.commands == [['/usr/sbin/ip', '-json', '-details', 'link', 'show'],
                               ['/usr/sbin/ip', 'link', 'set', 'dev', QVB, 'up']]
    # The binary is looked up once, in the sbin directories too (a non-root PATH often lacks them).
    assert module.lookups == [('ip', False, ['/sbin', '/usr/sbin', '/usr/local/sbin', '/usr/local/bin'])]


def test_host_runner_names_a_failed_command_with_its_words_and_exit_code():
    module = Module([(1, '', 'Cannot find device "qvb7e57aaaa-00"\n'), (2, 'ovs-vsctl: no bridge named br-x\n', '')])
    runner = HostRunner(module)
    with pytest.raises(KvmhostError) as caught:
        runner.run(ip_link_set(QVB, mtu=1400))
    assert str(caught.value) == 'ip link set dev %s mtu 1400 failed (rc 1): Cannot find device "%s"' % (QVB, QVB)
    assert caught.value.details == {'command': ['ip', 'link', 'set', 'dev', QVB, 'mtu', '1400'], 'rc': 1}
    # Nothing on stderr: stdout explains.
    with pytest.raises(KvmhostError, match=r'^ovs-vsctl --timeout=120 -- del-port br-x qvo failed \(rc 2\): '
                                           r'ovs-vsctl: no bridge named br-x$'):
        runner.run(ovs_vsctl(['del-port', 'br-x', 'qvo']))


def test_host_runner_names_a_missing_command_and_runs_nothing():
    module = Module(installed=('ip',))
    with pytest.raises(KvmhostError) as caught:
        HostRunner(module).run(ovs_vsctl(['list-br']))
    assert caught.value.field == 'ovs-vsctl'
    assert str(caught.value) == 'ovs-vsctl: the command ovs-vsctl is not installed on this host'
    assert module.commands == []


def test_host_runner_reads_and_writes_sysctl_files(tmp_path):
    runner = HostRunner(Module())
    path = tmp_path / 'disable_ipv6'
    path.write_text('0\n')
    assert runner.read_sysctl(str(path)) == '0'
    runner.write_sysctl(str(path), '1')
    assert path.read_text() == '1'
    assert runner.read_sysctl(str(tmp_path / 'missing')) is None


class RealIp(Module):
    """Runs the one read-only command this test allows for real: ip -json -details link show."""

    def __init__(self):
        super().__init__(installed=())

    def get_bin_path(self, name, required=False, opt_dirs=None):
        self.lookups.append((name, required, opt_dirs))
        return shutil.which(name, path=os.pathsep.join([os.environ.get('PATH', '')] + list(opt_dirs or [])))

    def run_command(self, args, check_rc=True):
        assert args[1:] == ['-json', '-details', 'link', 'show'] and check_rc is False
        self.commands.append(args)
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr


@pytest.mark.skipif(shutil.which('ip', path=os.environ.get('PATH', '') + ':/sbin:/usr/sbin') is None,
                    reason='iproute2 is not installed')
@pytest.mark.skipif(not os.path.isdir('/sys/class/net/lo'), reason='no sysfs view of the loopback device')
def test_read_links_of_this_machine_finds_the_loopback_device_as_sysfs_describes_it():
    module = RealIp()
    links = read_links(HostRunner(module))
    assert os.path.basename(module.commands[0][0]) == 'ip'
    loopback = links['lo']
    with open('/sys/class/net/lo/mtu') as handle:
        assert loopback.mtu == int(handle.read())
    with open('/sys/class/net/lo/flags') as handle:
        flags = int(handle.read(), 16)
    assert loopback.up is bool(flags & 0x1)  # IFF_UP
    assert loopback.promisc is bool(flags & 0x100)  # IFF_PROMISC
    assert 'LOOPBACK' in loopback.flags
    assert (loopback.kind, loopback.master, loopback.peer, loopback.info) == (None, None, None, {})


# ---------------------------------------------------------------- reading links

def test_read_links_asks_for_details_and_reads_every_link_by_name():
    runner = Runner()
    links = read_links(runner)
    assert runner.commands == [['ip', '-json', '-details', 'link', 'show']]
    assert sorted(links) == sorted(['lo', 'eth1', QBR, QVB, QVO, TAP, 'vlan100', 'veth-ns0'])
    assert all(link.name == name for name, link in links.items())


def test_link_properties_of_a_hybrid_plug():
    links = read_links(Runner())
    bridge, qvb, qvo, tap = links[QBR], links[QVB], links[QVO], links[TAP]
    assert (bridge.kind, bridge.up, bridge.promisc, bridge.mtu, bridge.master) == ('bridge', True, False, 1400, None)
    assert (bridge.info['forward_delay'], bridge.info['stp_state']) == (0, 0)
    assert (qvb.kind, qvb.up, qvb.promisc, qvb.master, qvb.peer) == ('veth', True, True, QBR, QVO)
    assert qvb.info == {}  # a port's info_slave_data is not the device's own info_data
    assert (qvo.peer, qvo.master) == (QVB, None)
    assert (tap.kind, tap.master, tap.info['type']) == ('tun', QBR, 'tap')


def test_link_properties_of_a_vlan_and_of_a_veth_whose_peer_is_elsewhere():
    links = read_links(Runner())
    vlan = links['vlan100']
    assert (vlan.kind, vlan.peer, vlan.master, vlan.info['id']) == ('vlan', 'eth1', 'brq100', 100)
    elsewhere = links['veth-ns0']
    assert (elsewhere.kind, elsewhere.peer, elsewhere.up) == ('veth', None, False)
    assert (links['eth1'].kind, links['eth1'].info) == (None, {})


def test_read_links_of_empty_output_and_entries_without_a_name():
    assert read_links(Runner(ip='')) == {}
    assert read_links(Runner(ip='[]\n')) == {}
    assert list(read_links(Runner(ip='[{"ifindex":7},{"ifindex":1,"ifname":"lo"}]'))) == ['lo']


def test_read_links_refuses_output_that_is_not_json():
    with pytest.raises(KvmhostError, match='^ip -json link show printed no JSON: '):
        read_links(Runner(ip='1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n'))


def test_ipv6_disabled_reads_the_devices_sysctl():
    path = os.path.join(IPV6_CONF, QBR, 'disable_ipv6')
    assert path == '/proc/sys/net/ipv6/conf/%s/disable_ipv6' % QBR
    assert ipv6_disabled(Runner(sysctl={path: '1'}), QBR) is True
    assert ipv6_disabled(Runner(sysctl={path: '0'}), QBR) is False
    runner = Runner()
    assert ipv6_disabled(runner, QBR) is None  # no IPv6 settings for it (IPv6 off in the kernel)
    assert runner.commands == [['read', path]]


# ---------------------------------------------------------------- reading OVS

@pytest.mark.parametrize('datum, value', [
    ('br-int', 'br-int'),
    (1400, 1400),
    (True, True),
    (['uuid', QVO_UUID], QVO_UUID),
    (['named-uuid', 'row1'], 'row1'),
    (['set', []], []),
    (['set', [['uuid', QVO_UUID], ['uuid', KT_PORT]]], [QVO_UUID, KT_PORT]),
    (['set', [100, 200]], [100, 200]),
    (['map', []], {}),
    (['map', [['attached-mac', MAC], ['vm-uuid', INSTANCE]]], {'attached-mac': MAC, 'vm-uuid': INSTANCE}),
    (['map', [['peer', ['uuid', QVO_UUID]]]], {'peer': QVO_UUID}),
    # A two-item list without an OVSDB tag is data, not a datum to decode.
    (['a', 'b'], ['a', 'b']),
])
def test_ovs_value_decodes_ovsdb_json(datum, value):
    assert ovs_value(datum) == value


def test_json_documents_splits_concatenated_tables():
    assert _json_documents(OVS_TABLES)[1]['headings'] == ['_uuid', 'name']
    assert len(_json_documents(OVS_TABLES)) == 3
    assert _json_documents('{"a":1}{"b":2}\n\n  [3]  ') == [{'a': 1}, {'b': 2}, [3]]
    assert _json_documents('') == [] and _json_documents(None) == [] and _json_documents(' \n') == []
    with pytest.raises(ValueError):
        _json_documents('{"a":1}\novs-vsctl: unix:/var/run/openvswitch/db.sock: database connection failed\n')


def test_read_ovs_asks_for_the_named_ports_and_interfaces_in_one_transaction():
    runner = Runner()
    read_ovs(runner, (name for name in [QVO, TAP]))
    assert runner.commands == [[
        'ovs-vsctl', '--timeout=%d' % OVS_TIMEOUT, '--format=json',
        '--', '--columns=name,ports,datapath_type', 'list', 'Bridge',
        '--', '--if-exists', '--columns=_uuid,name', 'list', 'Port', QVO, TAP,
        '--', '--if-exists', '--columns=name,type,external_ids', 'list', 'Interface', QVO, TAP]]
    assert OVS_TIMEOUT == 120


def test_read_ovs_reads_bridges_ports_and_interfaces():
    state = read_ovs(Runner(), [QVO, 'tap-lost'])
    assert state.bridges == {
        'br-int': {'datapath_type': 'netdev', 'port_uuids': {BR_INT_PORT}},  # a set of one, printed bare
        'br-kt0001': {'datapath_type': 'netdev', 'port_uuids': {QVO_UUID, KT_PORT}},
        'br-empty': {'datapath_type': '', 'port_uuids': set()}}
    assert state.ports == {QVO: QVO_UUID, 'tap-lost': '0d5c3b8a-1e2f-4a5b-8c7d-9e0f1a2b3c4d'}
    assert state.interfaces[QVO] == {'type': '', 'external_ids': {
        'attached-mac': MAC, 'iface-id': PORT, 'iface-status': 'active', 'vm-uuid': INSTANCE}}
    assert state.interfaces['tap-lost'] == {'type': 'internal', 'external_ids': {}}


def test_bridge_of_a_port():
    state = read_ovs(Runner(), [QVO, 'tap-lost'])
    assert state.bridge_of(QVO) == 'br-kt0001'
    assert state.bridge_of('tap-lost') is None  # a port row no bridge lists
    assert state.bridge_of('nothing') is None


def test_read_ovs_refuses_output_that_is_not_three_json_tables():
    with pytest.raises(KvmhostError, match='^ovs-vsctl --format=json printed no JSON: '):
        read_ovs(Runner(ovs='ovs-vsctl: unix:/var/run/openvswitch/db.sock: database connection failed\n'), [QVO])
    two = '\n'.join(OVS_TABLES.splitlines()[:2])
    with pytest.raises(KvmhostError, match='^ovs-vsctl printed 2 JSON tables, expected 3$'):
        read_ovs(Runner(ovs=two), [QVO])


# ---------------------------------------------------------------- argument lists that change things

@pytest.mark.parametrize('value, text', [
    (MAC, '"fa:16:3e:00:00:01"'),
    (INSTANCE, '"%s"' % INSTANCE),
    ('a,b=c', '"a,b=c"'),
    ('say "hi"\\', '"say \\"hi\\"\\\\"'),
    (100, '"100"'),
    ('web-ü', '"web-\\u00fc"'),
])
def test_ovs_string_quotes_so_separators_stay_literal(value, text):
    assert ovs_string(value) == text
    assert json.loads(ovs_string(value)) == str(value)


def test_external_ids_args_are_sorted_and_their_values_quoted():
    external_ids = {'vm-uuid': INSTANCE, 'iface-id': PORT, 'attached-mac': MAC, 'iface-status': 'active'}
    assert external_ids_args(external_ids) == [
        'external_ids:attached-mac="%s"' % MAC, 'external_ids:iface-id="%s"' % PORT,
        'external_ids:iface-status="active"', 'external_ids:vm-uuid="%s"' % INSTANCE]
    assert external_ids_args({}) == []


def test_ovs_vsctl_makes_one_transaction_of_its_commands():
    assert ovs_vsctl() == ['ovs-vsctl', '--timeout=120']
    assert ovs_vsctl(['--if-exists', 'del-port', 'br-int', QVO]) == [
        'ovs-vsctl', '--timeout=120', '--', '--if-exists', 'del-port', 'br-int', QVO]
    assert ovs_vsctl(('add-port', 'br-kt0001', QVO),
                     ['set', 'Interface', QVO] + external_ids_args({'iface-id': PORT})) == [
        'ovs-vsctl', '--timeout=120', '--', 'add-port', 'br-kt0001', QVO,
        '--', 'set', 'Interface', QVO, 'external_ids:iface-id="%s"' % PORT]


@pytest.mark.parametrize('changes, argv', [
    ({}, ['ip', 'link', 'set', 'dev', QVB]),
    ({'up': True}, ['ip', 'link', 'set', 'dev', QVB, 'up']),
    ({'up': False}, ['ip', 'link', 'set', 'dev', QVB, 'down']),
    ({'promisc': False}, ['ip', 'link', 'set', 'dev', QVB, 'promisc', 'off']),
    ({'master': QBR}, ['ip', 'link', 'set', 'dev', QVB, 'master', QBR]),
    # Every change in one command, the state last: the device comes up with its MTU, mode and master set.
    ({'up': True, 'promisc': True, 'mtu': 1400, 'master': QBR},
     ['ip', 'link', 'set', 'dev', QVB, 'mtu', '1400', 'promisc', 'on', 'master', QBR, 'up']),
])
def test_ip_link_set(changes, argv):
    assert ip_link_set(QVB, **changes) == argv


def test_ip_veth_add_gives_both_ends_the_mtu():
    assert ip_veth_add(QVB, QVO, 1400) == ['ip', 'link', 'add', 'name', QVB, 'mtu', '1400', 'type', 'veth',
                                           'peer', 'name', QVO, 'mtu', '1400']
    assert ip_veth_add(QVB, QVO) == ['ip', 'link', 'add', 'name', QVB, 'type', 'veth', 'peer', 'name', QVO]
    assert ip_veth_add(QVB, QVO, 0) == ip_veth_add(QVB, QVO)


def test_ip_vlan_add():
    assert ip_vlan_add('vlan100', 'eth1', 100, 1400) == ['ip', 'link', 'add', 'link', 'eth1', 'name', 'vlan100',
                                                         'mtu', '1400', 'type', 'vlan', 'id', '100']
    assert ip_vlan_add('vlan7', 'bond0', 7) == ['ip', 'link', 'add', 'link', 'bond0', 'name', 'vlan7',
                                                'type', 'vlan', 'id', '7']


def test_ip_bridge_and_delete():
    assert ip_bridge_add(QBR) == ['ip', 'link', 'add', 'name', QBR, 'type', 'bridge', 'forward_delay', '0',
                                  'stp_state', '0']
    assert ip_bridge_settings(QBR) == ['ip', 'link', 'set', 'dev', QBR, 'type', 'bridge', 'forward_delay', '0',
                                       'stp_state', '0']
    assert ip_link_delete(TAP) == ['ip', 'link', 'delete', 'dev', TAP]
