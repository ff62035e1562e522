# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the unit tests of the libvirt drivers (test_domain, test_instance_shutdown) share: libvirt's errors as
libvirt-python raises them, a fake clock, the part of virConnect every driver uses (lookup by UUID only, close), a
fake AnsibleModule with a module's defaults, and a driver run through ``outcome()`` on the real LibvirtConnection.
libvirtd is not run by unit tests; each test file's fake virDomain holds what its driver needs."""

from __future__ import annotations

import json

import libvirt
import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import (
    VIR_ERR_NO_DOMAIN, LibvirtConnection)


def libvirt_error(code, message):
    """A libvirtError as libvirt-python raises it, its code and message in ``err``."""
    error = libvirt.libvirtError(message)
    error.err = (code, 0, message, 0, '', '', '', 0, 0)
    return error


def no_domain(uuid):
    return libvirt_error(VIR_ERR_NO_DOMAIN, "Domain not found: no domain with matching uuid '%s'" % uuid)


class FakeClock(object):
    def __init__(self):
        self.time = 1000.0

    def now(self):
        return self.time

    def sleep(self, seconds):
        self.time = round(self.time + seconds, 6)


class FakeVirConnectBase(object):
    """The virConnect methods every driver calls. ``calls`` holds the connection's calls, ``changes`` the names of
    the calls that change something, on the connection and its domains, in order; ``domains`` maps UUID to the
    test file's fake virDomain."""

    def __init__(self):
        self.clock = FakeClock()
        self.domains = {}
        self.calls = []
        self.changes = []
        self.closed = 0
        self.lookup_error = None

    def lookupByUUIDString(self, uuid):
        self.calls.append(('lookupByUUIDString', uuid))
        if self.lookup_error is not None:
            raise self.lookup_error
        if uuid not in self.domains:
            raise no_domain(uuid)
        return self.domains[uuid]

    def lookupByName(self, name):
        self.calls.append(('lookupByName', name))
        raise AssertionError('a domain is found by its UUID, never by its name')

    def close(self):
        self.closed += 1


class FakeModule(object):
    """What a driver uses of AnsibleModule: the parameters, with the defaults of the module's own spec, and the
    modes."""

    def __init__(self, spec, check_mode=False, diff=False, **params):
        self.params = dict((name, option.get('default')) for name, option in spec.items())
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = diff

    def fail_json(self, msg, **_kwargs):
        raise AssertionError(msg)


def refuse_real_libvirt(monkeypatch):
    """A unit test that reached for libvirtd fails instead of connecting."""
    def refuse(uri):
        raise AssertionError('unit tests connect to no libvirtd (%s)' % uri)
    monkeypatch.setattr(libvirt, 'open', refuse)


def outcome_over(driver_class, module, conn):
    """The driver through outcome() on the real LibvirtConnection over the fake ``conn``, which must be closed
    once; (driver, result)."""
    live = LibvirtConnection('qemu:///system')
    live._conn = conn  # pylint: disable=protected-access
    driver = driver_class(module, connection=live)
    driver.clock = conn.clock
    closed = conn.closed
    result = driver.outcome()
    assert conn.closed == closed + 1
    return driver, result


def module_main_over(monkeypatch, capsys, driver_class, module_main, conn, args):
    """A module's main() with the real LibvirtConnection over ``conn``; its exit code, JSON result and the URIs
    it connected to."""
    uris = []

    class Connection(LibvirtConnection):
        def __init__(self, uri):
            super().__init__(uri)
            self._conn = conn
            uris.append(uri)

    monkeypatch.setattr(driver_class, 'connection_class', Connection)
    monkeypatch.setattr(driver_class, 'clock', conn.clock)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exited:
            module_main()
    return exited.value.code, json.loads(capsys.readouterr().out), uris
