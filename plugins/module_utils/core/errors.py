# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception type module_utils raise; ``base.run_module`` turns it into ``fail_json``."""

from __future__ import annotations


class KvmhostError(Exception):
    """A failure with a message meant for the user.

    ``field`` names the module option (or device, path) at fault; ``details`` are extra
    keys returned next to ``msg`` (never secrets).
    """

    def __init__(self, msg, field=None, **details):
        super().__init__(msg)
        self.msg = msg
        self.field = field
        self.details = details

    def __str__(self):
        """``field: msg``, unless the message already starts with the field (``volume x ...``, ``instances[2] ...``)."""
        if not self.field:
            return self.msg
        if self.msg.startswith(self.field) and self.msg[len(self.field):][:1] in (':', ' ', '[', '.'):
            return self.msg
        return '%s: %s' % (self.field, self.msg)
