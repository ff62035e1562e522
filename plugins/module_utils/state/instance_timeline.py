# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The step timeline of a boot or rebuild run (the logic of instance_timeline).

It is built from the state store's actions and events only, so it is the same whoever ran the
play and whichever controller printed it:

- :func:`build_timeline` reads a StateStore and returns a plain dict: per instance, the action of
  one request id (or the latest action), its steps with start time, duration, offset from the
  run's start and result.
- :func:`render_text`, :func:`render_html` and :func:`render_json` turn that dict into terminal
  lines, one self-contained HTML document (inline CSS, no script) and JSON. Each output depends
  on the dict alone, so the same timeline always gives the same bytes.
- :func:`run_chart` lays out the HTML page's chart of the whole run: a row per instance, its steps
  as segments on the run's one time axis (a pure function, so its geometry is unit-tested).
- :func:`plan_timeline_files` plans writing ``<dest_dir>/<request_id>.json`` and ``.html``
  (mode 0644, atomically) when their content differs.

:class:`TimelineDriver` is the module.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import stat

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.base import ModuleDriver, Plan
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.files import read_text, write_atomic
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.validation import (
    check_absolute_path, check_token, check_uuid)
from ansible_collections.kvmhost.lifecycle.plugins.module_utils.state.store import StateStore, to_datetime

SUCCESS = 'Success'
ERROR = 'Error'
IN_PROGRESS = 'In progress'
FORMATS = ('json', 'html')
FILE_MODE = 0o644
DIR_MODE = 0o755
# A step message longer than this is cut in the terminal lines (the JSON and HTML keep it whole).
TEXT_MESSAGE_WIDTH = 120
_CONTROL_RE = re.compile(r'[\x00-\x1f\x7f]')


# ------------------------------------------------------------------ building
def _parse(value, what):
    """A store timestamp (ISO 8601, as state.store.utcnow() writes it) as an aware datetime."""
    if value is None:
        return None
    try:
        return to_datetime(value)
    except ValueError:
        raise KvmhostError('the state store holds an unreadable timestamp %r in %s' % (value, what))


def _seconds(start, end):
    """Seconds from ``start`` to ``end`` to one decimal, or None when either is missing."""
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 1)


def _select_action(actions, request_id):
    """The action of ``request_id``, or the latest one (list_actions orders by start time, id)."""
    if request_id is None:
        return actions[-1] if actions else None
    for action in actions:
        if action['request_id'] == request_id:
            return action
    return None


def _instance_result(action, events):
    """Error when any step failed; In progress while the action or a step is unfinished; else Success."""
    if action is None:
        return None
    if any(event['result'] == ERROR for event in events):
        return ERROR
    if action['finish_time'] is None or any(event['finish_time'] is None for event in events):
        return IN_PROGRESS
    return SUCCESS


def _records(store, request_id, uuids):
    """The instance records the timeline covers, each with its selected action (or None)."""
    if uuids is not None:
        candidates = [store.get_instance(uuid) for uuid in uuids]
        candidates = [record for record in candidates if record is not None]
    else:
        candidates = store.list_instances(include_deleted=True)
    selected = []
    for record in candidates:
        action = _select_action(store.list_actions(record['uuid'], with_events=True), request_id)
        if uuids is None:
            # A run's timeline holds the instances that took part in it, deleted ones included;
            # without a request id, every instance still on the host with its latest action.
            if request_id is not None and action is None:
                continue
            if request_id is None and record['deleted']:
                continue
        selected.append((record, action))
    return selected


def build_timeline(store, request_id=None, uuids=None):
    """The timeline of ``request_id`` (or of each instance's latest action) from an open StateStore.

    ``store`` may be None (no store file yet): the timeline then has no instances. ``uuids``
    limits it to those instances (deleted ones included); otherwise it covers every instance with
    an action of ``request_id``, or, without a request id, every instance not deleted.

    ``generated_at`` is the latest timestamp recorded in the timeline's actions and events, not
    the current time: the same store content always gives the same timeline, so rewriting its
    files on a rerun changes nothing.
    """
    records = _records(store, request_id, uuids) if store is not None else []
    instances = []
    stamps = []  # (datetime, stored text) of every start and finish time
    for record, action in records:
        instances.append(_instance_entry(record, action, stamps))
    instances.sort(key=lambda item: (item['name'], item['uuid']))

    run_start = min(stamps)[0] if stamps else None
    latest = max(stamps) if stamps else None
    actions = [item for item in instances if item['action'] is not None]
    finished = bool(actions) and all(item['finish_time'] is not None
                                     and all(event['finish_time'] is not None for event in item['events'])
                                     for item in actions)
    for item in instances:
        for event in item['events']:
            event['offset_s'] = _seconds(run_start, _parse(event['start_time'], 'an event'))

    request_ids = sorted(set(item['request_id'] for item in actions))
    if request_id is None and len(request_ids) == 1:
        request_id = request_ids[0]
    return {
        'request_id': request_id,
        'generated_at': latest[1] if latest else None,
        'started_at': min(stamps)[1] if stamps else None,
        'finished_at': latest[1] if finished else None,
        'duration_s': _seconds(run_start, latest[0]) if finished else None,
        'instances': instances,
    }


def _instance_entry(record, action, stamps):
    entry = {
        'uuid': record['uuid'],
        'name': record['name'],
        'domain_name': record['domain_name'],
        'deleted': record['deleted'],
        'action': None, 'request_id': None, 'start_time': None, 'finish_time': None, 'duration_s': None,
        'result': None, 'message': None, 'events': [],
    }
    if action is None:
        return entry
    where = 'action %s of instance %s' % (action['request_id'], record['uuid'])
    start = _parse(action['start_time'], where)
    finish = _parse(action['finish_time'], where)
    stamps.extend(item for item in ((start, action['start_time']), (finish, action['finish_time'])) if item[0])
    events = []
    for event in sorted(action['events'], key=lambda row: (_parse(row['start_time'], where), row['id'])):
        event_where = 'event %s of %s' % (event['event'], where)
        event_start = _parse(event['start_time'], event_where)
        event_finish = _parse(event['finish_time'], event_where)
        stamps.append((event_start, event['start_time']))
        if event_finish is not None:
            stamps.append((event_finish, event['finish_time']))
        events.append({
            'name': event['event'],
            'start_time': event['start_time'],
            'finish_time': event['finish_time'],
            'duration_s': _seconds(event_start, event_finish),
            'offset_s': None,  # set once the run's start is known
            'result': event['result'] or (IN_PROGRESS if event_finish is None else None),
            'message': event['message'],
            'details': event['details'],
        })
    entry.update(action=action['action'], request_id=action['request_id'], start_time=action['start_time'],
                 finish_time=action['finish_time'], duration_s=_seconds(start, finish),
                 result=_instance_result(action, action['events']), message=action['message'], events=events)
    return entry


# ----------------------------------------------------------------- rendering
def _plain(value):
    """Text safe for a terminal line: no control characters, whitespace runs collapsed."""
    return ' '.join(_CONTROL_RE.sub(' ', str(value)).split()) if value is not None else ''


def _cut(text, width):
    return text if len(text) <= width else text[:width - 3].rstrip() + '...'


def _clock(value):
    """HH:MM:SS.d (UTC) of a stored timestamp."""
    moment = _parse(value, 'a timestamp')
    return '%s.%d' % (moment.strftime('%H:%M:%S'), moment.microsecond // 100000)


def _readable(value):
    """YYYY-MM-DD HH:MM:SS UTC of a stored timestamp."""
    return _parse(value, 'a timestamp').strftime('%Y-%m-%d %H:%M:%S UTC') if value else '-'


def _secs(value):
    return '%.1f s' % value if value is not None else '-'


def _offset(value):
    return '+%.1f s' % value if value is not None else '-'


def _instance_title(item):
    """'instance-00000001 web-1 (uuid)'."""
    return '%s %s (%s)' % (item['domain_name'], _plain(item['name']) or '-', item['uuid'])


def _outcome(item):
    """'Success in 41.2 s', 'Error in 3.0 s', 'In progress' or 'Error (unfinished)'."""
    if item['result'] == IN_PROGRESS:
        return IN_PROGRESS
    if item['duration_s'] is None:
        return '%s (unfinished)' % item['result']
    return '%s in %s' % (item['result'], _secs(item['duration_s']))


def _run_summary(timeline):
    count = len(timeline['instances'])
    what = 'request %s' % timeline['request_id'] if timeline['request_id'] else 'the latest actions'
    if timeline['started_at'] is None:
        return 'Timeline of %s: %d instance%s, no steps recorded' % (what, count, '' if count == 1 else 's')
    took = ('took %s' % _secs(timeline['duration_s']) if timeline['finished_at'] is not None
            else 'still in progress')
    return 'Timeline of %s: %d instance%s, started %s, %s' % (
        what, count, '' if count == 1 else 's', _readable(timeline['started_at']), took)


def render_text(timeline):
    """The timeline as terminal lines: a line per instance, then one aligned line per step (times UTC)."""
    lines = [_run_summary(timeline)]
    if not timeline['instances']:
        lines.append('No instance actions recorded.')
        return lines
    events = [event for item in timeline['instances'] for event in item['events']]
    name_width = max([len(_plain(event['name'])) for event in events] + [4])
    offset_width = max([len(_offset(event['offset_s'])) for event in events] + [1])
    duration_width = max([len(_secs(event['duration_s'])) for event in events] + [1])
    result_width = max([len(_plain(event['result'])) for event in events] + [1])
    for item in timeline['instances']:
        if item['action'] is None:
            lines.append('%s: no action recorded' % _instance_title(item))
            continue
        lines.append('%s %s %s %s' % (_instance_title(item), _plain(item['action']), _plain(item['request_id']),
                                      _outcome(item)))
        if item['message']:
            lines.append('  note: %s' % _cut(_plain(item['message']), TEXT_MESSAGE_WIDTH))
        if not item['events']:
            lines.append('  no steps recorded')
            continue
        index_width = len(str(len(item['events'])))
        for number, event in enumerate(item['events'], 1):
            line = '  %s. %s  %s  %s  %s  %s  %s' % (
                str(number).rjust(index_width), _plain(event['name']).ljust(name_width),
                _clock(event['start_time']), _offset(event['offset_s']).rjust(offset_width),
                _secs(event['duration_s']).rjust(duration_width), _plain(event['result']).ljust(result_width),
                _cut(_plain(event['message']), TEXT_MESSAGE_WIDTH))
            lines.append(line.rstrip())
    return lines


def render_json(timeline):
    return json.dumps(timeline, sort_keys=True, indent=2) + '\n'


_RESULT_CLASS = {SUCCESS: 'success', ERROR: 'error', IN_PROGRESS: 'progress'}

# The whole-run chart colours each step name (background, text), in the order the steps first start in the run;
# a palette without red, which marks a failed step. More step names than colours reuse them (the legend, the
# labels and the tooltips still name each step).
STEP_COLOURS = (
    ('#4e79a7', '#fff'), ('#f28e2b', '#222'), ('#59a14f', '#fff'), ('#b07aa1', '#fff'), ('#76b7b2', '#222'),
    ('#edc948', '#222'), ('#9c755f', '#fff'), ('#ff9da7', '#222'), ('#bab0ac', '#222'), ('#1f5f8b', '#fff'),
    ('#a0cbe8', '#222'), ('#8cd17d', '#222'),
)
# A segment narrower than this share of the axis (in %) counts as this wide when steps are put in lanes, so
# that two steps drawn at their minimum width never cover each other.
MIN_SEGMENT_PERCENT = 0.6
# A segment shows its step name when it is at least this many % of the axis wide per character.
LABEL_PERCENT_PER_CHAR = 0.75
# Axis tick intervals in seconds: the smallest giving at most AXIS_TICKS intervals over the run.
TICK_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
AXIS_TICKS = 10
# The height of one lane of a row of the whole-run chart, in CSS pixels.
RUN_LANE_PX = 24

_CSS = '''
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; }
h2 { font-size: 1.2em; margin-top: 1.6em; }
h3 { font-size: 1.05em; margin-top: 1.6em; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.summary dt { font-weight: bold; }
dl.summary dd { margin: 0; }
p.legend span { display: inline-block; padding: 0.1em 0.6em; margin-right: 0.5em; color: #fff; border-radius: 3px; }
.gantt { margin: 0.8em 0; }
.row { display: grid; grid-template-columns: 16em 1fr; align-items: center; margin: 2px 0; }
.label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; padding-right: 0.5em; font-size: 0.9em; }
.track { position: relative; height: 1.3em; background: #f0f0f0; }
.bar { position: absolute; top: 0; bottom: 0; min-width: 2px; border-radius: 2px; }
.axis { position: relative; height: 1.2em; font-size: 0.8em; color: #666; }
.axis span { position: absolute; transform: translateX(-50%); white-space: nowrap; }
.success { background: #2e7d32; }
.error { background: #c62828; }
.progress { background: repeating-linear-gradient(45deg, #f9a825, #f9a825 6px, #fbc02d 6px, #fbc02d 12px); }
.unknown { background: #757575; }
.result { padding: 0.1em 0.5em; color: #fff; border-radius: 3px; white-space: nowrap; }
table { border-collapse: collapse; font-size: 0.9em; margin-bottom: 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
td.num { text-align: right; white-space: nowrap; }
td code { white-space: pre-wrap; word-break: break-all; }
.run-chart .label .mark { color: #c62828; font-weight: bold; }
.run-chart .track { background-color: #f4f4f4; }
.run-chart .none { position: absolute; left: 0.4em; font-size: 0.8em; line-height: 1.5em; color: #666; }
.seg { position: absolute; height: 20px; min-width: 3px; box-sizing: border-box; border-radius: 2px;
  border-left: 1px solid #fff; overflow: hidden; white-space: nowrap; text-overflow: ellipsis;
  font-size: 0.75em; line-height: 20px; padding: 0 3px; }
.seg.failed { background-color: #c62828; color: #fff; font-weight: bold; box-shadow: inset 0 0 0 2px #6d0000; }
.seg.progress { background-image: repeating-linear-gradient(45deg, rgba(255, 255, 255, 0.55) 0 4px,
  transparent 4px 9px); }
ul.steps { list-style: none; padding: 0; margin: 0.6em 0 0; display: flex; flex-wrap: wrap;
  gap: 0.3em 1.2em; font-size: 0.85em; }
ul.steps .seg { position: static; display: inline-block; width: 1.8em; height: 1em; margin-right: 0.35em;
  vertical-align: middle; font-size: 1em; }
'''


_CSS += ''.join('.s%d { background-color: %s; color: %s; }\n' % (index, background, text)
                for index, (background, text) in enumerate(STEP_COLOURS))


def _esc(value):
    return html.escape('' if value is None else str(value), quote=True)


def _result_badge(result):
    return '<span class="result %s">%s</span>' % (_RESULT_CLASS.get(result, 'unknown'), _esc(result or '-'))


def _percent(value):
    return '%.3f%%' % min(max(value, 0.0), 100.0)


def _tick_step(span):
    """The axis's tick interval in seconds: at most AXIS_TICKS intervals over ``span`` seconds."""
    for step in TICK_STEPS:
        if span / step <= AXIS_TICKS:
            return step
    return TICK_STEPS[-1] * math.ceil(span / TICK_STEPS[-1] / AXIS_TICKS)


def _axis_label(seconds):
    """'0 s', '2.5 s', '2 min', '2 min 30 s', '1 h 05 min'."""
    if seconds < 60:
        return '%g s' % round(seconds, 1)
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return '%d min %02d s' % (minutes, secs) if secs else '%d min' % minutes
    hours, minutes = divmod(minutes, 60)
    return '%d h %02d min' % (hours, minutes)


def _run_axis(timeline):
    """(run start, run end, span in seconds) of the page's charts: from the first start to the latest record."""
    run_start = _parse(timeline['started_at'], 'the run')
    run_end = _parse(timeline['generated_at'], 'the run')
    span = (run_end - run_start).total_seconds() if run_start and run_end else 0.0
    return run_start, run_end, span if span > 0 else 1.0


def run_chart(timeline):
    """The geometry of the chart of the whole run: every instance's steps on the run's one time axis.

    Returns a dict:

    - ``span_s``: the axis's length, seconds from the run's start to its latest record (1 when nothing took time);
    - ``steps``: the step names in the order they first start in the run; step ``steps[i]`` has colour ``i``
      (STEP_COLOURS[i % len(STEP_COLOURS)]) in every row;
    - ``tick_s`` and ``tick_percent``: the interval between two ticks of the axis, ``ticks`` [(percent, seconds)];
    - ``rows``: one per instance, in the timeline's order, with its ``uuid``, ``name``, ``domain_name``,
      ``action``, ``result``, ``lanes`` (one per step that overlaps another, at least one) and ``segments``: per
      step its ``name``, ``colour``, ``result``, ``lane``, ``left`` and ``width`` (percent of the axis; an
      unfinished step runs to the axis's end) and the timeline's ``event``.
    """
    run_start, run_end, span = _run_axis(timeline)
    firsts = {}
    for item in timeline['instances']:
        for event in item['events']:
            start = _parse(event['start_time'], 'an event')
            if event['name'] not in firsts or start < firsts[event['name']]:
                firsts[event['name']] = start
    steps = sorted(firsts, key=lambda name: (firsts[name], name))
    colours = dict((name, index) for index, name in enumerate(steps))
    tick = _tick_step(span)
    rows = []
    for item in timeline['instances']:
        segments, lane_ends = [], []
        for event in item['events']:
            start = _parse(event['start_time'], 'an event')
            end = _parse(event['finish_time'], 'an event') or run_end
            left = min(max((start - run_start).total_seconds() / span * 100, 0.0), 100.0)
            width = min(max((end - start).total_seconds() / span * 100, 0.0), 100.0 - left)
            # The first lane free at the step's start; a step that overlaps every lane opens a new one.
            drawn_end = left + max(width, MIN_SEGMENT_PERCENT)
            lane = next((index for index, lane_end in enumerate(lane_ends) if lane_end <= left), len(lane_ends))
            if lane == len(lane_ends):
                lane_ends.append(drawn_end)
            else:
                lane_ends[lane] = drawn_end
            segments.append({'name': event['name'], 'colour': colours[event['name']], 'result': event['result'],
                             'lane': lane, 'left': left, 'width': width, 'event': event})
        rows.append({'uuid': item['uuid'], 'name': item['name'], 'domain_name': item['domain_name'],
                     'action': item['action'], 'result': item['result'], 'lanes': max(len(lane_ends), 1),
                     'segments': segments})
    ticks = [(tick * count / span * 100, tick * count) for count in range(int(span / tick + 1e-9) + 1)]
    return {'span_s': span, 'steps': steps, 'tick_s': tick, 'tick_percent': tick / span * 100, 'ticks': ticks,
            'rows': rows}


def _html_run_chart(timeline):
    """The chart of the whole run: a row per instance, a segment per step, one time axis; then the step legend."""
    chart = run_chart(timeline)
    grid = ('background-image: repeating-linear-gradient(to right, #c8c8c8 0, #c8c8c8 1px, transparent 1px, '
            'transparent %s)' % _percent(chart['tick_percent']))
    out = ['<section class="run">', '<h2>Whole run</h2>',
           '<p>A row per instance, a segment per step, on one time axis from the run\'s start (%s); a step\'s '
           'colour is the same in every row. Hover a segment for its times and result.</p>'
           % _esc(_readable(timeline['started_at'])),
           '<div class="gantt run-chart">']
    failed = unfinished = False
    for row in chart['rows']:
        mark = '<span class="mark" title="a step failed">&#x2715;</span> ' if row['result'] == ERROR else ''
        tip = _instance_title(row) + (' %s %s' % (row['action'], row['result']) if row['action'] else '')
        out.append('<div class="row" data-instance="%s"><div class="label" title="%s">%s%s</div>'
                   '<div class="track" style="height: %dpx; %s">' % (
                       _esc(row['uuid']), _esc(tip), mark, _esc(row['name'] or row['domain_name']),
                       row['lanes'] * RUN_LANE_PX, grid))
        if not row['segments']:
            out.append('<span class="none">%s</span>' % ('no steps recorded' if row['action'] else
                                                         'no action recorded'))
        for segment in row['segments']:
            event = segment['event']
            classes = 'seg s%d' % (segment['colour'] % len(STEP_COLOURS))
            label = segment['name']
            if segment['result'] == ERROR:
                classes, label, failed = classes + ' failed', '\u2715 ' + label, True
            elif event['finish_time'] is None:
                classes, unfinished = classes + ' progress', True
            text = label if segment['width'] >= len(label) * LABEL_PERCENT_PER_CHAR else ''
            tip = '%s: %s, %s, %s, %s' % (row['name'] or row['uuid'], segment['name'], _offset(event['offset_s']),
                                          _secs(event['duration_s']), event['result'] or '-')
            if event['message']:
                tip += ': %s' % event['message']
            out.append('<div class="%s" style="left: %s; width: %s; top: %dpx" title="%s" data-instance="%s" '
                       'data-step="%s">%s</div>' % (
                           classes, _percent(segment['left']), _percent(segment['width']),
                           segment['lane'] * RUN_LANE_PX + 2, _esc(tip), _esc(row['uuid']), _esc(segment['name']),
                           _esc(text)))
        out.append('</div></div>')
    out.append('<div class="row"><div></div><div class="axis">%s</div></div>' % ''.join(
        '<span style="left: %s">%s</span>' % (_percent(percent), _esc(_axis_label(seconds)))
        for percent, seconds in chart['ticks']))
    legend = ['<li data-legend-step="%s"><span class="seg s%d"></span>%s</li>' % (
        _esc(name), index % len(STEP_COLOURS), _esc(name)) for index, name in enumerate(chart['steps'])]
    if failed:
        legend.append('<li><span class="seg s0 failed"></span>failed step (&#x2715;)</li>')
    if unfinished:
        legend.append('<li><span class="seg s0 progress"></span>unfinished step</li>')
    out.extend(['<div class="row"><div></div><ul class="steps">%s</ul></div>' % ''.join(legend), '</div>',
                '</section>'])
    return out


def render_html(timeline):
    """One self-contained HTML document: the whole run's chart (a row per instance, its steps on one time axis),
    then per instance a bar per step on the run's time scale and a table."""
    run_start, run_end, span = _run_axis(timeline)
    title = 'Step timeline of %s' % (timeline['request_id'] or 'the latest actions')
    out = ['<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
           '<title>%s</title>' % _esc(title), '<style>%s</style>' % _CSS, '</head>', '<body>',
           '<h1>%s</h1>' % _esc(title), '<dl class="summary">']
    for label, value in (('Request id', timeline['request_id'] or '-'),
                         ('Instances', str(len(timeline['instances']))),
                         ('Started', _readable(timeline['started_at'])),
                         ('Finished', _readable(timeline['finished_at'])),
                         ('Duration', _secs(timeline['duration_s'])),
                         ('Latest record', _readable(timeline['generated_at']))):
        out.append('<dt>%s</dt><dd>%s</dd>' % (_esc(label), _esc(value)))
    out.append('</dl>')
    if timeline['started_at'] is not None and any(item['events'] for item in timeline['instances']):
        out.extend(_html_run_chart(timeline))
    out.append('<h2>Per instance</h2>')
    out.append('<p class="legend">A bar per step, by result: <span class="success">Success</span>'
               '<span class="error">Error</span><span class="progress">In progress</span></p>')
    if not timeline['instances']:
        out.append('<p>No instance actions recorded.</p>')
    for item in timeline['instances']:
        out.extend(_html_instance(item, run_start, run_end, span))
    out.extend(['</body>', '</html>'])
    return '\n'.join(out) + '\n'


def _html_instance(item, run_start, run_end, span):
    out = ['<section class="instance">', '<h3>%s %s <small>(%s)</small></h3>' % (
        _esc(item['domain_name']), _esc(item['name']), _esc(item['uuid']))]
    if item['action'] is None:
        out.extend(['<p>No action recorded.</p>', '</section>'])
        return out
    took = 'in %s' % _secs(item['duration_s']) if item['duration_s'] is not None else 'unfinished'
    out.append('<p>%s %s %s %s</p>' % (_esc(item['action']), _esc(item['request_id']), _result_badge(item['result']),
                                       _esc(took)))
    if item['message']:
        out.append('<p>%s</p>' % _esc(item['message']))
    if not item['events']:
        out.extend(['<p>No steps recorded.</p>', '</section>'])
        return out
    out.append('<div class="gantt">')
    for number, event in enumerate(item['events'], 1):
        start = _parse(event['start_time'], 'an event')
        end = _parse(event['finish_time'], 'an event') or run_end
        left = (start - run_start).total_seconds() / span * 100
        width = (end - start).total_seconds() / span * 100
        tip = '%s: %s, %s, %s' % (event['name'], _offset(event['offset_s']), _secs(event['duration_s']),
                                  event['result'] or '-')
        out.append('<div class="row"><div class="label" title="%s">%d. %s</div><div class="track">'
                   '<div class="bar %s" style="left: %s; width: %s" title="%s"></div></div></div>' % (
                       _esc(event['name']), number, _esc(event['name']),
                       _RESULT_CLASS.get(event['result'], 'unknown'), _percent(left), _percent(width), _esc(tip)))
    out.append('<div class="row"><div></div><div class="axis">%s</div></div>' % ''.join(
        '<span style="left: %s">%s</span>' % (_percent(share * 100), _esc(_offset(span * share)))
        for share in (0.0, 0.25, 0.5, 0.75, 1.0)))
    out.append('</div>')
    out.append('<table><thead><tr><th>#</th><th>Step</th><th>Start (UTC)</th><th>Offset</th><th>Duration</th>'
               '<th>Result</th><th>Message</th><th>Details</th></tr></thead><tbody>')
    for number, event in enumerate(item['events'], 1):
        details = json.dumps(event['details'], sort_keys=True) if event['details'] is not None else ''
        out.append('<tr><td class="num">%d</td><td>%s</td><td>%s</td><td class="num">%s</td><td class="num">%s</td>'
                   '<td>%s</td><td>%s</td><td><code>%s</code></td></tr>' % (
                       number, _esc(event['name']), _esc(_clock(event['start_time'])), _esc(_offset(event['offset_s'])),
                       _esc(_secs(event['duration_s'])), _result_badge(event['result']), _esc(event['message']),
                       _esc(details)))
    out.extend(['</tbody></table>', '</section>'])
    return out


RENDERERS = {'json': render_json, 'html': render_html}


# ------------------------------------------------------------------- writing
def timeline_files(dest_dir, timeline, formats):
    """[(format, path)] of the timeline's files in ``dest_dir``, named after its request id."""
    request_id = timeline['request_id']
    if request_id is None:
        raise KvmhostError('is needed to name the files in dest_dir: give one, or select instances whose latest '
                           'actions share one', field='request_id')
    check_token(request_id, 'request_id')
    dest_dir = check_absolute_path(dest_dir, 'dest_dir')
    wanted = [fmt for fmt in FORMATS if fmt in formats]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise KvmhostError('unknown format %s; choose from %s' % (', '.join(unknown), ', '.join(FORMATS)),
                           field='formats')
    return [(fmt, os.path.join(dest_dir, '%s.%s' % (request_id, fmt))) for fmt in wanted]


def plan_timeline_files(dest_dir, timeline, formats):
    """The Plan of writing the timeline's files (mode 0644, atomically): nothing when they are up to date.

    ``before``/``after`` map each path that changes to its content and mode (see :func:`file_diffs`).
    """
    files = timeline_files(dest_dir, timeline, formats)
    dest_dir = check_absolute_path(dest_dir, 'dest_dir')
    plan = Plan()
    if os.path.exists(dest_dir) and not os.path.isdir(dest_dir):
        raise KvmhostError('%s exists and is not a directory' % dest_dir, field='dest_dir')
    if not os.path.isdir(dest_dir):
        plan.add('create the directory %s' % dest_dir, lambda: os.makedirs(dest_dir, DIR_MODE, exist_ok=True))
    for fmt, path in files:
        if os.path.isdir(path) or (os.path.lexists(path) and not os.path.isfile(path)):
            raise KvmhostError('%s exists and is not a regular file' % path, field='dest_dir')
        content = RENDERERS[fmt](timeline)
        current = read_text(path)
        mode = stat.S_IMODE(os.stat(path).st_mode) if current is not None else None
        if current != content:
            plan.add('write the %s timeline to %s' % (fmt, path), _writer(path, content))
        elif mode != FILE_MODE:
            plan.add('set the mode of %s to %04o' % (path, FILE_MODE), _chmod(path))
        else:
            continue
        plan.before[path] = {'content': current or '', 'mode': '%04o' % mode if mode is not None else None}
        plan.after[path] = {'content': content, 'mode': '%04o' % FILE_MODE}
    return plan


def _writer(path, content):
    return lambda: write_atomic(path, content, FILE_MODE)


def _chmod(path):
    return lambda: os.chmod(path, FILE_MODE)


def file_diffs(plan):
    """Ansible's list form of a diff: one entry per file whose content changes, one per existing file's mode change."""
    diffs = []
    for path in plan.after:
        before, after = plan.before[path], plan.after[path]
        if before['content'] != after['content']:
            diffs.append({'before_header': path, 'after_header': path,
                          'before': before['content'], 'after': after['content']})
        if before['mode'] is not None and before['mode'] != after['mode']:
            diffs.append({'before_header': '%s (mode)' % path, 'after_header': '%s (mode)' % path,
                          'before': '%s\n' % (before['mode'] or ''), 'after': '%s\n' % after['mode']})
    return diffs


# -------------------------------------------------------------------- module
class TimelineDriver(ModuleDriver):
    """instance_timeline: reads the store; with dest_dir, writes the timeline's files; with release_claims,
    drops the run's claims (the store's only write here)."""

    def run(self):
        request_id = self.params.get('request_id')
        if request_id is not None:
            check_token(request_id, 'request_id')
        elif self.params.get('release_claims'):
            raise KvmhostError('release_claims needs the request id of the run', field='request_id')
        uuids = self.params.get('uuids')
        if uuids is not None:
            uuids = [check_uuid(uuid, 'uuids') for uuid in uuids]
        dest_dir = self.params.get('dest_dir')
        if dest_dir is not None:
            dest_dir = check_absolute_path(dest_dir, 'dest_dir')
        store = StateStore.open(self.params['state_db'], readonly=True)
        try:
            timeline = build_timeline(store, request_id, uuids)
        finally:
            if store is not None:
                store.close()
        plan = Plan()
        files = []
        if dest_dir is not None:
            formats = self.params['formats']
            files = [path for dummy, path in timeline_files(dest_dir, timeline, formats)]
            plan = plan_timeline_files(dest_dir, timeline, formats)
        result = self.finish(plan, timeline=timeline, text=render_text(timeline), files=files,
                             store_exists=store is not None)
        if self.diff_mode:
            result['diff'] = file_diffs(plan)
        if self.params.get('release_claims'):
            result['released'] = []
            if store is not None and not self.check_mode:
                # Bookkeeping of the run, not a change of the host: changed stays what the files say.
                with StateStore.open(self.params['state_db']) as writable:
                    result['released'] = writable.release(request_id)
        return result
