"""Typed read models for the reports: the only SQL the front ends depend on.

``healer errors``, ``history``, ``explain`` and ``status`` (and the bot's
answers to the same questions) read through these functions, so the
reports hold no SQL and a schema change is made here, once. Each function
runs its queries under :meth:`Store.reading` and returns frozen records;
states are mapped to the enums of ``healer.core.enums`` here and nowhere
else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from healer.core.enums import ApprovalState, IncidentStatus, Outcome, Reason, Severity, Verdict
from healer.core.records import Decision, FixAttempt, Incident
from healer.store.db import Store


@dataclass(frozen=True, slots=True)
class EventCount:
    """Events of one pattern on one incident since a time, with the incident's severity."""

    pattern_id: str
    incident_id: int
    severity: Severity | None  # None when the incident row was pruned
    events: int


@dataclass(frozen=True, slots=True)
class DecisionLine:
    """A decision as the reports show it: how often it repeated, and on which pattern."""

    id: int
    incident_id: int
    pattern_id: str
    verdict: Verdict
    reason: Reason
    count: int
    ts: float
    detail: str
    state: ApprovalState

    def as_decision(self) -> Decision:
        return Decision(self.id, self.incident_id, self.pattern_id, self.verdict, self.reason, self.ts, self.detail)


@dataclass(frozen=True, slots=True)
class EventLine:
    ts: float
    source: str
    service: str
    origin: str
    message: str
    lines: int = 1  # more for an assembled multi-line event
    evidence: tuple[str, ...] = ()  # the other patterns that matched the same event (no incident of their own)
    elided: int = 0  # lines of the same incident and batch stored only as this count (a storm's sample)
    elided_offsets: str = ""  # their file positions, "first-last"


def _event_line(t: float, s: str, sv: str, o: str, m: str, fields: str) -> EventLine:
    extra = json.loads(fields) if fields and fields != "{}" else {}
    evidence = tuple(str(extra.get("evidence", "")).split())
    return EventLine(
        float(t), str(s), str(sv), str(o), str(m), int(extra.get("lines", 1)), evidence,
        int(extra.get("elided", 0)), str(extra.get("elided_offsets", "")),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class IncidentStory:
    """Everything recorded about one incident, each list oldest first."""

    incident: Incident
    events: tuple[EventLine, ...]
    decisions: tuple[DecisionLine, ...]
    attempts: tuple[FixAttempt, ...]


@dataclass(frozen=True, slots=True)
class StatusCounts:
    open_incidents: int
    pending_approvals: int
    active_attempts: int


def event_counts(store: Store, since: float) -> tuple[EventCount, ...]:
    with store.reading() as db:
        rows = db.execute(
            "SELECT e.pattern_id, e.incident_id, i.severity, sum(e.count) FROM events e"
            " LEFT JOIN incidents i ON i.id = e.incident_id WHERE e.ts >= ?"
            " GROUP BY e.pattern_id, e.incident_id",
            (since,),
        ).fetchall()
    return tuple(
        EventCount(str(pid), int(inc), Severity(sev) if sev is not None else None, int(n)) for pid, inc, sev, n in rows
    )


def outcome_counts(store: Store) -> Mapping[Outcome, int]:
    with store.reading() as db:
        rows = db.execute("SELECT outcome, count(*) FROM fix_attempts GROUP BY outcome").fetchall()
    return MappingProxyType({Outcome(o): int(n) for o, n in rows})


_DECISION_COLUMNS = "d.id, d.incident_id, d.pattern_id, d.verdict, d.reason, d.count, d.ts, d.detail, d.state"


def _decision(row: tuple[object, ...]) -> DecisionLine:
    did, inc, pid, verdict, reason, count, ts, detail, state = row
    return DecisionLine(
        int(str(did)),
        int(str(inc)),
        str(pid),
        Verdict(str(verdict)),
        Reason(str(reason)),
        int(str(count)),
        float(str(ts)),
        str(detail or ""),
        ApprovalState(str(state or "")),
    )


def recent_decisions(store: Store, limit: int) -> tuple[DecisionLine, ...]:
    with store.reading() as db:
        rows = db.execute(f"SELECT {_DECISION_COLUMNS} FROM decisions d ORDER BY d.id DESC LIMIT ?", (limit,))  # noqa: S608 - a constant column list
        return tuple(_decision(tuple(r)) for r in rows.fetchall())


def incident_decisions(store: Store, incident_id: int, limit: int = 1000) -> tuple[DecisionLine, ...]:
    """The incident's decisions, oldest first (``healer replay`` sums them up)."""
    with store.reading() as db:
        rows = db.execute(
            f"SELECT {_DECISION_COLUMNS} FROM decisions d WHERE d.incident_id = ? ORDER BY d.id LIMIT ?",  # noqa: S608 - a constant column list
            (incident_id, limit),
        )
        return tuple(_decision(tuple(r)) for r in rows.fetchall())


def decision(store: Store, decision_id: int) -> DecisionLine | None:
    with store.reading() as db:
        row = db.execute(f"SELECT {_DECISION_COLUMNS} FROM decisions d WHERE d.id = ?", (decision_id,)).fetchone()  # noqa: S608 - a constant column list
    return None if row is None else _decision(tuple(row))


def incident_story(store: Store, incident_id: int, limit: int = 50) -> IncidentStory | None:
    inc = store.incident(incident_id)
    if inc is None:
        return None
    with store.reading() as db:
        events = db.execute(
            "SELECT ts, source, service, origin, message, fields FROM events WHERE incident_id = ? ORDER BY id DESC"
            " LIMIT ?",
            (incident_id, limit),
        ).fetchall()
        decisions = db.execute(
            f"SELECT {_DECISION_COLUMNS} FROM decisions d WHERE d.incident_id = ? ORDER BY d.id DESC LIMIT ?",  # noqa: S608 - a constant column list
            (incident_id, limit),
        ).fetchall()
    attempts = store.attempts(incident_id=incident_id, limit=20)
    return IncidentStory(
        incident=inc,
        events=tuple(_event_line(*row) for row in reversed(events)),
        decisions=tuple(_decision(tuple(r)) for r in reversed(decisions)),
        attempts=tuple(reversed(attempts)),
    )


def status_counts(store: Store, now: float) -> StatusCounts:
    """Counted in SQL, never by loading incidents (a storm can leave thousands open)."""
    active = (Outcome.RUNNING.value, Outcome.VERIFYING.value, Outcome.UNDOING.value)
    with store.reading() as db:
        (open_,) = db.execute(
            "SELECT count(*) FROM incidents WHERE status = ?", (IncidentStatus.OPEN.value,)
        ).fetchone()
        (pending,) = db.execute(
            "SELECT count(*) FROM decisions WHERE verdict = ? AND state = ? AND (expires_at IS NULL OR expires_at > ?)",
            (Verdict.ASK.value, ApprovalState.PENDING.value, now),
        ).fetchone()
        (running,) = db.execute("SELECT count(*) FROM fix_attempts WHERE outcome IN (?, ?, ?)", active).fetchone()
    return StatusCounts(int(open_), int(pending), int(running))
