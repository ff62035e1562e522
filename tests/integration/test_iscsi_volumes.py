# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iSCSI volumes end to end against the real tgtd on 127.0.0.1:3260 and real QEMU guests.

iscsi_target exports a sparse file with CHAP; iscsi_attach (transport qemu) checks the target and keeps the
password in a libvirt secret; domain_xml + domain boot the demo guest with the volume as vdb. The guest writes a
counter block on the volume: it keeps counting across a reboot and a rebuild of the root disk, while the root's
own counter starts again. Everything (target, CHAP account, secret, domain, files) is removed in finalizers.
The persisted tgt configuration goes to a test directory, not /etc/tgt/conf.d. tgtd is restarted once, as the
kvm_host role starts it, while the guest runs with the volume attached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid as uuid_lib

import pytest

from kvmhost_testlib import restart_host_daemon, run_module

pytest.importorskip('libvirt')

LOCAL_ID = 0x7E57F100  # far above any real host-local id
PORTAL = '127.0.0.1:3260'


def tgt_sessions(iqn):
    """Connected initiators of the target, from tgtadm's own report."""
    text = subprocess.run(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'target'], capture_output=True,
                          text=True, check=True).stdout
    block = text.split('Target ')
    for part in block:
        if part.split('\n', 1)[0].endswith(': ' + iqn):
            return part.count('I_T nexus: ')
    return None


# tgtd as the kvm_host role starts it (host_daemon, defaults of roles/kvm_host).
TGTD = dict(name='tgtd', command=['tgtd', '-f', '--iscsi', 'portal=' + PORTAL], socket='/var/run/tgtd/socket.0',
            runtime_dirs=['/var/run/tgtd'], log_file='/var/log/kvmhost/tgtd.log')


def wait_sessions(iqn, count, timeout=60):
    deadline = time.monotonic() + timeout
    while tgt_sessions(iqn) != count and time.monotonic() < deadline:
        time.sleep(0.2)
    return tgt_sessions(iqn)


def rhythm(module, args):
    """Check mode, apply, idempotent check, idempotent apply; returns the apply result."""
    results = [run_module(module, args, check=check, diff=True) for check in (True, False, True, False)]
    for result in results:
        assert not result.get('failed'), result
    assert [r['changed'] for r in results] == [True, True, False, False], [r.get('actions') for r in results]
    assert results[0]['actions'] == results[1]['actions']
    return results[1]


@pytest.fixture
def export(iscsi_export):
    """The shared CHAP target of conftest.iscsi_export."""
    return iscsi_export


def volume_of(export, password=None):
    return {'id': str(uuid_lib.uuid4()), 'device_name': 'vdb', 'target_portal': PORTAL,
            'target_iqn': export['iqn'], 'target_lun': 1, 'transport': 'qemu',
            'auth': {'method': 'CHAP', 'username': export['chap_username'],
                     'password': password or export['chap_password']}}


def test_target_rhythm_persistence_and_refusals(export):
    created = rhythm('iscsi_target', export)
    assert created['target']['luns'] == {'1': export['luns'][0]['path']}
    assert created['target']['chap_username'] == export['chap_username']
    assert export['chap_password'] not in str(created)
    path = export['luns'][0]['path']
    assert os.stat(path).st_size == 16 * 1024 * 1024 and os.stat(path).st_blocks == 0  # sparse
    config = created['config_path']
    assert oct(os.stat(config).st_mode & 0o777) == '0o600'
    with open(config) as handle:
        text = handle.read()
    assert '<target %s>' % export['iqn'] in text and 'lun 1' in text
    assert 'incominguser %s %s' % (export['chap_username'], export['chap_password']) in text
    # A file present is never truncated or grown.
    again = run_module('iscsi_target', dict(export, luns=[dict(export['luns'][0], size='32M')]))
    assert again['changed'] is False and os.stat(path).st_size == 16 * 1024 * 1024

    bad = [(dict(export, iqn='iqn.26-11.bad'), 'iqn'),
           (dict(export, luns=[dict(export['luns'][0], lun=0)]), 'luns[0].lun'),
           (dict(export, luns=[dict(export['luns'][0], lun=16384)]), 'luns[0].lun'),
           (dict(export, luns=[dict(lun=2, path='/etc/kvmhost-vol.img', size='1M')]), 'luns[0].path'),
           (dict(export, luns=[dict(lun=2, path=os.path.dirname(path) + '/n.img', size='ten')]), 'luns[0].size')]
    for args, field in bad:
        result = run_module('iscsi_target', args)
        assert result.get('failed') and result['msg'].startswith(field), (field, result)
        assert export['chap_password'] not in str(result)
    assert run_module('iscsi_target', export)['changed'] is False  # the refusals changed nothing

    removed = run_module('iscsi_target', dict(export, state='absent'))
    assert removed['changed'] is True and not os.path.exists(config) and tgt_sessions(export['iqn']) is None
    assert os.path.exists(path)  # the data stays
    if shutil.which('tgt-admin'):
        # What tgt-admin -e (run when tgt starts) would do with the persisted file, printed, not done (--pretend).
        copy = os.path.join(os.path.dirname(config), 'pretend.conf')
        with open(copy, 'w') as handle:
            handle.write(text)
        commands = subprocess.run(['tgt-admin', '-c', copy, '-e', '-p'], capture_output=True, text=True,
                                  check=True).stdout
        assert '--op new --mode target --tid' in commands and '-T %s\n' % export['iqn'] in commands
        assert '--op new --mode logicalunit' in commands and '--lun 1 -b "%s"' % path in commands
        assert '-I 127.0.0.1' in commands and '--op bind --tid' in commands
        assert '--op new --user=%s ' % export['chap_username'] in commands
        assert tgt_sessions(export['iqn']) is None  # only printed


def test_attach_errors(export):
    rhythm('iscsi_target', export)
    volume = volume_of(export, password='wrong-password-1')
    failed = run_module('iscsi_attach', dict(volume=volume))
    assert failed.get('failed') and 'authentication failed' in failed['msg'], failed
    assert 'wrong-password-1' not in str(failed) and export['iqn'] in failed['msg']
    lun = run_module('iscsi_attach', dict(volume=dict(volume_of(export), target_lun=7)))
    assert lun.get('failed') and 'does not export LUN 7' in lun['msg'] and lun['msg'].startswith('volume.target_lun')
    controller = run_module('iscsi_attach', dict(volume=dict(volume_of(export), target_lun=0)))
    assert controller.get('failed') and 'is not a disk' in controller['msg'], controller
    other = run_module('iscsi_attach', dict(volume=dict(volume_of(export), target_iqn=export['iqn'] + 'x')))
    assert other.get('failed') and 'does not export target' in other['msg'], other
    refused = run_module('iscsi_attach', dict(volume=dict(volume_of(export), target_portal='127.0.0.1:1')))
    assert refused.get('failed') and refused['msg'].startswith('volume.target_portal'), refused
    started = time.monotonic()
    unreachable = run_module('iscsi_attach', dict(volume=dict(volume_of(export), target_portal='192.0.2.1:3260'),
                                                  timeout=2))
    assert unreachable.get('failed') and '192.0.2.1:3260' in unreachable['msg'], unreachable
    assert time.monotonic() - started < 10
    portal = run_module('iscsi_attach', dict(volume=dict(volume_of(export), target_portal='127.0.0.1')))
    assert portal.get('failed') and portal['msg'].startswith('volume.target_portal'), portal


def image_spec(images, image_id):
    entry = [item for item in images.manifest['images'] if item['id'] == image_id][0]
    return {'id': image_id, 'source': entry['path'], 'checksum': entry['checksum'],
            'kernel': str(images.kernel), 'ramdisk': str(images.initrd), 'cmdline': 'console=ttyS0 no_timer_check'}


@pytest.fixture
def instance(export, demo_images, libvirt_test_dir, libvirt_conn):
    uuid = str(uuid_lib.uuid4())
    spec = {'uuid': uuid, 'name': 'iscsi-test',
            'flavor': {'vcpus': 1, 'memory_mb': 192, 'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0},
            'image': image_spec(demo_images, 'demo-guest-v1'), 'vifs': [], 'volumes': [volume_of(export)]}
    instances_path = libvirt_test_dir / 'instances'
    instances_path.mkdir()
    yield spec, str(instances_path), demo_images
    run_module('domain', dict(uuid=uuid, state='absent', shutdown_timeout=0))
    run_module('iscsi_attach', dict(volume=spec['volumes'][0], state='detached'))


def boot(spec, instances_path, secrets_by_volume, console):
    image = run_module('instance_image', dict(uuid=spec['uuid'], image=spec['image'], flavor=spec['flavor'],
                                              instances_path=instances_path))
    assert not image.get('failed'), image
    built = run_module('domain_xml', dict(instance=spec, local_id=LOCAL_ID, virt_type='qemu',
                                          instances_path=instances_path, volume_secrets=secrets_by_volume))
    assert not built.get('failed'), built
    console.mark()
    started = run_module('domain', dict(uuid=spec['uuid'], xml=built['xml']))
    assert started.get('power_state') == 1, started
    return console.wait_boot()


def shutdown(spec):
    result = run_module('instance_shutdown', dict(uuid=spec['uuid'], shutdown_timeout=30, retry_interval=10))
    assert result['changed'] is True and result['clean'] is True, result


def test_volume_survives_reboot_and_rebuild(export, instance, demo_console):
    spec, instances_path, images = instance
    rhythm('iscsi_target', export)
    volume = spec['volumes'][0]
    attached = rhythm('iscsi_attach', dict(volume=volume))
    assert attached['secret_uuid'] and attached['volume_secrets'] == {volume['id']: attached['secret_uuid']}
    assert volume['auth']['password'] not in str(attached)
    again = run_module('iscsi_attach', dict(volume=volume))
    assert again['secret_uuid'] == attached['secret_uuid']  # same usage, same secret

    directory = os.path.join(instances_path, spec['uuid'])
    console = demo_console(os.path.join(directory, 'console.log'))
    lines = boot(spec, instances_path, attached['volume_secrets'], console)
    assert 'disk vda marker=demo-guest-v1 boots=1' in lines and 'disk vdb unformatted' in lines, lines
    assert tgt_sessions(export['iqn']) == 1

    shutdown(spec)  # reboot: shutdown and start
    console.mark()
    assert run_module('domain', dict(uuid=spec['uuid']))['power_state'] == 1
    lines = console.wait_boot()
    assert 'disk vda marker=demo-guest-v1 boots=2' in lines and 'disk vdb counter boots=2' in lines, lines

    # tgtd restarts under the running guest: it comes back empty; the persisted configuration makes the target
    # again (as the kvm_host role does after it starts tgtd: tgt-admin --execute), identical to its spec, and
    # QEMU's initiator logs in again by itself; the guest's next boot reads and writes the volume.
    restart_host_daemon(TGTD, 10, kill_after=True)
    assert tgt_sessions(export['iqn']) is None  # no such target any more
    subprocess.run(['tgt-admin', '--execute', '--conf', os.path.join(export['config_dir'],
                                                                     'kvmhost-%s.conf' % export['iqn'])],
                   capture_output=True, check=True)
    restored = run_module('iscsi_target', export)
    assert restored['changed'] is False and not restored.get('failed'), restored
    assert wait_sessions(export['iqn'], 1) == 1
    assert run_module('domain', dict(uuid=spec['uuid']))['power_state'] == 1  # the guest ran on
    shutdown(spec)
    console.mark()
    assert run_module('domain', dict(uuid=spec['uuid']))['power_state'] == 1
    lines = console.wait_boot()
    assert 'disk vdb counter boots=3' in lines, lines

    # Rebuild: the root directory moves aside, a new image; the same volume comes back.
    shutdown(spec)
    moved = run_module('instance_disk', dict(uuid=spec['uuid'], instances_path=instances_path, state='moved'))
    assert not moved.get('failed'), moved
    spec['image'] = image_spec(images, 'demo-guest-v2')
    console = demo_console(os.path.join(directory, 'console.log'))
    lines = boot(spec, instances_path, attached['volume_secrets'], console)
    assert 'disk vda marker=demo-guest-v2 boots=1' in lines and 'disk vdb counter boots=4' in lines, lines

    # Hot-unplug from the running guest (live and persistent), then the secret goes.
    detach = dict(volume=volume, domain_uuid=spec['uuid'], state='detached')
    detached = rhythm('iscsi_attach', detach)
    assert detached['domain_attached'] is False and detached['secret_uuid'] is None
    deadline = time.monotonic() + 10
    while tgt_sessions(export['iqn']) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tgt_sessions(export['iqn']) == 0

    # Hot-plug it back (the secret is recreated under the same usage) and detach again.
    plugged = rhythm('iscsi_attach', dict(volume=volume, domain_uuid=spec['uuid']))
    assert plugged['domain_attached'] is True
    deadline = time.monotonic() + 10
    while tgt_sessions(export['iqn']) != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tgt_sessions(export['iqn']) == 1
    refused = run_module('iscsi_target', dict(export, state='absent'))
    assert refused.get('failed') and 'session' in refused['msg'] and refused['msg'].startswith('force'), refused
    rhythm('iscsi_attach', detach)


@pytest.mark.skipif(not os.path.exists('/sys/module/iscsi_tcp'),
                    reason='the kernel has no iscsi_tcp module: iscsiadm cannot log in here '
                           '(tests/unit/plugins/module_utils/iscsi/test_host_transport.py replays iscsiadm instead)')
def test_host_transport(export):
    if shutil.which('iscsiadm') is None:
        pytest.skip('open-iscsi is not installed')
    rhythm('iscsi_target', export)
    volume = dict(volume_of(export), transport='host')
    try:
        attached = rhythm('iscsi_attach', dict(volume=volume))
        assert os.path.exists(attached['device_path']), attached
        assert attached['host_volume_paths'] == {volume['id']: attached['device_path']}
        assert export['chap_password'] not in str(attached)
        assert tgt_sessions(export['iqn']) == 1
        wrong = run_module('iscsi_attach', dict(volume=dict(volume, auth=dict(volume['auth'], password='bad-pw-1')),
                                                state='attached'))
        assert wrong['changed'] is False or 'authentication failed' in wrong.get('msg', '')
    finally:
        detached = run_module('iscsi_attach', dict(volume=volume, state='detached'))
    assert not detached.get('failed'), detached
    assert tgt_sessions(export['iqn']) == 0
