"""Fix attempts, their checkpoints (the undo stack) and the target locks that keep two fixes apart."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from healer.core.enums import Outcome, Trigger
from healer.core.records import FixAttempt, StepResult
from healer.store.connection import Database, to_json

FAILED_OUTCOMES = (Outcome.FAILED.value, Outcome.ROLLED_BACK.value, Outcome.ROLLBACK_FAILED.value)
# Attempts that still own their target: applying, watching, or being undone.
ACTIVE = (Outcome.RUNNING, Outcome.VERIFYING, Outcome.UNDOING)
ACTIVE_OUTCOMES = tuple(o.value for o in ACTIVE)


@dataclass(frozen=True, slots=True)
class ActiveAttempt:
    """The attempt that still owns an incident's target."""

    id: int
    outcome: Outcome
    verify_until: float | None
    finished: float | None = None  # when the chain ended: recurrence is judged from here (plus grace)
    actions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PastAttempt:
    """A settled attempt of an incident, for the escalation rules (flapping, failed before)."""

    id: int
    outcome: Outcome
    detail: str
    finished: float | None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """An attempt as the reverter and recovery need it: what was planned and the saved undo stack."""

    id: int
    incident_id: int
    outcome: Outcome
    actions: tuple[str, ...]
    undo_state: tuple[Mapping[str, Any], ...]


def _attempt(r: sqlite3.Row) -> FixAttempt:
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
        r["revert_at"],
        r["reverted_at"],
    )


def _record(r: sqlite3.Row) -> AttemptRecord:
    return AttemptRecord(
        int(r["id"]),
        int(r["incident_id"]),
        Outcome(r["outcome"]),
        tuple(str(a) for a in json.loads(r["actions"])),
        tuple(json.loads(r["undo_state"] or "[]")),
    )


def _steps_json(steps: Sequence[StepResult]) -> str:
    return to_json([{"action": s.action, "outcome": s.outcome.value, "detail": s.detail} for s in steps])


class Attempts(Database):
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
                (incident_id, decision_id, to_json(list(actions)), Outcome.RUNNING.value, now, trigger.value),
            ).lastrowid
            assert aid is not None
            for t in targets:
                db.execute("INSERT INTO locks VALUES (?,?,?)", (t, aid, now))
            db.execute("UPDATE incidents SET attempts = attempts + 1, last_fix_at = ? WHERE id = ?", (now, incident_id))
            return int(aid)

    def checkpoint(self, attempt_id: int, undo_state: Sequence[Mapping[str, Any]]) -> None:
        with self.tx() as db:
            db.execute("UPDATE fix_attempts SET undo_state = ? WHERE id = ?", (to_json(list(undo_state)), attempt_id))

    def finish_attempt(
        self,
        attempt_id: int,
        outcome: Outcome,
        now: float,
        detail: str,
        steps: Sequence[StepResult],
        verify_until: float | None = None,
        revert_at: float | None = None,
    ) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE fix_attempts SET outcome = ?, finished = ?, detail = ?, steps = ?, verify_until = ?,"
                " revert_at = ? WHERE id = ?",
                (outcome.value, now, detail[:4000], _steps_json(steps), verify_until, revert_at, attempt_id),
            )
            if outcome not in ACTIVE:
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
        verify_until: float | None = None,
    ) -> bool:
        """Set the outcome (only from ``expect`` if given); locks go when the attempt is settled.

        UNDOING keeps the target locks, so no new fix can start on the target
        while the old one is being rolled back. ``verify_until`` starts a new
        verify window (recovery puts a chain that still verifies back to watching).
        """
        sql = "UPDATE fix_attempts SET outcome = ?, detail = ?, finished = ?"
        args: list[Any] = [outcome.value, detail[:4000], now]
        if verify_until is not None:
            sql += ", verify_until = ?"
            args.append(verify_until)
        sql += " WHERE id = ?"
        args.append(attempt_id)
        if expect is not None:
            sql += " AND outcome = ?"
            args.append(expect.value)
        changed = db.execute(sql, args).rowcount == 1
        if changed and outcome not in ACTIVE:
            db.execute("DELETE FROM locks WHERE attempt_id = ?", (attempt_id,))
        return changed

    def mark_reverted(self, db: sqlite3.Connection, attempt_id: int, now: float) -> None:
        db.execute("UPDATE fix_attempts SET reverted_at = ? WHERE id = ?", (now, attempt_id))

    def attempt_record(self, attempt_id: int) -> AttemptRecord | None:
        with self._lock:
            r = self.db.execute("SELECT * FROM fix_attempts WHERE id = ?", (attempt_id,)).fetchone()
        return None if r is None else _record(r)

    def unsettled_attempts(self) -> list[AttemptRecord]:
        """Attempts a crash left RUNNING or UNDOING: recovery settles them."""
        with self._lock:
            rows = self.db.execute(
                "SELECT * FROM fix_attempts WHERE outcome IN (?, ?) ORDER BY id",
                (Outcome.RUNNING.value, Outcome.UNDOING.value),
            ).fetchall()
        return [_record(r) for r in rows]

    def verifying_due(self, now: float) -> list[tuple[int, int]]:
        """(attempt, incident) of every fix whose verify window has passed."""
        with self._lock:
            rows = self.db.execute(
                "SELECT id, incident_id FROM fix_attempts WHERE outcome = ? AND verify_until <= ? ORDER BY id",
                (Outcome.VERIFYING.value, now),
            ).fetchall()
        return [(int(r[0]), int(r[1])) for r in rows]

    def reverts_due(self, now: float) -> list[AttemptRecord]:
        """Fixes whose ``revert_at`` has come and that were not reverted yet."""
        with self._lock:
            rows = self.db.execute(
                "SELECT * FROM fix_attempts WHERE revert_at <= ? AND reverted_at IS NULL AND outcome IN (?, ?)"
                " ORDER BY id",
                (now, Outcome.VERIFYING.value, Outcome.SUCCEEDED.value),
            ).fetchall()
        return [_record(r) for r in rows]

    def attempts(
        self, *, outcome: Sequence[str] = (), incident_id: int | None = None, limit: int = 50
    ) -> list[FixAttempt]:
        """Newest first; ``outcome`` takes ``Outcome`` members (plain strings until every caller moves)."""
        sql = "SELECT * FROM fix_attempts WHERE 1=1"
        args: list[Any] = []
        if outcome:
            sql += f" AND outcome IN ({','.join('?' * len(outcome))})"
            args.extend(str(o) for o in outcome)
        if incident_id is not None:
            sql += " AND incident_id = ?"
            args.append(incident_id)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            return [_attempt(r) for r in self.db.execute(sql, args).fetchall()]

    def attempt(self, attempt_id: int) -> FixAttempt | None:
        with self._lock:
            r = self.db.execute("SELECT * FROM fix_attempts WHERE id = ?", (attempt_id,)).fetchone()
        return None if r is None else _attempt(r)

    def active_attempt(self, db: sqlite3.Connection, incident_id: int) -> ActiveAttempt | None:
        r = db.execute(
            "SELECT id, outcome, verify_until, finished, actions FROM fix_attempts"
            " WHERE incident_id = ? AND outcome IN (?, ?, ?) ORDER BY id DESC LIMIT 1",
            (incident_id, *ACTIVE_OUTCOMES),
        ).fetchone()
        if r is None:
            return None
        return ActiveAttempt(
            int(r[0]),
            Outcome(r[1]),
            None if r[2] is None else float(r[2]),
            None if r[3] is None else float(r[3]),
            tuple(str(a) for a in json.loads(r[4] or "[]")),
        )

    def past_attempts(self, db: sqlite3.Connection, incident_id: int, limit: int = 10) -> list[PastAttempt]:
        """The incident's settled attempts, newest first."""
        rows = db.execute(
            "SELECT id, outcome, detail, finished FROM fix_attempts WHERE incident_id = ? AND outcome NOT IN (?, ?, ?)"
            " ORDER BY id DESC LIMIT ?",
            (incident_id, *ACTIVE_OUTCOMES, limit),
        ).fetchall()
        return [PastAttempt(int(r[0]), Outcome(r[1]), str(r[2]), None if r[3] is None else float(r[3])) for r in rows]

    def failed_since(self, db: sqlite3.Connection, since: float, limit: int = 5) -> list[tuple[int, int, str, str]]:
        """(attempt, incident, pattern, detail) of the fixes failed since ``since``, newest first: what tripped it."""
        rows = db.execute(
            "SELECT a.id, a.incident_id, i.pattern_id, a.detail FROM fix_attempts a JOIN incidents i"
            " ON i.id = a.incident_id WHERE a.finished >= ? AND a.outcome IN (?, ?, ?) ORDER BY a.id DESC LIMIT ?",
            (since, *FAILED_OUTCOMES, limit),
        ).fetchall()
        return [(int(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]

    def failures_since(self, db: sqlite3.Connection, since: float) -> int:
        r = db.execute(
            "SELECT count(*) FROM fix_attempts WHERE finished >= ? AND outcome IN (?, ?, ?)",
            (since, *FAILED_OUTCOMES),
        ).fetchone()
        return int(r[0])

    def held_locks(self) -> list[str]:
        """Targets a fix holds right now (``healer status`` and the tests read them)."""
        with self._lock:
            return [str(r[0]) for r in self.db.execute("SELECT target FROM locks ORDER BY target").fetchall()]

    def release_stale_locks(self) -> int:
        with self.tx() as db:
            return db.execute(
                "DELETE FROM locks WHERE attempt_id NOT IN (SELECT id FROM fix_attempts WHERE outcome IN (?, ?, ?))",
                ACTIVE_OUTCOMES,
            ).rowcount
