# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merging an instance's rules into recorded iptables-save output.

Unit tests must never change the host's own rules, so iptables is replaced by FakeRunner: it answers ``save`` with
output recorded on a real host (golden/firewall/, iptables 1.8.9 nf_tables, in a network namespace) and records the
restore payloads instead of running them. tests/integration/test_instance_firewall.py runs the real commands, inside
network namespaces of its own.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.locks import FileLock
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network import instance_firewall
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.firewall_rules import (
    build_instance_rules, check_firewall_spec)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.instance_firewall import (
    InstanceFirewallDriver, added_removed, normalize, parse_save, plan_family)

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden', 'firewall')
UUID = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
OTHER_UUID = '2f1f7fea-78ae-4c75-a9e0-8ce0f5e5a0b1'
# The options the recorded one-instance files were made with.
RECORDED = dict(
    instance_uuid=UUID,
    vifs=[dict(id='8dbfeeff-e21c-4b3d-b527-77845d2a998b', address='fa:16:3e:81:a8:b4', type='ovs_hybrid',
               network=dict(dhcp_server='10.10.10.2', ips=['10.10.10.13', '2001:db8::13']))],
    security_groups=[dict(name='default', rules=[
        dict(protocol='tcp', port_range_min=22, remote_ip_prefix='0.0.0.0/0'),
        dict(protocol='icmp', port_range_min=8, port_range_max=0),
        dict(protocol='47'),
        dict(protocol='132', direction='egress', ethertype='IPv6')])],
    state='present', allow_same_network=False)
OTHER = dict(RECORDED, instance_uuid=OTHER_UUID, vifs=[
    dict(id='c0ffee00-1111-4222-8333-444455556666', address='fa:16:3e:00:00:02',
         network=dict(cidr='10.10.10.0/24', ips=['10.10.10.14']))])


def golden(name):
    with open(os.path.join(GOLDEN, name)) as handle:
        return handle.read()


def wanted(options, family='ipv4'):
    return build_instance_rules(check_firewall_spec(options))[family]


def other_owner_lines(text):
    return [line for line in text.splitlines() if line.startswith(('-A', ':')) and 'kvmhost-' not in line]


class FakeRunner(object):
    def __init__(self, saves):
        self.saves = saves
        self.restores = []

    def save(self, family):
        return self.saves[family]

    def restore(self, family, payload):
        self.restores.append((family, payload))


class FakeModule(object):
    def __init__(self, params, check_mode=False, diff=True):
        self.params = dict(dict(lock_file=None, state='present', vifs=[], security_groups=[],
                                allow_same_network=False), **params)
        self.check_mode = check_mode
        self._diff = diff


def drive(params, saves, check_mode=False, lock_dir=None):
    runner = FakeRunner(saves)

    class Driver(InstanceFirewallDriver):
        runner_class = staticmethod(lambda module: runner)

    module = FakeModule(params, check_mode)
    module.params['lock_file'] = os.path.join(lock_dir, 'iptables.lock') if lock_dir else '/nonexistent/x.lock'
    return Driver(module).run(), runner


def test_parse_save_reads_the_filter_table():
    table = parse_save(golden('iptables-save-other-owner.txt'))
    assert table.chains == {'INPUT': 'ACCEPT', 'FORWARD': 'ACCEPT', 'OUTPUT': 'ACCEPT', 'other-owner': '-'}
    assert table.rules == ['-A INPUT -p tcp -m tcp --dport 2222 -j ACCEPT', '-A FORWARD -i eth9 -j other-owner',
                           '-A FORWARD -p sctp -j ACCEPT', '-A other-owner -s 192.0.2.0/24 -j ACCEPT']


def test_normalize_maps_protocol_names_back_to_numbers():
    assert normalize('-A x -p gre -j RETURN') == '-A x -p 47 -j RETURN'
    assert normalize('-A x -p tcp -m tcp --dport 22 -j RETURN') == '-A x -p tcp -m tcp --dport 22 -j RETURN'
    assert normalize('-A x -p ipv6-icmp -m icmp6 --icmpv6-type 8 -j RETURN') == '-A x -p 58 -m icmp6 --icmpv6-type 8 -j RETURN'
    assert normalize('-A x -p icmp -j RETURN') == '-A x -p icmp -j RETURN'


def test_first_instance_payload_touches_only_our_chains():
    table = parse_save(golden('iptables-save-other-owner.txt'))
    plan = plan_family('ipv4', table, UUID, wanted(RECORDED))
    payload = plan.payload.splitlines()
    assert payload[0] == '*filter' and payload[-1] == 'COMMIT'
    declared = [line.split()[0][1:] for line in payload if line.startswith(':')]
    assert declared == ['kvmhost-FORWARD', 'kvmhost-sg-fallback', 'kvmhost-i8dbfeeff-e2', 'kvmhost-o8dbfeeff-e2',
                        'kvmhost-s8dbfeeff-e2']
    assert '-I FORWARD 1 -j kvmhost-FORWARD' in payload
    # no policy line, no flush, no rule of anyone else's chain
    for line in payload[1:-1]:
        assert line.startswith((':kvmhost-', '-A kvmhost-', '-I FORWARD 1 -j kvmhost-FORWARD')), line
    added, removed = added_removed(plan.before, plan.after)
    assert removed == [] and '-A kvmhost-i8dbfeeff-e2 -p 47 -j RETURN' in added


@pytest.mark.parametrize('family, name', [('ipv4', 'iptables-save-one-instance.txt'),
                                          ('ipv6', 'ip6tables-save-one-instance.txt')])
def test_recorded_state_is_idempotent(family, name):
    """The recorded host already has the instance's rules (with -p gre / -p sctp printed by name): no payload."""
    plan = plan_family(family, parse_save(golden(name)), UUID, wanted(RECORDED, family))
    assert plan.payload is None
    assert plan.before == plan.after


def test_protocol_58_on_ipv4_compares_equal_to_its_saved_name():
    options = dict(RECORDED, security_groups=[dict(rules=[dict(protocol='58')])])
    rules = wanted(options)
    saved = golden('iptables-save-other-owner.txt').replace('COMMIT', '\n'.join(
        ['%s - [0:0]' % (':' + name) for name in ['kvmhost-FORWARD', 'kvmhost-sg-fallback'] + list(rules['chains'])]
        + ['-A FORWARD -j kvmhost-FORWARD'] + list(rules['top']) + ['-A kvmhost-sg-fallback -j DROP']
        + [line.replace('-p 58', '-p ipv6-icmp') for lines in rules['chains'].values() for line in lines]
        + ['COMMIT']))
    assert '-p ipv6-icmp -j RETURN' in saved
    assert plan_family('ipv4', parse_save(saved), UUID, rules).payload is None


def test_second_instance_rewrites_top_chain_only_and_keeps_first():
    plan = plan_family('ipv4', parse_save(golden('iptables-save-one-instance.txt')), OTHER_UUID, wanted(OTHER))
    payload = plan.payload.splitlines()
    declared = [line for line in payload if line.startswith(':')]
    assert declared == [':kvmhost-FORWARD - [0:0]', ':kvmhost-ic0ffee00-11 - [0:0]', ':kvmhost-oc0ffee00-11 - [0:0]',
                        ':kvmhost-sc0ffee00-11 - [0:0]']
    assert not any(line.startswith('-I FORWARD') for line in payload)  # the jump exists: never duplicated
    top = [line for line in payload if line.startswith('-A kvmhost-FORWARD')]
    targets = [line.split()[-1] for line in top]
    assert targets == ['kvmhost-i8dbfeeff-e2', 'kvmhost-o8dbfeeff-e2', 'kvmhost-ic0ffee00-11',
                       'kvmhost-oc0ffee00-11', 'ACCEPT', 'ACCEPT', 'ACCEPT', 'ACCEPT']
    # the first instance's lines are re-added exactly as saved
    saved_top = [line for line in golden('iptables-save-one-instance.txt').splitlines()
                 if line.startswith('-A kvmhost-FORWARD')]
    assert [line for line in top if UUID in line] == saved_top
    added, removed = added_removed(plan.before, plan.after)
    assert removed == [] and all(UUID not in line for line in added)


def test_absent_of_one_of_two_keeps_the_shared_chains():
    text = golden('iptables-save-two-instances.txt')
    assert plan_family('ipv4', parse_save(text), OTHER_UUID, wanted(OTHER)).payload is None
    absent = plan_family('ipv4', parse_save(text), UUID, None)
    payload = absent.payload.splitlines()
    assert '-X kvmhost-i8dbfeeff-e2' in payload and '-X kvmhost-s8dbfeeff-e2' in payload
    assert not any(line.startswith(('-X kvmhost-FORWARD', '-X kvmhost-sg-fallback', '-D FORWARD'))
                   for line in payload)
    top = [line for line in payload if line.startswith('-A kvmhost-FORWARD')]
    assert len(top) == 4 and all(OTHER_UUID in line for line in top)
    assert not any(line.startswith(':kvmhost-ic0ffee00') for line in payload)
    added, removed = added_removed(absent.before, absent.after)
    assert added == [] and all(OTHER_UUID not in line for line in removed)
    assert '-A FORWARD -j kvmhost-FORWARD' in absent.after


def test_other_owners_lines_are_in_no_payload():
    text = golden('iptables-save-two-instances.txt')
    for options in (None, wanted(RECORDED, 'ipv4'), wanted(dict(RECORDED, allow_same_network=True))):
        payload = plan_family('ipv4', parse_save(text), UUID, options).payload or ''
        for line in other_owner_lines(text):
            assert line not in payload
        assert 'other-owner' not in payload and 'INPUT' not in payload


def test_absent_of_the_last_instance_removes_everything_of_ours():
    plan = plan_family('ipv4', parse_save(golden('iptables-save-one-instance.txt')), UUID, None)
    added, removed = added_removed(plan.before, plan.after)
    assert added == [] and '-A FORWARD -j kvmhost-FORWARD' in removed and '-A kvmhost-sg-fallback -j DROP' in removed
    lines = plan.payload.splitlines()
    assert lines.index('-D FORWARD -j kvmhost-FORWARD') < lines.index('-X kvmhost-FORWARD')
    assert sorted(line for line in lines if line.startswith('-X')) == [
        '-X kvmhost-FORWARD', '-X kvmhost-i8dbfeeff-e2', '-X kvmhost-o8dbfeeff-e2', '-X kvmhost-s8dbfeeff-e2',
        '-X kvmhost-sg-fallback']
    assert not any(line.startswith('-A') for line in lines)


def test_absent_when_nothing_is_there_is_a_no_op():
    assert plan_family('ipv4', parse_save(golden('iptables-save-other-owner.txt')), UUID, None).payload is None


def test_a_port_of_another_instance_is_refused():
    stolen = dict(OTHER, vifs=RECORDED['vifs'])
    with pytest.raises(KvmhostError, match='already belongs to instance %s' % UUID):
        plan_family('ipv4', parse_save(golden('iptables-save-one-instance.txt')), OTHER_UUID, wanted(stolen))


def test_driver_check_mode_plans_without_restoring():
    saves = {'ipv4': golden('iptables-save-other-owner.txt'), 'ipv6': ''}
    result, runner = drive(RECORDED, saves, check_mode=True)
    assert result['changed'] is True and runner.restores == []
    assert len(result['actions']) == 2
    assert '+-A kvmhost-i8dbfeeff-e2' not in result['diff']['before']
    assert '-A kvmhost-i8dbfeeff-e2 -p tcp -m tcp --dport 22 -j RETURN' in result['diff']['after']


def test_driver_applies_both_families_under_the_lock(tmp_path):
    saves = {'ipv4': golden('iptables-save-other-owner.txt'), 'ipv6': ''}
    result, runner = drive(RECORDED, saves, lock_dir=str(tmp_path / 'run'))
    assert [family for family, _payload in runner.restores] == ['ipv4', 'ipv6']
    assert (tmp_path / 'run' / 'iptables.lock').exists()
    assert result['chains']['ipv6'] == ['kvmhost-i8dbfeeff-e2', 'kvmhost-o8dbfeeff-e2', 'kvmhost-s8dbfeeff-e2']


def test_driver_is_idempotent_on_the_recorded_host(tmp_path):
    saves = {'ipv4': golden('iptables-save-one-instance.txt'), 'ipv6': golden('ip6tables-save-one-instance.txt')}
    result, runner = drive(RECORDED, saves, lock_dir=str(tmp_path))
    assert result['changed'] is False and runner.restores == []
    assert result['rules_added'] == {'ipv4': [], 'ipv6': []}


def test_driver_rejects_bad_input_before_reading_anything():
    bad = dict(RECORDED, security_groups=[dict(rules=[dict(protocol='tcp', port_range_min=70000)])])
    with pytest.raises(KvmhostError, match=r'security_groups\[0\]\.rules\[0\]\.port_range_min: must be 1\.\.65535'):
        drive(bad, saves={})


def test_the_lock_directory_made_by_another_apply_meanwhile_is_no_error(tmp_path, monkeypatch):
    """The instances of a batch apply concurrently: on a fresh host two may both find the lock's directory missing
    and create it; the one that comes second must go on."""
    directory = tmp_path / 'run' / 'kvmhost'
    real_makedirs = os.makedirs
    made = []

    def raced(path, mode=0o777, exist_ok=False):
        made.append(path)
        real_makedirs(path, mode)  # the other apply was first
        real_makedirs(path, mode, exist_ok=exist_ok)

    monkeypatch.setattr(os, 'makedirs', raced)
    saves = {'ipv4': golden('iptables-save-other-owner.txt'), 'ipv6': ''}
    _result, runner = drive(RECORDED, saves, lock_dir=str(directory))
    assert made[0] == str(directory) and (directory / 'iptables.lock').exists()
    assert [family for family, _payload in runner.restores] == ['ipv4', 'ipv6']


def test_a_lock_held_past_the_timeout_fails_naming_lock_file_before_reading(tmp_path, monkeypatch):
    assert instance_firewall.LOCK_TIMEOUT_SECONDS == 300
    monkeypatch.setattr(instance_firewall, 'LOCK_TIMEOUT_SECONDS', 0.2)
    lock_path = str(tmp_path / 'iptables.lock')
    with FileLock(lock_path):  # another apply
        with pytest.raises(KvmhostError) as caught:
            drive(RECORDED, saves={}, lock_dir=str(tmp_path))  # a save would raise KeyError
    assert caught.value.field == 'lock_file' and lock_path in str(caught.value)
    assert str(caught.value).startswith('lock_file: timed out after ')
