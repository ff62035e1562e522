# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Nova's shutdown and destroy semantics, second by second.

A fake domain and a fake clock stand in for libvirt and time here: a real guest that ignores
ACPI for 60 seconds would make the suite wait a minute per case. The same paths run against real
QEMU guests in tests/integration/test_power_and_lifecycle.py, with short timeouts.
"""

from __future__ import annotations

import pytest

libvirt = pytest.importorskip('libvirt')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt import power  # noqa: E402

RUNNING, SHUTOFF, CRASHED = 1, 5, 6


class FakeClock(object):
    def __init__(self):
        self.time = 1000.0

    def now(self):
        return self.time

    def sleep(self, seconds):
        self.time = round(self.time + seconds, 6)  # no drift from adding 0.1 many times


class FakeDomain(object):
    """A guest that powers off ``off_after`` seconds after the first ACPI request (never when None)."""

    def __init__(self, clock, state=RUNNING, off_after=None, destroy_takes=0.0, comes_back=0):
        self.clock = clock
        self._state = state
        self.off_after = off_after
        self.destroy_takes = destroy_takes
        self.comes_back = comes_back  # times the domain restarts with a new id after a destroy
        self.shutdown_times = []
        self.destroy_calls = 0
        self.off_at = None
        self.domain_id = 7

    def state(self):
        if self.off_at is not None and self.clock.now() >= self.off_at:
            if self.comes_back:
                self.comes_back -= 1
                self.domain_id += 1
                self.off_at = None
                self._state = RUNNING
            else:
                self._state = SHUTOFF
        return self._state, 0

    def shutdown(self):
        self.shutdown_times.append(round(self.clock.now() - 1000.0, 1))
        if self.off_after is not None and self.off_at is None:
            self.off_at = self.clock.now() + self.off_after

    def destroy(self):
        self.destroy_calls += 1
        if self.state()[0] == SHUTOFF:
            error = libvirt.libvirtError('Requested operation is not valid: domain is not running')
            error.err = (power.VIR_ERR_OPERATION_INVALID, 0, 'domain is not running', 0, '', '', '', 0, 0)
            raise error
        self.off_at = self.clock.now() + self.destroy_takes

    def ID(self):
        return self.domain_id if self._state == RUNNING else -1

    def UUIDString(self):
        return '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'


def test_guest_that_powers_off_is_clean_with_one_request():
    clock = FakeClock()
    domain = FakeDomain(clock, off_after=2.0)
    result = power.power_off(domain, timeout=60, retry_interval=10, clock=clock)
    assert result.clean and not result.destroyed
    assert result.shutdown_requests == 1
    assert 2.0 <= result.seconds < 2.2  # seen within one 0.1 s poll, not the next whole second
    assert result.messages == ['Instance shutdown successfully after 2 seconds.', 'Instance destroyed successfully.']


def test_requests_are_resent_as_nova_resends_them():
    # Nova: countdown from retry_interval, one per second from second 0, re-send at zero.
    clock = FakeClock()
    domain = FakeDomain(clock, off_after=None)
    result = power.power_off(domain, timeout=35, retry_interval=10, clock=clock)
    assert domain.shutdown_times == [0.0, 10.0, 21.0, 32.0]
    assert result.shutdown_requests == 4
    assert not result.clean and result.destroyed
    assert result.messages == ['Instance failed to shutdown in 35 seconds.', 'Instance destroyed successfully.']


def test_guest_that_ignores_the_first_request_stops_after_a_resend():
    clock = FakeClock()
    domain = FakeDomain(clock, off_after=None)
    original = domain.shutdown

    def shutdown_second_time():
        original()
        if len(domain.shutdown_times) == 2:
            domain.off_at = clock.now() + 1.5
    domain.shutdown = shutdown_second_time
    result = power.power_off(domain, timeout=60, retry_interval=3, clock=clock)
    assert result.clean and result.shutdown_requests == 2
    assert domain.shutdown_times == [0.0, 3.0]


def test_timeout_zero_destroys_at_once():
    clock = FakeClock()
    domain = FakeDomain(clock, off_after=1.0)
    result = power.power_off(domain, timeout=0, retry_interval=10, clock=clock)
    assert domain.shutdown_times == []
    assert result.destroyed and not result.clean
    assert result.messages == ['Instance destroyed successfully.']


def test_already_off_changes_nothing():
    clock = FakeClock()
    domain = FakeDomain(clock, state=SHUTOFF)
    result = power.power_off(domain, timeout=60, retry_interval=10, clock=clock)
    assert result.already_off and result.clean and domain.shutdown_times == [] and domain.destroy_calls == 0
    assert result.messages[0] == 'Instance already shutdown.'


def test_crashed_counts_as_off():
    clock = FakeClock()
    domain = FakeDomain(clock, state=CRASHED)
    assert power.power_off(domain, timeout=60, retry_interval=10, clock=clock).already_off


def test_destroy_again_when_the_domain_comes_back_with_a_new_id():
    clock = FakeClock()
    domain = FakeDomain(clock, destroy_takes=1.0, comes_back=1)
    result = power.power_off(domain, timeout=0, retry_interval=10, clock=clock)
    assert domain.destroy_calls == 2
    assert 'Instance may have been rebooted during destroy; destroying again.' in result.messages
    assert result.messages[-1] == 'Instance destroyed successfully.'


def test_destroy_that_never_ends_is_reported():
    clock = FakeClock()
    domain = FakeDomain(clock, destroy_takes=10 ** 6)
    with pytest.raises(KvmhostError, match='still running 60 seconds after destroy'):
        power.destroy(domain, power.PowerOffResult(), clock=clock)
