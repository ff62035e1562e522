# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs of the options many modules share; each matches a doc fragment of the same name."""

from __future__ import annotations

import copy

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import DEFAULT_STATE_DB

# doc fragment kvmhost.lifecycle.libvirt
LIBVIRT = dict(libvirt_uri=dict(type='str', default='qemu:///system'))
# doc fragment kvmhost.lifecycle.shutdown
SHUTDOWN = dict(shutdown_timeout=dict(type='int', default=60), retry_interval=dict(type='int', default=10))
# doc fragment kvmhost.lifecycle.instances_path
INSTANCES_PATH = dict(instances_path=dict(type='path', default='/var/lib/kvmhost/instances'))
# doc fragment kvmhost.lifecycle.state_store
STATE_STORE = dict(state_db=dict(type='path', default=DEFAULT_STATE_DB))

# The `network` of a VIF in the instance spec (the README's "Instance specs"), as domain_xml, vif and
# instance_firewall take it.
VIF_NETWORK = dict(
    id=dict(type='str'),
    label=dict(type='str'),
    cidr=dict(type='str'),
    gateway=dict(type='str'),
    dhcp_server=dict(type='str'),
    ips=dict(type='list', elements='str'),
    # More subnets of the network (dual stack: an IPv6 subnet next to an IPv4 cidr), as Neutron's subnets.
    subnets=dict(type='list', elements='dict', options=dict(
        cidr=dict(type='str', required=True),
        gateway=dict(type='str'),
        dhcp_server=dict(type='str'),
    )),
)

# A volume of the instance spec (the README's "Instance specs"), as domain_xml and iscsi_attach take it.
VOLUME = dict(
    id=dict(type='str', required=True),
    device_name=dict(type='str', required=True),
    target_portal=dict(type='str', required=True),
    target_iqn=dict(type='str', required=True),
    target_lun=dict(type='int', required=True),
    transport=dict(type='str', choices=['host', 'qemu'], default='host'),
    auth=dict(type='dict', options=dict(
        method=dict(type='str', choices=['CHAP'], default='CHAP'),
        username=dict(type='str'),
        password=dict(type='str', no_log=True),
    )),
)

# A security group rule (Neutron's fields), as instance_firewall takes it.
SECURITY_GROUP_RULE = dict(
    direction=dict(type='str', choices=['ingress', 'egress'], default='ingress'),
    protocol=dict(type='str'),
    port_range_min=dict(type='int'),
    port_range_max=dict(type='int'),
    remote_ip_prefix=dict(type='str'),
    ethertype=dict(type='str', choices=['IPv4', 'IPv6']),
)
SECURITY_GROUP = dict(
    name=dict(type='str'),
    rules=dict(type='list', elements='dict', default=[], options=SECURITY_GROUP_RULE),
)

VIF_TYPES = ('ovs_hybrid', 'ovs', 'bridge')

# One entry of kvmhost_instances, the instance spec: the one schema domain_xml and instance_check validate it
# against (a key it does not name, a misspelt rule key for example, is refused).
INSTANCE = dict(
    uuid=dict(type='str', required=True),
    name=dict(type='str', required=True),
    flavor=dict(type='dict', required=True, options=dict(
        vcpus=dict(type='int', required=True),
        memory_mb=dict(type='int', required=True),
        root_gb=dict(type='int', default=0),
        ephemeral_gb=dict(type='int', default=0),
        swap_mb=dict(type='int', default=0),
        name=dict(type='str'),
    )),
    image=dict(type='dict', required=True, options=dict(
        id=dict(type='str', required=True),
        source=dict(type='str'),
        checksum=dict(type='str'),
        kernel=dict(type='str'),
        ramdisk=dict(type='str'),
        cmdline=dict(type='str'),
    )),
    vifs=dict(type='list', elements='dict', options=dict(
        id=dict(type='str', required=True),
        address=dict(type='str', required=True),
        type=dict(type='str', required=True, choices=list(VIF_TYPES)),
        bridge=dict(type='str'),
        vlan=dict(type='int'),
        physical_interface=dict(type='str'),
        mtu=dict(type='int'),
        network=dict(type='dict', options=VIF_NETWORK),
    )),
    volumes=dict(type='list', elements='dict', options=VOLUME),
    security_groups=dict(type='list', elements='dict', options=SECURITY_GROUP),
)


def merged(*specs, **options):
    """One argument spec from shared parts and the module's own options; an option defined twice is a mistake
    (the second definition would silently replace the first, its default included), so it raises ValueError."""
    spec = {}
    for part in specs + (options,):
        for name, definition in part.items():
            if name in spec:
                raise ValueError('option %s is defined twice' % name)
            spec[name] = copy.deepcopy(definition)
    return spec
