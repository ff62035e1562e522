# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role's defaults/main.yml and meta/argument_specs.yml agree, as prometheus.prometheus checks in CI."""

from __future__ import annotations

import os

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
