# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""os-vif's device names of a port (tap, qbr, qvb, qvo) and the integration bridge's default name."""

from __future__ import annotations

import re

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError

DEFAULT_OVS_BRIDGE = 'br-int'
NIC_NAME_LEN = 14  # nova.network.model.NIC_NAME_LEN, os-vif's device names
_PORT_ID_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,254}')


def check_port_id(value, field='port_id'):
    """A Neutron port id (normally a UUID): it becomes part of device names, so no '/', no '..'."""
    if not isinstance(value, str) or not _PORT_ID_RE.fullmatch(value) or '..' in value:
        raise KvmhostError('must be a port id (normally a UUID) of letters, digits and ._- without "..", '
                           'starting with a letter or digit; got %r' % (value,), field=field)
    return value


def _device_name(prefix, port_id):
    return (prefix + check_port_id(port_id))[:NIC_NAME_LEN]


def tap_name(port_id):
    """The tap device libvirt creates for the port: ``tap8dbfeeff-e2``."""
    return _device_name('tap', port_id)


def qbr_name(port_id):
    """The per-port Linux bridge of a hybrid plug: ``qbr8dbfeeff-e2``."""
    return _device_name('qbr', port_id)


def qvb_name(port_id):
    """The bridge end of the hybrid plug's veth pair: ``qvb8dbfeeff-e2``."""
    return _device_name('qvb', port_id)


def qvo_name(port_id):
    """The OVS end of the hybrid plug's veth pair: ``qvo8dbfeeff-e2``."""
    return _device_name('qvo', port_id)
