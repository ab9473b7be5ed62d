"""The one daemon process harness: ``healer run`` as a real subprocess, and its store read from outside.

:class:`DaemonProcess` runs any config (torture, fault, bench-like and
Telegram end-to-end tests: pass ``env`` with the token and ``cwd``);
:class:`Daemon` also writes a config and patterns into a temp dir first.
Tests assert what a user would see (the store as the CLI reads it, the CLI's
output, the daemon's log), never internals.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from healer.core.enums import AuditKind
from healer.core.errors import StoreError
from healer.core.records import FixAttempt, Incident
from healer.store.audit import AuditEntry
from healer.store.db import Store

T = TypeVar("T")

HEALER = [sys.executable, "-m", "healer.cli"]


def write_yaml(path: Path, data: Any) -> Path:
    """Atomic, like an editor's save-by-rename, so the daemon never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)
    return path


write_config = write_yaml


def wait_for(cond: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``cond`` until it is truthy or ``timeout`` passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(interval)


def append(path: Path, *lines: str) -> None:
    with open(path, "a") as fh:
        for line in lines:
            fh.write(line + "\n")


def ro_query(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Read the daemon's store from outside, as the CLI does, without blocking it for long."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return list(con.execute(sql, args).fetchall())
    finally:
        con.close()


class StoreView:
    """The daemon's store read from outside through the typed ``Store`` API, read-only, as the CLI reads it.

    Empty while the store does not exist yet or is being created, so tests can poll it.
    """

    def __init__(self, db: Path) -> None:
        self.db = db

    def _read(self, fn: Callable[[Store], list[T]]) -> list[T]:
        if not self.db.exists():
            return []
        try:
            store = Store(self.db, readonly=True)
        except StoreError:
            return []
        try:
            return fn(store)
        except sqlite3.OperationalError:  # tables not created yet
            return []
        finally:
            store.close()

    def audit(self, kind: AuditKind) -> list[AuditEntry]:
        """Entries of ``kind``, newest first."""
        return self._read(lambda s: s.audit_entries(kind, limit=10_000))

    def attempts(self) -> list[FixAttempt]:
        """Fix attempts, newest first."""
        return self._read(lambda s: s.attempts(limit=10_000))

    def incidents(self) -> list[Incident]:
        """Incidents of any status, newest first."""
        return self._read(lambda s: s.incidents(limit=10_000))


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` after a kill (a read-write open replays the WAL, as restart does)."""
    con = sqlite3.connect(str(db), timeout=10)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


class DaemonProcess:
    """Start, signal, kill and restart ``healer -c config run``; its output goes to ``log``.

    Telegram stays off unless ``env`` brings ``HEALER_TELEGRAM_TOKEN``. With
    ``new_session`` the daemon leads its own process group, so :meth:`kill`
    takes its children (a running fix) with it, as systemd's
    ``KillMode=control-group`` does.
    """

    def __init__(
        self,
        config: Path,
        log: Path,
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        new_session: bool = True,
    ) -> None:
        self.config = config
        self.log = log
        base = {k: v for k, v in os.environ.items() if k != "HEALER_TELEGRAM_TOKEN"}
        self.env = {**base, "HEALER_TEST_NO_TOKEN": "", **(env or {})}
        self.cwd = cwd
        self.new_session = new_session
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [*HEALER, "-c", str(self.config), "run"],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=self.new_session,
            )
        self.starts += 1

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until this start's ``daemon_ready`` line is in the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_text().count("daemon_ready") >= self.starts:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"daemon not ready after {timeout}s:\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.new_session:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal (SIGTERM: a drain) and wait; SIGKILL after ``timeout``. Returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode or 0)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The ``healer`` CLI against the same config, as an operator runs it beside the daemon."""
        return subprocess.run(
            [*HEALER, "-c", str(self.config), *args], capture_output=True, text=True, timeout=60, env=self.env
        )


def numbered_lines(rows: list[sqlite3.Row], number: str = r"LINE (\d+)") -> list[int]:
    """The numbers (``number``'s group) of the lines that event ``rows`` (message, fields, count) account for, sorted.

    A storm's batch is stored as a sample (healer.engine.ingest.SAMPLE): its last row stands for itself and the
    ``elided`` lines just before it, which in a numbered stream are last-elided .. last-1; the row's ``count``
    must say the same (tests/torture/test_crash_rotation.py reads them alike). Duplicates are kept.
    """
    out: list[int] = []
    for r in rows:
        found = re.search(number, r["message"])
        assert found is not None, r["message"]
        num = int(found.group(1))
        elided = int(json.loads(r["fields"] or "{}").get("elided", "0"))
        assert r["count"] == elided + 1, dict(r)
        out.extend(range(num - elided, num + 1))
    return sorted(out)


def base_config(tmp: Path, **over: Any) -> dict[str, Any]:
    """A small config in ``tmp``: one glob of log files, test patterns, two commands, no Telegram."""
    (tmp / "logs").mkdir(exist_ok=True)
    (tmp / "patterns").mkdir(exist_ok=True)
    cfg: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "patterns_dirs": [str(tmp / "patterns")],
        "sources": {"files": [{"path": str(tmp / "logs" / "*.log"), "service": "app"}]},
        "engine": {"verify_window": 0.3, "fix_budget_per_hour": 100},
        "telegram": {"token_env": "HEALER_TEST_NO_TOKEN"},
        "actions": {"command": {"commands": {"ok": {"argv": ["true"]}, "fail": {"argv": ["false"]}}}},
    }
    cfg.update(over)
    return cfg


TEST_PATTERNS = {
    "patterns": [
        {
            "id": "boom",
            "severity": "high",
            "regex": r"BOOM (?P<what>[a-z]+)",
            "group_by": ["what"],
            "remediation": [{"action": "command", "params": {"command": "ok"}}],
            "threshold": 1,
            "cooldown": 0,
            "max_attempts": 5,
            "approval": "auto",
            "examples": ["ERROR BOOM disk"],
        },
        {
            "id": "numbered",
            "severity": "low",
            "regex": r"LINE (?P<n>[0-9]+)",
            "group_by": [],
            "approval": "never",
            "examples": ["LINE 1"],
        },
    ]
}


class Daemon(DaemonProcess):
    """A daemon over ``base_config``-style ``cfg`` written to ``tmp/config.yaml``, with test patterns."""

    def __init__(self, tmp: Path, cfg: dict[str, Any], patterns: dict[str, Any] | None = TEST_PATTERNS) -> None:
        self.tmp = tmp
        self.cfg = cfg
        self.config_path = write_yaml(tmp / "config.yaml", cfg)
        if patterns is not None:
            (tmp / "patterns").mkdir(exist_ok=True)
            (tmp / "patterns" / "test.yaml").write_text(yaml.safe_dump(patterns, sort_keys=False))
        self.db_path = Path(cfg["state_dir"]) / "healer.db"
        self.store = StoreView(self.db_path)
        super().__init__(self.config_path, tmp / "daemon.log", new_session=False)

    def start(self, env: Mapping[str, str] | None = None) -> Daemon:  # type: ignore[override]  # returns self to chain
        """Start and wait for this run's ``daemon_ready``."""
        self.env.update(env or {})
        super().start()
        self.wait_ready(15)
        return self

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Rows of the store, or none while it does not exist yet or is being created."""
        try:
            return ro_query(self.db_path, sql, args)
        except sqlite3.OperationalError:
            return []
