"""Fixes a precondition stopped: marking the decided fix, finding the ones to retry, their verdicts.

A blocked fix is an incident whose newest decision is a ``skip`` for
``precondition``: that decision's ``trigger`` says what started the fix,
its ``ts`` when it was first blocked (repeats collapse into it). The
verdicts of every evaluation are audit entries of kind ``preconditions``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from healer.core.enums import ApprovalState, AuditKind, IncidentStatus, Reason, Trigger, Verdict
from healer.core.records import Decision
from healer.store.connection import Database
from healer.store.decisions import _decision


@dataclass(frozen=True, slots=True)
class BlockedFix:
    decision: Decision
    trigger: Trigger


@dataclass(frozen=True, slots=True)
class CheckRecord:
    """One evaluation of a fix's preconditions, as audited."""

    ts: float
    decision_id: int
    verdicts: tuple[Mapping[str, Any], ...]
    reviews: tuple[str, ...]


_NEWEST = "d.id = (SELECT max(id) FROM decisions WHERE incident_id = d.incident_id)"


class Blocked(Database):
    def mark_blocked(self, db: sqlite3.Connection, decision_id: int, detail: str) -> None:
        """The decided fix never started: it keeps no place in the hourly budget."""
        db.execute(
            "UPDATE decisions SET state = ?, detail = ? WHERE id = ?",
            (ApprovalState.BLOCKED.value, detail, decision_id),
        )

    def blocked_detail(self, db: sqlite3.Connection, incident_id: int, since: float) -> str:
        """Why the incident's fix waits for a precondition ('' when it does not, or was blocked before ``since``)."""
        r = db.execute(
            f"SELECT d.detail FROM decisions d WHERE d.incident_id = ? AND {_NEWEST}"  # noqa: S608 - constant SQL
            " AND d.verdict = ? AND d.reason = ? AND d.ts >= ?",
            (incident_id, Verdict.SKIP.value, Reason.PRECONDITION.value, since),
        ).fetchone()
        return "" if r is None else str(r[0])

    def approved_text(self, incident_id: int) -> str:
        """What the incident's newest approved question showed the human (its chain and why it asked)."""
        value = self._one(
            "SELECT detail FROM decisions WHERE incident_id = ? AND verdict = ? AND state = ? ORDER BY id DESC LIMIT 1",
            (incident_id, Verdict.ASK.value, ApprovalState.APPROVED.value),
        )
        return "" if value is None else str(value)

    def blocked_fixes(self, since: float, limit: int = 200) -> list[BlockedFix]:
        """Open incidents whose fix a precondition (or a busy target) blocked since ``since``, oldest first."""
        with self._lock:
            rows = self.db.execute(
                f"SELECT d.* FROM decisions d JOIN incidents i ON i.id = d.incident_id WHERE {_NEWEST}"  # noqa: S608
                " AND i.status = ? AND d.verdict = ? AND d.reason IN (?, ?) AND d.ts >= ? ORDER BY d.id LIMIT ?",
                (
                    IncidentStatus.OPEN.value,
                    Verdict.SKIP.value,
                    Reason.PRECONDITION.value,
                    Reason.TARGET_BUSY.value,
                    since,
                    limit,
                ),
            ).fetchall()
        return [BlockedFix(_decision(r), Trigger(r["trigger"])) for r in rows]

    def check_records(self, incident_id: int, limit: int = 20) -> list[CheckRecord]:
        """The incident's precondition evaluations, oldest first."""
        with self._lock:
            rows = self.db.execute(
                "SELECT ts, detail FROM audit WHERE kind = ? AND json_extract(detail, '$.incident') = ?"
                " ORDER BY id DESC LIMIT ?",
                (AuditKind.PRECONDITIONS.value, incident_id, limit),
            ).fetchall()
        out = []
        for ts, raw in reversed(rows):
            d = json.loads(raw)
            verdicts: Sequence[Mapping[str, Any]] = d.get("verdicts") or ()
            reviews = tuple(str(r) for r in d.get("reviews") or ())
            out.append(CheckRecord(float(ts), int(d.get("decision") or 0), tuple(verdicts), reviews))
        return out
