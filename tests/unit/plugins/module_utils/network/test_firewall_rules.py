# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rule generation from ports and security groups, and the refusal of bad input (pure: no iptables runs)."""

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.firewall_rules import (
    FALLBACK_CHAIN, MAX_CHAIN_NAME, TOP_CHAIN, build_instance_rules, check_firewall_spec, line_owner)

UUID = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
PORT = '8dbfeeff-e21c-4b3d-b527-77845d2a998b'
MAC = 'fa:16:3e:81:a8:b4'


def params(rules=(), **overrides):
    result = dict(
        instance_uuid=UUID,
        vifs=[dict(id=PORT, address=MAC, type='ovs_hybrid',
                   network=dict(cidr='10.10.10.0/24', dhcp_server='10.10.10.2', ips=['10.10.10.13']))],
        security_groups=[dict(name='default', rules=list(rules))],
        allow_same_network=False)
    result.update(overrides)
    return result


def chains(rules=(), family='ipv4', **overrides):
    return build_instance_rules(check_firewall_spec(params(rules, **overrides)))[family]['chains']


def sg_lines(rules, family='ipv4', chain='kvmhost-i8dbfeeff-e2'):
    """The lines a rule set adds to the chain, without the fixed head and the fallback jump."""
    with_rules, without = chains(rules, family)[chain], chains((), family)[chain]
    return [line for line in with_rules if line not in without]


def test_ingress_chain_in_canonical_order():
    lines = chains([dict(protocol='tcp', port_range_min=22, port_range_max=22, remote_ip_prefix='0.0.0.0/0'),
                    dict(protocol='icmp')], allow_same_network=True)['kvmhost-i8dbfeeff-e2']
    assert lines == [
        '-A kvmhost-i8dbfeeff-e2 -m state --state INVALID -j DROP',
        '-A kvmhost-i8dbfeeff-e2 -m state --state RELATED,ESTABLISHED -j RETURN',
        '-A kvmhost-i8dbfeeff-e2 -s 10.10.10.2/32 -p udp -m udp --sport 67 --dport 68 -j RETURN',
        '-A kvmhost-i8dbfeeff-e2 -s 10.10.10.0/24 -j RETURN',
        '-A kvmhost-i8dbfeeff-e2 -p tcp -m tcp --dport 22 -j RETURN',
        '-A kvmhost-i8dbfeeff-e2 -p icmp -j RETURN',
        '-A kvmhost-i8dbfeeff-e2 -j %s' % FALLBACK_CHAIN,
    ]


def test_egress_chain_in_canonical_order():
    lines = chains([dict(direction='egress', protocol='tcp', port_range_min=443, port_range_max=443)],
                   allow_same_network=True)['kvmhost-o8dbfeeff-e2']
    assert lines == [
        '-A kvmhost-o8dbfeeff-e2 -s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 -j RETURN',
        '-A kvmhost-o8dbfeeff-e2 -j kvmhost-s8dbfeeff-e2',
        '-A kvmhost-o8dbfeeff-e2 -p udp -m udp --sport 68 --dport 67 -j RETURN',
        '-A kvmhost-o8dbfeeff-e2 -p udp -m udp --sport 67 --dport 68 -j DROP',
        '-A kvmhost-o8dbfeeff-e2 -m state --state INVALID -j DROP',
        '-A kvmhost-o8dbfeeff-e2 -m state --state RELATED,ESTABLISHED -j RETURN',
        '-A kvmhost-o8dbfeeff-e2 -d 10.10.10.0/24 -j RETURN',
        '-A kvmhost-o8dbfeeff-e2 -p tcp -m tcp --dport 443 -j RETURN',
        '-A kvmhost-o8dbfeeff-e2 -j %s' % FALLBACK_CHAIN,
    ]


def test_egress_and_anti_spoofing():
    result = chains([dict(direction='egress', protocol='udp', port_range_min=53, remote_ip_prefix='10.0.0.0/8')])
    egress, spoof = result['kvmhost-o8dbfeeff-e2'], result['kvmhost-s8dbfeeff-e2']
    assert egress[0] == ('-A kvmhost-o8dbfeeff-e2 -s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 '
                         '--dport 67 -j RETURN')
    assert egress[1] == '-A kvmhost-o8dbfeeff-e2 -j kvmhost-s8dbfeeff-e2'
    assert '-A kvmhost-o8dbfeeff-e2 -p udp -m udp --sport 67 --dport 68 -j DROP' in egress
    assert egress[-2:] == ['-A kvmhost-o8dbfeeff-e2 -d 10.0.0.0/8 -p udp -m udp --dport 53 -j RETURN',
                           '-A kvmhost-o8dbfeeff-e2 -j kvmhost-sg-fallback']
    assert spoof == ['-A kvmhost-s8dbfeeff-e2 -s 10.10.10.13/32 -m mac --mac-source fa:16:3e:81:a8:b4 -j RETURN',
                     '-A kvmhost-s8dbfeeff-e2 -j DROP']


@pytest.mark.parametrize('rule, line', [
    (dict(protocol='tcp', port_range_min=1000, port_range_max=2000), '-p tcp -m tcp --dport 1000:2000'),
    (dict(protocol='udp', port_range_min=53), '-p udp -m udp --dport 53'),
    (dict(protocol='TCP'), '-p tcp -m tcp'),
    (dict(protocol='icmp', port_range_min=8), '-p icmp -m icmp --icmp-type 8'),
    (dict(protocol='icmp', port_range_min=3, port_range_max=4), '-p icmp -m icmp --icmp-type 3/4'),
    (dict(protocol='47'), '-p 47'),
    (dict(protocol='6'), '-p tcp -m tcp'),
    (dict(protocol='1'), '-p icmp'),
    (dict(protocol='any', remote_ip_prefix='192.0.2.7/24'), '-s 192.0.2.0/24'),
    (dict(remote_ip_prefix='192.0.2.7/32'), '-s 192.0.2.7/32'),
    (dict(protocol='0'), ''),
])
def test_security_group_rule_matches(rule, line):
    expected = ' '.join(part for part in ('-A kvmhost-i8dbfeeff-e2', line, '-j RETURN') if part)
    assert sg_lines([rule]) == [expected]


def test_ipv6_rules_go_to_ipv6_only():
    rules = [dict(protocol='icmp', port_range_min=128, ethertype='IPv6'),
             dict(protocol='tcp', port_range_min=80, remote_ip_prefix='2001:db8::/64')]
    assert sg_lines(rules, 'ipv6') == [
        '-A kvmhost-i8dbfeeff-e2 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j RETURN',
        '-A kvmhost-i8dbfeeff-e2 -s 2001:db8::/64 -p tcp -m tcp --dport 80 -j RETURN']
    assert sg_lines(rules, 'ipv4') == []


def test_ipv6_anti_spoofing_allows_the_link_local_address():
    spoof = chains(family='ipv6', vifs=[dict(id=PORT, address=MAC, network=dict(ips=['2001:db8::13']))])[
        'kvmhost-s8dbfeeff-e2']
    assert spoof == [
        '-A kvmhost-s8dbfeeff-e2 -s 2001:db8::13/128 -m mac --mac-source fa:16:3e:81:a8:b4 -j RETURN',
        '-A kvmhost-s8dbfeeff-e2 -s fe80::f816:3eff:fe81:a8b4/128 -m mac --mac-source fa:16:3e:81:a8:b4 -j RETURN',
        '-A kvmhost-s8dbfeeff-e2 -j DROP']


def test_top_chain_lines_carry_the_owner_and_jumps_come_first():
    top = build_instance_rules(check_firewall_spec(params()))['ipv4']['top']
    assert [line.split()[-1] for line in top] == ['kvmhost-i8dbfeeff-e2', 'kvmhost-o8dbfeeff-e2', 'ACCEPT', 'ACCEPT']
    assert all(line.startswith('-A %s -m physdev --physdev-' % TOP_CHAIN) and line_owner(line) == UUID
               for line in top)
    assert '--physdev-out tap8dbfeeff-e2 --physdev-is-bridged' in top[0]


def test_chain_names_fit_iptables_limit():
    long_id = 'a' * 255
    names = chains(vifs=[dict(id=long_id, address=MAC)])
    assert all(len(name) <= MAX_CHAIN_NAME for name in names)
    assert list(names) == ['kvmhost-iaaaaaaaaaaa', 'kvmhost-oaaaaaaaaaaa', 'kvmhost-saaaaaaaaaaa']


def test_dual_stack_takes_a_subnet_per_family():
    network = dict(cidr='10.10.10.0/24', dhcp_server='10.10.10.2', ips=['10.10.10.13', '2001:db8::13'],
                   subnets=[dict(cidr='2001:db8::/64', gateway='2001:db8::1')])
    spec = check_firewall_spec(params(vifs=[dict(id=PORT, address=MAC, network=network)]))
    assert [str(ip) for ip in spec.ports[0].ips] == ['10.10.10.13', '2001:db8::13']
    assert [str(cidr) for cidr in spec.ports[0].cidrs] == ['10.10.10.0/24', '2001:db8::/64']


@pytest.mark.parametrize('network, field, words', [
    (dict(cidr='10.10.10.0/24', ips=['2001:db8::13']), 'vifs[0].network.ips[0]',
     'is an IPv6 address and the network has no IPv6 subnet'),
    (dict(cidr='2001:db8::/64', ips=['10.10.10.13']), 'vifs[0].network.ips[0]',
     'is an IPv4 address and the network has no IPv4 subnet'),
    (dict(cidr='10.10.10.0/24', ips=['10.10.10.13', '2001:db9::13'], subnets=[dict(cidr='2001:db8::/64')]),
     'vifs[0].network.ips[1]', 'is not in the network 2001:db8::/64'),
    (dict(cidr='10.10.10.0/24', subnets=[dict(gateway='2001:db8::1')]), 'vifs[0].network.subnets[0].cidr',
     'a subnet needs its cidr'),
    (dict(cidr='10.10.10.0/24', gateway='2001:db8::1'), 'vifs[0].network.gateway', 'is not an IPv4 address'),
])
def test_an_address_must_be_in_a_subnet_of_its_family(network, field, words):
    with pytest.raises(KvmhostError) as raised:
        check_firewall_spec(params(vifs=[dict(id=PORT, address=MAC, network=network)]))
    assert raised.value.field == field and words in str(raised.value), (raised.value.field, str(raised.value))


def test_uppercase_mac_and_uuid_are_canonicalised():
    spec = check_firewall_spec(params(instance_uuid=UUID.upper(), vifs=[dict(id=PORT, address=MAC.upper())]))
    assert spec.instance_uuid == UUID and spec.ports[0].mac == MAC


BAD = [
    (dict(instance_uuid='nope'), 'instance_uuid'),
    (dict(vifs=[dict(id='a;b', address=MAC)]), 'vifs[0].id'),
    (dict(vifs=[dict(id='../x', address=MAC)]), 'vifs[0].id'),
    (dict(vifs=[dict(id=PORT, address='fa:16:3e:81:a8')]), 'vifs[0].address'),
    (dict(vifs=[dict(id=PORT, address='01:16:3e:81:a8:b4')]), 'vifs[0].address'),
    (dict(vifs=[dict(id=PORT, address=MAC, network=dict(cidr='10.10.10.0/33'))]), 'vifs[0].network.cidr'),
    (dict(vifs=[dict(id=PORT, address=MAC, network=dict(cidr='10.10.10.0/24', ips=['10.10.11.1']))]),
     'vifs[0].network.ips[0]'),
    (dict(vifs=[dict(id=PORT, address=MAC, network=dict(ips=['10.0.0.1 -j ACCEPT']))]), 'vifs[0].network.ips[0]'),
    (dict(vifs=[dict(id=PORT, address=MAC, network=dict(dhcp_server='x'))]), 'vifs[0].network.dhcp_server'),
    (dict(vifs=[dict(id=PORT, address=MAC), dict(id=PORT[:11] + 'zz', address='fa:16:3e:00:00:01')]), 'vifs[1].id'),
    (dict(security_groups=[dict(name='a"; rm -rf /', rules=[])]), 'security_groups[0].name'),
]
BAD_RULES = [
    (dict(protocol='tcp', port_range_min=0), 'port_range_min'),
    (dict(protocol='tcp', port_range_min=1, port_range_max=65536), 'port_range_max'),
    (dict(protocol='udp', port_range_min=90, port_range_max=80), 'port_range_min'),
    (dict(protocol='tcp', port_range_max=80), 'port_range_max'),
    (dict(protocol='any', port_range_min=80), 'port_range_min'),
    (dict(protocol='47', port_range_min=80), 'port_range_min'),
    (dict(protocol='icmp', port_range_min=256), 'port_range_min'),
    (dict(protocol='icmp', port_range_min=8, port_range_max=-1), 'port_range_max'),
    (dict(protocol='icmp', port_range_max=0), 'port_range_max'),
    (dict(protocol='gre'), 'protocol'),
    (dict(protocol='300'), 'protocol'),
    (dict(protocol='tcp -j ACCEPT'), 'protocol'),
    (dict(remote_ip_prefix='10.0.0.0/8; reboot'), 'remote_ip_prefix'),
    (dict(remote_ip_prefix='10.0.0.0/8', ethertype='IPv6'), 'remote_ip_prefix'),
    (dict(ethertype='IPv5'), 'ethertype'),
    (dict(direction='sideways'), 'direction'),
    (dict(protocol='tcp', port_range_min='22'), 'port_range_min'),
]


@pytest.mark.parametrize('overrides, field', BAD)
def test_bad_input_names_the_field(overrides, field):
    with pytest.raises(KvmhostError) as caught:
        check_firewall_spec(params(**overrides))
    assert caught.value.field == field
    assert str(caught.value).startswith(field + ': ')


@pytest.mark.parametrize('rule, field', BAD_RULES)
def test_bad_rules_name_the_field(rule, field):
    with pytest.raises(KvmhostError) as caught:
        check_firewall_spec(params([dict(protocol='tcp', port_range_min=22), rule]))
    assert caught.value.field == 'security_groups[0].rules[1].' + field
