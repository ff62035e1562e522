# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The step timeline's HTML page in a real browser.

instance_record writes the events of a rebuild of three instances whose steps overlap (one fails) into a temporary
state store; instance_timeline writes the page from it; headless Chromium (Debian's package ``chromium``) renders
it. No daemon is touched and no guest boots: it takes seconds.

Chromium reads file:// URLs only, with a temporary profile and home, no background networking and a host resolver
that resolves nothing. The page itself has no script: the layout is read from a copy of it with a probe script
appended, whose measures (every element's box and computed style) the dumped DOM carries back.

KVMHOST_TIMELINE_SCREENSHOT=<path> also keeps the screenshot there (docs/images/timeline.png comes from it).
"""

from __future__ import annotations

import datetime
import html
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import zlib

import pytest

from kvmhost_testlib import run_module

CHROMIUM = shutil.which('chromium')
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason='chromium is not installed (tools/install-system-packages installs it)')

REQUEST_ID = 'req-browser-test-1'
WINDOW = (1200, 900)
INSTANCES = {
    'web-1': '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0',
    'web-2': '2f1f7fe0-78fe-4c75-a9e7-8cef5f7f5fb1',
    'db-1': '3a2a8a01-89a1-4d86-b0f8-9d0a6a8a6ac2',
}
# The run as it happens, one instance_record call at a time: (instance, step, phase, result, note).
# Each call takes a fraction of a second, so the instances' steps overlap as a batch's do; db-1 fails.
RUN = [
    ('web-1', 'shutdown_instance', 'start', None, None),
    ('web-2', 'shutdown_instance', 'start', None, None),
    ('web-1', 'shutdown_instance', 'finish', None, 'Instance shutdown successfully after 1 seconds.'),
    ('web-1', 'create_image', 'start', None, None),
    ('db-1', 'shutdown_instance', 'start', None, None),
    ('web-2', 'shutdown_instance', 'finish', None, 'Instance shutdown successfully after 1 seconds.'),
    ('web-2', 'create_image', 'start', None, None),
    ('web-1', 'create_image', 'finish', None, None),
    ('web-1', 'spawning', 'start', None, None),
    ('db-1', 'shutdown_instance', 'finish', None, None),
    ('db-1', 'create_image', 'start', None, None),
    ('web-2', 'create_image', 'finish', None, None),
    ('web-2', 'spawning', 'start', None, None),
    ('db-1', 'create_image', 'finish', 'error', 'qemu-img: no space left on device'),
    ('web-1', 'spawning', 'finish', None, 'Instance spawned successfully.'),
    ('web-2', 'spawning', 'finish', None, 'Instance spawned successfully.'),
]
LAST_STEP = {'web-1': 'spawning', 'web-2': 'spawning', 'db-1': 'create_image'}
FAILED_RGB = 'rgb(198, 40, 40)'

PROBE = '''<script>
(function () {
  function box(element) {
    var rect = element.getBoundingClientRect(), style = getComputedStyle(element);
    return {left: rect.left, right: rect.right, top: rect.top, bottom: rect.bottom, width: rect.width,
            height: rect.height, text: element.textContent, classes: element.className,
            background: style.backgroundColor,
            shown: style.display !== 'none' && style.visibility === 'visible' && parseFloat(style.opacity) > 0};
  }
  function all(selector, extra) {
    return Array.prototype.map.call(document.querySelectorAll(selector), function (element) {
      var measured = box(element);
      if (extra) { extra(element, measured); }
      return measured;
    });
  }
  var probe = {
    viewport: document.documentElement.clientWidth,
    segments: all('.run-chart [data-step]', function (element, measured) {
      measured.instance = element.dataset.instance; measured.step = element.dataset.step;
      measured.title = element.title;
    }),
    tracks: all('.run-chart .row[data-instance] .track', function (element, measured) {
      measured.instance = element.parentNode.dataset.instance;
      measured.label = element.parentNode.querySelector('.label').textContent;
    }),
    legend: all('[data-legend-step]', function (element, measured) { measured.step = element.dataset.legendStep; }),
    sections: all('section.instance', function (element, measured) {
      measured.steps = Array.prototype.map.call(element.querySelectorAll('.gantt .label'), box);
      measured.rows = element.querySelectorAll('tbody tr').length;
    })
  };
  var out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify(probe);
  document.body.appendChild(out);
})();
</script>
'''


def record_run(state_db):
    """The rebuild, recorded by the collection's own module: a call per event start or finish."""
    started = set()
    for name, step, phase, result, note in RUN:
        finished = phase == 'finish' and LAST_STEP[name] == step
        action = {'name': 'rebuild', 'request_id': REQUEST_ID, 'finished': finished}
        if finished and result == 'error':
            action['note'] = 'Rebuild failed at %s: %s' % (step, note)
        event = {'name': step, 'phase': phase}
        if phase == 'finish':
            event.update(result=result or 'success', note=note)
        args = {'state_db': state_db, 'uuid': INSTANCES[name], 'action': action, 'event': event}
        if name not in started:
            args.update(name=name, vm_state='active', task_state='rebuilding')
            started.add(name)
        outcome = run_module('instance_record', args)
        assert not outcome.get('failed'), outcome


def chromium(tmp_path, *args):
    """Run headless Chromium on file:// URLs only; its stdout. Its profile and home are removed afterwards."""
    profile, home = tmp_path / 'chromium-profile', tmp_path / 'chromium-home'
    home.mkdir(exist_ok=True)
    command = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check',
               '--disable-extensions', '--disable-background-networking', '--disable-component-update',
               '--disable-sync', '--disable-default-apps', '--disable-domain-reliability', '--no-pings',
               '--host-resolver-rules=MAP * ~NOTFOUND', '--hide-scrollbars', '--mute-audio',
               '--user-data-dir=%s' % profile, '--window-size=%d,%d' % WINDOW] + list(args)
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home), XDG_CACHE_HOME=str(home))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               cwd=str(tmp_path), start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError('chromium did not finish within 120 s: %s' % ' '.join(command))
    finally:
        shutil.rmtree(str(profile), ignore_errors=True)
        shutil.rmtree(str(home), ignore_errors=True)
    assert process.returncode == 0, 'chromium failed (rc %d): %s' % (process.returncode, stderr[-3000:])
    return stdout


def png_size_and_colours(path):
    """(width, height) from the PNG's header and the number of distinct byte values of its decoded rows."""
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    width, height = struct.unpack('>II', data[16:24])
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack('>I4s', data[offset:offset + 8])
        if kind == b'IDAT':
            chunks.append(data[offset + 8:offset + 8 + length])
        offset += 12 + length
    return (width, height), len(set(zlib.decompress(b''.join(chunks))))


def moment(value):
    return datetime.datetime.fromisoformat(value.replace('Z', '+00:00'))


@pytest.fixture(scope='module')
def page(tmp_path_factory):
    """The run recorded, instance_timeline's page written from it: (its path, the timeline it returned)."""
    work = tmp_path_factory.mktemp('timeline-browser')
    state_db = str(work / 'state.sqlite3')
    record_run(state_db)
    result = run_module('instance_timeline', {'state_db': state_db, 'request_id': REQUEST_ID,
                                              'dest_dir': str(work / 'timelines')})
    assert result.get('changed') is True and not result.get('failed'), result
    path = work / 'timelines' / ('%s.html' % REQUEST_ID)
    assert str(path) in result['files']
    return path, result['timeline']


def test_the_recorded_run_overlaps_and_fails_once(page):
    dummy, timeline = page
    steps = dict((item['name'], [(e['name'], e['result']) for e in item['events']]) for item in timeline['instances'])
    assert steps == {
        'db-1': [('shutdown_instance', 'Success'), ('create_image', 'Error')],
        'web-1': [('shutdown_instance', 'Success'), ('create_image', 'Success'), ('spawning', 'Success')],
        'web-2': [('shutdown_instance', 'Success'), ('create_image', 'Success'), ('spawning', 'Success')],
    }
    web1, web2 = [dict((e['name'], e) for e in item['events']) for item in timeline['instances'][1:]]
    assert web2['shutdown_instance']['start_time'] < web1['shutdown_instance']['finish_time']


def test_the_dumped_dom_holds_every_step_of_every_instance_and_no_script(page, tmp_path):
    path, timeline = page
    dom = chromium(tmp_path, '--dump-dom', path.as_uri())
    assert '<script' not in dom.lower()
    assert 'Whole run' in dom and 'Per instance' in dom
    for item in timeline['instances']:
        assert dom.count('data-instance="%s"' % item['uuid']) == len(item['events']) + 1  # its segments and its row
        for event in item['events']:
            assert 'data-instance="%s" data-step="%s"' % (item['uuid'], event['name']) in dom
            assert re.search(r'<div class="label" title="[^"]*">\d+\. %s</div>' % event['name'], dom)


def test_every_step_of_every_instance_is_visible_on_one_time_axis(page, tmp_path):
    path, timeline = page
    probed = tmp_path / 'probed.html'
    probed.write_text(path.read_text(encoding='utf-8').replace('</body>', PROBE + '</body>'), encoding='utf-8')
    dom = chromium(tmp_path, '--dump-dom', probed.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    probe = json.loads(html.unescape(found.group(1)))

    run_start, run_end = moment(timeline['started_at']), moment(timeline['generated_at'])
    span = (run_end - run_start).total_seconds()
    tracks = dict((track['instance'], track) for track in probe['tracks'])
    assert len(tracks) == len(timeline['instances'])
    # One axis: every row's track has the same left and right edge, inside the window, rows one under the other.
    first = probe['tracks'][0]
    assert first['width'] > 600 and first['right'] <= probe['viewport']
    for above, below in zip(probe['tracks'], probe['tracks'][1:]):
        assert abs(above['left'] - below['left']) < 0.5 and abs(above['right'] - below['right']) < 0.5
        assert below['top'] >= above['bottom'] - 0.5

    segments = dict(((segment['instance'], segment['step']), segment) for segment in probe['segments'])
    wanted = set((item['uuid'], event['name']) for item in timeline['instances'] for event in item['events'])
    assert set(segments) == wanted and len(probe['segments']) == len(wanted)
    for item in timeline['instances']:
        track = tracks[item['uuid']]
        assert item['name'] in track['label'] and track['shown']
        for event in item['events']:
            segment = segments[(item['uuid'], event['name'])]
            assert segment['shown'] and segment['width'] >= 2 and segment['height'] >= 10, segment
            assert segment['top'] >= track['top'] - 0.5 and segment['bottom'] <= track['bottom'] + 0.5, segment
            assert segment['left'] >= track['left'] - 0.5 and segment['right'] <= track['right'] + 0.5, segment
            # Where the step starts and ends on the run's axis, within 1.5 px.
            start = (moment(event['start_time']) - run_start).total_seconds() / span
            end = (moment(event['finish_time']) - run_start).total_seconds() / span
            assert abs(segment['left'] - (track['left'] + start * track['width'])) < 1.5, (event, segment, track)
            expected_right = track['left'] + end * track['width']
            assert abs(segment['right'] - max(expected_right, segment['left'] + 3)) < 1.5, (event, segment, track)
            assert event['name'] in segment['title'] and event['result'] in segment['title']
            if event['result'] == 'Error':
                assert 'failed' in segment['classes'] and segment['background'] == FAILED_RGB
                assert '\u2715' in track['label']
            else:
                assert 'failed' not in segment['classes'] and segment['background'] != FAILED_RGB
        # The steps of one row do not cover each other.
        boxes = sorted((segments[(item['uuid'], e['name'])] for e in item['events']), key=lambda b: b['left'])
        for one, other in zip(boxes, boxes[1:]):
            assert one['right'] <= other['left'] + 0.5 or one['bottom'] <= other['top'] + 0.5, (one, other)

    # How the instances overlapped is seen: web-2's shutdown starts (on screen) before web-1's ends.
    web1, web2 = INSTANCES['web-1'], INSTANCES['web-2']
    assert segments[(web2, 'shutdown_instance')]['left'] < segments[(web1, 'shutdown_instance')]['right']
    # A step has one colour in every row, and the legend names every step.
    assert segments[(web1, 'spawning')]['background'] == segments[(web2, 'spawning')]['background']
    assert segments[(web1, 'spawning')]['background'] != segments[(web1, 'create_image')]['background']
    assert [entry['step'] for entry in probe['legend']] == ['shutdown_instance', 'create_image', 'spawning']
    assert all(entry['shown'] and entry['width'] > 0 and entry['right'] <= probe['viewport']
               for entry in probe['legend'])

    # The per-instance charts are kept: a section per instance, a visible label per step.
    assert len(probe['sections']) == len(timeline['instances'])
    for section, item in zip(probe['sections'], timeline['instances']):
        assert section['shown'] and item['name'] in section['text']
        assert [label['text'] for label in section['steps']] == [
            '%d. %s' % (number, event['name']) for number, event in enumerate(item['events'], 1)]
        assert all(label['shown'] and label['width'] > 0 and label['height'] > 0 for label in section['steps'])
        assert section['rows'] == len(item['events'])


def test_a_screenshot_of_the_page(page, tmp_path):
    path, dummy = page
    shot = tmp_path / 'timeline.png'
    chromium(tmp_path, '--screenshot=%s' % shot, path.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10000
    size, colours = png_size_and_colours(shot)
    assert size == WINDOW
    assert colours > 20, 'the screenshot is nearly uniform'
    keep = os.environ.get('KVMHOST_TIMELINE_SCREENSHOT')
    if keep:
        shutil.copyfile(str(shot), keep)
