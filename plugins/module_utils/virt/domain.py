# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The domain and instance_shutdown modules: define, start, stop, undefine a libvirt domain found by UUID."""

from __future__ import annotations

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import ModuleDriver, Plan
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.power import (
    SHUTDOWN_STATES, Clock, power_off, power_state_of, start_and_wait)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import (
    NOSTATE, RUNNING, SHUTDOWN, LibvirtConnection, libvirt, require_libvirt)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import utcnow
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import MAX_TIMEOUT, check_int, check_uuid
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.drift import domain_drift, parse_xml

VIR_DOMAIN_XML_INACTIVE = 2
VIR_DOMAIN_UNDEFINE_MANAGED_SAVE = 1
VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA = 2
VIR_DOMAIN_UNDEFINE_NVRAM = 4
VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA = 16


def read_xml_file(path):
    """The domain XML kept in a file (an instance directory's libvirt.xml)."""
    try:
        with open(path) as handle:
            return handle.read()
    except OSError as exc:
        raise KvmhostError('cannot read %s: %s' % (path, exc.strerror), field='xml_file')


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
    """A driver that needs libvirt: opens the connection seam once, closes it after run."""

    connection_class = LibvirtConnection
    clock = Clock

    def __init__(self, module):
        super().__init__(module)
        require_libvirt(module)
        self.connection = self.connection_class(self.params['libvirt_uri'])

    def run(self):
        try:
            return self.execute()
        finally:
            self.connection.close()

    def execute(self):
        raise NotImplementedError


class ShutdownDriver(LibvirtDriver):
    """instance_shutdown: Nova's power_off (graceful with re-sends, then destroy)."""

    check_options = staticmethod(check_shutdown_options)

    def record_note(self, result):
        return ' '.join(result.get('messages') or []) or 'nothing to change'

    def record_details(self, result):
        return dict((key, result.get(key)) for key in (
            'seconds', 'clean', 'destroyed', 'shutdown_requests', 'started_at', 'finished_at'))

    def execute(self):
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


class DomainDriver(LibvirtDriver):
    """domain: defined from XML (redefined on real drift), running, stopped or absent."""

    def record_note(self, result):
        if self.params['state'] == 'running':
            return 'Instance spawned successfully.' if result.get('changed') else 'Instance is running.'
        return super().record_note(result)

    def record_fields(self, result):
        return {'power_state': result['power_state']} if not self.check_mode else {}

    @staticmethod
    def check_options(params):
        check_shutdown_options(params)
        check_int(params['wait_timeout'], 'wait_timeout', 1, MAX_TIMEOUT, 'seconds')

    def execute(self):
        params = self.params
        uuid = check_uuid(params['uuid'])
        self.check_options(params)
        wanted_xml = params.get('xml')
        if params.get('xml_file') is not None:
            wanted_xml = read_xml_file(params['xml_file'])
        if wanted_xml is not None:
            self._check_xml_identity(wanted_xml, uuid)
        domain = self.connection.domain_by_uuid(uuid)
        before = describe(domain)
        after = dict(before)
        plan = Plan(before, after)
        holder = {'domain': domain}
        drift = []
        state = params['state']
        if state == 'absent':
            self._plan_absent(plan, holder, uuid)
        else:
            if wanted_xml is not None:
                drift = self._plan_define(plan, holder, uuid, wanted_xml)
            elif domain is None:
                raise KvmhostError('domain %s is not defined: give xml to define it' % uuid, field='xml')
            if state == 'running':
                self._plan_running(plan, holder, uuid, bool(drift))
            else:
                self._plan_stopped(plan, holder, uuid)
        result = self.finish(plan, drift=drift)
        final = holder.get('domain')
        if self.check_mode:
            result.update((key, value) for key, value in after.items() if key not in ('drift', 'restart_required'))
        else:
            result.update(describe(final))
        result['uuid'] = uuid
        result['name'] = final.name() if final is not None else None
        result['restart_required'] = holder.get('restart_required', False)
        if 'power_off' in holder:
            result['power_off'] = holder['power_off']
        return result

    @staticmethod
    def _check_xml_identity(xml, uuid):
        root = parse_xml(xml)
        if root.tag != 'domain':
            raise KvmhostError('the root element must be <domain>, not <%s>' % root.tag, field='xml')
        xml_uuid = root.findtext('uuid')
        if xml_uuid is None or xml_uuid.strip().lower() != uuid:
            raise KvmhostError('its <uuid> is %r, not the uuid option %s' % (xml_uuid, uuid), field='xml')

    def _plan_define(self, plan, holder, uuid, wanted_xml):
        domain = holder['domain']
        if domain is None:
            drift = ['domain is not defined']
            verb = 'define'
        else:
            drift = domain_drift(wanted_xml, domain.XMLDesc(VIR_DOMAIN_XML_INACTIVE))
            verb = 'redefine'
        if not drift:
            return []
        # The diff is what the drift check found, not libvirt's normalised XML against the wanted text.
        plan.before['drift'] = drift
        plan.after.update(defined=True, drift=[])
        if domain is None:
            plan.after.update(libvirt_state='shutoff', power_state=SHUTDOWN)

        def define():
            try:
                holder['domain'] = self.connection.conn.defineXML(wanted_xml)
            except libvirt.libvirtError as exc:
                raise KvmhostError('libvirt rejected the domain XML: %s' % exc.get_error_message(), field='xml')
        plan.add('%s domain %s (%s)' % (verb, uuid, '; '.join(drift[:5])), define)
        return drift

    def _plan_running(self, plan, holder, uuid, redefined):
        before = plan.before
        running = before['power_state'] == RUNNING
        restart = redefined and running and before['defined']
        if restart and self.params['restart_on_change']:
            self._add_power_off(plan, holder, uuid, 'stop domain %s to apply its new definition' % uuid)
            running = False
        elif restart:
            holder['restart_required'] = True
            plan.after['restart_required'] = True
        if not running:
            def start():
                start_and_wait(holder['domain'], self.params['wait_timeout'], self.clock)
            plan.add('start domain %s and wait until it runs' % uuid, start)
        plan.after.update(libvirt_state='running', power_state=RUNNING)

    def _plan_stopped(self, plan, holder, uuid):
        if plan.before['defined'] and plan.before['power_state'] not in SHUTDOWN_STATES:
            self._add_power_off(plan, holder, uuid, 'shut down domain %s' % uuid)
        plan.after.update(libvirt_state='shutoff', power_state=SHUTDOWN)

    def _add_power_off(self, plan, holder, uuid, description):
        def stop():
            holder['power_off'] = power_off(holder['domain'], self.params['shutdown_timeout'],
                                            self.params['retry_interval'], self.clock).as_dict()
        plan.add(description, stop)

    def _plan_absent(self, plan, holder, uuid):
        domain = holder['domain']
        if domain is None:
            return
        if plan.before['power_state'] not in SHUTDOWN_STATES + (NOSTATE,):
            self._add_power_off(plan, holder, uuid, 'shut down domain %s' % uuid)

        def undefine():
            if domain.hasManagedSaveImage(0):
                domain.managedSaveRemove(0)
            flags = (VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                     | VIR_DOMAIN_UNDEFINE_NVRAM | VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
            domain.undefineFlags(flags)
            holder['domain'] = None
        plan.add('undefine domain %s (with managed save and NVRAM)' % uuid, undefine)
        plan.after.update(defined=False, libvirt_state=None, power_state=NOSTATE)
