# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host-local state store: one SQLite file per KVM host.

It holds what Nova keeps in its database for the instances of one compute host: the
instance records (vm_state, task_state, power_state, the host-local id that names the
libvirt domain), the network info cache, instance actions with their events (the step
timeline of every boot and rebuild) and the compute node audits.

Several module runs on one host may write at once (Ansible forks, async tasks), so the
file is in WAL mode, every connection waits on a busy timeout, and every write happens in
a ``BEGIN IMMEDIATE`` transaction. The schema carries a version (``PRAGMA user_version``)
and an application id, and is migrated forward on open.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sqlite3
import urllib.parse

from ansible_collections.kvmhost.lifecycle.plugins.module_utils.core.errors import KvmhostError

# 'KVMH': marks a file as ours, so a store path that points at some other SQLite file fails.
APPLICATION_ID = 0x4B564D48
SCHEMA_VERSION = 3
# A run's claim on an instance whose heartbeat is older than its stale_after seconds is a dead run's (a killed
# ansible-playbook); a run that says nothing else gets this. A run says how long it can be silent: a host waits
# for the other hosts of the play between two steps, without a module to beat the heart.
CLAIM_STALE_SECONDS = 60
MIN_CLAIM_STALE_SECONDS, MAX_CLAIM_STALE_SECONDS = 30, 86400
# The message of an action (and its open events) whose run died and whose claim another run took over.
INTERRUPTED = 'interrupted'
DEFAULT_BUSY_TIMEOUT = 30.0
DEFAULT_STATE_DB = '/var/lib/kvmhost/state.sqlite3'

VM_STATES = ('building', 'active', 'stopped', 'paused', 'suspended', 'rescued', 'resized',
             'shelved', 'shelved_offloaded', 'soft-delete', 'deleted', 'error')
TASK_STATES = ('scheduling', 'block_device_mapping', 'networking', 'spawning',
               'rebuilding', 'rebuild_block_device_mapping', 'rebuild_spawning',
               'powering-off', 'powering-on', 'rebooting', 'reboot_started', 'deleting',
               'image_snapshot', 'migrating', 'resize_prep')
ACTIONS = ('create', 'rebuild', 'delete', 'migrate', 'stop', 'start', 'reboot', 'audit')
EVENT_RESULTS = ('Success', 'Error')
INSTANCE_FIELDS = ('uuid', 'local_id', 'name', 'vm_state', 'task_state', 'power_state',
                   'image', 'flavor', 'host', 'launched_at', 'created_at', 'updated_at',
                   'deleted', 'deleted_at')
_JSON_FIELDS = ('image', 'flavor')

# Each migration takes the schema from version N-1 to N. Never edit a released one: add N+1.
MIGRATIONS = {
    1: (
        # AUTOINCREMENT: a local id is never reused, even after its instance is deleted,
        # so a domain name instance-%08x always means one instance on this host.
        """CREATE TABLE instances (
            local_id INTEGER PRIMARY KEY AUTOINCREMENT,
            uuid TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL DEFAULT '',
            vm_state TEXT NOT NULL,
            task_state TEXT,
            power_state INTEGER NOT NULL DEFAULT 0,
            image TEXT,
            flavor TEXT,
            host TEXT,
            launched_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0,
            deleted_at TEXT
        )""",
        """CREATE TABLE info_cache (
            instance_uuid TEXT PRIMARY KEY REFERENCES instances(uuid),
            network_info TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE actions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            instance_uuid TEXT NOT NULL REFERENCES instances(uuid),
            action TEXT NOT NULL,
            request_id TEXT NOT NULL,
            start_time TEXT NOT NULL,
            finish_time TEXT,
            message TEXT,
            UNIQUE (instance_uuid, request_id)
        )""",
        """CREATE TABLE action_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            action_id INTEGER NOT NULL REFERENCES actions(id),
            event TEXT NOT NULL,
            start_time TEXT NOT NULL,
            finish_time TEXT,
            result TEXT,
            message TEXT,
            details TEXT,
            UNIQUE (action_id, event)
        )""",
        """CREATE TABLE compute_node_audits (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            host TEXT NOT NULL,
            audited_at TEXT NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX actions_by_instance ON actions (instance_uuid, start_time)",
        "CREATE INDEX audits_by_host ON compute_node_audits (host, audited_at)",
    ),
    # Which run (request id) has an instance now: two runs on one host never work on one instance at once.
    2: (
        """CREATE TABLE claims (
            instance_uuid TEXT PRIMARY KEY,
            request_id TEXT NOT NULL,
            action TEXT NOT NULL,
            claimed_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL
        )""",
    ),
    # How long each claim outlives its run's last heartbeat: the run's own choice.
    3: (
        "ALTER TABLE claims ADD COLUMN stale_after INTEGER NOT NULL DEFAULT %d" % CLAIM_STALE_SECONDS,
    ),
}


def held_by_another_run(claim, request_id, now):
    """Whether ``claim`` (a claims row, or None) is another run's than ``request_id`` and alive at ``now``: its
    heartbeat at most the claim's ``stale_after`` seconds old. An older one is a dead run's (a killed
    ansible-playbook)."""
    if claim is None or claim['request_id'] == request_id:
        return False
    stale_after = claim['stale_after'] if 'stale_after' in claim.keys() else CLAIM_STALE_SECONDS
    return (to_datetime(now) - to_datetime(claim['heartbeat_at'])).total_seconds() <= stale_after


def utcnow():
    """The current time as the store writes it: ISO 8601, UTC, microseconds."""
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def to_datetime(value):
    """An ISO 8601 timestamp (a trailing 'Z' allowed, no zone meaning UTC) as an aware UTC datetime.

    Raises ValueError on anything else.
    """
    text = value.strip()
    if text.endswith('Z'):
        text = text[:-1] + '+00:00'
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc)


def parse_timestamp(value, field):
    """Accept an ISO 8601 timestamp and return it in the store's form (UTC, 'Z')."""
    try:
        parsed = to_datetime(value)
    except ValueError:
        raise KvmhostError('must be an ISO 8601 timestamp such as 2026-11-23T10:00:00Z or "now", got %r'
                           % value, field=field)
    return parsed.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(',', ':'))


def _row_to_instance(row):
    if row is None:
        return None
    record = dict(row)
    for key in _JSON_FIELDS:
        record[key] = json.loads(record[key]) if record[key] else None
    record['deleted'] = bool(record['deleted'])
    record['domain_name'] = domain_name(record['local_id'])
    return record


def domain_name(local_id):
    """Nova's instance_name_template: the libvirt domain name of a host-local id."""
    return 'instance-%08x' % local_id


class StateStore(object):
    """Access to one state store file. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, path, connection):
        self.path = path
        self._conn = connection

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, path, readonly=False, busy_timeout=DEFAULT_BUSY_TIMEOUT):
        """Open (and in read-write mode create and migrate) the store at ``path``.

        Read-only mode never creates the file: it returns None when there is none yet.
        Every failure is a KvmhostError naming the path.
        """
        field = 'state_db'
        if not os.path.isabs(path):
            raise KvmhostError('must be an absolute path, got %r' % path, field=field)
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise KvmhostError('directory %s does not exist' % parent, field=field)
        exists = os.path.exists(path)
        if exists and not os.path.isfile(path):
            raise KvmhostError('%s is not a regular file' % path, field=field)
        if readonly:
            if not exists:
                return None
            if not os.access(path, os.R_OK):
                raise KvmhostError('%s is not readable' % path, field=field)
        else:
            if not os.access(parent, os.W_OK | os.X_OK):
                raise KvmhostError('directory %s is not writable' % parent, field=field)
            if exists and not os.access(path, os.R_OK | os.W_OK):
                raise KvmhostError('%s is not writable' % path, field=field)
            if not exists:
                # Created 0600 up front: SQLite gives its -wal and -shm files the same mode.
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                except FileExistsError:  # another writer created it first: fine
                    pass
        try:
            if readonly:
                conn = sqlite3.connect('file:%s?mode=ro' % urllib.parse.quote(path), uri=True,
                                       timeout=busy_timeout, isolation_level=None)
            else:
                conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise KvmhostError('cannot open %s: %s' % (path, exc), field=field)
        conn.row_factory = sqlite3.Row
        store = cls(path, conn)
        try:
            conn.execute('PRAGMA busy_timeout = %d' % int(busy_timeout * 1000))
            conn.execute('PRAGMA foreign_keys = ON')
            store._check_identity()
            if not readonly:
                store._migrate()
            elif store.schema_version() == 0:
                # Created by a writer that has not migrated it yet: nothing to read so far.
                conn.close()
                return None
            elif store.schema_version() != SCHEMA_VERSION:
                raise KvmhostError('%s has schema version %d, this collection reads version %d; run a module '
                                   'that writes the store to migrate it'
                                   % (path, store.schema_version(), SCHEMA_VERSION), field=field)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise KvmhostError('%s is not a usable SQLite state store (%s); move it aside to start a new one'
                               % (path, exc), field=field)
        except KvmhostError:
            conn.close()
            raise
        return store

    def close(self):
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def schema_version(self):
        return self._conn.execute('PRAGMA user_version').fetchone()[0]

    def _check_identity(self):
        # One read transaction: a writer migrating the file at the same time must not be seen half-way
        # (its tables without its application id).
        self._conn.execute('BEGIN')
        try:
            tables = self._conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            app_id = self._conn.execute('PRAGMA application_id').fetchone()[0]
        finally:
            self._conn.execute('COMMIT')
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise KvmhostError('%s is an SQLite database of some other program, not a kvmhost state store'
                               % self.path, field='state_db')
        if self.schema_version() > SCHEMA_VERSION:
            raise KvmhostError('%s has schema version %d, newer than this collection knows (%d)'
                               % (self.path, self.schema_version(), SCHEMA_VERSION), field='state_db')

    def _migrate(self):
        if self.schema_version() == SCHEMA_VERSION:
            return
        # WAL is a property of the file; setting it needs no transaction and persists.
        self._conn.execute('PRAGMA journal_mode = WAL')
        with self.transaction():
            current = self.schema_version()  # re-read under the write lock: another writer may have migrated
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    self._conn.execute(statement)
                self._conn.execute('PRAGMA user_version = %d' % version)
            self._conn.execute('PRAGMA application_id = %d' % APPLICATION_ID)

    @contextlib.contextmanager
    def transaction(self):
        """A write transaction: takes the write lock at once, so read-then-write is safe."""
        self._conn.execute('BEGIN IMMEDIATE')
        try:
            yield self._conn
        except BaseException:
            self._conn.execute('ROLLBACK')
            raise
        self._conn.execute('COMMIT')

    # --------------------------------------------------------------- instances
    def get_instance(self, uuid):
        row = self._conn.execute('SELECT * FROM instances WHERE uuid = ?', (uuid,)).fetchone()
        return _row_to_instance(row)

    def list_instances(self, include_deleted=False):
        query = 'SELECT * FROM instances'
        if not include_deleted:
            query += ' WHERE deleted = 0'
        return [_row_to_instance(row) for row in self._conn.execute(query + ' ORDER BY local_id')]

    def next_local_id(self):
        """The local id the next new record will get (AUTOINCREMENT never reuses one)."""
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'instances'").fetchone()
        return (row[0] if row else 0) + 1

    def save_instance(self, uuid, fields, now=None, taken_local_ids=()):
        """Create the record or update the given fields. Returns the record as stored.

        A new record gets the next local id that is not in ``taken_local_ids`` (the ids whose domain
        names other domains of the host already have), so its domain name is free.
        """
        now = now or utcnow()
        values = {}
        for key, value in fields.items():
            if key not in INSTANCE_FIELDS or key in ('uuid', 'local_id', 'created_at', 'updated_at'):
                raise KvmhostError('unknown instance field %r' % key)
            if key in _JSON_FIELDS:
                value = canonical_json(value) if value is not None else None
            elif key == 'deleted':
                value = int(bool(value))
            values[key] = value
        with self.transaction() as conn:
            exists = conn.execute('SELECT 1 FROM instances WHERE uuid = ?', (uuid,)).fetchone()
            if exists:
                if values:
                    assignments = ', '.join('%s = ?' % key for key in values)
                    conn.execute('UPDATE instances SET %s, updated_at = ? WHERE uuid = ?' % assignments,
                                 list(values.values()) + [now, uuid])
            else:
                values.setdefault('vm_state', 'building')
                if taken_local_ids:
                    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'instances'").fetchone()
                    local_id = (row[0] if row else 0) + 1
                    while local_id in taken_local_ids:
                        local_id += 1
                    values['local_id'] = local_id  # AUTOINCREMENT goes on after it, never back
                columns = ['uuid', 'created_at', 'updated_at'] + list(values)
                conn.execute('INSERT INTO instances (%s) VALUES (%s)'
                             % (', '.join(columns), ', '.join('?' * len(columns))),
                             [uuid, now, now] + list(values.values()))
        return self.get_instance(uuid)

    # -------------------------------------------------------------- info cache
    def get_network_info(self, uuid):
        row = self._conn.execute('SELECT network_info FROM info_cache WHERE instance_uuid = ?',
                                 (uuid,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_network_info(self, uuid, network_info, now=None):
        with self.transaction() as conn:
            conn.execute('INSERT INTO info_cache (instance_uuid, network_info, updated_at) VALUES (?, ?, ?) '
                         'ON CONFLICT (instance_uuid) DO UPDATE SET network_info = excluded.network_info, '
                         'updated_at = excluded.updated_at',
                         (uuid, canonical_json(network_info), now or utcnow()))

    # ------------------------------------------------------- actions, events
    def get_action(self, uuid, request_id):
        row = self._conn.execute('SELECT * FROM actions WHERE instance_uuid = ? AND request_id = ?',
                                 (uuid, request_id)).fetchone()
        return dict(row) if row else None

    def save_action(self, uuid, request_id, action=None, start_time=None, finish_time=None, message=None):
        """Create the action if missing; set finish_time and message when given."""
        with self.transaction() as conn:
            row = conn.execute('SELECT id FROM actions WHERE instance_uuid = ? AND request_id = ?',
                               (uuid, request_id)).fetchone()
            if row is None:
                conn.execute('INSERT INTO actions (instance_uuid, action, request_id, start_time, finish_time, '
                             'message) VALUES (?, ?, ?, ?, ?, ?)',
                             (uuid, action, request_id, start_time or utcnow(), finish_time, message))
            else:
                if finish_time is not None:
                    conn.execute('UPDATE actions SET finish_time = ? WHERE id = ?', (finish_time, row[0]))
                if message is not None:
                    conn.execute('UPDATE actions SET message = ? WHERE id = ?', (message, row[0]))
        return self.get_action(uuid, request_id)

    def get_event(self, action_id, event):
        row = self._conn.execute('SELECT * FROM action_events WHERE action_id = ? AND event = ?',
                                 (action_id, event)).fetchone()
        return _row_to_event(row)

    def save_event(self, action_id, event, start_time=None, finish_time=None, result=None, message=None,
                   details=None):
        """Create the event if missing (start_time defaults to now); update what is given."""
        with self.transaction() as conn:
            row = conn.execute('SELECT id FROM action_events WHERE action_id = ? AND event = ?',
                               (action_id, event)).fetchone()
            encoded = canonical_json(details) if details is not None else None
            if row is None:
                conn.execute('INSERT INTO action_events (action_id, event, start_time, finish_time, result, '
                             'message, details) VALUES (?, ?, ?, ?, ?, ?, ?)',
                             (action_id, event, start_time or utcnow(), finish_time, result, message, encoded))
            else:
                updates = {'finish_time': finish_time, 'result': result, 'message': message, 'details': encoded}
                updates = dict((key, value) for key, value in updates.items() if value is not None)
                if updates:
                    conn.execute('UPDATE action_events SET %s WHERE id = ?'
                                 % ', '.join('%s = ?' % key for key in updates),
                                 list(updates.values()) + [row[0]])
        return self.get_event(action_id, event)

    def list_actions(self, uuid, with_events=True):
        actions = [dict(row) for row in self._conn.execute(
            'SELECT * FROM actions WHERE instance_uuid = ? ORDER BY start_time, id', (uuid,))]
        if with_events:
            for action in actions:
                action['events'] = [_row_to_event(row) for row in self._conn.execute(
                    'SELECT * FROM action_events WHERE action_id = ? ORDER BY start_time, id', (action['id'],))]
        return actions

    def import_actions(self, uuid, actions):
        """Copy another host's actions of the instance (each with its ``events``, as list_actions gives them) into
        this store, in one transaction: a migrated instance keeps its history. An action whose request id this
        store has already is left as it is. Returns the request ids copied."""
        copied = []
        with self.transaction() as conn:
            for action in actions:
                if conn.execute('SELECT 1 FROM actions WHERE instance_uuid = ? AND request_id = ?',
                                (uuid, action['request_id'])).fetchone():
                    continue
                cursor = conn.execute(
                    'INSERT INTO actions (instance_uuid, action, request_id, start_time, finish_time, message) '
                    'VALUES (?, ?, ?, ?, ?, ?)', (uuid, action['action'], action['request_id'], action['start_time'],
                                                  action.get('finish_time'), action.get('message')))
                for event in action.get('events') or []:
                    details = event.get('details')
                    conn.execute('INSERT INTO action_events (action_id, event, start_time, finish_time, result, '
                                 'message, details) VALUES (?, ?, ?, ?, ?, ?, ?)',
                                 (cursor.lastrowid, event['event'], event['start_time'], event.get('finish_time'),
                                  event.get('result'), event.get('message'),
                                  canonical_json(details) if details is not None else None))
                copied.append(action['request_id'])
        return copied

    # ------------------------------------------------------------------ claims
    def get_claim(self, uuid):
        row = self._conn.execute('SELECT * FROM claims WHERE instance_uuid = ?', (uuid,)).fetchone()
        return dict(row) if row is not None else None

    def other_run_claim(self, uuid, request_id, now=None):
        """The live claim another run than ``request_id`` has on the instance, or None."""
        claim = self.get_claim(uuid)
        return claim if held_by_another_run(claim, request_id, now or utcnow()) else None

    def claim(self, uuid, request_id, action, now=None, stale_after=CLAIM_STALE_SECONDS):
        """Claim the instance for the run ``request_id``. None when it is ours now, else the live claim of another run.

        The claim is the run's until it has been silent (no heartbeat) for ``stale_after`` seconds; an older
        claim of another run is a dead run's and is taken over.
        """
        now = now or utcnow()
        with self.transaction() as conn:
            row = conn.execute('SELECT * FROM claims WHERE instance_uuid = ?', (uuid,)).fetchone()
            if held_by_another_run(row, request_id, now):
                return dict(row)
            if row is not None and row['request_id'] == request_id:
                conn.execute('UPDATE claims SET heartbeat_at = ?, stale_after = ? WHERE instance_uuid = ?',
                             (now, stale_after, uuid))
            else:
                if row is not None:
                    self._end_interrupted(conn, uuid, row['request_id'], now,
                                          'the run ended before this finished; request %s took the instance over'
                                          % request_id)
                conn.execute('INSERT OR REPLACE INTO claims (instance_uuid, request_id, action, claimed_at, heartbeat_at, '
                             'stale_after) VALUES (?, ?, ?, ?, ?, ?)', (uuid, request_id, action, now, now, stale_after))
        return None

    @staticmethod
    def _end_interrupted(conn, uuid, request_id, now, why):
        """The open action of the run ``request_id`` on the instance ends, as do its unfinished events: interrupted.

        For a dead run whose claim is taken over, and for a run that releases its claims with an action still
        open (a step of it failed as a task): without this the action would stay open in the store for ever.
        """
        row = conn.execute('SELECT id FROM actions WHERE instance_uuid = ? AND request_id = ? AND finish_time IS NULL',
                           (uuid, request_id)).fetchone()
        if row is None:
            return
        message = '%s: %s' % (INTERRUPTED, why)
        conn.execute("UPDATE action_events SET finish_time = ?, result = 'Error', message = ? "
                     'WHERE action_id = ? AND finish_time IS NULL', (now, message, row[0]))
        conn.execute('UPDATE actions SET finish_time = ?, message = ? WHERE id = ?', (now, message, row[0]))

    def heartbeat(self, request_id, uuids, now=None):
        """The run ``request_id`` is alive: refresh its claims on ``uuids``."""
        with self.transaction() as conn:
            conn.executemany('UPDATE claims SET heartbeat_at = ? WHERE instance_uuid = ? AND request_id = ?',
                             [(now or utcnow(), uuid, request_id) for uuid in uuids])

    def release(self, request_id, now=None):
        """Drop the claims of the run ``request_id``; returns the instances released.

        An action of the run still open on a released instance ends as interrupted: the run is over.
        """
        now = now or utcnow()
        with self.transaction() as conn:
            released = [row[0] for row in conn.execute('SELECT instance_uuid FROM claims WHERE request_id = ? '
                                                       'ORDER BY instance_uuid', (request_id,))]
            for uuid in released:
                self._end_interrupted(conn, uuid, request_id, now, 'the run ended before this finished')
            conn.execute('DELETE FROM claims WHERE request_id = ?', (request_id,))
        return released

    # ------------------------------------------------------------------ audits
    def add_audit(self, host, data, now=None):
        with self.transaction() as conn:
            conn.execute('INSERT INTO compute_node_audits (host, audited_at, data) VALUES (?, ?, ?)',
                         (host, now or utcnow(), canonical_json(data)))
        return self.latest_audit(host)

    def latest_audit(self, host):
        row = self._conn.execute('SELECT * FROM compute_node_audits WHERE host = ? ORDER BY audited_at DESC, id DESC '
                                 'LIMIT 1', (host,)).fetchone()
        if row is None:
            return None
        audit = dict(row)
        audit['data'] = json.loads(audit['data'])
        return audit


class LazyStore(object):
    """Opens the store for writing on first call; a plan calls it only when it applies."""

    def __init__(self, path):
        self.path = path
        self._store = None

    def __call__(self):
        if self._store is None:
            self._store = StateStore.open(self.path, readonly=False)
        return self._store

    def close(self):
        if self._store is not None:
            self._store.close()
            self._store = None


def _row_to_event(row):
    if row is None:
        return None
    event = dict(row)
    event['details'] = json.loads(event['details']) if event['details'] else None
    return event
