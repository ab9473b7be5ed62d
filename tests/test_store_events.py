"""The duplicate-delivery check finds a sender's id through its index, not by scanning every event."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from healer.store.db import Store
from healer.store.incidents import DUPLICATE_OF, SEEN


def test_duplicate_check_searches_the_partial_index(tmp_path: Path) -> None:
    Store(tmp_path / "healer.db").close()
    db = sqlite3.connect(tmp_path / "healer.db")
    try:
        for sql in (SEEN, DUPLICATE_OF):
            [plan] = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, ("webhook", "abc", "p"))]
            assert plan.startswith("SEARCH events USING") and "events_source_id" in plan, plan
    finally:
        db.close()
