"""Events and the incidents they group into (one per fingerprint)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from healer.core.enums import IncidentStatus, Severity
from healer.core.records import Event, Incident
from healer.store.connection import Database, to_json

# A sender's id among the events, through the partial index events_source_id: SQLite uses a partial
# index only when the query itself implies its WHERE, so "source_id != ''" is spelled out here (without it
# every webhook with an id scanned the whole events table, 18 ms at 200k rows).
_BY_SOURCE_ID = " FROM events WHERE source = ? AND source_id = ? AND source_id != '' AND pattern_id = ?"
DUPLICATE_OF = "SELECT id, incident_id" + _BY_SOURCE_ID
SEEN = "SELECT 1" + _BY_SOURCE_ID


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


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """What the guardrails need of an incident beyond its record: when it was last fixed or escalated."""

    incident: Incident
    last_fix_at: float | None
    escalated_at: float | None
    groups: Mapping[str, str] = field(default_factory=dict)


_SETTLED = (IncidentStatus.RESOLVED.value, IncidentStatus.FIXED.value)


class Incidents(Database):
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
        summary: str | None = None,
        repeats: Sequence[int] | None = None,
    ) -> Recorded:
        """Record events of one fingerprint with a handful of statements.

        A chunk from a storm may hold 10,000 lines of one incident; one
        incident update and one ``executemany`` keep that cheap. Events whose
        sender id was seen before (a webhook re-delivery) are dropped here.
        ``summary`` is the incident's message when not the last event's (the
        line a multi-line event matched on, not its traceback header).
        ``repeats``: how many lines each event's row stands for (a storm's bounded sample, see
        ``engine.ingest``); file lines only, which carry no sender id. Default: one each.
        """
        counts = list(repeats) if repeats is not None else [1] * len(events)
        if repeats is not None:
            assert len(counts) == len(events) and not any(ev.source_id for ev in events)
            fresh = list(events)
        else:
            fresh = [ev for ev in events if not ev.source_id or not self._seen(db, ev, pattern_id)]
            counts = [1] * len(fresh)
        if not fresh:
            dup = db.execute(
                DUPLICATE_OF,
                (events[-1].source, events[-1].source_id, pattern_id),
            ).fetchone()
            return Recorded(int(dup["id"]), self.incident_in(db, int(dup["incident_id"])), False, False, True)
        inc_id, new, reopened = self._upsert_incident(
            db, pattern_id, fingerprint, severity, fresh, groups or {}, summary, sum(counts)
        )
        by_source: dict[str, int] = {}
        for ev, c in zip(fresh, counts, strict=True):
            by_source[ev.source] = by_source.get(ev.source, 0) + c
        for source, c in by_source.items():
            db.execute(
                "INSERT INTO incident_sources VALUES (?,?,?) ON CONFLICT(incident_id, source)"
                " DO UPDATE SET count = count + excluded.count",
                (inc_id, source, c),
            )
        db.executemany(
            "INSERT INTO events (ts, source, service, origin, message, pattern_id, incident_id, source_id, fields,"
            " link, count) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                (ev.ts, ev.source, ev.service, ev.origin, ev.message[:8192], pattern_id, inc_id, ev.source_id,
                 to_json(dict(ev.fields)) if ev.fields else "{}", ev.link, c)
                for ev, c in zip(fresh, counts, strict=True)
            ],
        )  # fmt: skip
        ev_id = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        return Recorded(int(ev_id), self.incident_in(db, inc_id), new, reopened, False)

    @staticmethod
    def _seen(db: sqlite3.Connection, ev: Event, pattern_id: str) -> bool:
        return (
            db.execute(
                SEEN,
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
        summary: str | None = None,
        n: int | None = None,
    ) -> tuple[int, bool, bool]:
        """Create or update the incident; returns (id, new, reopened).

        A fixed or resolved incident that comes back is reopened with a fresh
        attempt count: a fault healer fixes every week is not "failing".
        """
        first, last = events[0], events[-1]
        n = len(events) if n is None else n
        message = (last.message if summary is None else summary)[:2000]
        groups_json = to_json(dict(groups))
        cur = db.execute("SELECT id, status FROM incidents WHERE fingerprint = ?", (fingerprint,)).fetchone()
        if cur is None:
            inc_id = db.execute(
                "INSERT INTO incidents (fingerprint, pattern_id, severity, status, service, message, count,"
                " first_seen, last_seen, link, groups) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (fingerprint, pattern_id, severity.value, IncidentStatus.OPEN.value, last.service,
                 message, n, first.ts, last.ts, last.link, groups_json),
            ).lastrowid  # fmt: skip
            assert inc_id is not None
            return int(inc_id), True, False
        inc_id = int(cur["id"])
        reopened = cur["status"] in _SETTLED
        db.execute(
            "UPDATE incidents SET count = count + ?, last_seen = max(last_seen, ?), message = ?, groups = ?,"
            " link = CASE WHEN ? != '' THEN ? ELSE link END,"
            " status = CASE WHEN ? THEN ? ELSE status END, attempts = CASE WHEN ? THEN 0 ELSE attempts END"
            " WHERE id = ?",
            (n, last.ts, message, groups_json, last.link, last.link, reopened,
             IncidentStatus.OPEN.value, reopened, inc_id),
        )  # fmt: skip
        return inc_id, False, reopened

    def reopen_escalated(self, db: sqlite3.Connection, inc_id: int) -> None:
        """After failure_memory, an escalated incident gets automatic fixes again."""
        db.execute(
            "UPDATE incidents SET status = ?, attempts = 0, escalated_at = NULL WHERE id = ?",
            (IncidentStatus.OPEN.value, inc_id),
        )

    def incident_facts(self, db: sqlite3.Connection, inc_id: int) -> IncidentFacts:
        """The incident with its fix and escalation times and its captured groups."""
        r = db.execute("SELECT * FROM incidents WHERE id = ?", (inc_id,)).fetchone()
        return IncidentFacts(
            self._from_row(db, r),
            None if r["last_fix_at"] is None else float(r["last_fix_at"]),
            None if r["escalated_at"] is None else float(r["escalated_at"]),
            {str(k): str(v) for k, v in json.loads(r["groups"] or "{}").items()},
        )

    def fix_times(self, db: sqlite3.Connection, inc_id: int) -> tuple[float | None, float | None]:
        """(last_fix_at, escalated_at): the two times the guardrails need beyond the incident record."""
        r = db.execute("SELECT last_fix_at, escalated_at FROM incidents WHERE id = ?", (inc_id,)).fetchone()
        return (None if r[0] is None else float(r[0])), (None if r[1] is None else float(r[1]))

    def incident_in(self, db: sqlite3.Connection, inc_id: int) -> Incident:
        """The incident, read inside the caller's transaction."""
        return self._from_row(db, db.execute("SELECT * FROM incidents WHERE id = ?", (inc_id,)).fetchone())

    @staticmethod
    def _from_row(db: sqlite3.Connection, r: sqlite3.Row) -> Incident:
        sources = tuple(
            s[0]
            for s in db.execute("SELECT source FROM incident_sources WHERE incident_id=? ORDER BY source", (r["id"],))
        )
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

    def incident(self, inc_id: int) -> Incident | None:
        with self._lock:
            r = self.db.execute("SELECT * FROM incidents WHERE id = ?", (inc_id,)).fetchone()
            return None if r is None else self._from_row(self.db, r)

    def incidents(self, *, status: Sequence[str] = (), since: float = 0.0, limit: int = 50) -> list[Incident]:
        """Newest first; ``status`` takes ``IncidentStatus`` members (plain strings until every caller moves)."""
        sql = "SELECT * FROM incidents WHERE last_seen >= ?"
        args: list[Any] = [since]
        if status:
            sql += f" AND status IN ({','.join('?' * len(status))})"
            args.extend(str(s) for s in status)
        sql += " ORDER BY last_seen DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            return [self._from_row(self.db, r) for r in self.db.execute(sql, args).fetchall()]

    def count_open_incidents(self) -> int:
        return int(self._one("SELECT count(*) FROM incidents WHERE status = ?", (IncidentStatus.OPEN.value,)))

    def event_messages(self, *, pattern_id: str | None = None) -> list[str]:
        """Every stored event's message, oldest first (what ``healer explain`` and the fault tests read)."""
        sql, args = "SELECT message FROM events", []
        if pattern_id is not None:
            sql, args = sql + " WHERE pattern_id = ?", [pattern_id]
        with self._lock:
            return [str(r[0]) for r in self.db.execute(sql + " ORDER BY id", args).fetchall()]

    def count_in_window(self, db: sqlite3.Connection, inc_id: int, since: float, cap: int) -> int:
        """Matches (lines, not rows) in the window, over at most ``cap`` rows so a storm stays O(cap)."""
        r = db.execute(
            "SELECT coalesce(sum(n), 0) FROM (SELECT count AS n FROM events WHERE incident_id = ? AND ts >= ? LIMIT ?)",
            (inc_id, since, cap),
        ).fetchone()
        return int(r[0])

    def set_incident_status(self, db: sqlite3.Connection, inc_id: int, status: IncidentStatus, now: float) -> None:
        if status is IncidentStatus.ESCALATED:
            db.execute("UPDATE incidents SET status = ?, escalated_at = ? WHERE id = ?", (status.value, now, inc_id))
        elif status is IncidentStatus.RESOLVED:
            db.execute("UPDATE incidents SET status = ?, resolved_at = ? WHERE id = ?", (status.value, now, inc_id))
        else:
            db.execute("UPDATE incidents SET status = ? WHERE id = ?", (status.value, inc_id))

    def resolve_by_source_id(self, db: sqlite3.Connection, source: str, source_id: str, now: float) -> list[int]:
        ids = [
            int(r[0])
            for r in db.execute(
                "SELECT DISTINCT incident_id FROM events WHERE source = ? AND source_id = ? AND source_id != ''",
                (source, source_id),
            )
        ]
        for i in ids:
            self.set_incident_status(db, i, IncidentStatus.RESOLVED, now)
        return ids
