#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: vif
short_description: Plug or unplug one VIF of an instance (bridge, ovs, ovs_hybrid) as os-vif does
version_added: 0.1.0
description:
  - Prepares the host side of one virtual interface before the domain starts, and removes it afterwards, the way
    os-vif's C(ovs) and C(linux_bridge) plugins do for Nova. Device names derive from the port id as os-vif derives
    them (prefix and port id, cut to 14 characters, for example C(tap8dbfeeff-e2)).
  - "V(ovs_hybrid): a Linux bridge C(qbr<port>) (forward delay 0, STP off, IPv6 off), a veth pair
    C(qvb<port>)/C(qvo<port>) (up, promiscuous, with the MTU), C(qvb) in C(qbr), and C(qvo) in the Open vSwitch
    bridge with the external-ids C(iface-id), C(iface-status=active), C(attached-mac) and C(vm-uuid), set in one
    transaction. When C(qvo) exists, only what differs (MTU, flags, external-ids) is fixed. libvirt creates the tap
    in C(qbr) when the domain starts."
  - "V(ovs): nothing is created before the domain starts; the Open vSwitch bridge must exist. The domain XML carries
    an C(openvswitch) virtualport and libvirt adds the tap to the bridge."
  - "V(bridge): ensures the Linux bridge (created with forward delay 0, STP off, IPv6 off; an existing bridge is only
    brought up). With O(vif.vlan) and O(vif.physical_interface), creates C(vlan<N>) on the physical interface and
    enslaves it, as Nova's C(ensure_vlan_bridge); with only O(vif.physical_interface), enslaves that interface (its
    IP addresses are not moved to the bridge)."
  - "Unplug (V(unplugged)) removes what belongs to the instance: a tap libvirt left behind for every type; for
    V(ovs_hybrid) the C(qbr) bridge, the veth pair and the C(qvo) port; for V(ovs) a leftover Open vSwitch port of the
    tap. For V(bridge) the Linux bridge and its C(vlan<N>) interface are never deleted: other instances use them, as
    Nova never deletes them on unplug. Unplug after the domain is stopped, as Nova does."
  - State is read with C(ip -json) and C(ovs-vsctl --format=json); commands run without a shell.
requirements:
  - ip (iproute2) on the managed host, for the bridges, veth pairs and VLAN interfaces.
  - ovs-vsctl (Open vSwitch) on the managed host, for the OVS ports (types V(ovs) and V(ovs_hybrid)).
author:
  - kvmhost.lifecycle developers (@kvmhost)
extends_documentation_fragment:
  - kvmhost.lifecycle.libvirt
  - kvmhost.lifecycle.state_store
  - kvmhost.lifecycle.instances_path
  - kvmhost.lifecycle.batch
  - kvmhost.lifecycle.attributes
options:
  instance_uuid:
    description:
      - The instance UUID, recorded as the C(vm-uuid) external-id of the Open vSwitch port.
      - Required unless O(instances) is given, whose items each give it.
    type: str
  state:
    description: Whether the VIF should be plugged or unplugged.
    type: str
    choices: [plugged, unplugged]
    default: plugged
  vif:
    description: One VIF, as in the instance spec's C(vifs) list.
    type: dict
    suboptions: &vif_options
      id:
        description: The port id (normally a UUID; a UUID for V(ovs)). Device names derive from it.
        type: str
        required: true
      address:
        description: The MAC address, 6 hex octets, unicast.
        type: str
        required: true
      type:
        description: How the VIF is plugged.
        type: str
        required: true
        choices: [ovs_hybrid, ovs, bridge]
      bridge:
        description:
          - The Open vSwitch bridge for V(ovs) and V(ovs_hybrid) (default C(br-int)); the Linux bridge for V(bridge)
            (required then).
        type: str
      vlan:
        description: Type V(bridge) only, with O(vif.physical_interface) - the VLAN id (1..4094) of a VLAN bridge.
        type: int
      physical_interface:
        description: Type V(bridge) only - the existing network device the VLAN interface is created on.
        type: str
      mtu:
        description: The MTU (68..65535) of the veth pair and VLAN interface; unset leaves the kernel's default.
        type: int
      network:
        description: The network of the port. Accepted for a whole VIF spec; not used to plug.
        type: dict
        suboptions:
          id:
            description: The network id.
            type: str
          label:
            description: The network name.
            type: str
          cidr:
            description: The subnet.
            type: str
          gateway:
            description: The gateway address.
            type: str
          dhcp_server:
            description: The DHCP server address.
            type: str
          ips:
            description: The fixed IP addresses of the port.
            type: list
            elements: str
          subnets:
            description:
              - More subnets of the network, as Neutron's (dual stack - an IPv6 subnet next to an IPv4 C(cidr)).
                With C(cidr) or C(subnets) given, every address of C(ips) must be in one of them - an address of a
                family no subnet has is refused.
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
  vifs:
    description:
      - Every VIF of one instance, plugged (or unplugged) in order; the result holds each VIF's result in RV(vifs) and
        the instance's RV(network_info).
      - Mutually exclusive with O(vif); one of them is required.
    type: list
    elements: dict
    suboptions: *vif_options
'''

EXAMPLES = r'''
- name: Plug the port of web-1 the hybrid way (qbr, veth pair, qvo in br-int)
  kvmhost.lifecycle.vif:
    instance_uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    vif:
      id: 8dbfeeff-e21c-4b3d-b527-77845d2a998b
      address: fa:16:3e:81:a8:b4
      type: ovs_hybrid
      bridge: br-int
      mtu: 1450
  register: plugged

- name: A VLAN bridge on eth1
  kvmhost.lifecycle.vif:
    instance_uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    vif: {id: 2a3b4c5d-0000-4000-8000-000000000001, address: "fa:16:3e:00:00:01", type: bridge,
          bridge: brq100, vlan: 100, physical_interface: eth1}

- name: Unplug after the domain is stopped
  kvmhost.lifecycle.vif:
    instance_uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    vif: "{{ instance.vifs[0] }}"
    state: unplugged
'''

RETURN = r'''
port_id:
  description: The port id.
  returned: always
  type: str
  sample: 8dbfeeff-e21c-4b3d-b527-77845d2a998b
type:
  description: The VIF type.
  returned: always
  type: str
  sample: ovs_hybrid
state:
  description: The state asked for.
  returned: always
  type: str
  sample: plugged
devices:
  description: The device names of the VIF (C(tap); C(qbr), C(qvb), C(qvo) for V(ovs_hybrid); C(vlan_interface)).
  returned: always
  type: dict
  sample: {tap: tap8dbfeeff-e2, qbr: qbr8dbfeeff-e2, qvb: qvb8dbfeeff-e2, qvo: qvo8dbfeeff-e2}
interface:
  description:
    - The libvirt interface the domain XML needs - C(type) (bridge), C(model), C(mac), C(mtu), C(source_bridge),
      C(target_dev) and C(virtualport) (C(type) openvswitch and C(interfaceid) for V(ovs), else null).
  returned: always
  type: dict
  sample: {type: bridge, model: virtio, mac: "fa:16:3e:81:a8:b4", mtu: 1450, source_bridge: qbr8dbfeeff-e2,
           target_dev: tap8dbfeeff-e2, virtualport: null}
actions:
  description: What was done (or would be done in check mode), one sentence a step.
  returned: always
  type: list
  elements: str
  sample: ["create Linux bridge qbr8dbfeeff-e2", "create veth pair qvb8dbfeeff-e2/qvo8dbfeeff-e2"]
vifs:
  description: With O(vifs), each VIF's result (the values above), in order.
  returned: when vifs is given
  type: list
  elements: dict
network_info:
  description: With O(vifs), Nova's network info model of the instance's VIFs, what its network info cache holds.
  returned: when vifs is given
  type: list
  elements: dict
devnames:
  description: With O(vifs), the tap device name of each VIF, in order.
  returned: when vifs is given
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
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.vif import VifsDriver

VIF_OPTIONS = dict(
    id=dict(type='str', required=True),
    address=dict(type='str', required=True),
    type=dict(type='str', required=True, choices=['ovs_hybrid', 'ovs', 'bridge']),
    bridge=dict(type='str'),
    vlan=dict(type='int'),
    physical_interface=dict(type='str'),
    mtu=dict(type='int'),
    network=dict(type='dict', options=argument_specs.VIF_NETWORK),
)

ITEM_SPEC = argument_specs.merged(
    instance_uuid=dict(type='str', required=True),
    state=dict(type='str', choices=['plugged', 'unplugged'], default='plugged'),
    vif=dict(type='dict', options=VIF_OPTIONS),
    vifs=dict(type='list', elements='dict', options=VIF_OPTIONS),
)


def main():
    run_step_module(VifsDriver, ITEM_SPEC, 'instance_uuid', required_one_of=[('vif', 'vifs')], mutually_exclusive=[('vif', 'vifs')])


if __name__ == '__main__':
    main()
