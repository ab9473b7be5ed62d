"""journald source against a real journal file.

The machine running the tests has no systemd as PID 1, so we build a journal
file ourselves: entries in journal export format piped into
``systemd-journal-remote --output=FILE.journal -``, then read back with the
real ``journalctl --file``. Skips say why; the reader path that ran is printed
and asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from support.waiting import eventually

from healer.core.batch import Batch, EventBatch
from healer.core.enums import Severity
from healer.core.records import Event
from healer.sources import journald
from healer.sources.journald import JournaldSource, entry_to_event

JOURNAL_REMOTE = next(
    (
        p
        for p in ("/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote")
        if os.access(p, os.X_OK)
    ),
    shutil.which("systemd-journal-remote"),
)
JOURNALCTL = shutil.which("journalctl")
needs_tools = pytest.mark.skipif(
    JOURNALCTL is None or JOURNAL_REMOTE is None,
    reason="journalctl or systemd-journal-remote missing: apt-get install -y systemd systemd-journal-remote "
    "(listed in .ci/apt-packages.txt)",
)
BOOT = "0123456789abcdef0123456789abcdef"


class JournalWriter:
    """Appends entries to one journal file through systemd-journal-remote."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.n = 0
        self.t0 = int(time.time() * 1_000_000)

    def write(self, entries: list[tuple[str | bytes, str, int]]) -> None:
        assert JOURNAL_REMOTE is not None
        subprocess.run(
            [JOURNAL_REMOTE, f"--output={self.path}", "-"],
            input=self.export(entries),
            check=True,
            capture_output=True,
        )

    def export(self, entries: list[tuple[str | bytes, str, int]]) -> bytes:
        """Entries in journal export format (binary-safe MESSAGE when needed)."""
        out = b""
        for message, unit, prio in entries:
            self.n += 1
            out += (
                f"__REALTIME_TIMESTAMP={self.t0 + self.n}\n__MONOTONIC_TIMESTAMP={self.n}\n_BOOT_ID={BOOT}\n"
            ).encode()
            raw = message.encode() if isinstance(message, str) else message
            if b"\n" in raw or any(b < 32 for b in raw):
                out += b"MESSAGE\n" + struct.pack("<Q", len(raw)) + raw + b"\n"
            else:
                out += b"MESSAGE=" + raw + b"\n"
            out += f"PRIORITY={prio}\n_SYSTEMD_UNIT={unit}\nSYSLOG_IDENTIFIER=app\n_PID=42\n\n".encode()
        return out


class Collector:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.cursors: list[str] = []

    async def sink(self, batch: Batch) -> None:
        assert isinstance(batch, EventBatch) and batch.cursor is not None
        self.events.extend(batch.events)
        self.cursors.append(batch.cursor.value)

    async def wait_for(self, pred: Callable[[], bool], timeout: float = 10.0) -> None:
        await eventually(pred, timeout, lambda: str([e.message for e in self.events]))


def test_entry_mapping_handles_bytes_and_priorities() -> None:
    ev = entry_to_event(
        {
            "MESSAGE": list(b"caf\xc3\xa9 \x01 boom\n"),
            "PRIORITY": "1",
            "_SYSTEMD_UNIT": "a.service",
            "__REALTIME_TIMESTAMP": "1700000000000000",
            "__CURSOR": "s=1",
        },
        "web",
    )
    assert ev is not None
    assert ev.message == "café \x01 boom" and ev.severity is Severity.CRITICAL and ev.ts == 1_700_000_000.0
    assert ev.fields["unit"] == "a.service" and ev.source_id == "s=1" and ev.service == "web"
    events = {p: entry_to_event({"MESSAGE": "m", "PRIORITY": str(p)}, "s") for p in range(8)}
    sev = {p: ev.severity for p, ev in events.items() if ev is not None}
    assert sev == {
        0: Severity.CRITICAL,
        1: Severity.CRITICAL,
        2: Severity.CRITICAL,
        3: Severity.HIGH,
        4: Severity.MEDIUM,
        5: Severity.LOW,
        6: Severity.LOW,
        7: Severity.LOW,
    }
    assert entry_to_event({"MESSAGE": None}, "s") is None


@needs_tools
async def test_journalctl_reads_file_and_resumes_from_cursor(tmp_path: Path) -> None:
    jf = tmp_path / "t.journal"
    w = JournalWriter(jf)
    w.write(
        [
            ("redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379.", "app.service", 3),
            ("unrelated", "other.service", 3),
            (b"bin\x01ary\nmessage", "app.service", 2),
            ("just info", "app.service", 6),
        ]
    )
    c = Collector()
    src = JournaldSource(["app.service"], "app", None, files=[str(jf)], from_start=True, native=False)
    print(f"journald path: {src.path} ({' '.join(src.argv())})")
    assert src.path == "journalctl"
    await src.start(c.sink)
    try:
        await c.wait_for(lambda: len(c.events) >= 3)
    finally:
        await src.stop()
    msgs = [e.message for e in c.events]
    assert msgs == [
        "redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379.",
        "bin\x01ary\nmessage",
        "just info",
    ]
    assert [e.severity for e in c.events] == [Severity.HIGH, Severity.CRITICAL, Severity.LOW]
    first = c.events[0]
    assert first.source == "journald" and first.service == "app"
    assert dict(first.fields) == {
        "unit": "app.service",
        "priority": "3",
        "syslog_identifier": "app",
        "pid": "42",
    }
    cursor = c.cursors[-1]
    assert cursor == c.events[-1].source_id

    # Later entries; a new source resumed from the stored cursor sees only those.
    w.write([("after restart 1", "app.service", 4), ("after restart 2", "app.service", 3)])
    c2 = Collector()
    src2 = JournaldSource(["app.service"], "app", cursor, files=[str(jf)], native=False)
    assert f"--after-cursor={cursor}" in src2.argv()
    await src2.start(c2.sink)
    try:
        await c2.wait_for(lambda: len(c2.events) >= 2)
        await asyncio.sleep(0.3)  # nothing else may trickle in
    finally:
        await src2.stop()
    assert [e.message for e in c2.events] == ["after restart 1", "after restart 2"]


@needs_tools
async def test_follows_appends_and_restarts_killed_journalctl(tmp_path: Path) -> None:
    jf = tmp_path / "t.journal"
    w = JournalWriter(jf)
    w.write([("one", "app.service", 3)])
    c = Collector()
    src = JournaldSource(
        ["app.service"],
        "app",
        None,
        files=[str(jf)],
        from_start=True,
        native=False,
        backoff_initial=0.1,
    )
    print(f"journald path: {src.path}")
    with capture_logs() as logs:
        await src.start(c.sink)
        try:
            await c.wait_for(lambda: len(c.events) == 1)
            w.write([("two", "app.service", 3)])  # live follow
            await c.wait_for(lambda: len(c.events) == 2)

            for round_ in range(2):
                old = src.pid
                assert old is not None
                os.kill(old, signal.SIGKILL)
                await c.wait_for(lambda: src.pid is not None and src.pid != old)
                w.write([(f"after kill {round_}", "app.service", 3)])
                await c.wait_for(lambda: len(c.events) == 3 + round_)
        finally:
            await src.stop()
    assert [e.message for e in c.events] == ["one", "two", "after kill 0", "after kill 1"]
    assert src.restarts == 2
    ended = [entry for entry in logs if entry["event"] == "journald_stream_ended"]
    assert len(ended) == 2 and all(e["log_level"] == "warning" for e in ended)
    assert "exit -9" in ended[0]["detail"]
    assert any(entry["event"] == "journald_stream_resumed" for entry in logs)


@needs_tools
async def test_sink_failure_restarts_the_stream_from_the_cursor(tmp_path: Path) -> None:
    """A sink that raises once (a locked store) must not leave the follower hung on journalctl."""
    jf = tmp_path / "t.journal"
    w = JournalWriter(jf)
    w.write([("one", "app.service", 3)])
    c = Collector()
    failed: list[int] = []

    async def flaky(batch: Batch) -> None:
        if not failed:
            failed.append(1)
            raise RuntimeError("database is locked")
        await c.sink(batch)

    src = JournaldSource(["app.service"], "app", None, files=[str(jf)], from_start=True, native=False,
                         backoff_initial=0.1)  # fmt: skip
    await src.start(flaky)
    try:
        await c.wait_for(lambda: [e.message for e in c.events] == ["one"])
        w.write([("two", "app.service", 3)])
        await c.wait_for(lambda: [e.message for e in c.events] == ["one", "two"])
    finally:
        await src.stop()
    assert src.restarts >= 1


@needs_tools
async def test_broken_journalctl_warns_once_and_keeps_retrying(tmp_path: Path) -> None:
    c = Collector()
    missing = tmp_path / "gone.journal"
    src = JournaldSource(
        ["app.service"],
        "app",
        None,
        files=[str(missing)],
        native=False,
        backoff_initial=0.05,
        backoff_max=0.1,
    )
    with capture_logs() as logs:
        await src.start(c.sink)
        try:
            await asyncio.sleep(1.0)
            assert src.restarts >= 3
            # The file appears (journal restored): the same source picks it up.
            JournalWriter(missing).write([("back", "app.service", 3)])
            src.from_start = True
            await c.wait_for(lambda: len(c.events) == 1)
        finally:
            await src.stop()
    ended = [entry for entry in logs if entry["event"] == "journald_stream_ended"]
    assert len(ended) == 1, "a stream that keeps failing is reported once, not every retry"


def test_native_reader_available_or_say_why() -> None:
    if not journald.HAVE_NATIVE:
        pytest.skip(
            "systemd-python not importable in this venv: in-process runs use the journalctl path; "
            "the native path runs in a child interpreter (test_native_reader_with_debian_python3_systemd)"
        )
    assert JournaldSource(["a"], "a", None).path == "native"


NATIVE_CHILD = r"""
import asyncio, json, sys
sys.path.append(sys.argv[1])  # Debian's python3-systemd, after the venv's own packages
from healer.sources import journald
assert journald.HAVE_NATIVE, "systemd.journal not importable"
path, cursor, want = sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
append = sys.argv[5:]  # [journal-remote, export file]: appended half a second in

async def main():
    todo = list(append)
    got, cursors = [], []
    async def sink(batch):
        got.extend(e.message for e in batch.events)
        cursors.append(batch.cursor.value)
    src = journald.JournaldSource(["app.service"], "app", cursor, files=[path], from_start=True)
    await src.start(sink)
    for i in range(200):
        if len(got) >= want:
            break
        if i == 10 and todo:  # half a second in, the reader is waiting
            import subprocess
            with open(todo[1], "rb") as f:
                subprocess.run([todo[0], "--output=" + path, "-"], stdin=f, check=True, capture_output=True)
            todo = []
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    await src.stop()
    print(json.dumps({"path": src.path, "messages": got, "cursor": cursors[-1] if cursors else ""}))

asyncio.run(main())
"""
DIST = "/usr/lib/python3/dist-packages"


@needs_tools
def test_native_reader_with_debian_python3_systemd(tmp_path: Path) -> None:
    """The systemd.journal path, run in a child interpreter that can see python3-systemd."""
    if not os.path.exists(os.path.join(DIST, "systemd", "journal.py")):
        pytest.skip("python3-systemd not installed (apt-get install -y python3-systemd): native path untested")
    import sys

    jf = tmp_path / "n.journal"
    w = JournalWriter(jf)
    w.write([("native one", "app.service", 3), ("skip me", "other.service", 3), ("native two", "app.service", 4)])

    def run(cursor: str, want: int, *append: str) -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, "-c", NATIVE_CHILD, DIST, str(jf), cursor, str(want), *append],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = run("", 2)
    print(f"journald path: {first['path']}")
    assert first["path"] == "native" and first["messages"] == ["native one", "native two"]
    w.write([("native three", "app.service", 3)])
    second = run(str(first["cursor"]), 1)
    assert second["messages"] == ["native three"]
    # Live follow: the child appends once it is idle; inotify must wake the reader.
    export = tmp_path / "live.export"
    export.write_bytes(w.export([("native live", "app.service", 3)]))
    assert JOURNAL_REMOTE is not None
    third = run(str(second["cursor"]), 1, JOURNAL_REMOTE, str(export))
    assert third["messages"] == ["native live"]


@needs_tools
async def test_invalid_cursor_falls_back_to_tail_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jf = tmp_path / "t.journal"
    w = JournalWriter(jf)
    w.write([("old entry", "app.service", 3)])
    monkeypatch.chdir(tmp_path)
    c = Collector()
    # A relative --file must work too (journalctl --follow fails on one).
    src = JournaldSource(
        ["app.service"], "app", "not-a-cursor", files=["t.journal"], native=False, backoff_initial=0.05
    )
    with capture_logs() as logs:
        await src.start(c.sink)
        try:
            await c.wait_for(lambda: src.cursor is None and src.pid is not None)
            await asyncio.sleep(0.3)
            w.write([("new entry", "app.service", 3)])
            await c.wait_for(lambda: len(c.events) == 1)
        finally:
            await src.stop()
    assert [e.message for e in c.events] == ["new entry"]  # history is not replayed
    assert any(e["event"] == "journald_cursor_invalid" and e["log_level"] == "error" for e in logs)


@needs_tools
async def test_a_fresh_follower_reads_every_entry_written_after_it_started(tmp_path: Path) -> None:
    """A follower that logged `journald_started` reads every entry from then on, even with a slow journalctl.

    The wrapper delays every journalctl by a second, as a loaded host does. Before the tail was
    pinned as a cursor, `--lines=0` took the end as it was when the child finally opened the
    journal, so the entry written right after "started" was skipped.
    """
    assert JOURNALCTL is not None
    jf = tmp_path / "t.journal"
    w = JournalWriter(jf)
    w.write([("history, not to be acted on", "app.service", 3)])
    slow = tmp_path / "slow-journalctl"
    slow.write_text(f'#!/bin/sh\nsleep 1\nexec {JOURNALCTL} "$@"\n')
    slow.chmod(0o755)
    c = Collector()
    src = JournaldSource(["app.service"], "app", None, files=[str(jf)], native=False, journalctl=str(slow))
    with capture_logs() as logs:
        await src.start(c.sink)
        try:
            await eventually(lambda: any(e["event"] == "journald_started" for e in logs), 10, lambda: str(logs))
            w.write([("written just after start", "app.service", 3)])
            await c.wait_for(lambda: len(c.events) == 1)
            await asyncio.sleep(0.3)  # a wrongly re-read history line would arrive in this time
        finally:
            await src.stop()
    assert [e.message for e in c.events] == ["written just after start"]
    started = next(e for e in logs if e["event"] == "journald_started")
    assert started["position"] == "pinned tail" and started["cursor"] is False
