# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""instance_transfer: an instance directory from one instances path to another, as a cold migration carries it.

The files, the image cache and the state stores are real (tmp_path), and so is qemu-img (this machine has it:
the overlays are made and rebased by it); libvirt is a fake connection with the domains given, since these
tests make no domain. tests/integration and the fleet scenario move a booted instance between real hosts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

pytest.importorskip('libvirt')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import StateStore  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.image_cache import hash_file  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.storage.instance_transfer import (  # noqa: E402
    InstanceTransferDriver, check_manifest, incoming_path)

QEMU_IMG, QEMU_IO = shutil.which('qemu-img'), shutil.which('qemu-io')
pytestmark = pytest.mark.skipif(QEMU_IO is None, reason='qemu-img and qemu-io (qemu-utils) are not installed')

UUID = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
BASE = 'a' * 40  # a base name as the image cache names them (sha1 of the image id)
REQUEST = 'req-5a1f0c3e-7d1b-4c2a-9e8f-0a1b2c3d4e5f'


class Module(object):
    """What a driver uses of AnsibleModule, with real commands."""

    def __init__(self, params, check_mode=False):
        self.params, self.check_mode, self._diff = params, check_mode, True

    @staticmethod
    def get_bin_path(name, required=False):  # pylint: disable=unused-argument
        return shutil.which(name)

    @staticmethod
    def run_command(argv, environ_update=None):
        done = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, **(environ_update or {})),
                              check=False)
        return done.returncode, done.stdout, done.stderr

    def fail_json(self, msg, **_kwargs):
        raise AssertionError(msg)


class Domain(object):
    def __init__(self, uuid, name='instance-00000001', running=False):
        self._uuid, self._name, self._running = uuid, name, running

    def UUIDString(self):
        return self._uuid

    def name(self):
        return self._name

    def state(self):
        return [1 if self._running else 5, 0]

    def isActive(self):
        return self._running

    def undefine(self):
        self.undefined = True


class Connection(object):
    domains = []

    def __init__(self, _uri):
        pass

    @property
    def conn(self):
        return self

    def listAllDomains(self, _flags):
        return list(self.domains)

    def domain_by_uuid(self, uuid):
        return next((domain for domain in self.domains if domain.UUIDString() == uuid), None)

    def close(self):
        pass


class Host(object):
    """One KVM host's instances path and state store under tmp_path."""

    def __init__(self, root, domains=()):
        self.instances = root / 'instances'
        (self.instances / '_base').mkdir(parents=True)
        self.state_db = str(root / 'state.sqlite3')
        self.domains = list(domains)

    def run(self, state, check_mode=False, **params):
        values = dict(uuid=UUID, state=state, manifest=None, host=None, request_id=None, after_shutdown=False,
                      instances_path=str(self.instances), state_db=self.state_db, libvirt_uri='qemu:///system')
        values.update(params)
        connection = type('HostConnection', (Connection,), {'domains': self.domains})
        driver_class = type('Driver', (InstanceTransferDriver,), {'connection_class': connection})
        return driver_class(Module(values, check_mode)).outcome()


def qemu_img(*args):
    return subprocess.run([QEMU_IMG] + list(args), capture_output=True, text=True, check=True).stdout


def booted(tmp_path):
    """A source host with one instance: a raw base with its .info record, a qcow2 overlay on it with data, a
    console log and libvirt.xml; its record with a boot action; its domain shut off."""
    source = Host(tmp_path / 'source', [Domain(UUID)])
    base = source.instances / '_base' / BASE
    base.write_bytes(b'base image' * 1000)
    digest = hash_file(str(base), 'sha256')
    (source.instances / '_base' / (BASE + '.info')).write_text(json.dumps(
        {'image_id': 'guest-v1', 'checksum': 'sha256:' + digest, 'format': 'raw'}))
    directory = source.instances / UUID
    directory.mkdir()
    qemu_img('create', '-q', '-f', 'qcow2', '-b', str(base), '-F', 'raw', str(directory / 'disk'), '1M')
    subprocess.run([QEMU_IO, '-c', 'write -P 0x5a 0 64k', str(directory / 'disk')], capture_output=True,
                   check=True)
    (directory / 'console.log').write_text('login: ')
    (directory / 'libvirt.xml').write_text('<domain/>')
    with StateStore.open(source.state_db) as store:
        store.save_instance(UUID, {'name': 'web-1', 'vm_state': 'active', 'host': 'kvm1', 'power_state': 4,
                                   'image': {'id': 'guest-v1'}, 'flavor': {'vcpus': 1, 'memory_mb': 192}})
        store.set_network_info(UUID, [{'id': 'port-1', 'address': 'fa:16:3e:00:00:01'}])
        action = store.save_action(UUID, 'req-boot', action='create', start_time='2026-12-01T10:00:00.000000Z',
                                   finish_time='2026-12-01T10:01:00.000000Z')
        store.save_event(action['id'], 'spawning', start_time='2026-12-01T10:00:10.000000Z',
                         finish_time='2026-12-01T10:00:50.000000Z', result='Success', message='started')
    return source


def carry(manifest, source, received):
    """What migrate.yml's copy does: every file, and the bases the destination asked for, into the incoming dir."""
    incoming = received['incoming']
    for entry in manifest['files']:
        shutil.copyfile(os.path.join(str(source.instances), UUID, entry['name']), os.path.join(incoming, entry['name']))
    for name in received['needed_bases']:
        shutil.copyfile(str(source.instances / '_base' / name), os.path.join(incoming, '_base', name))


def travelled(tmp_path):
    """A booted source's instance, exported, and carried into a destination's incoming directory."""
    source = booted(tmp_path)
    manifest = source.run('exported')['manifest']
    destination = Host(tmp_path / 'destination')
    received = destination.run('receiving', manifest=manifest)
    carry(manifest, source, received)
    return manifest, destination, received


def test_an_instance_moves_with_its_base_data_and_history(tmp_path):
    source = booted(tmp_path)
    manifest = source.run('exported')['manifest']
    assert [entry['name'] for entry in manifest['files']] == ['console.log', 'disk', 'libvirt.xml']
    assert [(base['name'], base['used_by'], base['format']) for base in manifest['bases']] == [(BASE, ['disk'], 'raw')]
    assert manifest['record']['host'] == 'kvm1' and [a['request_id'] for a in manifest['actions']] == ['req-boot']
    # The destination: another instances path, and a domain that holds local id 1's name already.
    destination = Host(tmp_path / 'destination', [Domain('99999999-8888-4777-8666-555555555555')])
    received = destination.run('receiving', manifest=manifest)
    assert received['changed'] and received['needed_bases'] == [BASE] and received['cached_bases'] == []
    assert destination.run('receiving', manifest=manifest)['changed'] is False  # ready already
    carry(manifest, source, received)
    imported = destination.run('imported', manifest=manifest, host='kvm2', request_id=REQUEST)
    assert imported['changed'] and imported['bases'] == [BASE] and imported['rebased'] == ['disk']
    moved = destination.instances / UUID
    assert not os.path.exists(received['incoming'])
    assert sorted(os.listdir(moved)) == ['console.log', 'disk', 'libvirt.xml']
    info = json.loads(qemu_img('info', '--output=json', str(moved / 'disk')))
    assert info['full-backing-filename'] == str(destination.instances / '_base' / BASE)
    # The guest's data is the source's, read through the destination's base.
    read = subprocess.run([QEMU_IO, '-c', 'read -P 0x5a 0 64k', str(moved / 'disk')], capture_output=True, text=True,
                          check=True)
    assert 'read 65536/65536 bytes' in read.stdout and 'Pattern verification failed' not in read.stdout, read.stdout
    assert json.loads((destination.instances / '_base' / (BASE + '.info')).read_text())['image_id'] == 'guest-v1'
    with StateStore.open(destination.state_db) as store:
        record = store.get_instance(UUID)
        actions = store.list_actions(UUID)
        network_info = store.get_network_info(UUID)
    assert (record['host'], record['task_state'], record['vm_state'], record['local_id']) == (
        'kvm2', 'migrating', 'active', 2)  # local id 1's name is another domain's here
    assert [(action['action'], action['request_id']) for action in actions] == [
        ('create', 'req-boot'), ('migrate', REQUEST)]
    assert actions[0]['events'][0]['message'] == 'started' and actions[1]['events'][0]['event'] == 'receive_instance'
    assert network_info == [{'id': 'port-1', 'address': 'fa:16:3e:00:00:01'}]
    again = destination.run('imported', manifest=manifest, host='kvm2', request_id=REQUEST)
    assert again['changed'] is False
    # The source is untouched: its directory, base and record stay until the destination runs the instance.
    assert sorted(os.listdir(source.instances / UUID)) == ['console.log', 'disk', 'libvirt.xml']


def test_a_base_the_destination_caches_does_not_travel(tmp_path):
    source = booted(tmp_path)
    manifest = source.run('exported')['manifest']
    destination = Host(tmp_path / 'destination')
    for name in (BASE, BASE + '.info'):
        shutil.copyfile(str(source.instances / '_base' / name), str(destination.instances / '_base' / name))
    received = destination.run('receiving', manifest=manifest)
    assert received['needed_bases'] == [] and received['cached_bases'] == [BASE]
    carry(manifest, source, received)
    assert destination.run('imported', manifest=manifest, host='kvm2', request_id=REQUEST)['bases'] == []


def test_another_base_of_the_same_name_is_refused_before_anything_changes(tmp_path):
    source = booted(tmp_path)
    manifest = source.run('exported')['manifest']
    destination = Host(tmp_path / 'destination')
    (destination.instances / '_base' / BASE).write_bytes(b'another image')
    with pytest.raises(KvmhostError, match='manifest: the image cache here has another .* than the source'):
        destination.run('receiving', manifest=manifest)
    assert not os.path.exists(incoming_path(str(destination.instances), UUID))


@pytest.mark.parametrize('damage, expected', [
    (lambda path: path.write_bytes(path.read_bytes()[:-1]), 'the copy is incomplete'),
    (lambda path: path.write_bytes(b'x' + path.read_bytes()[1:]), 'the copy is damaged'),
    (os.unlink, 'did not arrive'),
])
def test_a_damaged_copy_is_refused_and_nothing_changes(tmp_path, damage, expected):
    manifest, destination, received = travelled(tmp_path)
    from pathlib import Path  # pylint: disable=import-outside-toplevel
    damage(Path(received['incoming']) / 'disk')
    with pytest.raises(KvmhostError, match=expected):
        destination.run('imported', manifest=manifest, host='kvm2', request_id=REQUEST)
    assert not os.path.exists(destination.instances / UUID) and os.listdir(destination.instances / '_base') == []
    with StateStore.open(destination.state_db) as store:
        assert store.get_instance(UUID) is None and store.list_actions(UUID) == []
    assert destination.run('absent')['changed'] and not os.path.exists(received['incoming'])
    assert destination.run('absent')['changed'] is False


def test_check_mode_imports_nothing(tmp_path):
    manifest, destination, received = travelled(tmp_path)
    predicted = destination.run('imported', check_mode=True, manifest=manifest, host='kvm2', request_id=REQUEST)
    assert predicted['changed'] and predicted['diff']['after'] == {'imported': True, 'path': str(
        destination.instances / UUID)}
    assert os.path.isdir(received['incoming']) and not os.path.exists(destination.instances / UUID)


def test_a_live_instance_on_the_destination_is_refused(tmp_path):
    manifest, destination, received = travelled(tmp_path)
    with StateStore.open(destination.state_db) as store:
        store.save_instance(UUID, {'name': 'web-1', 'vm_state': 'active'})
    with pytest.raises(KvmhostError, match='uuid: this host has instance .* already'):
        destination.run('imported', manifest=manifest, host='kvm2', request_id=REQUEST)
    destination.domains.append(Domain(UUID))
    with pytest.raises(KvmhostError, match='uuid: libvirt on this host has a domain with the UUID'):
        destination.run('imported', manifest=manifest, host='kvm2', request_id=REQUEST)


def test_a_directory_no_unfinished_migration_left_is_never_replaced(tmp_path):
    manifest, destination, _received = travelled(tmp_path)
    (destination.instances / UUID).mkdir()
    (destination.instances / UUID / 'disk').write_bytes(b'somebody else')
    with pytest.raises(KvmhostError, match='uuid: .* exists, and this host has no unfinished migration'):
        destination.run('imported', manifest=manifest, host='kvm2', request_id=REQUEST)
    assert (destination.instances / UUID / 'disk').read_bytes() == b'somebody else'


def test_the_leftover_of_an_unfinished_migration_is_replaced(tmp_path):
    source = booted(tmp_path)
    manifest = source.run('exported')['manifest']
    destination = Host(tmp_path / 'destination')
    with StateStore.open(destination.state_db) as store:
        store.save_instance(UUID, {'name': 'web-1', 'vm_state': 'active', 'task_state': 'migrating'})
    (destination.instances / UUID).mkdir()
    (destination.instances / UUID / 'disk').write_bytes(b'half a copy')
    received = destination.run('receiving', manifest=manifest)
    carry(manifest, source, received)
    # ... and the domain it defined before it was killed, shut off
    left = Domain(UUID)
    destination.domains.append(left)
    destination.run('imported', manifest=manifest, host='kvm2', request_id=REQUEST)
    assert (destination.instances / UUID / 'disk').read_bytes() != b'half a copy' and left.undefined


def test_the_source_refuses_a_running_domain_and_what_cannot_be_verified(tmp_path):
    source = booted(tmp_path)
    source.domains[0]._running = True
    with pytest.raises(KvmhostError, match='uuid: the domain of .* is not shut off'):
        source.run('exported')
    assert source.run('exported', check_mode=True, after_shutdown=True)['manifest']['uuid'] == UUID
    source.domains[0]._running = False
    os.symlink('/etc/passwd', str(source.instances / UUID / 'passwd'))
    with pytest.raises(KvmhostError, match='passwd is not a regular file'):
        source.run('exported')


@pytest.mark.parametrize('change, expected', [
    (lambda m: m.pop('files'), 'manifest: has no files'),
    (lambda m: m.update(uuid='0b7e1a52-44f1-4c37-8d0e-5e6f7a8b9c0d'), 'manifest.uuid: is the manifest of'),
    (lambda m: m['files'].append({'name': '../../etc/passwd', 'size': 1, 'sha256': '0' * 64}),
     r'manifest.files\[1\].name: .* is not a file name'),
    (lambda m: m['bases'].append({'name': 'passwd', 'size': 1, 'sha256': '0' * 64}),
     r'manifest.bases\[0\].name: .* is not the name of an image-cache base'),
    (lambda m: m['files'][0].update(sha256='XYZ'), r'manifest.files\[0\].sha256: must be 64'),
    (lambda m: m['bases'].append({'name': 'a' * 40, 'size': 1, 'sha256': '0' * 64, 'format': '-o backing_file=/x',
                                  'used_by': ['disk']}), r'manifest.bases\[0\].format: must be one of raw, qcow2'),
    (lambda m: m['bases'].append({'name': 'a' * 40, 'size': 1, 'sha256': '0' * 64, 'format': 'raw',
                                  'used_by': ['../disk']}), r'manifest.bases\[0\].used_by: '),
    (lambda m: m['bases'].append({'name': 'a' * 40, 'size': 1, 'sha256': '0' * 64, 'format': 'raw',
                                  'used_by': ['other']}), r'manifest.bases\[0\].used_by: must list files'),
])
def test_a_hostile_manifest_is_refused(change, expected):
    manifest = {'uuid': UUID, 'instances_path': '/var/lib/kvmhost/instances', 'record': {}, 'network_info': [],
                'actions': [], 'bases': [], 'files': [{'name': 'disk', 'size': 1, 'sha256': '0' * 64}]}
    change(manifest)
    with pytest.raises(KvmhostError, match=expected):
        check_manifest(manifest, UUID)


def test_a_base_damaged_since_the_cache_verified_it_fails_the_destinations_verification(tmp_path):
    """The source takes a base's SHA-256 from its .info record instead of hashing it again; a base whose content
    changed since is refused where the copy is verified, and nothing is imported."""
    source = booted(tmp_path)
    base = source.instances / '_base' / BASE
    base.write_bytes(b'BASE IMAGE' * 1000)  # same size, other content: the record is stale
    manifest = source.run('exported')['manifest']
    destination = Host(tmp_path / 'destination')
    received = destination.run('receiving', manifest=manifest)
    carry(manifest, source, received)
    with pytest.raises(KvmhostError, match='_base/%s has sha256 .* the copy is damaged' % BASE):
        destination.run('imported', manifest=manifest, host='kvm2', request_id=REQUEST)
    assert not os.path.exists(destination.instances / UUID)
