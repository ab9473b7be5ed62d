"""State directory full, then read-only; database locked by another process; clock going backwards.

The ingest path (tailer -> engine -> store) must survive each fault, say what
is wrong a bounded number of times (not once per poll), and catch up with no
line lost or doubled once the fault clears.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from support.daemon import numbered_lines
from support.engine import chunk_sink, make_engine

from healer.core.clock import FakeClock
from healer.engine.engine import Engine
from healer.sources.tail import FileSpec, FileTailer

PATTERN = {"id": "fault-err", "regex": r"FAULT-ERR n=(?P<n>\d+)", "approval": "never", "group_by": []}


def _lines(path: Path, start: int, n: int) -> None:
    with path.open("a") as fh:
        for i in range(start, start + n):
            fh.write(f"ERROR FAULT-ERR n={i}\n")


def _recorded(engine: Engine) -> list[int]:
    return numbered_lines(engine.store.query("SELECT message, fields, count FROM events"), r"=(\d+)$")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mnt = tmp_path / "state"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {r.stderr.decode()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_state_dir_full_then_readonly_then_recovers(tmp_path: Path, small_tmpfs: Path) -> None:
    engine = make_engine(tmp_path, [PATTERN], clock=FakeClock())
    log = tmp_path / "app.log"
    log.write_text("")
    tailer = FileTailer([FileSpec(str(log), "app")], {}, chunk_sink(engine), clock=engine.clock.now)
    _lines(log, 0, 10)
    tailer.poll()
    assert _recorded(engine) == list(range(10))
    # Fill the state filesystem.
    filler = small_tmpfs / "filler"
    with filler.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    _lines(log, 10, 2000)
    with structlog.testing.capture_logs() as logs:
        for _ in range(20):
            tailer.poll()
    failures = [e for e in logs if e.get("log_level") in ("error", "exception", "warning")]
    print(f"disk full: 20 polls -> {len(failures)} warning/error log lines: {[e['event'] for e in failures][:5]}")
    assert len(failures) <= 2, [e["event"] for e in failures]
    # Read-only.
    filler.unlink()
    # The kernel refuses remount,ro while the open database has files open for writing (EBUSY);
    # when it does, the read-only phase is skipped (the daemon sees the same thing in production).
    ro = subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], capture_output=True)
    if ro.returncode == 0:
        _lines(log, 2010, 5)
        with structlog.testing.capture_logs() as logs:
            for _ in range(20):
                tailer.poll()
        failures = [e for e in logs if e.get("log_level") in ("error", "exception", "warning")]
        assert len(failures) <= 2, [e["event"] for e in failures]
        subprocess.run(["mount", "-o", "remount,rw", str(small_tmpfs)], check=True)
    else:
        print(f"read-only remount refused while the store is open: {ro.stderr.decode().strip()}")
        _lines(log, 2010, 5)
    tailer.poll()
    tailer.stop()
    assert _recorded(engine) == list(range(2015))
    assert engine.store.integrity_ok()


def test_database_locked_by_another_process(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, [PATTERN], clock=FakeClock())
    engine.store.db.execute("PRAGMA busy_timeout=200")
    log = tmp_path / "app.log"
    _lines(log, 0, 5)
    tailer = FileTailer([FileSpec(str(log), "app")], {}, chunk_sink(engine), clock=engine.clock.now)
    other = sqlite3.connect(str(tmp_path / "state" / "healer.db"), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            tailer.poll()
    other.execute("ROLLBACK")
    other.close()
    failures = [e for e in logs if e.get("log_level") in ("error", "exception", "warning")]
    print(f"db locked: 5 polls -> {len(failures)} warning/error log lines")
    assert len(failures) <= 2, [e["event"] for e in failures]
    tailer.poll()
    tailer.stop()
    assert _recorded(engine) == list(range(5))


def test_clock_jumping_backwards(tmp_path: Path) -> None:
    clock = FakeClock()
    pattern: dict[str, Any] = {
        **PATTERN,
        "approval": "auto",
        "remediation": [{"action": "command", "params": {"command": "ok"}}],
    }
    pattern["cooldown"] = 60
    engine = make_engine(tmp_path, [pattern], {"command": {"commands": {"ok": {"argv": ["true"]}}}}, clock=clock)
    engine.ingest_buffer(b"ERROR FAULT-ERR n=1\n", "app", "t")
    clock.advance(-3600)  # NTP step backwards by an hour
    res = engine.ingest_buffer(b"ERROR FAULT-ERR n=2\n", "app", "t")
    engine.finalize_due()
    clock.advance(7200)
    res = engine.ingest_buffer(b"ERROR FAULT-ERR n=3\n", "app", "t")
    assert res.decisions, "still deciding after the clock went back"
    assert engine.store.integrity_ok()
