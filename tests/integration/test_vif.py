# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vif module against the real kernel and Open vSwitch (userspace netdev datapath).

Everything created is recognizable and removed in finalizers, even on failure: an own OVS bridge
``br-kt<hex4>`` (netdev datapath, no uplink), port ids starting with ``7e57`` (so tap7e57..., qbr7e57...),
and for the Linux bridge type an own network namespace ``kvmhost-test-<hex>`` in which the module runs.
br-int and the machine's other interfaces are never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid as uuid_lib

import pytest

from kvmhost_testlib import COLLECTIONS, TEST_PREFIX, run_module

INSTANCE = str(uuid_lib.uuid4())


def sh(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def run_module_in_ns(namespace, name, args, check=False, diff=False):
    """kvmhost_testlib.run_module, with the module process running inside ``namespace``."""
    payload = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    process = subprocess.run(
        ['ip', 'netns', 'exec', namespace, sys.executable, '-m',
         'ansible_collections.kvmhost.lifecycle.plugins.modules.%s' % name],
        input=json.dumps({'ANSIBLE_MODULE_ARGS': payload}), capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=COLLECTIONS), check=False, timeout=120, cwd='/')
    try:
        return json.loads(process.stdout)
    except ValueError:
        raise AssertionError('module printed no JSON (rc %d): %s %s' % (process.returncode, process.stdout,
                                                                        process.stderr))


def links(namespace=None):
    prefix = ['ip', 'netns', 'exec', namespace] if namespace else []
    return dict((entry['ifname'], entry) for entry in json.loads(sh(*(prefix + ['ip', '-json', 'link'])).stdout))


def ours(namespace=None):
    """Every device of this test's making (all carry 7e57 after their prefix)."""
    return sorted(name for name in links(namespace) if name[3:7] == '7e57')


def ovs_ports(bridge):
    """The port names of ``bridge`` but the bridge's own, from ovs-vsctl's JSON tables."""
    tables = [json.loads(line) for line in sh('ovs-vsctl', '--format=json', '--', '--columns=ports', 'list',
                                              'Bridge', bridge, '--', '--columns=_uuid,name', 'list',
                                              'Port').stdout.splitlines() if line.strip()]
    ports = tables[0]['data'][0][0]
    uuids = [item[1] for item in ports[1]] if ports[0] == 'set' else [ports[1]]
    return sorted(row[1] for row in tables[1]['data'] if row[0][1] in uuids and row[1] != bridge)


def ovs_external_ids(interface):
    out = json.loads(sh('ovs-vsctl', '--format=json', '--columns=external_ids', 'list', 'Interface',
                        interface).stdout)
    return dict(out['data'][0][0][1])


def new_port_id():
    return '7e57' + uuid_lib.uuid4().hex[4:8] + '-' + str(uuid_lib.uuid4())[9:]


@pytest.fixture
def ovs_bridge():
    if sh('ovs-vsctl', '--timeout=5', 'show', check=False).returncode != 0:
        pytest.skip('Open vSwitch is not running')
    name = 'br-kt' + uuid_lib.uuid4().hex[:4]
    sh('ovs-vsctl', 'add-br', name, '--', 'set', 'bridge', name, 'datapath_type=netdev')
    created = []
    yield name, created
    for port_id in created:  # whatever a failed test left behind
        for prefix in ('tap', 'qbr', 'qvb', 'qvo'):
            device = (prefix + port_id)[:14]
            sh('ovs-vsctl', '--if-exists', 'del-port', device, check=False)
            if device in links():
                sh('ip', 'link', 'delete', 'dev', device, check=False)
    sh('ovs-vsctl', '--if-exists', 'del-br', name, check=False)


@pytest.fixture
def namespace():
    name = TEST_PREFIX + uuid_lib.uuid4().hex[:8]
    sh('ip', 'netns', 'add', name)
    yield name
    sh('ip', 'netns', 'delete', name, check=False)


def hybrid_vif(bridge, port_id, mtu=1400):
    return dict(id=port_id, address='fa:16:3e:7e:57:%02x' % (int(port_id[4:6], 16)), type='ovs_hybrid',
                bridge=bridge, mtu=mtu)


def test_ovs_hybrid_rhythm(ovs_bridge):
    bridge, created = ovs_bridge
    port_id = new_port_id()
    created.append(port_id)
    args = dict(instance_uuid=INSTANCE, vif=hybrid_vif(bridge, port_id))
    qbr, qvb, qvo = ('qbr' + port_id)[:14], ('qvb' + port_id)[:14], ('qvo' + port_id)[:14]

    checked = run_module('vif', args, check=True, diff=True)
    assert checked['changed'] is True, checked
    assert ours() == [] and ovs_ports(bridge) == []  # check mode created nothing
    assert checked['diff']['before']['links'] == {qbr: None, qvb: None, qvo: None}

    plugged = run_module('vif', args, diff=True)
    assert plugged['changed'] is True and plugged['actions'] == checked['actions'], plugged
    assert plugged['devices'] == {'tap': ('tap' + port_id)[:14], 'qbr': qbr, 'qvb': qvb, 'qvo': qvo}
    assert plugged['interface']['source_bridge'] == qbr
    now = links()
    assert now[qvb]['master'] == qbr and now[qvb]['mtu'] == now[qvo]['mtu'] == 1400
    assert 'PROMISC' in now[qvo]['flags'] and 'UP' in now[qvo]['flags'] and 'UP' in now[qbr]['flags']
    with open('/proc/sys/net/ipv6/conf/%s/disable_ipv6' % qbr) as handle:
        assert handle.read().strip() == '1'
    assert ovs_ports(bridge) == [qvo]
    assert ovs_external_ids(qvo) == {'iface-id': port_id, 'iface-status': 'active',
                                     'attached-mac': args['vif']['address'], 'vm-uuid': INSTANCE}
    assert plugged['diff']['after']['ovs_ports'][qvo]['external_ids']['vm-uuid'] == INSTANCE

    again = run_module('vif', args, check=True, diff=True)
    assert again['changed'] is False and again['diff']['before'] == again['diff']['after'], again
    assert run_module('vif', args)['changed'] is False

    # An existing qvo with another MTU: only the MTU is fixed.
    sh('ip', 'link', 'set', 'dev', qvo, 'mtu', '1500')
    sh('ip', 'link', 'set', 'dev', qvb, 'mtu', '1500')
    fixed = run_module('vif', args, diff=True)
    assert fixed['actions'] == ['set mtu 1400 of %s' % qvb, 'set mtu 1400 of %s' % qvo], fixed
    assert fixed['diff']['before']['links'][qvo]['mtu'] == 1500
    assert links()[qvo]['mtu'] == 1400

    unplug = dict(args, state='unplugged')
    assert run_module('vif', unplug, check=True)['changed'] is True and len(ours()) == 3
    unplugged = run_module('vif', unplug, diff=True)
    assert unplugged['changed'] is True, unplugged
    assert unplugged['diff']['after']['links'] == {('tap' + port_id)[:14]: None, qbr: None, qvb: None, qvo: None}
    assert ours() == [] and ovs_ports(bridge) == []
    assert run_module('vif', unplug)['changed'] is False


def test_ovs_plug_checks_the_bridge_and_unplug_removes_a_leftover_port(ovs_bridge):
    bridge, created = ovs_bridge
    port_id = str(uuid_lib.uuid4())
    port_id = '7e57' + port_id[4:]
    created.append(port_id)
    tap = ('tap' + port_id)[:14]
    vif = dict(id=port_id, address='fa:16:3e:7e:57:01', type='ovs', bridge=bridge)
    plugged = run_module('vif', dict(instance_uuid=INSTANCE, vif=vif), diff=True)
    assert plugged['changed'] is False and plugged['interface']['virtualport'] == {
        'type': 'openvswitch', 'interfaceid': port_id}, plugged
    missing = run_module('vif', dict(instance_uuid=INSTANCE, vif=dict(vif, bridge='br-kt-none')))
    assert missing.get('failed') and 'vif.bridge' in missing['msg'] and 'does not exist' in missing['msg']

    sh('ovs-vsctl', 'add-port', bridge, tap)  # what a crashed libvirt could leave behind
    unplug = dict(instance_uuid=INSTANCE, vif=vif, state='unplugged')
    assert run_module('vif', unplug, check=True)['changed'] is True and ovs_ports(bridge) == [tap]
    result = run_module('vif', unplug, diff=True)
    assert result['changed'] is True and result['diff']['after']['ovs_ports'] == {tap: None}, result
    assert ovs_ports(bridge) == [] and run_module('vif', unplug)['changed'] is False


@pytest.mark.parametrize('vif, field', [
    (dict(address='fa:16:3e:00:00:0g'), 'vif.address'),
    (dict(address='01:16:3e:00:00:01'), 'vif.address'),
    (dict(id='7e57/../x'), 'vif.id'),
    (dict(mtu=9), 'vif.mtu'),
    (dict(bridge='br-kt-missing'), 'vif.bridge'),
    (dict(type='bridge', bridge='bad name'), 'vif.bridge'),
    (dict(type='bridge', bridge='brkt', vlan=4095, physical_interface='lo'), 'vif.vlan'),
    (dict(type='bridge', bridge='brkt', vlan=10), 'vif.vlan'),
])
def test_bad_input_fails_naming_the_field_and_changes_nothing(ovs_bridge, vif, field):
    bridge, created = ovs_bridge
    port_id = new_port_id()
    created.append(port_id)
    result = run_module('vif', dict(instance_uuid=INSTANCE, vif=dict(hybrid_vif(bridge, port_id), **vif)))
    assert result.get('failed') and field in result['msg'], result
    assert ours() == [] and ovs_ports(bridge) == []


def vlan_supported(namespace_name):
    sh('ip', 'netns', 'exec', namespace_name, 'ip', 'link', 'add', 'kt0', 'type', 'veth', 'peer', 'name', 'kt1')
    probe = sh('ip', 'netns', 'exec', namespace_name, 'ip', 'link', 'add', 'link', 'kt0', 'name', 'ktv', 'type',
               'vlan', 'id', '7', check=False)
    sh('ip', 'netns', 'exec', namespace_name, 'ip', 'link', 'delete', 'kt0', check=False)
    return probe.returncode == 0


@pytest.mark.parametrize('vlan', [None, 100])
def test_linux_bridge_rhythm_in_a_namespace(namespace, vlan):
    sh('ip', 'netns', 'exec', namespace, 'ip', 'link', 'add', 'phys0', 'type', 'veth', 'peer', 'name', 'phys0p')
    port_id = new_port_id()
    vif = dict(id=port_id, address='fa:16:3e:7e:57:02', type='bridge', bridge='brkt7e57', physical_interface='phys0',
               vlan=vlan, mtu=1400)
    args = dict(instance_uuid=INSTANCE, vif=vif)
    uplink = 'vlan%d' % vlan if vlan else 'phys0'
    before = sorted(links(namespace))

    missing = run_module_in_ns(namespace, 'vif', dict(args, vif=dict(vif, physical_interface='nope0')))
    assert missing.get('failed') and 'vif.physical_interface' in missing['msg'], missing
    checked = run_module_in_ns(namespace, 'vif', args, check=True, diff=True)
    assert checked['changed'] is True and sorted(links(namespace)) == before, checked
    if vlan and not vlan_supported(namespace):
        failed = run_module_in_ns(namespace, 'vif', args)
        assert failed.get('failed') and 'vlan' in failed['msg'], failed
        assert sorted(links(namespace)) == before  # the VLAN comes first: nothing was created
        pytest.skip('this kernel cannot create VLAN interfaces (no 8021q); checked the plan and the clean failure')
    plugged = run_module_in_ns(namespace, 'vif', args, diff=True)
    assert plugged['changed'] is True and plugged['actions'] == checked['actions'], plugged
    now = links(namespace)
    assert now[uplink]['master'] == 'brkt7e57' and 'UP' in now['brkt7e57']['flags']
    assert plugged['diff']['after']['links'][uplink]['master'] == 'brkt7e57'
    again = run_module_in_ns(namespace, 'vif', args, check=True, diff=True)
    assert again['changed'] is False and again['diff']['before'] == again['diff']['after'], again
    assert run_module_in_ns(namespace, 'vif', args)['changed'] is False

    # A tap libvirt left behind is the instance's; the shared bridge stays.
    tap = ('tap' + port_id)[:14]
    sh('ip', 'netns', 'exec', namespace, 'ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap')
    sh('ip', 'netns', 'exec', namespace, 'ip', 'link', 'set', 'dev', tap, 'master', 'brkt7e57')
    unplug = dict(args, state='unplugged')
    assert run_module_in_ns(namespace, 'vif', unplug, check=True)['changed'] is True and tap in links(namespace)
    unplugged = run_module_in_ns(namespace, 'vif', unplug, diff=True)
    assert unplugged['actions'] == ['delete leftover tap %s' % tap], unplugged
    assert tap not in links(namespace) and 'brkt7e57' in links(namespace)
    assert run_module_in_ns(namespace, 'vif', unplug)['changed'] is False


def test_a_real_guest_boots_on_a_hybrid_vif(ovs_bridge, demo_images, libvirt_test_dir, libvirt_conn, demo_console):
    bridge, created = ovs_bridge
    port_id = '7e57' + str(uuid_lib.uuid4())[4:]
    created.append(port_id)
    vif = hybrid_vif(bridge, port_id)
    uuid = str(uuid_lib.uuid4())
    instances_path = str(libvirt_test_dir)
    entry = [item for item in demo_images.manifest['images'] if item['id'] == 'demo-guest-v1'][0]
    spec = {'uuid': uuid, 'name': 'vif-test',
            'flavor': {'vcpus': 1, 'memory_mb': 192, 'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0},
            'image': {'id': 'demo-guest-v1', 'source': entry['path'], 'checksum': entry['checksum'],
                      'kernel': str(demo_images.kernel), 'ramdisk': str(demo_images.initrd),
                      'cmdline': 'console=ttyS0 no_timer_check'},
            'vifs': [vif], 'volumes': []}
    qbr, tap = ('qbr' + port_id)[:14], ('tap' + port_id)[:14]
    try:
        plugged = run_module('vif', dict(instance_uuid=uuid, vif=vif))
        assert plugged['changed'] is True, plugged
        image = run_module('instance_image', dict(uuid=uuid, image=spec['image'], flavor=spec['flavor'],
                                                  instances_path=instances_path))
        assert not image.get('failed'), image
        built = run_module('domain_xml', dict(instance=spec, local_id=0x7E57F001, virt_type='qemu',
                                              instances_path=instances_path))
        assert not built.get('failed'), built
        assert built['devices']['interfaces'][0]['bridge'] == plugged['interface']['source_bridge']
        console = demo_console(os.path.join(instances_path, uuid, 'console.log'))
        console.mark()
        started = run_module('domain', dict(uuid=uuid, xml=built['xml']))
        assert started.get('power_state') == 1, started
        enslaved = json.loads(sh('ip', '-json', 'link', 'show', 'master', qbr).stdout)
        assert tap in [item['ifname'] for item in enslaved], enslaved
        console.wait_for('nic eth0 mac=%s' % vif['address'])
        stopped = run_module('instance_shutdown', dict(uuid=uuid, shutdown_timeout=0))
        assert stopped['power_state'] == 4, stopped
        assert run_module('domain', dict(uuid=uuid, state='absent', shutdown_timeout=0))['defined'] is False
        unplugged = run_module('vif', dict(instance_uuid=uuid, vif=vif, state='unplugged'))
        assert unplugged['changed'] is True, unplugged
        assert ours() == [] and ovs_ports(bridge) == []
    finally:
        run_module('domain', dict(uuid=uuid, state='absent', shutdown_timeout=0))
