"""Where each source resumes: file offsets and journald cursors.

Written in the same transaction as the events the lines produced (the
engine passes its transaction's connection), which is what makes "no line
lost, none twice" hold across a SIGKILL.
"""

from __future__ import annotations

import sqlite3

from healer.core.batch import Offset
from healer.store.connection import Database


class Offsets(Database):
    def saved_offsets(self) -> dict[str, Offset]:
        """Every followed path's last committed offset, keyed by path."""
        with self._lock:
            rows = self.db.execute("SELECT path, inode, dev, position, head_hash FROM offsets").fetchall()
        return {r[0]: Offset(str(r[0]), int(r[1]), int(r[2]), int(r[3]), str(r[4])) for r in rows}

    def offsets(self) -> list[sqlite3.Row]:
        """DEPRECATED (rows): ``service/daemon.py`` reads it until it switches to ``saved_offsets()``."""
        with self._lock:
            return list(self.db.execute("SELECT * FROM offsets").fetchall())

    def save_offset(
        self, db: sqlite3.Connection, path: str, inode: int, dev: int, pos: int, head: str, now: float
    ) -> None:
        db.execute(
            "INSERT INTO offsets VALUES (?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET inode=excluded.inode,"
            " dev=excluded.dev, position=excluded.position, head_hash=excluded.head_hash, updated=excluded.updated",
            (path, inode, dev, pos, head, now),
        )

    def cursor(self, source: str) -> str | None:
        value = self._one("SELECT cursor FROM cursors WHERE source = ?", (source,))
        return None if value is None else str(value)

    def save_cursor(self, db: sqlite3.Connection, source: str, cursor: str, now: float) -> None:
        db.execute(
            "INSERT INTO cursors VALUES (?,?,?) ON CONFLICT(source) DO UPDATE SET cursor=excluded.cursor,"
            " updated=excluded.updated",
            (source, cursor, now),
        )
