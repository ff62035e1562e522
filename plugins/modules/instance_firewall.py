#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: instance_firewall
short_description: Per-instance iptables chains from security groups, applied atomically
version_added: 0.1.0
description:
  - Builds the iptables and ip6tables filter rules of one instance from its ports (MAC address, IP addresses,
    network CIDR, DHCP server) and its security groups, in the manner of Nova's IptablesFirewallDriver and Neutron's
    hybrid iptables firewall.
  - Each port gets an ingress chain C(kvmhost-i<tap suffix>), an egress chain C(kvmhost-o<tap suffix>) and an
    anti-spoofing chain C(kvmhost-s<tap suffix>) (the suffix is the port's tap name without C(tap), for example
    C(8dbfeeff-e2)). The shared chain C(kvmhost-FORWARD), jumped from the top of C(FORWARD), sends traffic bridged to
    or from the port's tap (C(-m physdev), which is why hybrid plugging exists) to them; what no rule allows goes to
    the shared chain C(kvmhost-sg-fallback), which drops it.
  - Ingress, in order - INVALID dropped; ESTABLISHED and RELATED allowed; DHCP replies from the network's DHCP server
    (IPv6 - neighbour discovery, router advertisements and DHCPv6 replies); the port's own network when
    O(allow_same_network); the ingress security-group rules; the fallback drop.
  - Egress, in order - DHCP requests; anti-spoofing (only the port's MAC together with one of its IP addresses, or
    for IPv6 its EUI-64 link-local address, may send); DHCP server replies and router advertisements from the guest
    are dropped; INVALID dropped; ESTABLISHED and RELATED allowed; the port's own network when O(allow_same_network);
    the egress security-group rules; the fallback drop. As in Neutron, a group without egress rules allows no new
    outgoing connections.
  - Applied atomically - the module reads C(iptables-save), replaces only the lines of its own C(kvmhost-*) chains
    and writes them back with one C(iptables-restore --noflush) under an exclusive lock. Rules and chains of anything
    else on the host are never changed, reordered or flushed, and the policies of the built-in chains are never
    touched. IPv6 rules go to ip6tables the same way, as a second transaction - if that one fails, the IPv4 rules
    stay applied, and the next run converges.
  - Non-IP traffic (ARP) is not filtered; that would need ebtables.
author:
  - kvmhost.lifecycle developers (@kvmhost)
extends_documentation_fragment:
  - kvmhost.lifecycle.libvirt
  - kvmhost.lifecycle.state_store
  - kvmhost.lifecycle.instances_path
  - kvmhost.lifecycle.batch
  - kvmhost.lifecycle.attributes
requirements:
  - iptables (iptables-save, iptables-restore, ip6tables-save, ip6tables-restore) with the physdev, mac, state and
    comment matches; br_netfilter with C(net.bridge.bridge-nf-call-iptables=1) so bridged traffic reaches them.
options:
  instance_uuid:
    description:
      - The instance UUID. Its lines of the shared chain carry it as a comment, which is how V(absent) finds them.
      - Required unless O(instances) is given, whose items each give it.
    type: str
  state:
    description: V(present) writes the instance's chains; V(absent) removes them and nothing else (the shared chains
      and the C(FORWARD) jump go with the last instance).
    type: str
    choices: [present, absent]
    default: present
  vifs:
    description:
      - The instance's ports, as in the instance spec. Only C(id), C(address) and C(network) are used here; the other
        keys are accepted so the instance's C(vifs) can be passed as they are.
      - Ignored with O(state=absent).
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description: The port id (normally a UUID); the tap name C(tap<first 11 characters>) and the chain names
          derive from it.
        type: str
        required: true
      address:
        description: The port's unicast MAC address, the only source MAC the guest may send from.
        type: str
        required: true
      type:
        description: How the port is plugged (not used here).
        type: str
        choices: [ovs_hybrid, ovs, bridge]
      bridge:
        description: The bridge of the port (not used here).
        type: str
      vlan:
        description: The VLAN id (1..4094) of a bridge port; not used here, but checked.
        type: int
      physical_interface:
        description: The interface of a VLAN bridge (not used here).
        type: str
      mtu:
        description: The MTU (68..65535) of the port; not used here, but checked.
        type: int
      network:
        description: The port's network.
        type: dict
        suboptions:
          id:
            description: The network id (not used here).
            type: str
          label:
            description: The network name (not used here).
            type: str
          cidr:
            description: The subnet; the port's IP addresses must be in it, and O(allow_same_network) allows it.
            type: str
          gateway:
            description: The gateway address (not used here).
            type: str
          dhcp_server:
            description: The DHCP server whose replies (UDP 67 to 68, or DHCPv6 547 to 546) the port accepts.
            type: str
          ips:
            description: The port's fixed IP addresses, the only source addresses the guest may send from.
            type: list
            elements: str
          subnets:
            description:
              - More subnets of the network, as Neutron's (dual stack - an IPv6 subnet next to an IPv4 C(cidr)).
                With C(cidr) or C(subnets) given, every address of C(ips) must be in one of them - an address of a
                family no subnet has is refused. The DHCP servers of all subnets are allowed.
            type: list
            elements: dict
            suboptions:
              cidr:
                description: The subnet.
                type: str
                required: true
              gateway:
                description: Its gateway address, of its family.
                type: str
              dhcp_server:
                description: Its DHCP server address, of its family.
                type: str
  security_groups:
    description: The instance's security groups; their rules are allowed, in order, for each of its ports.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The group's name (letters, digits, spaces and C(._:@+-)); not written into any rule.
        type: str
      rules:
        description: The group's rules.
        type: list
        elements: dict
        default: []
        suboptions:
          direction:
            description: V(ingress) filters traffic to the instance, V(egress) traffic from it.
            type: str
            choices: [ingress, egress]
            default: ingress
          protocol:
            description: V(tcp), V(udp), V(icmp), V(any) (the default) or an IP protocol number 0..255 (0 means any).
              V(icmp) with O(security_groups[].rules[].ethertype=IPv6) means ICMPv6.
            type: str
          port_range_min:
            description: The first destination port (1..65535) of V(tcp) and V(udp); the ICMP type (0..255) of V(icmp).
            type: int
          port_range_max:
            description: The last destination port (1..65535) of V(tcp) and V(udp) (default
              O(security_groups[].rules[].port_range_min)); the ICMP code (0..255) of V(icmp).
            type: int
          remote_ip_prefix:
            description: The source (ingress) or destination (egress) network in CIDR notation; any when not given.
            type: str
          ethertype:
            description: The address family; by default the one of O(security_groups[].rules[].remote_ip_prefix), or
              V(IPv4) without a prefix (as in Neutron).
            type: str
            choices: [IPv4, IPv6]
  allow_same_network:
    description: Allow all traffic from (ingress) and to (egress) each port's own network CIDR.
    type: bool
    default: false
  lock_file:
    description:
      - The file locked for the whole read, merge and restore, so two runs on one host never interleave.
      - A run waits at most five minutes for the lock, then fails naming this option and the file.
    type: path
    default: /run/kvmhost/iptables.lock
'''

EXAMPLES = r'''
- name: Firewall an instance's ports
  kvmhost.lifecycle.instance_firewall:
    instance_uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    vifs:
      - id: 8dbfeeff-e21c-4b3d-b527-77845d2a998b
        address: fa:16:3e:81:a8:b4
        network: {cidr: 10.10.10.0/24, dhcp_server: 10.10.10.2, ips: [10.10.10.13]}
    security_groups:
      - name: default
        rules:
          - {direction: ingress, protocol: tcp, port_range_min: 22, port_range_max: 22, remote_ip_prefix: 0.0.0.0/0}
          - {direction: ingress, protocol: icmp, port_range_min: 8}
          - {direction: egress}
          - {direction: egress, ethertype: IPv6}

- name: Pass the instance spec's ports and groups as they are
  kvmhost.lifecycle.instance_firewall:
    instance_uuid: "{{ instance.uuid }}"
    vifs: "{{ instance.vifs }}"
    security_groups: "{{ instance.security_groups | default([]) }}"

- name: Remove the instance's chains
  kvmhost.lifecycle.instance_firewall:
    instance_uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    state: absent
'''

RETURN = r'''
instance_uuid:
  description: The instance UUID in canonical form.
  returned: always
  type: str
  sample: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
chains:
  description: The instance's chains per address family after the call (empty with O(state=absent)).
  returned: always
  type: dict
  sample: {ipv4: [kvmhost-i8dbfeeff-e2, kvmhost-o8dbfeeff-e2, kvmhost-s8dbfeeff-e2], ipv6: []}
rules_added:
  description: The rule lines added, per address family, as iptables-save prints them.
  returned: always
  type: dict
  sample: {ipv4: ["-A kvmhost-i8dbfeeff-e2 -p tcp -m tcp --dport 22 -j RETURN"], ipv6: []}
rules_removed:
  description: The rule lines removed, per address family.
  returned: always
  type: dict
  sample: {ipv4: [], ipv6: []}
actions:
  description: The restores made (or that would be made in check mode), one per address family that changes.
  returned: always
  type: list
  elements: str
results:
  description:
    - With O(instances), each instance's outcome in the order given, the values above plus the keys below.
      Without O(instances) not returned (the one instance's values are at the top level).
  returned: when instances is given
  type: list
  elements: dict
  contains:
    uuid:
      description: The instance UUID (lower case).
      type: str
    changed:
      description: Whether this instance changed.
      type: bool
    failed:
      description: Whether the step failed for this instance.
      type: bool
    skipped:
      description: Whether this instance was skipped (it left the run at an earlier step, or O(record.only)).
      type: bool
    msg:
      description: Why it failed, or why it was skipped.
      type: str
failed_instances:
  description: With O(instances), each failed instance's UUID and the cause, as a dict.
  returned: when instances is given
  type: dict
succeeded:
  description: With O(instances), the UUIDs the step succeeded for, in order.
  returned: when instances is given
  type: list
  elements: str
skipped_instances:
  description: With O(instances), the UUIDs that were skipped.
  returned: when instances is given
  type: list
  elements: str
'''

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core import argument_specs
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.batch import run_step_module
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.instance_firewall import InstanceFirewallDriver

VIF_SPEC = dict(
    id=dict(type='str', required=True),
    address=dict(type='str', required=True),
    type=dict(type='str', choices=['ovs_hybrid', 'ovs', 'bridge']),
    bridge=dict(type='str'),
    vlan=dict(type='int'),
    physical_interface=dict(type='str'),
    mtu=dict(type='int'),
    network=dict(type='dict', options=argument_specs.VIF_NETWORK),
)

ITEM_SPEC = dict(
    instance_uuid=dict(type='str', required=True),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    vifs=dict(type='list', elements='dict', default=[], options=VIF_SPEC),
    security_groups=dict(type='list', elements='dict', default=[], options=argument_specs.SECURITY_GROUP),
    allow_same_network=dict(type='bool', default=False),
    lock_file=dict(type='path', default='/run/kvmhost/iptables.lock'),
)


def main():
    run_step_module(InstanceFirewallDriver, ITEM_SPEC, 'instance_uuid')


if __name__ == '__main__':
    main()
