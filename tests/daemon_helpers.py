"""Run ``healer run`` as a real subprocess against a temp config, and read its store.

Shared by the end-to-end tests: they assert what a user would see (rows in
the SQLite store, the CLI's output), never internals.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

HEALER = [sys.executable, "-m", "healer.cli"]


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    """Atomic, like an editor's save-by-rename, so the daemon never reads half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
    os.replace(tmp, path)
    return path


def base_config(tmp: Path, **over: Any) -> dict[str, Any]:
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
    for k, v in over.items():
        cfg[k] = v
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


class Daemon:
    def __init__(self, tmp: Path, cfg: dict[str, Any], patterns: dict[str, Any] | None = TEST_PATTERNS) -> None:
        self.tmp = tmp
        self.cfg = cfg
        self.config_path = tmp / "config.yaml"
        write_config(self.config_path, cfg)
        if patterns is not None:
            (tmp / "patterns" / "test.yaml").write_text(yaml.safe_dump(patterns, sort_keys=False))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / "daemon.log"
        self.db_path = Path(cfg["state_dir"]) / "healer.db"

    def start(self, env: dict[str, str] | None = None) -> Daemon:
        full_env = {**os.environ, **(env or {})}
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        since = self.log_path.stat().st_size  # a restart must wait for *this* run's daemon_ready
        self.proc = subprocess.Popen(
            [*HEALER, "run", "-c", str(self.config_path)], stdout=self._log, stderr=subprocess.STDOUT, env=full_env
        )
        wait_for(lambda: b"daemon_ready" in self.log_path.read_bytes()[since:] or self.proc.poll() is not None, 15)  # type: ignore[union-attr]
        assert self.proc.poll() is None, self.log_text()
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._log.close()
        return rc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if not self.db_path.exists():
            return []
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        db.row_factory = sqlite3.Row
        try:
            return list(db.execute(sql, args).fetchall())
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*HEALER, "-c", str(self.config_path), *args], capture_output=True, text=True, timeout=60)


def wait_for(cond: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            return got
        time.sleep(interval)


def append(path: Path, *lines: str) -> None:
    with open(path, "a") as fh:
        for line in lines:
            fh.write(line + "\n")
