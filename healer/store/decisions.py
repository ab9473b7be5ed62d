"""Decisions and the approvals some of them wait for.

The ``state`` column is the one place ``ApprovalState`` meets its strings:
everything above the store sees the enum.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from healer.core.enums import ApprovalState, Reason, SettleStatus, Trigger, Verdict
from healer.core.records import Decision
from healer.store.connection import Database


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """An ``ask`` decision that was just approved or rejected, with what its fix needs."""

    decision: Decision
    state: ApprovalState
    groups: Mapping[str, str] = field(default_factory=dict)
    service: str = ""


def _decision(r: sqlite3.Row) -> Decision:
    return Decision(
        int(r["id"]),
        int(r["incident_id"]),
        r["pattern_id"],
        Verdict(r["verdict"]),
        Reason(r["reason"]),
        float(r["ts"]),
        r["detail"],
    )


@dataclass(frozen=True, slots=True)
class Rehearsals:
    """A dry run's would-be fixes, read as the guardrails read real ones (``engine.guardrails.with_rehearsals``)."""

    last_run: float | None  # the incident's newest fix that would have started
    runs_since: int  # fixes that would have started since the budget's hour began, on any incident
    asked: bool  # the incident would have a question still waiting


_WOULD_START = (Reason.DRY_RUN.value, Reason.DRY_RUN_REFUSED.value)


class Decisions(Database):
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
        repeats: int = 1,
    ) -> tuple[Decision, bool]:
        """Insert a decision, or count a repeat of the incident's last one.

        A storm of 1M lines on one incident gives one decision row with a
        count of 1M, not 1M rows; every decision is still recorded.
        ``repeats`` is how many matches this one decision covers.
        Returns the decision and whether it is new.
        """
        if collapse and verdict in (Verdict.SKIP, Verdict.NOTIFY):
            last = db.execute(
                "SELECT id, verdict, reason FROM decisions WHERE incident_id = ? ORDER BY id DESC LIMIT 1",
                (incident_id,),
            ).fetchone()
            if last is not None and last["verdict"] == verdict.value and last["reason"] == reason.value:
                db.execute(
                    "UPDATE decisions SET count = count + ?, last_ts = ?, detail = ? WHERE id = ?",
                    (repeats, now, detail, last["id"]),
                )
                return Decision(int(last["id"]), incident_id, pattern_id, verdict, reason, now, detail), False
        state = ApprovalState.PENDING if verdict is Verdict.ASK else ApprovalState.NONE
        did = db.execute(
            "INSERT INTO decisions (ts, last_ts, count, incident_id, pattern_id, verdict, reason, detail, state,"
            " expires_at, trigger) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (now, now, repeats, incident_id, pattern_id, verdict.value, reason.value, detail, state.value,
             expires_at, trigger.value),
        ).lastrowid  # fmt: skip
        assert did is not None
        return Decision(did, incident_id, pattern_id, verdict, reason, now, detail), True

    def set_approval_context(
        self, db: sqlite3.Connection, decision_id: int, groups: Mapping[str, str], service: str, detail: str
    ) -> None:
        """What the fix needs once approved: the captured groups (re-validated by the action then)."""
        db.execute(
            "UPDATE decisions SET context = ?, detail = ? WHERE id = ?",
            (json.dumps({"groups": dict(groups), "service": service}), detail, decision_id),
        )

    def set_decided_by(self, db: sqlite3.Connection, decision_id: int, actor: str) -> None:
        db.execute("UPDATE decisions SET decided_by = ? WHERE id = ?", (actor, decision_id))

    def pending_approval(self, db: sqlite3.Connection, incident_id: int, now: float) -> bool:
        r = db.execute(
            "SELECT 1 FROM decisions WHERE incident_id = ? AND state = ? AND (expires_at IS NULL"
            " OR expires_at > ?) LIMIT 1",
            (incident_id, ApprovalState.PENDING.value, now),
        ).fetchone()
        return r is not None

    def take_approval(
        self, decision_id: int, approve: bool, actor: str, now: float
    ) -> tuple[SettleStatus, PendingApproval | None]:
        """Settle a pending approval once: OK, EXPIRED, DONE (already settled) or MISSING."""
        with self.tx() as db:
            row = db.execute("SELECT * FROM decisions WHERE id = ?", (decision_id,)).fetchone()
            if row is None or row["verdict"] != Verdict.ASK.value:
                return SettleStatus.MISSING, None
            ctx = json.loads(row["context"] or "{}")
            state = ApprovalState(row["state"])
            taken = PendingApproval(_decision(row), state, dict(ctx.get("groups", {})), str(ctx.get("service", "")))
            if state is not ApprovalState.PENDING:
                return SettleStatus.DONE, taken
            if row["expires_at"] is not None and row["expires_at"] <= now:
                db.execute("UPDATE decisions SET state = ? WHERE id = ?", (ApprovalState.EXPIRED.value, decision_id))
                return SettleStatus.EXPIRED, taken
            new_state = ApprovalState.APPROVED if approve else ApprovalState.REJECTED
            cur = db.execute(
                "UPDATE decisions SET state = ?, decided_by = ? WHERE id = ? AND state = ?",
                (new_state.value, actor, decision_id, ApprovalState.PENDING.value),
            )
            if cur.rowcount != 1:
                return SettleStatus.DONE, taken
            return SettleStatus.OK, PendingApproval(taken.decision, new_state, taken.groups, taken.service)

    def expire_approvals(self, now: float) -> list[tuple[Decision, str]]:
        """Pending questions whose ``approval_ttl`` ran out: marked expired, returned once with their service."""
        with self.tx() as db:
            rows = db.execute(
                "SELECT * FROM decisions WHERE verdict = ? AND state = ?"
                " AND expires_at IS NOT NULL AND expires_at <= ?",
                (Verdict.ASK.value, ApprovalState.PENDING.value, now),
            ).fetchall()
            for r in rows:
                db.execute("UPDATE decisions SET state = ? WHERE id = ?", (ApprovalState.EXPIRED.value, r["id"]))
        return [(_decision(r), str(json.loads(r["context"] or "{}").get("service", ""))) for r in rows]

    def approval_state(self, decision_id: int) -> ApprovalState | None:
        value = self._one("SELECT state FROM decisions WHERE id = ?", (decision_id,))
        return None if value is None else ApprovalState(value)

    def mark_busy(self, decision_id: int, targets: Sequence[str]) -> None:
        """An ACT whose target was locked never ran: it must not use up the hourly budget."""
        with self.tx() as db:
            db.execute(
                "UPDATE decisions SET state = ?, detail = ? WHERE id = ?",
                (ApprovalState.BUSY.value, f"not started: target busy ({', '.join(targets)})", decision_id),
            )

    def rehearsals(self, db: sqlite3.Connection, incident_id: int, since: float, asked_since: float) -> Rehearsals:
        skip = Verdict.SKIP.value
        last = db.execute(
            "SELECT max(ts) FROM decisions WHERE incident_id = ? AND verdict = ? AND reason IN (?, ?)",
            (incident_id, skip, *_WOULD_START),
        ).fetchone()[0]
        runs = db.execute(
            "SELECT count(*) FROM decisions WHERE ts >= ? AND verdict = ? AND reason IN (?, ?)",
            (since, skip, *_WOULD_START),
        ).fetchone()[0]
        asked = db.execute(
            "SELECT 1 FROM decisions WHERE incident_id = ? AND verdict = ? AND reason = ? AND ts > ? LIMIT 1",
            (incident_id, skip, Reason.DRY_RUN_ASK.value, asked_since),
        ).fetchone()
        return Rehearsals(None if last is None else float(last), int(runs), asked is not None)

    def refuse_rehearsal(self, decision_id: int, detail: str) -> None:
        """A dry run's fix whose action's own check refused it: say so instead of "would run"."""
        with self.tx() as db:
            db.execute(
                "UPDATE decisions SET reason = ?, detail = ? WHERE id = ?",
                (Reason.DRY_RUN_REFUSED.value, detail, decision_id),
            )

    def acts_since(self, db: sqlite3.Connection, since: float) -> int:
        """Fixes decided (not only started) since ``since``: the budget must hold within one batch too."""
        r = db.execute(
            "SELECT count(*) FROM decisions WHERE ts >= ? AND verdict = ? AND state NOT IN (?, ?)",
            (since, Verdict.ACT.value, ApprovalState.BUSY.value, ApprovalState.BLOCKED.value),
        ).fetchone()
        return int(r[0])

    def last_decision(self, incident_id: int) -> Decision | None:
        found = self.decisions(incident_id, limit=1)
        return found[0] if found else None

    def decisions(self, incident_id: int | None = None, limit: int = 50) -> list[Decision]:
        with self._lock:
            if incident_id is None:
                rows = self.db.execute("SELECT * FROM decisions ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            else:
                rows = self.db.execute(
                    "SELECT * FROM decisions WHERE incident_id = ? ORDER BY id DESC LIMIT ?", (incident_id, limit)
                ).fetchall()
        return [_decision(r) for r in rows]

    def decision_counts(self) -> list[tuple[Decision, int]]:
        """Every decision, oldest first, with how many matches it covers (a storm collapses into one)."""
        with self._lock:
            rows = self.db.execute("SELECT * FROM decisions ORDER BY id").fetchall()
        return [(_decision(r), int(r["count"])) for r in rows]
