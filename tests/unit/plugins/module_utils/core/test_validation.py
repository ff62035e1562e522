# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    check_absolute_path, check_display_name, check_ifname, check_iqn, check_mac, check_portal, check_token, check_uuid)


def test_uuid_is_canonicalized():
    assert check_uuid('1E0E6ED9-67FD-4B64-98D6-7BDE4F6F4FA0') == '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'


@pytest.mark.parametrize('value', ['', 'x', '1e0e6ed967fd4b6498d67bde4f6f4fa0', '../1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0',
                                   '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0\n', None, 42])
def test_bad_uuids(value):
    with pytest.raises(KvmhostError, match='uuid: must be a UUID'):
        check_uuid(value)


@pytest.mark.parametrize('value', ['../x', 'a/b', '..', 'a..b', '', ' x', 'x y', 'x;rm', '<x>', 'é'])
def test_bad_tokens(value):
    with pytest.raises(KvmhostError, match='image.id: must be'):
        check_token(value, 'image.id')


def test_good_tokens():
    assert check_token('demo-guest-v1', 'id') == 'demo-guest-v1'
    assert check_token('req-8a1c7c9e:1@x+y', 'id') == 'req-8a1c7c9e:1@x+y'


def test_display_names_allow_text_but_not_control_characters():
    assert check_display_name('web <1> & "db"') == 'web <1> & "db"'
    with pytest.raises(KvmhostError):
        check_display_name('x' * 256)
    with pytest.raises(KvmhostError):
        check_display_name('tab\there')


def test_absolute_paths():
    assert check_absolute_path('/var/lib/../lib/kvmhost', 'p') == '/var/lib/kvmhost'
    with pytest.raises(KvmhostError, match='p: must be an absolute path'):
        check_absolute_path('var/lib', 'p')


def test_mac_addresses():
    assert check_mac('FA:16:3E:81:A8:B4', 'vif.address') == 'fa:16:3e:81:a8:b4'
    for bad, why in (('fa:16:3e:81:a8', 'must be a MAC address'), ('01:00:5e:00:00:01', 'unicast'),
                     ('00:00:00:00:00:00', 'all zeros'), (None, 'must be a MAC address')):
        with pytest.raises(KvmhostError, match='^vif.address: .*' + why):
            check_mac(bad, 'vif.address')


def test_interface_names():
    assert check_ifname('eth0.100', 'vif.bridge') == 'eth0.100'
    for bad in ('a' * 16, 'a/b', 'a b', 'x..y', '', '-eth'):
        with pytest.raises(KvmhostError, match='^vif.bridge: must be a network device name'):
            check_ifname(bad, 'vif.bridge')


def test_iscsi_names():
    for good in ('iqn.2026-11.org.example:volume-1', 'iqn.2026-11.org.example', 'eui.0123456789ABCDEF'):
        assert check_iqn(good, 'target_iqn') == good
    for bad in ('iqn.2026-13.org.example', 'iqn.26-11.org', 'eui.0123', 'iqn.2026-11.org.example:' + 'x' * 200,
                'iqn.2026-11.org.example:a b'):
        with pytest.raises(KvmhostError, match='^target_iqn: must be an iSCSI name'):
            check_iqn(bad, 'target_iqn')


def test_portals():
    assert check_portal('127.0.0.1:3260', 'target_portal') == ('127.0.0.1', 3260)
    assert check_portal('[FD00::5]:3261', 'target_portal') == ('fd00::5', 3261)
    for bad, why in (('127.0.0.1', 'must be ADDRESS:PORT'), ('host.example:3260', 'must be ADDRESS:PORT'),
                     ('999.0.0.1:3260', "'999.0.0.1' is not a valid IP address"), ('127.0.0.1:0', 'port must be 1..65535'),
                     ('127.0.0.1:70000', 'port must be 1..65535')):
        with pytest.raises(KvmhostError, match='^target_portal: ' + why):
            check_portal(bad, 'target_portal')
