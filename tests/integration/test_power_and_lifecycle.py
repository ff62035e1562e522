# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""domain, instance_shutdown and instance_disk against real QEMU guests (virt_type qemu).

The domains here come from a small hand-written XML, so these tests depend only on the demo images;
test_compute_flow.py runs the same modules on the XML that domain_xml builds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid as uuid_lib
from xml.sax.saxutils import escape, quoteattr

import pytest

from kvmhost_testlib import run_module

libvirt = pytest.importorskip('libvirt')


def guest_xml(uuid, name, images, directory, cmdline='console=ttyS0 no_timer_check'):
    return '''<domain type='qemu'>
  <name>%s</name>
  <uuid>%s</uuid>
  <memory unit='MiB'>192</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>%s</kernel><initrd>%s</initrd><cmdline>%s</cmdline></os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/>
      <source file=%s/><target dev='vda' bus='virtio'/></disk>
    <serial type='file'><source path=%s append='on'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>''' % (escape(name), uuid, images.kernel, images.initrd, escape(cmdline),
                quoteattr(str(directory / 'disk')), quoteattr(str(directory / 'console.log')))


@pytest.fixture
def guest(demo_images, libvirt_test_dir, libvirt_test_domains, libvirt_conn, demo_console):
    """Factory for a demo guest's uuid, XML and console; the domain is undefined after the test."""
    made = []

    def make(cmdline='console=ttyS0 no_timer_check'):
        uuid = str(uuid_lib.uuid4())
        directory = libvirt_test_dir / uuid
        directory.mkdir(mode=0o755)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b',
                        str(demo_images.image('demo-guest-v1')), str(directory / 'disk')], check=True)
        xml = guest_xml(uuid, libvirt_test_domains.unique_name('power'), demo_images, directory, cmdline)
        made.append(uuid)
        return uuid, xml, demo_console(directory / 'console.log'), directory
    yield make
    for uuid in made:
        try:
            libvirt_test_domains.defined.append(libvirt_conn.lookupByUUIDString(uuid))
        except libvirt.libvirtError:
            pass


def domain(uuid, check=False, diff=False, **args):
    return run_module('domain', dict(args, uuid=uuid), check=check, diff=diff)


def test_domain_running_check_apply_idempotent(guest, libvirt_conn):
    uuid, xml, console, _directory = guest()
    checked = domain(uuid, xml=xml, check=True, diff=True)
    assert checked['changed'] is True and checked['libvirt_state'] == 'running'  # the prediction
    with pytest.raises(libvirt.libvirtError):
        libvirt_conn.lookupByUUIDString(uuid)  # and nothing done
    assert checked['diff']['before']['defined'] is False and checked['diff']['after']['libvirt_state'] == 'running'
    console.mark()
    started = domain(uuid, xml=xml)
    assert started['changed'] is True, started
    assert (started['libvirt_state'], started['power_state']) == ('running', 1)
    console.wait_boot()
    # libvirt filled the definition with defaults: none of that may count as drift.
    for check in (True, False):
        again = domain(uuid, xml=xml, check=check)
        assert again['changed'] is False, again
        assert again['drift'] == []


def test_redefinition_of_a_running_domain_says_restart_required(guest):
    uuid, xml, _console, _directory = guest()
    domain(uuid, xml=xml)
    drifted = xml.replace("<memory unit='MiB'>192</memory>", "<memory unit='MiB'>224</memory>")
    # Check mode predicts a redefine with restart needed, and its diff is the drift the check found.
    predicted = domain(uuid, xml=drifted, check=True, diff=True)
    assert predicted['changed'] is True and predicted['restart_required'] is True
    assert predicted['diff']['before']['drift'] == predicted['drift']
    assert len(predicted['drift']) == 1 and predicted['drift'][0].startswith('/domain/memory: 224 MiB wanted')
    assert predicted['diff']['after']['drift'] == [] and predicted['diff']['after']['restart_required'] is True
    assert 'xml' not in predicted and 'xml' not in predicted['diff']['before']
    assert domain(uuid, xml=xml, check=True)['drift'] == []  # nothing was redefined
    changed = domain(uuid, xml=drifted)
    assert changed['changed'] is True
    assert changed['drift'] and changed['drift'][0].startswith('/domain/memory')
    assert changed['restart_required'] is True


def test_graceful_shutdown_is_clean(guest):
    uuid, xml, console, _directory = guest()
    console.mark()
    domain(uuid, xml=xml)
    console.wait_for('acpi ready')
    console.wait_boot()
    assert run_module('instance_shutdown', dict(uuid=uuid), check=True)['changed'] is True
    result = run_module('instance_shutdown', dict(uuid=uuid, shutdown_timeout=30, retry_interval=10))
    assert result['changed'] is True, result
    assert (result['clean'], result['destroyed'], result['shutdown_requests']) == (True, False, 1)
    assert result['seconds'] < 15
    assert result['messages'][0].startswith('Instance shutdown successfully after ')
    assert (result['libvirt_state'], result['power_state']) == ('shutoff', 4)
    for check in (True, False):
        again = run_module('instance_shutdown', dict(uuid=uuid), check=check)
        assert again['changed'] is False and again['messages'] == ['Instance already shutdown.']


def test_guest_ignoring_acpi_takes_the_timeout_path(guest):
    uuid, xml, console, _directory = guest(cmdline='console=ttyS0 no_timer_check kvmhost.noacpi=1')
    console.mark()
    domain(uuid, xml=xml)
    console.wait_for('acpi ignored')
    console.wait_boot()
    result = run_module('instance_shutdown', dict(uuid=uuid, shutdown_timeout=3, retry_interval=1))
    assert (result['clean'], result['destroyed']) == (False, True), result
    assert result['shutdown_requests'] == 2  # at 0 s and at 2 s: countdown 1 -> 0 -> re-send
    assert result['messages'] == ['Instance failed to shutdown in 3 seconds.', 'Instance destroyed successfully.']
    assert result['power_state'] == 4


def test_stopped_and_absent(guest, libvirt_conn):
    uuid, xml, console, _directory = guest()
    console.mark()
    domain(uuid, xml=xml)
    console.wait_boot()
    stopped = domain(uuid, state='stopped', shutdown_timeout=30)
    assert stopped['changed'] is True and stopped['power_off']['clean'] is True
    assert domain(uuid, state='stopped')['changed'] is False
    assert domain(uuid, state='absent', check=True)['changed'] is True
    absent = domain(uuid, state='absent')
    assert (absent['changed'], absent['defined']) == (True, False)
    with pytest.raises(libvirt.libvirtError):
        libvirt_conn.lookupByUUIDString(uuid)
    assert domain(uuid, state='absent')['changed'] is False


@pytest.mark.parametrize('mangle, message', [
    (lambda xml: xml.replace("bus='virtio'", "bus='nonsense'"), 'xml: libvirt rejected the domain XML: '),
    (lambda xml: xml.replace('<uuid>', '<uuid>0'), 'xml: its <uuid> is'),
    (lambda xml: xml.replace('</domain>', ''), 'xml: is not well-formed XML'),
])
def test_bad_xml_is_refused_with_the_cause(guest, libvirt_conn, mangle, message):
    uuid, xml, _console, _directory = guest()
    result = domain(uuid, xml=mangle(xml))
    assert result['failed'] is True and result['msg'].startswith(message), result
    with pytest.raises(libvirt.libvirtError):
        libvirt_conn.lookupByUUIDString(uuid)


def test_bad_uuid_and_options():
    assert domain('instance-00000001', state='absent')['msg'].startswith('uuid: must be a UUID')
    result = run_module('instance_shutdown', dict(uuid=str(uuid_lib.uuid4()), shutdown_timeout=-1))
    assert result['msg'].startswith('shutdown_timeout: must be 0')
    missing = run_module('instance_shutdown', dict(uuid=str(uuid_lib.uuid4())))
    assert (missing['changed'], missing['found']) == (False, False)


def test_instance_disk_refuses_a_running_domain_then_moves_and_restores(guest):
    uuid, xml, console, directory = guest()
    instances_path = str(directory.parent)
    console.mark()
    domain(uuid, xml=xml)
    refused = run_module('instance_disk', dict(uuid=uuid, instances_path=instances_path, state='absent'))
    assert refused['failed'] is True and 'not shut off' in refused['msg']
    assert directory.is_dir()
    run_module('instance_shutdown', dict(uuid=uuid, shutdown_timeout=0))
    args = dict(uuid=uuid, instances_path=instances_path)
    checked = run_module('instance_disk', dict(args, state='moved'), check=True, diff=True)
    assert checked['changed'] is True and directory.is_dir()
    assert checked['diff'] == {'before': {'directory': True, 'moved_aside': False},
                               'after': {'directory': False, 'moved_aside': True}}
    moved = run_module('instance_disk', dict(args, state='moved'))
    assert (moved['changed'], moved['directory'], moved['moved_aside']) == (True, False, True)
    assert run_module('instance_disk', dict(args, state='moved'))['changed'] is False
    restored = run_module('instance_disk', dict(args, state='restored'))
    assert (restored['directory'], restored['moved_aside']) == (True, False)
    assert (directory / 'disk').is_file()
    for check in (True, False):
        assert run_module('instance_disk', dict(args, state='absent'), check=check)['changed'] is True
    assert not directory.exists() and not os.path.exists(str(directory) + '_del')
    assert run_module('instance_disk', dict(args, state='absent'))['changed'] is False


def test_instance_disk_killed_between_rename_and_delete_is_finished_next_run(libvirt_test_dir):
    uuid = str(uuid_lib.uuid4())
    directory = libvirt_test_dir / uuid
    directory.mkdir()
    # Enough files that removing the tree takes a while after the (instant) rename.
    for index in range(200):
        sub = directory / ('d%03d' % index)
        sub.mkdir()
        for name in range(150):
            (sub / str(name)).write_bytes(b'x')
    moved = str(directory) + '_del'
    from kvmhost_testlib import COLLECTIONS  # pylint: disable=import-outside-toplevel
    import json  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    process = subprocess.Popen(
        [sys.executable, '-m', 'ansible_collections.kvmhost.lifecycle.plugins.modules.instance_disk'],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=COLLECTIONS), cwd='/')
    process.stdin.write(json.dumps({'ANSIBLE_MODULE_ARGS': dict(uuid=uuid, instances_path=str(libvirt_test_dir),
                                                                state='absent')}).encode())
    process.stdin.close()
    deadline = time.monotonic() + 30
    while not os.path.exists(moved) and time.monotonic() < deadline:
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not directory.exists() and os.path.isdir(moved), 'the kill did not land between rename and delete'
    finished = run_module('instance_disk', dict(uuid=uuid, instances_path=str(libvirt_test_dir), state='absent'))
    assert finished['changed'] is True and finished['actions'] == ['remove %s' % moved]
    assert not os.path.exists(moved)


@pytest.mark.parametrize('args, message', [
    (dict(uuid='../etc', instances_path='/var/lib/kvmhost/instances'), 'uuid: must be a UUID'),
    (dict(uuid='1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0', instances_path='relative/path'),
     'instances_path: must be an absolute path'),
    (dict(uuid='1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0', instances_path='/nonexistent-kvmhost'),
     'instances_path: /nonexistent-kvmhost is not a directory'),
    (dict(uuid='1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0', instances_path='/'),
     'instances_path: must not be the root directory'),
])
def test_instance_disk_bad_input(args, message):
    result = run_module('instance_disk', args)
    assert result['failed'] is True and result['msg'].startswith(message), result


def test_instance_disk_refuses_a_symlink(libvirt_test_dir, tmp_path):
    uuid = str(uuid_lib.uuid4())
    target = tmp_path / 'elsewhere'
    target.mkdir()
    os.symlink(str(target), str(libvirt_test_dir / uuid))
    result = run_module('instance_disk', dict(uuid=uuid, instances_path=str(libvirt_test_dir)))
    assert result['failed'] is True and 'is a symbolic link' in result['msg']
    assert target.is_dir()
