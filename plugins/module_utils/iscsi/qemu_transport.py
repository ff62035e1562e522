# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_attach with transport qemu: QEMU's own initiator, so nothing logs in on the host.

The transport checks that the target answers (:mod:`..iscsi.probe`), keeps the CHAP password in a libvirt secret
of usage type iscsi (usage id ``kvmhost-volume-<volume id>``, so the same volume always has the same secret UUID),
and gives the network disk with that secret's UUID: what domain_xml needs (``volume_secrets``) and what the hot
plug attaches.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.iscsi.probe import check_target_answers
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import libvirt
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain_xml import etree

SECRET_USAGE_PREFIX = 'kvmhost-volume-'
VIR_SECRET_USAGE_TYPE_ISCSI = 3
VIR_ERR_NO_SECRET = 66
PLACEHOLDER_UUID = '00000000-0000-0000-0000-000000000000'


def secret_usage(volume_id):
    return SECRET_USAGE_PREFIX + volume_id


def secret_xml(volume_id):
    secret = etree.Element('secret', ephemeral='no', private='no')
    etree.SubElement(secret, 'description').text = 'CHAP password of volume %s (kvmhost.lifecycle)' % volume_id
    usage = etree.SubElement(secret, 'usage', type='iscsi')
    etree.SubElement(usage, 'target').text = secret_usage(volume_id)
    return etree.tostring(secret, encoding='unicode')


class SecretStore(object):
    """libvirt secrets of usage type iscsi, through the module's libvirt connection seam."""

    def __init__(self, connection):
        self.connection = connection

    def lookup(self, volume_id):
        try:
            return self.connection.conn.secretLookupByUsage(VIR_SECRET_USAGE_TYPE_ISCSI, secret_usage(volume_id))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == VIR_ERR_NO_SECRET:
                return None
            raise

    def holds(self, secret, password):
        try:
            return secret.value() == password.encode('utf-8')
        except libvirt.libvirtError:
            return False  # no value set yet, or private

    def ensure(self, volume_id, password):
        secret = self.lookup(volume_id) or self.connection.conn.secretDefineXML(secret_xml(volume_id))
        secret.setValue(password.encode('utf-8'))
        return secret.UUIDString()


class QemuTransport(object):
    """The qemu side of one volume: its libvirt secret, the target's answer, the network disk."""

    name = 'qemu'

    def __init__(self, module, connection, discovery_runner, volume, disk, password):
        self.params = module.params
        self.discovery_runner = discovery_runner
        self.volume, self.disk, self.password = volume, disk, password
        self.attached = self.params['state'] == 'attached'
        self.store = SecretStore(connection)
        self.secret = None
        self.holder = {'uuid': None}

    def state(self):
        """The host's side now: whether the volume's secret exists."""
        self.secret = self.store.lookup(self.volume['id'])
        self.holder['uuid'] = self.secret.UUIDString() if self.secret is not None else None
        return {'secret': self.secret is not None}

    def plan_attach(self, plan):
        """Check that the target answers to the credentials, then store the CHAP password (or drop a secret no
        longer used)."""
        volume, disk, password = self.volume, self.disk, self.password
        volume_id, store, secret, holder = volume['id'], self.store, self.secret, self.holder
        host, port = disk.host, disk.port
        lun = int(disk.iscsi_name.rsplit('/', 1)[1])
        check_target_answers(self.discovery_runner, host, port, volume['target_iqn'], lun,
                             self.params['timeout'], disk.auth_username, password, field='volume')
        if password is not None and (secret is None or not store.holds(secret, password)):
            plan.add('store the CHAP password of volume %s in a libvirt secret' % volume_id,
                     lambda: holder.update(uuid=store.ensure(volume_id, password)))
        elif password is None and secret is not None:
            plan.add('remove the libvirt secret of volume %s' % volume_id, secret.undefine)
        plan.after['secret'] = password is not None

    def plan_detach(self, plan):
        if self.secret is not None:
            plan.add('remove the libvirt secret of volume %s' % self.volume['id'], self.secret.undefine)
        plan.after['secret'] = False

    def hotplug_disk(self):
        """The disk the domain gets, called when the step runs: with the secret stored by then (a placeholder
        UUID in check mode)."""
        return dataclasses.replace(self.disk, secret_uuid=self.holder['uuid'] or PLACEHOLDER_UUID)

    def secret_uuid(self):
        return self.holder['uuid'] if self.attached and self.password is not None else None

    def device_path(self):
        return None

    def source(self):
        disk = self.disk
        return {'protocol': 'iscsi', 'name': disk.iscsi_name, 'host': disk.host, 'port': disk.port,
                'username': disk.auth_username}

    def result_disk(self):
        """The disk of the result's disk_xml: none while the secret it needs does not exist (check mode)."""
        if self.attached and (self.secret_uuid() or self.password is None):
            return dataclasses.replace(self.disk, secret_uuid=self.holder['uuid'])
        return None
