# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The domain module's driver (DomainDriver): a libvirt domain found by UUID, defined from XML (redefined on real
drift), started, stopped or undefined; read_xml_file and the VIR_DOMAIN_UNDEFINE_* flags.

libvirtd is not run by unit tests. The libvirt side is the real LibvirtConnection over a fake virConnect
(lookupByUUIDString raises libvirt's "no domain" error for a UUID it does not hold; defineXML defines or
redefines) whose fake virDomains keep their state, their inactive and live definitions and every call made on
them. A fake clock advances when the code sleeps, so a shutdown timeout costs no time. The drivers run through
``outcome()``, as run_module runs them, and a few tests run the module's own ``main()``.
tests/integration/test_power_and_lifecycle.py runs the module against the real libvirtd and QEMU guests.
"""

from __future__ import annotations

import re

import pytest

libvirt = pytest.importorskip('libvirt')
pytest.importorskip('lxml')

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt import domain as domain_utils  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.domain import (  # noqa: E402
    DomainDriver, read_xml_file)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.driver import VIR_DOMAIN_XML_INACTIVE  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.virt.power import VIR_ERR_OPERATION_INVALID  # noqa: E402
from ansible_collections.kvmhost.lifecycle.plugins.modules import domain as domain_module  # noqa: E402

from .libvirt_fakes import (  # noqa: E402
    FakeModule, FakeVirConnectBase, libvirt_error, module_main_over, no_domain, outcome_over, refuse_real_libvirt)

UUID = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
OTHER = '2f1f7fea-78fe-4c75-a9e7-8cef5f7f5fb1'
# virDomainState
NOSTATE, RUNNING, PAUSED, SHUTOFF, CRASHED = 0, 1, 3, 5, 6
ACTIVE = (RUNNING, PAUSED)
VIR_ERR_INTERNAL_ERROR, VIR_ERR_XML_ERROR, VIR_ERR_SYSTEM_ERROR = 1, 27, 38
# The calls that change a domain (or define one); check mode makes none of them.
CHANGING = ('defineXML', 'create', 'resume', 'pMWakeup', 'shutdown', 'destroy', 'managedSaveRemove', 'undefineFlags')
ALL_UNDEFINE_FLAGS = 1 | 2 | 4 | 16
START = 'start domain %s and wait until it runs' % UUID
STOP = 'shut down domain %s' % UUID
UNDEFINE = 'undefine domain %s (with managed save and NVRAM)' % UUID
RESTART_STOP = 'stop domain %s to apply its new definition' % UUID
MEMORY_DRIFT = '/domain/memory: 256 MiB wanted, 196608 KiB defined'


def domain_xml(uuid=UUID, memory_mib=192, extra=''):
    """A wanted domain XML, as domain_xml builds one (trimmed)."""
    return '''<domain type="qemu">
  <name>instance-00000001</name>
  <uuid>%s</uuid>
  <memory unit="MiB">%d</memory>
  <vcpu>1</vcpu>
  <os><type arch="x86_64" machine="pc">hvm</type></os>%s
  <devices>
    <disk type="file" device="disk"><driver name="qemu" type="qcow2"/>
      <source file="/var/lib/kvmhost/instances/%s/disk"/><target dev="vda" bus="virtio"/></disk>
  </devices>
</domain>''' % (uuid, memory_mib, extra, uuid)


# What libvirt gives back (VIR_DOMAIN_XML_INACTIVE) for domain_xml(): KiB, the versioned machine, defaults, addresses.
LIBVIRT_DEFINED = '''<domain type='qemu'>
  <name>instance-00000001</name>
  <uuid>%s</uuid>
  <memory unit='KiB'>196608</memory>
  <currentMemory unit='KiB'>196608</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type><boot dev='hd'/></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='/var/lib/kvmhost/instances/%s/disk'/><target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></disk>
    <controller type='usb' index='0' model='piix3-uhci'/>
  </devices>
</domain>''' % (UUID, UUID)


class FakeVirDomain(object):
    """A virDomain of the fake virConnect; ``calls`` holds every call made on it, with its arguments.

    A running domain powers off ``off_after`` seconds after its first ACPI request (never when None); destroy stops
    it at once; create starts it with its inactive definition (``starts`` False: QEMU dies at once, it stays off).
    Once undefined, every call raises libvirt's "no domain".
    """

    def __init__(self, conn, xml, state=SHUTOFF, off_after=None, managed_save=False, starts=True):
        self.conn = conn
        self.uuid = re.search(r'<uuid>([^<]*)</uuid>', xml).group(1).strip().lower()
        self._name = re.search(r'<name>([^<]*)</name>', xml).group(1)
        self.inactive_xml = xml
        self.live_xml = xml if state in ACTIVE else None
        self._state = state
        self.domain_id = 3 if state in ACTIVE else -1
        self.off_after = off_after
        self.off_at = None
        self.managed_save = managed_save
        self.starts = starts
        self.create_error = None
        self.undefined = False
        self.calls = []
        self.shutdown_times = []

    def _call(self, name, *args):
        self.calls.append((name,) + args)
        if name in CHANGING:
            self.conn.changes.append(name)
        if self.undefined:
            raise no_domain(self.uuid)

    def _power_down(self):
        self._state, self.live_xml, self.domain_id, self.off_at = SHUTOFF, None, -1, None

    def _not_valid(self, why):
        return libvirt_error(VIR_ERR_OPERATION_INVALID, 'Requested operation is not valid: %s' % why)

    def state(self):
        self._call('state')
        if self.off_at is not None and self.conn.clock.now() >= self.off_at:
            self._power_down()
        return [self._state, 1]

    def name(self):
        self._call('name')
        return self._name

    def UUIDString(self):
        self._call('UUIDString')
        return self.uuid

    def ID(self):
        self._call('ID')
        return self.domain_id

    def XMLDesc(self, flags=0):
        self._call('XMLDesc', flags)
        if flags & VIR_DOMAIN_XML_INACTIVE or self.live_xml is None:
            return self.inactive_xml
        return self.live_xml

    def create(self):
        self._call('create')
        if self.create_error is not None:
            raise self.create_error
        if self._state in ACTIVE:
            raise self._not_valid('domain is already running')
        if self.starts:
            self._state, self.live_xml, self.domain_id = RUNNING, self.inactive_xml, 4

    def resume(self):
        self._call('resume')
        if self._state != PAUSED:
            raise self._not_valid('domain is not paused')
        self._state = RUNNING

    def shutdown(self):
        self._call('shutdown')
        if self._state != RUNNING:
            raise self._not_valid('domain is not running')
        self.shutdown_times.append(round(self.conn.clock.now() - 1000.0, 1))
        if self.off_after is not None and self.off_at is None:
            self.off_at = self.conn.clock.now() + self.off_after

    def destroy(self):
        self._call('destroy')
        if self._state not in ACTIVE:
            raise self._not_valid('domain is not running')
        self._power_down()

    def hasManagedSaveImage(self, flags):
        self._call('hasManagedSaveImage', flags)
        return self.managed_save

    def managedSaveRemove(self, flags):
        self._call('managedSaveRemove', flags)
        self.managed_save = False

    def undefineFlags(self, flags):
        self._call('undefineFlags', flags)
        self.undefined = True
        del self.conn.domains[self.uuid]


class FakeVirConnect(FakeVirConnectBase):
    """The virConnect methods LibvirtConnection and the driver call. ``calls`` holds the connection's calls,
    ``changes`` the names of the calls that change something, on the connection and its domains, in order."""

    def __init__(self):
        super().__init__()
        self.reject = None

    def add(self, xml=None, **kwargs):
        domain = FakeVirDomain(self, xml or domain_xml(), **kwargs)
        self.domains[domain.uuid] = domain
        return domain

    def defineXML(self, xml):
        self.calls.append(('defineXML', xml))
        self.changes.append('defineXML')
        if self.reject is not None:
            raise libvirt_error(VIR_ERR_XML_ERROR, self.reject)
        uuid = re.search(r'<uuid>([^<]*)</uuid>', xml).group(1).strip().lower()
        if uuid not in self.domains:
            return self.add(xml)
        self.domains[uuid].inactive_xml = xml  # a running guest keeps its live definition
        return self.domains[uuid]


@pytest.fixture(autouse=True)
def no_real_libvirt(monkeypatch):
    refuse_real_libvirt(monkeypatch)


def run_driver(conn, check_mode=False, diff=False, **params):
    """DomainDriver through outcome() on the real LibvirtConnection over ``conn``; (driver, result)."""
    params.setdefault('uuid', UUID)
    return outcome_over(DomainDriver, FakeModule(domain_module.ITEM_SPEC, check_mode, diff, **params), conn)


def run(conn, check_mode=False, diff=False, **params):
    return run_driver(conn, check_mode, diff, **params)[1]


def facts(result):
    """The result without its power_off (asserted on its own where there is one)."""
    return dict((key, value) for key, value in result.items() if key != 'power_off')


def expected(actions=(), drift=(), restart_required=False, name='instance-00000001', defined=True,
             libvirt_state='running', power_state=1):
    return {'changed': bool(actions), 'actions': list(actions), 'drift': list(drift), 'uuid': UUID, 'name': name,
            'defined': defined, 'libvirt_state': libvirt_state, 'power_state': power_state,
            'restart_required': restart_required}


# ---------------------------------------------------------------- libvirt's constants, read_xml_file

def test_the_flags_are_libvirts():
    assert (domain_utils.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE, domain_utils.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
            domain_utils.VIR_DOMAIN_UNDEFINE_NVRAM, domain_utils.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA) == (
        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE, libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
        libvirt.VIR_DOMAIN_UNDEFINE_NVRAM, libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
    assert VIR_DOMAIN_XML_INACTIVE == libvirt.VIR_DOMAIN_XML_INACTIVE


def test_read_xml_file_reads_the_whole_file(tmp_path):
    path = tmp_path / 'libvirt.xml'
    path.write_text(domain_xml())
    assert read_xml_file(str(path)) == domain_xml()


@pytest.mark.parametrize('name, reason', [('missing.xml', 'No such file or directory'), (None, 'Is a directory')])
def test_read_xml_file_names_the_option_the_path_and_the_cause(tmp_path, name, reason):
    path = str(tmp_path / name) if name else str(tmp_path)
    with pytest.raises(KvmhostError) as caught:
        read_xml_file(path)
    assert caught.value.field == 'xml_file'
    assert str(caught.value) == 'xml_file: cannot read %s: %s' % (path, reason)


def test_read_xml_file_refuses_a_file_that_is_not_utf8_by_the_option(tmp_path):
    path = tmp_path / 'libvirt.xml'
    path.write_bytes(b'<domain>\xff\xfe</domain>')
    with pytest.raises(KvmhostError) as caught:
        read_xml_file(str(path))
    assert str(caught.value) == 'xml_file: %s is not UTF-8 text, so not domain XML' % path


# ---------------------------------------------------------------- state running

def test_a_missing_domain_is_defined_from_the_xml_and_started_and_a_second_run_changes_nothing():
    conn = FakeVirConnect()
    driver, result = run_driver(conn, xml=domain_xml())
    defined = conn.domains[UUID]
    assert result == expected(['define domain %s (domain is not defined)' % UUID, START],
                              drift=['domain is not defined'])
    assert conn.calls == [('lookupByUUIDString', UUID), ('defineXML', domain_xml())]
    assert conn.changes == ['defineXML', 'create']
    assert defined.inactive_xml == defined.live_xml == domain_xml()
    assert driver.record_note(result) == 'Instance spawned successfully.'
    assert driver.record_fields(result) == {'power_state': 1}

    driver, again = run_driver(conn, xml=domain_xml())
    assert again == expected()
    assert conn.changes == ['defineXML', 'create']
    assert ('XMLDesc', VIR_DOMAIN_XML_INACTIVE) in defined.calls
    assert driver.record_note(again) == 'Instance is running.'


def test_the_domain_is_found_by_its_canonical_uuid_never_by_name():
    conn = FakeVirConnect()
    conn.add(domain_xml(uuid=UUID.upper()), state=RUNNING)
    result = run(conn, uuid=UUID.upper(), xml=domain_xml(uuid=UUID.upper()))
    assert result == expected()
    assert conn.calls == [('lookupByUUIDString', UUID)]


def test_a_shut_off_domain_is_started_without_xml_and_its_definition_is_not_read():
    conn = FakeVirConnect()
    shut_off = conn.add(state=SHUTOFF)
    assert run(conn) == expected([START])
    assert conn.changes == ['create'] and not any(call[0] == 'XMLDesc' for call in shut_off.calls)
    assert run(conn) == expected()
    assert conn.changes == ['create']


def test_a_paused_domain_is_resumed_not_created():
    conn = FakeVirConnect()
    conn.add(state=PAUSED)
    assert run(conn) == expected([START])
    assert conn.changes == ['resume']


def test_a_missing_domain_without_xml_is_refused_naming_the_xml_option():
    for state in ('running', 'stopped'):
        conn = FakeVirConnect()
        with pytest.raises(KvmhostError) as caught:
            run(conn, state=state)
        assert caught.value.field == 'xml'
        assert str(caught.value) == 'xml: domain %s is not defined: give xml to define it' % UUID
        assert conn.calls == [('lookupByUUIDString', UUID)] and conn.closed == 1


def test_what_libvirt_adds_to_a_definition_is_no_drift():
    conn = FakeVirConnect()
    running = conn.add(LIBVIRT_DEFINED, state=RUNNING)
    assert run(conn, xml=domain_xml()) == expected()
    assert ('XMLDesc', VIR_DOMAIN_XML_INACTIVE) in running.calls
    assert conn.changes == []


def test_drift_of_a_running_domain_redefines_it_and_says_the_guest_needs_a_restart():
    conn = FakeVirConnect()
    running = conn.add(LIBVIRT_DEFINED, state=RUNNING)
    wanted = domain_xml(memory_mib=256)
    result = run(conn, xml=wanted)
    assert result == expected(['redefine domain %s (%s)' % (UUID, MEMORY_DRIFT)], drift=[MEMORY_DRIFT],
                              restart_required=True)
    assert conn.calls[-1] == ('defineXML', wanted) and conn.changes == ['defineXML']
    # The guest runs on with its old definition; the new one is the persistent one.
    assert (running.inactive_xml, running.live_xml) == (wanted, LIBVIRT_DEFINED)
    # The next run compares the wanted XML with the inactive definition (not the live one): no drift any more.
    again = run(conn, xml=wanted)
    assert (again['changed'], again['actions'], again['drift']) == (False, [], [])
    assert conn.changes == ['defineXML']


def test_drift_of_a_running_domain_with_restart_on_change_stops_and_starts_it_on_the_new_definition():
    conn = FakeVirConnect()
    running = conn.add(LIBVIRT_DEFINED, state=RUNNING, off_after=3.0)
    wanted = domain_xml(memory_mib=256)
    result = run(conn, xml=wanted, restart_on_change=True)
    assert facts(result) == expected(['redefine domain %s (%s)' % (UUID, MEMORY_DRIFT), RESTART_STOP, START],
                                     drift=[MEMORY_DRIFT])
    assert result['power_off'] == {'clean': True, 'already_off': False, 'destroyed': False, 'shutdown_requests': 1,
                                   'seconds': 3.0, 'messages': ['Instance shutdown successfully after 3 seconds.',
                                                                'Instance destroyed successfully.']}
    assert conn.changes == ['defineXML', 'shutdown', 'create']
    assert running.live_xml == wanted
    assert run(conn, xml=wanted, restart_on_change=True) == expected()


def test_drift_of_a_shut_off_domain_redefines_it_and_starts_it_without_a_restart():
    conn = FakeVirConnect()
    conn.add(LIBVIRT_DEFINED, state=SHUTOFF)
    result = run(conn, xml=domain_xml(memory_mib=256))
    assert result == expected(['redefine domain %s (%s)' % (UUID, MEMORY_DRIFT), START], drift=[MEMORY_DRIFT])
    assert conn.changes == ['defineXML', 'create']


def test_the_action_names_the_first_five_differences_and_the_result_all_of_them():
    conn = FakeVirConnect()
    conn.add(state=RUNNING)
    extra = ('<title>web-1</title><description>d</description><on_poweroff>destroy</on_poweroff>'
             '<on_reboot>restart</on_reboot><on_crash>destroy</on_crash><iothreads>1</iothreads>')
    result = run(conn, xml=domain_xml(extra=extra))
    drift = ['/domain/%s[1]: missing' % tag
             for tag in ('title', 'description', 'on_poweroff', 'on_reboot', 'on_crash', 'iothreads')]
    assert result['drift'] == drift
    assert result['actions'] == ['redefine domain %s (%s)' % (UUID, '; '.join(drift[:5]))]


def test_a_start_that_never_reaches_running_fails_after_wait_timeout():
    conn = FakeVirConnect()
    conn.add(state=SHUTOFF, starts=False)
    with pytest.raises(KvmhostError) as caught:
        run(conn, wait_timeout=5)
    assert caught.value.field == 'wait_timeout'
    assert str(caught.value) == 'wait_timeout: domain %s did not reach RUNNING within 5 seconds (it is shutoff)' % UUID
    assert caught.value.applied == []
    assert 1005.0 < conn.clock.now() <= 1005.2  # waited on the fake clock, wait_timeout and one poll
    assert conn.changes == ['create'] and conn.closed == 1


# ---------------------------------------------------------------- state stopped

def test_stopped_shuts_a_running_domain_down_with_the_shutdown_options():
    conn = FakeVirConnect()
    guest = conn.add(state=RUNNING)  # ignores ACPI
    driver, result = run_driver(conn, state='stopped', shutdown_timeout=12, retry_interval=5)
    assert facts(result) == expected([STOP], libvirt_state='shutoff', power_state=4)
    assert result['power_off'] == {'clean': False, 'already_off': False, 'destroyed': True, 'shutdown_requests': 3,
                                   'seconds': 12.0, 'messages': ['Instance failed to shutdown in 12 seconds.',
                                                                 'Instance destroyed successfully.']}
    assert guest.shutdown_times == [0.0, 5.0, 11.0]  # Nova's countdown: at retry_interval, then every interval + 1
    assert conn.changes == ['shutdown'] * 3 + ['destroy']
    assert driver.record_note(result) == STOP
    assert driver.record_fields(result) == {'power_state': 4}

    driver, again = run_driver(conn, state='stopped', shutdown_timeout=12, retry_interval=5)
    assert again == expected(libvirt_state='shutoff', power_state=4)
    assert driver.record_note(again) == 'nothing to change'
    assert conn.changes == ['shutdown'] * 3 + ['destroy']


def test_stopped_leaves_a_crashed_domain_as_it_is():
    conn = FakeVirConnect()
    conn.add(state=CRASHED)
    assert run(conn, state='stopped') == expected(libvirt_state='crashed', power_state=6)
    assert conn.changes == []


def test_stopped_defines_a_missing_domain_without_starting_it():
    conn = FakeVirConnect()
    result = run(conn, state='stopped', xml=domain_xml())
    assert result == expected(['define domain %s (domain is not defined)' % UUID], drift=['domain is not defined'],
                              libvirt_state='shutoff', power_state=4)
    assert conn.changes == ['defineXML']


def test_stopped_with_drift_redefines_and_shuts_down_a_running_domain_without_a_restart():
    conn = FakeVirConnect()
    conn.add(LIBVIRT_DEFINED, state=RUNNING, off_after=1.0)
    result = run(conn, state='stopped', xml=domain_xml(memory_mib=256))
    assert facts(result) == expected(['redefine domain %s (%s)' % (UUID, MEMORY_DRIFT), STOP], drift=[MEMORY_DRIFT],
                                     libvirt_state='shutoff', power_state=4)
    assert result['power_off']['clean'] is True
    assert conn.changes == ['defineXML', 'shutdown']


# ---------------------------------------------------------------- state absent

def test_absent_shuts_a_running_domain_down_then_undefines_it_with_all_its_metadata():
    conn = FakeVirConnect()
    guest = conn.add(state=RUNNING, off_after=2.0)
    driver, result = run_driver(conn, state='absent')
    assert facts(result) == expected([STOP, UNDEFINE], name=None, defined=False, libvirt_state=None, power_state=0)
    assert result['power_off']['messages'] == ['Instance shutdown successfully after 2 seconds.',
                                               'Instance destroyed successfully.']
    assert conn.changes == ['shutdown', 'undefineFlags']
    assert ('hasManagedSaveImage', 0) in guest.calls and ('undefineFlags', ALL_UNDEFINE_FLAGS) in guest.calls
    assert UUID not in conn.domains
    assert driver.record_note(result) == '%s; %s' % (STOP, UNDEFINE)
    assert driver.record_fields(result) == {'power_state': 0}

    assert run(conn, state='absent') == expected(name=None, defined=False, libvirt_state=None, power_state=0)
    assert conn.changes == ['shutdown', 'undefineFlags']


def test_absent_removes_the_managed_save_image_of_a_shut_off_domain_first():
    conn = FakeVirConnect()
    saved = conn.add(state=SHUTOFF, managed_save=True)
    result = run(conn, state='absent')
    assert result == expected([UNDEFINE], name=None, defined=False, libvirt_state=None, power_state=0)
    changing = [call for call in saved.calls if call[0] in CHANGING]
    assert changing == [('managedSaveRemove', 0), ('undefineFlags', ALL_UNDEFINE_FLAGS)]


def test_absent_undefines_a_domain_in_no_state_without_powering_it_off():
    conn = FakeVirConnect()
    conn.add(state=NOSTATE)
    assert run(conn, state='absent')['actions'] == [UNDEFINE]
    assert conn.changes == ['undefineFlags']


def test_absent_without_a_domain_has_nothing_to_do():
    conn = FakeVirConnect()
    assert run(conn, state='absent') == expected(name=None, defined=False, libvirt_state=None, power_state=0)
    assert conn.calls == [('lookupByUUIDString', UUID)] and conn.changes == []


# ---------------------------------------------------------------- check mode and diff

SCENARIOS = {
    'define and start': (None, dict(xml=domain_xml())),
    'define stopped': (None, dict(xml=domain_xml(), state='stopped')),
    'start': (dict(state=SHUTOFF), {}),
    'resume': (dict(state=PAUSED), {}),
    'running already': (dict(state=RUNNING), dict(xml=domain_xml())),
    'redefine running': (dict(xml=LIBVIRT_DEFINED, state=RUNNING), dict(xml=domain_xml(memory_mib=256))),
    'redefine and restart': (dict(xml=LIBVIRT_DEFINED, state=RUNNING, off_after=2.0),
                             dict(xml=domain_xml(memory_mib=256), restart_on_change=True)),
    'stop': (dict(state=RUNNING, off_after=2.0), dict(state='stopped')),
    'undefine running': (dict(state=RUNNING, off_after=2.0), dict(state='absent')),
    'undefine saved': (dict(managed_save=True), dict(state='absent')),
    'absent already': (None, dict(state='absent')),
}


def prepared(domain):
    conn = FakeVirConnect()
    if domain is not None:
        conn.add(**domain)
    return conn


@pytest.mark.parametrize('domain, params', list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_check_mode_predicts_what_the_run_does_and_changes_nothing(domain, params):
    checked_conn = prepared(domain)
    driver, predicted = run_driver(checked_conn, check_mode=True, diff=True, **params)
    assert checked_conn.changes == []
    assert 'power_off' not in predicted
    assert driver.record_fields(predicted) == {}
    applied = run(prepared(domain), diff=True, **params)
    for key in ('changed', 'actions', 'drift', 'restart_required', 'uuid', 'defined', 'libvirt_state', 'power_state',
                'diff'):
        assert predicted[key] == applied[key], key


def test_check_mode_of_a_drifted_running_domain_predicts_the_redefinition_and_the_restart_required():
    conn = FakeVirConnect()
    running = conn.add(LIBVIRT_DEFINED, state=RUNNING)
    result = run(conn, check_mode=True, diff=True, xml=domain_xml(memory_mib=256))
    assert facts(result) == dict(expected(['redefine domain %s (%s)' % (UUID, MEMORY_DRIFT)], drift=[MEMORY_DRIFT],
                                          restart_required=True), diff=result['diff'])
    assert result['diff']['after']['restart_required'] is True
    assert conn.changes == [] and running.inactive_xml == LIBVIRT_DEFINED


def test_check_mode_of_absent_keeps_the_domain_and_its_name():
    conn = FakeVirConnect()
    conn.add(state=RUNNING, off_after=1.0)
    result = run(conn, check_mode=True, state='absent')
    assert result == expected([STOP, UNDEFINE], defined=False, libvirt_state=None, power_state=0)
    assert UUID in conn.domains and conn.changes == []


def test_diff_shows_the_drift_found_and_the_state_changes_not_the_xml():
    conn = FakeVirConnect()
    assert run(conn, diff=True, xml=domain_xml())['diff'] == {
        'before': {'defined': False, 'libvirt_state': None, 'power_state': 0, 'drift': ['domain is not defined']},
        'after': {'defined': True, 'libvirt_state': 'running', 'power_state': 1, 'drift': []}}
    assert run(conn, diff=True, xml=domain_xml(memory_mib=256))['diff'] == {
        'before': {'defined': True, 'libvirt_state': 'running', 'power_state': 1,
                   'drift': ['/domain/memory: 256 MiB wanted, 192 MiB defined']},
        'after': {'defined': True, 'libvirt_state': 'running', 'power_state': 1, 'drift': [],
                  'restart_required': True}}
    unchanged = {'defined': True, 'libvirt_state': 'running', 'power_state': 1}
    assert run(conn, diff=True, xml=domain_xml(memory_mib=256))['diff'] == {'before': unchanged, 'after': unchanged}
    conn.domains[UUID].off_after = 1.0
    assert run(conn, diff=True, state='absent')['diff'] == {
        'before': unchanged, 'after': {'defined': False, 'libvirt_state': None, 'power_state': 0}}
    assert 'diff' not in run(conn, state='absent')


# ---------------------------------------------------------------- refused options, libvirt's errors

REFUSED = [
    (dict(uuid='instance-00000001'), 'uuid', "uuid: must be a UUID like 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0, got "
                                             "'instance-00000001'"),
    (dict(shutdown_timeout=-1), 'shutdown_timeout', 'shutdown_timeout: must be 0..3600 seconds, got -1'),
    (dict(shutdown_timeout=3601), 'shutdown_timeout', 'shutdown_timeout: must be 0..3600 seconds, got 3601'),
    (dict(retry_interval=0), 'retry_interval', 'retry_interval: must be 1..3600 seconds, got 0'),
    (dict(wait_timeout=0), 'wait_timeout', 'wait_timeout: must be 1..3600 seconds, got 0'),
    (dict(wait_timeout=3601), 'wait_timeout', 'wait_timeout: must be 1..3600 seconds, got 3601'),
    (dict(xml='<domain><uuid>%s</uuid>' % UUID), 'xml', 'xml: is not well-formed XML: '),
    (dict(xml='<network><uuid>%s</uuid></network>' % UUID), 'xml', 'xml: the root element must be <domain>, not '
                                                                   '<network>'),
    (dict(xml=domain_xml(uuid=OTHER)), 'xml', "xml: its <uuid> is '%s', not the uuid option %s" % (OTHER, UUID)),
    (dict(xml=domain_xml().replace('<uuid>%s</uuid>' % UUID, '')), 'xml', 'xml: its <uuid> is None, not the uuid '
                                                                          'option %s' % UUID),
    (dict(xml_file='/nonexistent/libvirt.xml'), 'xml_file', 'xml_file: cannot read /nonexistent/libvirt.xml: No such '
                                                            'file or directory'),
]


@pytest.mark.parametrize('state', ['running', 'stopped', 'absent'])
@pytest.mark.parametrize('params, field, message', REFUSED, ids=[item[1] for item in REFUSED])
def test_a_bad_option_is_refused_before_libvirt_is_asked_anything(state, params, field, message):
    conn = FakeVirConnect()
    running = conn.add(state=RUNNING)
    with pytest.raises(KvmhostError) as caught:
        run(conn, state=state, **params)
    assert caught.value.field == field
    assert str(caught.value).startswith(message)
    assert conn.calls == [] and running.calls == []
    assert conn.closed == 1


def test_xml_file_is_the_wanted_xml(tmp_path):
    path = tmp_path / 'libvirt.xml'
    path.write_text(domain_xml())
    conn = FakeVirConnect()
    assert run(conn, xml_file=str(path))['actions'][0] == 'define domain %s (domain is not defined)' % UUID
    assert ('defineXML', domain_xml()) in conn.calls
    assert run(conn, xml_file=str(path)) == expected()


def test_xml_libvirt_rejects_fails_naming_the_xml_option_with_libvirts_message():
    conn = FakeVirConnect()
    conn.reject = "XML error: Invalid value for attribute 'type' in element 'disk': 'nope'."
    with pytest.raises(KvmhostError) as caught:
        run(conn, xml=domain_xml())
    assert caught.value.field == 'xml'
    assert str(caught.value) == "xml: libvirt rejected the domain XML: XML error: Invalid value for attribute " \
                                "'type' in element 'disk': 'nope'."
    assert caught.value.applied == []
    assert conn.changes == ['defineXML'] and UUID not in conn.domains and conn.closed == 1


def test_a_libvirt_error_in_a_step_names_the_step_and_the_steps_done_before_it():
    conn = FakeVirConnect()
    shut_off = conn.add(LIBVIRT_DEFINED, state=SHUTOFF)
    shut_off.create_error = libvirt_error(VIR_ERR_INTERNAL_ERROR,
                                          'internal error: process exited while connecting to monitor')
    with pytest.raises(KvmhostError) as caught:
        run(conn, xml=domain_xml(memory_mib=256))
    assert str(caught.value) == 'failed to %s: libvirt: internal error: process exited while connecting to ' \
                                'monitor' % START
    assert caught.value.applied == ['redefine domain %s (%s)' % (UUID, MEMORY_DRIFT)]
    assert conn.changes == ['defineXML', 'create'] and conn.closed == 1


def test_a_lookup_error_other_than_no_domain_is_libvirts_own_and_the_connection_is_closed():
    conn = FakeVirConnect()
    conn.lookup_error = libvirt_error(VIR_ERR_SYSTEM_ERROR, 'Cannot recv data: Connection reset by peer')
    with pytest.raises(libvirt.libvirtError) as caught:
        run(conn, xml=domain_xml())
    assert caught.value is conn.lookup_error
    assert conn.changes == [] and conn.closed == 1


def test_a_libvirt_uri_that_cannot_be_reached_fails_naming_the_option(monkeypatch):
    def unreachable(uri):
        raise libvirt_error(VIR_ERR_SYSTEM_ERROR, "Failed to connect socket to '/run/nowhere': No such file")
    monkeypatch.setattr(libvirt, 'open', unreachable)
    driver = DomainDriver(FakeModule(domain_module.ITEM_SPEC, uuid=UUID, xml=domain_xml(), libvirt_uri='qemu:///nowhere'))
    with pytest.raises(KvmhostError) as caught:
        driver.outcome()
    assert caught.value.field == 'libvirt_uri'
    assert str(caught.value) == "libvirt_uri: cannot connect to libvirt at qemu:///nowhere: Failed to connect " \
                                "socket to '/run/nowhere': No such file"


# ---------------------------------------------------------------- through the module's main()

def module_result(monkeypatch, capsys, conn, args):
    """domain's main() over ``conn``: exit code, JSON result, the URIs it connected to."""
    return module_main_over(monkeypatch, capsys, DomainDriver, domain_module.main, conn, args)


def test_the_module_defines_and_starts_and_returns_the_documented_values(monkeypatch, capsys):
    conn = FakeVirConnect()
    code, result, uris = module_result(monkeypatch, capsys, conn, {'uuid': UUID, 'xml': domain_xml(),
                                                                   'libvirt_uri': 'qemu:///session'})
    assert code == 0 and uris == ['qemu:///session'] and conn.closed == 1
    assert dict((key, result[key]) for key in expected()) == expected(
        ['define domain %s (domain is not defined)' % UUID, START], drift=['domain is not defined'])


@pytest.mark.parametrize('args, message', [
    ({'wait_timeout': 0}, 'wait_timeout: must be 1..3600 seconds, got 0'),
    ({'xml_file': '/i/libvirt.xml'}, 'parameters are mutually exclusive: xml|xml_file'),
])
def test_the_module_refuses_a_bad_option_before_it_connects(monkeypatch, capsys, args, message):
    conn = FakeVirConnect()
    code, result, uris = module_result(monkeypatch, capsys, conn, dict({'uuid': UUID, 'xml': domain_xml()}, **args))
    assert code == 1 and result['failed'] is True
    assert result['msg'] == message
    assert uris == [] and conn.calls == []


@pytest.mark.parametrize('break_it, message', [
    ('reject', "xml: libvirt rejected the domain XML: XML error: no <name>"),
    ('lookup', 'libvirt: Cannot recv data: Connection reset by peer'),
])
def test_the_module_fails_with_libvirts_message(monkeypatch, capsys, break_it, message):
    conn = FakeVirConnect()
    if break_it == 'reject':
        conn.reject = 'XML error: no <name>'
    else:
        conn.lookup_error = libvirt_error(VIR_ERR_SYSTEM_ERROR, 'Cannot recv data: Connection reset by peer')
    code, result, _uris = module_result(monkeypatch, capsys, conn, {'uuid': UUID, 'xml': domain_xml()})
    assert code == 1 and result['failed'] is True
    assert result['msg'] == message
    assert conn.closed == 1 and UUID not in conn.domains
