"""The audit trail, the small key/value state (the circuit breaker) and pruning events and audit.

Incidents are pruned by ``prune.py``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from healer.core.enums import AuditKind
from healer.store.connection import Database, to_json

_BREAKER_KEY = "breaker_open_until"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    ts: float
    kind: str  # an AuditKind value; str because an older healer may have written kinds since retired
    actor: str
    detail: Mapping[str, Any]


class Audit(Database):
    def audit(self, kind: AuditKind, actor: str, detail: Mapping[str, Any], now: float) -> None:
        with self.tx() as db:
            self.audit_in(db, kind, actor, detail, now)

    def audit_in(
        self, db: sqlite3.Connection, kind: AuditKind, actor: str, detail: Mapping[str, Any], now: float
    ) -> None:
        db.execute(
            "INSERT INTO audit (ts, kind, actor, detail) VALUES (?,?,?,?)", (now, str(kind), actor, to_json(detail))
        )

    def audit_entries(self, kind: AuditKind | None = None, limit: int = 100) -> list[AuditEntry]:
        """Newest first."""
        with self._lock:
            if kind is None:
                rows = self.db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            else:
                rows = self.db.execute(
                    "SELECT * FROM audit WHERE kind = ? ORDER BY id DESC LIMIT ?", (kind.value, limit)
                ).fetchall()
        return [AuditEntry(int(r["id"]), float(r["ts"]), r["kind"], r["actor"], json.loads(r["detail"])) for r in rows]

    def get_state(self, key: str) -> str | None:
        value = self._one("SELECT value FROM state WHERE key = ?", (key,))
        return None if value is None else str(value)

    def set_state(self, db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO state VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value)
        )

    def breaker_open_until(self) -> float | None:
        """When the circuit breaker closes again, or None if it was never opened."""
        until = self.get_state(_BREAKER_KEY)
        return None if until is None else float(until)

    def open_breaker(self, db: sqlite3.Connection, until: float) -> None:
        self.set_state(db, _BREAKER_KEY, str(until))

    def prune(self, now: float, retention_days: float, max_events: int) -> int:
        with self.tx() as db:
            n = db.execute("DELETE FROM events WHERE ts < ?", (now - retention_days * 86400,)).rowcount
            r = db.execute("SELECT count(*) FROM events").fetchone()
            excess = int(r[0]) - max_events
            if excess > 0:
                n += db.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?)", (excess,)
                ).rowcount
            old = now - max(retention_days, 30) * 86400
            db.execute("DELETE FROM audit WHERE ts < ?", (old,))
            return n
