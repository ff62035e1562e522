# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""argument_specs: merging the shared parts into a module's spec, and the specs themselves validated by
Ansible's own ArgumentSpecValidator (the validator AnsibleModule runs), so a type, choice or default Ansible
does not accept fails here rather than in a module run."""

from __future__ import annotations

import copy

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import DEFAULT_TYPE_VALIDATORS

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core import argument_specs
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.argument_specs import (
    INSTANCE, INSTANCES_PATH, LIBVIRT, SECURITY_GROUP, SHUTDOWN, STATE_STORE, VIF_NETWORK, VIF_TYPES, VOLUME,
    merged)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import DEFAULT_STATE_DB

SPECS = dict(LIBVIRT=LIBVIRT, SHUTDOWN=SHUTDOWN, INSTANCES_PATH=INSTANCES_PATH, STATE_STORE=STATE_STORE,
             VIF_NETWORK=VIF_NETWORK, VOLUME=VOLUME, SECURITY_GROUP_RULE=argument_specs.SECURITY_GROUP_RULE,
             SECURITY_GROUP=SECURITY_GROUP, INSTANCE=INSTANCE)

UUID = '8f3c6f4e-2b6a-4d0e-9a51-1c2d3e4f5a6b'
PORT = 'b3b356e1-d350-50fc-bb39-d645334738f8'
VOLUME_ID = '6f1c0b5e-3a52-4c8e-9d0a-6b7f1e2d3c4b'


def validate(spec, params):
    return ArgumentSpecValidator(spec).validate(copy.deepcopy(params))


def instance(**changes):
    """An entry of kvmhost_instances as an inventory gives it: every part of the spec used once."""
    spec = {
        'uuid': UUID, 'name': 'web-1',
        'flavor': {'vcpus': 1, 'memory_mb': 192, 'root_gb': 1, 'name': 'm1.tiny'},
        'image': {'id': 'cirros-0.6.2', 'source': 'https://images.example/cirros-0.6.2-x86_64-disk.img',
                  'checksum': 'sha256:' + 'a' * 64},
        'vifs': [{'id': PORT, 'address': 'fa:16:3e:00:00:01', 'type': 'ovs_hybrid', 'bridge': 'br-int', 'mtu': 1450,
                  'network': {'id': 'net-1', 'label': 'private', 'cidr': '10.0.0.0/24', 'gateway': '10.0.0.1',
                              'dhcp_server': '10.0.0.2', 'ips': ['10.0.0.5', 'fd00::5'],
                              'subnets': [{'cidr': 'fd00::/64', 'gateway': 'fd00::1'}]}},
                 {'id': 'port-2', 'address': 'fa:16:3e:00:00:02', 'type': 'bridge', 'bridge': 'brq100', 'vlan': 100,
                  'physical_interface': 'eth1'}],
        'volumes': [{'id': VOLUME_ID, 'device_name': 'vdb', 'target_portal': '127.0.0.1:3260',
                     'target_iqn': 'iqn.2026-11.test.kvmhost:vol', 'target_lun': 1, 'transport': 'qemu',
                     'auth': {'username': 'u', 'password': 'secret-pw'}}],
        'security_groups': [{'name': 'default', 'rules': [
            {'protocol': 'tcp', 'port_range_min': 22, 'port_range_max': 22, 'remote_ip_prefix': '0.0.0.0/0',
             'ethertype': 'IPv4'},
            {'direction': 'egress', 'ethertype': 'IPv6'}]}],
    }
    spec.update(changes)
    return spec


# ---------------------------------------------------------------- merged()

def test_merged_joins_the_parts_and_the_modules_own_options_in_order():
    spec = merged(STATE_STORE, LIBVIRT, uuid=dict(type='str'), live=dict(type='bool', default=True))
    assert list(spec) == ['state_db', 'libvirt_uri', 'uuid', 'live']
    assert spec['state_db'] == {'type': 'path', 'default': DEFAULT_STATE_DB}
    assert spec['libvirt_uri'] == {'type': 'str', 'default': 'qemu:///system'}
    assert spec['live'] == {'type': 'bool', 'default': True}
    assert merged() == {}
    assert merged(SHUTDOWN) == SHUTDOWN


def test_merged_refuses_an_option_defined_twice():
    # A second definition would replace the first whole (its default too): a mistake, said at import time.
    with pytest.raises(ValueError, match='option shutdown_timeout is defined twice'):
        merged(SHUTDOWN, shutdown_timeout=dict(type='int'))
    with pytest.raises(ValueError, match='option libvirt_uri is defined twice'):
        merged(LIBVIRT, SHUTDOWN, dict(libvirt_uri=dict(type='str', default='test:///default')))


def test_merged_copies_each_definition_so_a_module_cannot_change_the_shared_parts():
    spec = merged(LIBVIRT, STATE_STORE)
    spec['libvirt_uri']['default'] = 'qemu:///session'
    spec['state_db']['required'] = True
    assert LIBVIRT['libvirt_uri'] == {'type': 'str', 'default': 'qemu:///system'}
    assert STATE_STORE['state_db'] == {'type': 'path', 'default': DEFAULT_STATE_DB}
    assert spec['libvirt_uri'] is not LIBVIRT['libvirt_uri']


def test_merged_copies_the_nested_options_too():
    spec = merged(dict(volume=dict(type='dict', options=VOLUME)))
    spec['volume']['options']['id']['required'] = False
    assert VOLUME['id'].get('required') is True


# ---------------------------------------------------------------- the specs, as Ansible validates them

def options_of(spec, prefix=''):
    """Every (dotted name, definition) of a spec, suboptions included."""
    for name, definition in spec.items():
        yield prefix + name, definition
        if definition.get('options'):
            yield from options_of(definition['options'], prefix + name + '.')


@pytest.mark.parametrize('name', sorted(SPECS))
def test_every_type_is_one_ansible_knows_and_every_default_is_a_choice(name):
    for option, definition in options_of(SPECS[name]):
        assert definition.get('type', 'str') in DEFAULT_TYPE_VALIDATORS, option
        if definition.get('type') == 'list':
            assert definition.get('elements') in DEFAULT_TYPE_VALIDATORS, option
        else:
            assert 'elements' not in definition, option
        if definition.get('options'):
            assert definition['type'] == 'dict' or definition.get('elements') == 'dict', option
        if 'choices' in definition and 'default' in definition:
            assert definition['default'] in definition['choices'], option
        assert not (definition.get('required') and 'default' in definition), option


@pytest.mark.parametrize('spec, defaults', [
    (LIBVIRT, {'libvirt_uri': 'qemu:///system'}),
    (SHUTDOWN, {'shutdown_timeout': 60, 'retry_interval': 10}),
    (INSTANCES_PATH, {'instances_path': '/var/lib/kvmhost/instances'}),
    (STATE_STORE, {'state_db': DEFAULT_STATE_DB}),
])
def test_the_shared_options_validate_to_their_defaults(spec, defaults):
    result = validate(spec, {})
    assert result.error_messages == []
    assert result.validated_parameters == defaults


def test_the_shared_options_convert_as_their_types_say():
    result = validate(merged(SHUTDOWN, STATE_STORE), {'shutdown_timeout': '30', 'state_db': '~/state.sqlite3'})
    assert result.error_messages == []
    assert result.validated_parameters['shutdown_timeout'] == 30
    # type path expands the user's home
    assert not result.validated_parameters['state_db'].startswith('~')
    assert result.validated_parameters['state_db'].endswith('/state.sqlite3')
    result = validate(SHUTDOWN, {'retry_interval': 'soon'})
    assert len(result.error_messages) == 1 and "argument 'retry_interval' is of type str" in result.error_messages[0]


def test_a_realistic_instance_is_accepted_with_the_suboption_defaults_filled_in():
    result = validate(INSTANCE, instance())
    assert result.error_messages == []
    checked = result.validated_parameters
    assert checked['flavor'] == {'vcpus': 1, 'memory_mb': 192, 'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0,
                                 'name': 'm1.tiny'}
    assert checked['image']['kernel'] is None
    assert checked['vifs'][0]['network']['subnets'] == [{'cidr': 'fd00::/64', 'gateway': 'fd00::1', 'dhcp_server': None}]
    assert checked['vifs'][1]['network'] is None and checked['vifs'][1]['vlan'] == 100
    assert checked['volumes'][0]['auth'] == {'method': 'CHAP', 'username': 'u', 'password': 'secret-pw'}
    assert [rule['direction'] for rule in checked['security_groups'][0]['rules']] == ['ingress', 'egress']


def test_a_volume_transport_defaults_to_host_and_its_password_is_no_log():
    volume = {'id': VOLUME_ID, 'device_name': 'vdc', 'target_portal': '[fd00::10]:3260',
              'target_iqn': 'iqn.2026-11.test.kvmhost:vol', 'target_lun': '2', 'auth': {'password': 'secret-pw'}}
    result = validate(VOLUME, volume)
    assert result.error_messages == []
    assert result.validated_parameters['transport'] == 'host'
    assert result.validated_parameters['target_lun'] == 2
    # pylint: disable-next=protected-access
    assert 'secret-pw' in result._no_log_values  # what AnsibleModule masks in its output


def test_only_the_instance_spec_options_are_required():
    result = validate(INSTANCE, {'uuid': UUID})
    assert result.error_messages == ['missing required arguments: flavor, image, name']
    assert validate(INSTANCE, instance(vifs=None, volumes=None, security_groups=None)).error_messages == []


@pytest.mark.parametrize('changes, fields', [
    (dict(flavor={'vcpus': 'two', 'memory_mb': 192}), ["argument 'vcpus' is of type str found in 'flavor'"]),
    (dict(flavor={'vcpus': 1}), ["missing required arguments: memory_mb found in flavor"]),
    (dict(image={'source': 'https://images.example/cirros.img'}), ['missing required arguments: id found in image']),
    (dict(vifs=[{'id': PORT, 'address': 'fa:16:3e:00:00:01', 'type': 'ovs', 'vlan': 'one hundred'}]),
     ["argument 'vlan' is of type str found in 'vifs'"]),
    (dict(vifs=[{'id': PORT, 'address': 'fa:16:3e:00:00:01', 'type': 'tap'}]),
     ['value of type must be one of: %s, got: tap found in vifs' % ', '.join(VIF_TYPES)]),
    (dict(volumes=[dict(instance()['volumes'][0], target_lun='first')]),
     ["argument 'target_lun' is of type str found in 'volumes'"]),
    (dict(volumes=[dict(instance()['volumes'][0], auth={'method': 'PAP'})]),
     ['value of method must be one of: CHAP, got: PAP found in volumes -> auth']),
    (dict(security_groups=[{'rules': [{'port_range_min': 'ssh'}]}]),
     ["argument 'port_range_min' is of type str found in 'security_groups -> rules'"]),
])
def test_a_bad_instance_is_refused_naming_the_field(changes, fields):
    messages = validate(INSTANCE, instance(**changes)).error_messages
    assert len(messages) == len(fields), messages
    for message, field in zip(messages, fields):
        assert message.startswith(field), messages


def test_a_key_the_instance_spec_does_not_name_is_refused():
    # A misspelt rule key would otherwise open a port range nobody asked for.
    rules = [{'protocol': 'tcp', 'port_range_mn': 22}]
    result = validate(INSTANCE, instance(security_groups=[{'name': 'default', 'rules': rules}]))
    assert result.unsupported_parameters == {('security_groups', 'rules', 'port_range_mn')}
    assert result.error_messages == ['security_groups.rules.port_range_mn. Supported parameters include: direction, '
                                     'ethertype, port_range_max, port_range_min, protocol, remote_ip_prefix.']
    result = validate(INSTANCE, instance(colour='blue'))
    assert result.unsupported_parameters == {'colour'}
    assert result.error_messages == ['colour. Supported parameters include: flavor, image, name, security_groups, '
                                     'uuid, vifs, volumes.']
