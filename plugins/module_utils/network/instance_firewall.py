# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merging an instance's rules into the host's filter table: read iptables-save, plan, one iptables-restore.

Only chains named ``kvmhost-*`` and the one ``FORWARD -j kvmhost-FORWARD`` jump are ever written. The restore
payload uses ``--noflush``: it declares (which flushes) only the chains of ours that change, re-adds their lines,
and deletes chains of ours no longer used, so every other chain, rule and policy of the host stays as it is, and
the kernel applies the whole payload in one transaction or not at all. Commands run through one seam,
:class:`IptablesRunner`, which unit tests replace with recorded iptables-save output.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import re
import socket

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import ModuleDriver, Plan
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.locks import FileLock
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import check_uuid
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.network.firewall_rules import (
    CHAIN_PREFIX, FALLBACK_CHAIN, FALLBACK_RULES, FAMILIES, FORWARD_JUMP, TOP_CHAIN, build_instance_rules,
    check_firewall_spec, line_owner)

COMMANDS = {'ipv4': ('iptables-save', 'iptables-restore'), 'ipv6': ('ip6tables-save', 'ip6tables-restore')}
# iptables-restore's --wait for the kernel's xtables lock (held by any iptables command on the host).
LOCK_WAIT_SECONDS = 10
# Seconds an apply waits for lock_file. A holder runs two iptables-save and at most two iptables-restore, well
# under a second, or 2 * LOCK_WAIT_SECONDS when the xtables lock is contended; the instances of a batch (16 at a
# time by default) and other runs on the host queue for it. Five minutes covers that queue many times over and
# still ends the wait on a holder that hangs.
LOCK_TIMEOUT_SECONDS = 300
LOCK_DIR_MODE = 0o755
_PROTOCOL_RE = re.compile(r'(^| )-p ([A-Za-z][A-Za-z0-9._-]*)(?= |$)')
_KEEP_NAMES = frozenset(('tcp', 'udp', 'icmp'))
_PORT_CHAIN_RE = re.compile(r'^kvmhost-[ios](.+)$')


class IptablesRunner(object):
    """The one seam to iptables: ``save(family)`` and ``restore(family, payload)`` with argument lists."""

    def __init__(self, module):
        self.module = module

    def _run(self, argv, data=None):
        path = self.module.get_bin_path(argv[0])
        if not path:
            raise KvmhostError('%s is not installed (package iptables)' % argv[0])
        rc, out, err = self.module.run_command([path] + argv[1:], data=data, binary_data=True)
        if rc != 0:
            raise KvmhostError('%s failed (rc %d): %s' % (' '.join(argv), rc, (err or out).strip()),
                               command=argv, rc=rc, stderr=err)
        return out

    def save(self, family):
        return self._run([COMMANDS[family][0], '-t', 'filter'])

    def restore(self, family, payload):
        self._run([COMMANDS[family][1], '--noflush', '--wait=%d' % LOCK_WAIT_SECONDS], data=payload)


# ---------------------------------------------------------------- parsing

FilterTable = collections.namedtuple('FilterTable', 'chains rules')


def parse_save(text):
    """The filter table of iptables-save output: chains {name: policy} and rule lines in order."""
    chains, rules = collections.OrderedDict(), []
    in_filter = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('*'):
            in_filter = line == '*filter'
        elif not in_filter:
            continue
        elif line.startswith(':'):
            name, policy = (line[1:].split() + ['-'])[:2]
            chains[name] = policy
        elif line.startswith('-A '):
            rules.append(line)
        elif line == 'COMMIT':
            in_filter = False
    return FilterTable(chains, rules)


def rule_chain(line):
    return line.split()[1]


def rule_target(line):
    words = line.split()
    for index, word in enumerate(words[:-1]):
        if word in ('-j', '-g'):
            return words[index + 1]
    return None


def normalize(line):
    """A rule line with every protocol but tcp, udp and icmp as its number; applied to both sides of a comparison.

    iptables-save names a protocol from /etc/protocols (``-p 47`` comes back as ``-p gre``, ``-p 58`` as
    ``-p ipv6-icmp``); this maps the names back, so generated and saved lines compare equal.
    """
    def number(match):
        name = match.group(2)
        if name in _KEEP_NAMES:
            return match.group(0)
        try:
            return '%s-p %d' % (match.group(1), socket.getprotobyname(name))
        except OSError:
            return match.group(0)
    return _PROTOCOL_RE.sub(number, line)


def chain_lines(table, chain):
    return [normalize(line) for line in table.rules if rule_chain(line) == chain]


# ---------------------------------------------------------------- planning

FamilyPlan = collections.namedtuple('FamilyPlan', 'family before after payload')


def _top_key(line):
    """Top chain order: every jump before every ACCEPT, then by instance, stable within an instance."""
    return (1 if rule_target(line) == 'ACCEPT' else 0, line_owner(line) or '')


def owned_chains(top_lines, instance_uuid):
    """The port chains (i, o and s) the instance's top-chain lines lead to."""
    chains = []
    for line in top_lines:
        if line_owner(line) != instance_uuid:
            continue
        match = _PORT_CHAIN_RE.match(rule_target(line) or '')
        if match:
            for kind in 'ios':
                name = '%s%s%s' % (CHAIN_PREFIX, kind, match.group(1))
                if name not in chains:
                    chains.append(name)
    return chains


def _view(forward_jump, top, chains, instance_uuid):
    """What the diff shows of one family: the FORWARD jump, the instance's top-chain lines, its chains."""
    lines = [FORWARD_JUMP] if forward_jump else []
    lines += [line for line in top if line_owner(line) == instance_uuid]
    for name in sorted(chains):
        lines += chains[name]
    return lines


def plan_family(family, table, instance_uuid, wanted):
    """Plan one family. ``wanted`` is build_instance_rules(...)[family], or None for absent.

    Returns a FamilyPlan whose ``payload`` is None when the host already has exactly the wanted lines.
    """
    current_top = chain_lines(table, TOP_CHAIN) if TOP_CHAIN in table.chains else []
    mine_before = owned_chains(current_top, instance_uuid)
    wanted_chains = collections.OrderedDict(
        (name, [normalize(line) for line in lines]) for name, lines in (wanted['chains'].items() if wanted else ()))
    for name in wanted_chains:
        for line in current_top:
            owner = line_owner(line)
            if rule_target(line) == name and owner != instance_uuid:
                raise KvmhostError('chain %s (%s) already belongs to instance %s: a port can be on one instance only'
                                   % (name, family, owner), field='vifs')
    others = [line for line in current_top if line_owner(line) != instance_uuid]
    new_top = sorted(others + (list(wanted['top']) if wanted else []), key=_top_key)
    in_use = bool(new_top)

    before_chains = dict((name, chain_lines(table, name)) for name in mine_before if name in table.chains)
    forward_jumps = [line for line in table.rules if rule_chain(line) == 'FORWARD' and line == FORWARD_JUMP]
    before = _view(forward_jumps, current_top, before_chains, instance_uuid)
    after = _view(in_use, new_top, wanted_chains, instance_uuid)
    before += chain_lines(table, FALLBACK_CHAIN) if FALLBACK_CHAIN in table.chains else []
    after += list(FALLBACK_RULES) if in_use else []

    rewrite, delete, head = collections.OrderedDict(), [], []
    if in_use:
        if TOP_CHAIN not in table.chains or current_top != new_top:
            rewrite[TOP_CHAIN] = new_top
        if FALLBACK_CHAIN not in table.chains or chain_lines(table, FALLBACK_CHAIN) != list(FALLBACK_RULES):
            rewrite[FALLBACK_CHAIN] = list(FALLBACK_RULES)
        if not forward_jumps:
            head.append('-I FORWARD 1 -j %s' % TOP_CHAIN)
    for name, lines in wanted_chains.items():
        if name not in table.chains or chain_lines(table, name) != list(lines):
            rewrite[name] = list(lines)
    delete += [name for name in mine_before if name in table.chains and name not in wanted_chains]
    if not in_use:
        head += ['-D %s' % FORWARD_JUMP[len('-A '):]] * len(forward_jumps)
        delete += [name for name in (TOP_CHAIN, FALLBACK_CHAIN) if name in table.chains]
    if not rewrite and not delete and not head:
        return FamilyPlan(family, before, after, None)
    payload = ['*filter']
    payload += [':%s - [0:0]' % name for name in list(rewrite) + delete]
    payload += head
    for lines in rewrite.values():
        payload += lines
    payload += ['-X %s' % name for name in delete]
    payload.append('COMMIT')
    return FamilyPlan(family, before, after, '\n'.join(payload) + '\n')


def plan_instance(runner, instance_uuid, wanted_by_family):
    """Read both families and plan them. ``wanted_by_family`` is None for absent."""
    plans = []
    for family in FAMILIES:
        table = parse_save(runner.save(family))
        plans.append(plan_family(family, table, instance_uuid,
                                 wanted_by_family[family] if wanted_by_family is not None else None))
    return plans


def added_removed(before, after):
    """The lines in after and not in before, and the other way round (multisets, in order)."""
    remaining = collections.Counter(before)
    added = []
    for line in after:
        if remaining[line]:
            remaining[line] -= 1
        else:
            added.append(line)
    remaining = collections.Counter(after)
    removed = []
    for line in before:
        if remaining[line]:
            remaining[line] -= 1
        else:
            removed.append(line)
    return added, removed


# ---------------------------------------------------------------- the module's driver

def _text(plans, which):
    parts = []
    for family_plan in plans:
        parts.append('# %s (%s)' % (COMMANDS[family_plan.family][0], family_plan.family))
        parts += getattr(family_plan, which)
    return '\n'.join(parts) + '\n'


class InstanceFirewallDriver(ModuleDriver):
    """instance_firewall: read, plan and restore both families under one lock."""

    runner_class = IptablesRunner

    @staticmethod
    def check_options(params):
        """The spec of state present (absent needs only the UUID: the instance's chains are found by it)."""
        if params['state'] == 'present':
            return check_firewall_spec(params)
        return check_uuid(params['instance_uuid'], 'instance_uuid')

    def run(self):
        if self.params['state'] == 'present':
            spec = check_firewall_spec(self.params)
            instance_uuid, wanted = spec.instance_uuid, build_instance_rules(spec)
        else:
            instance_uuid, wanted = check_uuid(self.params['instance_uuid'], 'instance_uuid'), None
        runner = self.runner_class(self.module)
        # so two applies on one host never interleave read and restore; its directory (in /run) is made when missing
        lock = contextlib.nullcontext() if self.check_mode else FileLock(
            self.params['lock_file'], timeout=LOCK_TIMEOUT_SECONDS, field='lock_file', dir_mode=LOCK_DIR_MODE)
        with lock:
            plans = plan_instance(runner, instance_uuid, wanted)
            plan = Plan(before=_text(plans, 'before'), after=_text(plans, 'after'))
            added, removed, chains = {}, {}, {}
            for family_plan in plans:
                added[family_plan.family], removed[family_plan.family] = added_removed(
                    family_plan.before, family_plan.after)
                chains[family_plan.family] = list(wanted[family_plan.family]['chains']) if wanted else []
                if family_plan.payload is not None:
                    plan.add('write the %s rules of instance %s with %s (%d added, %d removed)' % (
                        family_plan.family, instance_uuid, COMMANDS[family_plan.family][1],
                        len(added[family_plan.family]), len(removed[family_plan.family])),
                        functools.partial(runner.restore, family_plan.family, family_plan.payload))
            return self.finish(plan, instance_uuid=instance_uuid, chains=chains, rules_added=added,
                               rules_removed=removed)
