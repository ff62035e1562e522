# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Powering a libvirt domain off and on, with Nova's semantics (driver ``_clean_shutdown``,
``_destroy``, ``_wait_for_running``).

Shutdown sends an ACPI power-button request, re-sends it every ``retry_interval`` seconds
and destroys the domain when ``timeout`` seconds pass. Nova checks the state once a second;
we check it every ``POLL_INTERVAL`` (0.1 s) while keeping Nova's per-second accounting of
the retry countdown, so a guest that powers off is seen at once instead of up to a second
late. The messages are Nova's log lines, returned in the result.

Time and sleeping go through a ``Clock`` so unit tests can run the semantics against a fake
domain without waiting; integration tests run them against real QEMU guests.
"""

from __future__ import annotations

import time

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import (
    CRASHED, LIBVIRT_STATE_NAMES, LIBVIRT_TO_POWER_STATE, NOSTATE, PAUSED, RUNNING, SHUTDOWN, SUSPENDED,
    VIR_ERR_NO_DOMAIN, libvirt)

POLL_INTERVAL = 0.1
DESTROY_POLL_INTERVAL = 0.5
SHUTDOWN_STATES = (SHUTDOWN, CRASHED)
VIR_ERR_OPERATION_INVALID = 55
VIR_ERR_OPERATION_TIMEOUT = 68
VIR_ERR_SYSTEM_ERROR = 38


class Clock(object):
    """Monotonic time and sleep; unit tests substitute a fake that advances on sleep."""

    @staticmethod
    def now():
        return time.monotonic()

    @staticmethod
    def sleep(seconds):
        time.sleep(seconds)


def power_state_of(domain):
    """(Nova power_state, libvirt state name) of a virDomain; a vanished domain is NOSTATE."""
    try:
        state, _reason = domain.state()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == VIR_ERR_NO_DOMAIN:
            return NOSTATE, None
        raise
    return LIBVIRT_TO_POWER_STATE.get(state, NOSTATE), LIBVIRT_STATE_NAMES.get(state, 'unknown')


def _is_off(power_state):
    return power_state in SHUTDOWN_STATES or power_state == NOSTATE


class PowerOffResult(object):
    """What a power-off did: Nova's facts, for the module result and the timeline."""

    def __init__(self):
        self.clean = False
        self.already_off = False
        self.destroyed = False
        self.shutdown_requests = 0
        self.seconds = 0.0
        self.messages = []

    def as_dict(self):
        return {'clean': self.clean, 'already_off': self.already_off, 'destroyed': self.destroyed,
                'shutdown_requests': self.shutdown_requests, 'seconds': round(self.seconds, 2),
                'messages': list(self.messages)}


def clean_shutdown(domain, timeout, retry_interval, result, clock=Clock):
    """Nova's _clean_shutdown: True when the guest powered off by itself within ``timeout``."""
    power_state, _name = power_state_of(domain)
    if _is_off(power_state):
        result.already_off = True
        result.clean = True
        result.messages.append('Instance already shutdown.')
        return True
    start = clock.now()
    _request_shutdown(domain, result)
    # Nova counts whole seconds from 0: at each second without power-off the countdown drops by
    # one, and at zero the request is sent again (at 10 s, 21 s, 32 s... with an interval of 10).
    retry_countdown = retry_interval
    next_second = start
    while True:
        power_state, _name = power_state_of(domain)
        now = clock.now()
        if _is_off(power_state):
            result.clean = True
            result.seconds = now - start
            result.messages.append('Instance shutdown successfully after %d seconds.' % int(round(now - start)))
            return True
        if now - start >= timeout:
            result.seconds = now - start
            result.messages.append('Instance failed to shutdown in %d seconds.' % timeout)
            return False
        while now >= next_second:
            next_second += 1.0
            if retry_countdown <= 0:
                _request_shutdown(domain, result)
                retry_countdown = retry_interval
            else:
                retry_countdown -= 1
        clock.sleep(POLL_INTERVAL)


def _request_shutdown(domain, result):
    try:
        domain.shutdown()
        result.shutdown_requests += 1
    except libvirt.libvirtError as exc:
        # The guest may have gone off between the state check and the request: that is success.
        if exc.get_error_code() in (VIR_ERR_NO_DOMAIN, VIR_ERR_OPERATION_INVALID):
            return
        raise


def destroy(domain, result, clock=Clock, timeout=60):
    """Nova's _destroy: virDomainDestroy tolerating "no domain" and "already off", then wait until off.

    If the domain comes back with a new id while we wait (something restarted it), destroy again.
    """
    deadline = clock.now() + timeout
    while True:
        old_id = _domain_id(domain)
        power_state, _name = power_state_of(domain)
        if _is_off(power_state):
            result.messages.append('Instance destroyed successfully.')
            return
        try:
            domain.destroy()
            result.destroyed = True
        except libvirt.libvirtError as exc:
            code = exc.get_error_code()
            if code == VIR_ERR_NO_DOMAIN:
                result.messages.append('Instance destroyed successfully.')
                return
            now_state, _name = power_state_of(domain)
            if not (code == VIR_ERR_OPERATION_INVALID and _is_off(now_state)) and \
                    code not in (VIR_ERR_OPERATION_TIMEOUT, VIR_ERR_SYSTEM_ERROR):
                raise
        while True:
            power_state, _name = power_state_of(domain)
            if _is_off(power_state):
                result.messages.append('Instance destroyed successfully.')
                return
            new_id = _domain_id(domain)
            if new_id is not None and old_id is not None and new_id != old_id:
                result.messages.append('Instance may have been rebooted during destroy; destroying again.')
                break
            if clock.now() > deadline:
                raise KvmhostError('domain %s is still %s %d seconds after destroy'
                                   % (domain.UUIDString(), LIBVIRT_STATE_NAMES.get(power_state, power_state),
                                      timeout))
            clock.sleep(DESTROY_POLL_INTERVAL)


def _domain_id(domain):
    try:
        domain_id = domain.ID()
    except libvirt.libvirtError:
        return None
    return domain_id if domain_id >= 0 else None


def power_off(domain, timeout, retry_interval, clock=Clock):
    """Nova's power_off: clean shutdown within ``timeout`` (0: none), then destroy."""
    result = PowerOffResult()
    start = clock.now()
    if timeout > 0:
        clean_shutdown(domain, timeout, retry_interval, result, clock)
    else:
        power_state, _name = power_state_of(domain)
        if _is_off(power_state):
            result.already_off = result.clean = True
            result.messages.append('Instance already shutdown.')
    destroy(domain, result, clock)
    result.seconds = clock.now() - start
    return result


def start_and_wait(domain, wait_timeout, clock=Clock):
    """Start (or resume) the domain and wait until libvirt reports it RUNNING."""
    power_state, _name = power_state_of(domain)
    if power_state in (PAUSED,):
        domain.resume()
    elif power_state == SUSPENDED:
        domain.pMWakeup(0)
    elif power_state != RUNNING:
        domain.create()
    deadline = clock.now() + wait_timeout
    while True:
        power_state, name = power_state_of(domain)
        if power_state == RUNNING:
            return
        if clock.now() > deadline:
            raise KvmhostError('domain %s did not reach RUNNING within %d seconds (it is %s)'
                               % (domain.UUIDString(), wait_timeout, name), field='wait_timeout')
        clock.sleep(POLL_INTERVAL)
