# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network links and Open vSwitch ports of the host: reading them as JSON, and the commands that change them.

Every command runs through one :class:`HostRunner` (argument lists, never a shell); unit tests replace it
with a fake that answers from recorded ``ip -json`` and ``ovs-vsctl --format=json`` outputs. State is read
from JSON only: ``ip -json -details link show`` and ``ovs-vsctl --format=json list``, plus the one sysctl
file ``/proc/sys/net/ipv6/conf/<dev>/disable_ipv6``.
"""

from __future__ import annotations

import json
import os

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError

IPV6_CONF = '/proc/sys/net/ipv6/conf'
OVS_TIMEOUT = 120
_BIN_DIRS = ['/sbin', '/usr/sbin', '/usr/local/sbin', '/usr/local/bin']


class HostRunner(object):
    """The one seam between the vif logic and the host: commands by argument list, and sysctl files."""

    def __init__(self, module):
        self.module = module
        self._paths = {}

    def _binary(self, name):
        if name not in self._paths:
            self._paths[name] = self.module.get_bin_path(name, required=False, opt_dirs=_BIN_DIRS)
            if self._paths[name] is None:
                raise KvmhostError('the command %s is not installed on this host' % name, field=name)
        return self._paths[name]

    def run(self, args):
        """Run ``args`` (the first item a command name); return stdout, or raise naming the command."""
        command = [self._binary(args[0])] + list(args[1:])
        rc, out, err = self.module.run_command(command, check_rc=False)
        if rc != 0:
            raise KvmhostError('%s failed (rc %d): %s' % (' '.join(args), rc, (err or out).strip()),
                               command=list(args), rc=rc)
        return out

    def read_sysctl(self, path):
        """The stripped content of a /proc/sys file, or None when it does not exist."""
        try:
            with open(path) as handle:
                return handle.read().strip()
        except FileNotFoundError:
            return None

    def write_sysctl(self, path, value):
        with open(path, 'w') as handle:
            handle.write(value)


# ---------------------------------------------------------------- reading

class Link(object):
    """One network device as ``ip -json -details link show`` reports it."""

    def __init__(self, data):
        self.data = data
        self.name = data.get('ifname')
        self.flags = set(data.get('flags') or [])
        info = data.get('linkinfo') or {}
        self.kind = info.get('info_kind')
        self.info = info.get('info_data') or {}

    @property
    def up(self):
        return 'UP' in self.flags

    @property
    def promisc(self):
        return 'PROMISC' in self.flags

    @property
    def mtu(self):
        return self.data.get('mtu')

    @property
    def master(self):
        return self.data.get('master')

    @property
    def peer(self):
        """The other end of a veth pair (or the lower device of a VLAN), when in the same namespace."""
        return self.data.get('link')


def read_links(runner):
    """All links of the current network namespace, by name."""
    out = runner.run(['ip', '-json', '-details', 'link', 'show'])
    try:
        entries = json.loads(out or '[]')
    except ValueError as exc:
        raise KvmhostError('ip -json link show printed no JSON: %s' % exc)
    return dict((entry['ifname'], Link(entry)) for entry in entries if entry.get('ifname'))


def ipv6_disabled(runner, device):
    """True or False for a device's disable_ipv6 sysctl; None when the kernel has no IPv6 settings for it."""
    value = runner.read_sysctl(os.path.join(IPV6_CONF, device, 'disable_ipv6'))
    return None if value is None else value == '1'


def ovs_value(value):
    """An OVSDB JSON datum as Python: sets become lists, maps dicts, uuids their string."""
    if isinstance(value, list) and len(value) == 2 and value[0] in ('set', 'map', 'uuid', 'named-uuid'):
        kind, payload = value
        if kind == 'set':
            return [ovs_value(item) for item in payload]
        if kind == 'map':
            return dict((ovs_value(k), ovs_value(v)) for k, v in payload)
        return payload
    return value


def _ovs_rows(document):
    headings = document.get('headings') or []
    return [dict(zip(headings, (ovs_value(cell) for cell in row))) for row in document.get('data') or []]


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _json_documents(text):
    decoder = json.JSONDecoder()
    documents, index, text = [], 0, text or ''
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return documents
        document, index = decoder.raw_decode(text, index)
        documents.append(document)


class OvsState(object):
    """The OVS bridges, and the ports and interfaces of the names asked for."""

    def __init__(self, bridges, ports, interfaces):
        self.bridges = bridges          # name -> {'datapath_type': str, 'port_uuids': set}
        self.ports = ports              # name -> port uuid
        self.interfaces = interfaces    # name -> {'external_ids': dict, 'type': str}

    def bridge_of(self, port):
        uuid = self.ports.get(port)
        for name, bridge in self.bridges.items():
            if uuid is not None and uuid in bridge['port_uuids']:
                return name
        return None


def read_ovs(runner, names):
    """Read the bridges and the ports/interfaces called ``names`` in one ovs-vsctl call."""
    names = list(names)
    out = runner.run(['ovs-vsctl', '--timeout=%d' % OVS_TIMEOUT, '--format=json',
                      '--', '--columns=name,ports,datapath_type', 'list', 'Bridge',
                      '--', '--if-exists', '--columns=_uuid,name', 'list', 'Port'] + names
                     + ['--', '--if-exists', '--columns=name,type,external_ids', 'list', 'Interface'] + names)
    try:
        documents = _json_documents(out)
    except ValueError as exc:
        raise KvmhostError('ovs-vsctl --format=json printed no JSON: %s' % exc)
    if len(documents) != 3:
        raise KvmhostError('ovs-vsctl printed %d JSON tables, expected 3' % len(documents))
    bridges = dict((row['name'], {'datapath_type': row.get('datapath_type') or '',
                                  'port_uuids': set(_as_list(row.get('ports') or []))})
                   for row in _ovs_rows(documents[0]))
    ports = dict((row['name'], row['_uuid']) for row in _ovs_rows(documents[1]))
    interfaces = dict((row['name'], {'type': row.get('type') or '', 'external_ids': row.get('external_ids') or {}})
                      for row in _ovs_rows(documents[2]))
    return OvsState(bridges, ports, interfaces)


# ---------------------------------------------------------------- the commands that change things

def ovs_string(value):
    """An OVSDB string in ovs-vsctl's syntax (quoted, so ':' and ',' in MACs and UUIDs stay literal)."""
    return json.dumps(str(value))


def ovs_vsctl(*commands):
    """One ovs-vsctl transaction of several commands (each a list of words)."""
    args = ['ovs-vsctl', '--timeout=%d' % OVS_TIMEOUT]
    for command in commands:
        args += ['--'] + list(command)
    return args


def external_ids_args(external_ids):
    return ['external_ids:%s=%s' % (key, ovs_string(value)) for key, value in sorted(external_ids.items())]


def ip_link_set(device, up=None, promisc=None, mtu=None, master=None):
    args = ['ip', 'link', 'set', 'dev', device]
    if mtu is not None:
        args += ['mtu', str(mtu)]
    if promisc is not None:
        args += ['promisc', 'on' if promisc else 'off']
    if master is not None:
        args += ['master', master]
    if up is not None:
        args.append('up' if up else 'down')
    return args


def ip_link_delete(device):
    return ['ip', 'link', 'delete', 'dev', device]


def ip_bridge_add(bridge):
    return ['ip', 'link', 'add', 'name', bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']


def ip_bridge_settings(bridge):
    return ['ip', 'link', 'set', 'dev', bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']


def ip_veth_add(name, peer, mtu=None):
    mtu_args = ['mtu', str(mtu)] if mtu else []
    return ['ip', 'link', 'add', 'name', name] + mtu_args + ['type', 'veth', 'peer', 'name', peer] + mtu_args


def ip_vlan_add(name, physical, vlan, mtu=None):
    return (['ip', 'link', 'add', 'link', physical, 'name', name] + (['mtu', str(mtu)] if mtu else [])
            + ['type', 'vlan', 'id', str(vlan)])
