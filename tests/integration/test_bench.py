# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/bench --sizes 1, as a check that the benchmark works end to end and leaves nothing of its instances.

A benchmark is never a timed test: no figure is compared with a time or a ratio here, only checked to be there
and positive.
"""

from __future__ import annotations

import json
import os
import subprocess
from xml.etree import ElementTree

import pytest

from kvmhost_testlib import ROOT, VENV_BIN

libvirt = pytest.importorskip('libvirt')

pytestmark = pytest.mark.slow

PLAYBOOK_RUNS = ('boot', 'converge', 'rebuild', 'delete')
SCRIPT_RUNS = ('script_boot', 'script_rebuild_sequential', 'script_rebuild_parallel')
INSTANCES_PATH = '/var/lib/kvmhost/instances'
SVG = '{http://www.w3.org/2000/svg}'
NOVA = '{http://openstack.org/xmlns/libvirt/nova/1.1}'


@pytest.fixture(scope='module')
def bench(tmp_path_factory, libvirt_conn, demo_images):  # pylint: disable=unused-argument
    out = tmp_path_factory.mktemp('bench')
    process = subprocess.run([os.path.join(VENV_BIN, 'python'), os.path.join(ROOT, 'tools', 'bench'),
                              '--sizes', '1', '--out', str(out)],
                             capture_output=True, text=True, cwd=ROOT, timeout=1800, check=False)
    assert process.returncode == 0, 'tools/bench failed (rc %d):\n%s\n%s' % (
        process.returncode, process.stdout[-6000:], process.stderr[-3000:])
    with open(str(out / 'bench.json')) as handle:
        document = json.load(handle)
    return out, process.stdout, document


def test_the_json_has_every_figure_of_every_run(bench):
    _out, _stdout, document = bench
    assert document['sizes'] == [1]
    assert set(('timestamp', 'host', 'settings', 'results', 'summary', 'ratios', 'slopes_seconds_per_instance')) \
        <= set(document)
    assert document['host']['nproc'] >= 1 and document['host']['libvirt_version']
    (entry,) = document['results']
    assert entry['n'] == 1 and [instance['name'] for instance in entry['instances']] == ['bench-1']
    assert set(entry['runs']) == set(PLAYBOOK_RUNS + SCRIPT_RUNS)
    for key, figures in entry['runs'].items():
        assert figures['returncode'] == 0, (key, figures)
        assert figures['seconds'] > 0 and figures['peak_rss_mib'] > 0 and figures['cpu_seconds'] >= 0, (key, figures)
    for key in PLAYBOOK_RUNS:
        figures = entry['runs'][key]
        assert figures['tasks'] > 0 and figures['cpu_seconds'] > 0, (key, figures)
        # The TASK headers of the default output and the counting callback agree.
        assert figures['tasks'] == figures['task_headers'], (key, figures)
    assert entry['runs']['converge']['recap']['changed'] == 0, entry['runs']['converge']
    for key in ('rebuild_vs_script_sequential', 'rebuild_vs_script_parallel', 'boot_vs_script_boot'):
        assert entry['ratios'][key] > 0 and document['ratios'][key] == [entry['ratios'][key]]
    assert entry['leftovers'] == []
    # One size: no slope yet.
    assert document['slopes_seconds_per_instance']['rebuild'] is None


def test_the_plot_is_an_svg_with_ours_and_the_scripts_lines(bench):
    out, _stdout, _document = bench
    root = ElementTree.parse(str(out / 'bench.svg')).getroot()
    assert root.tag == SVG + 'svg'
    titles = [element.findtext(SVG + 'title') for element in root.iter(SVG + 'polyline')]
    assert {'boot.yml', 'rebuild.yml', 'script rebuild (sequential)', 'script rebuild (parallel)'} <= set(titles)
    assert '| rebuild.yml |' in (out / 'bench.md').read_text()


def test_the_output_prints_the_figures_and_ratios(bench):
    _out, stdout, _document = bench
    for label in ('boot.yml', 'rebuild.yml', 'script rebuild, sequential', 'script rebuild, parallel', 'delete.yml',
                  'rebuild.yml / script sequential', 'boot.yml / script define+start'):
        assert label in stdout, stdout


def test_nothing_of_the_bench_instances_is_left(bench, libvirt_conn):
    _out, _stdout, document = bench
    (entry,) = document['results']
    bench_uuids = set(instance['uuid'] for instance in entry['instances'])
    names = subprocess.run(['virsh', '-c', 'qemu:///system', 'list', '--all', '--name'], capture_output=True,
                           text=True, check=True).stdout.split()
    assert not [name for name in names if name.startswith('bench-')]
    for dom in libvirt_conn.listAllDomains():
        assert dom.UUIDString() not in bench_uuids, dom.name()
        nova_name = ElementTree.fromstring(dom.XMLDesc()).findtext('metadata/%sinstance/%sname' % (NOVA, NOVA))
        assert not (nova_name or '').startswith('bench-'), dom.name()
    left = [name for name in os.listdir(INSTANCES_PATH) if name.split('_')[0] in bench_uuids]
    assert left == []
    for instance in entry['instances']:
        for kind in ('tap', 'qbr', 'qvb', 'qvo'):
            assert not os.path.exists('/sys/class/net/%s%s' % (kind, instance['port_id'][:11]))
