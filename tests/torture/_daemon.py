"""A real ``healer run`` subprocess for the torture and fault tests, and store helpers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

HEALER = [sys.executable, "-m", "healer.cli"]


def write_yaml(path: Path, data: Any) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)
    return path


class DaemonProc:
    """Start, kill and restart ``healer run -c cfg``; its output goes to ``log``."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        self.env = {**os.environ, "HEALER_TEST_NO_TOKEN": "", **(env or {})}
        self.env.pop("HEALER_TELEGRAM_TOKEN", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            [*HEALER, "-c", str(self.config), "run"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        fh.close()
        self.starts += 1

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until this start's ``daemon_ready`` line is in the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.read_text(errors="replace").count("daemon_ready") >= self.starts:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"daemon not ready after {timeout}s:\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        # Its children (a running fix's process) die with it, as under systemd's KillMode=control-group.
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode or 0)

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def ro_query(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the daemon's store from outside, as the CLI does, without blocking it for long."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return list(con.execute(sql, args).fetchall())
    finally:
        con.close()


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` after a kill (a read-write open replays the WAL, as restart does)."""
    con = sqlite3.connect(str(db), timeout=10)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()
