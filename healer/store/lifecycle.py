"""Pattern lifecycle: the operator's mode overrides, "not this" marks, and each pattern's figures.

A mode override lives in the ``state`` table of the store in ``state_dir``,
not in the pattern file: the bundled files are replaced by every upgrade (and
read-only under the unit's ``ProtectSystem=strict``), the daemon re-reads the
store at every decision (so a ``healer patterns promote`` from the shell takes
effect at the next match, with no reload), and the override and its audit
entry commit in one transaction. A "not this" mark is an audit entry of kind
``marked_wrong``, counted once per incident.

The figures are read from what the store keeps (incidents, decisions, fix
attempts, audit), so they cover the retained history: incidents pruned by
``engine.event_retention_days`` / ``max_incidents`` leave the figures with them.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field, replace

from healer.core.enums import ApprovalState, AuditKind, Outcome, PatternMode, Reason, Verdict
from healer.core.records import RECURRED
from healer.store.connection import Database, to_json

_MODE_KEY = "pattern_mode:"
# What a shadow decision's detail starts with when the pattern would have run (or asked for) its fix.
WOULD_FIX = ("would act", "would ask")
_UNDONE = (Outcome.ROLLED_BACK.value, Outcome.ROLLBACK_FAILED.value)


@dataclass(frozen=True, slots=True)
class ModeOverride:
    pattern_id: str
    mode: PatternMode
    actor: str
    ts: float
    why: str = ""


@dataclass(frozen=True, slots=True)
class PatternFigures:
    """One pattern's record from real traffic (every count is over the retained history)."""

    matches: int = 0
    incidents: int = 0
    would_fix: int = 0  # incidents a shadow (or dry-run) decision said it would have fixed (act or ask)
    attempted: int = 0
    held: int = 0  # succeeded: held through the verify window
    undone: int = 0  # rolled back (failed, or did not hold), or reverted
    rejected: int = 0  # approvals an operator rejected
    wrong: int = 0  # incidents an operator marked "not this"


@dataclass
class _Tally:
    figures: dict[str, PatternFigures] = field(default_factory=lambda: defaultdict(PatternFigures))

    def add(self, pattern_id: str, **counts: int) -> None:
        f = self.figures[pattern_id]
        self.figures[pattern_id] = replace(f, **{k: getattr(f, k) + v for k, v in counts.items()})


class Lifecycle(Database):
    # -- modes ----------------------------------------------------------------------------
    def mode_override(self, db: sqlite3.Connection, pattern_id: str) -> PatternMode | None:
        """The operator's mode for ``pattern_id``, read in the caller's transaction (None: the file decides)."""
        r = db.execute("SELECT value FROM state WHERE key = ?", (_MODE_KEY + pattern_id,)).fetchone()
        return None if r is None else PatternMode(json.loads(r[0])["mode"])

    def mode_overrides(self) -> dict[str, ModeOverride]:
        with self._lock:
            rows = self.db.execute(
                "SELECT key, value FROM state WHERE key LIKE ? ESCAPE '\\'", (_MODE_KEY.replace("_", "\\_") + "%",)
            ).fetchall()
        out = {}
        for key, raw in rows:
            pid = str(key)[len(_MODE_KEY) :]
            d = json.loads(raw)
            out[pid] = ModeOverride(pid, PatternMode(d["mode"]), str(d["actor"]), float(d["ts"]), str(d.get("why", "")))
        return out

    def set_mode(self, pattern_id: str, mode: PatternMode, was: PatternMode, actor: str, why: str, now: float) -> None:
        """Record the override and its audit entry together."""
        value = to_json({"mode": mode.value, "actor": actor, "ts": now, "why": why})
        detail = {"pattern": pattern_id, "mode": mode.value, "was": was.value, "why": why}
        with self.tx() as db:
            db.execute(
                "INSERT INTO state VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (_MODE_KEY + pattern_id, value),
            )
            db.execute(
                "INSERT INTO audit (ts, kind, actor, detail) VALUES (?,?,?,?)",
                (now, AuditKind.PATTERN_MODE.value, actor, to_json(detail)),
            )

    # -- "not this" -----------------------------------------------------------------------
    def mark_wrong(self, incident_id: int, pattern_id: str, actor: str, now: float) -> bool:
        """Mark the incident's match wrong; False when it was marked already (counted once)."""
        detail = {"incident": incident_id, "pattern": pattern_id}
        with self.tx() as db:
            seen = db.execute(
                "SELECT 1 FROM audit WHERE kind = ? AND json_extract(detail, '$.incident') = ?",
                (AuditKind.MARKED_WRONG.value, incident_id),
            ).fetchone()
            if seen is not None:
                return False
            db.execute(
                "INSERT INTO audit (ts, kind, actor, detail) VALUES (?,?,?,?)",
                (now, AuditKind.MARKED_WRONG.value, actor, to_json(detail)),
            )
        return True

    # -- figures ----------------------------------------------------------------------------
    def pattern_figures(self) -> dict[str, PatternFigures]:
        t = _Tally()
        with self._lock:
            db = self.db
            for pid, n, total in db.execute("SELECT pattern_id, count(*), sum(count) FROM incidents GROUP BY 1"):
                t.add(pid, incidents=int(n), matches=int(total or 0))
            for pid, outcome, reverted, n in db.execute(
                "SELECT i.pattern_id, a.outcome, a.reverted_at IS NOT NULL OR a.detail LIKE ?, count(*)"
                " FROM fix_attempts a JOIN incidents i ON i.id = a.incident_id GROUP BY 1, 2, 3",
                (RECURRED + "%",),
            ):
                # Undone: rolled back, reverted, or it did not hold (the incident came back in the verify window).
                undone = outcome in _UNDONE or bool(reverted)
                t.add(pid, attempted=int(n), held=int(n) if outcome == Outcome.SUCCEEDED.value else 0)
                t.add(pid, undone=int(n) if undone else 0)
            for pid, n in db.execute(
                "SELECT pattern_id, count(*) FROM decisions WHERE verdict = ? AND state = ? GROUP BY 1",
                (Verdict.ASK.value, ApprovalState.REJECTED.value),
            ):
                t.add(pid, rejected=int(n))
            # Would have fixed: a shadow decision that would act or ask, or a dry run's (``healer replay``).
            for pid, n in db.execute(
                "SELECT pattern_id, count(DISTINCT incident_id) FROM decisions WHERE (reason = ?"
                " AND (detail LIKE ? OR detail LIKE ?)) OR (reason = ? AND detail LIKE ?) GROUP BY 1",
                (Reason.SHADOW.value, *(w + "%" for w in WOULD_FIX), Reason.DRY_RUN.value, "would run%"),
            ):
                t.add(pid, would_fix=int(n))
            for pid, n in db.execute(
                "SELECT json_extract(detail, '$.pattern'), count(DISTINCT json_extract(detail, '$.incident'))"
                " FROM audit WHERE kind = ? GROUP BY 1",
                (AuditKind.MARKED_WRONG.value,),
            ):
                t.add(str(pid), wrong=int(n))
        return dict(t.figures)


__all__ = ["WOULD_FIX", "Lifecycle", "ModeOverride", "PatternFigures"]
