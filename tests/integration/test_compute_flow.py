# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The compute modules together, the way a boot and a rebuild use them, on real QEMU guests.

instance_image -> domain_xml -> domain (running) boots demo-guest-v1 and its console shows the
marker; instance_shutdown powers it off cleanly; instance_disk moves the old directory aside; a new
image from demo-guest-v2 starts under the same UUID with a fresh boot counter; and a rollback
(restore the old directory) brings the old disk back with its counter.
"""

from __future__ import annotations

import os
import uuid as uuid_lib

import pytest

from kvmhost_testlib import run_module

pytest.importorskip('libvirt')

LOCAL_ID = 0x7E57F000  # far above any real host-local id


def image_spec(images, image_id):
    entry = [item for item in images.manifest['images'] if item['id'] == image_id][0]
    return {'id': image_id, 'source': entry['path'], 'checksum': entry['checksum'],
            'kernel': str(images.kernel), 'ramdisk': str(images.initrd), 'cmdline': 'console=ttyS0 no_timer_check'}


@pytest.fixture
def instance(demo_images, libvirt_test_dir, libvirt_conn):
    uuid = str(uuid_lib.uuid4())
    spec = {'uuid': uuid, 'name': 'flow <test> & "quotes"',
            'flavor': {'vcpus': 1, 'memory_mb': 192, 'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0},
            'image': image_spec(demo_images, 'demo-guest-v1'), 'vifs': [], 'volumes': []}
    yield spec, str(libvirt_test_dir), demo_images
    run_module('domain', dict(uuid=uuid, state='absent', shutdown_timeout=0))


def boot(spec, instances_path, console):
    image = run_module('instance_image', dict(uuid=spec['uuid'], image=spec['image'], flavor=spec['flavor'],
                                              instances_path=instances_path))
    assert not image.get('failed'), image
    built = run_module('domain_xml', dict(instance=spec, local_id=LOCAL_ID, virt_type='qemu',
                                          instances_path=instances_path))
    assert not built.get('failed'), built
    console.mark()
    started = run_module('domain', dict(uuid=spec['uuid'], xml=built['xml']))
    assert started.get('power_state') == 1, started
    return console.wait_boot()


def shutdown(spec):
    result = run_module('instance_shutdown', dict(uuid=spec['uuid'], shutdown_timeout=30, retry_interval=10))
    assert (result['changed'], result['clean']) == (True, True), result
    return result


def disk(spec, instances_path, state):
    result = run_module('instance_disk', dict(uuid=spec['uuid'], instances_path=instances_path, state=state))
    assert not result.get('failed'), result
    return result


def test_rebuild_onto_a_new_image_then_roll_back(instance, demo_console):
    spec, instances_path, images = instance
    directory = os.path.join(instances_path, spec['uuid'])
    console = demo_console(os.path.join(directory, 'console.log'))
    lines = boot(spec, instances_path, console)
    assert 'disk vda marker=demo-guest-v1 boots=1' in lines

    shutdown(spec)
    disk(spec, instances_path, 'moved')
    assert not os.path.exists(directory) and os.path.isdir(directory + '_del')

    spec['image'] = image_spec(images, 'demo-guest-v2')
    console = demo_console(os.path.join(directory, 'console.log'))
    lines = boot(spec, instances_path, console)
    assert 'disk vda marker=demo-guest-v2 boots=1' in lines  # a new root disk: the counter starts again

    # Roll back: the new instance is discarded, the old directory comes back with its disk and counter.
    shutdown(spec)
    restored = disk(spec, instances_path, 'restored')
    assert restored['directory'] is True and restored['moved_aside'] is False
    console = demo_console(os.path.join(directory, 'console.log'))
    console.mark()
    assert run_module('domain', dict(uuid=spec['uuid']))['power_state'] == 1
    lines = console.wait_boot()
    assert 'disk vda marker=demo-guest-v1 boots=2' in lines


def test_rebuild_committed_keeps_only_the_new_instance(instance, demo_console):
    spec, instances_path, images = instance
    directory = os.path.join(instances_path, spec['uuid'])
    boot(spec, instances_path, demo_console(os.path.join(directory, 'console.log')))
    shutdown(spec)
    disk(spec, instances_path, 'moved')
    spec['image'] = image_spec(images, 'demo-guest-v2')
    lines = boot(spec, instances_path, demo_console(os.path.join(directory, 'console.log')))
    assert 'disk vda marker=demo-guest-v2 boots=1' in lines
    # The new domain runs: the old copy can go, and deleting it does not touch the running instance.
    committed = disk(spec, instances_path, 'committed')
    assert committed['changed'] is True and committed['moved_aside'] is False
    assert os.path.isdir(directory)
    assert disk(spec, instances_path, 'committed')['changed'] is False
