# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  instances_path:
    description:
      - The directory that holds one directory per instance, named by its UUID, and the C(_base) image cache.
      - Must be an absolute path to an existing directory. The inventory variable C(kvmhost_instances_path) holds
        it in the roles.
    type: path
    default: /var/lib/kvmhost/instances
'''
