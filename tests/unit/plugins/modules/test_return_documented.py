# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every key a module returns is documented in its RETURN, and its requirements name the host tools it runs.

The keys are read from the drivers' code (an AST walk, no import): every module ends in base.run_module or
batch.run_step_module, which pass the driver's result dict to exit_json as it is (plus the batch keys). The
driver's result is built, in its class and its bases in module_utils, by ``self.finish(plan, key=...)``, by
``result['key'] = ...``, ``result.update(key=...)``, ``result.setdefault('key', ...)`` or a dict literal
assigned to or returned as the result; the names that hold a result on its way out are RESULT_NAMES (``after``
is not one: the plan's after state, which check mode returns, counts where run returns it). An EachDriver (vif's VifsDriver) returns its ``many``
list and ``merged`` keys, and without ``many`` its ``inner`` driver's result. Objects a driver delegates to (the
transports of iscsi_attach) hand it values, and the driver names the keys: DELEGATES are checked to build no result.
"""

from __future__ import annotations

import ast
import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MODULES = os.path.join(ROOT, 'plugins', 'modules')
MODULE_UTILS = os.path.join(ROOT, 'plugins', 'module_utils')
PACKAGE = 'ansible_collections.kvmhost.lifecycle.plugins.module_utils'
NAMES = sorted(name[:-3] for name in os.listdir(MODULES) if name.endswith('.py') and not name.startswith('_'))

# Names that hold a driver's result dict on its way to exit_json.
RESULT_NAMES = {'result', 'outcome', 'combined'}
# Methods whose dict literal return value is the result.
RESULT_METHODS = {'run', '_run'}
# Ansible's own return values (and the batch runner's), documented by Ansible itself.
COMMON = {'changed', 'diff', 'warnings', 'msg', 'failed', 'skipped', 'invocation'}
# The batch runner's keys (batch.BatchRunner.result), present in every step module's result with instances.
BATCH = {'results', 'failed_instances', 'succeeded', 'skipped_instances'}


def module_source(name):
    with open(os.path.join(MODULES, name + '.py')) as handle:
        return handle.read()


def module_docs(name):
    docs = {}
    for node in ast.parse(module_source(name)).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and \
                node.targets[0].id in ('DOCUMENTATION', 'RETURN'):
            docs[node.targets[0].id] = yaml.safe_load(node.value.value) or {}
    return docs


def utils_files():
    """The module_utils files, as paths relative to plugins/module_utils (``network/links.py``)."""
    found = []
    for directory, _dirs, files in os.walk(MODULE_UTILS):
        found.extend(os.path.relpath(os.path.join(directory, name), MODULE_UTILS) for name in files
                     if name.endswith('.py') and name != '__init__.py')
    return sorted(found)


def classes():
    """{class name: (ast.ClassDef, module_utils file name)} over module_utils."""
    found = {}
    for file_name in utils_files():
        if file_name.endswith('.py'):
            with open(os.path.join(MODULE_UTILS, file_name)) as handle:
                for node in ast.walk(ast.parse(handle.read())):
                    if isinstance(node, ast.ClassDef):
                        found.setdefault(node.name, (node, file_name))
    return found


CLASSES = classes()


def driver_of(name):
    """The driver class a module file passes to run_module / run_step_module."""
    match = re.search(r'run_(?:step_)?module\((\w+)', module_source(name))
    assert match, 'module %s does not call run_module or run_step_module' % name
    return match.group(1), 'run_step_module(' in module_source(name)


def lineage(class_name):
    """The class and its bases that module_utils defines, the class first."""
    seen, todo = [], [class_name]
    while todo:
        current = todo.pop(0)
        if current in CLASSES and current not in seen:
            seen.append(current)
            todo.extend(base.id for base in CLASSES[current][0].bases if isinstance(base, ast.Name))
    return seen


def class_attr(class_name, attr):
    for current in lineage(class_name):
        for node in CLASSES[current][0].body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == attr for t in node.targets):
                return ast.literal_eval(node.value) if not isinstance(node.value, ast.Name) else node.value.id
    return None


def _dict_keys(node):
    if isinstance(node, ast.Dict):
        return set(k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict':
        return set(k.arg for k in node.keywords if k.arg)
    return set()


def _is_result_name(node):
    return isinstance(node, ast.Name) and node.id in RESULT_NAMES


def _own_functions(file_name):
    with open(os.path.join(MODULE_UTILS, file_name)) as handle:
        return dict((node.name, node) for node in ast.parse(handle.read()).body if isinstance(node, ast.FunctionDef))


def functions(file_name):
    """{name: ast.FunctionDef} of the module-level functions of a module_utils file, and of those it imports by
    name from another module_utils file (``describe``, which virt/driver.py holds for the drivers of domains)."""
    found = {}
    with open(os.path.join(MODULE_UTILS, file_name)) as handle:
        tree = ast.parse(handle.read())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or '').startswith(PACKAGE + '.'):
            path = node.module[len(PACKAGE) + 1:].replace('.', '/') + '.py'
            if os.path.exists(os.path.join(MODULE_UTILS, path)):
                imported = _own_functions(path)
                found.update((alias.asname or alias.name, imported[alias.name]) for alias in node.names
                             if alias.name in imported)
    found.update(_own_functions(file_name))
    return found


def _returned_dict_keys(function):
    return set().union(*[_dict_keys(node.value) for node in ast.walk(function)
                         if isinstance(node, ast.Return) and node.value is not None] or [set()])


def _is_plan_after(node):
    """plan.after (the after state, which check mode returns)."""
    return isinstance(node, ast.Attribute) and node.attr == 'after'


def _calls_finish(method):
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == 'finish'
               for node in ast.walk(method))


def _returns_a_result(method):
    """A method that returns a dict literal with 'changed': a result (instance_transfer's export)."""
    return any(isinstance(node, ast.Return) and 'changed' in _dict_keys(node.value) for node in ast.walk(method)
               if isinstance(node, ast.Return) and node.value is not None)


def _result_methods(class_name):
    """(method, file name) of the methods that build the result: run, _run, those that call self.finish
    and those that return a dict with 'changed'."""
    for current in lineage(class_name):
        node, file_name = CLASSES[current]
        for method in node.body:
            if not isinstance(method, ast.FunctionDef):
                continue
            if method.name in RESULT_METHODS or _calls_finish(method) or _returns_a_result(method):
                yield method, file_name


def keys_of_class(class_name):
    """The result keys the driver class (with its module_utils bases) builds."""
    keys, after_keys, returns_after = set(), set(), False
    for current in lineage(class_name):
        # The plan's after state, built anywhere in the class: the result in check mode where run returns it.
        for node in ast.walk(CLASSES[current][0]):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == 'update' \
                    and _is_plan_after(node.func.value):
                after_keys.update(k.arg for k in node.keywords if k.arg)
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript) and \
                    _is_plan_after(node.targets[0].value) and isinstance(node.targets[0].slice, ast.Constant):
                after_keys.add(node.targets[0].slice.value)
    for method, file_name in _result_methods(class_name):
        helpers = functions(file_name)
        for node in ast.walk(method):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                func = node.func
                if func.attr == 'finish' and isinstance(func.value, ast.Name) and func.value.id == 'self':
                    keys.update(k.arg for k in node.keywords if k.arg)
                elif _is_result_name(func.value) and func.attr == 'update':
                    keys.update(k.arg for k in node.keywords if k.arg)
                    for arg in node.args:
                        keys.update(_dict_keys(arg))
                        for inner in ast.walk(arg):
                            # result.update(describe(domain)), result.update(power_off(...).as_dict())
                            if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and \
                                    inner.func.id in helpers:
                                keys.update(_returned_dict_keys(helpers[inner.func.id]))
                            if _is_plan_after(inner) or (isinstance(inner, ast.Name) and inner.id == 'after'):
                                returns_after = True
                elif _is_result_name(func.value) and func.attr == 'setdefault' and node.args and \
                        isinstance(node.args[0], ast.Constant):
                    keys.add(node.args[0].value)
            elif isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Subscript) and _is_result_name(target.value) and \
                            isinstance(target.slice, ast.Constant) and isinstance(target.slice.value, str):
                        keys.add(target.slice.value)
                    elif _is_result_name(target) and len(targets) == 1:  # not outcome = by_uuid[u] = {...}
                        keys.update(_dict_keys(node.value))
                        if isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name) and \
                                node.value.func.id in helpers:
                            keys.update(_returned_dict_keys(helpers[node.value.func.id]))
            elif isinstance(node, ast.Return) and node.value is not None:
                keys.update(_dict_keys(node.value))
    for method, _file_name in _result_methods(class_name):
        for node in ast.walk(method):
            # ShutdownDriver: outcome.update(power_off(...).as_dict()): the as_dict of guest_power's result.
            if isinstance(node, ast.Attribute) and node.attr == 'as_dict':
                for other in ('PowerOffResult',):
                    for item in CLASSES[other][0].body:
                        if isinstance(item, ast.FunctionDef) and item.name == 'as_dict':
                            keys.update(_returned_dict_keys(item))
    if returns_after:
        keys |= after_keys
        # after starts as describe(domain) (the before state)
        for method, file_name in _result_methods(class_name):
            helpers = functions(file_name)
            for node in ast.walk(method):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'describe' \
                        and 'describe' in helpers:
                    keys.update(_returned_dict_keys(helpers['describe']))
    inner = class_attr(class_name, 'inner')
    if isinstance(inner, str):
        keys.add(class_attr(class_name, 'many'))
        keys.update(class_attr(class_name, 'merged') or ())
        keys |= keys_of_class(inner)
    return keys


def calls_finish(class_name):
    return any(_calls_finish(method) for method, _file_name in _result_methods(class_name))


def returned_keys(name):
    driver, step = driver_of(name)
    keys = keys_of_class(driver)
    if calls_finish(driver) or class_attr(driver, 'inner'):
        keys.add('actions')  # ModuleDriver.finish sets it (and EachDriver)
    if step:
        keys |= BATCH
    return keys - COMMON - {None}


@pytest.mark.parametrize('name', NAMES)
def test_every_returned_key_is_documented(name):
    documented = set(module_docs(name)['RETURN'])
    undocumented = sorted(returned_keys(name) - documented)
    assert not undocumented, '%s returns keys its RETURN does not document: %s' % (name, undocumented)


@pytest.mark.parametrize('name', NAMES)
def test_every_documented_key_is_returned(name):
    """The other way round: a RETURN entry no code path builds is a stale one."""
    stale = sorted(set(module_docs(name)['RETURN']) - returned_keys(name))
    assert not stale, '%s documents keys no code of its driver returns: %s' % (name, stale)


def test_the_collection_finds_what_the_drivers_build():
    """The AST walk reads the real drivers: keys built in each way the drivers build them."""
    assert {'drift', 'uuid', 'restart_required', 'power_off', 'defined', 'power_state'} <= returned_keys('domain')
    assert {'messages', 'started_at', 'found', 'clean'} <= returned_keys('instance_shutdown')
    assert {'pids', 'process_name', 'log_file'} <= returned_keys('host_daemon')
    assert {'vifs', 'network_info', 'results'} <= returned_keys('vif')
    assert {'volumes', 'volume_secrets', 'host_volume_paths', 'device_path', 'secret_uuid', 'source',
            'disk_xml'} <= returned_keys('iscsi_attach')
    assert 'results' not in returned_keys('instance_info')


# Objects a driver delegates to that hand it values, never result keys: the driver names every key of its result,
# so the walk above, which reads the driver's classes only, sees them all.
DELEGATES = ('QemuTransport', 'HostTransport', 'Hotplug')  # iscsi_attach's transports and hot plug


@pytest.mark.parametrize('name', DELEGATES)
def test_delegates_build_no_result(name):
    node, file_name = CLASSES[name]
    names = sorted(set(item.id for item in ast.walk(node) if isinstance(item, ast.Name) and item.id in RESULT_NAMES))
    assert not names and not _calls_finish(node), '%s (%s) builds a result (%s): build it in the driver, where ' \
        'the walk reads it' % (name, file_name, ', '.join(names) or 'self.finish')


# The host tools each module_utils file runs (argv[0] of its run_command calls), and how the requirements of a
# module that uses it name them.
TOOLS = {
    'network/links.py': ['ip', 'ovs-vsctl'],
    'storage/disk_files.py': ['qemu-img'],
    'network/instance_firewall.py': ['iptables-save', 'iptables-restore'],
    'iscsi/probe.py': ['iscsi-ls'],
    'iscsi/host_transport.py': ['iscsiadm'],
    'iscsi/iscsi_target.py': ['tgtadm'],
    'host/resource_audit.py': ['qemu-img'],
}
# Tools a module_utils file imports but the module never runs (a constant, a parser): name -> files.
NOT_RUN = {
    'iscsi_target': {'iscsi/probe.py'},      # only its timeout exit code
    'instance_check': {'storage/disk_files.py', 'host/resource_audit.py'},  # their pure helpers (sizes); no command
}


def used_utils(name):
    """module_utils files the module imports, directly or through others."""
    def imports(source):
        found = set()
        for dotted, group in re.findall(r'plugins\.module_utils\.([\w.]+) import \(?([\w, \n]+)\)?', source):
            path = dotted.replace('.', '/')
            if os.path.exists(os.path.join(MODULE_UTILS, path + '.py')):
                found.add(path + '.py')
                continue
            for part in group.split(','):  # a package: from ...network import links as hl
                if part.strip():
                    found.add('%s/%s.py' % (path, part.split()[0]))
        return set(part for part in found if os.path.exists(os.path.join(MODULE_UTILS, part)))
    seen, todo = set(), imports(module_source(name))
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            with open(os.path.join(MODULE_UTILS, current)) as handle:
                todo |= imports(handle.read())
    return seen


def test_the_tools_table_knows_every_run_command():
    """A module_utils file that runs a command is in TOOLS (or runs the user's command, like host_daemon.py)."""
    for file_name in utils_files():
        if file_name in ('core/batch.py', 'host/host_daemon.py'):
            continue
        with open(os.path.join(MODULE_UTILS, file_name)) as handle:
            if 'run_command(' in handle.read():
                assert file_name in TOOLS, file_name


@pytest.mark.parametrize('name', NAMES)
def test_requirements_name_the_host_tools(name):
    requirements = ' '.join(module_docs(name)['DOCUMENTATION'].get('requirements') or [])
    missing = []
    for file_name in sorted(used_utils(name) - NOT_RUN.get(name, set())):
        for tool in TOOLS.get(file_name, []):
            if not re.search(r'(?<![\w-])%s(?![\w-])' % re.escape(tool), requirements):
                missing.append('%s (%s)' % (tool, file_name))
    assert not missing, '%s: requirements do not name %s' % (name, missing)
