# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of user input shared by every module. Each raises KvmhostError naming the field."""

from __future__ import annotations

import ipaddress
import os
import re
import uuid as uuid_lib

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError

_UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
# Printable, no path separators, no control characters.
_SAFE_TOKEN_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,254}$')
# The longest wait (timeout, claim wait, download timeout) any option may ask for, in seconds: an hour.
MAX_TIMEOUT = 3600


def check_int(value, field, minimum, maximum, unit=''):
    """An integer option within ``minimum``..``maximum`` (both included); a bool is no integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise KvmhostError('must be an integer, got %r' % (value,), field=field)
    if not minimum <= value <= maximum:
        raise KvmhostError('must be %d..%d%s, got %d' % (minimum, maximum, ' ' + unit if unit else '', value),
                           field=field)
    return value


def check_uuid(value, field='uuid'):
    """Return the canonical lower-case form of an RFC 4122 UUID string, or raise."""
    if not isinstance(value, str) or not value:
        raise KvmhostError('must be a UUID like 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0, got %r' % (value,),
                           field=field)
    candidate = value.lower()
    if not _UUID_RE.fullmatch(candidate):
        raise KvmhostError('must be a UUID like 1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0, got %r' % (value,),
                           field=field)
    return str(uuid_lib.UUID(candidate))


def check_token(value, field):
    """An identifier that will become part of a file or device name: no '/', no '..', no spaces."""
    if not isinstance(value, str) or not _SAFE_TOKEN_RE.fullmatch(value) or '..' in value:
        raise KvmhostError('must be 1-255 characters of letters, digits and ._:@+- without "..", '
                           'starting with a letter or digit; got %r' % (value,), field=field)
    return value


def check_display_name(value, field='name'):
    """A display name: free text, but no control characters and at most 255 characters."""
    if not isinstance(value, str):
        raise KvmhostError('must be a string', field=field)
    if len(value) > 255:
        raise KvmhostError('must be at most 255 characters, got %d' % len(value), field=field)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise KvmhostError('must not contain control characters', field=field)
    return value


def check_absolute_path(value, field):
    if not isinstance(value, str) or not value:
        raise KvmhostError('must be an absolute path', field=field)
    if not os.path.isabs(value):
        raise KvmhostError('must be an absolute path, got %r' % value, field=field)
    if '\x00' in value:
        raise KvmhostError('must not contain NUL characters', field=field)
    return os.path.normpath(value)


def check_instances_path(value, field='instances_path'):
    """The directory of instance directories: absolute, existing, and not the root directory."""
    path = check_absolute_path(value, field)
    if path == '/':
        raise KvmhostError('must not be the root directory', field=field)
    if not os.path.isdir(path):
        raise KvmhostError('%s is not a directory' % path, field=field)
    return path


def check_writable_parent(path, field, predicted_parent=False):
    """The directory that will hold ``path`` must exist and be writable.

    With ``predicted_parent`` (check mode, where an earlier step would have made it), a missing directory
    is accepted when its own parent exists and is writable.
    """
    parent = os.path.dirname(path) or '/'
    if predicted_parent and not os.path.lexists(parent):
        check_writable_parent(parent, field)
        return path
    if not os.path.isdir(parent):
        raise KvmhostError('directory %s does not exist' % parent, field=field)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise KvmhostError('directory %s is not writable' % parent, field=field)
    if os.path.exists(path) and not os.path.isfile(path):
        raise KvmhostError('%s exists and is not a regular file' % path, field=field)
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        raise KvmhostError('%s is not readable and writable' % path, field=field)
    return path


MIN_MTU, MAX_MTU = 68, 65535
MIN_VLAN, MAX_VLAN = 1, 4094  # 802.1Q: 0 and 4095 are reserved
MIN_PORT, MAX_PORT = 1, 65535  # TCP and UDP ports
MAX_LUN = 16383
_IFNAME_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,14}')
_MAC_RE = re.compile(r'[0-9a-f]{2}(?::[0-9a-f]{2}){5}')
_IQN_RE = re.compile(r'iqn\.[0-9]{4}-(?:0[1-9]|1[0-2])\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?'
                     r'(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[a-z0-9.:-]+)?', re.IGNORECASE)
_EUI_RE = re.compile(r'eui\.[0-9a-f]{16}', re.IGNORECASE)
_MAX_IQN = 223  # RFC 3720: an iSCSI name is at most 223 bytes
_PORTAL_RE = re.compile(r'(?:\[(?P<ipv6>[^\]]+)\]|(?P<ipv4>[0-9.]+)):(?P<port>[0-9]{1,5})')


def check_mac(value, field):
    """A unicast 6-octet MAC address, returned in lower case."""
    mac = value.lower() if isinstance(value, str) else value
    if not isinstance(mac, str) or not _MAC_RE.fullmatch(mac):
        raise KvmhostError('must be a MAC address of 6 hex octets like fa:16:3e:81:a8:b4, got %r' % (value,),
                           field=field)
    if int(mac[:2], 16) & 1:
        raise KvmhostError('must be a unicast MAC address (the lowest bit of the first octet clear), got %s' % mac,
                           field=field)
    if mac == '00:00:00:00:00:00':
        raise KvmhostError('must not be all zeros', field=field)
    return mac


def check_ifname(value, field):
    """A Linux network device name: at most 15 characters, no '/', no spaces, no ':'."""
    if not isinstance(value, str) or not _IFNAME_RE.fullmatch(value) or '..' in value:
        raise KvmhostError('must be a network device name of 1-15 letters, digits and ._- without "..", '
                           'starting with a letter or digit; got %r' % (value,), field=field)
    return value


def check_iqn(value, field):
    """An iSCSI qualified name: iqn.YYYY-MM.reversed.domain[:name] or eui. and 16 hex digits."""
    if (not isinstance(value, str) or len(value) > _MAX_IQN
            or not (_IQN_RE.fullmatch(value) or _EUI_RE.fullmatch(value))):
        raise KvmhostError('must be an iSCSI name like iqn.2026-11.org.example:volume-1 '
                           '(iqn.YYYY-MM.reversed.domain[:name]) or eui. and 16 hex digits; got %r' % (value,),
                           field=field)
    return value


def check_portal(value, field):
    """``ADDRESS:PORT`` with an IPv4 address or a bracketed IPv6 address; returns (address, port)."""
    match = _PORTAL_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise KvmhostError('must be ADDRESS:PORT with an IP address (IPv6 in brackets), like 127.0.0.1:3260; '
                           'got %r' % (value,), field=field)
    address = match.group('ipv4') or match.group('ipv6')
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise KvmhostError('%r is not a valid IP address' % address, field=field)
    if (parsed.version == 6) != bool(match.group('ipv6')):
        raise KvmhostError('an IPv6 address must be written in brackets, like [fd00::1]:3260', field=field)
    port = int(match.group('port'))
    if not MIN_PORT <= port <= MAX_PORT:
        raise KvmhostError('port must be %d..%d, got %d' % (MIN_PORT, MAX_PORT, port), field=field)
    return str(parsed), port
