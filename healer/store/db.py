"""The SQLite store: events, incidents, decisions, fix attempts, audit, offsets.

WAL mode, a schema version and forward migrations. A file source's offset is
written in the same transaction as the events its lines produced, which is
what makes "no line lost, none twice" hold across a SIGKILL: either both are
on disk or neither is.

One connection, guarded by a lock, serves the daemon's worker threads; the
CLI opens its own. Every method is short, and none is called on the asyncio
loop thread directly.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from healer.core.enums import IncidentStatus, Outcome, Reason, Severity, Trigger, Verdict
from healer.core.errors import StoreError
from healer.core.records import Decision, Event, FixAttempt, Incident, StepResult

SCHEMA_VERSION = 1

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
}

FAILED_OUTCOMES = (Outcome.FAILED.value, Outcome.ROLLED_BACK.value, Outcome.ROLLBACK_FAILED.value)
# Attempts that still own their target: applying, watching, or being undone.
ACTIVE_OUTCOMES = (Outcome.RUNNING.value, Outcome.VERIFYING.value, Outcome.UNDOING.value)


@dataclass(frozen=True, slots=True)
class EventRow:
    """What one matched event writes: the event, its incident's fingerprint and pattern."""

    event: Event
    pattern_id: str
    fingerprint: str
    severity: Severity
    groups: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Recorded:
    """The result of recording one event: its incident after the update."""

    event_id: int
    incident: Incident
    new_incident: bool
    reopened: bool
    duplicate: bool


def _json(data: Any) -> str:
    return json.dumps(data, default=str, ensure_ascii=False, separators=(",", ":"))


class Store:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            if not readonly:
                path.parent.mkdir(parents=True, exist_ok=True)
            uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA busy_timeout=10000")
            if not readonly:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from None
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the state directory: {exc.strerror}") from None

    # -- plumbing ---------------------------------------------------------
    def _migrate(self) -> None:
        with self.tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            current = row[0] if row else 0
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {current} is newer than this healer ({SCHEMA_VERSION}); upgrade"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[version].split(";"):
                    if stmt.strip():
                        db.execute(stmt)
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            else:
                db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full, I/O error) must not leave the
                # connection inside a transaction, or every later BEGIN fails.
                if self.db.in_transaction:
                    with suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                raise

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for read-only queries (``store/reads.py``), under the store's lock."""
        with self._lock:
            yield self.db

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self.db.execute(sql, args).fetchall())

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def integrity_ok(self) -> bool:
        return bool(self.query("PRAGMA integrity_check")[0][0] == "ok")

    # -- offsets and cursors ---------------------------------------------
    def offsets(self) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM offsets")

    def save_offset(
        self, db: sqlite3.Connection, path: str, inode: int, dev: int, pos: int, head: str, now: float
    ) -> None:
        db.execute(
            "INSERT INTO offsets VALUES (?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET inode=excluded.inode,"
            " dev=excluded.dev, position=excluded.position, head_hash=excluded.head_hash, updated=excluded.updated",
            (path, inode, dev, pos, head, now),
        )

    def cursor(self, source: str) -> str | None:
        rows = self.query("SELECT cursor FROM cursors WHERE source = ?", (source,))
        return str(rows[0][0]) if rows else None

    def save_cursor(self, db: sqlite3.Connection, source: str, cursor: str, now: float) -> None:
        db.execute(
            "INSERT INTO cursors VALUES (?,?,?) ON CONFLICT(source) DO UPDATE SET cursor=excluded.cursor,"
            " updated=excluded.updated",
            (source, cursor, now),
        )

    # -- events and incidents ---------------------------------------------
    def record_event(self, db: sqlite3.Connection, row: EventRow) -> Recorded:
        """One event, e.g. a webhook alert; a re-delivery (same source id) is reported as duplicate."""
        return self.record_group(db, row.pattern_id, row.fingerprint, row.severity, [row.event], row.groups)

    def record_group(
        self,
        db: sqlite3.Connection,
        pattern_id: str,
        fingerprint: str,
        severity: Severity,
        events: Sequence[Event],
        groups: Mapping[str, str] | None = None,
    ) -> Recorded:
        """Record events of one fingerprint with a handful of statements.

        A chunk from a storm may hold 10,000 lines of one incident; one
        incident update and one ``executemany`` keep that cheap. Events whose
        sender id was seen before (a webhook re-delivery) are dropped here.
        """
        fresh = [ev for ev in events if not ev.source_id or not self._seen(db, ev, pattern_id)]
        if not fresh:
            dup = db.execute(
                "SELECT id, incident_id FROM events WHERE source=? AND source_id=? AND pattern_id=?",
                (events[-1].source, events[-1].source_id, pattern_id),
            ).fetchone()
            return Recorded(int(dup["id"]), self._incident(db, int(dup["incident_id"])), False, False, True)
        inc_id, new, reopened = self._upsert_incident(db, pattern_id, fingerprint, severity, fresh, groups or {})
        by_source: dict[str, int] = {}
        for ev in fresh:
            by_source[ev.source] = by_source.get(ev.source, 0) + 1
        for source, c in by_source.items():
            db.execute(
                "INSERT INTO incident_sources VALUES (?,?,?) ON CONFLICT(incident_id, source)"
                " DO UPDATE SET count = count + excluded.count",
                (inc_id, source, c),
            )
        db.executemany(
            "INSERT INTO events (ts, source, service, origin, message, pattern_id, incident_id, source_id, fields,"
            " link) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (ev.ts, ev.source, ev.service, ev.origin, ev.message[:8192], pattern_id, inc_id, ev.source_id,
                 _json(dict(ev.fields)) if ev.fields else "{}", ev.link)
                for ev in fresh
            ],
        )  # fmt: skip
        ev_id = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        return Recorded(int(ev_id), self._incident(db, inc_id), new, reopened, False)

    @staticmethod
    def _seen(db: sqlite3.Connection, ev: Event, pattern_id: str) -> bool:
        return (
            db.execute(
                "SELECT 1 FROM events WHERE source=? AND source_id=? AND pattern_id=?",
                (ev.source, ev.source_id, pattern_id),
            ).fetchone()
            is not None
        )

    def _upsert_incident(
        self,
        db: sqlite3.Connection,
        pattern_id: str,
        fingerprint: str,
        severity: Severity,
        events: Sequence[Event],
        groups: Mapping[str, str],
    ) -> tuple[int, bool, bool]:
        """Create or update the incident; returns (id, new, reopened).

        A fixed or resolved incident that comes back is reopened with a fresh
        attempt count: a fault healer fixes every week is not "failing".
        """
        first, last, n = events[0], events[-1], len(events)
        groups_json = _json(dict(groups))
        cur = db.execute("SELECT id, status FROM incidents WHERE fingerprint = ?", (fingerprint,)).fetchone()
        if cur is None:
            inc_id = db.execute(
                "INSERT INTO incidents (fingerprint, pattern_id, severity, status, service, message, count,"
                " first_seen, last_seen, link, groups) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (fingerprint, pattern_id, severity.value, IncidentStatus.OPEN.value, last.service,
                 last.message[:2000], n, first.ts, last.ts, last.link, groups_json),
            ).lastrowid  # fmt: skip
            assert inc_id is not None
            return int(inc_id), True, False
        inc_id = int(cur["id"])
        reopened = cur["status"] in (IncidentStatus.RESOLVED.value, IncidentStatus.FIXED.value)
        db.execute(
            "UPDATE incidents SET count = count + ?, last_seen = max(last_seen, ?), message = ?, groups = ?,"
            " link = CASE WHEN ? != '' THEN ? ELSE link END,"
            " status = CASE WHEN ? THEN ? ELSE status END, attempts = CASE WHEN ? THEN 0 ELSE attempts END"
            " WHERE id = ?",
            (n, last.ts, last.message[:2000], groups_json, last.link, last.link, reopened,
             IncidentStatus.OPEN.value, reopened, inc_id),
        )  # fmt: skip
        return inc_id, False, reopened

    def reopen_escalated(self, db: sqlite3.Connection, inc_id: int) -> None:
        """After failure_memory, an escalated incident gets automatic fixes again."""
        db.execute(
            "UPDATE incidents SET status = ?, attempts = 0, escalated_at = NULL WHERE id = ?",
            (IncidentStatus.OPEN.value, inc_id),
        )

    def incident_row(self, db: sqlite3.Connection, inc_id: int) -> sqlite3.Row:
        row: sqlite3.Row = db.execute("SELECT * FROM incidents WHERE id = ?", (inc_id,)).fetchone()
        return row

    def _incident(self, db: sqlite3.Connection, inc_id: int) -> Incident:
        r = db.execute("SELECT * FROM incidents WHERE id = ?", (inc_id,)).fetchone()
        sources = tuple(
            s[0]
            for s in db.execute("SELECT source FROM incident_sources WHERE incident_id=? ORDER BY source", (inc_id,))
        )
        return _incident_from_row(r, sources)

    def incident(self, inc_id: int) -> Incident | None:
        with self._lock:
            r = self.db.execute("SELECT 1 FROM incidents WHERE id = ?", (inc_id,)).fetchone()
            return None if r is None else self._incident(self.db, inc_id)

    def incidents(self, *, status: Sequence[str] = (), since: float = 0.0, limit: int = 50) -> list[Incident]:
        sql = "SELECT id FROM incidents WHERE last_seen >= ?"
        args: list[Any] = [since]
        if status:
            sql += f" AND status IN ({','.join('?' * len(status))})"
            args.extend(status)
        sql += " ORDER BY last_seen DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            ids = [r[0] for r in self.db.execute(sql, args).fetchall()]
            return [self._incident(self.db, i) for i in ids]

    def count_in_window(self, db: sqlite3.Connection, inc_id: int, since: float, cap: int) -> int:
        """Matches in the window, counted only up to ``cap`` so a storm stays O(cap)."""
        r = db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE incident_id = ? AND ts >= ? LIMIT ?)",
            (inc_id, since, cap),
        ).fetchone()
        return int(r[0])

    def set_incident_status(self, db: sqlite3.Connection, inc_id: int, status: IncidentStatus, now: float) -> None:
        col = {IncidentStatus.ESCALATED: "escalated_at", IncidentStatus.RESOLVED: "resolved_at"}.get(status)
        if col:
            db.execute(f"UPDATE incidents SET status = ?, {col} = ? WHERE id = ?", (status.value, now, inc_id))  # noqa: S608
        else:
            db.execute("UPDATE incidents SET status = ? WHERE id = ?", (status.value, inc_id))

    def resolve_by_source_id(self, db: sqlite3.Connection, source: str, source_id: str, now: float) -> list[int]:
        ids = [
            int(r[0])
            for r in db.execute(
                "SELECT DISTINCT incident_id FROM events WHERE source = ? AND source_id = ?", (source, source_id)
            )
        ]
        for i in ids:
            self.set_incident_status(db, i, IncidentStatus.RESOLVED, now)
        return ids

    # -- decisions ---------------------------------------------------------
    def record_decision(
        self,
        db: sqlite3.Connection,
        incident_id: int,
        pattern_id: str,
        verdict: Verdict,
        reason: Reason,
        now: float,
        detail: str = "",
        *,
        expires_at: float | None = None,
        trigger: Trigger = Trigger.AUTO,
        collapse: bool = True,
    ) -> tuple[Decision, bool]:
        """Insert a decision, or count a repeat of the incident's last one.

        A storm of 1M lines on one incident gives one decision row with a
        count of 1M, not 1M rows; every decision is still recorded.
        Returns the decision and whether it is new.
        """
        if collapse and verdict in (Verdict.SKIP, Verdict.NOTIFY):
            last = db.execute(
                "SELECT * FROM decisions WHERE incident_id = ? ORDER BY id DESC LIMIT 1", (incident_id,)
            ).fetchone()
            if last is not None and last["verdict"] == verdict.value and last["reason"] == reason.value:
                db.execute(
                    "UPDATE decisions SET count = count + 1, last_ts = ?, detail = ? WHERE id = ?",
                    (now, detail, last["id"]),
                )
                return Decision(int(last["id"]), incident_id, pattern_id, verdict, reason, now, detail), False
        state = "pending" if verdict is Verdict.ASK else ""
        did = db.execute(
            "INSERT INTO decisions (ts, last_ts, incident_id, pattern_id, verdict, reason, detail, state,"
            " expires_at, trigger) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (now, now, incident_id, pattern_id, verdict.value, reason.value, detail, state, expires_at, trigger),
        ).lastrowid
        assert did is not None
        return Decision(did, incident_id, pattern_id, verdict, reason, now, detail), True

    def pending_approval(self, db: sqlite3.Connection, incident_id: int, now: float) -> bool:
        r = db.execute(
            "SELECT 1 FROM decisions WHERE incident_id = ? AND state = 'pending' AND (expires_at IS NULL"
            " OR expires_at > ?) LIMIT 1",
            (incident_id, now),
        ).fetchone()
        return r is not None

    def take_approval(self, decision_id: int, approve: bool, actor: str, now: float) -> tuple[str, sqlite3.Row | None]:
        """Settle a pending approval once. Returns ('ok'|'expired'|'done'|'missing', row)."""
        with self.tx() as db:
            row = db.execute("SELECT * FROM decisions WHERE id = ?", (decision_id,)).fetchone()
            if row is None or row["verdict"] != Verdict.ASK.value:
                return "missing", None
            if row["state"] != "pending":
                return "done", row
            if row["expires_at"] is not None and row["expires_at"] <= now:
                db.execute("UPDATE decisions SET state = 'expired' WHERE id = ?", (decision_id,))
                return "expired", row
            new_state = "approved" if approve else "rejected"
            cur = db.execute(
                "UPDATE decisions SET state = ?, decided_by = ? WHERE id = ? AND state = 'pending'",
                (new_state, actor, decision_id),
            )
            return ("ok" if cur.rowcount == 1 else "done"), row

    def last_decision(self, incident_id: int) -> Decision | None:
        rows = self.query("SELECT * FROM decisions WHERE incident_id = ? ORDER BY id DESC LIMIT 1", (incident_id,))
        return _decision_from_row(rows[0]) if rows else None

    def decisions(self, incident_id: int | None = None, limit: int = 50) -> list[Decision]:
        if incident_id is None:
            rows = self.query("SELECT * FROM decisions ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self.query(
                "SELECT * FROM decisions WHERE incident_id = ? ORDER BY id DESC LIMIT ?", (incident_id, limit)
            )
        return [_decision_from_row(r) for r in rows]

    # -- fix attempts --------------------------------------------------------
    def start_attempt(
        self,
        incident_id: int,
        decision_id: int,
        actions: Sequence[str],
        targets: Sequence[str],
        now: float,
        trigger: Trigger = Trigger.AUTO,
    ) -> int | None:
        """Create a running attempt and take its target locks, atomically; None if a target is busy."""
        with self.tx() as db:
            for t in targets:
                if db.execute("SELECT 1 FROM locks WHERE target = ?", (t,)).fetchone():
                    return None
            aid = db.execute(
                "INSERT INTO fix_attempts (incident_id, decision_id, actions, outcome, started, trigger)"
                " VALUES (?,?,?,?,?,?)",
                (incident_id, decision_id, _json(list(actions)), Outcome.RUNNING.value, now, trigger),
            ).lastrowid
            assert aid is not None
            for t in targets:
                db.execute("INSERT INTO locks VALUES (?,?,?)", (t, aid, now))
            db.execute("UPDATE incidents SET attempts = attempts + 1, last_fix_at = ? WHERE id = ?", (now, incident_id))
            return int(aid)

    def mark_busy(self, decision_id: int, targets: Sequence[str]) -> None:
        """An ACT whose target was locked never ran: it must not use up the hourly budget."""
        with self.tx() as db:
            db.execute(
                "UPDATE decisions SET state = 'busy', detail = ? WHERE id = ?",
                (f"not started: target busy ({', '.join(targets)})", decision_id),
            )

    def checkpoint(self, attempt_id: int, undo_state: Sequence[Mapping[str, Any]]) -> None:
        with self.tx() as db:
            db.execute("UPDATE fix_attempts SET undo_state = ? WHERE id = ?", (_json(list(undo_state)), attempt_id))

    def finish_attempt(
        self,
        attempt_id: int,
        outcome: Outcome,
        now: float,
        detail: str,
        steps: Sequence[StepResult],
        verify_until: float | None = None,
    ) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE fix_attempts SET outcome = ?, finished = ?, detail = ?, steps = ?, verify_until = ?"
                " WHERE id = ?",
                (outcome.value, now, detail[:4000], _steps_json(steps), verify_until, attempt_id),
            )
            if outcome not in ACTIVE_OUTCOMES:
                db.execute("DELETE FROM locks WHERE attempt_id = ?", (attempt_id,))

    def set_outcome(
        self,
        db: sqlite3.Connection,
        attempt_id: int,
        outcome: Outcome,
        detail: str,
        now: float,
        *,
        expect: Outcome | None = None,
    ) -> bool:
        """Set the outcome (only from ``expect`` if given); locks go when the attempt is settled.

        UNDOING keeps the target locks, so no new fix can start on the target
        while the old one is being rolled back.
        """
        sql = "UPDATE fix_attempts SET outcome = ?, detail = ?, finished = ? WHERE id = ?"
        args: list[Any] = [outcome.value, detail[:4000], now, attempt_id]
        if expect is not None:
            sql += " AND outcome = ?"
            args.append(expect.value)
        changed = db.execute(sql, args).rowcount == 1
        if changed and outcome not in ACTIVE_OUTCOMES:
            db.execute("DELETE FROM locks WHERE attempt_id = ?", (attempt_id,))
        return changed

    def set_revert_at(self, attempt_id: int, revert_at: float) -> None:
        with self.tx() as db:
            db.execute("UPDATE fix_attempts SET revert_at = ? WHERE id = ?", (revert_at, attempt_id))

    def attempt_row(self, attempt_id: int) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM fix_attempts WHERE id = ?", (attempt_id,))
        return rows[0] if rows else None

    def attempts(
        self, *, outcome: Sequence[str] = (), incident_id: int | None = None, limit: int = 50
    ) -> list[FixAttempt]:
        sql = "SELECT * FROM fix_attempts WHERE 1=1"
        args: list[Any] = []
        if outcome:
            sql += f" AND outcome IN ({','.join('?' * len(outcome))})"
            args.extend(outcome)
        if incident_id is not None:
            sql += " AND incident_id = ?"
            args.append(incident_id)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [_attempt_from_row(r) for r in self.query(sql, args)]

    def active_attempt(self, db: sqlite3.Connection, incident_id: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = db.execute(
            "SELECT * FROM fix_attempts WHERE incident_id = ? AND outcome IN (?, ?, ?) ORDER BY id DESC LIMIT 1",
            (incident_id, *ACTIVE_OUTCOMES),
        ).fetchone()
        return row

    def failures_since(self, db: sqlite3.Connection, since: float) -> int:
        r = db.execute(
            f"SELECT count(*) FROM fix_attempts WHERE finished >= ? AND outcome IN ({','.join('?' * 3)})",  # noqa: S608
            (since, *FAILED_OUTCOMES),
        ).fetchone()
        return int(r[0])

    def acts_since(self, db: sqlite3.Connection, since: float) -> int:
        """Fixes decided (not only started) since ``since``: the budget must hold within one batch too."""
        r = db.execute(
            "SELECT count(*) FROM decisions WHERE ts >= ? AND verdict = ? AND state != 'busy'",
            (since, Verdict.ACT.value),
        ).fetchone()
        return int(r[0])

    def release_stale_locks(self) -> int:
        with self.tx() as db:
            return db.execute(
                "DELETE FROM locks WHERE attempt_id NOT IN (SELECT id FROM fix_attempts WHERE outcome IN (?, ?, ?))",
                ACTIVE_OUTCOMES,
            ).rowcount

    # -- audit and state -----------------------------------------------------
    def audit(self, kind: str, actor: str, detail: Mapping[str, Any], now: float) -> None:
        with self.tx() as db:
            self.audit_in(db, kind, actor, detail, now)

    def audit_in(self, db: sqlite3.Connection, kind: str, actor: str, detail: Mapping[str, Any], now: float) -> None:
        db.execute("INSERT INTO audit (ts, kind, actor, detail) VALUES (?,?,?,?)", (now, kind, actor, _json(detail)))

    def audit_rows(self, kind: str | None = None, limit: int = 100) -> list[sqlite3.Row]:
        if kind:
            return self.query("SELECT * FROM audit WHERE kind = ? ORDER BY id DESC LIMIT ?", (kind, limit))
        return self.query("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))

    def count_open_incidents(self) -> int:
        with self._lock:
            r = self.db.execute("SELECT count(*) FROM incidents WHERE status = ?", (IncidentStatus.OPEN.value,))
            return int(r.fetchone()[0])

    def breaker_open_until(self) -> float | None:
        """When the circuit breaker closes again, or None if it was never opened."""
        until = self.get_state("breaker_open_until")
        return None if until is None else float(until)

    def get_state(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM state WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_state(self, db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO state VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value)
        )

    def prune(self, now: float, retention_days: float, max_events: int) -> int:
        with self.tx() as db:
            n = db.execute("DELETE FROM events WHERE ts < ?", (now - retention_days * 86400,)).rowcount
            r = db.execute("SELECT count(*) FROM events").fetchone()
            excess = int(r[0]) - max_events
            if excess > 0:
                n += db.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?)", (excess,)
                ).rowcount
            db.execute("DELETE FROM audit WHERE ts < ?", (now - max(retention_days, 30) * 86400,))
            # Settled history beyond retention goes too, so hostile lines that each make
            # a new incident cannot grow the store without bound.
            old = now - max(retention_days, 30) * 86400
            settled = (IncidentStatus.FIXED.value, IncidentStatus.RESOLVED.value)
            stale = "SELECT id FROM incidents WHERE last_seen < ? AND status IN (?, ?)"
            for table in ("decisions", "fix_attempts", "incident_sources"):
                db.execute(f"DELETE FROM {table} WHERE incident_id IN ({stale})", (old, *settled))  # noqa: S608
            db.execute("DELETE FROM incidents WHERE last_seen < ? AND status IN (?, ?)", (old, *settled))
            return n


def _steps_json(steps: Sequence[StepResult]) -> str:
    return _json([{"action": s.action, "outcome": s.outcome.value, "detail": s.detail} for s in steps])


def _incident_from_row(r: sqlite3.Row, sources: tuple[str, ...]) -> Incident:
    return Incident(
        id=int(r["id"]),
        fingerprint=r["fingerprint"],
        pattern_id=r["pattern_id"],
        severity=Severity(r["severity"]),
        status=IncidentStatus(r["status"]),
        service=r["service"],
        message=r["message"],
        count=int(r["count"]),
        first_seen=float(r["first_seen"]),
        last_seen=float(r["last_seen"]),
        sources=sources,
        attempts=int(r["attempts"]),
    )


def _decision_from_row(r: sqlite3.Row) -> Decision:
    return Decision(
        int(r["id"]),
        int(r["incident_id"]),
        r["pattern_id"],
        Verdict(r["verdict"]),
        Reason(r["reason"]),
        float(r["ts"]),
        r["detail"],
    )


def _attempt_from_row(r: sqlite3.Row) -> FixAttempt:
    steps = tuple(
        StepResult(s.get("action", ""), Outcome(s.get("outcome", "failed")), s.get("detail", ""))
        for s in json.loads(r["steps"] or "[]")
    )
    return FixAttempt(
        int(r["id"]),
        int(r["incident_id"]),
        int(r["decision_id"]),
        tuple(json.loads(r["actions"])),
        Outcome(r["outcome"]),
        float(r["started"]),
        r["finished"],
        r["detail"],
        steps,
    )
