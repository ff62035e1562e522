# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  libvirt_uri:
    description:
      - The libvirt connection URI. The inventory variable C(kvmhost_libvirt_uri) holds it in the roles.
    type: str
    default: qemu:///system
requirements:
  - libvirt-python (the C(libvirt) Python binding) on the managed host.
notes:
  - Domains are always found by their UUID, never by name.
'''
