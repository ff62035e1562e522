# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The real playbooks (boot.yml, rebuild.yml, delete.yml) with ansible-playbook, on real QEMU guests.

Each run goes through a generated inventory in a module test directory: this machine is the only KVM host
(localhost, local connection, the venv's Python, virt_type qemu), and its instances path, state store and
timeline directory are all inside the test directory, so nothing touches the host's own store. The store
is created up front with its local ids starting far above any real host's, so the test domains' names
(instance-7e57f2xx) never meet a real instance's.

Guests are shared to save boots: the "main" instance (one ovs_hybrid VIF on br-int) is booted once and
used in file order by the boot, failed-rebuild, killed-rebuild and delete tests; two guests that ignore
ACPI are booted and rebuilt once for the shutdown-timeout and overlap tests. Each test still checks its own
behaviour from what the host has before and after. Everything is removed in the finalizer (with the
modules, as delete.yml does).
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import time
import uuid as uuid_lib

import pytest
import yaml

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import StateStore, to_datetime
from kvmhost_testlib import (
    TEST_PREFIX, local_host_inventory, recap, restart_host_daemon, run_module, run_playbook, start_playbook)

libvirt = pytest.importorskip('libvirt')

pytestmark = pytest.mark.slow

LOCAL_ID_BASE = 0x7E57F200  # far above any real host-local id; the other test modules use 0x7E57F000-0x7E57F1FF
FLAVOR = {'vcpus': 1, 'memory_mb': 192, 'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0}
NOACPI_CMDLINE = 'console=ttyS0 no_timer_check kvmhost.noacpi=1'
SHORT_SHUTDOWN_TIMEOUT = 4
BOOT_TIMEOUT = 120


# ---------------------------------------------------------------------------------------------- helpers
def image_spec(images, image_id, cmdline='console=ttyS0 no_timer_check'):
    entry = [item for item in images.manifest['images'] if item['id'] == image_id][0]
    return {'id': image_id, 'source': entry['path'], 'checksum': entry['checksum'],
            'kernel': str(images.kernel), 'ramdisk': str(images.initrd), 'cmdline': cmdline}


def random_mac():
    return 'fa:16:3e:%02x:%02x:%02x' % tuple(random.getrandbits(8) for dummy in range(3))


def ovs_hybrid_vif():
    third = random.randint(0, 255)
    return {'id': str(uuid_lib.uuid4()), 'address': random_mac(), 'type': 'ovs_hybrid', 'bridge': 'br-int',
            'mtu': 1450,
            'network': {'id': str(uuid_lib.uuid4()), 'label': TEST_PREFIX + 'net', 'cidr': '10.213.%d.0/24' % third,
                        'gateway': '10.213.%d.1' % third, 'dhcp_server': '10.213.%d.2' % third,
                        'ips': ['10.213.%d.%d' % (third, random.randint(10, 250))]}}


def vif_devices(port_id):
    """os-vif's device names of an ovs_hybrid port: tap, qbr, qvb, qvo + the first 11 characters of its id."""
    return [kind + port_id[:11] for kind in ('tap', 'qbr', 'qvb', 'qvo')]


def firewall_rules():
    """iptables-save and ip6tables-save together: every chain and rule of the host's firewall."""
    return ''.join(subprocess.run([command], capture_output=True, text=True, check=True).stdout
                   for command in ('iptables-save', 'ip6tables-save'))


def ovs_ports(bridge='br-int'):
    return subprocess.run(['ovs-vsctl', 'list-ports', bridge], capture_output=True, text=True,
                          check=True).stdout.split()


def events_by_name(timeline, uuid):
    """{step name: event} of the instance's action in a timeline JSON document."""
    (entry,) = [item for item in timeline['instances'] if item['uuid'] == uuid]
    return dict((event['name'], event) for event in entry['events'])


class Run(object):
    """One ansible-playbook run: return code, output, recap and the timeline JSON files it wrote."""

    def __init__(self, returncode, output, timelines):
        self.returncode = returncode
        self.output = output
        self.timelines = timelines

    @property
    def recap(self):
        return recap(self.output)

    @property
    def timeline(self):
        """The one timeline JSON document this run wrote."""
        assert len(self.timelines) == 1, 'expected one timeline file, got %d:\n%s' % (
            len(self.timelines), self.output[-3000:])
        return self.timelines[0]

    @property
    def tasks(self):
        """How many tasks the play ran (each prints its header once, whatever its loop or batch)."""
        return self.output.count('TASK [')

    @property
    def flat(self):
        """The output with every whitespace run made one space: the YAML callback folds long lines."""
        return ' '.join(self.output.split())

    def __str__(self):
        """For assertion messages: the failures (if any) and the end of the output."""
        fatal = [block.split('\nTASK [', 1)[0] for block in self.output.split('fatal: ')[1:]]
        return 'rc %s\n%s\n...\n%s' % (self.returncode, '\n'.join('fatal: ' + block for block in fatal)[-6000:],
                                       self.output[-3000:])


class Host(object):
    """This machine as the KVM host of a generated inventory whose paths are all inside ``directory``."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.instances_path = os.path.join(self.dir, 'instances')
        self.state_db = os.path.join(self.dir, 'state.sqlite3')
        self.timeline_dir = os.path.join(self.dir, 'timelines')
        self.inventory = os.path.join(self.dir, 'inventory', 'hosts.yml')
        self.specs = {}  # uuid -> the instance spec as the inventory has it now (insertion order)
        os.makedirs(os.path.dirname(self.inventory))
        os.mkdir(self.instances_path, 0o755)  # the kvm_host role (host.yml) makes it on a real host
        self._seed_store()

    def _seed_store(self):
        """A migrated store (created by the module code) whose next local id is LOCAL_ID_BASE + 1."""
        StateStore.open(self.state_db).close()
        conn = sqlite3.connect(self.state_db, isolation_level=None)
        try:
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('instances', ?)", (LOCAL_ID_BASE,))
        finally:
            conn.close()

    def add(self, label, image, vifs=()):
        uuid = str(uuid_lib.uuid4())
        self.specs[uuid] = {'uuid': uuid, 'name': '%s%s-%s' % (TEST_PREFIX, label, uuid[:8]), 'flavor': FLAVOR,
                            'image': image, 'vifs': list(vifs), 'volumes': [],
                            'security_groups': [{'name': 'default', 'rules': [
                                {'direction': 'ingress', 'protocol': 'tcp', 'port_range_min': 22,
                                 'port_range_max': 22, 'remote_ip_prefix': '0.0.0.0/0'},
                                {'direction': 'egress'}]}]}
        return uuid

    def write_inventory(self, overrides=None, without=()):
        """The inventory with every spec, ``overrides`` ({uuid: spec}) replacing some for one run and the UUIDs of
        ``without`` left out (their specs have left the inventory)."""
        specs = [dict((overrides or {}).get(uuid, spec)) for uuid, spec in self.specs.items() if uuid not in without]
        inventory = local_host_inventory(self.instances_path, self.state_db, self.timeline_dir, specs,
                                         kvmhost_shutdown_timeout=30, kvmhost_shutdown_retry_interval=2)
        with open(self.inventory, 'w') as handle:
            yaml.safe_dump(inventory, handle, default_flow_style=False, sort_keys=False)

    def _timeline_files(self):
        try:
            return set(name for name in os.listdir(self.timeline_dir) if name.endswith('.json'))
        except FileNotFoundError:
            return set()

    def play(self, playbook, extra_vars=None, overrides=None, without=(), **options):
        """Run the playbook on the inventory; ``options`` go to run_playbook (check, diff, verbosity, log_path)."""
        self.write_inventory(overrides, without)
        before = self._timeline_files()
        returncode, output = run_playbook('playbooks/%s.yml' % playbook, extra_vars, inventory=self.inventory,
                                          **options)
        timelines = []
        for name in sorted(self._timeline_files() - before):
            with open(os.path.join(self.timeline_dir, name)) as handle:
                timelines.append(json.load(handle))
        return Run(returncode, output, timelines)

    def start(self, playbook, output, extra_vars=None):
        self.write_inventory()
        return start_playbook('playbooks/%s.yml' % playbook, output, extra_vars, inventory=self.inventory)

    def record(self, uuid):
        """The instance's record with its live libvirt state, read by instance_info (read-only)."""
        result = run_module('instance_info', dict(uuid=uuid, state_db=self.state_db, include_deleted=True))
        assert not result.get('failed') and len(result['instances']) == 1, result
        return result['instances'][0]

    def directory(self, uuid):
        return os.path.join(self.instances_path, uuid)

    def console_log(self, uuid):
        return os.path.join(self.directory(uuid), 'console.log')

    def cleanup(self):
        """Remove every instance with the modules (as delete.yml would, minus the records, which go with the
        test directory): faster than a playbook run, and independent of the roles under test."""
        failures = []
        for uuid, spec in self.specs.items():
            steps = [('domain', dict(uuid=uuid, state='absent', shutdown_timeout=0))]
            steps += [('vif', dict(instance_uuid=uuid, vif=vif, state='unplugged')) for vif in spec['vifs']]
            steps += [('instance_firewall', dict(instance_uuid=uuid, state='absent')),
                      ('instance_disk', dict(uuid=uuid, state='absent', instances_path=self.instances_path))]
            for module, args in steps:
                result = run_module(module, args)
                if result.get('failed'):
                    failures.append((module, uuid, result.get('msg')))
        assert not failures, 'cleanup failed: %s' % failures


def domain_of(conn, uuid):
    try:
        return conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError:
        return None


def wait_boot(console, timeout=BOOT_TIMEOUT):
    return console.wait_boot(timeout)


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def host(libvirt_conn, demo_images, libvirt_module_test_dir):
    """The generated inventory's host; every instance added to it is deleted at the end of the module."""
    kvm_host = Host(libvirt_module_test_dir)
    yield kvm_host
    kvm_host.cleanup()


@pytest.fixture(scope='module')
def main_instance(host, demo_images):
    """An instance with one ovs_hybrid VIF on br-int, added to the inventory (not booted)."""
    return host.add('main', image_spec(demo_images, 'demo-guest-v1'), vifs=[ovs_hybrid_vif()])


@pytest.fixture(scope='module')
def main_first_boot(host, main_instance, demo_console):
    """boot.yml's first run for the main instance, once its guest printed boot complete: (run, console lines)."""
    console = demo_console(host.console_log(main_instance))
    run = host.play('boot', {'kvmhost_boot_uuids': [main_instance]})
    assert run.returncode == 0, str(run)
    return run, wait_boot(console)


@pytest.fixture(scope='module')
def noacpi_pair(host, demo_images, demo_console):
    """Two guests that ignore ACPI shutdown requests, booted together by one boot.yml run."""
    image = image_spec(demo_images, 'demo-guest-v1', NOACPI_CMDLINE)
    uuids = [host.add('noacpi-a', image), host.add('noacpi-b', image)]
    consoles = [demo_console(host.console_log(uuid)) for uuid in uuids]
    run = host.play('boot', {'kvmhost_boot_uuids': uuids})
    assert run.returncode == 0, str(run)
    for console in consoles:
        lines = wait_boot(console)
        assert 'acpi ignored' in lines and 'acpi ready' not in lines, lines
    return uuids


@pytest.fixture(scope='module')
def noacpi_rebuild(host, demo_images, noacpi_pair):
    """rebuild.yml for both ACPI-ignoring guests (onto demo-guest-v2) with a short shutdown timeout."""
    for uuid in noacpi_pair:
        host.specs[uuid]['image'] = image_spec(demo_images, 'demo-guest-v2', NOACPI_CMDLINE)
    run = host.play('rebuild', {'kvmhost_rebuild_uuids': noacpi_pair,
                                'kvmhost_shutdown_timeout': SHORT_SHUTDOWN_TIMEOUT,
                                'kvmhost_shutdown_retry_interval': 2})
    return noacpi_pair, run


# ------------------------------------------------------------------------------------------------- tests
def test_boot_twice_the_second_run_changes_nothing(host, main_instance, main_first_boot, libvirt_conn):
    first, lines = main_first_boot
    assert first.recap['changed'] > 0 and first.recap['failed'] == 0, str(first)
    assert 'disk vda marker=demo-guest-v1 boots=1' in lines
    dom = domain_of(libvirt_conn, main_instance)
    local_id = host.record(main_instance)['local_id']
    assert local_id > LOCAL_ID_BASE and dom is not None and dom.isActive() and dom.name() == 'instance-%08x' % local_id
    events = events_by_name(first.timeline, main_instance)
    assert [events[step]['result'] for step in ('scheduling', 'networking', 'block_device_mapping', 'spawning')] \
        == ['Success'] * 4, events

    console_size = os.path.getsize(host.console_log(main_instance))
    second = host.play('boot', {'kvmhost_boot_uuids': [main_instance]})
    assert second.returncode == 0, str(second)
    assert second.recap['changed'] == 0 and second.recap['failed'] == 0, str(second)
    assert second.timelines == []  # nothing recorded, so no timeline either
    # The same guest still runs: not restarted (no new boot on its console).
    assert domain_of(libvirt_conn, main_instance).ID() == dom.ID()
    with open(host.console_log(main_instance), 'rb') as handle:
        handle.seek(console_size)
        assert b'kvmhost-demo: kernel' not in handle.read()

    record = host.record(main_instance)
    assert (record['vm_state'], record['task_state'], record['power_state'], record['deleted']) == \
        ('active', None, 1, False), record
    assert record['live']['power_state'] == 1 and record['name'] == host.specs[main_instance]['name']
    assert [vif['id'] for vif in record['network_info']] == [host.specs[main_instance]['vifs'][0]['id']]


def test_rebuild_with_a_wrong_checksum_rolls_back_to_the_old_disk(host, main_instance, main_first_boot,
                                                                  demo_images, demo_console):
    spec = host.specs[main_instance]
    directory = host.directory(main_instance)
    console = demo_console(host.console_log(main_instance))
    before = console.find(reversed(console.lines()), r'disk vda marker=(\S+) boots=(\d+)')
    assert before is not None
    record_before = host.record(main_instance)
    console.mark()

    wrong = dict(spec, image=dict(image_spec(demo_images, 'demo-guest-v2'), checksum='sha256:' + '0' * 64))
    run = host.play('rebuild', {'kvmhost_rebuild_uuids': [main_instance]}, overrides={main_instance: wrong})
    assert run.returncode != 0 and run.recap['failed'] == 1, str(run)
    # The play's failure names the instance, the step and the cause.
    assert re.search(r'%s \(%s\): rebuild failed at create_image[^\n]* checksum mismatch for %s: expected '
                     r'sha256:0{64}, got %s; rolled back, the old instance runs' % (
                         re.escape(spec['name']), main_instance, re.escape(wrong['image']['source']),
                         re.escape(image_spec(demo_images, 'demo-guest-v2')['checksum'])), run.flat), str(run)

    # The old instance runs again from its old root disk: the same disk boots once more.
    lines = wait_boot(console)
    assert 'disk vda marker=%s boots=%d' % (before.group(1), int(before.group(2)) + 1) in lines, lines
    assert 'disk vda marker=demo-guest-v1 boots=2' in lines  # in file order: booted once by the boot test
    record = host.record(main_instance)
    assert (record['vm_state'], record['task_state'], record['live']['power_state']) == ('active', None, 1), record
    assert record['image']['id'] == record_before['image']['id'] == 'demo-guest-v1'
    assert record['local_id'] == record_before['local_id']

    events = events_by_name(run.timeline, main_instance)
    assert events['create_image']['result'] == 'Error' and 'checksum mismatch' in events['create_image']['message']
    assert events['rollback']['result'] == 'Success', events
    assert 'spawning' not in events
    assert os.path.isdir(directory) and not os.path.exists(directory + '_del')


def test_rebuild_of_a_spec_wrong_on_its_face_never_shuts_the_instance_down(
        host, main_instance, main_first_boot, demo_images, libvirt_conn):
    spec = host.specs[main_instance]
    directory = host.directory(main_instance)
    dom_id = domain_of(libvirt_conn, main_instance).ID()
    record_before = host.record(main_instance)
    wrong = copy.deepcopy(spec)
    wrong['image'] = dict(image_spec(demo_images, 'demo-guest-v2'), checksum='sha256:not-hex',
                          source='ftp://images.example/demo-guest-v2.qcow2')
    wrong['security_groups'][0]['rules'][0].update(port_range_min=2222, port_range_max=22)
    run = host.play('rebuild', {'kvmhost_rebuild_uuids': [main_instance]}, overrides={main_instance: wrong})
    assert run.returncode != 0 and run.recap['failed'] == 1, str(run)
    # Refused at the check, each fault named with the instance and the field; no step ran.
    where = '%s (%s): ' % (spec['name'], main_instance)
    for fault in ("image.source: URL scheme 'ftp' is not supported",
                  'security_groups[0].rules[0].port_range_min: port_range_min 2222 is above port_range_max 22'):
        assert where + fault in run.flat, str(run)
    assert 'Shutdown instance' not in run.output and run.timelines == []
    # The guest was never shut down: the same QEMU process runs, the directory was not moved, the record is as it was.
    assert domain_of(libvirt_conn, main_instance).ID() == dom_id
    assert os.path.isdir(directory) and not os.path.exists(directory + '_del')
    record = host.record(main_instance)
    assert (record['vm_state'], record['task_state']) == ('active', None)
    assert record['updated_at'] == record_before['updated_at']


def assert_rebuilt_onto(host, uuid, image_id, demo_console):
    """The instance once a rebuild finished: its guest booted once from a fresh root of ``image_id``, one
    directory, the record active with no task and the domain running."""
    lines = wait_boot(demo_console(host.console_log(uuid)))  # a new directory: a new console log
    assert 'disk vda marker=%s boots=1' % image_id in lines, lines
    assert [name for name in os.listdir(host.instances_path) if name.startswith(uuid)] == [uuid]
    record = host.record(uuid)
    assert (record['vm_state'], record['task_state'], record['live']['power_state']) == ('active', None, 1), record
    assert record['image']['id'] == image_id


def read_store(state_db, query, params=()):
    """The rows of ``query`` on the state store, opened read-only (as a poller would)."""
    conn = sqlite3.connect('file:%s?mode=ro' % state_db, uri=True, timeout=5)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def newest_action_id(state_db, uuid):
    """The id of the instance's newest action in the store (0 for none): what a run started next comes after."""
    return read_store(state_db, 'SELECT COALESCE(MAX(id), 0) FROM actions WHERE instance_uuid = ?', (uuid,))[0][0]


def wait_for_event(process, state_db, uuid, event, after, result=None, timeout=180):
    """Wait until ``event`` of the instance's newest action, newer than action id ``after``, is in the state store
    (finished with ``result`` when given), while the playbook ``process`` runs. The store is read read-only, as a
    poller would."""
    deadline = time.monotonic() + timeout
    query = ('SELECT e.result FROM action_events e JOIN actions a ON a.id = e.action_id WHERE a.instance_uuid = ? '
             'AND e.event = ? AND a.id = (SELECT MAX(id) FROM actions WHERE instance_uuid = ?) AND a.id > ?')
    while True:
        assert process.poll() is None, 'the run ended (rc %s) before %s' % (process.returncode, event)
        assert time.monotonic() < deadline, 'no %s event after %d s' % (event, timeout)
        try:
            rows = read_store(state_db, query, (uuid, event, uuid, after))
        except sqlite3.OperationalError:  # busy, or no table yet: try again
            rows = []
        if rows and (result is None or rows[0][0] == result):
            return
        time.sleep(0.02)


def count_actions(state_db, uuid):
    return read_store(state_db, 'SELECT COUNT(*) FROM actions WHERE instance_uuid = ?', (uuid,))[0][0]


def age_claims(state_db):
    """Make each claim in the store older by its stale_after + 1 seconds, as that long a silence of its (killed)
    run would.

    A killed run's claims go stale once silent for their stale_after (kvmhost_claim_stale_after, 300 s by
    default), and the next run waits for that (test_a_second_run_on_the_same_instance_waits_then_is_refused
    and the state store's unit tests show it); the kill tests age them instead of sleeping five minutes each.
    """
    conn = sqlite3.connect(state_db, timeout=5)
    try:
        with conn:
            rows = conn.execute('SELECT instance_uuid, heartbeat_at, stale_after FROM claims').fetchall()
            for uuid, heartbeat_at, stale_after in rows:
                aged = to_datetime(heartbeat_at) - datetime.timedelta(seconds=stale_after + 1)
                conn.execute('UPDATE claims SET heartbeat_at = ? WHERE instance_uuid = ?',
                             (aged.strftime('%Y-%m-%dT%H:%M:%S.%fZ'), uuid))
    finally:
        conn.close()


def kill_at_event(process, state_db, uuid, event, after, result=None, timeout=180):
    """Fault injection: SIGKILL the playbook's process group at ``event`` (see wait_for_event); its claims
    are then aged (see age_claims)."""
    try:
        wait_for_event(process, state_db, uuid, event, after, result, timeout)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the group this test started, and only it
        process.wait(timeout=60)
    age_claims(state_db)


def test_rebuild_killed_after_spawning_is_finished_not_rebuilt_again(host, main_instance, main_first_boot,
                                                                     demo_images, demo_console, libvirt_conn,
                                                                     tmp_path):
    directory = host.directory(main_instance)
    host.specs[main_instance]['image'] = image_spec(demo_images, 'demo-guest-v1')  # a new root of the same image
    log = tmp_path / 'killed-after-spawning.log'
    after = newest_action_id(host.state_db, main_instance)
    with open(str(log), 'w') as output:
        process = host.start('rebuild', output, {'kvmhost_rebuild_uuids': [main_instance]})
        kill_at_event(process, host.state_db, main_instance, 'spawning', after, result='Success')
    assert process.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    # Killed with the new domain running from the new root: the record says the rebuild is unfinished.
    dom_id = domain_of(libvirt_conn, main_instance).ID()
    assert host.record(main_instance)['task_state'] == 'rebuild_spawning'
    console = demo_console(host.console_log(main_instance))
    lines = wait_boot(console)
    assert 'disk vda marker=demo-guest-v1 boots=1' in lines, lines
    console.mark()

    run = host.play('rebuild', {'kvmhost_rebuild_uuids': [main_instance]})
    assert run.returncode == 0 and run.recap['failed'] == 0, str(run)
    # Finished, not rebuilt again: the same QEMU process runs the same new root, booted once.
    assert domain_of(libvirt_conn, main_instance).ID() == dom_id
    time.sleep(2)
    assert 'kvmhost-demo: kernel' not in console.text()  # no new boot on its console
    events = events_by_name(run.timeline, main_instance)
    assert 'shutdown_instance' not in events and 'move_instance_dir' not in events, events
    assert all(event['result'] == 'Success' for event in events.values()), events
    assert {'create_image', 'spawning', 'delete_old_instance_dir', 'audit_resources'} <= set(events)
    assert os.path.isdir(directory) and not os.path.exists(directory + '_del')
    record = host.record(main_instance)
    assert (record['vm_state'], record['task_state'], record['live']['power_state']) == ('active', None, 1), record
    assert record['image']['id'] == 'demo-guest-v1'


def test_a_second_run_on_the_same_instance_waits_then_is_refused(
        host, main_instance, main_first_boot, demo_images, tmp_path):
    host.specs[main_instance]['image'] = image_spec(demo_images, 'demo-guest-v2')
    actions_before = count_actions(host.state_db, main_instance)
    log = tmp_path / 'first-run.log'
    after = newest_action_id(host.state_db, main_instance)
    with open(str(log), 'w') as output:
        first = host.start('rebuild', output, {'kvmhost_rebuild_uuids': [main_instance]})
        try:
            wait_for_event(first, host.state_db, main_instance, 'shutdown_instance', after)
            started = time.monotonic()
            second = host.play('rebuild', {'kvmhost_rebuild_uuids': [main_instance], 'kvmhost_claim_wait': 3})
            waited = time.monotonic() - started
        finally:
            first.wait(timeout=300)
    assert first.returncode == 0, log.read_text()[-3000:]
    # The second run waited for the claim (3 s), then refused the instance, naming the first run; it changed nothing.
    assert second.returncode != 0 and second.recap['changed'] == 0, str(second)
    assert re.search(r'%s \(%s\): uuid: another run on this host has it: request req-[0-9a-f-]+ \(rebuild\) since '
                     % (re.escape(host.specs[main_instance]['name']), main_instance), second.flat), str(second)
    assert 'its claim is taken over after 300 s of silence' in second.flat, str(second)  # the role's default
    assert waited >= 3 and second.timelines == []
    # Only the first run recorded anything: one new action.
    assert count_actions(host.state_db, main_instance) == actions_before + 1
    record = host.record(main_instance)
    assert (record['vm_state'], record['task_state'], record['image']['id']) == ('active', None, 'demo-guest-v2')
    # Its claims were released at its end: the next run does not wait (claim_wait 0) and changes nothing.
    third = host.play('boot', {'kvmhost_boot_uuids': [main_instance], 'kvmhost_claim_wait': 0})
    assert third.returncode == 0 and third.recap['changed'] == 0, str(third)


def test_rebuild_in_check_mode_predicts_the_steps_and_changes_nothing(
        host, main_instance, main_first_boot, demo_images, libvirt_conn):
    directory = host.directory(main_instance)
    dom_id = domain_of(libvirt_conn, main_instance).ID()
    record_before = host.record(main_instance)
    current = record_before['image']['id']
    other = 'demo-guest-v1' if current == 'demo-guest-v2' else 'demo-guest-v2'
    onto = dict(host.specs[main_instance], image=image_spec(demo_images, other))
    host.write_inventory({main_instance: onto})
    returncode, output = run_playbook('playbooks/rebuild.yml', {'kvmhost_rebuild_uuids': [main_instance]},
                                      check=True, diff=True, inventory=host.inventory)
    run = Run(returncode, output, [])
    assert returncode == 0 and run.recap['failed'] == 0 and run.recap['changed'] > 0, output[-4000:]
    # The domain's diff is the drift the check found (the image of its metadata), with the restart it needs.
    assert "root/@uuid:" in run.flat and "''%s'' wanted, ''%s'' defined" % (other, current) in run.flat, output[-4000:]
    assert '+ restart_required: true' in run.flat, output[-4000:]
    assert domain_of(libvirt_conn, main_instance).ID() == dom_id
    assert os.path.isdir(directory) and not os.path.exists(directory + '_del')
    assert host.record(main_instance)['updated_at'] == record_before['updated_at']


def test_boot_of_bad_specs_plugs_nothing(host, demo_images, libvirt_conn):
    vifs = [ovs_hybrid_vif(), ovs_hybrid_vif()]
    uuids = [host.add('refused', image_spec(demo_images, 'demo-guest-v1'), vifs=[vif]) for vif in vifs]
    try:
        misspelt, outside = copy.deepcopy(host.specs[uuids[0]]), copy.deepcopy(host.specs[uuids[1]])
        misspelt['security_groups'][0]['rules'][0]['port_min'] = 22
        outside['vifs'][0]['network']['ips'] = ['192.0.2.7']
        run = host.play('boot', {'kvmhost_boot_uuids': uuids}, overrides={uuids[0]: misspelt, uuids[1]: outside})
        assert run.returncode != 0 and run.recap['failed'] == 1, str(run)
        # Both refusals of the run at once, each naming its instance and field.
        assert '%s (%s): unknown key security_groups.rules.port_min' % (misspelt['name'], uuids[0]) in run.flat, str(run)
        assert '%s (%s): vifs[0].network.ips[0]: 192.0.2.7 is not in the network %s' % (
            outside['name'], uuids[1], vifs[1]['network']['cidr']) in run.flat, str(run)
        links = subprocess.run(['ip', '-o', 'link', 'show'], capture_output=True, text=True, check=True).stdout
        for uuid, vif in zip(uuids, vifs):
            assert not [name for name in vif_devices(vif['id']) if name + ':' in links or name + '@' in links]
            assert not [port for port in ovs_ports() if port.endswith(vif['id'][:11])]
            assert domain_of(libvirt_conn, uuid) is None and not os.path.exists(host.directory(uuid))
            assert run_module('instance_info', dict(uuid=uuid, state_db=host.state_db,
                                                    include_deleted=True))['instances'] == []
    finally:
        for uuid in uuids:
            del host.specs[uuid]


def test_rebuild_killed_after_the_move_is_finished_by_the_next_run(host, main_instance, main_first_boot,
                                                                   demo_images, demo_console, tmp_path):
    directory = host.directory(main_instance)
    host.specs[main_instance]['image'] = image_spec(demo_images, 'demo-guest-v2')
    with open(str(tmp_path / 'killed-rebuild.log'), 'w') as output:
        process = host.start('rebuild', output, {'kvmhost_rebuild_uuids': [main_instance]})
        try:
            deadline = time.monotonic() + 180
            while not os.path.exists(directory + '_del'):
                assert process.poll() is None, 'rebuild.yml ended (rc %s) before the move:\n%s' % (
                    process.returncode, (tmp_path / 'killed-rebuild.log').read_text()[-3000:])
                assert time.monotonic() < deadline, 'no %s_del after 180 s' % directory
                time.sleep(0.02)
        finally:
            os.killpg(process.pid, signal.SIGKILL)  # the group this test started, and only it
            process.wait(timeout=60)
    age_claims(host.state_db)
    assert process.returncode == -signal.SIGKILL
    # Killed half-way: the old directory is moved aside and the rebuild is unfinished in the store.
    assert os.path.isdir(directory + '_del')
    assert host.record(main_instance)['task_state'] is not None

    run = host.play('rebuild', {'kvmhost_rebuild_uuids': [main_instance]})
    assert run.returncode == 0 and run.recap['failed'] == 0, str(run)
    lines = wait_boot(demo_console(host.console_log(main_instance)))  # a new directory: a new console log
    assert 'disk vda marker=demo-guest-v2 boots=1' in lines, lines
    assert not [line for line in lines if 'marker=demo-guest-v1' in line]
    assert os.path.isdir(directory) and not os.path.exists(directory + '_del')
    assert [name for name in os.listdir(host.instances_path) if name.startswith(main_instance)] == [main_instance]
    record = host.record(main_instance)
    assert (record['vm_state'], record['task_state'], record['live']['power_state']) == ('active', None, 1), record
    assert record['image']['id'] == 'demo-guest-v2'
    events = events_by_name(run.timeline, main_instance)
    assert all(event['result'] == 'Success' for event in events.values()), events
    assert {'move_instance_dir', 'create_image', 'spawning', 'delete_old_instance_dir'} <= set(events)
    # One task per step over all instances: the rebuild of one instance runs as many tasks as that of two.
    assert run.tasks <= 20, run.tasks


# Where a rebuild is killed: as each of these steps has begun (its event's start is recorded before its work),
# and once the old directory is deleted, before the audit (the audit itself takes less time than the kill).
# After the move and after spawning finished are tested above; these are the rest of the seed's steps.
REBUILD_KILL_POINTS = [('shutdown_instance', None), ('unplug_vifs', None), ('block_device_mapping', None),
                       ('create_image', None), ('spawning', None), ('power_sync', None),
                       ('delete_old_instance_dir', None), ('delete_old_instance_dir', 'Success')]
REBUILD_TASK_STATES = ('rebuilding', 'rebuild_block_device_mapping', 'rebuild_spawning')
# Killed at these, the run had already started the new domain: the next run only finishes it.
AFTER_SPAWNING = ('power_sync', 'delete_old_instance_dir')


@pytest.mark.parametrize('event, result', REBUILD_KILL_POINTS,
                         ids=['%s-%s' % (event, 'done' if result else 'begun') for event, result in REBUILD_KILL_POINTS])
def test_rebuild_killed_at_each_step_is_finished_by_the_next_run(host, main_instance, main_first_boot, demo_images,
                                                                 demo_console, libvirt_conn, tmp_path, event, result):
    """SIGKILL of the whole playbook at ``event`` (begun, or finished with ``result``); boot.yml in between
    refuses the half-rebuilt instance (or, rebuilt but for the audit, finds nothing to change) and changes
    nothing; then rebuild.yml again: one instance, active, running the spec's image from one directory, its VIF
    plugged and its firewall in place, every step a success; the killed run's action ended as interrupted."""
    image_id = 'demo-guest-v%d' % (1 + REBUILD_KILL_POINTS.index((event, result)) % 2)
    host.specs[main_instance]['image'] = image_spec(demo_images, image_id)
    wait_boot(demo_console(host.console_log(main_instance)))  # each rebuild shuts down a booted guest
    log = tmp_path / ('killed-at-%s-%s.log' % (event, result))
    after = newest_action_id(host.state_db, main_instance)
    with open(str(log), 'w') as output:
        process = host.start('rebuild', output, {'kvmhost_rebuild_uuids': [main_instance]})
        kill_at_event(process, host.state_db, main_instance, event, after, result=result)
    assert process.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    killed_actions = count_actions(host.state_db, main_instance)
    ((unfinished,),) = read_store(host.state_db, 'SELECT finish_time FROM actions WHERE id = (SELECT MAX(id) FROM '
                                  'actions WHERE instance_uuid = ?)', (main_instance,))
    assert unfinished is None  # killed unfinished
    running = domain_of(libvirt_conn, main_instance)
    killed_domain_id = running.ID() if running is not None and running.isActive() else None

    half_done = host.record(main_instance)['task_state'] in REBUILD_TASK_STATES
    files = sorted(name for name in os.listdir(host.instances_path) if name.startswith(main_instance))
    boot = host.play('boot', {'kvmhost_boot_uuids': [main_instance]})
    assert boot.recap['changed'] == 0, str(boot)
    if half_done:
        assert boot.returncode != 0 and 'its rebuild did not finish' in boot.flat, str(boot)
    else:
        assert boot.returncode == 0, str(boot)
    assert sorted(name for name in os.listdir(host.instances_path) if name.startswith(main_instance)) == files
    running = domain_of(libvirt_conn, main_instance)
    # The boot started nothing: the same QEMU process, or none (a guest the killed run asked to shut down did).
    assert (running.ID() if running is not None and running.isActive() else None) in (killed_domain_id, None)
    assert read_store(host.state_db, 'SELECT COUNT(*) FROM claims')[0][0] == 0  # the boot released its claims

    run = host.play('rebuild', {'kvmhost_rebuild_uuids': [main_instance]})
    assert run.returncode == 0 and run.recap['failed'] == 0, str(run)
    # The killed run's action ended, interrupted, when the next run took the instance over.
    actions = read_store(host.state_db, 'SELECT id, request_id, action, start_time, finish_time, message FROM actions '
                         'WHERE instance_uuid = ? ORDER BY id', (main_instance,))
    killed = actions[killed_actions - 1]
    assert killed[4] is not None and (killed[5] or '').startswith('interrupted:'), actions
    assert_rebuilt_onto(host, main_instance, image_id, demo_console)
    domain = domain_of(libvirt_conn, main_instance)
    assert domain is not None and domain.isActive()
    port_id = host.specs[main_instance]['vifs'][0]['id']
    assert 'qvo' + port_id[:11] in ovs_ports()
    assert all(os.path.exists('/sys/class/net/' + name) for name in vif_devices(port_id))
    assert port_id[:11] in firewall_rules()
    events = events_by_name(run.timeline, main_instance)
    assert all(item['result'] == 'Success' for item in events.values()), events
    assert {'spawning', 'delete_old_instance_dir', 'audit_resources'} <= set(events), events
    if event in AFTER_SPAWNING:  # finished, not rebuilt again: the same QEMU process, no shutdown
        assert domain.ID() == killed_domain_id and 'shutdown_instance' not in events, events


def module_processes(module):
    """Pids of the Python processes running the module's AnsiballZ payload (not the shells around them)."""
    found = []
    for entry in os.listdir('/proc'):
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                argv = handle.read().split(b'\0')
        except (OSError, ValueError):
            continue
        if len(argv) > 1 and argv[0].endswith(b'python') and argv[1].endswith(b'AnsiballZ_%s.py' % module.encode()):
            found.append(int(entry))
    return found


def rebuild_through_a_fault(host, uuid, demo_images, demo_console, log, event, fault):
    """rebuild.yml of the booted instance onto its other demo image, with ``fault()`` done as ``event`` begins;
    returns (the run's return code, its output, the image it was rebuilt onto)."""
    image_id = 'demo-guest-v2' if host.record(uuid)['image']['id'] == 'demo-guest-v1' else 'demo-guest-v1'
    host.specs[uuid]['image'] = image_spec(demo_images, image_id)
    wait_boot(demo_console(host.console_log(uuid)))
    after = newest_action_id(host.state_db, uuid)
    with open(str(log), 'w') as output:
        process = host.start('rebuild', output, {'kvmhost_rebuild_uuids': [uuid]})
        try:
            wait_for_event(process, host.state_db, uuid, event, after)
            fault()
        finally:
            process.wait(timeout=600)
    return process.returncode, log.read_text(), image_id


def kill_module(module):
    pids = module_processes(module)
    assert pids, 'no %s module process' % module
    for pid in pids:
        os.kill(pid, signal.SIGKILL)  # a module process of the run the test started


def test_rebuild_whose_step_module_is_killed_is_finished_by_the_next_run(host, main_instance, main_first_boot,
                                                                         demo_images, demo_console, tmp_path):
    """SIGKILL of the create-image step's own module process (the playbook lives on): the play fails for the
    host naming the step and releases the run's claims; the next rebuild.yml finishes the instance."""
    returncode, text, image_id = rebuild_through_a_fault(
        host, main_instance, demo_images, demo_console, tmp_path / 'killed-module.log', 'create_image',
        lambda: kill_module('instance_image'))
    # The play fails naming the step; its claims are released (the rerun does not wait for them).
    assert returncode != 0 and 'Create image, same UUID: ' in text, text[-3000:]
    assert read_store(host.state_db, 'SELECT COUNT(*) FROM claims')[0][0] == 0
    run = host.play('rebuild', {'kvmhost_rebuild_uuids': [main_instance]})
    assert run.returncode == 0 and run.recap['failed'] == 0, str(run)
    assert_rebuilt_onto(host, main_instance, image_id, demo_console)


def test_boot_and_delete_killed_half_way_are_finished_by_the_next_run(host, demo_images, demo_console, libvirt_conn,
                                                                      tmp_path):
    """boot.yml killed as spawning begins, then boot.yml again: the instance runs, once; delete.yml killed once
    it has begun deleting, then delete.yml again: nothing of the instance is left."""
    vif = ovs_hybrid_vif()
    uuid = host.add('killed-boot', image_spec(demo_images, 'demo-guest-v1'), vifs=[vif])
    for playbook, extra, event in (('boot', {'kvmhost_boot_uuids': [uuid]}, 'spawning'),
                                   ('delete', {'kvmhost_delete_uuids': [uuid]}, 'delete_instance')):
        after = newest_action_id(host.state_db, uuid)
        log = tmp_path / ('killed-%s.log' % playbook)
        with open(str(log), 'w') as output:
            process = host.start(playbook, output, extra)
            kill_at_event(process, host.state_db, uuid, event, after)
        assert process.returncode == -signal.SIGKILL, log.read_text()[-3000:]
        run = host.play(playbook, extra)
        assert run.returncode == 0 and run.recap['failed'] == 0, str(run)
        events = events_by_name(run.timeline, uuid)
        assert all(item['result'] == 'Success' for item in events.values()), events
        record = host.record(uuid)
        if playbook == 'boot':
            lines = wait_boot(demo_console(host.console_log(uuid)))
            assert 'disk vda marker=demo-guest-v1 boots=1' in lines, lines
            assert (record['vm_state'], record['task_state'], record['live']['power_state']) == ('active', None, 1)
            assert 'qvo' + vif['id'][:11] in ovs_ports() and vif['id'][:11] in firewall_rules()
        else:
            assert record['deleted'] is True and record['live']['found'] is False, record
            assert domain_of(libvirt_conn, uuid) is None
            assert [name for name in os.listdir(host.instances_path) if name.startswith(uuid)] == []
            assert [name for name in vif_devices(vif['id']) if os.path.exists('/sys/class/net/' + name)] == []
            assert vif['id'][:11] not in firewall_rules()


# libvirtd as the kvm_host role starts it (host_daemon, defaults of roles/kvm_host).
LIBVIRTD = dict(name='libvirtd', command=['catatonit', '--', 'libvirtd'], process_name='libvirtd',
                runtime_dirs=['/run/libvirt'], socket='/run/libvirt/libvirt-sock',
                log_file='/var/log/kvmhost/libvirtd.log')


def restart_libvirtd(libvirt_conn):
    """Stop the host's libvirtd by its pid and start it again, as host.yml would (restart_host_daemon); the
    guests' QEMU processes run on. The session's connection is reopened."""
    restart_host_daemon(LIBVIRTD, 30)
    libvirt_conn.reconnect()


def test_a_rebuild_through_a_libvirtd_restart_loses_nothing_and_the_next_run_finishes(
        host, main_instance, main_first_boot, demo_images, demo_console, libvirt_conn, tmp_path):
    """libvirtd stops as the new domain is being defined and comes back: the run ends with the instance on its
    old root or its new one (never without one), saying what failed; the next rebuild.yml finishes it."""
    directory = host.directory(main_instance)
    returncode, text, image_id = rebuild_through_a_fault(
        host, main_instance, demo_images, demo_console, tmp_path / 'libvirtd-restart.log', 'spawning',
        lambda: restart_libvirtd(libvirt_conn))
    assert os.path.isdir(directory) or os.path.isdir(directory + '_del')  # a root, old or new, is there
    if returncode != 0:  # the play says which instance failed where and why, or which step did not finish
        rescued = text.split('TASK [kvmhost.lifecycle.instance_rebuild : Fail with what did not finish]')[1:]
        assert ('rebuild failed at ' in text and main_instance in text) or 'Spawning - ' in ''.join(rescued), \
            text[-3000:]
    record = host.record(main_instance)
    assert record['vm_state'] in ('active', 'error'), record

    run = host.play('rebuild', {'kvmhost_rebuild_uuids': [main_instance]})
    assert run.returncode == 0 and run.recap['failed'] == 0, str(run)
    assert_rebuilt_onto(host, main_instance, image_id, demo_console)


def test_boot_in_check_mode_predicts_a_new_instance_and_changes_nothing(host, demo_images, libvirt_conn):
    uuid = host.add('check', image_spec(demo_images, 'demo-guest-v1'), vifs=[ovs_hybrid_vif()])
    try:
        host.write_inventory()
        returncode, output = run_playbook('playbooks/boot.yml', {'kvmhost_boot_uuids': [uuid]}, check=True,
                                          diff=True, inventory=host.inventory)
        assert returncode == 0, output[-4000:]
        run = Run(returncode, output, [])
        assert run.recap['failed'] == 0 and run.recap['changed'] > 0, output[-4000:]
        # It says what it would create: the record, the VIF's devices, the domain.
        assert uuid in run.flat and 'qvo' in run.flat, output[-4000:]
        assert domain_of(libvirt_conn, uuid) is None
        assert not os.path.exists(host.directory(uuid))
        result = run_module('instance_info', dict(uuid=uuid, state_db=host.state_db, include_deleted=True))
        assert result['instances'] == [], result
    finally:
        del host.specs[uuid]


def files_holding(text, *roots):
    """The files under ``roots`` whose bytes contain ``text``."""
    found = []
    for root in roots:
        for directory, _dirs, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                with open(path, 'rb') as handle:
                    if text.encode() in handle.read():
                        found.append(path)
    return found


def test_a_chap_password_never_shows_in_output_logs_store_or_timeline(
        host, demo_images, iscsi_export, libvirt_conn):
    """boot.yml and delete.yml of an instance with a CHAP iSCSI volume, at -vvv with --diff and Ansible's
    log file on: the password is in libvirt's secret (and tgt's 0600 configuration) and nowhere else."""
    created = run_module('iscsi_target', iscsi_export)
    assert not created.get('failed'), created
    password = iscsi_export['chap_password']
    uuid = host.add('secret', image_spec(demo_images, 'demo-guest-v1'))
    host.specs[uuid]['volumes'] = [{
        'id': str(uuid_lib.uuid4()), 'device_name': 'vdb', 'target_portal': '127.0.0.1:3260',
        'target_iqn': iscsi_export['iqn'], 'target_lun': 1, 'transport': 'qemu',
        'auth': {'method': 'CHAP', 'username': iscsi_export['chap_username'], 'password': password}}]
    log_path = os.path.join(host.dir, 'ansible-secret.log')
    booted = host.play('boot', {'kvmhost_boot_uuids': [uuid]}, diff=True, verbosity=3, log_path=log_path)
    assert booted.returncode == 0, str(booted)
    domain = domain_of(libvirt_conn, uuid)
    assert domain is not None and domain.isActive()
    (secret_uuid,) = re.findall(r"<secret type='iscsi' uuid='([0-9a-f-]+)'", domain.XMLDesc(0))
    assert libvirt_conn.secretLookupByUUIDString(secret_uuid).value() == password.encode()
    # Deleted without its spec (the inventory holds no password then): the volume and its secret are found in
    # the domain's XML.
    deleted = host.play('delete', {'kvmhost_delete_uuids': [uuid]}, without=[uuid], diff=True, verbosity=3,
                        log_path=log_path)
    assert deleted.returncode == 0, str(deleted)
    assert events_by_name(deleted.timeline, uuid)['delete_instance']['result'] == 'Success'
    assert domain_of(libvirt_conn, uuid) is None
    assert secret_uuid not in [secret.UUIDString() for secret in libvirt_conn.listAllSecrets()]

    with open(log_path) as handle:
        logged = handle.read()
    # The log holds both runs at -vvv: the commands Ansible ran and the module results.
    assert '<localhost> EXEC' in logged and 'iscsi_attach' in logged and logged.count('PLAY RECAP') == 2, \
        logged[-2000:]
    for label, text in (('boot.yml output', booted.output), ('delete.yml output', deleted.output),
                        ('Ansible log', logged)):
        assert password not in text, label
    with sqlite3.connect(host.state_db) as conn:
        assert password not in '\n'.join(conn.iterdump()), 'state store'
    assert files_holding(password, host.timeline_dir, host.instances_path) == []
    for path in files_holding(password, iscsi_export['config_dir']):
        assert os.path.basename(path).endswith('.conf') and os.stat(path).st_mode & 0o077 == 0, path


def test_delete_removes_everything_of_the_instance(host, main_instance, main_first_boot, libvirt_conn):
    """delete.yml of an instance whose spec has left the inventory: the host's state store and libvirt name its
    VIFs; a UUID no host knows, given with it, fails the run before anything changes."""
    spec = host.specs[main_instance]
    port = spec['vifs'][0]['id']
    directory = host.directory(main_instance)
    # What the instance has before: its domain, directory, VIF devices and firewall chains.
    assert domain_of(libvirt_conn, main_instance) is not None and os.path.isdir(directory)
    assert all(os.path.exists('/sys/class/net/' + name) for name in vif_devices(port))
    assert 'qvo' + port[:11] in ovs_ports()
    assert port[:11] in firewall_rules() and main_instance in firewall_rules()

    typo = str(uuid_lib.uuid4())
    refused = host.play('delete', {'kvmhost_delete_uuids': [main_instance, typo]}, without=[main_instance])
    assert refused.returncode != 0 and refused.recap['changed'] == 0, str(refused)
    assert 'kvmhost_delete_uuids: no host of the play has a spec of %s' % typo in refused.flat, str(refused)
    assert domain_of(libvirt_conn, main_instance).isActive() and 'qvo' + port[:11] in ovs_ports()

    run = host.play('delete', {'kvmhost_delete_uuids': [main_instance]}, without=[main_instance])
    assert run.returncode == 0 and run.recap['changed'] > 0, str(run)
    assert domain_of(libvirt_conn, main_instance) is None
    assert not os.path.exists(directory) and not os.path.exists(directory + '_del')
    assert [name for name in vif_devices(port) if os.path.exists('/sys/class/net/' + name)] == []
    assert 'qvo' + port[:11] not in ovs_ports()
    rules = firewall_rules()
    assert port[:11] not in rules and main_instance not in rules
    record = host.record(main_instance)
    assert record['deleted'] is True and record['live']['found'] is False, record
    assert events_by_name(run.timeline, main_instance)['delete_instance']['result'] == 'Success'

    for without in ([main_instance], []):  # with its spec back, and again without it: nothing to do
        again = host.play('delete', {'kvmhost_delete_uuids': [main_instance]}, without=without)
        assert again.returncode == 0 and again.recap['changed'] == 0 and again.recap['failed'] == 0, str(again)
    assert host.record(main_instance)['deleted'] is True


def test_rebuild_of_guests_that_ignore_acpi_destroys_them_at_the_timeout(host, noacpi_rebuild, demo_console):
    uuids, run = noacpi_rebuild
    assert run.returncode == 0 and run.recap['failed'] == 0, str(run)
    wanted = 'Instance failed to shutdown in %d seconds.' % SHORT_SHUTDOWN_TIMEOUT
    for uuid in uuids:
        event = events_by_name(run.timeline, uuid)['shutdown_instance']
        assert event['result'] == 'Success', event
        assert wanted in event['message'] and 'Instance destroyed successfully.' in event['message'], event
        assert event['details']['destroyed'] is True and event['details']['clean'] is False, event
        assert event['details']['seconds'] >= SHORT_SHUTDOWN_TIMEOUT, event
        assert '%s (%s) rebuild req-' % (host.specs[uuid]['name'], uuid) in run.flat, str(run)
        record = host.record(uuid)
        assert (record['vm_state'], record['task_state'], record['image']['id']) == ('active', None, 'demo-guest-v2')
        assert record['live']['power_state'] == 1
    # The text timeline printed by the play shows it for each instance.
    printed = re.findall(r'shutdown_instance \S+ \+[0-9.]+ s [0-9.]+ s Success %s Instance destroyed successfully\.'
                         % re.escape(wanted), run.flat)
    assert len(printed) == len(uuids), str(run)
    assert run.tasks <= 20, run.tasks
    # The new guests run the new image.
    for uuid in uuids:
        lines = wait_boot(demo_console(host.console_log(uuid)))
        assert 'disk vda marker=demo-guest-v2 boots=1' in lines and 'acpi ignored' in lines, lines


def test_shutdown_waits_of_several_instances_overlap(noacpi_rebuild):
    uuids, run = noacpi_rebuild
    assert run.returncode == 0, str(run)
    first, second = [events_by_name(run.timeline, uuid)['shutdown_instance'] for uuid in uuids]
    for event in (first, second):
        assert event['start_time'] and event['finish_time'] and event['details']['destroyed'] is True, event
    # The events span the launch and the common wait; the module's own started_at/finished_at are each
    # guest's real wait. Timestamps are ISO 8601 UTC with microseconds, so they compare as text.
    a, b = first['details'], second['details']
    assert a['started_at'] and a['finished_at'] and b['started_at'] and b['finished_at'], (a, b)
    assert a['started_at'] < b['finished_at'] and b['started_at'] < a['finished_at'], (a, b)
