# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plugging and unplugging one VIF on the host, as os-vif's ovs and linux_bridge plugins do (the vif module).

:func:`check_vif_spec` checks the module's parameters into a :class:`VifSpec` (nothing read from the host).
:class:`VifPlanner` reads the host through a :class:`~..network.links.HostRunner` and builds a
:class:`~base.Plan` whose before/after name every link, OVS port and external-id that changes; check mode
stops after planning. Device names come from domain_xml's os-vif helpers.

Unplugging a ``bridge`` VIF removes only what belongs to the instance (a tap libvirt left behind). The Linux
bridge and its ``vlan<N>`` interface are shared by every instance on that network and are never deleted, as Nova
never deletes them: deleting one whose last port just left would race with another instance being plugged.
"""

from __future__ import annotations

import copy
import ipaddress
import os

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.argument_specs import VIF_TYPES
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import ModuleDriver, Plan
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.batch import EachDriver
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    MAX_MTU, MAX_VLAN, MIN_MTU, MIN_VLAN, check_ifname, check_mac, check_uuid)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network import links as hl
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.names import (
    DEFAULT_OVS_BRIDGE, check_port_id, qbr_name, qvb_name, qvo_name, tap_name)

STATES = ('plugged', 'unplugged')


class VifSpec(object):
    """A checked VIF: its type, MAC, bridge and the device names derived from the port id."""

    def __init__(self, port_id, vif_type, mac, bridge, vlan, physical, mtu, instance_uuid):
        self.port_id, self.vif_type, self.mac, self.bridge = port_id, vif_type, mac, bridge
        self.vlan, self.physical, self.mtu, self.instance_uuid = vlan, physical, mtu, instance_uuid
        self.tap, self.qbr, self.qvb, self.qvo = tap_name(port_id), qbr_name(port_id), qvb_name(port_id), \
            qvo_name(port_id)
        self.vlan_interface = 'vlan%d' % vlan if vlan is not None else None

    @property
    def external_ids(self):
        return {'iface-id': self.port_id, 'iface-status': 'active', 'attached-mac': self.mac,
                'vm-uuid': self.instance_uuid}

    def devices(self):
        devices = {'tap': self.tap}
        if self.vif_type == 'ovs_hybrid':
            devices.update(qbr=self.qbr, qvb=self.qvb, qvo=self.qvo)
        if self.vlan_interface:
            devices['vlan_interface'] = self.vlan_interface
        return devices

    def interface(self):
        """What domain_xml writes as the libvirt <interface> of this VIF."""
        virtualport = None
        if self.vif_type == 'ovs':
            virtualport = {'type': 'openvswitch', 'interfaceid': self.port_id}
        return {'type': 'bridge', 'model': 'virtio', 'mac': self.mac, 'mtu': self.mtu, 'target_dev': self.tap,
                'source_bridge': self.qbr if self.vif_type == 'ovs_hybrid' else self.bridge,
                'virtualport': virtualport}


def check_vif_spec(vif, instance_uuid, field='vif'):
    """The module's ``vif`` and ``instance_uuid`` checked into a VifSpec, or KvmhostError naming the field."""
    if not isinstance(vif, dict):
        raise KvmhostError('must be a dictionary', field=field)
    instance_uuid = check_uuid(instance_uuid, 'instance_uuid')
    port_id = check_port_id(vif.get('id'), field + '.id')
    vif_type = vif.get('type')
    if vif_type not in VIF_TYPES:
        raise KvmhostError('must be one of %s, got %r' % (', '.join(VIF_TYPES), vif_type), field=field + '.type')
    if vif_type == 'ovs':  # libvirt's openvswitch virtualport takes the port id as a UUID
        port_id = check_uuid(port_id, field + '.id')
    mac = check_mac(vif.get('address'), field + '.address')
    bridge = vif.get('bridge')
    if bridge is None and vif_type == 'bridge':
        raise KvmhostError('is required with type bridge: the Linux bridge to plug into', field=field + '.bridge')
    bridge = check_ifname(bridge or DEFAULT_OVS_BRIDGE, field + '.bridge')
    vlan, physical, mtu = vif.get('vlan'), vif.get('physical_interface'), vif.get('mtu')
    if vif_type != 'bridge' and (vlan is not None or physical is not None):
        raise KvmhostError('vlan and physical_interface are for type bridge only', field=field + '.type')
    if vlan is not None:
        if isinstance(vlan, bool) or not isinstance(vlan, int) or not MIN_VLAN <= vlan <= MAX_VLAN:
            raise KvmhostError('must be a VLAN id %d..%d, got %r' % (MIN_VLAN, MAX_VLAN, vlan), field=field + '.vlan')
        if physical is None:
            raise KvmhostError('a VLAN bridge needs physical_interface too', field=field + '.vlan')
    if physical is not None:
        check_ifname(physical, field + '.physical_interface')
        if physical == bridge:
            raise KvmhostError('must differ from the bridge', field=field + '.physical_interface')
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int) or not MIN_MTU <= mtu <= MAX_MTU):
        raise KvmhostError('must be %d..%d, got %r' % (MIN_MTU, MAX_MTU, mtu), field=field + '.mtu')
    return VifSpec(port_id, vif_type, mac, bridge, vlan, physical, mtu, instance_uuid)


def _link_view(link, keys):
    if link is None:
        return None
    values = {'kind': link.kind, 'up': link.up, 'promisc': link.promisc, 'mtu': link.mtu, 'master': link.master,
              'forward_delay': link.info.get('forward_delay'), 'stp_state': link.info.get('stp_state'),
              'vlan_id': link.info.get('id'), 'link': link.peer}
    return dict((key, values[key]) for key in keys if key in values)


def _describe(key, value):
    if key == 'up':
        return 'up' if value else 'down'
    if key == 'promisc':
        return 'promiscuous mode ' + ('on' if value else 'off')
    return '%s %s' % (key, value)


class VifPlanner(object):
    """Reads the host and plans the changes of one VIF; ``plan.before``/``plan.after`` are the diff."""

    def __init__(self, runner, spec):
        self.runner = runner
        self.spec = spec
        self.plan = Plan(before={'links': {}, 'ovs_ports': {}}, after={'links': {}, 'ovs_ports': {}})
        self.links = {}
        self.ovs = None

    # -- bookkeeping of before/after

    def _watch_link(self, name, keys):
        view = _link_view(self.links.get(name), keys)
        if view is not None and 'ipv6_disabled' in keys:
            view['ipv6_disabled'] = hl.ipv6_disabled(self.runner, name)
        self.plan.before['links'][name] = view
        self.plan.after['links'][name] = copy.deepcopy(view)

    def _watch_port(self, name):
        bridge = self.ovs.bridge_of(name)
        view = None
        if bridge is not None:
            view = {'bridge': bridge, 'external_ids': dict(self.ovs.interfaces.get(name, {}).get('external_ids', {}))}
        self.plan.before['ovs_ports'][name] = view
        self.plan.after['ovs_ports'][name] = copy.deepcopy(view)

    def _step(self, description, *commands, **after):
        """Plan running ``commands``; ``after`` maps a link name to its changed attributes (None: removed)."""
        def action():
            for command in commands:
                if callable(command):
                    command()
                else:
                    self.runner.run(command)
        self.plan.add(description, action)
        for name, changes in after.items():
            links = self.plan.after['links']
            if changes is None:
                links[name] = None
            else:
                links[name] = dict(links.get(name) or {}, **changes)

    def _ensure_attrs(self, name, **wanted):
        """ip link set only the attributes (up, promisc, mtu, master) that differ from the planned state."""
        current = self.plan.after['links'][name]
        changes = dict((key, value) for key, value in wanted.items()
                       if value is not None and current.get(key) != value)
        if changes:
            words = ', '.join(_describe(key, value) for key, value in sorted(changes.items()))
            self._step('set %s of %s' % (words, name), hl.ip_link_set(name, **changes), **{name: changes})

    def _disable_ipv6(self, name):
        if self.plan.after['links'][name].get('ipv6_disabled') is False or (
                self.plan.before['links'][name] is None and self._host_has_ipv6()):
            path = os.path.join(hl.IPV6_CONF, name, 'disable_ipv6')
            self._step('disable IPv6 on %s' % name, lambda: self.runner.write_sysctl(path, '1'),
                       **{name: {'ipv6_disabled': True}})

    def _host_has_ipv6(self):
        return self.runner.read_sysctl(os.path.join(hl.IPV6_CONF, 'default', 'disable_ipv6')) is not None

    def _require_kind(self, name, kind, field):
        link = self.links.get(name)
        if link is not None and link.kind != kind:
            raise KvmhostError('%s exists and is a %s device, not a %s' % (name, link.kind or 'plain', kind),
                               field=field)

    def _ensure_linux_bridge(self, name, field, tune_existing):
        """Create the bridge (forward delay 0, STP off, IPv6 off) and bring it up."""
        self._require_kind(name, 'bridge', field)
        self._watch_link(name, ('kind', 'up', 'forward_delay', 'stp_state', 'ipv6_disabled'))
        if self.links.get(name) is None:
            self._step('create Linux bridge %s' % name, hl.ip_bridge_add(name),
                       **{name: {'kind': 'bridge', 'up': False, 'forward_delay': 0, 'stp_state': 0,
                                 'ipv6_disabled': False}})
            self._disable_ipv6(name)
        elif tune_existing:
            current = self.plan.after['links'][name]
            if current['forward_delay'] != 0 or current['stp_state'] != 0:
                self._step('set forward delay 0 and STP off on %s' % name, hl.ip_bridge_settings(name),
                           **{name: {'forward_delay': 0, 'stp_state': 0}})
            self._disable_ipv6(name)
        self._ensure_attrs(name, up=True)

    def _require_ovs_bridge(self):
        if self.spec.bridge not in self.ovs.bridges:
            raise KvmhostError('the Open vSwitch bridge %s does not exist' % self.spec.bridge, field='vif.bridge')

    # -- the plans

    def read(self, ovs_names=None):
        self.links = hl.read_links(self.runner)
        if ovs_names is not None:
            self.ovs = hl.read_ovs(self.runner, ovs_names)

    def plug(self):
        spec = self.spec
        if spec.vif_type == 'bridge':
            self.read()
            self._plug_bridge()
        elif spec.vif_type == 'ovs':
            self.read([spec.tap])
            self._require_ovs_bridge()  # libvirt adds the tap to the bridge when the domain starts
        else:
            self.read([spec.qvo])
            self._require_ovs_bridge()
            self._plug_hybrid()
        return self.plan

    def _plug_hybrid(self):
        spec = self.spec
        self._require_kind(spec.qvb, 'veth', 'vif.id')
        self._require_kind(spec.qvo, 'veth', 'vif.id')
        veth_keys = ('kind', 'up', 'promisc', 'mtu', 'master')
        self._ensure_linux_bridge(spec.qbr, 'vif.id', tune_existing=True)
        self._watch_link(spec.qvb, veth_keys)
        self._watch_link(spec.qvo, veth_keys)
        self._watch_port(spec.qvo)
        qvb, qvo = self.links.get(spec.qvb), self.links.get(spec.qvo)
        if qvo is not None and qvo.peer not in (None, spec.qvb):
            raise KvmhostError('%s exists and is paired with %s, not %s' % (spec.qvo, qvo.peer, spec.qvb),
                               field='vif.id')
        if qvo is None:
            if qvb is not None:
                self._step('delete %s, left without its peer %s' % (spec.qvb, spec.qvo), hl.ip_link_delete(spec.qvb),
                           **{spec.qvb: None})
            created = {'kind': 'veth', 'up': False, 'promisc': False, 'mtu': spec.mtu, 'master': None}
            self._step('create veth pair %s/%s' % (spec.qvb, spec.qvo), hl.ip_veth_add(spec.qvb, spec.qvo, spec.mtu),
                       **{spec.qvb: created, spec.qvo: dict(created)})
        for name in (spec.qvb, spec.qvo):
            self._ensure_attrs(name, mtu=spec.mtu, promisc=True, up=True)
        self._ensure_attrs(spec.qvb, master=spec.qbr)
        self._plug_ovs_port(spec.qvo)

    def _plug_ovs_port(self, port):
        spec = self.spec
        current = self.plan.after['ovs_ports'][port]
        wanted = spec.external_ids
        if current is None or current['bridge'] != spec.bridge:
            commands = []
            if current is not None:
                commands.append(['del-port', current['bridge'], port])
            commands += [['add-port', spec.bridge, port], ['set', 'Interface', port] + hl.external_ids_args(wanted)]
            external_ids = dict(current['external_ids'] if current else {}, **wanted)
            self._step('add %s to Open vSwitch bridge %s with external-ids %s' % (
                port, spec.bridge, ', '.join(sorted(wanted))), hl.ovs_vsctl(*commands))
            self.plan.after['ovs_ports'][port] = {'bridge': spec.bridge, 'external_ids': external_ids}
            return
        differing = dict((key, value) for key, value in wanted.items() if current['external_ids'].get(key) != value)
        if differing:
            self._step('set external-ids %s of %s' % (', '.join(sorted(differing)), port),
                       hl.ovs_vsctl(['set', 'Interface', port] + hl.external_ids_args(differing)))
            current['external_ids'].update(differing)

    def _plug_bridge(self):
        spec = self.spec
        if spec.physical is not None and spec.physical not in self.links:
            raise KvmhostError('the network device %s does not exist' % spec.physical, field='vif.physical_interface')
        self._require_kind(spec.bridge, 'bridge', 'vif.bridge')
        uplink = spec.physical
        if spec.vlan is not None:
            uplink = spec.vlan_interface
            self._plug_vlan()
        self._ensure_linux_bridge(spec.bridge, 'vif.bridge', tune_existing=False)
        if uplink is not None:
            if spec.vlan is None:
                self._watch_link(uplink, ('kind', 'master'))
            master = self.plan.after['links'][uplink].get('master')
            if master not in (None, spec.bridge):
                raise KvmhostError('%s is already a port of %s' % (uplink, master),
                                   field='vif.vlan' if spec.vlan is not None else 'vif.physical_interface')
            self._ensure_attrs(uplink, master=spec.bridge)

    def _plug_vlan(self):
        """Nova's ensure_vlan: ``vlan<N>`` on the physical interface, up, with the MTU."""
        spec = self.spec
        name = spec.vlan_interface
        self._require_kind(name, 'vlan', 'vif.vlan')
        self._watch_link(name, ('kind', 'vlan_id', 'link', 'up', 'mtu', 'master'))
        link = self.links.get(name)
        if link is None:
            self._step('create VLAN interface %s (id %d) on %s' % (name, spec.vlan, spec.physical),
                       hl.ip_vlan_add(name, spec.physical, spec.vlan, spec.mtu),
                       **{name: {'kind': 'vlan', 'vlan_id': spec.vlan, 'link': spec.physical, 'up': False,
                                 'mtu': spec.mtu, 'master': None}})
        elif (link.info.get('id'), link.peer) != (spec.vlan, spec.physical):
            raise KvmhostError('%s exists with VLAN id %s on %s, not id %d on %s' % (
                name, link.info.get('id'), link.peer, spec.vlan, spec.physical), field='vif.vlan')
        self._ensure_attrs(name, mtu=spec.mtu, up=True)

    def unplug(self):
        spec = self.spec
        if spec.vif_type == 'bridge':
            self.read()
        else:
            self.read([spec.qvo, spec.tap] if spec.vif_type == 'ovs_hybrid' else [spec.tap])
        self._watch_link(spec.tap, ('kind', 'master'))
        if self.links.get(spec.tap) is not None:  # libvirt removes it when the domain stops; this one was left
            self._step('delete leftover tap %s' % spec.tap, hl.ip_link_delete(spec.tap), **{spec.tap: None})
        if spec.vif_type == 'ovs':
            self._unplug_ovs_port(spec.tap)
        elif spec.vif_type == 'ovs_hybrid':
            self._unplug_hybrid()
        return self.plan

    def _unplug_ovs_port(self, port):
        self._watch_port(port)
        bridge = self.ovs.bridge_of(port)
        if bridge is not None:
            self._step('remove %s from Open vSwitch bridge %s' % (port, bridge),
                       hl.ovs_vsctl(['--if-exists', 'del-port', bridge, port]))
            self.plan.after['ovs_ports'][port] = None

    def _unplug_hybrid(self):
        """os-vif: delete qbr, set qvb down, del-port qvo, delete the veth pair."""
        spec = self.spec
        self._watch_link(spec.qbr, ('kind', 'up'))
        self._watch_link(spec.qvb, ('kind', 'up', 'master'))
        self._watch_link(spec.qvo, ('kind', 'up'))
        if self.links.get(spec.qbr) is not None:
            self._step('delete Linux bridge %s' % spec.qbr, hl.ip_link_set(spec.qbr, up=False),
                       hl.ip_link_delete(spec.qbr), **{spec.qbr: None})
        if self.links.get(spec.qvb) is not None:
            self._step('set %s down' % spec.qvb, hl.ip_link_set(spec.qvb, up=False), **{spec.qvb: {'up': False}})
        self._unplug_ovs_port(spec.qvo)
        for name in (spec.qvb, spec.qvo):
            if self.plan.after['links'][name] is not None:
                self._step('delete veth %s' % name, hl.ip_link_delete(name), **{spec.qvb: None, spec.qvo: None})
                break


def network_info(vifs, plug_results=None):
    """Nova's network info model of an instance's VIFs (what the info cache holds).

    ``vifs`` are the instance spec's VIFs; ``plug_results`` the registered results of the vif module
    for them (a loop's ``results``), whose ``devices`` name the host devices.
    """
    devices = {}
    for result in plug_results or []:
        if isinstance(result, dict) and result.get('port_id'):
            devices[result['port_id'].lower()] = result.get('devices') or {}
    info = []
    for vif in vifs:
        port_id = str(vif['id']).lower()
        network = vif.get('network') or {}
        vif_type = vif['type']
        found = devices.get(port_id, {})
        subnets = [{'cidr': subnet['cidr'], 'gateway': subnet.get('gateway'), 'dhcp_server': subnet.get('dhcp_server'),
                    'ips': [{'address': address, 'type': 'fixed'} for address in network.get('ips') or []
                            if ipaddress.ip_address(address) in ipaddress.ip_network(subnet['cidr'], strict=False)]}
                   for subnet in [network] + list(network.get('subnets') or []) if subnet.get('cidr')]
        info.append({
            'id': port_id,
            'address': str(vif['address']).lower(),
            # os-vif's ovs plugin serves both OVS flavours; the hybrid one is told by ovs_hybrid_plug.
            'type': 'bridge' if vif_type == 'bridge' else 'ovs',
            'vnic_type': 'normal',
            'active': True,
            'devname': found.get('tap') or ('tap' + port_id)[:14],
            'ovs_interfaceid': port_id if vif_type != 'bridge' else None,
            'network': {'id': network.get('id'), 'label': network.get('label'), 'bridge': vif.get('bridge'),
                        'subnets': subnets, 'meta': {'mtu': vif.get('mtu')}},
            'details': {'port_filter': True, 'ovs_hybrid_plug': vif_type == 'ovs_hybrid',
                        'vlan': vif.get('vlan'), 'physical_interface': vif.get('physical_interface')},
            'devices': found,
        })
    return info


class VifDriver(ModuleDriver):
    """vif: one VIF."""

    @staticmethod
    def check_options(params):
        check_vif_spec(params['vif'], params['instance_uuid'])

    def run(self):
        spec = check_vif_spec(self.params['vif'], self.params['instance_uuid'])
        planner = VifPlanner(hl.HostRunner(self.module), spec)
        plan = planner.plug() if self.params['state'] == 'plugged' else planner.unplug()
        return self.finish(plan, port_id=spec.port_id, type=spec.vif_type, state=self.params['state'],
                           devices=spec.devices(), interface=spec.interface())


class VifsDriver(EachDriver):
    """vif: one VIF (option vif), or every VIF of an instance in order (option vifs).

    With ``vifs`` the result also holds ``network_info``, Nova's network info model of those VIFs (what the
    instance's network info cache is given), and ``devnames``.
    """

    inner = VifDriver
    one = 'vif'
    many = 'vifs'

    def run(self):
        result = super().run()
        if self.params.get('vifs') is not None:
            result['network_info'] = network_info(self.params['vifs'], result['vifs'])
            result['devnames'] = [vif['devname'] for vif in result['network_info']]
        return result

    def record_note(self, result):
        vifs = self.params.get('vifs')
        if vifs is None:
            return super().record_note(result)
        if self.params['state'] == 'plugged':
            return 'plugged %d VIFs%s' % (len(vifs), ': ' + ', '.join(result['devnames']) if vifs else '')
        return 'Successfully unplugged %d VIFs%s' % (len(vifs), ': ' + ', '.join(v['type'] for v in vifs) if vifs else '')
