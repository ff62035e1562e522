#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: instance_check
short_description: Check the instance specs of a boot, rebuild or delete and the host's preconditions, changing nothing
version_added: 0.2.0
description:
  - The first step of the roles' boot, rebuild and delete - every check that any later step would make, for every
    instance of the run, before the first change on the host. A refusal names the instance, the field and the
    reason; all refusals of the run are reported together and the module fails, so the run changes nothing.
  - "Each spec is validated against the schema of an instance spec (the C(kvmhost_instances) entries: a key the
    schema does not name, such as a misspelt rule key, is refused), then by the checks the steps make of their
    part: the VIFs (port ids, MAC addresses, types, bridges, VLANs, MTUs), the network (addresses inside the
    network's CIDR and of its family, the CIDR itself), the security group rules (names, protocols, port ranges,
    prefixes and their family), the flavor (bounded sizes), the image (an absolute path, file, http or https source,
    a sha256 or sha512 checksum, readable local files) and the volumes (ids, device names, portals, IQNs, LUNs,
    transport and CHAP)."
  - Across the run and the host, MAC addresses and port ids are unique - between the run's specs and against the
    network info cache of every other instance in the state store.
  - "Of the host it reads: libvirt answers at O(libvirt_uri); O(instances_path) is a writable directory and the
    directory of O(state_db) exists; the Open vSwitch bridges of the C(ovs) and C(ovs_hybrid) VIFs and the
    physical interfaces of VLAN VIFs exist; the domain name C(instance-%08x) that an instance's local id gives
    of a recorded instance is not another domain's (a new record skips the ids whose names other domains have); every iSCSI portal of the volumes
    accepts a TCP connection within 3 seconds; the host has the memory (C(MemAvailable), with a 64 MiB margin) and
    the disk in O(instances_path) (local base images not cached yet, 64 MiB per new instance) that the instances
    it boots anew need."
  - With O(action=rebuild) it also finds the instances whose killed rebuild already runs the new domain (RV(host.resumable)).
  - With O(action=delete) only the parts a delete uses are checked (the UUID, the VIFs and firewall ports, the
    volumes' portals and the paths), so a delete is not refused because of an image it will not use.
  - With O(action=delete) and O(uuids), the instances to delete whose spec is not in O(instances) (it has left the
    inventory) are read from what the host itself knows - their state store record and network info cache (the
    VIFs), their libvirt domain's XML (the volumes, and the VIFs when the cache has none), or once the domain is
    gone the C(libvirt.xml) of their directory - and returned as RV(known_instances), the specs the delete steps
    take. Of an instance whose record is marked deleted only a domain still defined is read (its ports and
    volumes may be another instance's since).
  - With O(action=migrate_source) (the source of a cold migration) the specs are checked as for a boot, and the
    host must have each instance - its record (with no other task unfinished), its domain and its directory;
    RV(host.transfer_bytes) says how many bytes each directory holds. Its network, portals and resources are not
    read (the instance leaves).
  - With O(action=migrate_destination) (the destination) the specs are checked as for a boot of new instances - the
    image readable here, the bridges, the portals, the memory, the disk (with O(transfer_bytes)) - and the host must
    not have them (no domain, no live record, no directory; what an unfinished migration of the instance left is
    replaced by the next one), and the vCPUs of its running domains and of the arriving instances must fit in its
    CPUs times O(cpu_allocation_ratio).
author:
  - kvmhost.lifecycle developers (@kvmhost)
requirements:
  - libvirt-python on the managed host
  - ovs-vsctl (Open vSwitch) and ip (iproute2) on the managed host, when a spec has OVS or VLAN VIFs
extends_documentation_fragment:
  - kvmhost.lifecycle.libvirt
  - kvmhost.lifecycle.state_store
  - kvmhost.lifecycle.instances_path
  - kvmhost.lifecycle.attributes.INFO_MODULE
options:
  instances:
    description:
      - The instance specs of the run, as in the C(kvmhost_instances) inventory variable (the schema is the
        O(kvmhost.lifecycle.domain_xml#module:instance) option of M(kvmhost.lifecycle.domain_xml), with
        C(security_groups) as M(kvmhost.lifecycle.instance_firewall) takes them).
    type: list
    elements: dict
    required: true
  uuids:
    description:
      - With O(action=delete), the UUIDs of the instances to delete. Those without a spec in O(instances) are read
        from the host (see above); those it knows nothing of (no record, no domain, no directory) are returned in
        RV(unknown_uuids), not refused, since on a fleet each instance is known to one host only.
      - Refused with any other O(action).
    type: list
    elements: str
  action:
    description: What the run will do to them; V(delete) checks less, the migrations check what they need (see above).
    type: str
    choices: [boot, rebuild, delete, migrate_source, migrate_destination]
    required: true
  transfer_bytes:
    description:
      - With O(action=migrate_destination), the bytes each arriving instance's directory brings ({uuid - bytes}, the
        source's RV(host.transfer_bytes)), counted in the disk the host must have.
    type: dict
  cpu_allocation_ratio:
    description:
      - With O(action=migrate_destination), the vCPUs this host may give its instances per CPU (Nova's
        C(cpu_allocation_ratio)), V(16.0) when not given. Range V(1)..V(1024).
    type: float
  virt_type:
    description: The host's libvirt virt type, as M(kvmhost.lifecycle.domain_xml) takes it.
    type: str
    choices: [kvm, qemu]
    default: kvm
  vnc:
    description: Whether the domains get a VNC console, as M(kvmhost.lifecycle.domain_xml) takes it.
    type: bool
    default: false
  claim:
    description:
      - Once every check passed, claim the run's instances in the state store for the run's request id, so that a
        second run on the host (another ansible-playbook on the same instances) cannot work on them at the same
        time. The step modules given the same request id in their O(kvmhost.lifecycle.instance_shutdown#module:record)
        refuse an instance another live run has, and keep the run's claims alive while they work (a heartbeat every
        10 seconds); M(kvmhost.lifecycle.instance_timeline) with O(kvmhost.lifecycle.instance_timeline#module:release_claims)
        releases them at the end. A claim whose heartbeat is older than its O(claim.stale_after) seconds is a dead
        run's (a killed ansible-playbook) and is taken over.
      - All or nothing - when an instance stays claimed by another run for O(claim_wait) seconds, the module releases
        the claims it took and refuses that instance, naming the other run's request id.
      - In check mode nothing is claimed; an instance that another live run has is refused all the same.
    type: dict
    suboptions:
      request_id:
        description: The run's request id.
        type: str
        required: true
      stale_after:
        description:
          - Seconds the run's claims outlive its last heartbeat before another run may take them over. Between
            two steps of a play a host waits, silent, for the other hosts' step, so this must be longer than the
            longest step any host of the play takes (a shutdown timeout, an image download). Range V(30)..V(86400).
        type: int
        default: 60
  claim_wait:
    description: Seconds to wait for instances another run has before refusing them. Range V(0)..V(3600).
    type: int
    default: 90
'''

EXAMPLES = r'''
- name: Check every instance spec before anything changes
  kvmhost.lifecycle.instance_check:
    instances: "{{ kvmhost_instances }}"
    action: boot
    virt_type: qemu
  register: checked

- name: Show what the host has for the new instances
  ansible.builtin.debug:
    msg: "{{ checked.host.memory_needed_mb }} of {{ checked.host.memory_available_mb }} MiB"
'''

RETURN = r'''
results:
  description: Each instance's outcome, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    uuid:
      description: The instance UUID (or C(instances[N]) when the spec has none).
      type: str
    name: {description: The display name of the spec., type: str}
    failed: {description: Whether a check refused the instance., type: bool}
    msg: {description: The refusals of this instance (field and reason)., type: str, returned: when failed}
refusals:
  description: Every refusal of the run, each naming the instance (or the host), the field and the reason. Empty when
    the module succeeds.
  returned: always
  type: list
  elements: str
  sample: ["web-1 (8f3c...): security_groups[0].rules[0].port_range_min: port_range_min 80 is above port_range_max 22"]
host:
  description: What was read of the host.
  returned: always
  type: dict
  contains:
    libvirt_uri: {description: The libvirt URI that answered., type: str, returned: when libvirt answered}
    next_local_id: {description: The local id the state store gives the next new record., type: int}
    local_ids:
      description:
        - Each instance's local id, the one its record has or the one a new record is expected to get (in the order
          of O(instances); records made concurrently may take the new ids in another order).
      type: dict
      returned: when libvirt answered, unless O(action=delete)
    ovs_bridges: {description: The OVS bridges the VIFs need., type: list, elements: str, returned: when a VIF needs one}
    resumable:
      description:
        - With O(action=rebuild), the instances whose unfinished rebuild (a run killed after spawning) already runs
          the new domain - record in a rebuild task state, domain running with no drift from the new directory's
          C(libvirt.xml), on the spec's image. The rebuild role skips their shutdown, unplug and move; the later
          steps find them done and finish them.
      type: list
      elements: str
      returned: when O(action=rebuild) and libvirt answered
    portals: {description: The iSCSI portals probed., type: list, elements: str, returned: when a volume is given}
    new_instances:
      description: The instances this run creates anew (no record, no domain).
      type: list
      elements: str
      returned: unless O(action=delete) or O(action=migrate_source)
    memory_available_mb:
      description: The host's available memory.
      type: int
      returned: unless O(action=delete) or O(action=migrate_source)
    memory_needed_mb:
      description: The memory of the new instances.
      type: int
      returned: unless O(action=delete) or O(action=migrate_source)
    disk_free_mb:
      description: Free space in O(instances_path).
      type: int
      returned: unless O(action=delete) or O(action=migrate_source)
    disk_needed_mb:
      description: What the new instances need there.
      type: int
      returned: unless O(action=delete) or O(action=migrate_source)
    transfer_bytes:
      description: With O(action=migrate_source), the bytes of each instance's directory ({uuid - bytes}).
      type: dict
      returned: when O(action=migrate_source) and libvirt answered
    departed:
      description:
        - With O(action=migrate_source), the instances this host's record says were migrated away ({uuid - the host
          the record names}); they are not refused, a second migration finds them gone.
      type: dict
      returned: when O(action=migrate_source) and libvirt answered
    arrived:
      description:
        - With O(action=migrate_destination), the instances an earlier migration brought here and that run here (their
          newest action a finished migrate); they are not refused, the source only lets them go.
      type: list
      elements: str
      returned: when O(action=migrate_destination) and libvirt answered
    vcpus: {description: The host's CPUs., type: int, returned: when O(action=migrate_destination)}
    vcpus_used: {description: The vCPUs of its running domains., type: int, returned: when O(action=migrate_destination)}
    vcpus_needed: {description: The vCPUs of the arriving instances., type: int, returned: when O(action=migrate_destination)}
    vcpus_limit:
      description: The CPUs times O(cpu_allocation_ratio).
      type: int
      returned: when O(action=migrate_destination)
    claimed:
      description: The instances claimed for O(claim.request_id) (empty in check mode).
      type: list
      elements: str
      returned: when O(claim) is given and every check passed
known_instances:
  description:
    - The instances of O(uuids) without a spec in O(instances) that the host knows, each as much of an instance spec
      as deleting it takes. The volumes carry no C(auth) (detaching takes no CHAP password; the host keeps it only
      in libvirt's secret) and the security groups are empty (the firewall chains are found by the UUID).
  returned: when O(uuids) is given
  type: list
  elements: dict
  contains:
    uuid: {description: The instance UUID., type: str}
    name: {description: The display name of its record or its domain's metadata (empty when neither has one)., type: str}
    vifs:
      description: Its VIFs - C(id), C(address), C(type) and, where known, C(bridge), C(vlan), C(physical_interface) and C(mtu).
      type: list
      elements: dict
    volumes:
      description: Its volumes - C(id), C(device_name), C(target_portal), C(target_iqn), C(target_lun) and C(transport).
      type: list
      elements: dict
    security_groups: {description: Always empty., type: list, elements: dict}
  sample:
    - uuid: 5d1e7f1c-3f53-4c0a-9a43-2a9f4c1b2e77
      name: web-1
      vifs: [{id: 0b6b1fe8-5a0b-4c6e-9a7a-1c2d3e4f5a6b, address: "fa:16:3e:11:22:33", type: ovs_hybrid, bridge: br-int}]
      volumes: [{id: vol-data-1, device_name: vdb, target_portal: "192.0.2.10:3260",
                 target_iqn: "iqn.2010-10.org.openstack:vol-data-1", target_lun: 1, transport: qemu}]
      security_groups: []
unknown_uuids:
  description: The UUIDs of O(uuids) without a spec in O(instances) that this host knows nothing of.
  returned: when O(uuids) is given
  type: list
  elements: str
known_uuids:
  description: The UUIDs of the run - those of O(instances) and of RV(known_instances).
  returned: when O(uuids) is given
  type: list
  elements: str
'''

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core import argument_specs
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import run_module
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.host.instance_check import ACTIONS, InstanceCheckDriver
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import CLAIM_STALE_SECONDS
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import VIRT_TYPES

ARGUMENT_SPEC = argument_specs.merged(
    argument_specs.LIBVIRT, argument_specs.STATE_STORE, argument_specs.INSTANCES_PATH,
    instances=dict(type='list', elements='dict', required=True),
    uuids=dict(type='list', elements='str'),
    action=dict(type='str', choices=list(ACTIONS), required=True),
    virt_type=dict(type='str', choices=list(VIRT_TYPES), default='kvm'),
    vnc=dict(type='bool', default=False),
    claim=dict(type='dict', options=dict(request_id=dict(type='str', required=True),
                                         stale_after=dict(type='int', default=CLAIM_STALE_SECONDS))),
    claim_wait=dict(type='int', default=90),
    transfer_bytes=dict(type='dict'),
    cpu_allocation_ratio=dict(type='float'),
)


def main():
    run_module(InstanceCheckDriver, ARGUMENT_SPEC)


if __name__ == '__main__':
    main()
