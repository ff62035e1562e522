# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The instances inventory plugin over a fake libvirt.

The domain XML is built by the collection's own builder (domain_xml.build_domain_xml), so these tests follow the
format the modules write; foreign domains (no metadata, Nova's own metadata) must be skipped.

The pure functions are called here; the inventory itself (variables, groups, compose, duplicate names, caching)
is built by ``ansible-inventory``, as a user runs it, with a fake ``libvirt`` module first on its Python path that
serves the domains this test writes into a JSON file. (In this process the plugin cannot go through Ansible's
plugin loader: pytest imports ``ansible_collections`` as a plain package, which the collection loader refuses.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip('lxml.etree')  # the builder needs it; the plugin itself reads with ElementTree

from ansible.errors import AnsibleParserError  # noqa: E402

from ansible_collections.kvmhost.lifecycle.plugins.inventory import instances as plugin_module  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_spec import check_domain_spec  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import build_domain_xml  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ANSIBLE_INVENTORY = os.path.join(os.path.dirname(sys.executable), 'ansible-inventory')

WEB = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
DB = '5b1f7e0c-2f4e-4c55-8f0c-0d6a3c6c8e11'
TWIN = '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a'
PORT = '8dbfeeff-e21c-4b3d-b527-77845d2a998b'
OVS_PORT = '3c0de0f5-8a51-4b0e-9c43-1c2d3e4f5a6b'
RUNNING, PAUSED, SHUTOFF, CRASHED = 1, 3, 5, 6  # virDomainState


class FakeLibvirtError(Exception):
    def __init__(self, message, code=1):
        super(FakeLibvirtError, self).__init__(message)
        self.code = code

    def get_error_message(self):
        return str(self)

    def get_error_code(self):
        return self.code


class FakeDomain(object):
    def __init__(self, xml, state=SHUTOFF, uuid=None, addresses=None):
        self.xml, self._state, self.uuid, self.addresses = xml, state, uuid, addresses

    def XMLDesc(self, flags=0):  # noqa: N802 (libvirt's names)
        if self.xml is None:
            raise FakeLibvirtError('Domain not found', code=42)
        return self.xml

    def state(self):
        return [self._state, 0]

    def UUIDString(self):  # noqa: N802
        return self.uuid or '00000000-0000-0000-0000-000000000000'

    def interfaceAddresses(self, source, flags=0):  # noqa: N802
        if self.addresses is None:
            raise FakeLibvirtError('Guest agent is not responding')
        return self.addresses


class FakeConnection(object):
    def __init__(self, domains):
        self.domains, self.closed = domains, False

    def listAllDomains(self, flags=0):  # noqa: N802
        return list(self.domains)

    def close(self):
        self.closed = True


def spec(uuid=WEB, name='web-1', image='demo-guest-v1', vifs=(), flavor_name='m1.tiny'):
    return {'uuid': uuid, 'name': name,
            'flavor': {'name': flavor_name, 'vcpus': 1, 'memory_mb': 192, 'root_gb': 1, 'ephemeral_gb': 0,
                       'swap_mb': 0},
            'image': {'id': image, 'source': '/var/lib/kvmhost/images/%s.qcow2' % image,
                      'checksum': 'sha256:' + '0' * 64},
            'vifs': list(vifs), 'volumes': []}


def vif(port=PORT, mac='fa:16:3e:81:a8:b4', vif_type='ovs_hybrid', ips=('10.10.10.13',)):
    return {'id': port, 'address': mac, 'type': vif_type, 'bridge': 'br-int', 'mtu': 1450,
            'network': {'id': 'd0068b89-fb82-4864-99ac-0caa105fd660', 'label': 'internal', 'cidr': '10.10.10.0/24',
                        'gateway': '10.10.10.1', 'ips': list(ips)}}


def domain_xml(local_id=1, **changes):
    return build_domain_xml(check_domain_spec({'instance': spec(**changes), 'local_id': local_id, 'virt_type': 'qemu',
                                               'creation_time': '2026-01-02 03:04:05'}))


FOREIGN_XML = """<domain type='kvm'><name>plain</name><uuid>11111111-2222-3333-4444-555555555555</uuid>
<memory>1024</memory><devices/></domain>"""
NOVA_XML = """<domain type='kvm'><name>instance-00000001</name><uuid>22222222-3333-4444-5555-666666666666</uuid>
<metadata><nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
<nova:package version="27.1.0"/><nova:name>nova-made</nova:name></nova:instance></metadata>
<memory>1024</memory><devices/></domain>"""


FAKE_LIBVIRT = textwrap.dedent('''
    """A stand-in for libvirt-python: the connections and domains of the JSON file $KVMHOST_FAKE_LIBVIRT."""
    import builtins
    import json
    import os

    VIR_ERR_NO_DOMAIN = 42


    class libvirtError(Exception):
        def __init__(self, message, code=1):
            super().__init__(message)
            self.code = code

        def get_error_message(self):
            return str(self)

        def get_error_code(self):
            return self.code


    class _Domain:
        def __init__(self, entry):
            self.entry = entry

        def XMLDesc(self, flags=0):
            if self.entry.get('xml') is None:
                raise libvirtError('Domain not found', VIR_ERR_NO_DOMAIN)
            return self.entry['xml']

        def state(self):
            return [self.entry.get('state', 5), 0]

        def UUIDString(self):
            return '00000000-0000-0000-0000-000000000000'

        def interfaceAddresses(self, source, flags=0):
            if self.entry.get('addresses') is None:
                raise libvirtError('Guest agent is not responding')
            return self.entry['addresses']


    class _Connection:
        def __init__(self, domains):
            self.domains = domains

        def listAllDomains(self, flags=0):
            return [_Domain(entry) for entry in self.domains]

        def close(self):
            return 0


    def _open(uri, read_only):
        path = os.environ['KVMHOST_FAKE_LIBVIRT']
        with builtins.open(path) as handle:
            hosts = json.load(handle)
        with builtins.open(path + '.opened', 'a') as handle:
            handle.write(json.dumps([uri, read_only]) + '\\n')
        host = hosts[uri]
        if 'error' in host:
            raise libvirtError(host['error'])
        return _Connection(host['domains'])


    def openReadOnly(uri):
        return _open(uri, True)


    def open(uri):
        return _open(uri, False)
    ''')


def plain(value):
    """A value of ansible-inventory --list without its untrusted-string wrappers ({"__ansible_unsafe": text})."""
    if isinstance(value, dict):
        if list(value) == ['__ansible_unsafe']:
            return value['__ansible_unsafe']
        return dict((key, plain(item)) for key, item in value.items())
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


class Inventory(object):
    """What ansible-inventory --list printed: hosts, their variables and groups.

    The strings read from libvirt are untrusted (never templated): --list shows them wrapped, ``plain`` unwraps them.
    """

    def __init__(self, listing, stderr, opened):
        self.listing, self.stderr, self.opened = listing, stderr, opened
        self.raw_hostvars = listing['_meta']['hostvars']
        self.hostvars = plain(self.raw_hostvars)
        self.hosts = sorted(self.hostvars)

    def groups_of(self, host):
        return sorted(name for name, group in self.listing.items()
                      if name != '_meta' and host in group.get('hosts', []))


@pytest.fixture
def run_inventory(tmp_path):
    """run(config, {uri: [domain entries] or an error message}, flush=False, sources=()) -> Inventory.

    A domain entry is {xml, state, addresses}; a failing inventory raises AssertionError with ansible's stderr.
    """
    fake_dir = tmp_path / 'fake'
    fake_dir.mkdir()
    (fake_dir / 'libvirt.py').write_text(FAKE_LIBVIRT)
    hosts_file = tmp_path / 'libvirt.json'
    runs = []

    def run(config, connections, flush=False, sources=(), expect_failure=False):
        hosts_file.write_text(json.dumps(dict(
            (uri, {'error': value} if isinstance(value, str) else {'domains': value})
            for uri, value in connections.items())))
        opened = tmp_path / 'libvirt.json.opened'
        if opened.exists():
            opened.unlink()
        path = tmp_path / 'kvmhost_instances.yml'
        path.write_text(json.dumps(dict(config, plugin='kvmhost.lifecycle.instances')))
        env = dict(os.environ, KVMHOST_FAKE_LIBVIRT=str(hosts_file), PYTHONPATH=str(fake_dir),
                   ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_INVENTORY_UNPARSED_FAILED='true',
                   ANSIBLE_NOCOLOR='1')
        command = [ANSIBLE_INVENTORY]
        for source in list(sources) + [str(path)]:
            command += ['-i', source]
        command += ['--list'] + (['--flush-cache'] if flush else [])
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
        runs.append(done)
        if expect_failure:
            assert done.returncode != 0, done.stdout
            return done.stderr
        assert done.returncode == 0, done.stderr
        opened_uris = [tuple(json.loads(line)) for line in opened.read_text().splitlines()] if opened.exists() else []
        return Inventory(json.loads(done.stdout), done.stderr, opened_uris)
    return run


def entry(xml, state=SHUTOFF, addresses=None):
    return {'xml': xml, 'state': state, 'addresses': addresses}


# ---------------------------------------------------------------- the XML, read

def test_parse_reads_the_metadata_the_builder_writes():
    facts = plugin_module.parse_instance_xml(domain_xml(
        local_id=0x2a, vifs=[vif(), vif(port=OVS_PORT, mac='fa:16:3e:00:00:02', vif_type='ovs',
                                        ips=('192.0.2.7', '2001:db8::7'))]))
    assert facts == {
        'uuid': WEB, 'name': 'web-1', 'domain_name': 'instance-0000002a', 'created_at': '2026-01-02 03:04:05',
        'flavor': {'name': 'm1.tiny', 'vcpus': 1, 'memory_mb': 192, 'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0},
        'image': 'demo-guest-v1',
        'ports': [{'id': PORT, 'mac': 'fa:16:3e:81:a8:b4', 'ips': ['10.10.10.13']},
                  {'id': OVS_PORT, 'mac': 'fa:16:3e:00:00:02', 'ips': ['192.0.2.7', '2001:db8::7']}],
        'ips': ['10.10.10.13', '192.0.2.7', '2001:db8::7'],
        'macs': ['fa:16:3e:81:a8:b4', 'fa:16:3e:00:00:02'],
    }


@pytest.mark.parametrize('xml', [FOREIGN_XML, NOVA_XML], ids=['no metadata', 'nova metadata'])
def test_domains_without_the_collections_metadata_are_no_instances(xml):
    assert plugin_module.parse_instance_xml(xml) is None


def test_malformed_xml_is_refused():
    with pytest.raises(ValueError, match='not well-formed'):
        plugin_module.parse_instance_xml('<domain><name>x</name>')


@pytest.mark.parametrize('state, power, code, vm_state', [
    (RUNNING, 'running', 1, 'active'), (SHUTOFF, 'shutdown', 4, 'stopped'), (PAUSED, 'paused', 3, 'paused'),
    (CRASHED, 'crashed', 6, 'error')])
def test_states(state, power, code, vm_state):
    found = plugin_module.read_host_instances(FakeConnection([FakeDomain(domain_xml(), state)]), 'kvm-1',
                                              'qemu:///system', FakeLibvirtError)
    assert [(item['power_state'], item['power_state_code'], item['vm_state'], item['host'])
            for item in found] == [(power, code, vm_state, 'kvm-1')]


def test_a_domain_undefined_while_read_is_left_out():
    found = plugin_module.read_host_instances(FakeConnection([FakeDomain(None), FakeDomain(domain_xml())]), 'kvm-1',
                                              'qemu:///system', FakeLibvirtError)
    assert [item['uuid'] for item in found] == [WEB]


def test_guest_addresses_fill_in_for_a_running_instance_without_fixed_ips():
    addresses = {'lo': {'hwaddr': '00:00:00:00:00:00', 'addrs': [{'type': 0, 'addr': '127.0.0.1', 'prefix': 8}]},
                 'eth0': {'hwaddr': 'fa:16:3e:81:a8:b4', 'addrs': [{'type': 1, 'addr': 'fe80::1', 'prefix': 64},
                                                                   {'type': 0, 'addr': '192.0.2.9', 'prefix': 24}]}}
    xml = domain_xml(vifs=[vif(ips=())])

    def ips(domain, source='agent'):
        found = plugin_module.read_host_instances(FakeConnection([domain]), 'kvm-1', 'qemu:///system',
                                                  FakeLibvirtError, source)
        return found[0]['ips']
    assert ips(FakeDomain(xml, RUNNING, addresses=addresses)) == ['192.0.2.9']
    assert ips(FakeDomain(xml, RUNNING, addresses=addresses), source='none') == []
    assert ips(FakeDomain(xml, SHUTOFF, addresses=addresses)) == []  # only a running guest is asked
    assert ips(FakeDomain(xml, RUNNING, addresses=None)) == []  # no agent: no IP, no failure


@pytest.mark.parametrize('hosts, message', [
    ([], 'non-empty list'),
    (['kvm-1'], r'hosts\[0\] must be a dict'),
    ([{'name': 'kvm-1', 'url': 'x'}], 'unknown keys url'),
    ([{'uri': 'qemu:///system'}], r'hosts\[0\].name must be'),
    ([{'name': 'kvm-1'}, {'name': 'kvm-1'}], 'listed twice'),
])
def test_bad_hosts_are_refused(hosts, message):
    with pytest.raises(AnsibleParserError, match=message):
        plugin_module.check_hosts(hosts)


def test_hosts_default_to_this_machines_libvirt():
    assert plugin_module.check_hosts([{'name': 'kvm-1'}, {'name': 'kvm-2', 'uri': 'qemu+ssh://root@kvm-2/system'}]) == [
        {'name': 'kvm-1', 'uri': 'qemu:///system'}, {'name': 'kvm-2', 'uri': 'qemu+ssh://root@kvm-2/system'}]


def test_hostnames():
    items = [{'uuid': WEB, 'name': 'web-1', 'host': 'kvm-1'}, {'uuid': TWIN, 'name': 'web-1', 'host': 'kvm-2'},
             {'uuid': DB, 'name': '', 'host': 'kvm-1'}]
    names, clashes = plugin_module.assign_hostnames(items, 'name', 'uuid')
    assert names == {WEB: WEB, TWIN: TWIN, DB: DB} and sorted(clashes) == ['web-1']
    names, _clashes = plugin_module.assign_hostnames(items[:1], 'name', 'uuid', taken={'web-1'})
    assert names == {WEB: WEB}
    assert plugin_module.assign_hostnames(items[:1], 'name', 'uuid') == ({WEB: 'web-1'}, {})
    assert plugin_module.assign_hostnames(items, 'uuid', 'error')[0] == {WEB: WEB, TWIN: TWIN, DB: DB}
    with pytest.raises(AnsibleParserError, match='not unique: web-1 .%s on kvm-1, %s on kvm-2.' % (WEB, TWIN)):
        plugin_module.assign_hostnames(items, 'name', 'error')


def test_verify_file_takes_only_its_names(tmp_path):
    plugin = plugin_module.InventoryModule()
    for name, wanted in (('kvmhost_instances.yml', True), ('instances.yaml', True), ('hosts.yml', False),
                         ('instances.ini', False)):
        path = tmp_path / name
        path.write_text('plugin: kvmhost.lifecycle.instances\n')
        assert plugin.verify_file(str(path)) is wanted, name


# ---------------------------------------------------------------- the inventory, by ansible-inventory

LOCAL = {'hosts': [{'name': 'kvm-1'}]}
TWO_HOSTS = {'hosts': [{'name': 'kvm-1'}, {'name': 'kvm-2', 'uri': 'qemu+ssh://root@kvm-2/system'}]}


def test_instances_become_hosts_with_their_variables_and_groups(run_inventory):
    found = run_inventory(LOCAL, {'qemu:///system': [
        entry(domain_xml(vifs=[vif()]), RUNNING),
        entry(domain_xml(local_id=2, uuid=DB, name='db-1', image='demo-guest-v2')),
        entry(FOREIGN_XML, RUNNING), entry(NOVA_XML, RUNNING)]})
    assert found.hosts == ['db-1', 'web-1']
    assert found.opened == [('qemu:///system', True)]  # read-only
    web = found.hostvars['web-1']
    assert web == {
        'kvmhost_uuid': WEB, 'kvmhost_name': 'web-1', 'kvmhost_host': 'kvm-1', 'kvmhost_libvirt_uri': 'qemu:///system',
        'kvmhost_domain_name': 'instance-00000001', 'kvmhost_libvirt_state': 'running',
        'kvmhost_power_state': 'running', 'kvmhost_power_state_code': 1, 'kvmhost_vm_state': 'active',
        'kvmhost_flavor': {'name': 'm1.tiny', 'vcpus': 1, 'memory_mb': 192, 'root_gb': 1, 'ephemeral_gb': 0,
                           'swap_mb': 0},
        'kvmhost_image': 'demo-guest-v1', 'kvmhost_created_at': '2026-01-02 03:04:05',
        'kvmhost_ports': [{'id': PORT, 'mac': 'fa:16:3e:81:a8:b4', 'ips': ['10.10.10.13']}],
        'kvmhost_ips': ['10.10.10.13'], 'ansible_host': '10.10.10.13'}
    # What libvirt said is data, not a template: a display name like "{{ lookup('pipe', 'id') }}" stays text.
    assert found.raw_hostvars['web-1']['kvmhost_name'] == {'__ansible_unsafe': 'web-1'}
    db = found.hostvars['db-1']
    assert (db['kvmhost_vm_state'], db['kvmhost_power_state'], db['kvmhost_power_state_code'],
            db['kvmhost_libvirt_state']) == ('stopped', 'shutdown', 4, 'shutoff')
    assert db['kvmhost_ips'] == [] and 'ansible_host' not in db
    assert found.groups_of('web-1') == ['kvmhost_host_kvm_1', 'kvmhost_image_demo_guest_v1', 'kvmhost_instances',
                                        'kvmhost_vm_state_active']
    assert found.groups_of('db-1') == ['kvmhost_host_kvm_1', 'kvmhost_image_demo_guest_v2', 'kvmhost_instances',
                                       'kvmhost_vm_state_stopped']


def test_options_name_by_uuid_without_ansible_host_and_default_groups(run_inventory):
    found = run_inventory(dict(LOCAL, hostname='uuid', set_ansible_host=False, default_groups=False),
                          {'qemu:///system': [entry(domain_xml(vifs=[vif()]), RUNNING)]})
    assert found.hosts == [WEB]
    assert 'ansible_host' not in found.hostvars[WEB] and found.hostvars[WEB]['kvmhost_name'] == 'web-1'
    assert found.groups_of(WEB) == ['kvmhost_instances']


def test_compose_groups_and_keyed_groups(run_inventory):
    config = dict(LOCAL, compose={'memory_mb': 'kvmhost_flavor.memory_mb * 2', 'ansible_user': "'debian'"},
                  groups={'web': "kvmhost_name.startswith('web-')", 'up': "kvmhost_power_state == 'running'"},
                  keyed_groups=[{'key': 'kvmhost_power_state', 'prefix': 'power'},
                                {'key': 'kvmhost_flavor.name', 'prefix': 'flavor', 'default_value': 'none'}])
    found = run_inventory(config, {'qemu:///system': [
        entry(domain_xml(vifs=[vif()]), RUNNING), entry(domain_xml(local_id=2, uuid=DB, name='db-1', flavor_name=None))]})
    assert found.hostvars['web-1']['memory_mb'] == 384 and found.hostvars['db-1']['ansible_user'] == 'debian'
    assert set(found.groups_of('web-1')) >= {'web', 'up', 'power_running', 'flavor_m1_tiny'}
    assert set(found.groups_of('db-1')) >= {'power_shutdown', 'flavor_none'}
    assert not set(found.groups_of('db-1')) & {'web', 'up'}


def test_strict_fails_on_a_bad_compose(run_inventory):
    domains = {'qemu:///system': [entry(domain_xml())]}
    found = run_inventory(dict(LOCAL, compose={'x': 'kvmhost_nothing.here'}), domains)
    assert 'x' not in found.hostvars['web-1']
    stderr = run_inventory(dict(LOCAL, strict=True, compose={'x': 'kvmhost_nothing.here'}), domains,
                           expect_failure=True)
    assert 'Could not set x for host web-1' in stderr


def test_duplicate_display_names_are_named_by_uuid_on_every_host(run_inventory):
    connections = {'qemu:///system': [entry(domain_xml()), entry(domain_xml(local_id=2, uuid=DB, name='db-1'))],
                   'qemu+ssh://root@kvm-2/system': [entry(domain_xml(uuid=TWIN))]}
    found = run_inventory(TWO_HOSTS, connections)
    assert found.hosts == sorted([WEB, TWIN, 'db-1'])  # neither of the two web-1 wins the name
    assert found.hostvars[TWIN]['kvmhost_name'] == 'web-1' and found.hostvars[TWIN]['kvmhost_host'] == 'kvm-2'
    assert 'kvmhost_host_kvm_2' in found.groups_of(TWIN)
    assert 'the display name web-1 is not unique' in ' '.join(found.stderr.split())
    stderr = run_inventory(dict(TWO_HOSTS, duplicate_names='error'), connections, expect_failure=True)
    assert 'display names are not unique: web-1' in ' '.join(stderr.split())


def test_a_name_an_earlier_source_has_is_not_merged_into(run_inventory, tmp_path):
    other = tmp_path / 'other.yml'
    other.write_text('all:\n  hosts:\n    web-1:\n      from_elsewhere: true\n')
    found = run_inventory(LOCAL, {'qemu:///system': [entry(domain_xml())]}, sources=[str(other)])
    assert found.hostvars['web-1'] == {'from_elsewhere': True}
    assert found.hostvars[WEB]['kvmhost_name'] == 'web-1'


def test_interface_addresses_from_the_agent_open_read_write(run_inventory):
    addresses = {'eth0': {'hwaddr': 'fa:16:3e:81:a8:b4', 'addrs': [{'type': 0, 'addr': '192.0.2.9', 'prefix': 24}]}}
    found = run_inventory(dict(LOCAL, interface_addresses='agent'),
                          {'qemu:///system': [entry(domain_xml(vifs=[vif(ips=())]), RUNNING, addresses)]})
    assert found.hostvars['web-1']['ansible_host'] == '192.0.2.9'
    assert found.opened == [('qemu:///system', False)]


def test_an_unreachable_host_fails_or_is_skipped(run_inventory):
    connections = {'qemu:///system': [entry(domain_xml())],
                   'qemu+ssh://root@kvm-2/system': 'Cannot recv data: Connection refused'}
    stderr = run_inventory(TWO_HOSTS, connections, expect_failure=True)
    assert ('cannot read the domains of host kvm-2 at qemu+ssh://root@kvm-2/system: Cannot recv data'
            in ' '.join(stderr.split()))
    found = run_inventory(dict(TWO_HOSTS, skip_unreachable=True), connections)
    assert found.hosts == ['web-1'] and 'its instances are left out' in ' '.join(found.stderr.split())


def test_missing_libvirt_is_named(run_inventory, tmp_path):
    run_inventory(LOCAL, {'qemu:///system': []})  # writes the fake; now make it fail to import
    (tmp_path / 'fake' / 'libvirt.py').write_text("raise ImportError(\"No module named 'libvirt'\")\n")
    stderr = ' '.join(run_inventory(LOCAL, {'qemu:///system': []}, expect_failure=True).split())
    assert 'needs libvirt-python (the libvirt Python binding)' in stderr
    assert 'apt install python3-libvirt' in stderr


def test_the_cache_serves_the_instances_until_flushed(run_inventory, tmp_path):
    config = dict(LOCAL, cache=True, cache_plugin='ansible.builtin.jsonfile', cache_connection=str(tmp_path / 'cache'),
                  cache_timeout=600)
    found = run_inventory(config, {'qemu:///system': [entry(domain_xml(), RUNNING)]})
    assert found.hosts == ['web-1'] and found.opened == [('qemu:///system', True)]
    # Cached: libvirt is not asked at all (an unreachable host does not matter, a new domain is not seen).
    found = run_inventory(config, {'qemu:///system': 'down'})
    assert found.hosts == ['web-1'] and found.opened == []
    assert found.hostvars['web-1']['kvmhost_power_state'] == 'running'
    # --flush-cache (as meta: refresh_inventory): read again, and the cache rewritten.
    found = run_inventory(config, {'qemu:///system': [entry(domain_xml(uuid=DB, name='db-1'))]}, flush=True)
    assert found.hosts == ['db-1']
    found = run_inventory(config, {'qemu:///system': 'down'})
    assert found.hosts == ['db-1'] and found.opened == []
