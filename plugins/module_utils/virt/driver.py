# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the drivers of the modules that need libvirt share: LibvirtDriver (the one place their connection is
made and closed), the facts of a domain for results and diffs (describe), and the checks of the shutdown
options."""

from __future__ import annotations

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import ModuleDriver
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import MAX_TIMEOUT, check_int
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import (
    NOSTATE, LibvirtConnection, require_libvirt)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.power import Clock, power_state_of

VIR_DOMAIN_XML_INACTIVE = 2


def describe(domain):
    """Facts of a domain (or of none) for results and diffs."""
    if domain is None:
        return {'defined': False, 'libvirt_state': None, 'power_state': NOSTATE}
    power_state, name = power_state_of(domain)
    return {'defined': True, 'libvirt_state': name, 'power_state': power_state}


def check_shutdown_options(params):
    """shutdown_timeout (0 destroys at once) and retry_interval, in seconds."""
    check_int(params['shutdown_timeout'], 'shutdown_timeout', 0, MAX_TIMEOUT, 'seconds')
    check_int(params['retry_interval'], 'retry_interval', 1, MAX_TIMEOUT, 'seconds')


class LibvirtDriver(ModuleDriver):
    """A driver that needs libvirt: the one place a module's libvirt connection is made and closed.

    ``open()`` (before ``run()``) requires libvirt-python and makes the connection, which connects at its first
    call; ``close()`` (after ``run()``, whatever happened) closes it. A driver that needs libvirt on some of its
    paths only sets ``connect_at_open`` False and calls ``connect()`` where it does. Tests give a fake through
    ``connection_class`` or the ``connection`` argument.
    """

    connection_class = LibvirtConnection
    clock = Clock
    connect_at_open = True

    def __init__(self, module, connection=None):
        super().__init__(module)
        self.connection = connection

    def open(self):
        if self.connect_at_open:
            self.connect()

    def connect(self):
        """The run's libvirt connection, made at the first call."""
        if self.connection is None:
            require_libvirt(self.module)
            self.connection = self.connection_class(self.params['libvirt_uri'])
        return self.connection

    def close(self):
        if self.connection is not None:
            self.connection.close()
