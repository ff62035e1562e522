# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs of the options many modules share; each matches a doc fragment of the same name."""

from __future__ import annotations

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state_store import DEFAULT_STATE_DB

# doc fragment kvmhost.lifecycle.libvirt
LIBVIRT = dict(libvirt_uri=dict(type='str', default='qemu:///system'))
# doc fragment kvmhost.lifecycle.shutdown
SHUTDOWN = dict(shutdown_timeout=dict(type='int', default=60), retry_interval=dict(type='int', default=10))
# doc fragment kvmhost.lifecycle.instances_path
INSTANCES_PATH = dict(instances_path=dict(type='path', default='/var/lib/kvmhost/instances'))
# doc fragment kvmhost.lifecycle.state_store
STATE_STORE = dict(state_db=dict(type='path', default=DEFAULT_STATE_DB))

# The `network` of a VIF in the instance spec (CONTRACT.md), as domain_xml, vif and instance_firewall take it.
VIF_NETWORK = dict(
    id=dict(type='str'),
    label=dict(type='str'),
    cidr=dict(type='str'),
    gateway=dict(type='str'),
    dhcp_server=dict(type='str'),
    ips=dict(type='list', elements='str'),
)

# A volume of the instance spec (CONTRACT.md), as domain_xml and iscsi_attach take it.
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


def merged(*specs, **options):
    """One argument spec from shared parts and the module's own options."""
    spec = {}
    for part in specs + (options,):
        for name, definition in part.items():
            spec[name] = dict(definition)
    return spec
