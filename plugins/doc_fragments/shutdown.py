# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  shutdown_timeout:
    description:
      - Seconds to wait for the guest to power off after an ACPI shutdown request before the domain is destroyed,
        as Nova's C(shutdown_timeout). V(0) destroys at once. Range V(0)..V(3600).
      - The inventory variable C(kvmhost_shutdown_timeout) holds it in the roles.
    type: int
    default: 60
  retry_interval:
    description:
      - Seconds between re-sent shutdown requests while waiting, as Nova's C(shutdown_retry_interval), since a guest that
        was still booting may have missed the first one. Range V(1)..V(3600).
      - The inventory variable C(kvmhost_shutdown_retry_interval) holds it in the roles.
    type: int
    default: 10
'''
