"""The core promise, end to end: a log line becomes a safe, recorded decision.

`healer run` is a real subprocess; the log is a real file; assertions read the
SQLite store and the CLI, as a user would.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from support.daemon import Daemon, append, base_config, numbered_lines, wait_for, write_config


@pytest.fixture
def daemon(tmp_path: Path):
    d = Daemon(tmp_path, base_config(tmp_path)).start()
    yield d
    if d.alive():
        d.stop()


def test_line_to_incident_decision_attempt_then_kill_switch(daemon: Daemon, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "app.log"
    t0 = time.monotonic()
    append(log, "2026-11-22 10:00:00 ERROR worker: BOOM disk")
    got = wait_for(lambda: daemon.query("SELECT * FROM fix_attempts"), 5)
    assert got, daemon.log_text()
    # Incident and decision are committed before the fix starts; the spec's bound is 1 s.
    assert time.monotonic() - t0 < 3
    inc = daemon.query("SELECT * FROM incidents")
    assert [(r["pattern_id"], r["count"]) for r in inc] == [("boom", 1)]
    dec = daemon.query("SELECT verdict, reason FROM decisions")
    assert [(r["verdict"], r["reason"]) for r in dec] == [("act", "ok")]
    assert wait_for(lambda: daemon.query("SELECT 1 FROM fix_attempts WHERE outcome = 'succeeded'"), 5)
    hist = daemon.cli("history")
    assert hist.returncode == 0
    assert "command: succeeded" in hist.stdout
    assert "success rate 100%" in hist.stdout

    # Flip the kill switch in the running daemon's config file; no restart.
    cfg = base_config(tmp_path)
    cfg["kill_switch"] = True
    write_config(daemon.config_path, cfg)
    assert wait_for(lambda: daemon.query("SELECT 1 FROM audit WHERE kind = 'config_changed'"), 2.0)
    append(log, "2026-11-22 10:00:01 ERROR worker: BOOM network")
    rows = wait_for(lambda: daemon.query("SELECT reason FROM decisions WHERE reason = 'kill_switch'"), 5)
    assert rows, daemon.log_text()
    assert len(daemon.query("SELECT * FROM fix_attempts")) == 1
    audit = daemon.query("SELECT detail FROM audit WHERE kind = 'config_changed'")
    assert any('"kill_switch"' in r["detail"] for r in audit)


def test_bad_pattern_file_bad_config_edit_missing_log(daemon: Daemon, tmp_path: Path) -> None:
    # A bad pattern file is reported with its file and line; the others keep working.
    bad = tmp_path / "patterns" / "bad.yaml"
    bad.write_text("patterns:\n  - id: broken\n    regex: 'unclosed ('\n    examples: [x]\n")
    assert wait_for(lambda: "bad.yaml:2" in daemon.log_text(), 3), daemon.log_text()
    assert "not a valid RE2 regex" in daemon.log_text()

    # A bad config edit is rejected and audited; the last good config stays in force.
    daemon.config_path.write_text("kill_switch: maybe\nstate_dir: [\n")
    assert wait_for(lambda: daemon.query("SELECT detail FROM audit WHERE kind = 'config_rejected'"), 3)
    row = daemon.query("SELECT detail FROM audit WHERE kind = 'config_rejected'")[0]
    assert "config.yaml" in row["detail"] and "invalid YAML" in row["detail"]
    write_config(daemon.config_path, {**base_config(tmp_path), "kill_switch": "yes"})
    assert wait_for(lambda: len(daemon.query("SELECT 1 FROM audit WHERE kind = 'config_rejected'")) >= 2, 3)
    last = daemon.query("SELECT detail FROM audit WHERE kind = 'config_rejected' ORDER BY id DESC")[0]
    assert "kill_switch" in last["detail"] and "expected true or false" in last["detail"]

    # The log file does not exist yet: healer reports it and picks it up when it appears.
    assert daemon.alive()
    append(tmp_path / "logs" / "late.log", "ERROR BOOM late")
    assert wait_for(lambda: daemon.query("SELECT 1 FROM fix_attempts"), 5), daemon.log_text()
    assert daemon.alive()


def test_missing_log_dir_reported(tmp_path: Path) -> None:
    cfg = base_config(tmp_path)
    cfg["sources"] = {"files": [{"path": str(tmp_path / "nowhere" / "app.log"), "service": "x"}]}
    d = Daemon(tmp_path, cfg).start()
    try:
        assert wait_for(lambda: "tail_problem" in d.log_text(), 3)
        assert "does not exist" in d.log_text()
        assert "nowhere" in d.log_text()
        assert d.alive()
    finally:
        d.stop()


def _numbers(d: Daemon) -> list[int]:
    return numbered_lines(d.query("SELECT message, fields, count FROM events WHERE pattern_id='numbered'"))


def test_no_line_lost_or_twice_across_stops_and_rotations(tmp_path: Path) -> None:
    """SIGTERM, SIGKILL, rename rotation and copytruncate in a numbered stream."""
    cfg = base_config(tmp_path)
    d = Daemon(tmp_path, cfg).start()
    try:
        log = tmp_path / "logs" / "app.log"
        n = 0

        def write(k: int) -> None:
            nonlocal n
            append(log, *(f"INFO x LINE {n + i}" for i in range(k)))
            n += k

        write(200)
        assert wait_for(lambda: len(_numbers(d)) == n, 20)
        d.stop(signal.SIGTERM)
        write(100)  # written while healer is down
        d.start()
        write(100)
        assert wait_for(lambda: len(_numbers(d)) == n, 20), (len(_numbers(d)), n)
        write(150)
        d.stop(signal.SIGKILL)
        write(50)
        os.rename(log, log.with_suffix(".log.1"))  # rename rotation while down
        write(50)
        d.start()
        assert wait_for(lambda: len(_numbers(d)) == n, 20), (len(_numbers(d)), n)
        write(100)
        os.rename(log, log.with_suffix(".log.2"))  # rename rotation while running
        write(100)
        assert wait_for(lambda: len(_numbers(d)) == n, 20), (len(_numbers(d)), n)
        # copytruncate while running: the writer pauses, as logrotate's copy+truncate must be atomic to lose nothing.
        assert wait_for(lambda: len(_numbers(d)) == n, 20)
        (tmp_path / "logs" / "app.log.3").write_bytes(log.read_bytes())
        with open(log, "r+") as fh:
            fh.truncate(0)
        write(120)
        assert wait_for(lambda: len(_numbers(d)) == n, 20), (len(_numbers(d)), n)
        d.stop(signal.SIGKILL)
        d.start()
        write(30)
        assert wait_for(lambda: len(_numbers(d)) == n, 20), (len(_numbers(d)), n)
        d.stop()
        nums = _numbers(d)
        assert sorted(nums) == list(range(n)), f"lost={set(range(n)) - set(nums)} dup={len(nums) - len(set(nums))}"
        assert d.query("PRAGMA integrity_check")[0][0] == "ok"
    finally:
        if d.alive():
            d.stop(signal.SIGKILL)


def test_reading_a_pattern_file_is_not_a_change(tmp_path: Path) -> None:
    """Only writes reload; a reader (cat, a backup job, healer check) must cost nothing."""
    cfg = base_config(tmp_path)
    cfg["log_level"] = "debug"
    d = Daemon(tmp_path, cfg).start()
    try:
        for _ in range(5):
            (tmp_path / "patterns" / "test.yaml").read_bytes()
            d.config_path.read_bytes()
        time.sleep(0.6)  # longer than the reload debounce
        log = d.log_text()
        assert "config_unchanged" not in log and "config_reloaded" not in log
        # A real write still reloads.
        (tmp_path / "patterns" / "test.yaml").write_text((tmp_path / "patterns" / "test.yaml").read_text() + "\n")
        assert wait_for(lambda: "config_unchanged" in d.log_text() or "config_reloaded" in d.log_text(), 5)
    finally:
        d.stop()


def test_host_health_is_checked_with_telegram_off(tmp_path: Path) -> None:
    """The periodic health check used to live in the bot: no token, no check. Now the daemon runs it."""
    cfg = base_config(tmp_path, health={"mounts": [str(tmp_path)], "disk_threshold": 0.001})
    cfg["telegram"] = {**cfg["telegram"], "health_interval": 1}
    d = Daemon(tmp_path, cfg).start()
    try:
        assert "telegram_disabled" in d.log_text()
        assert wait_for(lambda: '"host_health"' in d.log_text(), 10), d.tail()
        line = next(x for x in d.log_text().splitlines() if '"host_health"' in x)
        assert f"disk {tmp_path} at" in line and "threshold" in line
    finally:
        assert d.stop() == 0


def test_a_broken_pattern_file_keeps_its_last_good_version(daemon: Daemon, tmp_path: Path) -> None:
    """Issue 14 §5: a typo in a live pattern file used to drop its patterns silently."""
    own = tmp_path / "patterns" / "test.yaml"
    good = own.read_text()
    own.write_text(good.replace("BOOM (?P<what>", "BOOM ((?P<what>"))
    rows = wait_for(lambda: daemon.query("SELECT detail FROM audit WHERE kind = 'pattern_file_rejected'"), 5)
    assert rows, daemon.log_text()
    detail = json.loads(rows[0]["detail"])
    assert (detail["file"], detail["line"], detail["kept"]) == (str(own), 2, 2)
    assert "not a valid RE2 regex" in detail["error"]
    # The last good version is still in force: the line is matched and fixed as before.
    append(tmp_path / "logs" / "app.log", "2026-11-22 10:00:00 ERROR worker: BOOM disk")
    assert wait_for(lambda: daemon.query("SELECT 1 FROM fix_attempts WHERE outcome = 'succeeded'"), 5)
    status = daemon.cli("status")
    assert f"Pattern file rejected: {own}:" in status.stdout, status.stdout
    assert "(its last good version, 2 patterns, stays in force)" in status.stdout, status.stdout
    own.write_text(good)
    rows = wait_for(lambda: daemon.query("SELECT detail FROM audit WHERE kind = 'pattern_file_accepted'"), 5)
    assert rows and json.loads(rows[0]["detail"]) == {"file": str(own), "patterns": 2}, daemon.log_text()
    assert "Pattern file rejected" not in daemon.cli("status").stdout
