# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The instance_shutdown module: Nova's power_off of the libvirt domain found by UUID (graceful with re-sent
shutdown requests, then destroy)."""

from __future__ import annotations

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import Plan
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import check_uuid
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import utcnow
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import SHUTDOWN
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.driver import (
    LibvirtDriver, check_shutdown_options, describe)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.power import SHUTDOWN_STATES, power_off


class ShutdownDriver(LibvirtDriver):
    """instance_shutdown: Nova's power_off (graceful with re-sends, then destroy)."""

    check_options = staticmethod(check_shutdown_options)

    def record_note(self, result):
        return ' '.join(result.get('messages') or []) or 'nothing to change'

    def record_details(self, result):
        return dict((key, result.get(key)) for key in (
            'seconds', 'clean', 'destroyed', 'shutdown_requests', 'started_at', 'finished_at'))

    def run(self):
        uuid = check_uuid(self.params['uuid'])
        check_shutdown_options(self.params)
        domain = self.connection.domain_by_uuid(uuid)
        before = describe(domain)
        needs_power_off = domain is not None and before['power_state'] not in SHUTDOWN_STATES
        plan = Plan(before, dict(before, libvirt_state='shutoff', power_state=SHUTDOWN) if needs_power_off
                    else dict(before))
        outcome = {}
        if needs_power_off:
            def shut_down():
                outcome['started_at'] = utcnow()
                outcome.update(power_off(domain, self.params['shutdown_timeout'], self.params['retry_interval'],
                                         self.clock).as_dict())
                outcome['finished_at'] = utcnow()
            plan.add('shut down domain %s (timeout %d s, retry every %d s)'
                     % (uuid, self.params['shutdown_timeout'], self.params['retry_interval']), shut_down)
        result = self.finish(plan)
        if not needs_power_off:
            message = ('Instance already shutdown.' if domain is not None
                       else 'Instance %s has no domain on this host.' % uuid)
            outcome = {'clean': True, 'already_off': True, 'destroyed': False, 'shutdown_requests': 0,
                       'seconds': 0.0, 'messages': [message]}
        elif self.check_mode:
            outcome = {'clean': None, 'already_off': False, 'destroyed': None, 'shutdown_requests': 0,
                       'seconds': 0.0, 'messages': []}
        outcome.setdefault('started_at', None)
        outcome.setdefault('finished_at', None)
        result.update(outcome)
        result.update(plan.after if self.check_mode else describe(domain))
        result['found'] = domain is not None
        return result
