"""The schema: its version and the forward migrations that reach it.

A migration is appended, never edited: a store written by an older healer
runs every migration after its version, in order, inside one transaction.
"""

from __future__ import annotations

SCHEMA_VERSION = 2

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE offsets (
        path TEXT PRIMARY KEY, inode INTEGER NOT NULL, dev INTEGER NOT NULL,
        position INTEGER NOT NULL, head_hash TEXT NOT NULL, updated REAL NOT NULL);
    CREATE TABLE cursors (source TEXT PRIMARY KEY, cursor TEXT NOT NULL, updated REAL NOT NULL);
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL UNIQUE, pattern_id TEXT NOT NULL,
        severity TEXT NOT NULL, status TEXT NOT NULL, service TEXT NOT NULL, message TEXT NOT NULL,
        count INTEGER NOT NULL, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, last_fix_at REAL, escalated_at REAL, resolved_at REAL,
        last_notified REAL, link TEXT NOT NULL DEFAULT '', groups TEXT NOT NULL DEFAULT '{}');
    CREATE INDEX incidents_last_seen ON incidents(last_seen);
    CREATE TABLE incident_sources (
        incident_id INTEGER NOT NULL, source TEXT NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (incident_id, source));
    CREATE TABLE events (
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, source TEXT NOT NULL, service TEXT NOT NULL,
        origin TEXT NOT NULL, message TEXT NOT NULL, pattern_id TEXT NOT NULL,
        incident_id INTEGER NOT NULL, source_id TEXT NOT NULL DEFAULT '', fields TEXT NOT NULL DEFAULT '{}',
        link TEXT NOT NULL DEFAULT '');
    CREATE INDEX events_ts ON events(ts);
    CREATE INDEX events_incident ON events(incident_id, ts);
    CREATE UNIQUE INDEX events_source_id ON events(source, source_id, pattern_id) WHERE source_id != '';
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, last_ts REAL NOT NULL, count INTEGER NOT NULL DEFAULT 1,
        incident_id INTEGER NOT NULL, pattern_id TEXT NOT NULL, verdict TEXT NOT NULL, reason TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT '', expires_at REAL,
        decided_by TEXT NOT NULL DEFAULT '', trigger TEXT NOT NULL DEFAULT 'auto',
        context TEXT NOT NULL DEFAULT '{}');
    CREATE INDEX decisions_incident ON decisions(incident_id, id);
    CREATE TABLE fix_attempts (
        id INTEGER PRIMARY KEY, incident_id INTEGER NOT NULL, decision_id INTEGER NOT NULL,
        actions TEXT NOT NULL, outcome TEXT NOT NULL, started REAL NOT NULL, finished REAL,
        verify_until REAL, detail TEXT NOT NULL DEFAULT '', steps TEXT NOT NULL DEFAULT '[]',
        undo_state TEXT NOT NULL DEFAULT '[]', trigger TEXT NOT NULL DEFAULT 'auto',
        revert_at REAL, reverted_at REAL);
    CREATE INDEX fix_attempts_incident ON fix_attempts(incident_id);
    CREATE TABLE locks (target TEXT PRIMARY KEY, attempt_id INTEGER NOT NULL, acquired REAL NOT NULL);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,
        detail TEXT NOT NULL);
    CREATE INDEX audit_ts ON audit(ts);
    CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # A storm's lines of one incident in one batch are stored as a bounded sample: a row stands for
    # ``count`` lines (itself and the elided ones before it), so windows and reports still count every line.
    2: "ALTER TABLE events ADD COLUMN count INTEGER NOT NULL DEFAULT 1",
}
