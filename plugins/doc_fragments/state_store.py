# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  state_db:
    description:
      - Absolute path of the host-local state store, an SQLite file.
      - The directory must exist and be writable. The file is created with mode C(0600) on the first write,
        in WAL mode, and its schema is migrated forward when this collection is newer.
      - The inventory variable C(kvmhost_state_db) holds it in the roles.
    type: path
    default: /var/lib/kvmhost/state.sqlite3
'''
