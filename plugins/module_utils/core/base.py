# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module of the collection shares: the plan/apply split and the one error path.

A module file declares its argument spec and a driver class with ``run()``. ``run_module``
builds the AnsibleModule, calls the driver's ``outcome()`` (``open()``, ``run()``, ``close()``)
and turns every known failure into ``fail_json`` in exactly one place. Drivers build a
:class:`Plan`: check mode stops after planning, diff mode reads the plan's before/after, and
``apply()`` performs the steps in order.
"""

from __future__ import annotations

import sqlite3

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError

try:
    import libvirt
    _LIBVIRT_ERRORS = (libvirt.libvirtError,)
except ImportError:  # reported by the modules that need it, through missing_required_lib
    _LIBVIRT_ERRORS = ()

# The library errors the one error path turns into a message naming what failed.
KNOWN_ERRORS = (OSError, sqlite3.Error) + _LIBVIRT_ERRORS


def forget_passwords(module, value):
    """Drop every CHAP password (the ``password`` of an ``auth`` mapping) held in ``value``, and stop masking it.

    ``value`` is (part of) the parameters as the module received them. The result's ``invocation`` is the
    module's parameters at its exit, printed at -vvv and written to Ansible's log: a password left there would
    show wherever Ansible did not mask it (an untyped list of instance specs is not masked). Ansible masks a
    no_log value wherever it occurs in the result, so a short password (the letter p) would corrupt the
    output too. A module calls this once the passwords are where its step needs them (a validated copy).
    """
    if isinstance(value, list):
        for item in value:
            forget_passwords(module, item)
    elif isinstance(value, dict):
        auth = value.get('auth')
        if isinstance(auth, dict):
            forget_secret(module, auth, 'password')
        for key, item in value.items():
            if key != 'auth':
                forget_passwords(module, item)


def forget_secret(module, mapping, key):
    """Drop the no_log value ``mapping[key]`` from the parameters and stop masking it (see forget_passwords)."""
    if mapping.get(key) is not None:
        module.no_log_values.discard(mapping[key])
        mapping[key] = None


class Step(object):
    """One change the plan will make: a sentence for the user and the callable that makes it."""

    def __init__(self, description, action):
        self.description = description
        self.action = action

    def __repr__(self):
        return 'Step(%r)' % self.description


class Plan(object):
    """The changes a module will make, and the state before and after them."""

    def __init__(self, before=None, after=None):
        self.steps = []
        self.before = before if before is not None else {}
        self.after = after if after is not None else {}

    def add(self, description, action):
        self.steps.append(Step(description, action))

    @property
    def changed(self):
        return bool(self.steps)

    @property
    def descriptions(self):
        return [step.description for step in self.steps]

    def apply(self):
        """Run each step in order; a failing step stops the rest and names itself.

        The error carries ``applied``, the steps done before it, so a caller can say what changed.
        """
        applied = []
        for step in self.steps:
            try:
                step.action()
            except KvmhostError as exc:
                exc.applied = applied
                raise
            except KNOWN_ERRORS as exc:
                error = KvmhostError('failed to %s: %s' % (step.description, describe_error(exc)))
                error.applied = applied
                raise error
            applied.append(step.description)

    def diff(self):
        return {'before': self.before, 'after': self.after}


def describe_error(exc):
    """A one-line description of a library error, naming the file or libvirt's complaint."""
    if _LIBVIRT_ERRORS and isinstance(exc, _LIBVIRT_ERRORS):
        return 'libvirt: %s' % (exc.get_error_message() or str(exc))
    if isinstance(exc, OSError):
        where = exc.filename
        if getattr(exc, 'filename2', None):
            where = '%s -> %s' % (exc.filename, exc.filename2)
        return '%s: %s' % (where, exc.strerror) if where else (exc.strerror or str(exc))
    if isinstance(exc, sqlite3.Error):
        return 'state store: %s' % exc
    return str(exc)


class StepRecord(object):
    """What a step that records itself (the ``record`` option of the step modules) writes at its finish."""

    def record_note(self, result):
        """The event's note: what was done, or that nothing had to be."""
        return '; '.join(result.get('actions') or []) or 'nothing to change'

    def record_details(self, result):
        """The event's details (a dict), or None."""
        return None

    def record_fields(self, result):
        """Instance fields the step's outcome sets (for example the power state a start reached)."""
        return {}


class ModuleDriver(StepRecord):
    """Base of every module's logic. Subclasses implement ``run()`` returning the result dict.

    Whoever runs a driver (run_module, the batch runner, EachDriver) calls ``outcome()``: it opens what the run
    holds open (``open()``; a LibvirtDriver's libvirt connection), runs it and closes that whatever happened.
    """

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.diff_mode = module._diff

    @staticmethod
    def check_options(params):
        """Check the module's options (defaults applied) against their documented ranges; read nothing, change
        nothing. Raises KvmhostError naming the field.

        ``run()`` makes these checks before it reads or changes the host, and the batch runner calls this for
        every item before any item runs.
        """

    def run(self):
        raise NotImplementedError

    def open(self):
        """Acquire what the run holds open (a LibvirtDriver connects to libvirt); nothing here."""

    def close(self):
        """Release what ``open()`` acquired; called after the run whatever happened. Nothing here."""

    def outcome(self):
        """The driver's result: ``open()``, ``run()``, and ``close()`` whatever happens; the one way to run one."""
        self.open()
        try:
            return self.run()
        finally:
            self.close()

    def finish(self, plan, **result):
        """Apply ``plan`` unless in check mode and build the standard result."""
        if plan.changed and not self.check_mode:
            plan.apply()
        result['changed'] = plan.changed
        result.setdefault('actions', plan.descriptions)
        if self.diff_mode:
            result['diff'] = plan.diff()
        return result


def run_module(driver_class, argument_spec, **module_kwargs):
    """Build the AnsibleModule, run the driver, exit or fail: the collection's one error path."""
    module_kwargs.setdefault('supports_check_mode', True)
    module = AnsibleModule(argument_spec=argument_spec, **module_kwargs)
    try:
        result = driver_class(module).outcome()
    except KvmhostError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except KNOWN_ERRORS as exc:
        module.fail_json(msg=describe_error(exc))
    module.exit_json(**result)
