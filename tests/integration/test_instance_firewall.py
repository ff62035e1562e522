# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""instance_firewall against the real iptables and ip6tables, entirely inside network namespaces of the test's own.

The root namespace's rules are never read or written: every command runs under ``ip netns exec`` in a namespace
named ``kvmhost-test-<random>-<label>`` that a finalizer deletes (with everything in it). Processes started here
(the tiny TCP servers) are ended by their pid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.firewall_rules import (
    build_instance_rules, check_firewall_spec)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, '.build', 'collections')
MODULE = 'ansible_collections.kvmhost.lifecycle.plugins.modules.instance_firewall'
BRNF = '/proc/sys/net/bridge/bridge-nf-call-iptables'
BRNF6 = '/proc/sys/net/bridge/bridge-nf-call-ip6tables'

UUID_A = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
UUID_B = '2f1f7fea-78ae-4c75-a9e0-8ce0f5e5a0b1'
PORT_A = '8dbfeeff-e21c-4b3d-b527-77845d2a998b'
PORT_B = 'c0ffee00-1111-4222-8333-444455556666'
TAP_A = 'tap8dbfeeff-e2'
MAC_A = 'fa:16:3e:81:a8:b4'

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('ip') or not shutil.which('iptables-save'),
                                reason='needs root, iproute2 and iptables (network namespaces)')


def instance(instance_uuid=UUID_A, port=PORT_A, mac=MAC_A, ip='10.10.10.13', ip6='2001:db8::13', rules=None):
    rules = rules if rules is not None else [
        dict(direction='ingress', protocol='tcp', port_range_min=8001, port_range_max=8001,
             remote_ip_prefix='0.0.0.0/0'),
        dict(direction='ingress', protocol='icmp'),
        dict(direction='ingress', protocol='tcp', port_range_min=22, ethertype='IPv6')]
    return dict(instance_uuid=instance_uuid,
                vifs=[dict(id=port, address=mac, type='ovs_hybrid',
                           network=dict(cidr='10.10.10.0/24', gateway='10.10.10.1', dhcp_server='10.10.10.2',
                                        ips=[ip, ip6] if ip6 else [ip],
                                        subnets=[dict(cidr='2001:db8::/64', gateway='2001:db8::1')]))],
                security_groups=[dict(name='default', rules=rules)])


class Namespaces(object):
    """Network namespaces and processes of one test; cleanup() ends the processes and deletes the namespaces."""

    def __init__(self, lock_file):
        self.prefix = 'kvmhost-test-%s' % uuid.uuid4().hex[:8]
        self.names = []
        self.processes = []
        self.lock_file = lock_file

    def add(self, label):
        name = '%s-%s' % (self.prefix, label)
        subprocess.run(['ip', 'netns', 'add', name], check=True)
        self.names.append(name)
        self.sh(name, 'ip link set lo up')
        return name

    @staticmethod
    def sh(ns, command, check=True, **kwargs):
        return subprocess.run(['ip', 'netns', 'exec', ns, 'sh', '-ec', command], check=check, capture_output=True,
                              text=True, timeout=30, **kwargs)

    def spawn(self, ns, argv):
        process = subprocess.Popen(['ip', 'netns', 'exec', ns] + argv, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
        self.processes.append(process)
        return process

    def cleanup(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()  # by its pid: only processes this test started
            process.wait(timeout=10)
        for name in reversed(self.names):
            subprocess.run(['ip', 'netns', 'delete', name], check=False)

    def run_module(self, ns, args, check=False, diff=False, script=None):
        """kvmhost_testlib.run_module, but inside ``ns`` (and optionally through a wrapper script)."""
        payload = dict(args, lock_file=self.lock_file, _ansible_check_mode=check, _ansible_diff=diff)
        command = [sys.executable, script] if script else [sys.executable, '-m', MODULE]
        process = subprocess.run(['ip', 'netns', 'exec', ns] + command,
                                 input=json.dumps({'ANSIBLE_MODULE_ARGS': payload}), capture_output=True, text=True,
                                 env=dict(os.environ, PYTHONPATH=COLLECTIONS), check=False, timeout=60, cwd='/')
        try:
            return json.loads(process.stdout)
        except ValueError:
            raise AssertionError('module printed no JSON (rc %d): %s %s'
                                 % (process.returncode, process.stdout, process.stderr))

    def save(self, ns, command='iptables-save'):
        """The filter table as iptables-save prints it, without its timestamp comments."""
        out = self.sh(ns, '%s -t filter' % command).stdout
        return [line for line in out.splitlines() if line and not line.startswith('#')]


@pytest.fixture
def netns(tmp_path):
    namespaces = Namespaces(str(tmp_path / 'iptables.lock'))
    yield namespaces
    namespaces.cleanup()


def foreign(lines):
    """Everything of the table that is not ours, in order: policies, other chains, other rules."""
    return [line for line in lines if 'kvmhost-' not in line]


def chain(lines, name):
    return [line for line in lines if line.startswith('-A %s ' % name)]


def add_other_owner(netns, ns):
    netns.sh(ns, 'iptables -N other-owner; iptables -A other-owner -s 192.0.2.0/24 -j ACCEPT; '
                 'iptables -A FORWARD -i eth9 -j other-owner; iptables -A INPUT -p tcp --dport 2222 -j ACCEPT; '
                 'iptables -P FORWARD DROP; '
                 'ip6tables -N other-owner6; ip6tables -A FORWARD -j other-owner6; '
                 'ip6tables -A other-owner6 -p tcp --dport 443 -j ACCEPT')


def test_rhythm_two_instances_other_owner_and_ipv6(netns):
    ns = netns.add('host')
    add_other_owner(netns, ns)
    original, original6 = netns.save(ns), netns.save(ns, 'ip6tables-save')
    assert ':FORWARD DROP [0:0]' in original

    result = netns.run_module(ns, instance(), check=True, diff=True)
    assert result['changed'] is True, result
    assert netns.save(ns) == original and netns.save(ns, 'ip6tables-save') == original6

    result = netns.run_module(ns, instance(), diff=True)
    assert result['changed'] is True, result
    saved = netns.save(ns)
    assert foreign(saved) == foreign(original)
    wanted = build_instance_rules(check_firewall_spec(instance()))
    for name, lines in wanted['ipv4']['chains'].items():
        assert chain(saved, name) == lines
    assert chain(saved, 'FORWARD')[0] == '-A FORWARD -j kvmhost-FORWARD'
    assert chain(saved, 'FORWARD')[1:] == chain(original, 'FORWARD')
    assert chain(saved, 'kvmhost-FORWARD') == wanted['ipv4']['top']
    assert chain(saved, 'kvmhost-sg-fallback') == ['-A kvmhost-sg-fallback -j DROP']
    saved6 = netns.save(ns, 'ip6tables-save')
    assert foreign(saved6) == foreign(original6)
    assert '-A kvmhost-s8dbfeeff-e2 -s 2001:db8::13/128 -m mac --mac-source fa:16:3e:81:a8:b4 -j RETURN' in saved6
    assert '-A kvmhost-i8dbfeeff-e2 -p tcp -m tcp --dport 22 -j RETURN' in saved6
    assert '-A kvmhost-i8dbfeeff-e2 -p tcp -m tcp --dport 22 -j RETURN' not in saved

    for check in (True, False):
        result = netns.run_module(ns, instance(), check=check)
        assert result['changed'] is False, result
    assert netns.save(ns) == saved

    result = netns.run_module(ns, instance(UUID_B, PORT_B, 'fa:16:3e:00:00:02', '10.10.10.14', None))
    assert result['changed'] is True, result
    two = netns.save(ns)
    assert foreign(two) == foreign(original)
    for name in wanted['ipv4']['chains']:
        assert chain(two, name) == chain(saved, name)
    assert chain(two, 'FORWARD').count('-A FORWARD -j kvmhost-FORWARD') == 1
    assert len(chain(two, 'kvmhost-FORWARD')) == 8

    changed_rules = [dict(direction='ingress', protocol='tcp', port_range_min=8080, port_range_max=8090),
                     dict(direction='ingress', protocol='icmp')]
    result = netns.run_module(ns, instance(rules=changed_rules), diff=True)
    assert result['changed'] is True, result
    assert result['rules_added']['ipv4'] == ['-A kvmhost-i8dbfeeff-e2 -p tcp -m tcp --dport 8080:8090 -j RETURN']
    assert result['rules_removed']['ipv4'] == ['-A kvmhost-i8dbfeeff-e2 -p tcp -m tcp --dport 8001 -j RETURN']
    assert result['rules_removed']['ipv6'] == ['-A kvmhost-i8dbfeeff-e2 -p tcp -m tcp --dport 22 -j RETURN']
    assert '--dport 8080:8090' in result['diff']['after'] and '--dport 8080:8090' not in result['diff']['before']
    assert '--dport 8001' in result['diff']['before'] and '--dport 8001' not in result['diff']['after']
    assert chain(netns.save(ns), 'kvmhost-ic0ffee00-11') == chain(two, 'kvmhost-ic0ffee00-11')

    for check in (True, False):
        result = netns.run_module(ns, dict(instance_uuid=UUID_A, state='absent'), check=check, diff=True)
        assert result['changed'] is True, result
    after_absent = netns.save(ns)
    assert not any('8dbfeeff' in line for line in after_absent)
    assert foreign(after_absent) == foreign(original)
    assert chain(after_absent, 'kvmhost-ic0ffee00-11') == chain(two, 'kvmhost-ic0ffee00-11')
    assert chain(after_absent, 'FORWARD')[0] == '-A FORWARD -j kvmhost-FORWARD'
    assert netns.run_module(ns, dict(instance_uuid=UUID_A, state='absent'))['changed'] is False

    assert netns.run_module(ns, dict(instance_uuid=UUID_B, state='absent'))['changed'] is True
    assert netns.save(ns) == original  # the last instance takes the shared chains and the jump with it
    assert netns.save(ns, 'ip6tables-save') == original6
    assert netns.run_module(ns, dict(instance_uuid=UUID_B, state='absent'))['changed'] is False


def test_bad_input_fails_and_changes_nothing(netns):
    ns = netns.add('host')
    add_other_owner(netns, ns)
    original = netns.save(ns)
    bad = instance(rules=[dict(protocol='tcp', port_range_min=80, port_range_max=70)])
    result = netns.run_module(ns, bad)
    assert result.get('failed') and 'security_groups[0].rules[0].port_range_min' in result['msg'], result
    result = netns.run_module(ns, dict(instance(), vifs=[dict(id=PORT_A, address=MAC_A,
                                                              network=dict(cidr='10.10.10.0/24; iptables -F'))]))
    assert result.get('failed') and 'vifs[0].network.cidr' in result['msg'], result
    assert netns.save(ns) == original


BAD_LINE_WRAPPER = '''
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network import instance_firewall as firewall_utils
from ansible_collections.kvmhost.lifecycle.plugins.modules import instance_firewall as firewall_module


class BadLineRunner(firewall_utils.IptablesRunner):
    """The real runner, but the restore payload gets one line that iptables-restore rejects, just before COMMIT."""

    def restore(self, family, payload):
        bad = '-A kvmhost-sg-fallback -p tcp --no-such-option -j DROP'
        super().restore(family, payload.replace('COMMIT', bad + '\\nCOMMIT'))


firewall_utils.InstanceFirewallDriver.runner_class = BadLineRunner
firewall_module.main()
'''


def test_a_rejected_restore_leaves_the_old_rules_in_force(netns, tmp_path):
    ns = netns.add('host')
    add_other_owner(netns, ns)
    assert netns.run_module(ns, instance())['changed'] is True
    before = netns.save(ns)
    script = tmp_path / 'bad_line_module.py'
    script.write_text(BAD_LINE_WRAPPER)
    changed_rules = [dict(protocol='tcp', port_range_min=9000), dict(protocol='udp', port_range_min=53)]
    result = netns.run_module(ns, instance(rules=changed_rules), script=str(script))
    assert result.get('failed'), result
    assert 'iptables-restore --noflush' in result['msg'] and 'no-such-option' in result['msg'], result['msg']
    assert netns.save(ns) == before  # not one line of the payload was applied: old rules still in force
    assert netns.run_module(ns, instance())['changed'] is False


SERVER = '''
import socket, sys, threading
def serve(port):
    listener = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((sys.argv[1], port))
    listener.listen(8)
    while True:
        connection, _ = listener.accept()
        connection.sendall(b'ok %d' % port)
        connection.close()
ports = [int(p) for p in sys.argv[2:]]
for port in ports[1:]:
    threading.Thread(target=serve, args=(port,), daemon=True).start()
print('listening', flush=True)
serve(ports[0])
'''

CLIENT = '''
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as s:
        s.settimeout(float(sys.argv[3]))
        print(s.recv(64).decode())
except OSError as exc:
    print('refused' if isinstance(exc, ConnectionRefusedError) else 'timeout')
'''


def connect(netns, ns, address, port, timeout=1.0):
    return netns.sh(ns, '%s -c "$CLIENT" %s %d %s' % (sys.executable, address, port, timeout),
                    env=dict(os.environ, CLIENT=CLIENT)).stdout.strip()


def test_real_traffic_through_a_bridge(netns):
    host, vm, client = netns.add('host'), netns.add('vm'), netns.add('client')
    root_brnf = open(BRNF).read().strip()
    # Is bridge-nf-call-iptables per namespace on this kernel? Set it to 0 in our host namespace only and look at the
    # root namespace's value (restored at once if it turns out to be global).
    netns.sh(host, 'echo 0 > %s' % BRNF)
    try:
        per_namespace = open(BRNF).read().strip() == root_brnf
    finally:
        if open(BRNF).read().strip() != root_brnf:
            with open(BRNF, 'w') as handle:
                handle.write(root_brnf)
    if not per_namespace:
        pytest.skip('bridge-nf-call-iptables is global on this kernel: not changed for a test')
    root_brnf6 = open(BRNF6).read().strip()
    netns.sh(host, 'echo 1 > %s; echo 1 > %s' % (BRNF, BRNF6))
    assert open(BRNF).read().strip() == root_brnf and open(BRNF6).read().strip() == root_brnf6

    netns.sh(host, 'ip link add br0 type bridge; ip link set br0 up; '
                   'ip link add %s type veth peer name vm-eth0; ip link add cliport type veth peer name cli-eth0; '
                   'ip link set vm-eth0 netns %s; ip link set cli-eth0 netns %s; '
                   'ip link set %s master br0 up; ip link set cliport master br0 up' % (TAP_A, vm, client, TAP_A))
    netns.sh(vm, 'ip link set vm-eth0 address %s up; ip addr add 10.10.10.13/24 dev vm-eth0; '
                 'ip -6 addr add 2001:db8::13/64 dev vm-eth0 nodad' % MAC_A)
    netns.sh(client, 'ip link set cli-eth0 up; ip addr add 10.10.10.50/24 dev cli-eth0; '
                     'ip -6 addr add 2001:db8::50/64 dev cli-eth0 nodad')
    servers = [netns.spawn(vm, [sys.executable, '-c', SERVER, '10.10.10.13', '8001', '8002']),
               netns.spawn(vm, [sys.executable, '-c', SERVER, '2001:db8::13', '8001', '8002']),
               netns.spawn(client, [sys.executable, '-c', SERVER, '10.10.10.50', '9000'])]
    for server in servers:
        assert server.stdout.readline().strip() == 'listening'

    deadline = time.monotonic() + 10
    while connect(netns, client, '10.10.10.13', 8001) != 'ok 8001':  # the bridge forwards once the ports are up
        assert time.monotonic() < deadline, 'no connection through the bridge without a firewall'
        time.sleep(0.2)
    while connect(netns, client, '2001:db8::13', 8001) != 'ok 8001':
        assert time.monotonic() < deadline, 'no IPv6 connection through the bridge without a firewall'
        time.sleep(0.2)
    assert connect(netns, client, '10.10.10.13', 8002) == 'ok 8002'
    assert connect(netns, client, '2001:db8::13', 8002) == 'ok 8002'
    assert connect(netns, vm, '10.10.10.50', 9000) == 'ok 9000'

    rules = [dict(protocol='tcp', port_range_min=8001), dict(protocol='tcp', port_range_min=8001, ethertype='IPv6')]
    result = netns.run_module(host, instance(rules=rules))
    assert result['changed'] is True, result
    assert connect(netns, client, '10.10.10.13', 8001) == 'ok 8001'
    assert connect(netns, client, '10.10.10.13', 8002) == 'timeout'
    assert connect(netns, client, '2001:db8::13', 8001) == 'ok 8001'  # neighbour discovery passes too
    assert connect(netns, client, '2001:db8::13', 8002) == 'timeout'
    assert connect(netns, vm, '10.10.10.50', 9000) == 'timeout'  # no egress rule: no new outgoing connection
    rules.append(dict(direction='egress', protocol='tcp', port_range_min=9000, remote_ip_prefix='10.10.10.50/32'))
    assert netns.run_module(host, instance(rules=rules))['changed'] is True
    assert connect(netns, vm, '10.10.10.50', 9000) == 'ok 9000'
    counters = netns.sh(host, 'iptables -L kvmhost-sg-fallback -v -x -n').stdout
    assert int(counters.splitlines()[2].split()[0]) >= 1, counters  # the denied SYN reached the fallback drop

    # anti-spoofing: the guest changes its address; its traffic (even replies) no longer leaves the port
    netns.sh(vm, 'ip addr add 10.10.10.99/24 dev vm-eth0')
    assert connect(netns, client, '10.10.10.99', 8001) == 'timeout'

    assert netns.run_module(host, dict(instance_uuid=UUID_A, state='absent'))['changed'] is True
    assert connect(netns, client, '10.10.10.13', 8002) == 'ok 8002'


def test_two_applies_at_once_both_land(netns):
    """Two runs for two instances started together: the lock serialises read-merge-restore, neither is lost."""
    ns = netns.add('host')
    add_other_owner(netns, ns)
    original = netns.save(ns)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    both = (instance(), instance(UUID_B, PORT_B, 'fa:16:3e:00:00:02', '10.10.10.14', None))
    processes = []
    for args in both:
        payload = dict(args, lock_file=netns.lock_file)
        process = subprocess.Popen(['ip', 'netns', 'exec', ns, sys.executable, '-m', MODULE], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd='/')
        processes.append((process, json.dumps({'ANSIBLE_MODULE_ARGS': payload})))
    results = [json.loads(process.communicate(data, timeout=60)[0]) for process, data in processes]
    assert [result.get('changed') for result in results] == [True, True], results
    saved = netns.save(ns)
    assert foreign(saved) == foreign(original)
    top = chain(saved, 'kvmhost-FORWARD')
    assert sum(UUID_A in line for line in top) == 4 and sum(UUID_B in line for line in top) == 4
    for args in both:
        assert netns.run_module(ns, args)['changed'] is False
