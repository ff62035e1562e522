# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""os-vif's device names of a port."""

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.names import qbr_name, qvb_name, qvo_name, tap_name

PORT = '8dbfeeff-e21c-4b3d-b527-77845d2a998b'


@pytest.mark.parametrize('port_id, names', [
    (PORT, ('tap8dbfeeff-e2', 'qbr8dbfeeff-e2', 'qvb8dbfeeff-e2', 'qvo8dbfeeff-e2')),
    ('short', ('tapshort', 'qbrshort', 'qvbshort', 'qvoshort')),
])
def test_os_vif_device_names(port_id, names):
    assert (tap_name(port_id), qbr_name(port_id), qvb_name(port_id), qvo_name(port_id)) == names


@pytest.mark.parametrize('port_id', ['../etc', 'a/b', '', None, 'a b', 'x..y'])
def test_device_names_refuse_unsafe_port_ids(port_id):
    with pytest.raises(KvmhostError, match='port_id: must be a port id'):
        tap_name(port_id)
