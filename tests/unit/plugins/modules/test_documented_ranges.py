# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every int or float option of every module states its range, and the module's own checks hold to it.

The options are read from each module's DOCUMENTATION (with its doc fragments), suboptions included
(``instance.flavor.root_gb``, ``vifs[].mtu``, ``security_groups[].rules[].port_range_min``). Each must have
``choices`` or state its range as ``(MIN..MAX)`` or ``Range V(MIN)..V(MAX).``. For each stated range, the
module's validation layer (the one its ``main()`` hands the driver to: the batch runner's validation and the
driver's ``check_options`` for a step module, the argument spec and ``check_options`` for the others) refuses
MIN-1 and MAX+1 with an error naming the option, and accepts MIN and MAX. Nothing is mocked but the module's
entry point, so that the test learns which driver, argument spec and key ``main()`` uses.
"""

from __future__ import annotations

import copy
import importlib
import os
import re

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.batch import BATCH, BatchRunner, step_argument_spec
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.host.instance_check import InstanceCheckDriver, check_spec

COLLECTION = 'ansible_collections.kvmhost.lifecycle.plugins'
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, 'plugins', 'modules'))
                 if name.endswith('.py') and not name.startswith('_'))
NUMERIC = ('int', 'float')
# The two accepted forms of a stated range: "(68..65535)" in the sentence, or "Range V(0)..V(3600)." ending it.
RANGE_FORMS = (re.compile(r'\((-?\d+)\.\.(-?\d+)\)'), re.compile(r'Range V\((-?\d+)\)\.\.V\((-?\d+)\)\.'))

UUID = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
VIF = {'id': '8dbfeeff-e2a1-4c1e-9f61-1a2b3c4d5e6f', 'address': 'fa:16:3e:81:a8:b4', 'type': 'bridge',
       'bridge': 'br-ex', 'physical_interface': 'eth1'}
VOLUME = {'id': '6f1c0b5e-3a52-4c8e-9d0a-6b7f1e2d3c4b', 'device_name': 'vdd', 'target_portal': '127.0.0.1:3260',
          'target_iqn': 'iqn.2026-11.org.example:volume-1', 'target_lun': 1}
FLAVOR = {'vcpus': 1, 'memory_mb': 512, 'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0}
GROUPS = [{'name': 'default', 'rules': [{'direction': 'ingress', 'protocol': 'tcp', 'port_range_min': 22}]}]
INSTANCE = {'uuid': UUID, 'name': 'web-1', 'flavor': FLAVOR,
            'image': {'id': 'guest-v1', 'source': 'https://images.example/guest.qcow2',
                      'checksum': 'sha256:' + '0' * 64},
            'vifs': [VIF], 'volumes': [VOLUME], 'security_groups': GROUPS}


def baseline(module_name, top, tmp_path):
    """Good options of the module, holding every container a numeric option of it lives in.

    ``top`` is the option's first part: a module whose ``volume`` and ``volumes`` exclude each other gets the one
    the option is in.
    """
    params = {
        'domain': {'uuid': UUID},
        'domain_xml': {'instance': dict(INSTANCE, security_groups=None), 'local_id': 1},
        'host_daemon': {'name': 'tgtd', 'command': ['/usr/sbin/tgtd']},
        'instance_check': {'instances': [INSTANCE], 'action': 'boot', 'claim': {'request_id': 'req-1'}},
        'instance_disk': {'uuid': UUID},
        'instance_firewall': {'instance_uuid': UUID, 'vifs': [VIF], 'security_groups': GROUPS},
        'instance_image': {'uuid': UUID, 'flavor': FLAVOR},
        'instance_record': {'uuid': UUID},
        'instance_shutdown': {'uuid': UUID},
        'iscsi_attach': {'instance_uuid': UUID, 'volume': VOLUME},
        'iscsi_target': {'iqn': 'iqn.2026-11.org.example:target-1', 'volume_dir': str(tmp_path),
                         'luns': [{'lun': 1, 'path': str(tmp_path / 'lun1.img'), 'size': '1G'}]},
        'vif': {'instance_uuid': UUID, 'vif': VIF},
    }.get(module_name, {})
    params = copy.deepcopy(params)
    for one, many in (('volume', 'volumes'), ('vif', 'vifs')):
        if top == many and one in params:
            params[many] = [params.pop(one)]
    return params


# What the option's container must hold besides it, per stated range, where one option has several ranges.
CONTEXT = {
    ('instance_firewall', 'security_groups[].rules[].port_range_min'): {
        (1, 65535): {'protocol': 'tcp'}, (0, 255): {'protocol': 'icmp'}},
    ('instance_firewall', 'security_groups[].rules[].port_range_max'): {
        (1, 65535): {'protocol': 'tcp', 'port_range_min': 1}, (0, 255): {'protocol': 'icmp', 'port_range_min': 0}},
}


# ---------------------------------------------------------------- the documentation

def _fragment_options(name):
    """The options of a doc fragment named like kvmhost.lifecycle.batch or kvmhost.lifecycle.attributes.X."""
    parts = name.split('.')[2:]
    fragment = importlib.import_module('%s.doc_fragments.%s' % (COLLECTION, parts[0])).ModuleDocFragment
    return (yaml.safe_load(getattr(fragment, parts[1] if len(parts) > 1 else 'DOCUMENTATION')) or {}).get('options')


def documentation(module_name):
    doc = yaml.safe_load(importlib.import_module('%s.modules.%s' % (COLLECTION, module_name)).DOCUMENTATION)
    options = {}
    for fragment in doc.get('extends_documentation_fragment') or []:
        options.update(_fragment_options(fragment) or {})
    options.update(doc.get('options') or {})
    return options


def numeric_options(options, prefix=''):
    """[(path, definition)] of every int/float option and suboption; a list's elements are ``name[]``."""
    found = []
    for name, definition in sorted(options.items()):
        path = prefix + name
        if definition.get('type') in NUMERIC:
            found.append((path, definition))
        if definition.get('suboptions'):
            found.extend(numeric_options(definition['suboptions'],
                                         path + ('[].' if definition.get('type') == 'list' else '.')))
    return found


def description(definition):
    text = definition.get('description') or ''
    return ' '.join(text) if isinstance(text, list) else text


def stated_ranges(definition):
    return [(int(low), int(high)) for form in RANGE_FORMS for low, high in form.findall(description(definition))]


def ranged_options():
    cases = []
    for module_name in MODULES:
        for path, definition in numeric_options(documentation(module_name)):
            for low, high in stated_ranges(definition):
                cases.append(pytest.param(module_name, path, low, high, id='%s-%s-%d..%d' % (
                    module_name, path, low, high)))
    return cases


# ---------------------------------------------------------------- the modules' validation layer

class Module(object):
    """What the batch runner reads of an AnsibleModule: the parsed options, the modes, the no_log values."""

    def __init__(self, params):
        self.params, self.check_mode, self._diff, self.no_log_values = params, False, False, set()


def entry_point(module_name, monkeypatch):
    """What the module's main() passes on: ('step' or 'plain', driver class, argument spec, key, constraints)."""
    module = importlib.import_module('%s.modules.%s' % (COLLECTION, module_name))
    calls = []
    for runner, kind in (('run_step_module', 'step'), ('run_module', 'plain')):
        if hasattr(module, runner):
            monkeypatch.setattr(module, runner, lambda *args, _kind=kind, **kwargs: calls.append((_kind, args, kwargs)))
    module.main()
    ((kind, args, kwargs),) = calls
    if kind == 'step':
        driver, item_spec, key = args
        return kind, driver, item_spec, key, kwargs
    driver, spec = args
    return kind, driver, spec, None, kwargs


def parsed(spec, params, **constraints):
    """The options as AnsibleModule would hold them: checked against the argument spec, defaults applied."""
    result = ArgumentSpecValidator(spec, **constraints).validate(dict((k, v) for k, v in params.items() if v is not None))
    assert not result.error_messages, result.error_messages  # the test's own options must be good
    return result.validated_parameters


def check(module_name, params, monkeypatch):
    """Run the module's checks of ``params`` (one instance's options), the way main() would, up to the host.

    A step module checks them as one instance (``BatchRunner.validate``) and as the one item of a batch
    (``BatchRunner.items``, which must refuse before any item runs); its batch options (``concurrency``) are
    checked by ``BatchRunner.run`` before any item. Raises the KvmhostError of the first refusal.
    """
    kind, driver, spec, key, constraints = entry_point(module_name, monkeypatch)
    if kind == 'plain':
        driver.check_options(parsed(spec, params, **constraints))
        return
    batch_options = dict((name, params.pop(name)) for name in list(params) if name in BATCH)
    runner_kwargs = dict((name, constraints.get(name)) for name in (
        'required_one_of', 'required_if', 'mutually_exclusive', 'required_together'))
    if batch_options:
        module = Module(parsed(step_argument_spec(spec), dict(batch_options, instances=[])))
        BatchRunner(module, driver, spec, key, runner_kwargs).run()
        return
    module = Module(parsed(step_argument_spec(spec), params))
    runner = BatchRunner(module, driver, spec, key, runner_kwargs)
    runner.validate(dict((name, module.params[name]) for name in runner.item_spec
                         if module.params.get(name) is not None), '')
    item = dict((name, value) for name, value in params.items() if value is not None)
    batch = Module(parsed(step_argument_spec(spec), {'instances': [item]}))
    BatchRunner(batch, driver, spec, key, runner_kwargs).items()


def with_value(params, path, value, context=None):
    """``params`` with the option at ``path`` (``vifs[].mtu``; a list's first element) set; the concrete path."""
    params = copy.deepcopy(params)
    parts = path.replace('[]', '[0]').split('.')
    container = params
    for part in parts[:-1]:
        name, _sep, index = part.partition('[')
        container = container[name]
        if index:
            container = container[int(index.rstrip(']'))]
    container.update(context or {})
    container[parts[-1]] = value
    return params, path.replace('[]', '[0]')


# ---------------------------------------------------------------- the tests

def test_the_documentation_is_read():
    found = dict((name, numeric_options(documentation(name))) for name in MODULES)
    assert 'concurrency' in [path for path, _definition in found['domain']]  # from the batch fragment
    assert 'instance.flavor.root_gb' in [path for path, _definition in found['domain_xml']]
    assert 'security_groups[].rules[].port_range_min' in [path for path, _definition in found['instance_firewall']]
    assert sum(len(options) for options in found.values()) > 40


@pytest.mark.parametrize('module_name', MODULES)
def test_every_numeric_option_states_its_range(module_name):
    unstated = []
    for path, definition in numeric_options(documentation(module_name)):
        ranges = stated_ranges(definition)
        if definition.get('choices'):
            continue
        if not ranges:
            unstated.append(path)
        for low, high in ranges:
            assert low <= high, '%s: the range %d..%d is empty' % (path, low, high)
        if len(ranges) > 1:
            assert (module_name, path) in CONTEXT, '%s has %d ranges: say in CONTEXT when each holds' % (
                path, len(ranges))
    assert not unstated, 'int/float options without choices or a stated range: %s' % ', '.join(unstated)


@pytest.mark.parametrize('module_name, path, low, high', ranged_options())
def test_the_checks_refuse_what_the_documentation_excludes(module_name, path, low, high, monkeypatch, tmp_path):
    params = baseline(module_name, path.split('.')[0].split('[')[0], tmp_path)
    context = CONTEXT.get((module_name, path), {}).get((low, high))
    for value in (low - 1, high + 1):
        bad, concrete = with_value(params, path, value, context)
        with pytest.raises(KvmhostError) as refused:
            check(module_name, bad, monkeypatch)
        assert concrete in str(refused.value), 'the refusal of %s=%d does not name it: %s' % (path, value, refused.value)
    for value in (low, high):
        good, _concrete = with_value(params, path, value, context)
        check(module_name, good, monkeypatch)  # the documented bounds themselves are accepted


def test_a_bad_element_of_a_list_is_named_and_refused_before_the_first_runs(monkeypatch, tmp_path):
    params = baseline('vif', 'vifs', tmp_path)
    params['vifs'].append(dict(VIF, id='9dbfeeff-e2a1-4c1e-9f61-1a2b3c4d5e6f', address='fa:16:3e:81:a8:b5', mtu=67))
    with pytest.raises(KvmhostError) as refused:
        check('vif', params, monkeypatch)
    assert 'vifs[1].mtu: must be 68..65535, got 67' in str(refused.value)


# The instance spec's numeric fields, documented with the modules that take them: instance_check checks whole
# specs before a run and names the instance and the field (its path in the spec) of each refusal.
SPEC_FIELDS = [(path[len('instance.'):], definition) for path, definition in numeric_options(documentation('domain_xml'))
               if path.startswith('instance.')]
SPEC_FIELDS += [(path, definition) for path, definition in numeric_options(documentation('instance_firewall'))
                if path.startswith('security_groups')]
SPEC_CASES = [pytest.param(path, low, high, id='%s-%d..%d' % (path, low, high))
              for path, definition in SPEC_FIELDS for low, high in stated_ranges(definition)]
CHECK_PARAMS = {'action': 'boot', 'virt_type': 'kvm', 'vnc': False, 'instances_path': '/var/lib/kvmhost/instances'}


def test_the_instance_spec_fields_are_all_there():
    fields = set(path for path, _low, _high in (case.values for case in SPEC_CASES))
    assert {'flavor.vcpus', 'flavor.memory_mb', 'flavor.root_gb', 'flavor.ephemeral_gb', 'flavor.swap_mb',
            'vifs[].vlan', 'vifs[].mtu', 'volumes[].target_lun', 'security_groups[].rules[].port_range_min',
            'security_groups[].rules[].port_range_max'} <= fields


@pytest.mark.parametrize('path, low, high', SPEC_CASES)
def test_instance_check_refuses_a_spec_field_out_of_its_range(path, low, high):
    context = CONTEXT.get(('instance_firewall', path), {}).get((low, high))
    for value in (low - 1, high + 1):
        spec, concrete = with_value(INSTANCE, path, value, context)
        _validated, errors = check_spec(spec, CHECK_PARAMS)
        assert concrete in [error.field for error in errors], '%s=%d: %s' % (path, value, [str(e) for e in errors])
    for value in (low, high):
        spec, _concrete = with_value(INSTANCE, path, value, context)
        assert check_spec(spec, CHECK_PARAMS)[1] == []


class NoLibvirt(object):
    """A libvirt connection that cannot be opened: the refusals of the specs come before it matters."""

    @property
    def conn(self):
        raise KvmhostError('not connected in this test', field='libvirt_uri')

    def close(self):
        pass


def test_instance_check_names_the_instance_and_the_field(tmp_path):
    spec, _concrete = with_value(INSTANCE, 'vifs[].mtu', 65536)
    params = dict(CHECK_PARAMS, instances=[spec], libvirt_uri='qemu:///system', state_db=str(tmp_path / 'state.db'),
                  instances_path=str(tmp_path), claim=None, claim_wait=90)
    with pytest.raises(KvmhostError) as refused:
        InstanceCheckDriver(Module(params), connection=NoLibvirt()).run()
    assert 'web-1 (%s): vifs[0].mtu: must be 68..65535, got 65536' % UUID in refused.value.details['refusals']
    assert 'nothing was changed' in str(refused.value)
