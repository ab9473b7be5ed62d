"""The bot's outgoing queue on disk, so a restart during a Telegram outage loses no notice.

Its own SQLite file beside ``healer.db`` (``outbox.db`` in the state dir), on
purpose: the outbox is written on the event loop for every notice and must
never wait for the ingest thread's transaction on the main store, and a
queue of chat messages needs none of the main schema's migrations.

A row is a message not yet confirmed by Telegram. It is deleted only after
Telegram answered OK (:meth:`OutboxStore.sent`), in the transaction that
remembers where an approval message landed (so a later Approve from the CLI
can edit it and drop its buttons). ``inflight`` is set while a send is
awaited and cleared when Telegram answered with an error: a row still
``inflight`` at start-up is one whose send the process did not see end.
Telegram may or may not have shown it; it is sent again, marked as a
possible repeat (see the README: at-least-once, and the only repeat is that
one message).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from healer.core.errors import StoreError
from healer.store.connection import Database

T = TypeVar("T")
APPROVAL_MEMORY = 7 * 86400.0  # an approval message older than this is no longer edited

OUTBOX_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, lane TEXT NOT NULL, chat_id INTEGER NOT NULL,
        text TEXT NOT NULL, markup TEXT NOT NULL DEFAULT '', decision_id INTEGER,
        tries INTEGER NOT NULL DEFAULT 0, inflight INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX outbox_lane ON outbox(lane, id);
    CREATE TABLE approval_messages (
        decision_id INTEGER NOT NULL, chat_id INTEGER NOT NULL, message_id INTEGER NOT NULL,
        text TEXT NOT NULL, ts REAL NOT NULL, PRIMARY KEY (decision_id, chat_id, message_id));
    """,
}


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: int
    lane: str
    chat_id: int
    text: str
    markup: str  # the reply markup as JSON, '' for none
    decision_id: int | None
    tries: int
    inflight: bool  # a send was under way when the process stopped


@dataclass(frozen=True, slots=True)
class ApprovalMessage:
    decision_id: int
    chat_id: int
    message_id: int
    text: str  # the HTML that was sent


class OutboxStore(Database):
    migrations = OUTBOX_MIGRATIONS
    schema_version = 1

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:  # busy, full disk: the caller keeps the message in memory
            raise StoreError(f"{self.path}: {exc}") from None

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._guard(), self.tx() as db:
            return fn(db)

    def add(self, lane: str, chat_id: int, text: str, markup: str, decision_id: int | None, now: float) -> int:
        def insert(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO outbox (ts, lane, chat_id, text, markup, decision_id) VALUES (?,?,?,?,?,?)",
                (now, lane, chat_id, text, markup, decision_id),
            )
            return int(cur.lastrowid or 0)

        return self._run(insert)

    def pending(self) -> list[QueuedMessage]:
        """Every unsent message, oldest first."""
        with self._guard(), self.reading() as db:
            rows = db.execute("SELECT * FROM outbox ORDER BY id").fetchall()
        return [
            QueuedMessage(
                int(r["id"]), r["lane"], int(r["chat_id"]), r["text"], r["markup"],
                None if r["decision_id"] is None else int(r["decision_id"]), int(r["tries"]), bool(r["inflight"]),
            )
            for r in rows
        ]  # fmt: skip

    def trying(self, row: int) -> None:
        self._run(lambda db: db.execute("UPDATE outbox SET inflight = 1, tries = tries + 1 WHERE id = ?", (row,)))

    def failed(self, row: int) -> None:
        """Telegram answered with an error: the message is known not to be shown; it stays queued."""
        self._run(lambda db: db.execute("UPDATE outbox SET inflight = 0 WHERE id = ?", (row,)))

    def drop(self, row: int) -> None:
        """Given up (refused for good, or pushed out of the bounded lane)."""
        self._run(lambda db: db.execute("DELETE FROM outbox WHERE id = ?", (row,)))

    def sent(self, row: int, message_id: int | None, now: float) -> None:
        """Telegram said OK: forget the row; remember an approval message's place to edit it later."""

        def mark(db: sqlite3.Connection) -> None:
            got = db.execute("SELECT chat_id, text, decision_id FROM outbox WHERE id = ?", (row,)).fetchone()
            db.execute("DELETE FROM outbox WHERE id = ?", (row,))
            if got is not None and got["decision_id"] is not None and message_id is not None:
                db.execute(
                    "INSERT OR REPLACE INTO approval_messages VALUES (?,?,?,?,?)",
                    (int(got["decision_id"]), int(got["chat_id"]), message_id, got["text"], now),
                )
                db.execute("DELETE FROM approval_messages WHERE ts < ?", (now - APPROVAL_MEMORY,))

        self._run(mark)

    def approval_messages(self, decision_id: int) -> list[ApprovalMessage]:
        with self._guard(), self.reading() as db:
            rows = db.execute(
                "SELECT * FROM approval_messages WHERE decision_id = ? ORDER BY message_id", (decision_id,)
            ).fetchall()
        return [
            ApprovalMessage(int(r["decision_id"]), int(r["chat_id"]), int(r["message_id"]), r["text"]) for r in rows
        ]

    def forget_approval(self, decision_id: int) -> None:
        self._run(lambda db: db.execute("DELETE FROM approval_messages WHERE decision_id = ?", (decision_id,)))
