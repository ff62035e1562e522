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
