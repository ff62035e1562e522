# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LibvirtDriver: the one place a module's libvirt connection is made (before run) and closed (after it)."""

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt import connection as libvirt_connection
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.driver import LibvirtDriver


class FakeConnection(object):
    made = []

    def __init__(self, uri):
        self.uri = uri
        self.closed = False
        FakeConnection.made.append(self)

    def close(self):
        self.closed = True


class Module(object):
    def __init__(self, **params):
        self.params = dict(libvirt_uri='test:///default', **params)
        self.check_mode, self._diff = False, False

    def fail_json(self, msg, **_kwargs):
        raise KvmhostError(msg)


class Driver(LibvirtDriver):
    connection_class = FakeConnection
    seen = None

    def run(self):
        Driver.seen = self.connection
        if self.params.get('fail'):
            raise KvmhostError('the run failed')
        return {'changed': False}


@pytest.fixture(autouse=True)
def forget_connections():
    FakeConnection.made = []
    Driver.seen = None


def test_the_connection_is_made_before_run_and_closed_after_it():
    assert Driver(Module()).outcome() == {'changed': False}
    assert [connection.uri for connection in FakeConnection.made] == ['test:///default']
    assert Driver.seen is FakeConnection.made[0] and Driver.seen.closed


def test_a_failing_run_closes_the_connection_too():
    with pytest.raises(KvmhostError, match='the run failed'):
        Driver(Module(fail=True)).outcome()
    assert FakeConnection.made[0].closed


def test_a_given_connection_is_used_and_closed():
    given = FakeConnection('qemu:///given')
    Driver(Module(), given).outcome()
    assert FakeConnection.made == [given] and Driver.seen is given and given.closed


def test_without_libvirt_python_the_module_fails_before_run(monkeypatch):
    monkeypatch.setattr(libvirt_connection, 'HAS_LIBVIRT', False)
    with pytest.raises(KvmhostError, match='libvirt-python'):
        Driver(Module()).outcome()
    assert Driver.seen is None and FakeConnection.made == []


def test_a_driver_that_needs_libvirt_on_some_paths_connects_only_when_it_asks(monkeypatch):
    class Sometimes(Driver):
        connect_at_open = False

        def run(self):
            if self.params['live']:
                self.connect()
                self.connect()  # one connection for the run
            return super().run()

    Sometimes(Module(live=False)).outcome()
    assert Driver.seen is None and FakeConnection.made == []
    Sometimes(Module(live=True)).outcome()
    assert len(FakeConnection.made) == 1 and FakeConnection.made[0].closed
    monkeypatch.setattr(libvirt_connection, 'HAS_LIBVIRT', False)
    assert Sometimes(Module(live=False)).outcome() == {'changed': False}  # libvirt-python is not needed
