#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: domain_xml
short_description: Generate the libvirt domain XML of an instance
version_added: 0.1.0
description:
  - Builds the libvirt domain XML of one instance from its instance spec, the way Nova's libvirt driver does in
    C(_get_guest_config), and returns it. Needs no libvirt connection and reads nothing from the host.
  - The domain is named C(instance-%08x) of the host-local id O(local_id) and carries the instance UUID, the memory
    in KiB and the vcpus of the flavor, Nova's metadata (C(http://openstack.org/xmlns/libvirt/nova/1.1)) and SMBIOS
    system information (serial and uuid = the instance UUID, family C(Virtual Machine)).
  - "Disks, all virtio with the cache mode O(disk_cache): the root disk C(<instance dir>/disk) is C(vda); then
    C(disk.local) when the flavor has ephemeral space, then C(disk.swap) when it has swap, on the next free letters;
    then the volumes on their C(device_name), sorted. The instance directory is C(<instances_path>/<uuid>), whose
    files M(kvmhost.lifecycle.instance_image) creates."
  - A volume with transport V(host) is the block device the host's initiator attached (see O(host_volume_paths)),
    with the volume id as disk serial. With transport V(qemu), QEMU connects to the iSCSI portal itself; CHAP
    credentials come from a libvirt secret (O(volume_secrets)).
  - "Interfaces: V(ovs_hybrid) plugs the tap into the port's Linux bridge C(qbr<port id>); V(ovs) into the OVS
    bridge (default C(br-int)) with an C(openvswitch) virtualport carrying the port id; V(bridge) into the Linux
    bridge named by C(bridge). Device names are os-vif's: C(tap), C(qbr), C(qvb), C(qvo) and the port id, cut to
    14 characters (C(tap8dbfeeff-e2))."
  - A direct kernel boot uses C(<instance dir>/kernel), C(ramdisk) and the image's C(cmdline).
  - The serial console is a pty (C(virsh console) works) whose output virtlogd appends to
    C(<instance dir>/console.log).
  - The output is canonical (pretty-printed, fixed order), so the same input always gives the same text. With
    O(dest), the XML is written to that file, and the module reports a change only when the file's content (or mode)
    differs.
  - Every check runs before anything is written; bad input fails with a message naming the field and changes nothing.
author:
  - kvmhost.lifecycle developers (@kvmhost)
extends_documentation_fragment:
  - kvmhost.lifecycle.instances_path
  - kvmhost.lifecycle.libvirt
  - kvmhost.lifecycle.state_store
  - kvmhost.lifecycle.batch
  - kvmhost.lifecycle.attributes
requirements:
  - lxml
notes:
  - O(instances_path) need not exist yet; it must be absolute. Paths and names are element texts and attribute values
    of the XML, so XML metacharacters in them are escaped, never interpreted.
options:
  instance:
    description:
      - The instance spec, as in the C(kvmhost_instances) inventory variable. C(security_groups) is ignored.
      - Required unless O(instances) is given, whose items each give it.
    type: dict
    suboptions:
      uuid:
        description: The instance UUID; the domain's UUID and the name of its instance directory.
        type: str
        required: true
      name:
        description: The display name, written in the Nova metadata (any text without control characters).
        type: str
        required: true
      flavor:
        description: The flavor.
        type: dict
        required: true
        suboptions:
          vcpus:
            description: Virtual CPUs. Range V(1)..V(4096).
            type: int
            required: true
          memory_mb:
            description: Memory in MiB. Range V(1)..V(16777216).
            type: int
            required: true
          root_gb:
            description: Root disk size in GiB (metadata only here). Range V(0)..V(65536).
            type: int
            default: 0
          ephemeral_gb:
            description: Ephemeral disk size in GiB; more than 0 adds the C(disk.local) disk. Range V(0)..V(65536).
            type: int
            default: 0
          swap_mb:
            description: Swap size in MiB; more than 0 adds the C(disk.swap) disk. Range V(0)..V(67108864).
            type: int
            default: 0
          name:
            description: The flavor name, written in the Nova metadata when given.
            type: str
      image:
        description: The image. Only C(id) and the presence of C(kernel), C(ramdisk) and C(cmdline) matter here.
        type: dict
        required: true
        suboptions:
          id:
            description: The image id, written in the Nova metadata as the root image.
            type: str
            required: true
          source:
            description: Where the image comes from (used by M(kvmhost.lifecycle.instance_image), not here).
            type: str
          checksum:
            description: The image checksum (used by M(kvmhost.lifecycle.instance_image), not here).
            type: str
          kernel:
            description: An absolute path; when given, the domain boots C(<instance dir>/kernel) directly.
            type: str
          ramdisk:
            description: An absolute path; when given, C(<instance dir>/ramdisk) is the initrd. Needs C(kernel).
            type: str
          cmdline:
            description: The kernel command line of a direct kernel boot. Needs C(kernel).
            type: str
      vifs:
        description: The instance's ports, in the order the guest sees them.
        type: list
        elements: dict
        suboptions:
          id:
            description: The port id (normally a UUID); device names derive from it, so no C(/) and no C(..).
            type: str
            required: true
          address:
            description: The port's unicast MAC address.
            type: str
            required: true
          type:
            description: How the port is plugged.
            type: str
            required: true
            choices: [ovs_hybrid, ovs, bridge]
          bridge:
            description:
              - The OVS bridge for V(ovs) and V(ovs_hybrid) (default C(br-int)); the Linux bridge for V(bridge),
                where it is required.
            type: str
          vlan:
            description: Type V(bridge) only, with O(instance.vifs[].physical_interface) (1..4094).
            type: int
          physical_interface:
            description: Type V(bridge) only, the interface the (VLAN) bridge is on.
            type: str
          mtu:
            description: The MTU of the port (68..65535).
            type: int
          network:
            description: The port's network; its C(ips) are written in the Nova metadata.
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
                description: The port's fixed IP addresses.
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
      volumes:
        description: The iSCSI volumes attached to the instance.
        type: list
        elements: dict
        suboptions:
          id:
            description: The volume id (normally a UUID), the disk's serial in the guest.
            type: str
            required: true
          device_name:
            description: The disk's target, C(vdb) to C(vdz), not one the ephemeral or swap disk takes.
            type: str
            required: true
          target_portal:
            description: The portal, C(ADDRESS:PORT) with an IP address (IPv6 in brackets).
            type: str
            required: true
          target_iqn:
            description: The target's iSCSI name, C(iqn.YYYY-MM.reversed.domain[:name]) or C(eui.) and 16 hex digits.
            type: str
            required: true
          target_lun:
            description: The LUN (0..16383).
            type: int
            required: true
          transport:
            description: V(host) uses the block device of the host's initiator; V(qemu) QEMU's own initiator.
            type: str
            choices: [host, qemu]
            default: host
          auth:
            description: CHAP credentials of the target.
            type: dict
            suboptions:
              method:
                description: The authentication method.
                type: str
                choices: [CHAP]
                default: CHAP
              username:
                description: The CHAP user name, written in the XML for transport V(qemu).
                type: str
              password:
                description:
                  - Not used by this module (a libvirt secret holds it, see O(volume_secrets)); accepted so that the
                    whole instance spec can be passed, and dropped as soon as the arguments are parsed.
                type: str
      security_groups:
        description: Ignored here (see M(kvmhost.lifecycle.instance_firewall)).
        type: list
        elements: dict
  local_id:
    description:
      - The host-local instance id (from M(kvmhost.lifecycle.instance_record)); the domain is C(instance-%08x).
        Range V(1)..V(4294967295).
      - When not given, it is read from the instance's record in O(state_db). In check mode an instance without a
        record yet gets the id its record would get.
    type: int
  virt_type:
    description: V(kvm) for hardware virtualization, V(qemu) for software emulation; the domain's type.
    type: str
    choices: [kvm, qemu]
    default: kvm
  cpu_mode:
    description:
      - The guest CPU model mode. V(none) leaves the hypervisor's default CPU.
      - Default (as Nova's) V(host-model) with O(virt_type=kvm), V(none) with O(virt_type=qemu), which allows only
        V(none).
    type: str
    choices: [host-model, host-passthrough, none]
  disk_cache:
    description:
      - The cache mode of every disk. V(none) (as Nova) needs a file system with O_DIRECT, which tmpfs lacks.
      - Host-attached volumes use C(io=native) with V(none) and V(directsync).
    type: str
    choices: [none, writethrough, writeback, directsync, unsafe]
    default: none
  vnc:
    description: Add a VNC console listening on 127.0.0.1 (port chosen by libvirt) and a VGA video device.
    type: bool
    default: false
  volume_secrets:
    description:
      - For each volume with transport V(qemu) and CHAP auth, its id mapped to the UUID of the libvirt secret (usage
        type C(iscsi)) that holds the CHAP password.
    type: dict
    default: {}
  host_volume_paths:
    description:
      - For volumes with transport V(host), the volume id mapped to the block device the host attached.
      - Default for a volume not listed is os-brick's C(/dev/disk/by-path/ip-<portal>-iscsi-<iqn>-lun-<lun>).
    type: dict
    default: {}
  creation_time:
    description:
      - The instance's creation time (ISO 8601, naive means UTC), written in the Nova metadata as C(creationTime).
      - Omitted when not given, so that the XML depends only on the inputs. Pass the same value on every run.
    type: str
  ramdisk_required:
    description: Refuse a direct kernel boot without a ramdisk.
    type: bool
    default: false
  dest:
    description:
      - Also write the XML to this file (mode C(0600), atomically). Its directory must exist.
      - The file is written only when its content differs; diff mode shows the change.
    type: path
'''

EXAMPLES = r'''
- name: Build the XML of web-1
  kvmhost.lifecycle.domain_xml:
    instance: "{{ instance }}"
    local_id: "{{ record.instance.local_id }}"
    virt_type: "{{ kvmhost_virt_type }}"
    instances_path: "{{ kvmhost_instances_path }}"
  register: built

- name: Build it with a volume on QEMU's initiator and keep a copy next to the disks
  kvmhost.lifecycle.domain_xml:
    instance:
      uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
      name: web-1
      flavor: {vcpus: 1, memory_mb: 192, root_gb: 1}
      image: {id: demo-guest-v1}
      vifs:
        - {id: 8dbfeeff-e21c-4b3d-b527-77845d2a998b, address: 'fa:16:3e:81:a8:b4', type: ovs_hybrid, mtu: 1450}
      volumes:
        - id: 6f1c0b5e-3a52-4c8e-9d0a-6b7f1e2d3c4b
          device_name: vdb
          target_portal: 127.0.0.1:3260
          target_iqn: iqn.2026-11.org.example:volume-6f1c0b5e
          target_lun: 1
          transport: qemu
          auth: {method: CHAP, username: u}
    local_id: 1
    virt_type: qemu
    volume_secrets:
      6f1c0b5e-3a52-4c8e-9d0a-6b7f1e2d3c4b: 0f2c4f2e-5d0b-4a59-9d36-2f6f0d6e8b11
    dest: /var/lib/kvmhost/instances/1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0/libvirt.xml

- name: Define and start the domain
  kvmhost.lifecycle.domain:
    uuid: "{{ instance.uuid }}"
    xml: "{{ built.xml }}"
    state: running
'''

RETURN = r'''
xml:
  description: The domain XML.
  returned: always
  type: str
  sample: "<domain type=\"kvm\">\n  <name>instance-00000001</name>\n  ...\n</domain>\n"
domain_name:
  description: The domain name, C(instance-%08x) of O(local_id).
  returned: always
  type: str
  sample: instance-00000001
uuid:
  description: The instance UUID in canonical (lower case) form.
  returned: always
  type: str
  sample: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
instance_dir:
  description: The instance directory the XML refers to.
  returned: always
  type: str
  sample: /var/lib/kvmhost/instances/1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
devices:
  description: The devices of the domain.
  returned: always
  type: dict
  contains:
    disks:
      description:
        - Each disk in XML order, with C(target) (vda...), C(kind) (root, ephemeral, swap, volume) and C(source)
          (a file, a block device, or C(iscsi://portal/iqn/lun)); volumes also have C(volume_id) and C(transport).
      type: list
      elements: dict
      sample: [{target: vda, kind: root, source: /var/lib/kvmhost/instances/1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0/disk}]
    interfaces:
      description: Each interface with C(port_id), C(type), C(mac), its tap device C(dev) and the C(bridge) it joins.
      type: list
      elements: dict
      sample: [{port_id: 8dbfeeff-e21c-4b3d-b527-77845d2a998b, type: ovs_hybrid, mac: 'fa:16:3e:81:a8:b4',
                dev: tap8dbfeeff-e2, bridge: qbr8dbfeeff-e2}]
    console_log:
      description: The file the serial console is logged to.
      type: str
      sample: /var/lib/kvmhost/instances/1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0/console.log
dest:
  description: The file the XML was written to, or null without O(dest).
  returned: always
  type: str
actions:
  description: What was (or in check mode would be) done.
  returned: always
  type: list
  elements: str
  sample: ['write the domain XML to /var/lib/kvmhost/instances/1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0/libvirt.xml']
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
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import (
    CPU_MODES, DISK_CACHE_MODES, VIRT_TYPES)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import DomainXmlDriver

ITEM_SPEC = argument_specs.merged(
    argument_specs.INSTANCES_PATH,
    # security_groups are instance_firewall's: this module takes them as they come.
    instance=dict(type='dict', required=True, options=dict(
        argument_specs.INSTANCE, security_groups=dict(type='list', elements='dict'))),
    local_id=dict(type='int'),
    virt_type=dict(type='str', choices=list(VIRT_TYPES), default='kvm'),
    cpu_mode=dict(type='str', choices=list(CPU_MODES)),
    disk_cache=dict(type='str', choices=list(DISK_CACHE_MODES), default='none'),
    vnc=dict(type='bool', default=False),
    volume_secrets=dict(type='dict', default={}, no_log=False),  # secret UUIDs, not the secrets
    host_volume_paths=dict(type='dict', default={}),
    creation_time=dict(type='str'),
    ramdisk_required=dict(type='bool', default=False),
    dest=dict(type='path'),
)


def main():
    run_step_module(DomainXmlDriver, ITEM_SPEC, 'instance.uuid')


if __name__ == '__main__':
    main()
