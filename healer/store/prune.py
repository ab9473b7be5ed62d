"""Pruning incidents: what keeps the store bounded however many distinct lines arrive.

A hostile or broken source can make every line a new incident (1M distinct
notify-only lines gave 1M open incidents and 1M decisions, a 635 MB store,
issue 19 #9). Two rules bound that:

* retention: an incident nobody can still act on, settled (fixed, resolved)
  or notify-only (open, never a fix, never asked), goes with its decisions,
  attempts and events once its last sighting is older than the horizon;
* a cap like ``max_events``: beyond ``max_incidents`` the oldest go, settled
  and notify-only first, then the rest by last sighting.

Neither ever removes an incident with an active fix attempt (its target is
locked, its undo stack lives in the attempt) or a pending approval (a button
in someone's chat still points at it).
"""

from __future__ import annotations

import sqlite3

from healer.core.enums import ApprovalState, IncidentStatus, Verdict
from healer.store.attempts import ACTIVE_OUTCOMES
from healer.store.connection import Database

DEFAULT_MAX_INCIDENTS = 50_000
_SETTLED = (IncidentStatus.FIXED.value, IncidentStatus.RESOLVED.value)
_ACTED = (Verdict.ACT.value, Verdict.ASK.value, Verdict.ESCALATE.value)

# Each fragment is constant SQL over the alias ``i`` (incidents); values are bound, never formatted.
_PROTECTED = (
    "(EXISTS (SELECT 1 FROM fix_attempts a WHERE a.incident_id = i.id AND a.outcome IN (?, ?, ?))"
    " OR EXISTS (SELECT 1 FROM decisions d WHERE d.incident_id = i.id AND d.state = ?"
    " AND (d.expires_at IS NULL OR d.expires_at > ?)))"
)
_DISPOSABLE = (
    "(i.status IN (?, ?) OR (i.status = ?"
    " AND NOT EXISTS (SELECT 1 FROM fix_attempts a WHERE a.incident_id = i.id)"
    " AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.incident_id = i.id AND d.verdict IN (?, ?, ?))))"
)
_RETIRED = f"SELECT i.id FROM incidents i WHERE i.last_seen < ? AND {_DISPOSABLE} AND NOT {_PROTECTED}"  # noqa: S608 -- constant SQL
_OLDEST = (
    f"SELECT i.id FROM incidents i WHERE NOT {_PROTECTED}"  # noqa: S608 -- constant SQL
    f" ORDER BY CASE WHEN {_DISPOSABLE} THEN 0 ELSE 1 END, i.last_seen, i.id LIMIT ?"
)
_CHILDREN = ("events", "decisions", "fix_attempts", "incident_sources")


class Pruning(Database):
    def prune_incidents(self, now: float, retention_days: float, max_incidents: int = DEFAULT_MAX_INCIDENTS) -> int:
        """Delete retired incidents, then the oldest beyond ``max_incidents``; returns how many went.

        The horizon is the audit trail's (at least 30 days), so an incident's
        story stays readable as long as the audit entries that mention it.
        """
        old = now - max(retention_days, 30) * 86400
        protected = (*ACTIVE_OUTCOMES, ApprovalState.PENDING.value, now)
        disposable = (*_SETTLED, IncidentStatus.OPEN.value, *_ACTED)
        with self.tx() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY)")
            db.execute("DELETE FROM doomed")
            db.execute(f"INSERT INTO doomed {_RETIRED}", (old, *disposable, *protected))
            kept = int(db.execute("SELECT count(*) FROM incidents").fetchone()[0]) - self._doomed(db)
            if kept > max_incidents:
                db.execute(
                    f"INSERT OR IGNORE INTO doomed {_OLDEST}",
                    (*protected, *disposable, kept - max_incidents + self._doomed(db)),
                )
            for table in _CHILDREN:
                db.execute(f"DELETE FROM {table} WHERE incident_id IN (SELECT id FROM doomed)")  # noqa: S608 -- constant
            n = db.execute("DELETE FROM incidents WHERE id IN (SELECT id FROM doomed)").rowcount
            db.execute("DELETE FROM doomed")
            return int(n)

    @staticmethod
    def _doomed(db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT count(*) FROM doomed").fetchone()[0])
