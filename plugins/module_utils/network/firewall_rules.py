# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iptables rules of one instance, built from its ports and security groups. Pure: no commands run here.

Every line is generated in the canonical form ``iptables-save`` prints it (``-s`` before ``-d`` before ``-p``,
host addresses with ``/32`` or ``/128``, protocol names for tcp/udp/icmp/ipv6-icmp, quoted comments), so the lines
read back from the host compare equal when nothing changed. Layout, per address family:

``FORWARD -j kvmhost-FORWARD`` (shared top chain), in which each port of each instance has two jumps
(``--physdev-out tapX`` to ``kvmhost-iX``, ingress; ``--physdev-in tapX`` to ``kvmhost-oX``, egress) and, after all
jumps of all instances, two ACCEPTs. The per-port chains RETURN what they allow and jump to the shared
``kvmhost-sg-fallback`` (DROP) otherwise, so traffic between two of our ports passes both ports' chains.
``kvmhost-sX`` is the anti-spoofing chain of the port (source MAC and IP pairs). Every top-chain line carries the
comment ``kvmhost-instance:<uuid>``: that is how ``absent`` finds an instance's chains without its specs.
"""

from __future__ import annotations

import collections
import ipaddress
import re

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    MAX_MTU, MAX_PORT, MAX_VLAN, MIN_MTU, MIN_PORT, MIN_VLAN, check_int, check_mac, check_uuid)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.names import check_port_id, tap_name

FAMILIES = ('ipv4', 'ipv6')
ETHERTYPES = {'IPv4': 'ipv4', 'IPv6': 'ipv6'}
CHAIN_PREFIX = 'kvmhost-'
TOP_CHAIN = 'kvmhost-FORWARD'
FALLBACK_CHAIN = 'kvmhost-sg-fallback'
MAX_CHAIN_NAME = 28  # XT_EXTENSION_MAXNAMELEN - 1
FORWARD_JUMP = '-A FORWARD -j %s' % TOP_CHAIN
FALLBACK_RULES = ('-A %s -j DROP' % FALLBACK_CHAIN,)
OWNER_COMMENT_RE = re.compile(r'--comment "?kvmhost-instance:([0-9a-f-]{36})"?(?: |$)')
PORT_CHAIN_KINDS = ('i', 'o', 's')  # ingress, egress, anti-spoofing
MAX_ICMP = 255  # an ICMP type and an ICMP code are one octet each

# Protocols iptables-save prints by name; any other protocol is written (and compared) as its number.
PROTOCOL_NAMES = {'tcp': 6, 'udp': 17, 'icmp': 1}
_NAMED = {6: 'tcp', 17: 'udp'}
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9 ._:@+-]{0,254}$')
# ICMPv6 types a port needs whatever its groups say (Neutron's ICMPV6_ALLOWED_*): MLD 130-132, RA 134, NS 135, NA 136
_ICMPV6_INGRESS = (130, 131, 132, 134, 135, 136)
# and may send: MLD 130-132 and 143, RS 133, NS 135, NA 136 (never RA 134: no rogue routers)
_ICMPV6_EGRESS = (130, 131, 132, 133, 135, 136, 143)

Port = collections.namedtuple('Port', 'port_id suffix tap mac ips cidrs dhcp_servers')
Rule = collections.namedtuple('Rule', 'direction family protocol port_min port_max prefix')
FirewallSpec = collections.namedtuple('FirewallSpec', 'instance_uuid ports rules allow_same_network')


def port_chain(kind, port):
    """``kvmhost-i8dbfeeff-e2``: kind i (ingress), o (egress) or s (anti-spoofing) of the port's tap suffix."""
    name = '%s%s%s' % (CHAIN_PREFIX, kind, port.suffix)
    if len(name) > MAX_CHAIN_NAME:  # cannot happen with os-vif's 14-character tap names; kept as a guard
        raise KvmhostError('chain name %s is longer than %d characters' % (name, MAX_CHAIN_NAME), field='vifs')
    return name


def owner_comment(instance_uuid):
    """The comment of the instance's top-chain lines, exactly as iptables-save prints it."""
    return '-m comment --comment "kvmhost-instance:%s"' % instance_uuid


def line_owner(line):
    """The instance UUID a top-chain line belongs to, or None."""
    match = OWNER_COMMENT_RE.search(line)
    return match.group(1) if match else None


# ---------------------------------------------------------------- input checks

def _network(value, field):
    try:
        return ipaddress.ip_network(value, strict=False)
    except (ValueError, TypeError):
        raise KvmhostError('must be a network in CIDR notation like 10.10.10.0/24, got %r' % (value,), field=field)


def _address(value, field):
    try:
        return ipaddress.ip_address(value)
    except (ValueError, TypeError):
        raise KvmhostError('must be an IP address, got %r' % (value,), field=field)


def _port_number(value, field, low, high):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise KvmhostError('must be an integer, got %r' % (value,), field=field)
    if not low <= value <= high:
        raise KvmhostError('must be %d..%d, got %d' % (low, high, value), field=field)
    return value


def _check_port(vif, field):
    if not isinstance(vif, dict):
        raise KvmhostError('must be a dictionary', field=field)
    port_id = check_port_id(vif.get('id'), field + '.id')
    mac = check_mac(vif.get('address'), field + '.address')
    # Not used by the firewall, but the port's fields all the same: what the vif module would refuse is refused.
    for key, low, high in (('vlan', MIN_VLAN, MAX_VLAN), ('mtu', MIN_MTU, MAX_MTU)):
        if vif.get(key) is not None:
            check_int(vif[key], '%s.%s' % (field, key), low, high)
    network = vif.get('network') or {}
    if not isinstance(network, dict):
        raise KvmhostError('must be a dictionary', field=field + '.network')
    subnets = [(network, field + '.network')]
    extra = network.get('subnets') or []
    if not isinstance(extra, list):
        raise KvmhostError('must be a list', field=field + '.network.subnets')
    subnets += [(subnet, '%s.network.subnets[%d]' % (field, index)) for index, subnet in enumerate(extra)]
    cidrs, dhcp = [], []
    for subnet, where in subnets:
        if not isinstance(subnet, dict):
            raise KvmhostError('must be a dictionary', field=where)
        if subnet.get('cidr') is not None:
            cidr = _network(subnet['cidr'], where + '.cidr')
            for key in ('gateway', 'dhcp_server'):  # of the subnet's family (Neutron allows a gateway outside it)
                if subnet.get(key) is not None and _address(subnet[key], '%s.%s' % (where, key)).version != cidr.version:
                    raise KvmhostError('%s is not an IPv%d address, as the subnet %s is' % (subnet[key], cidr.version, cidr),
                                       field='%s.%s' % (where, key))
            cidrs.append(cidr)
        elif where != field + '.network':
            raise KvmhostError('a subnet needs its cidr', field=where + '.cidr')
        if subnet.get('dhcp_server') is not None:
            dhcp.append(_address(subnet['dhcp_server'], where + '.dhcp_server'))
    ips = []
    for index, value in enumerate(network.get('ips') or []):
        where = '%s.network.ips[%d]' % (field, index)
        address = _address(value, where)
        # With subnets given, every address is in one of them: an address of a family no subnet has is refused.
        if cidrs and not any(address in cidr for cidr in cidrs):
            same = [str(cidr) for cidr in cidrs if cidr.version == address.version]
            if same:
                raise KvmhostError('%s is not in the network %s' % (address, ' or '.join(same)), field=where)
            raise KvmhostError('%s is an IPv%d address and the network has no IPv%d subnet (cidr, or one of subnets)'
                               % (address, address.version, address.version), field=where)
        ips.append(address)
    tap = tap_name(port_id)
    return Port(port_id=port_id, suffix=tap[len('tap'):], tap=tap, mac=mac, ips=tuple(ips),
                cidrs=tuple(cidrs), dhcp_servers=tuple(dhcp))


def _check_protocol(value, field):
    """'any', 'tcp', 'udp', 'icmp' or a number 0..255 (0 means any); returns a name or an int or None."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ('any', ''):
        return None
    if text in PROTOCOL_NAMES:
        return text
    if text.isdigit():
        number = int(text)
        if number > 255:
            raise KvmhostError('must be a protocol number 0..255, got %d' % number, field=field)
        if number == 0:
            return None
        if number == 1:
            return 'icmp'
        return _NAMED.get(number, number)
    raise KvmhostError('must be tcp, udp, icmp, any or a protocol number 0..255, got %r' % (value,), field=field)


def _check_rule(rule, field):
    if not isinstance(rule, dict):
        raise KvmhostError('must be a dictionary', field=field)
    direction = rule.get('direction') or 'ingress'
    if direction not in ('ingress', 'egress'):
        raise KvmhostError('must be ingress or egress, got %r' % (direction,), field=field + '.direction')
    protocol = _check_protocol(rule.get('protocol'), field + '.protocol')
    prefix = None
    if rule.get('remote_ip_prefix') is not None:
        prefix = _network(rule['remote_ip_prefix'], field + '.remote_ip_prefix')
    ethertype = rule.get('ethertype')
    if ethertype is not None and ethertype not in ETHERTYPES:
        raise KvmhostError('must be IPv4 or IPv6, got %r' % (ethertype,), field=field + '.ethertype')
    if ethertype is None:  # Neutron's default ethertype is IPv4
        family = 'ipv%d' % prefix.version if prefix is not None else 'ipv4'
    else:
        family = ETHERTYPES[ethertype]
        if prefix is not None and 'ipv%d' % prefix.version != family:
            raise KvmhostError('%s is not an %s prefix' % (prefix, ethertype), field=field + '.remote_ip_prefix')
    if prefix is not None and prefix.prefixlen == 0:
        prefix = None  # 0.0.0.0/0 and ::/0: iptables-save prints no address at all
    low, high = rule.get('port_range_min'), rule.get('port_range_max')
    if protocol in ('tcp', 'udp'):
        low = _port_number(low, field + '.port_range_min', MIN_PORT, MAX_PORT)
        high = _port_number(high, field + '.port_range_max', MIN_PORT, MAX_PORT)
        if high is not None and low is None:
            raise KvmhostError('needs port_range_min too', field=field + '.port_range_max')
        if low is not None and high is None:
            high = low
        if low is not None and low > high:
            raise KvmhostError('port_range_min %d is above port_range_max %d' % (low, high),
                               field=field + '.port_range_min')
    elif protocol == 'icmp':  # Neutron: port_range_min is the ICMP type, port_range_max the code
        low = _port_number(low, field + '.port_range_min', 0, MAX_ICMP)
        high = _port_number(high, field + '.port_range_max', 0, MAX_ICMP)
        if high is not None and low is None:
            raise KvmhostError('an ICMP code needs an ICMP type (port_range_min)', field=field + '.port_range_max')
    elif low is not None or high is not None:
        raise KvmhostError('ports are only for tcp, udp (ports) and icmp (type and code), not for protocol %s'
                           % (protocol if protocol is not None else 'any'), field=field + '.port_range_min')
    return Rule(direction, family, protocol, low, high, prefix)


def check_firewall_spec(params):
    """Check the module's options; return a FirewallSpec or raise KvmhostError naming the field."""
    instance_uuid = check_uuid(params.get('instance_uuid'), 'instance_uuid')
    ports, seen = [], {}
    for index, vif in enumerate(params.get('vifs') or []):
        port = _check_port(vif, 'vifs[%d]' % index)
        if port.suffix in seen:
            raise KvmhostError('port %s has the same device name %s as %s: port ids must differ in their first '
                               '11 characters' % (port.port_id, port.tap, seen[port.suffix]), field='vifs[%d].id' % index)
        seen[port.suffix] = 'vifs[%d]' % index
        ports.append(port)
    rules = []
    for group_index, group in enumerate(params.get('security_groups') or []):
        field = 'security_groups[%d]' % group_index
        if not isinstance(group, dict):
            raise KvmhostError('must be a dictionary', field=field)
        name = group.get('name')
        if name is not None and (not isinstance(name, str) or not _NAME_RE.fullmatch(name)):
            raise KvmhostError('must be 1-255 letters, digits, spaces and ._:@+-, starting with a letter or digit; '
                               'got %r' % (name,), field=field + '.name')
        for rule_index, rule in enumerate(group.get('rules') or []):
            rules.append(_check_rule(rule, '%s.rules[%d]' % (field, rule_index)))
    return FirewallSpec(instance_uuid, tuple(ports), tuple(rules), bool(params.get('allow_same_network')))


# ---------------------------------------------------------------- rule lines

def _host(address):
    return '%s/%d' % (address, address.max_prefixlen)


def _link_local(mac):
    """The EUI-64 link-local address of a MAC: the source of the guest's IPv6 neighbour discovery."""
    octets = [int(part, 16) for part in mac.split(':')]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xff, 0xfe] + octets[3:]
    return ipaddress.IPv6Address(bytes([0xfe, 0x80] + [0] * 6 + eui))


def _match(rule, family):
    """The match part of a security-group rule, in iptables-save's order."""
    parts = []
    if rule.prefix is not None:
        parts.append(('-s %s' if rule.direction == 'ingress' else '-d %s') % rule.prefix)
    if rule.protocol in ('tcp', 'udp'):
        parts.append('-p %s -m %s' % (rule.protocol, rule.protocol))
        if rule.port_min is not None:
            ports = str(rule.port_min) if rule.port_min == rule.port_max else '%d:%d' % (rule.port_min, rule.port_max)
            parts.append('--dport %s' % ports)
    elif rule.protocol == 'icmp':
        if family == 'ipv4':
            parts.append('-p icmp' + (' -m icmp --icmp-type ' if rule.port_min is not None else ''))
        else:
            parts.append('-p ipv6-icmp' + (' -m icmp6 --icmpv6-type ' if rule.port_min is not None else ''))
        if rule.port_min is not None:
            parts[-1] += str(rule.port_min) if rule.port_max is None else '%d/%d' % (rule.port_min, rule.port_max)
    elif rule.protocol is not None:
        parts.append('-p %d' % rule.protocol)
    return ' '.join(parts)


def _add(lines, chain, match, target):
    lines.append(' '.join(part for part in ('-A', chain, match, '-j', target) if part))


def _add_conntrack(lines, chain):
    """Drop what conntrack calls invalid, let the replies of allowed connections through."""
    _add(lines, chain, '-m state --state INVALID', 'DROP')
    _add(lines, chain, '-m state --state RELATED,ESTABLISHED', 'RETURN')


def _add_allowed(lines, chain, spec, port, family, direction):
    """The end of a port's ingress or egress chain: its own networks (with allow_same_network), the security
    groups' rules of that direction, then the fallback chain, which drops the rest."""
    version = 4 if family == 'ipv4' else 6
    if spec.allow_same_network:
        for cidr in port.cidrs:
            if cidr.version == version:
                _add(lines, chain, '%s %s' % ('-s' if direction == 'ingress' else '-d', cidr), 'RETURN')
    for rule in spec.rules:
        if rule.direction == direction and rule.family == family:
            _add(lines, chain, _match(rule, family), 'RETURN')
    _add(lines, chain, '', FALLBACK_CHAIN)


def _ingress_rules(spec, port, family):
    chain = port_chain('i', port)
    lines = []
    _add_conntrack(lines, chain)
    version = 4 if family == 'ipv4' else 6
    if family == 'ipv6':
        for icmp_type in _ICMPV6_INGRESS:
            _add(lines, chain, '-p ipv6-icmp -m icmp6 --icmpv6-type %d' % icmp_type, 'RETURN')
    for server in port.dhcp_servers:
        if server.version == version:
            sport, dport = (67, 68) if version == 4 else (547, 546)
            _add(lines, chain, '-s %s -p udp -m udp --sport %d --dport %d' % (_host(server), sport, dport), 'RETURN')
    _add_allowed(lines, chain, spec, port, family, 'ingress')
    return lines


def _egress_rules(spec, port, family):
    chain, spoof = port_chain('o', port), port_chain('s', port)
    lines = []
    version = 4 if family == 'ipv4' else 6
    if family == 'ipv4':
        _add(lines, chain, '-s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67', 'RETURN')
    else:
        for icmp_type in (131, 135, 143):  # duplicate address detection and MLD before an address is set
            _add(lines, chain, '-s ::/128 -d ff02::/16 -p ipv6-icmp -m icmp6 --icmpv6-type %d' % icmp_type, 'RETURN')
    _add(lines, chain, '', spoof)
    if family == 'ipv4':
        _add(lines, chain, '-p udp -m udp --sport 68 --dport 67', 'RETURN')
        _add(lines, chain, '-p udp -m udp --sport 67 --dport 68', 'DROP')  # no DHCP server in a guest
    else:
        for icmp_type in _ICMPV6_EGRESS:
            _add(lines, chain, '-p ipv6-icmp -m icmp6 --icmpv6-type %d' % icmp_type, 'RETURN')
        _add(lines, chain, '-p udp -m udp --sport 546 --dport 547', 'RETURN')
        _add(lines, chain, '-p udp -m udp --sport 547 --dport 546', 'DROP')
    _add_conntrack(lines, chain)
    _add_allowed(lines, chain, spec, port, family, 'egress')
    spoof_lines = []
    sources = [ip for ip in port.ips if ip.version == version]
    if family == 'ipv6':
        sources.append(_link_local(port.mac))
    for source in sources:
        _add(spoof_lines, spoof, '-s %s -m mac --mac-source %s' % (_host(source), port.mac), 'RETURN')
    _add(spoof_lines, spoof, '', 'DROP')
    return lines, spoof_lines


def build_instance_rules(spec):
    """{family: {'chains': OrderedDict(chain -> [lines]), 'top': [lines]}} of the instance, in apply order.

    ``top`` are the instance's lines of the shared top chain: all jumps first, then the ACCEPTs (the merge keeps
    every instance's jumps before every instance's ACCEPTs).
    """
    result = {}
    comment = owner_comment(spec.instance_uuid)
    for family in FAMILIES:
        chains = collections.OrderedDict()
        jumps, accepts = [], []
        for port in spec.ports:
            chains[port_chain('i', port)] = _ingress_rules(spec, port, family)
            egress, spoof = _egress_rules(spec, port, family)
            chains[port_chain('o', port)] = egress
            chains[port_chain('s', port)] = spoof
            out_match = '-m physdev --physdev-out %s --physdev-is-bridged %s' % (port.tap, comment)
            in_match = '-m physdev --physdev-in %s --physdev-is-bridged %s' % (port.tap, comment)
            _add(jumps, TOP_CHAIN, out_match, port_chain('i', port))
            _add(jumps, TOP_CHAIN, in_match, port_chain('o', port))
            _add(accepts, TOP_CHAIN, out_match, 'ACCEPT')
            _add(accepts, TOP_CHAIN, in_match, 'ACCEPT')
        result[family] = {'chains': chains, 'top': jumps + accepts}
    return result
