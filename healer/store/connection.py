"""The SQLite connection every store module shares: open, migrate, transactions.

WAL mode, a schema version and forward migrations. One connection, guarded
by a lock, serves the daemon's worker threads; the CLI opens its own.

The state directory is created 0700 and the database files 0600 whatever
the umask: the store holds log lines, which may carry secrets. SQLite
creates ``-wal`` and ``-shm`` with the permissions of the database file,
so creating that file 0600 first covers all three.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from healer.core.errors import StoreError
from healer.store.schema import MIGRATIONS, SCHEMA_VERSION

Tx = sqlite3.Connection
"""The handle of an open transaction, as the engine passes it back to store methods (it never runs SQL on it)."""

DIR_MODE = 0o700
FILE_MODE = 0o600


def to_json(data: Any) -> str:
    return json.dumps(data, default=str, ensure_ascii=False, separators=(",", ":"))


def _private_files(path: Path) -> None:
    """Create the state dir 0700 and the database file 0600, regardless of the umask."""
    parent = path.parent
    if not parent.is_dir():
        parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(parent, DIR_MODE)  # mkdir's mode is filtered by the umask; chmod is not
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


class Database:
    """The connection, its lock, the migrations and the transaction helpers.

    A subclass over another file (the outbox's) names its own ``migrations`` and ``schema_version``."""

    migrations: dict[int, str] = MIGRATIONS
    schema_version: int = SCHEMA_VERSION

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            if not readonly:
                _private_files(path)
            uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA busy_timeout=10000")
            if not readonly:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from None
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the state directory: {exc.strerror}") from None

    def _migrate(self) -> None:
        with self.tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            current = row[0] if row else 0
            latest = self.schema_version
            if current > latest:
                raise StoreError(f"{self.path}: schema version {current} is newer than this healer ({latest}); upgrade")
            for version in range(current + 1, latest + 1):
                for stmt in self.migrations[version].split(";"):
                    if stmt.strip():
                        db.execute(stmt)
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (?)", (latest,))
            else:
                db.execute("UPDATE schema_version SET version = ?", (latest,))

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full, I/O error) must not leave the
                # connection inside a transaction, or every later BEGIN fails.
                if self.db.in_transaction:
                    with suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                raise

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for read-only queries (``store/reads.py``), under the store's lock."""
        with self._lock:
            yield self.db

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """DEPRECATED: raw SQL for callers outside the store, kept only until they use the typed methods.

        Remaining callers at the time of the split: ``service/daemon.py``
        (``count_open_incidents``), ``app/reports.py`` (``store/reads.py``),
        ``cli.py``. Nothing in the store or the engine uses it.
        """
        with self._lock:
            return list(self.db.execute(sql, args).fetchall())

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None: for the store's own small reads."""
        with self._lock:
            row = self.db.execute(sql, args).fetchone()
            return None if row is None else row[0]

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def integrity_ok(self) -> bool:
        return bool(self._one("PRAGMA integrity_check") == "ok")
