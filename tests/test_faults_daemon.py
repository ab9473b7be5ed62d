"""Faults against a running daemon: a log that turns into a directory, the
database locked by another process, the state dir on a full filesystem, the
clock stepping backwards, and a webhook sender that never finishes its body.

The daemon cases run the real ``healer run`` subprocess and assert what an
operator sees: it stays up, says what is wrong a bounded number of times (not
once per poll), and every line lands once the fault clears.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.daemon import Daemon, append, base_config, numbered_lines, wait_for
from support.engine import build, feed, pat, run_fix
from support.webhooks import serving, settings

from healer.core.clock import FakeClock
from healer.core.enums import Outcome, Reason
from healer.core.jobs import FixJob
from healer.sources.webhooks import server as webhook_server

DATA = Path(__file__).parent / "data" / "webhooks"


def _numbers(d: Daemon) -> list[int]:
    return numbered_lines(d.query("SELECT message, fields, count FROM events WHERE pattern_id = 'numbered'"))


def _count(text: str, event: str) -> int:
    """Log lines for ``event`` exactly (``tail_problem`` does not count ``tail_problem_cleared``)."""
    return len(re.findall(rf"\b{re.escape(event)}\b(?!_)", text))


def _dir_problems(d: Daemon) -> int:
    return sum(1 for ln in d.log_text().splitlines() if _count(ln, "tail_problem") and "is a directory" in ln)


def _single_file_config(tmp: Path) -> dict[str, Any]:
    cfg = base_config(tmp)
    cfg["sources"] = {"files": [{"path": str(tmp / "logs" / "app.log"), "service": "app"}]}
    return cfg


# -- (a) the watched log replaced by a directory, then by a file again ---------------------------


def test_log_replaced_by_directory_then_file_again(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "app.log"
    cfg = _single_file_config(tmp_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    d = Daemon(tmp_path, cfg).start()
    try:
        append(log, "LINE 1", "LINE 2")
        assert wait_for(lambda: _numbers(d) == [1, 2], 10), _numbers(d)
        log.unlink()
        log.mkdir()
        (log / "inside.txt").write_text("LINE 999\n")  # never read: it is not the watched file
        assert wait_for(lambda: _dir_problems(d) >= 1, 10), d.log_text()[-2000:]
        time.sleep(1.5)  # many polls and rescans while it is still a directory
        assert d.alive(), d.log_text()[-2000:]
        problems = _count(d.log_text(), "tail_problem")
        print(f"directory in place of the log: {_dir_problems(d)} 'is a directory' of {problems} tail_problem line(s)")
        assert _dir_problems(d) == 1, d.log_text()[-3000:]
        # unlink + mkdir is not atomic: a poll in between may also (once) see "does not exist".
        assert problems <= 2, d.log_text()[-3000:]
        (log / "inside.txt").unlink()
        log.rmdir()
        append(log, "LINE 3", "LINE 4")
        assert wait_for(lambda: _numbers(d) == [1, 2, 3, 4], 10), (_numbers(d), d.log_text()[-2000:])
        assert d.alive()
        assert _dir_problems(d) == 1
        assert "tail_problem_cleared" in d.log_text()
    finally:
        assert d.stop() == 0, d.log_text()[-2000:]


# -- (b) the database locked by another process while lines arrive ---------------------------------


def test_database_locked_by_another_process_nothing_lost(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "app.log"
    d = Daemon(tmp_path, _single_file_config(tmp_path))
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    d.start()
    try:
        append(log, "LINE 0")
        assert wait_for(lambda: _numbers(d) == [0], 10)
        other = sqlite3.connect(str(d.db_path), isolation_level=None, timeout=10)
        other.execute("BEGIN EXCLUSIVE")
        before = d.log_text()
        try:
            for i in range(1, 31):
                append(log, f"LINE {i}")
                time.sleep(0.1)  # ~3 s held, lines arriving all the while
        finally:
            other.execute("ROLLBACK")
            other.close()
        during = d.log_text()[len(before) :]
        assert d.alive(), d.log_text()[-2000:]
        assert wait_for(lambda: _numbers(d) == list(range(31)), 15), (_numbers(d), d.log_text()[-3000:])
        after = d.log_text()[len(before) :]
        failed = _count(after, "tail_sink_failed")
        noisy = [ln for ln in after.splitlines() if re.search(r"\b(error|exception|warning)\b", ln, re.I)]
        print(f"db locked ~3 s: {failed} tail_sink_failed, {len(noisy)} warning/error lines; all 31 lines landed")
        assert failed <= 1, during[-3000:]
        assert len(noisy) <= 3, noisy
        # Each line exactly once (a row of a stored sample counts the lines it stands for).
        assert d.query("SELECT sum(count) AS n FROM events WHERE pattern_id = 'numbered'")[0]["n"] == 31
    finally:
        assert d.stop() == 0, d.log_text()[-2000:]


# -- (c) the state directory on a full filesystem ---------------------------------------------------


def test_state_dir_full_then_freed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(state)], capture_output=True)
    if r.returncode != 0:
        print(f"SKIP: cannot mount tmpfs: {r.stderr.decode().strip()}")
        pytest.skip(f"cannot mount tmpfs: {r.stderr.decode().strip()}")
    log = tmp_path / "logs" / "app.log"
    d = Daemon(tmp_path, _single_file_config(tmp_path))
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    try:
        d.start()
        append(log, *(f"LINE {i}" for i in range(10)))
        assert wait_for(lambda: _numbers(d) == list(range(10)), 10)
        filler = state / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError:
            pass
        finally:
            os.close(fd)
        assert os.statvfs(state).f_bavail == 0
        before = d.log_text()
        append(log, *(f"LINE {i}" for i in range(10, 200)))
        time.sleep(2.0)
        assert d.alive(), d.log_text()[-2000:]
        during = d.log_text()[len(before) :]
        filler.unlink()
        assert wait_for(lambda: _numbers(d) == list(range(200)), 15), (len(_numbers(d)), d.log_text()[-3000:])
        assert d.alive()
        print(f"state dir full: {_count(during, 'tail_sink_failed')} tail_sink_failed while full; all 200 landed")
        assert _count(d.log_text()[len(before) :], "tail_sink_failed") <= 1
    finally:
        if d.proc is not None:
            d.stop()
        subprocess.run(["umount", "-l", str(state)], check=False)


# -- (d) the clock stepping backwards, in process ----------------------------------------------------


def test_clock_backwards_keeps_cooldown_and_no_negative_durations(tmp_path: Path) -> None:
    engine, clock = build(tmp_path, [pat(cooldown=600, max_attempts=10)], engine={"verify_window": 10})
    assert isinstance(clock, FakeClock)
    res = feed(engine, "BOOM a")
    assert [type(j) for j in res.jobs] == [FixJob]
    attempt = run_fix(engine, res)
    clock.advance(11)
    assert engine.finalize_due() == [attempt.id]  # verified and fixed
    # NTP steps the wall clock back by an hour; the fault comes back straight away.
    clock.set(clock.now() - 3600)
    res = feed(engine, "BOOM a")
    assert res.jobs == [], "a backwards jump let the fix run again inside its cooldown"
    # ...and a few minutes (of the new, earlier time) later, still inside the cooldown.
    clock.advance(300)
    assert feed(engine, "BOOM a").jobs == []
    decisions = [d for d, _ in engine.store.decision_counts()]
    cooldowns = [d for d in decisions if d.reason is Reason.COOLDOWN]
    assert cooldowns, decisions  # one row per storm: repeats are folded into it
    assert cooldowns[-1].detail == "last fix in the future (the clock went back)"
    # Fix attempts: one, with a non-negative duration; nothing is left 'verifying' forever.
    [row] = engine.store.attempts()
    assert row.outcome is Outcome.SUCCEEDED
    assert row.finished is not None and row.finished >= row.started
    # Once real time passes the original cooldown, the fix may run again, exactly once.
    clock.advance(3600 + 600)
    res = feed(engine, "BOOM a")
    assert [type(j) for j in res.jobs] == [FixJob]
    second = run_fix(engine, res)
    # A second backwards step during the verify window: it still ends, once, without going negative.
    clock.set(clock.now() - 3600)
    assert engine.finalize_due() == []
    clock.advance(3600 + 11)
    assert engine.finalize_due() == [second.id]
    assert engine.finalize_due() == []
    rows = engine.store.attempts()
    assert [r.outcome for r in rows] == [Outcome.SUCCEEDED, Outcome.SUCCEEDED]
    assert all(r.finished is not None and r.finished >= r.started for r in rows), rows
    assert engine.store.integrity_ok()


# -- (e) a webhook sender that never finishes its body ------------------------------------------------


async def test_slow_webhook_sender_is_cut_off_and_others_are_served(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhook_server, "READ_TIMEOUT", 0.5)
    ws = settings(
        {"alertmanager": {"basic_user": "am", "basic_password_env": "AM_PASSWORD"}}, {"AM_PASSWORD": "am-pass"}
    )
    auth = "Basic " + base64.b64encode(b"am:am-pass").decode()
    raw = (DATA / "alertmanager-v4.json").read_bytes()
    async with serving(ws) as client:
        srv, events, audits = client.server, client.events, client.audits
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        head = (
            f"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: {auth}\r\nContent-Length: {len(raw)}\r\n\r\n"
        ).encode()
        writer.write(head + raw[:20])  # ...and never the rest
        await writer.drain()
        t0 = time.monotonic()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{srv.port}/webhooks/alertmanager",
                data=raw,
                headers={"Content-Type": "application/json", "Authorization": auth},
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()
        served_in = time.monotonic() - t0
        assert served_in < 0.5, f"the valid webhook waited {served_in:.2f}s behind the slow one"
        assert events, "the valid webhook's events were not delivered"
        status_line = await asyncio.wait_for(reader.readline(), 5)
        cut_after = time.monotonic() - t0
        print(f"slow sender: {status_line.decode().strip()!r} after {cut_after:.2f}s; valid one in {served_in:.3f}s")
        assert b" 408 " in status_line, status_line
        assert [a for a in audits if a[0] == "webhook_refused" and a[1].get("status") == 408], audits
        writer.close()
