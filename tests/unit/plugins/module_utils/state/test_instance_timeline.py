# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The step timeline: built from a real state store, rendered as text, JSON and HTML, written idempotently."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.instance_timeline import (
    STEP_COLOURS, TimelineDriver, _axis_label, build_timeline, file_diffs, plan_timeline_files, render_html,
    render_json, render_text, run_chart)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import StateStore

WEB1 = '1e0e6ed9-67fd-4b64-98d6-7bde4f6f4fa0'
WEB2 = '2f1f7fe0-78fe-4c75-a9e7-8cef5f7f5fb1'
DB1 = '3a2a8a01-89a1-4d86-b0f8-9d0a6a8a6ac2'


def ts(clock):
    """A store timestamp on 2026-11-23 from 'HH:MM:SS.f'."""
    hms, dummy, fraction = clock.partition('.')
    return '2026-11-23T%s.%sZ' % (hms, fraction.ljust(6, '0'))


def record(store, uuid, name, request_id, action='rebuild', start=None, finish=None, events=(), message=None,
           deleted=False):
    """One instance with one action and its events: (event, start, finish, result, message, details)."""
    store.save_instance(uuid, {'name': name, 'deleted': deleted}, now=start)
    saved = store.save_action(uuid, request_id, action=action, start_time=start, finish_time=finish,
                              message=message)
    for name_, start_, finish_, result, note, details in events:
        store.save_event(saved['id'], name_, start_time=start_, finish_time=finish_, result=result, message=note,
                         details=details)
    return saved


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / 'state.sqlite3')


@pytest.fixture
def writer(db_path):
    store = StateStore.open(db_path, readonly=False)
    yield store
    store.close()


def timeline_of(db_path, request_id=None, uuids=None):
    store = StateStore.open(db_path, readonly=True)
    try:
        return build_timeline(store, request_id, uuids)
    finally:
        if store is not None:
            store.close()


def test_timestamp_helper():
    assert ts('14:02:03.1') == '2026-11-23T14:02:03.100000Z'
    assert ts('14:02:03') == '2026-11-23T14:02:03.000000Z'


def rebuild_run(store):
    """web-1 rebuilt in 41.2 s; db-1 started 1 s later. Events saved out of start-time order."""
    record(store, WEB1, 'web-1', 'req-1', start=ts('14:02:03.1'), finish=ts('14:02:44.3'), events=[
        ('spawn', ts('14:02:35.0'), ts('14:02:44.3'), 'Success', 'Spawned.', {'boot_s': 9.3}),
        ('shutdown_instance', ts('14:02:03.1'), ts('14:02:34.5'), 'Success',
         'Instance failed to shutdown in 30 seconds. Instance destroyed successfully.', None),
    ])
    record(store, DB1, 'db-1', 'req-1', start=ts('14:02:04.1'), finish=ts('14:02:10.1'), events=[
        ('shutdown_instance', ts('14:02:04.1'), ts('14:02:06.1'), 'Success', 'Instance shutdown successfully.', None),
        ('spawn', ts('14:02:06.1'), ts('14:02:10.1'), 'Success', None, None),
    ])


def test_steps_in_start_order_with_durations_and_offsets(db_path, writer):
    rebuild_run(writer)
    timeline = timeline_of(db_path, 'req-1')
    assert [item['name'] for item in timeline['instances']] == ['db-1', 'web-1']
    web1 = timeline['instances'][1]
    assert web1['domain_name'] == 'instance-00000001'
    assert web1['result'] == 'Success'
    assert web1['duration_s'] == 41.2
    assert [(e['name'], e['duration_s'], e['offset_s']) for e in web1['events']] == [
        ('shutdown_instance', 31.4, 0.0), ('spawn', 9.3, 31.9)]
    assert web1['events'][1]['details'] == {'boot_s': 9.3}
    db1 = timeline['instances'][0]
    assert [(e['name'], e['offset_s']) for e in db1['events']] == [('shutdown_instance', 1.0), ('spawn', 3.0)]
    assert timeline['request_id'] == 'req-1'
    assert timeline['started_at'] == ts('14:02:03.1')
    assert timeline['finished_at'] == ts('14:02:44.3')
    assert timeline['generated_at'] == ts('14:02:44.3')
    assert timeline['duration_s'] == 41.2


def test_events_with_one_start_time_keep_their_insertion_order(db_path, writer):
    record(writer, WEB1, 'web-1', 'req-1', start=ts('10:00:00'), finish=ts('10:00:02'), events=[
        ('b_second', ts('10:00:00'), ts('10:00:01'), 'Success', None, None),
        ('a_first', ts('10:00:00'), ts('10:00:02'), 'Success', None, None),
    ])
    assert [e['name'] for e in timeline_of(db_path, 'req-1')['instances'][0]['events']] == ['b_second', 'a_first']


def test_instances_sorted_by_name_then_uuid(db_path, writer):
    record(writer, WEB2, 'web', 'req-1', start=ts('10:00:00'))
    record(writer, WEB1, 'web', 'req-1', start=ts('10:00:01'))
    record(writer, DB1, 'app', 'req-1', start=ts('10:00:02'))
    assert [item['uuid'] for item in timeline_of(db_path, 'req-1')['instances']] == [DB1, WEB1, WEB2]


def test_an_error_wins_and_unfinished_is_in_progress(db_path, writer):
    record(writer, WEB1, 'failed', 'req-1', start=ts('10:00:00'), events=[
        ('shutdown_instance', ts('10:00:00'), ts('10:00:01'), 'Success', None, None),
        ('spawn', ts('10:00:01'), ts('10:00:03'), 'Error', 'libvirt: no space', None),
        ('cleanup', ts('10:00:03'), None, None, None, None),
    ])
    record(writer, WEB2, 'running', 'req-1', start=ts('10:00:00'), finish=ts('10:00:05'), events=[
        ('spawn', ts('10:00:00'), None, None, None, None),
    ])
    record(writer, DB1, 'unfinished-action', 'req-1', start=ts('10:00:00'), events=[
        ('spawn', ts('10:00:00'), ts('10:00:04'), 'Success', None, None),
    ])
    timeline = timeline_of(db_path, 'req-1')
    results = dict((item['name'], item['result']) for item in timeline['instances'])
    assert results == {'failed': 'Error', 'running': 'In progress', 'unfinished-action': 'In progress'}
    running = timeline['instances'][1]
    assert running['events'][0]['result'] == 'In progress'
    assert running['events'][0]['duration_s'] is None
    assert running['events'][0]['finish_time'] is None
    assert timeline['instances'][2]['duration_s'] is None
    assert timeline['finished_at'] is None
    assert timeline['duration_s'] is None
    assert timeline['generated_at'] == ts('10:00:05')


def test_finished_action_with_successful_steps_is_success_and_no_steps_too(db_path, writer):
    record(writer, WEB1, 'web-1', 'req-1', start=ts('10:00:00'), finish=ts('10:00:02'))
    item = timeline_of(db_path, 'req-1')['instances'][0]
    assert item['result'] == 'Success'
    assert item['events'] == []


def test_latest_action_without_request_id(db_path, writer):
    record(writer, WEB1, 'web-1', 'req-boot', action='create', start=ts('09:00:00'), finish=ts('09:01:00'))
    record(writer, WEB1, 'web-1', 'req-rebuild', start=ts('10:00:00'), finish=ts('10:00:30'))
    record(writer, WEB2, 'web-2', 'req-boot', action='create', start=ts('09:00:00'), finish=ts('09:02:00'))
    latest = timeline_of(db_path)
    assert [(item['name'], item['request_id']) for item in latest['instances']] == [
        ('web-1', 'req-rebuild'), ('web-2', 'req-boot')]
    assert latest['request_id'] is None  # the latest actions do not share one
    chosen = timeline_of(db_path, 'req-boot')
    assert [(item['name'], item['action']) for item in chosen['instances']] == [('web-1', 'create'), ('web-2', 'create')]
    assert timeline_of(db_path, uuids=[WEB1])['request_id'] == 'req-rebuild'


def test_run_covers_deleted_instances_that_took_part_and_only_those(db_path, writer):
    record(writer, WEB1, 'web-1', 'req-1', action='delete', start=ts('10:00:00'), finish=ts('10:00:01'),
           deleted=True)
    record(writer, WEB2, 'web-2', 'req-other', start=ts('10:00:00'))
    record(writer, DB1, 'db-1', 'req-old', action='delete', start=ts('09:00:00'), finish=ts('09:00:01'),
           deleted=True)
    run = timeline_of(db_path, 'req-1')
    assert [(item['name'], item['deleted']) for item in run['instances']] == [('web-1', True)]
    assert [item['name'] for item in timeline_of(db_path)['instances']] == ['web-2']
    listed = timeline_of(db_path, 'req-1', uuids=[WEB2, WEB1, '9e9e9e9e-0000-4000-8000-000000000000'])
    assert [(item['name'], item['action']) for item in listed['instances']] == [('web-1', 'delete'), ('web-2', None)]


def test_missing_store_is_an_empty_timeline(db_path):
    timeline = timeline_of(db_path, 'req-1')
    assert timeline == {'request_id': 'req-1', 'generated_at': None, 'started_at': None, 'finished_at': None,
                        'duration_s': None, 'instances': []}
    assert render_text(timeline) == ['Timeline of request req-1: 0 instances, no steps recorded',
                                     'No instance actions recorded.']
    assert 'No instance actions recorded.' in render_html(timeline)
    assert not os.path.exists(db_path)


def test_text_lines_are_aligned(db_path, writer):
    rebuild_run(writer)
    lines = render_text(timeline_of(db_path, 'req-1'))
    assert lines == [
        'Timeline of request req-1: 2 instances, started 2026-11-23 14:02:03 UTC, took 41.2 s',
        'instance-00000002 db-1 (%s) rebuild req-1 Success in 6.0 s' % DB1,
        '  1. shutdown_instance  14:02:04.1   +1.0 s   2.0 s  Success  Instance shutdown successfully.',
        '  2. spawn              14:02:06.1   +3.0 s   4.0 s  Success',
        'instance-00000001 web-1 (%s) rebuild req-1 Success in 41.2 s' % WEB1,
        '  1. shutdown_instance  14:02:03.1   +0.0 s  31.4 s  Success  Instance failed to shutdown in 30 seconds. '
        'Instance destroyed successfully.',
        '  2. spawn              14:02:35.0  +31.9 s   9.3 s  Success  Spawned.',
    ]


def test_text_cuts_long_messages_and_drops_control_characters(db_path, writer):
    record(writer, WEB1, 'web-1', 'req-1', start=ts('10:00:00'), message='failed\nbadly', events=[
        ('spawn', ts('10:00:00'), None, None, 'x' * 300 + '\x1b[31m', None),
    ])
    record(writer, WEB2, 'web-2', 'req-2', start=ts('10:00:00'))
    lines = render_text(timeline_of(db_path, uuids=[WEB1, WEB2], request_id='req-1'))
    assert lines[1] == 'instance-00000001 web-1 (%s) rebuild req-1 In progress' % WEB1
    assert lines[2] == '  note: failed badly'
    assert lines[3].startswith('  1. spawn  10:00:00.0  +0.0 s  -  In progress  xxx')
    assert lines[3].endswith('...') and len(lines[3].split('In progress  ')[1]) == 120
    assert '\x1b' not in '\n'.join(lines)
    assert lines[4] == 'instance-00000002 web-2 (%s): no action recorded' % WEB2


def test_instance_without_steps_says_so(db_path, writer):
    record(writer, WEB1, 'web-1', 'req-1', start=ts('10:00:00'), finish=ts('10:00:01'))
    assert render_text(timeline_of(db_path, 'req-1'))[-1] == '  no steps recorded'


def test_html_escapes_every_text(db_path, writer):
    nasty = '<script>&"'
    record(writer, WEB1, nasty, 'req-1', start=ts('10:00:00'), finish=ts('10:00:02'), message='<b>why</b>', events=[
        ('spawn', ts('10:00:00'), ts('10:00:02'), 'Success', 'said "<img src=x onerror=alert(1)>"',
         {'note': '</code><script>'}),
    ])
    document = render_html(timeline_of(db_path, 'req-1'))
    assert document.startswith('<!DOCTYPE html>')
    assert '<script' not in document
    assert '<img' not in document and '<b>' not in document
    assert '&lt;script&gt;&amp;&quot;' in document
    assert 'said &quot;&lt;img src=x onerror=alert(1)&gt;&quot;' in document
    # Self-contained: no external resource, no script.
    assert 'src=' not in document.replace('&lt;img src=x', '') and 'href=' not in document
    assert '<link' not in document


def test_html_bars_follow_the_run_scale_and_output_is_deterministic(db_path, writer):
    rebuild_run(writer)
    timeline = timeline_of(db_path, 'req-1')
    document = render_html(timeline)
    assert document == render_html(timeline_of(db_path, 'req-1'))
    # The run spans 41.2 s: db-1's shutdown starts at +1.0 s and lasts 2.0 s.
    assert 'class="bar success" style="left: %.3f%%; width: %.3f%%"' % (100 / 41.2, 200 / 41.2) in document
    assert document.count('class="bar ') == 4
    assert '<table>' in document and document.count('<tr><td class="num">') == 4


def test_run_chart_puts_every_instance_on_one_axis(db_path, writer):
    rebuild_run(writer)
    chart = run_chart(timeline_of(db_path, 'req-1'))
    assert chart['span_s'] == pytest.approx(41.2)
    assert chart['steps'] == ['shutdown_instance', 'spawn']  # in the order they first start in the run
    assert [(row['name'], row['uuid'], row['lanes']) for row in chart['rows']] == [('db-1', DB1, 1), ('web-1', WEB1, 1)]
    positions = [[(s['name'], s['colour'], round(s['left'], 3), round(s['width'], 3), s['lane']) for s in row['segments']]
                 for row in chart['rows']]
    # Offsets from the run's start (web-1's shutdown at 14:02:03.1), not from each instance's own start.
    assert positions == [
        [('shutdown_instance', 0, round(100 / 41.2, 3), round(200 / 41.2, 3), 0),
         ('spawn', 1, round(300 / 41.2, 3), round(400 / 41.2, 3), 0)],
        [('shutdown_instance', 0, 0.0, round(3140 / 41.2, 3), 0),
         ('spawn', 1, round(3190 / 41.2, 3), round(930 / 41.2, 3), 0)],
    ]
    assert chart['tick_s'] == 5
    assert [(round(percent, 3), seconds) for percent, seconds in chart['ticks']] == [
        (round(500 * count / 41.2, 3), 5 * count) for count in range(9)]


def test_run_chart_gives_overlapping_steps_lanes_and_unfinished_ones_run_to_the_end(db_path, writer):
    record(writer, WEB1, 'web-1', 'req-1', start=ts('10:00:00'), events=[
        ('a', ts('10:00:00'), ts('10:00:04'), 'Success', None, None),
        ('b', ts('10:00:01'), ts('10:00:02'), 'Success', None, None),
        ('c', ts('10:00:02'), ts('10:00:03'), 'Success', None, None),
        ('d', ts('10:00:04'), None, None, None, None),
        ('e', ts('10:00:04'), ts('10:00:04'), 'Success', None, None),
    ])
    record(writer, WEB2, 'web-2', 'req-1', start=ts('10:00:00'), finish=ts('10:00:10'), events=[
        ('d', ts('10:00:00'), ts('10:00:10'), 'Error', 'broke', None),
    ])
    chart = run_chart(timeline_of(db_path, 'req-1'))
    web1, web2 = chart['rows']
    assert chart['steps'] == ['a', 'd', 'b', 'c', 'e']
    # b overlaps a; c starts as b ends; d starts as a ends; e (zero seconds) starts with the unfinished d.
    assert [(s['name'], s['lane']) for s in web1['segments']] == [('a', 0), ('b', 1), ('c', 1), ('d', 0), ('e', 1)]
    assert web1['lanes'] == 2 and web2['lanes'] == 1
    unfinished = web1['segments'][3]
    assert (unfinished['left'], unfinished['width']) == (40.0, 60.0)  # to the run's latest record, 10:00:10
    assert web2['segments'][0]['colour'] == unfinished['colour'] == 1
    document = render_html(timeline_of(db_path, 'req-1'))
    assert 'class="seg s1 progress" style="left: 40.000%; width: 60.000%; top: 2px"' in document
    assert 'class="seg s2" style="left: 10.000%; width: 10.000%; top: 26px"' in document
    assert 'style="height: 48px; ' in document and 'style="height: 24px; ' in document


def test_run_chart_html_rows_legend_failures_and_axis(db_path, writer):
    rebuild_run(writer)
    record(writer, WEB2, 'web-2', 'req-1', start=ts('14:02:05.0'), finish=ts('14:02:20.0'), message='failed', events=[
        ('shutdown_instance', ts('14:02:05.0'), ts('14:02:06.0'), 'Success', None, None),
        ('spawn', ts('14:02:06.0'), ts('14:02:20.0'), 'Error', 'libvirt: no space', None),
    ])
    document = render_html(timeline_of(db_path, 'req-1'))
    run = document[document.index('<section class="run">'):document.index('</section>')]
    assert document.index('<section class="run">') < document.index('<section class="instance">')
    rows = [part.split('"', 1)[0] for part in run.split('<div class="row" data-instance="')[1:]]
    assert rows == [DB1, WEB1, WEB2]
    assert run.count('data-step=') == 6
    # A segment per step on the run's axis, its name as label when wide enough, always in its title.
    assert ('<div class="seg s0" style="left: 0.000%%; width: %.3f%%; top: 2px" title="web-1: shutdown_instance, '
            '+0.0 s, 31.4 s, Success: Instance failed to shutdown in 30 seconds. Instance destroyed successfully." '
            'data-instance="%s" data-step="shutdown_instance">shutdown_instance</div>' % (3140 / 41.2, WEB1)) in run
    assert ('title="db-1: shutdown_instance, +1.0 s, 2.0 s, Success: Instance shutdown successfully." '
            'data-instance="%s" data-step="shutdown_instance"></div>' % DB1) in run  # 4.9 %: too narrow for a label
    # The failed step is marked, and so is its instance's row.
    assert ('<div class="seg s1 failed" style="left: %.3f%%; width: %.3f%%; top: 2px" title="web-2: spawn, +2.9 s, '
            '14.0 s, Error: libvirt: no space" data-instance="%s" data-step="spawn">\u2715 spawn</div>'
            % (290 / 41.2, 1400 / 41.2, WEB2)) in run
    assert '<span class="mark" title="a step failed">&#x2715;</span> web-2</div>' in run
    assert run.count('class="mark"') == 1
    assert ('<ul class="steps"><li data-legend-step="shutdown_instance"><span class="seg s0"></span>shutdown_instance'
            '</li><li data-legend-step="spawn"><span class="seg s1"></span>spawn</li><li><span class="seg s0 failed">'
            '</span>failed step (&#x2715;)</li></ul>') in run
    assert 'unfinished step' not in run
    assert '<span style="left: %.3f%%">40 s</span></div>' % (4000 / 41.2) in run
    assert 'transparent %.3f%%)' % (500 / 41.2) in run  # a grid line every 5 s
    # Each step name has one colour class in every row; the CSS defines them all.
    assert run.count('class="seg s0') == 3 + 2 and run.count('class="seg s1') == 3 + 1  # rows, then legend
    for index, (background, text) in enumerate(STEP_COLOURS):
        assert '.s%d { background-color: %s; color: %s; }' % (index, background, text) in document


def test_run_chart_lists_instances_without_steps_and_is_left_out_without_any(db_path, writer):
    record(writer, WEB1, 'web-1', 'req-1', start=ts('10:00:00'), finish=ts('10:00:02'))
    assert 'Whole run' not in render_html(timeline_of(db_path, 'req-1'))
    record(writer, WEB2, 'web-2', 'req-1', start=ts('10:00:00'), finish=ts('10:00:02'), events=[
        ('spawn', ts('10:00:00'), ts('10:00:02'), 'Success', None, None)])
    record(writer, DB1, 'db-1', 'req-other', start=ts('10:00:00'))
    document = render_html(timeline_of(db_path, 'req-1', uuids=[WEB1, WEB2, DB1]))
    assert 'Whole run' in document
    assert '<span class="none">no steps recorded</span>' in document
    assert '<span class="none">no action recorded</span>' in document


def test_run_chart_escapes_instance_and_step_names(db_path, writer):
    record(writer, WEB1, '<script>alert(1)</script>', 'req-1', start=ts('10:00:00'), finish=ts('10:00:02'), events=[
        ('<img src=x onerror=alert(2)>', ts('10:00:00'), ts('10:00:02'), 'Error', '"quoted" & <b>bold</b>', None),
    ])
    document = render_html(timeline_of(db_path, 'req-1'))
    run = document[document.index('<section class="run">'):document.index('</section>')]
    assert '<script' not in document and '<img' not in document and '<b>' not in document
    assert '&#x2715;</span> &lt;script&gt;alert(1)&lt;/script&gt;</div>' in run
    assert 'title="instance-00000001 &lt;script&gt;alert(1)&lt;/script&gt; (%s) rebuild Error"' % WEB1 in run
    assert 'data-step="&lt;img src=x onerror=alert(2)&gt;"' in run
    assert ('title="&lt;script&gt;alert(1)&lt;/script&gt;: &lt;img src=x onerror=alert(2)&gt;, +0.0 s, 2.0 s, '
            'Error: &quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt;"') in run
    assert '&#x2715; &lt;img src=x onerror=alert(2)&gt;</div>' not in run  # unlabelled: the legend names it
    assert ('<li data-legend-step="&lt;img src=x onerror=alert(2)&gt;"><span class="seg s0"></span>'
            '&lt;img src=x onerror=alert(2)&gt;</li>') in run


@pytest.mark.parametrize('seconds, label', [
    (0, '0 s'), (2.5, '2.5 s'), (0.30000000000000004, '0.3 s'), (45, '45 s'), (60, '1 min'), (150, '2 min 30 s'),
    (3600, '1 h 00 min'), (5400, '1 h 30 min')])
def test_axis_labels(seconds, label):
    assert _axis_label(seconds) == label


def test_json_is_sorted_and_round_trips(db_path, writer):
    rebuild_run(writer)
    timeline = timeline_of(db_path, 'req-1')
    text = render_json(timeline)
    assert text.endswith('}\n')
    assert json.loads(text) == timeline
    assert text.index('"duration_s"') < text.index('"finished_at"') < text.index('"instances"')


def test_files_are_written_once(db_path, writer, tmp_path):
    rebuild_run(writer)
    dest = str(tmp_path / 'timelines' / 'runs')
    plan = plan_timeline_files(dest, timeline_of(db_path, 'req-1'), ['json', 'html'])
    assert plan.descriptions == ['create the directory %s' % dest,
                                 'write the json timeline to %s/req-1.json' % dest,
                                 'write the html timeline to %s/req-1.html' % dest]
    assert not os.path.exists(dest)
    plan.apply()
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o755
    for name in ('req-1.json', 'req-1.html'):
        assert stat.S_IMODE(os.stat(os.path.join(dest, name)).st_mode) == 0o644
    assert sorted(os.listdir(dest)) == ['req-1.html', 'req-1.json']  # no temporary file left
    with open(os.path.join(dest, 'req-1.json'), encoding='utf-8') as handle:
        assert json.load(handle) == timeline_of(db_path, 'req-1')

    again = plan_timeline_files(dest, timeline_of(db_path, 'req-1'), ['json', 'html'])
    assert again.steps == []
    assert file_diffs(again) == []

    action = writer.get_action(WEB1, 'req-1')
    writer.save_event(action['id'], 'late_step', start_time=ts('14:02:45.0'), finish_time=ts('14:02:46.0'),
                      result='Success')
    updated = plan_timeline_files(dest, timeline_of(db_path, 'req-1'), ['json'])
    assert updated.descriptions == ['write the json timeline to %s/req-1.json' % dest]
    diffs = file_diffs(updated)
    assert [d['before_header'] for d in diffs] == ['%s/req-1.json' % dest]
    assert 'late_step' not in diffs[0]['before'] and 'late_step' in diffs[0]['after']


def test_a_wrong_mode_is_fixed_without_rewriting(db_path, writer, tmp_path):
    rebuild_run(writer)
    dest = str(tmp_path)
    timeline = timeline_of(db_path, 'req-1')
    plan_timeline_files(dest, timeline, ['html']).apply()
    path = os.path.join(dest, 'req-1.html')
    os.chmod(path, 0o600)
    plan = plan_timeline_files(dest, timeline, ['html'])
    assert plan.descriptions == ['set the mode of %s to 0644' % path]
    assert file_diffs(plan) == [{'before_header': '%s (mode)' % path, 'after_header': '%s (mode)' % path,
                                 'before': '0600\n', 'after': '0644\n'}]
    plan.apply()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


@pytest.mark.parametrize('request_id', ['../x', 'a/b', '..', 'has space'])
def test_a_request_id_that_is_no_file_name_is_refused(request_id, tmp_path):
    timeline = {'request_id': request_id, 'generated_at': None, 'started_at': None, 'finished_at': None,
                'duration_s': None, 'instances': []}
    with pytest.raises(KvmhostError) as caught:
        plan_timeline_files(str(tmp_path), timeline, ['json'])
    assert caught.value.field == 'request_id'
    assert str(caught.value).startswith('request_id: ')
    assert os.listdir(str(tmp_path)) == []


def test_files_need_a_request_id(db_path, writer, tmp_path):
    record(writer, WEB1, 'web-1', 'req-1', start=ts('10:00:00'))
    record(writer, WEB2, 'web-2', 'req-2', start=ts('10:00:00'))
    with pytest.raises(KvmhostError) as caught:
        plan_timeline_files(str(tmp_path), timeline_of(db_path), ['json'])
    assert caught.value.field == 'request_id'


def test_dest_dir_that_is_a_file_is_refused(db_path, writer, tmp_path):
    record(writer, WEB1, 'web-1', 'req-1', start=ts('10:00:00'))
    target = tmp_path / 'file'
    target.write_text('x')
    with pytest.raises(KvmhostError) as caught:
        plan_timeline_files(str(target), timeline_of(db_path, 'req-1'), ['json'])
    assert caught.value.field == 'dest_dir'


class FakeModule(object):
    def __init__(self, check_mode=False, diff=False, **params):
        self.params = dict(state_db=None, request_id=None, uuids=None, dest_dir=None, formats=['json', 'html'])
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = diff


def test_driver_check_mode_then_apply_then_rerun(db_path, writer, tmp_path):
    rebuild_run(writer)
    dest = str(tmp_path / 'out')
    args = dict(state_db=db_path, request_id='req-1', dest_dir=dest)
    checked = TimelineDriver(FakeModule(check_mode=True, diff=True, **args)).run()
    assert checked['changed'] is True
    assert checked['files'] == [dest + '/req-1.json', dest + '/req-1.html']
    assert [d['after_header'] for d in checked['diff']] == [dest + '/req-1.json', dest + '/req-1.html']
    assert checked['diff'][0]['before'] == ''
    assert not os.path.exists(dest)
    applied = TimelineDriver(FakeModule(**args)).run()
    assert applied['changed'] is True
    assert applied['text'] == render_text(timeline_of(db_path, 'req-1'))
    rerun = TimelineDriver(FakeModule(diff=True, **args)).run()
    assert rerun['changed'] is False
    assert rerun['diff'] == []
    assert rerun['files'] == applied['files']


def test_driver_without_store_or_dest_dir(db_path):
    result = TimelineDriver(FakeModule(state_db=db_path)).run()
    assert result['changed'] is False
    assert result['store_exists'] is False
    assert result['files'] == []
    assert result['timeline']['instances'] == []


def test_driver_checks_its_options(db_path):
    with pytest.raises(KvmhostError) as caught:
        TimelineDriver(FakeModule(state_db=db_path, uuids=['not-a-uuid'])).run()
    assert caught.value.field == 'uuids'
    with pytest.raises(KvmhostError) as caught:
        TimelineDriver(FakeModule(state_db=db_path, request_id='../x')).run()
    assert caught.value.field == 'request_id'
