# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The domain module: define, start, stop, undefine a libvirt domain found by UUID."""

from __future__ import annotations

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import Plan
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import MAX_TIMEOUT, check_int, check_uuid
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.connection import (
    NOSTATE, RUNNING, SHUTDOWN, libvirt)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.drift import domain_drift, parse_xml
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.driver import (
    VIR_DOMAIN_XML_INACTIVE, LibvirtDriver, check_shutdown_options, describe)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.power import (
    SHUTDOWN_STATES, power_off, start_and_wait)

VIR_DOMAIN_UNDEFINE_MANAGED_SAVE = 1
VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA = 2
VIR_DOMAIN_UNDEFINE_NVRAM = 4
VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA = 16


def read_xml_file(path):
    """The domain XML kept in a file (an instance directory's libvirt.xml)."""
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except OSError as exc:
        raise KvmhostError('cannot read %s: %s' % (path, exc.strerror), field='xml_file')
    except UnicodeDecodeError:
        raise KvmhostError('%s is not UTF-8 text, so not domain XML' % path, field='xml_file')


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

    def run(self):
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
