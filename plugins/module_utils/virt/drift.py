# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Does a defined domain still match the XML we want, ignoring what libvirt adds by itself?

libvirt fills a defined domain with defaults: PCI addresses, controllers, a console for each
serial port, aliases, placement attributes, the full machine type. A plain comparison of the
two documents would see drift on every run. Instead the wanted XML must be *contained* in the
defined one: every element, attribute and text we asked for is there with the same value (a
few values libvirt rewrites are normalized first). And for the devices we manage, libvirt must
not have more of them than we asked for, so a disk or interface added behind our back is
drift too.
"""

from __future__ import annotations

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError

try:
    from lxml import etree
except ImportError:  # reported by the module through missing_required_lib
    etree = None

# Devices whose count must match exactly: what the domain XML builder writes.
MANAGED_DEVICES = ('disk', 'interface', 'graphics', 'filesystem', 'hostdev', 'serial')
_UNIT_FACTORS = {'b': 1, 'bytes': 1, 'k': 1024, 'kib': 1024, 'kb': 1000, 'm': 1024 ** 2, 'mib': 1024 ** 2,
                 'mb': 1000 ** 2, 'g': 1024 ** 3, 'gib': 1024 ** 3, 'gb': 1000 ** 3}


def parse_xml(text, field='xml'):
    try:
        parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
        return etree.fromstring(text.encode('utf-8') if isinstance(text, str) else text, parser)
    except etree.XMLSyntaxError as exc:
        raise KvmhostError('is not well-formed XML: %s' % exc, field=field)


def _memory_bytes(element):
    unit = (element.get('unit') or 'KiB').lower()
    try:
        return int(element.text.strip()) * _UNIT_FACTORS[unit]
    except (ValueError, KeyError, AttributeError):
        return None


def _attribute_matches(tag, name, wanted, defined):
    if defined is None:
        return False
    if wanted == defined:
        return True
    if name == 'address' and tag == 'mac':
        return wanted.lower() == defined.lower()
    if name == 'machine':
        # 'pc' or 'q35' are expanded by libvirt to the versioned type, e.g. pc-i440fx-7.2.
        return defined.startswith(wanted + '-') or (wanted == 'pc' and defined.startswith('pc-i440fx-'))
    return False


def differences(wanted, defined, path=''):
    """The places where ``wanted`` is not contained in ``defined`` (empty: no drift)."""
    here = '%s/%s' % (path, wanted.tag)
    found = []
    if wanted.tag != defined.tag:
        return ['%s: element is %s' % (here, defined.tag)]
    if wanted.tag in ('memory', 'currentMemory') and wanted.text:
        if _memory_bytes(wanted) != _memory_bytes(defined):
            found.append('%s: %s %s wanted, %s %s defined' % (
                here, wanted.text, wanted.get('unit') or 'KiB', defined.text, defined.get('unit') or 'KiB'))
        return found
    for name, value in wanted.attrib.items():
        if not _attribute_matches(wanted.tag, name, value, defined.get(name)):
            found.append('%s/@%s: %r wanted, %r defined' % (here, name, value, defined.get(name)))
    wanted_text = (wanted.text or '').strip()
    if wanted_text and wanted_text != (defined.text or '').strip():
        found.append('%s: text %r wanted, %r defined' % (here, wanted_text, (defined.text or '').strip()))
    # Children pair up by tag, in order: the k-th <disk> wanted with the k-th <disk> defined.
    # libvirt regroups devices by kind but keeps the order within a kind.
    defined_by_tag = {}
    for child in defined:
        if isinstance(child.tag, str):
            defined_by_tag.setdefault(child.tag, []).append(child)
    seen = {}
    for child in wanted:
        if not isinstance(child.tag, str):  # comments
            continue
        index = seen.get(child.tag, 0)
        seen[child.tag] = index + 1
        candidates = defined_by_tag.get(child.tag, [])
        if index >= len(candidates):
            found.append('%s/%s[%d]: missing' % (here, child.tag, index + 1))
            continue
        found.extend(differences(child, candidates[index], here))
    if wanted.tag == 'devices':
        for tag in MANAGED_DEVICES:
            extra = len(defined_by_tag.get(tag, [])) - seen.get(tag, 0)
            if extra > 0:
                found.append('%s/%s: %d more defined than wanted' % (here, tag, extra))
    return found


def domain_drift(wanted_xml, defined_xml):
    """Differences between the wanted XML text and the defined (inactive) XML text."""
    return differences(parse_xml(wanted_xml), parse_xml(defined_xml, field='defined xml'))
