# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""boot.yml, rebuild.yml and delete.yml through ansible-runner, from a private data directory laid out as AWX lays
it out, on a real QEMU guest.

The private data directory is made in a test directory: project/ is docs/runner/project (playbooks that import
the collection's playbooks by name), env/settings and env/extravars are docs/runner's, env/envvars points
ANSIBLE_COLLECTIONS_PATH at the repository's .build/collections, and inventory/hosts makes this machine the KVM
host of one small instance (no VIF) whose instances path, state store and timelines are in the test directory.
Its state store starts its local ids at 0x7E57F400 (the other test modules use 0x7E57F000-0x7E57F3FF), so the
domain is instance-7e57f4xx. The instance is booted from demo-guest-v1, rebuilt onto demo-guest-v2 and deleted,
each by ansible_runner.run(); the checks read what ansible-runner gives: status and rc, the events as they came
(event_handler) and as they were written (artifacts/<ident>/job_events/*.json), the stats event.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import uuid as uuid_lib

import pytest
import yaml

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import StateStore
from kvmhost_testlib import COLLECTIONS, ROOT, TEST_PREFIX, VENV_BIN, local_host_inventory, run_module

ansible_runner = pytest.importorskip('ansible_runner')
libvirt = pytest.importorskip('libvirt')

pytestmark = pytest.mark.slow

DOCS_RUNNER = os.path.join(ROOT, 'docs', 'runner')
LOCAL_ID_BASE = 0x7E57F400
FLAVOR = {'vcpus': 1, 'memory_mb': 192, 'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0}
BOOT_TIMEOUT = 120
BOOT_STEPS = ['kvmhost.lifecycle.instance_check', 'kvmhost.lifecycle.instance_info',
              'kvmhost.lifecycle.instance_record', 'kvmhost.lifecycle.vif', 'kvmhost.lifecycle.instance_record',
              'kvmhost.lifecycle.iscsi_attach', 'kvmhost.lifecycle.instance_image', 'kvmhost.lifecycle.domain_xml',
              'kvmhost.lifecycle.instance_firewall', 'kvmhost.lifecycle.domain', 'kvmhost.lifecycle.instance_timeline']
REBUILD_STEPS = ['kvmhost.lifecycle.instance_check', 'kvmhost.lifecycle.instance_shutdown', 'kvmhost.lifecycle.vif',
                 'kvmhost.lifecycle.instance_disk', 'kvmhost.lifecycle.iscsi_attach',
                 'kvmhost.lifecycle.instance_image', 'kvmhost.lifecycle.vif', 'kvmhost.lifecycle.domain_xml',
                 'kvmhost.lifecycle.instance_firewall', 'kvmhost.lifecycle.domain', 'kvmhost.lifecycle.instance_record',
                 'kvmhost.lifecycle.instance_record', 'kvmhost.lifecycle.instance_disk',
                 'kvmhost.lifecycle.resource_audit', 'kvmhost.lifecycle.instance_timeline']


def image_spec(images, image_id):
    entry = [item for item in images.manifest['images'] if item['id'] == image_id][0]
    return {'id': image_id, 'source': entry['path'], 'checksum': entry['checksum'], 'kernel': str(images.kernel),
            'ramdisk': str(images.initrd), 'cmdline': 'console=ttyS0 no_timer_check'}


class PrivateDataDir(object):
    """An ansible-runner private data directory (project/, inventory/hosts, env/) for this machine as the KVM host
    of the instances in ``specs``; the host's paths (instances, state store, timelines) are under ``directory``."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.path = os.path.join(self.dir, 'runner')
        self.instances_path = os.path.join(self.dir, 'instances')
        self.state_db = os.path.join(self.dir, 'state.sqlite3')
        self.specs = []
        shutil.copytree(os.path.join(DOCS_RUNNER, 'project'), os.path.join(self.path, 'project'))
        os.makedirs(os.path.join(self.path, 'inventory'))
        os.makedirs(os.path.join(self.path, 'env'))
        for name in ('settings', 'extravars'):
            shutil.copy(os.path.join(DOCS_RUNNER, 'env', name), os.path.join(self.path, 'env', name))
        with open(os.path.join(self.path, 'project', 'ansible.cfg'), 'w') as handle:
            handle.write('[defaults]\ninterpreter_python = auto_silent\n')
        self._write('env/envvars', {
            # This test's config, whatever ANSIBLE_CONFIG the caller has; the collection as the repository links it.
            'ANSIBLE_CONFIG': os.path.join(self.path, 'project', 'ansible.cfg'),
            'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS,
            'ANSIBLE_NOCOLOR': '1',
            'PATH': VENV_BIN + os.pathsep + os.environ.get('PATH', '/usr/bin:/bin'),  # the venv's ansible-playbook
        })
        os.mkdir(self.instances_path, 0o755)  # the kvm_host role (host.yml) makes it on a real host
        StateStore.open(self.state_db).close()
        conn = sqlite3.connect(self.state_db, isolation_level=None)
        try:
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('instances', ?)", (LOCAL_ID_BASE,))
        finally:
            conn.close()

    def _write(self, name, data):
        with open(os.path.join(self.path, name), 'w') as handle:
            yaml.safe_dump(data, handle, default_flow_style=False, sort_keys=False)

    def write_inventory(self):
        self._write('inventory/hosts', local_host_inventory(self.instances_path, self.state_db,
                                                            os.path.join(self.dir, 'timelines'), self.specs))

    def run(self, playbook, extravars):
        """ansible_runner.run() of project/<playbook>; returns (runner, events as event_handler got them)."""
        self.write_inventory()
        streamed = []

        def keep(event):
            streamed.append(event)
            return True

        runner = ansible_runner.run(private_data_dir=self.path, playbook=playbook, extravars=extravars,
                                    ident='%s-%s' % (playbook.split('.')[0], uuid_lib.uuid4().hex[:8]),
                                    quiet=True, suppress_env_files=True, event_handler=keep, timeout=300)
        return runner, streamed

    def record(self, uuid):
        result = run_module('instance_info', dict(uuid=uuid, state_db=self.state_db, include_deleted=True,
                                                  with_actions=True))
        assert not result.get('failed') and len(result['instances']) == 1, result
        return result['instances'][0]


def describe(runner):
    """For assertion messages: status, rc and the end of the run's stdout."""
    return 'status %s rc %s\n%s' % (runner.status, runner.rc, runner.stdout.read()[-4000:])


def check_run(runner, streamed, steps):
    """A successful run whose events (streamed, written and as runner.events) agree, whose step tasks ran in
    ``steps`` order and ended ok, and whose stats event counts no failure. Returns the written events."""
    assert runner.status == 'successful' and runner.rc == 0, describe(runner)
    artifacts = runner.config.artifact_dir
    with open(os.path.join(artifacts, 'status')) as handle:
        assert handle.read().strip() == 'successful'
    with open(os.path.join(artifacts, 'rc')) as handle:
        assert handle.read().strip() == '0'
    written = []
    job_events = os.path.join(artifacts, 'job_events')
    for name in os.listdir(job_events):
        assert name.endswith('.json'), name
        with open(os.path.join(job_events, name)) as handle:
            written.append(json.load(handle))
    written.sort(key=lambda event: event['counter'])
    assert [event['counter'] for event in written] == list(range(1, len(written) + 1))
    assert [event['uuid'] for event in written] == [event['uuid'] for event in runner.events]
    assert [event['uuid'] for event in streamed] == [event['uuid'] for event in written]
    assert written[0]['event'] == 'playbook_on_start' and written[-1]['event'] == 'playbook_on_stats'

    ok = [event['event_data']['task_action'] for event in written
          if event['event'] == 'runner_on_ok' and event['event_data']['task_action'].startswith('kvmhost.lifecycle.')]
    assert ok == steps, ok
    assert not [event for event in written if event['event'] in ('runner_on_failed', 'runner_on_unreachable')]
    stats = written[-1]['event_data']
    assert stats['failures'] == {} and stats['dark'] == {} and stats['changed'].get('localhost', 0) > 0, stats
    assert runner.stats['failures'] == {} and runner.stats['ok']['localhost'] > 0
    assert 'PLAY RECAP' in runner.stdout.read()
    return written


def timeline_message(written):
    """The message of the 'Show the step timeline' debug task."""
    (message,) = [event['event_data']['res']['msg'] for event in written
                  if event['event'] == 'runner_on_ok' and event['event_data']['task_action'] == 'ansible.builtin.debug'
                  and 'timeline' in event['event_data']['task']]
    return '\n'.join(message) if isinstance(message, list) else message


def domain_of(conn, uuid):
    try:
        return conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError:
        return None


@pytest.fixture
def private_data_dir(libvirt_conn, demo_images, libvirt_test_dir):  # pylint: disable=unused-argument
    """The private data directory; whatever instance of it the test left (a run that failed before delete.yml
    finished) is removed afterwards with the modules, as delete.yml would remove it."""
    pdd = PrivateDataDir(libvirt_test_dir)
    yield pdd
    failures = []
    for spec in pdd.specs:
        if domain_of(libvirt_conn, spec['uuid']) is None \
                and not os.path.exists(os.path.join(pdd.instances_path, spec['uuid'])):
            continue
        for module, args in [('domain', dict(uuid=spec['uuid'], state='absent', shutdown_timeout=0)),
                             ('instance_firewall', dict(instance_uuid=spec['uuid'], state='absent')),
                             ('instance_disk', dict(uuid=spec['uuid'], state='absent',
                                                    instances_path=pdd.instances_path))]:
            result = run_module(module, args)
            if result.get('failed'):
                failures.append((module, spec['uuid'], result.get('msg')))
    assert not failures, 'cleanup failed: %s' % failures


def test_boot_rebuild_delete_through_ansible_runner(private_data_dir, libvirt_conn, demo_images, demo_console):  # pylint: disable=redefined-outer-name
    pdd = private_data_dir
    uuid = str(uuid_lib.uuid4())
    pdd.specs.append({'uuid': uuid, 'name': '%srunner-%s' % (TEST_PREFIX, uuid[:8]), 'flavor': FLAVOR,
                      'image': image_spec(demo_images, 'demo-guest-v1'), 'vifs': [], 'volumes': [],
                      'security_groups': [{'name': 'default', 'rules': [{'direction': 'egress'}]}]})
    console = demo_console(os.path.join(pdd.instances_path, uuid, 'console.log'))
    runner, streamed = pdd.run('boot.yml', {'kvmhost_boot_uuids': [uuid]})
    written = check_run(runner, streamed, BOOT_STEPS)
    assert uuid in timeline_message(written) and 'spawning' in timeline_message(written)
    assert runner.config.ident.startswith('boot-')
    assert os.path.basename(runner.config.artifact_dir) == runner.config.ident
    dom = domain_of(libvirt_conn, uuid)
    assert dom is not None and dom.isActive() and re.fullmatch(r'instance-7e57f4[0-9a-f]{2}', dom.name())
    lines = console.wait_boot(BOOT_TIMEOUT)
    assert console.find(lines, r'disk vda marker=demo-guest-v1 boots=1'), lines

    pdd.specs[0]['image'] = image_spec(demo_images, 'demo-guest-v2')
    runner, streamed = pdd.run('rebuild.yml', {'kvmhost_rebuild_uuids': [uuid]})
    written = check_run(runner, streamed, REBUILD_STEPS)
    assert uuid in timeline_message(written) and 'shutdown_instance' in timeline_message(written)
    # The new instance directory has a console log of its own: read it from its start.
    lines = demo_console(console.path).wait_boot(BOOT_TIMEOUT)
    assert console.find(lines, r'disk vda marker=demo-guest-v2 boots=1'), lines
    record = pdd.record(uuid)
    assert (record['vm_state'], record['task_state'], record['live']['power_state']) == ('active', None, 1), record
    assert [action['action'] for action in record['actions']] == ['create', 'rebuild'], record['actions']

    runner, streamed = pdd.run('delete.yml', {'kvmhost_delete_uuids': [uuid]})
    assert runner.status == 'successful' and runner.rc == 0, describe(runner)
    stats = [event for event in runner.events if event['event'] == 'playbook_on_stats'][0]['event_data']
    assert stats['failures'] == {} and stats['changed'].get('localhost', 0) > 0, stats
    assert domain_of(libvirt_conn, uuid) is None
    assert not os.path.exists(os.path.join(pdd.instances_path, uuid))
    assert pdd.record(uuid)['deleted'] is True
