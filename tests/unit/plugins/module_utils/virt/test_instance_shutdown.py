# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The instance_shutdown module's driver (ShutdownDriver): Nova's power_off of the domain found by UUID, a graceful
shutdown with re-sent requests, then destroy (through virt/power.py), and what it records.

libvirtd is not run by unit tests. The libvirt side is the real LibvirtConnection over a fake virConnect
(lookupByUUIDString raises libvirt's "no domain" error for a UUID it does not hold) whose fake virDomains keep their
state and every call made on them, and power off a set time after a given number of ACPI requests. A fake clock
advances when the code sleeps: a guest that ignores ACPI for 35 seconds costs no time. The driver runs through
``outcome()``, as run_module runs it, and a few tests run the module's own ``main()``.
tests/integration/test_power_and_lifecycle.py shuts real QEMU guests down through the real libvirtd.
"""

from __future__ import annotations

import re

import pytest

libvirt = pytest.importorskip('libvirt')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt import instance_shutdown  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.instance_shutdown import ShutdownDriver  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.power import VIR_ERR_OPERATION_INVALID  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.modules import instance_shutdown as shutdown_module  # noqa: E402

from .libvirt_fakes import (  # noqa: E402
    FakeModule, FakeVirConnectBase, libvirt_error, module_main_over, no_domain, outcome_over, refuse_real_libvirt)

UUID = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
# virDomainState
RUNNING, SHUTOFF, CRASHED = 1, 5, 6
VIR_ERR_INTERNAL_ERROR, VIR_ERR_SYSTEM_ERROR = 1, 38
CHANGING = ('create', 'shutdown', 'destroy', 'undefineFlags')
TIMESTAMP = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z')
DETAILS = ('seconds', 'clean', 'destroyed', 'shutdown_requests', 'started_at', 'finished_at')


class FakeVirDomain(object):
    """A virDomain of the fake virConnect; ``calls`` holds every call made on it.

    A running domain powers off ``off_delay`` seconds after its ``off_after_requests``-th ACPI request (never when
    None); destroy stops it at once. ``vanish_on_shutdown``: the domain is gone when the request comes (a transient
    domain that stopped between the state check and the request).
    """

    def __init__(self, conn, state=RUNNING, off_after_requests=None, off_delay=1.0, vanish_on_shutdown=False):
        self.conn = conn
        self._state = state
        self.domain_id = 3 if state == RUNNING else -1
        self.off_after_requests = off_after_requests
        self.off_delay = off_delay
        self.off_at = None
        self.vanish_on_shutdown = vanish_on_shutdown
        self.shutdown_error = None
        self.gone = False
        self.calls = []
        self.shutdown_times = []

    def _call(self, name):
        self.calls.append(name)
        if name in CHANGING:
            self.conn.changes.append(name)
        if self.gone:
            raise no_domain(UUID)

    def state(self):
        self._call('state')
        if self.off_at is not None and self.conn.clock.now() >= self.off_at:
            self._state, self.domain_id, self.off_at = SHUTOFF, -1, None
        return [self._state, 1]

    def name(self):
        self._call('name')
        return 'instance-00000001'

    def UUIDString(self):
        self._call('UUIDString')
        return UUID

    def ID(self):
        self._call('ID')
        return self.domain_id

    def shutdown(self):
        if self.vanish_on_shutdown:
            self.gone = True
        self._call('shutdown')
        if self.shutdown_error is not None:
            raise self.shutdown_error
        if self._state != RUNNING:
            raise libvirt_error(VIR_ERR_OPERATION_INVALID, 'Requested operation is not valid: domain is not running')
        self.shutdown_times.append(round(self.conn.clock.now() - 1000.0, 1))
        if len(self.shutdown_times) == self.off_after_requests:
            self.off_at = self.conn.clock.now() + self.off_delay

    def destroy(self):
        self._call('destroy')
        if self._state != RUNNING:
            raise libvirt_error(VIR_ERR_OPERATION_INVALID, 'Requested operation is not valid: domain is not running')
        self._state, self.domain_id, self.off_at = SHUTOFF, -1, None


class FakeVirConnect(FakeVirConnectBase):
    """The virConnect methods LibvirtConnection calls. ``calls`` holds the connection's calls, ``changes`` the names
    of the calls that change a domain, in order."""

    def add(self, **kwargs):
        self.domains[UUID] = FakeVirDomain(self, **kwargs)
        return self.domains[UUID]


@pytest.fixture(autouse=True)
def no_real_libvirt(monkeypatch):
    refuse_real_libvirt(monkeypatch)


def run_driver(conn, check_mode=False, diff=False, **params):
    """ShutdownDriver through outcome() on the real LibvirtConnection over ``conn``; (driver, result)."""
    params.setdefault('uuid', UUID)
    return outcome_over(ShutdownDriver, FakeModule(shutdown_module.ITEM_SPEC, check_mode, diff, **params), conn)


def run(conn, check_mode=False, diff=False, **params):
    return run_driver(conn, check_mode, diff, **params)[1]


def action(timeout=60, retry=10):
    return 'shut down domain %s (timeout %d s, retry every %d s)' % (UUID, timeout, retry)


def without_times(result):
    """The result without started_at and finished_at, which are the wall clock's (checked on their own)."""
    for key in ('started_at', 'finished_at'):
        assert result[key] is None or TIMESTAMP.match(result[key]), (key, result[key])
    return dict((key, value) for key, value in result.items() if key not in ('started_at', 'finished_at'))


OFF = {'defined': True, 'libvirt_state': 'shutoff', 'power_state': 4, 'found': True}


def already_off(libvirt_state='shutoff', power_state=4):
    return {'changed': False, 'actions': [], 'clean': True, 'already_off': True, 'destroyed': False,
            'shutdown_requests': 0, 'seconds': 0.0, 'messages': ['Instance already shutdown.'], 'started_at': None,
            'finished_at': None, 'defined': True, 'libvirt_state': libvirt_state, 'power_state': power_state,
            'found': True}


# ---------------------------------------------------------------- a running domain

@pytest.mark.parametrize('requests, sent_at, seconds', [
    (1, [0.0], 1.0),
    (2, [0.0, 3.0], 4.0),
    (4, [0.0, 3.0, 7.0, 11.0], 12.0),
])
def test_a_guest_that_powers_off_after_some_requests_is_shut_down_cleanly(requests, sent_at, seconds):
    conn = FakeVirConnect()
    guest = conn.add(off_after_requests=requests, off_delay=1.0)
    driver, result = run_driver(conn, retry_interval=3)
    messages = ['Instance shutdown successfully after %d seconds.' % seconds, 'Instance destroyed successfully.']
    assert without_times(result) == dict(OFF, changed=True, actions=[action(retry=3)], clean=True, already_off=False,
                                         destroyed=False, shutdown_requests=requests, seconds=seconds,
                                         messages=messages)
    # The request is re-sent as Nova re-sends it: at retry_interval, then every retry_interval + 1 seconds.
    assert guest.shutdown_times == sent_at
    assert conn.changes == ['shutdown'] * requests  # no destroy
    assert conn.clock.now() == 1000.0 + seconds  # the guest's power-off is seen at once
    assert result['started_at'] <= result['finished_at']
    assert driver.record_note(result) == ' '.join(messages)
    assert driver.record_details(result) == dict((key, result[key]) for key in DETAILS)
    assert driver.record_details(result)['shutdown_requests'] == requests

    driver, again = run_driver(conn, retry_interval=3)
    assert again == already_off()
    assert conn.changes == ['shutdown'] * requests
    assert driver.record_note(again) == 'Instance already shutdown.'


def test_a_guest_that_never_powers_off_is_destroyed_after_shutdown_timeout():
    conn = FakeVirConnect()
    guest = conn.add()
    driver, result = run_driver(conn, shutdown_timeout=35, retry_interval=10)
    messages = ['Instance failed to shutdown in 35 seconds.', 'Instance destroyed successfully.']
    assert without_times(result) == dict(OFF, changed=True, actions=[action(35, 10)], clean=False, already_off=False,
                                         destroyed=True, shutdown_requests=4, seconds=35.0, messages=messages)
    assert guest.shutdown_times == [0.0, 10.0, 21.0, 32.0]
    assert conn.changes == ['shutdown'] * 4 + ['destroy']
    assert driver.record_details(result) == {'seconds': 35.0, 'clean': False, 'destroyed': True,
                                             'shutdown_requests': 4, 'started_at': result['started_at'],
                                             'finished_at': result['finished_at']}
    assert driver.record_note(result) == ' '.join(messages)


def test_shutdown_timeout_zero_destroys_at_once():
    conn = FakeVirConnect()
    conn.add(off_after_requests=1)
    result = run(conn, shutdown_timeout=0)
    assert without_times(result) == dict(OFF, changed=True, actions=[action(0)], clean=False, already_off=False,
                                         destroyed=True, shutdown_requests=0, seconds=0.0,
                                         messages=['Instance destroyed successfully.'])
    assert conn.changes == ['destroy'] and conn.clock.now() == 1000.0


def test_started_at_is_taken_before_the_power_off_and_finished_at_after_it(monkeypatch):
    conn = FakeVirConnect()
    conn.add(off_after_requests=1, off_delay=2.5)
    monkeypatch.setattr(instance_shutdown, 'utcnow', lambda: 'clock %.1f' % conn.clock.now())
    result = run(conn)
    assert (result['started_at'], result['finished_at']) == ('clock 1000.0', 'clock 1002.5')


def test_the_domain_is_found_by_its_canonical_uuid_never_by_name():
    conn = FakeVirConnect()
    conn.add(state=SHUTOFF)
    assert run(conn, uuid=UUID.upper()) == already_off()
    assert conn.calls == [('lookupByUUIDString', UUID)]


def test_a_domain_gone_when_the_request_comes_is_off_not_an_error():
    conn = FakeVirConnect()
    conn.add(vanish_on_shutdown=True)
    result = run(conn)
    assert (result['changed'], result['found'], result['clean'], result['destroyed']) == (True, True, True, False)
    assert (result['shutdown_requests'], result['libvirt_state'], result['power_state']) == (0, None, 0)
    assert result['messages'] == ['Instance shutdown successfully after 0 seconds.', 'Instance destroyed successfully.']


# ---------------------------------------------------------------- nothing to do

@pytest.mark.parametrize('state, libvirt_state, power_state', [(SHUTOFF, 'shutoff', 4), (CRASHED, 'crashed', 6)])
def test_a_domain_already_off_is_left_as_it_is(state, libvirt_state, power_state):
    conn = FakeVirConnect()
    conn.add(state=state)
    driver, result = run_driver(conn)
    assert result == already_off(libvirt_state, power_state)
    assert conn.changes == []
    assert driver.record_note(result) == 'Instance already shutdown.'
    assert driver.record_details(result) == {'seconds': 0.0, 'clean': True, 'destroyed': False,
                                             'shutdown_requests': 0, 'started_at': None, 'finished_at': None}


def test_a_missing_domain_is_not_found_and_nothing_is_done():
    conn = FakeVirConnect()
    driver, result = run_driver(conn)
    message = 'Instance %s has no domain on this host.' % UUID
    assert result == {'changed': False, 'actions': [], 'clean': True, 'already_off': True, 'destroyed': False,
                      'shutdown_requests': 0, 'seconds': 0.0, 'messages': [message], 'started_at': None,
                      'finished_at': None, 'defined': False, 'libvirt_state': None, 'power_state': 0, 'found': False}
    assert conn.calls == [('lookupByUUIDString', UUID)]
    assert driver.record_note(result) == message


# ---------------------------------------------------------------- check mode and diff

def test_check_mode_predicts_the_power_off_and_calls_nothing_that_changes_the_domain():
    conn = FakeVirConnect()
    guest = conn.add(off_after_requests=1)
    driver, result = run_driver(conn, check_mode=True, diff=True)
    assert result == dict(OFF, changed=True, actions=[action()], clean=None, already_off=False, destroyed=None,
                          shutdown_requests=0, seconds=0.0, messages=[], started_at=None, finished_at=None,
                          diff={'before': {'defined': True, 'libvirt_state': 'running', 'power_state': 1},
                                'after': {'defined': True, 'libvirt_state': 'shutoff', 'power_state': 4}})
    assert conn.changes == [] and guest.state()[0] == RUNNING and conn.clock.now() == 1000.0
    assert driver.record_details(result)['clean'] is None


@pytest.mark.parametrize('state', [SHUTOFF, None])
def test_check_mode_of_nothing_to_do_is_the_run(state):
    results = []
    for check_mode in (True, False):
        conn = FakeVirConnect()
        if state is not None:
            conn.add(state=state)
        results.append(run(conn, check_mode=check_mode, diff=True))
        assert conn.changes == []
    assert results[0] == results[1]
    assert results[0]['changed'] is False and results[0]['diff']['before'] == results[0]['diff']['after']


def test_diff_of_a_power_off_and_no_diff_without_diff_mode():
    conn = FakeVirConnect()
    conn.add(off_after_requests=1)
    assert run(conn, diff=True)['diff'] == {'before': {'defined': True, 'libvirt_state': 'running', 'power_state': 1},
                                            'after': {'defined': True, 'libvirt_state': 'shutoff', 'power_state': 4}}
    assert 'diff' not in run(conn)


# ---------------------------------------------------------------- refused options, libvirt's errors

REFUSED = [
    (dict(uuid='instance-00000001'), 'uuid', "uuid: must be a UUID like 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0, got "
                                             "'instance-00000001'"),
    (dict(shutdown_timeout=-1), 'shutdown_timeout', 'shutdown_timeout: must be 0..3600 seconds, got -1'),
    (dict(shutdown_timeout=3601), 'shutdown_timeout', 'shutdown_timeout: must be 0..3600 seconds, got 3601'),
    (dict(retry_interval=0), 'retry_interval', 'retry_interval: must be 1..3600 seconds, got 0'),
    (dict(retry_interval=3601), 'retry_interval', 'retry_interval: must be 1..3600 seconds, got 3601'),
    (dict(shutdown_timeout='60'), 'shutdown_timeout', "shutdown_timeout: must be an integer, got '60'"),
]


@pytest.mark.parametrize('params, field, message', REFUSED, ids=[item[1] for item in REFUSED])
def test_a_bad_option_is_refused_before_libvirt_is_asked_anything(params, field, message):
    conn = FakeVirConnect()
    guest = conn.add()
    with pytest.raises(KvmhostError) as caught:
        run(conn, **params)
    assert caught.value.field == field and str(caught.value) == message
    assert conn.calls == [] and guest.calls == [] and conn.closed == 1


def test_a_libvirt_error_of_the_shutdown_names_the_step():
    conn = FakeVirConnect()
    conn.add().shutdown_error = libvirt_error(VIR_ERR_INTERNAL_ERROR, 'internal error: cannot send monitor command')
    with pytest.raises(KvmhostError) as caught:
        run(conn)
    assert str(caught.value) == 'failed to %s: libvirt: internal error: cannot send monitor command' % action()
    assert caught.value.applied == [] and conn.changes == ['shutdown'] and conn.closed == 1


def test_a_lookup_error_other_than_no_domain_is_libvirts_own_and_the_connection_is_closed():
    conn = FakeVirConnect()
    conn.lookup_error = libvirt_error(VIR_ERR_SYSTEM_ERROR, 'Cannot recv data: Connection reset by peer')
    with pytest.raises(libvirt.libvirtError) as caught:
        run(conn)
    assert caught.value is conn.lookup_error and conn.closed == 1


# ---------------------------------------------------------------- through the module's main()

def module_result(monkeypatch, capsys, conn, args):
    """shutdown's main() over ``conn``: exit code, JSON result, the URIs it connected to."""
    return module_main_over(monkeypatch, capsys, ShutdownDriver, shutdown_module.main, conn, args)


def test_the_module_shuts_down_and_returns_the_documented_values(monkeypatch, capsys):
    conn = FakeVirConnect()
    guest = conn.add()
    code, result, uris = module_result(monkeypatch, capsys, conn, {'uuid': UUID, 'shutdown_timeout': 5,
                                                                   'retry_interval': 2})
    assert code == 0 and uris == ['qemu:///system'] and conn.closed == 1
    assert guest.shutdown_times == [0.0, 2.0]
    expected = dict(OFF, changed=True, actions=[action(5, 2)], clean=False, already_off=False, destroyed=True,
                    shutdown_requests=2, seconds=5.0, messages=['Instance failed to shutdown in 5 seconds.',
                                                                'Instance destroyed successfully.'])
    assert without_times(dict((key, result[key]) for key in list(expected) + ['started_at', 'finished_at'])) == expected


def test_the_module_refuses_a_bad_option_before_it_connects(monkeypatch, capsys):
    conn = FakeVirConnect()
    code, result, uris = module_result(monkeypatch, capsys, conn, {'uuid': UUID, 'retry_interval': 0})
    assert code == 1 and result['failed'] is True
    assert result['msg'] == 'retry_interval: must be 1..3600 seconds, got 0'
    assert uris == [] and conn.calls == []


def test_the_module_fails_with_libvirts_message(monkeypatch, capsys):
    conn = FakeVirConnect()
    conn.lookup_error = libvirt_error(VIR_ERR_SYSTEM_ERROR, 'Cannot recv data: Connection reset by peer')
    code, result, _uris = module_result(monkeypatch, capsys, conn, {'uuid': UUID})
    assert code == 1 and result['failed'] is True
    assert result['msg'] == 'libvirt: Cannot recv data: Connection reset by peer'
    assert conn.closed == 1
