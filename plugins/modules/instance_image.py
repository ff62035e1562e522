#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: instance_image
short_description: Create an instance's disks from a cached base image, as Nova's qcow2 image backend
version_added: 0.1.0
description:
  - Keeps a base image cache in C(<instances_path>/_base). An image's base is C(_base/<sha1 of the image id>), filled from
    a local path or an http(s) URL through a C(.part) file and renamed into place only after its checksum, its
    format (raw or qcow2) and its independence (no backing file, no external data file) were verified. Each base has
    its own lock file, so concurrent runs for the same image fetch it once; a run waits at most an hour for a base
    another run is filling, then fails naming the lock file. A C(<base>.info) file records the
    verified checksum; a cached base is trusted after comparing the spec's checksum with it, and an image id whose
    checksum differs from the cached one is refused.
  - In C(<instances_path>/<uuid>), creates C(disk), a qcow2 overlay on the base (backing format always set) of
    O(flavor.root_gb) GiB, or of the image's virtual size when that is 0; C(disk.local), an overlay on a cached
    blank ext4 base C(_base/ephemeral_<GB>_ext4), for O(flavor.ephemeral_gb); C(disk.swap), an overlay on a cached
    swap base C(_base/swap_<MB>), for O(flavor.swap_mb); and copies of the image's kernel and ramdisk as C(kernel)
    and C(ramdisk).
  - The instance directory is created 0711 (QEMU must traverse it), disk files and copies 0600 (libvirt hands them
    to QEMU's user when the domain starts), bases 0644 (QEMU opens backing files as its own user).
  - Idempotent. A disk that exists but does not match the spec (another base, size or format) is never replaced,
    since that would destroy the instance's data; the module fails and names the option. A rebuild moves the old
    instance directory aside first (M(kvmhost.lifecycle.instance_disk) with V(moved)). A kernel or ramdisk that
    differs from the image's is replaced.
  - All input is checked, and the base fetched and verified, before anything of the instance is touched. A failed
    fetch leaves no part file, no lock file and no C(_base) directory it created.
  - With O(base_cleanup_age), removes cached bases that no disk of any directory under O(instances_path) (moved
    aside C(<uuid>_del) copies included) has in its backing chain and that were last used longer ago than that.
    Bases in use are touched, as Nova does, so their age counts from when they were last seen in use.
requirements:
  - qemu-img (qemu-utils) on the managed host, for the qcow2 overlays and their checks.
  - mkfs.ext4 (e2fsprogs) and mkswap (util-linux) on the managed host, for ephemeral and swap disks.
author:
  - kvmhost.lifecycle developers (@kvmhost)
extends_documentation_fragment:
  - kvmhost.lifecycle.instances_path
  - kvmhost.lifecycle.libvirt
  - kvmhost.lifecycle.state_store
  - kvmhost.lifecycle.batch
  - kvmhost.lifecycle.attributes
options:
  uuid:
    description:
      - The instance UUID, the name of its directory.
      - Required unless only O(base_cleanup_age) is given (a cache cleanup on its own).
    type: str
  state:
    description:
      - V(present) creates the instance's disk files and copies.
      - V(absent) removes only the files this module creates (C(disk), C(disk.local), C(disk.swap), C(kernel),
        C(ramdisk)), and refuses while a running QEMU holds a disk. The instance directory and the rest of it are
        left to M(kvmhost.lifecycle.instance_disk); the bases stay in the cache until O(base_cleanup_age) removes
        them.
    type: str
    choices: [present, absent]
    default: present
  image:
    description: The image, as in the instance spec. Required with O(state=present) and O(uuid).
    type: dict
    suboptions:
      id:
        description:
          - The image id, the key of the base cache. Letters, digits and C(._:@+-); no C(/) and no C(..).
          - One id must always name the same content.
        type: str
        required: true
      source:
        description:
          - Where the image comes from - a local absolute path, a C(file:///) URL or an C(http://) or C(https://)
            URL. Read only when the base is not cached yet.
        type: str
        required: true
      checksum:
        description:
          - The image's checksum as C(ALGORITHM:HEX); ALGORITHM is V(sha256) or V(sha512) (MD5 and SHA-1 are not
            accepted).
        type: str
        required: true
      kernel:
        description: A local kernel to copy to C(<uuid>/kernel), for direct kernel boot.
        type: path
      ramdisk:
        description: A local ramdisk to copy to C(<uuid>/ramdisk). Needs O(image.kernel).
        type: path
      cmdline:
        description: The kernel command line. Not used by this module; accepted so the spec's image can be passed.
        type: str
  flavor:
    description: The flavor, as in the instance spec. Omitted sizes are 0.
    type: dict
    suboptions:
      root_gb:
        description:
          - The root disk's size in GiB; V(0) makes it the image's virtual size. Range V(0)..V(65536).
          - A size smaller than the image's virtual size is refused (Nova's "Flavor's disk is too small for
            requested image").
        type: int
        default: 0
      ephemeral_gb:
        description:
          - The size in GiB of the ephemeral disk C(disk.local) (ext4, label C(ephemeral0)); V(0) for none.
            Range V(0)..V(65536).
        type: int
        default: 0
      swap_mb:
        description: The size in MiB of the swap disk C(disk.swap); V(0) for none. Range V(0)..V(67108864).
        type: int
        default: 0
      vcpus:
        description:
          - Not used by this module; accepted so the spec's flavor can be passed, and checked. Range V(1)..V(4096).
        type: int
      memory_mb:
        description:
          - Not used by this module; accepted so the spec's flavor can be passed, and checked.
            Range V(1)..V(16777216).
        type: int
  ramdisk_required:
    description: Refuse an image with a kernel but no ramdisk.
    type: bool
    default: false
  after_move:
    description:
      - An earlier step of the same run moves the instance directory aside (a rebuild's
        M(kvmhost.lifecycle.instance_disk) with O(kvmhost.lifecycle.instance_disk#module:state=moved)). In check mode
        the prediction is then a new directory, not a comparison with the one there now. Outside check mode it
        changes nothing.
    type: bool
    default: false
  download_timeout:
    description:
      - Seconds an http(s) download may wait for the server at a time (connect, each read). Range V(1)..V(3600).
    type: int
    default: 60
  validate_certs:
    description: Verify the server's certificate of an https source.
    type: bool
    default: true
  base_cleanup_age:
    description:
      - When set, remove the bases in C(_base) (image, ephemeral and swap bases, and part files of interrupted
        fetches) that no disk under O(instances_path) uses and that were last used more than this many seconds
        ago. V(0) removes every unused base; ten years at most. Range V(0)..V(315360000).
      - A base in use is never removed; a disk whose backing chain cannot be read stops the cleanup.
    type: int
notes:
  - Check mode reads a local source to verify its checksum, but does not download an http(s) source.
  - For an http(s) source the root disk size is checked against the downloaded image before it enters the cache.
  - The qcow2 overlays name their base by absolute path, so O(instances_path) must not move.
'''

EXAMPLES = r'''
- name: Create the disks of an instance
  kvmhost.lifecycle.instance_image:
    uuid: 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
    image:
      id: demo-guest-v1
      source: /var/lib/kvmhost/images/demo-guest-v1.qcow2
      checksum: sha256:095b363735acb21d2513ac87d01c15f618199419956e0de3bff1152c26d22fc5
      kernel: /var/lib/kvmhost/images/demo-vmlinuz
      ramdisk: /var/lib/kvmhost/images/demo-initrd.gz
    flavor: {root_gb: 1, ephemeral_gb: 1, swap_mb: 64}

- name: From the instance spec, with the image on a web server
  kvmhost.lifecycle.instance_image:
    uuid: "{{ item.uuid }}"
    image: "{{ item.image }}"
    flavor: "{{ item.flavor }}"
    instances_path: "{{ kvmhost_instances_path }}"
  loop: "{{ kvmhost_instances }}"

- name: Remove the bases unused for a day
  kvmhost.lifecycle.instance_image:
    base_cleanup_age: 86400
'''

RETURN = r'''
instance_path:
  description: The instance directory (null without O(uuid)).
  returned: always
  type: str
  sample: /var/lib/kvmhost/instances/1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0
base:
  description: The image's base in the cache.
  returned: with O(state=present) and O(uuid)
  type: dict
  contains:
    path:
      description: The base file.
      type: str
      sample: /var/lib/kvmhost/instances/_base/6f8f57715090da2632453988d9a1501b5a7bf8fd
    image_id:
      description: The image id.
      type: str
    checksum:
      description: The verified checksum.
      type: str
    format:
      description: The base's format, V(raw) or V(qcow2) (null in check mode before an http(s) download).
      type: str
    virtual_size:
      description: The image's virtual size in bytes (null in check mode before an http(s) download).
      type: int
    cached:
      description: Whether the base was cached before this run.
      type: bool
    fetched:
      description: Whether this run fetched it (false when a concurrent run fetched it first).
      type: bool
disks:
  description:
    - The overlays by file name (C(disk), C(disk.local), C(disk.swap)), each with its path, format, backing file,
      backing format, virtual size and the C(qemu-img info) of the file (null in check mode before it exists).
  returned: always
  type: dict
  sample:
    disk:
      path: /var/lib/kvmhost/instances/1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0/disk
      format: qcow2
      backing_file: /var/lib/kvmhost/instances/_base/6f8f57715090da2632453988d9a1501b5a7bf8fd
      backing_format: qcow2
      virtual_size: 1073741824
      info: {format: qcow2, virtual-size: 1073741824}
kernel:
  description: The instance's copy of the kernel, or null when the image has none.
  returned: always
  type: str
ramdisk:
  description: The instance's copy of the ramdisk, or null when the image has none.
  returned: always
  type: str
removed_bases:
  description: The bases removed by O(base_cleanup_age) (that would be removed, in check mode).
  returned: always
  type: list
  elements: str
bases_in_use:
  description: The bases some disk under O(instances_path) uses (with O(base_cleanup_age)).
  returned: always
  type: list
  elements: str
actions:
  description: The steps made (or that would be made in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ['fetch image demo-guest-v1 from /var/lib/kvmhost/images/demo-guest-v1.qcow2 into /var/lib/kvmhost/...']
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
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.instance_image import InstanceImageDriver

ITEM_SPEC = argument_specs.merged(
    argument_specs.INSTANCES_PATH,
    uuid=dict(type='str'),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    image=dict(type='dict', options=dict(
        id=dict(type='str', required=True),
        source=dict(type='str', required=True),
        checksum=dict(type='str', required=True),
        kernel=dict(type='path'),
        ramdisk=dict(type='path'),
        cmdline=dict(type='str'),
    )),
    flavor=dict(type='dict', options=dict(
        root_gb=dict(type='int', default=0),
        ephemeral_gb=dict(type='int', default=0),
        swap_mb=dict(type='int', default=0),
        vcpus=dict(type='int'),
        memory_mb=dict(type='int'),
    )),
    ramdisk_required=dict(type='bool', default=False),
    after_move=dict(type='bool', default=False),
    download_timeout=dict(type='int', default=60),
    validate_certs=dict(type='bool', default=True),
    base_cleanup_age=dict(type='int'),
)


def main():
    run_step_module(InstanceImageDriver, ITEM_SPEC, 'uuid', required_one_of=[('uuid', 'base_cleanup_age')])


if __name__ == '__main__':
    main()
