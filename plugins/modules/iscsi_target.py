#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: iscsi_target
short_description: Export LUNs over iSCSI with tgt, the volume host's side
version_added: 0.1.0
description:
  - Creates, updates or removes an iSCSI target on the local tgtd with C(tgtadm --lld iscsi), compared against the
    live configuration (C(tgtadm --op show)), so a second run with the same options reports no change.
  - LUNs are backed by a file (created sparse at O(luns[].size) when missing, never truncated or grown when present)
    or by a block device. Files must be inside O(volume_dir).
  - The target is persisted in O(config_dir)/C(kvmhost-<iqn>.conf) (mode 0600, tgt-admin's format) so that
    C(tgt-admin -e), which tgt's service (or the kvm_host role, where it starts tgtd itself) runs at start-up,
    recreates it after tgtd restarts.
  - The portal addresses are tgtd's own (for example C(tgtd --iscsi portal=127.0.0.1:3260)); this module does not
    change them.
  - V(absent) refuses to remove a target with connected sessions unless O(force). Backing files are kept.
author:
  - kvmhost.lifecycle developers (@kvmhost)
extends_documentation_fragment:
  - kvmhost.lifecycle.attributes
options:
  iqn:
    description: The target name, C(iqn.YYYY-MM.reversed.domain[:name]) or C(eui.) and 16 hex digits.
    type: str
    required: true
  state:
    description: Whether the target should exist.
    type: str
    choices: [present, absent]
    default: present
  luns:
    description:
      - The LUNs of the target. LUNs of the live target that are not listed are removed.
      - LUN 0 is tgt's controller LUN and cannot hold a backing store.
    type: list
    elements: dict
    default: []
    suboptions:
      lun:
        description: The LUN number (1..16383); LUN 0 is tgt's target controller.
        type: int
        required: true
      path:
        description: The backing file (inside O(volume_dir)) or block device.
        type: path
        required: true
      size:
        description:
          - The size of a backing file to create when it does not exist, like C(1G), C(512M) or a number of bytes
            (a multiple of 512). An existing file is never resized.
        type: str
  volume_dir:
    description: The directory backing files must be in.
    type: path
    default: /var/lib/kvmhost/volumes
  config_dir:
    description: Where the persisted tgt-admin configuration is written.
    type: path
    default: /etc/tgt/conf.d
  initiator_addresses:
    description:
      - The initiator ACL, IP addresses or networks in CIDR notation (prefix length 0-32 for IPv4, 0-128 for IPv6)
        allowed to log in; C(ALL) allows every address. Anything else is refused before tgt is touched.
      - The default allows only the loopback address, so that nothing is exported by accident.
    type: list
    elements: str
    default: ['127.0.0.1']
  chap_username:
    description: The user name of incoming CHAP (initiators authenticate with it). Requires O(chap_password).
    type: str
  chap_password:
    description:
      - The password of incoming CHAP. Never returned. It is written to the persisted configuration file (mode 0600),
        which is also how a changed password is detected, since tgt cannot report it.
      - tgtadm only takes it on its command line, so it is visible in the process list while tgtadm runs.
    type: str
  mutual_chap_username:
    description: The user name the target answers with in mutual CHAP. Requires the incoming CHAP options.
    type: str
  mutual_chap_password:
    description: The password of mutual (outgoing) CHAP. Never returned.
    type: str
  force:
    description: Remove a target, or change a LUN, even when initiators are connected.
    type: bool
    default: false
notes:
  - CHAP accounts are global in tgt; an account used by another target keeps its name and password shared.
requirements:
  - tgt (C(tgtadm), and a running tgtd).
'''

EXAMPLES = r'''
- name: Export a 1 GiB volume to the compute host with CHAP
  kvmhost.lifecycle.iscsi_target:
    iqn: iqn.2026-11.org.example:volume-6f1c0b5e
    luns:
      - lun: 1
        path: /var/lib/kvmhost/volumes/6f1c0b5e.img
        size: 1G
    initiator_addresses: [127.0.0.1]
    chap_username: u
    chap_password: "{{ vault_volume_password }}"

- name: Remove it
  kvmhost.lifecycle.iscsi_target:
    iqn: iqn.2026-11.org.example:volume-6f1c0b5e
    state: absent
'''

RETURN = r'''
iqn:
  description: The target name.
  returned: always
  type: str
config_path:
  description: The persisted configuration file of the target.
  returned: always
  type: str
  sample: /etc/tgt/conf.d/kvmhost-iqn.2026-11.org.example:volume-6f1c0b5e.conf
target:
  description:
    - The target after the call (predicted in check mode) - exists, tid, luns (LUN number to backing path),
      initiator_addresses, chap_username, mutual_chap_username and sessions (connected initiators). No passwords.
  returned: always
  type: dict
  sample: {exists: true, tid: 1, luns: {"1": /var/lib/kvmhost/volumes/v.img}, initiator_addresses: [127.0.0.1],
           chap_username: u, mutual_chap_username: null, sessions: 0}
actions:
  description: What was done (or would be done in check mode).
  returned: always
  type: list
  elements: str
'''

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core import argument_specs
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import run_module
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.iscsi_target import IscsiTargetDriver

ARGUMENT_SPEC = argument_specs.merged(
    iqn=dict(type='str', required=True),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    luns=dict(type='list', elements='dict', default=[], options=dict(
        lun=dict(type='int', required=True),
        path=dict(type='path', required=True),
        size=dict(type='str'),
    )),
    volume_dir=dict(type='path', default='/var/lib/kvmhost/volumes'),
    config_dir=dict(type='path', default='/etc/tgt/conf.d'),
    initiator_addresses=dict(type='list', elements='str', default=['127.0.0.1']),
    chap_username=dict(type='str'),
    chap_password=dict(type='str', no_log=True),
    mutual_chap_username=dict(type='str'),
    mutual_chap_password=dict(type='str', no_log=True),
    force=dict(type='bool', default=False),
)


def main():
    run_module(IscsiTargetDriver, ARGUMENT_SPEC)


if __name__ == '__main__':
    main()
