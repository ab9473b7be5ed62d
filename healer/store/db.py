"""The SQLite store: one ``Store`` object, composed of one module per aggregate.

- ``connection.py``: the connection, its lock, transactions, migrations (``schema.py``)
- ``offsets.py``: file offsets and journald cursors
- ``incidents.py``: events and incidents
- ``decisions.py``: decisions and approvals (``ApprovalState``)
- ``attempts.py``: fix attempts, undo checkpoints and target locks
- ``audit.py``: the audit trail, breaker state, pruning events
- ``prune.py``: pruning incidents (retention and the ``max_incidents`` cap)
- ``reads.py``: read models for reports
- ``lifecycle.py``: pattern mode overrides, "not this" marks, per-pattern figures

Every method returns frozen records, never ``sqlite3.Row`` (two deprecated
methods, ``query`` and ``offsets``, remain until their last callers move).
Only this package imports ``sqlite3``.
"""

from __future__ import annotations

from healer.store.attempts import ActiveAttempt, AttemptRecord, Attempts, PastAttempt
from healer.store.audit import Audit, AuditEntry
from healer.store.blocked import Blocked, BlockedFix, CheckRecord
from healer.store.connection import Tx
from healer.store.decisions import Decisions, PendingApproval
from healer.store.incidents import EventRow, IncidentFacts, Incidents, Recorded
from healer.store.lifecycle import Lifecycle, ModeOverride, PatternFigures
from healer.store.offsets import Offsets
from healer.store.prune import Pruning
from healer.store.schema import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "ActiveAttempt",
    "AttemptRecord",
    "AuditEntry",
    "BlockedFix",
    "CheckRecord",
    "EventRow",
    "IncidentFacts",
    "ModeOverride",
    "PastAttempt",
    "PatternFigures",
    "PendingApproval",
    "Recorded",
    "Store",
    "Tx",
]


class Store(Offsets, Incidents, Decisions, Blocked, Attempts, Audit, Pruning, Lifecycle):
    """The one entry point to the store; each base class is one aggregate over the shared connection."""
