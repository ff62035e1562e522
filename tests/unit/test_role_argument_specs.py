# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role's defaults/main.yml and meta/argument_specs.yml agree, as prometheus.prometheus checks in CI."""

from __future__ import annotations

import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(os.listdir(os.path.join(ROOT, 'roles')))


def load(role, *parts):
    with open(os.path.join(ROOT, 'roles', role, *parts)) as handle:
        return yaml.safe_load(handle)


def test_every_role_is_checked():
    assert {'kvm_host', 'instance_boot', 'instance_rebuild', 'instance_delete'} <= set(ROLES)


@pytest.mark.parametrize('role', ROLES)
def test_defaults_match_the_argument_spec(role):
    options = load(role, 'meta', 'argument_specs.yml')['argument_specs']['main']['options']
    defaults = load(role, 'defaults', 'main.yml') or {}
    assert sorted(defaults) == sorted(options), 'variables with a default but no spec, or a spec but no default'
    for name, option in options.items():
        assert defaults[name] == option.get('default'), name
        assert option.get('description'), name
        assert option.get('type'), name
        if 'choices' in option and defaults[name] is not None:
            values = defaults[name] if option['type'] == 'list' else [defaults[name]]
            assert set(values) <= set(option['choices']), name


def bool_options(role):
    options = load(role, 'meta', 'argument_specs.yml')['argument_specs']['main']['options']
    return sorted(name for name, option in options.items() if option.get('type') == 'bool')


@pytest.mark.parametrize('role', ROLES)
def test_every_boolean_user_variable_goes_through_bool(role):
    """-e name=false gives the string 'false': a role that tests a user boolean as it is gets "Conditionals must have
    a boolean result" (or, templated, the truthy string). Every use in the role's tasks passes it through | bool."""
    names = bool_options(role)
    bare = []
    tasks = os.path.join(ROOT, 'roles', role, 'tasks')
    for file_name in sorted(os.listdir(tasks)):
        with open(os.path.join(tasks, file_name)) as handle:
            for number, line in enumerate(handle, 1):
                code = line.split('#', 1)[0]
                for name in names:
                    for match in re.finditer(r'\b%s\b' % re.escape(name), code):
                        if not re.match(r'\s*\|\s*bool\b', code[match.end():]):
                            bare.append('%s:%d %s' % (file_name, number, line.strip()))
    assert not bare, 'boolean variables used without | bool: %s' % bare
    assert role != 'kvm_host' or 'kvmhost_manage_packages' in names  # the check reads the real specs


def all_bool_options():
    """Every user boolean of every role's argument spec."""
    return sorted(set(name for role in ROLES for name in bool_options(role)))


def bare_uses(path, names):
    """Lines of ``path`` that use one of ``names`` without | bool (comments and the defaults' own assignment
    ``name: value`` aside)."""
    bare = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            code = line.split('#', 1)[0]
            for name in names:
                for match in re.finditer(r'\b%s\b' % re.escape(name), code):
                    if re.match(r'\s*:', code[match.end():]) and not code[:match.start()].strip():
                        continue  # a definition (defaults, vars, inventory), not a use
                    if not re.match(r'\s*\|\s*bool\b', code[match.end():]):
                        bare.append('%s:%d %s' % (os.path.relpath(path, ROOT), number, line.strip()))
    return bare


def yaml_and_template_files():
    """The playbooks, and every role's tasks, defaults, vars, handlers and templates."""
    found = [os.path.join(ROOT, 'playbooks', name) for name in sorted(os.listdir(os.path.join(ROOT, 'playbooks')))
             if name.endswith('.yml')]
    for role in ROLES:
        for part in ('tasks', 'defaults', 'vars', 'handlers', 'templates'):
            folder = os.path.join(ROOT, 'roles', role, part)
            for base, _dirs, files in os.walk(folder):
                found.extend(os.path.join(base, name) for name in sorted(files))
    return found


def test_no_boolean_user_variable_is_used_bare_anywhere():
    """Any role's boolean, wherever the collection reads it (a playbook, another role, a template, vars): a
    conditional on the string 'false' that -e gives fails, and a template prints it truthy."""
    names = all_bool_options()
    assert 'kvmhost_vnc' in names and 'kvmhost_manage_packages' in names
    files = yaml_and_template_files()
    assert any(path.endswith(os.path.join('playbooks', 'host.yml')) for path in files)
    bare = [use for path in files for use in bare_uses(path, names)]
    assert not bare, 'boolean variables used without | bool: %s' % bare


def test_the_bare_use_check_finds_a_bare_use(tmp_path):
    sample = tmp_path / 'sample.yml'
    sample.write_text('kvmhost_vnc: false\n- when: kvmhost_vnc\n- when: kvmhost_vnc | bool\n'
                      '  msg: "{{ kvmhost_vnc }}"  # kvmhost_vnc\n')
    assert [use.split(' ', 1)[1] for use in bare_uses(str(sample), ['kvmhost_vnc'])] == [
        '- when: kvmhost_vnc', 'msg: "{{ kvmhost_vnc }}"  # kvmhost_vnc']
