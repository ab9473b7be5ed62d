"""Confirm before acting: a ``confirm: true`` pattern looks at the fault instead of counting lines.

A real supervisord and real files; the engine, store and runner are real
and only the clock is injected. Assertions read what a user reads: the
notices, ``healer explain``, ``healer history``, the program's pid.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.daemon import Daemon, append, base_config, wait_for
from support.rig import Rig
from support.supervisor import Supervisor

from healer.core.enums import AuditKind
from healer.core.jobs import ProbeJob
from healer.core.notices import NoticeKind

LINE = "redis.exceptions.ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection refused."


def redis_down(**over: Any) -> dict[str, Any]:
    """The bundled Redis pattern's shape: two lines in 60s without a probe; its service is the supervisord program."""
    p: dict[str, Any] = {
        "id": "redis-connection-refused",
        "severity": "high",
        "regex": r"Error 111 connecting to (?P<host>127\.0\.0\.1):(?P<port>6379)\. Connection refused",
        "remediation": [{"action": "restart", "params": {"service": "tcpserver"}}],
        "threshold": {"count": 2, "window": 60},
        "cooldown": 300,
        "max_attempts": 3,
        "approval": "auto",
        "confirm": True,
        "examples": [LINE],
    }
    p.update(over)
    return p


def rig(tmp_path: Path, sv: Supervisor, **pattern: Any) -> Rig:
    return Rig(tmp_path, [redis_down(**pattern)], actions={"restart": sv.restart_settings(stay_up=0.2)})


def probes(r: Rig) -> list[str]:
    """The verdicts of the probes that ran, oldest first."""
    return [str(e.detail["status"]) for e in reversed(r.engine.store.audit_entries(AuditKind.CONFIRM_PROBE))]


def test_a_stopped_program_is_restarted_at_the_first_line(supervisor: Supervisor, tmp_path: Path) -> None:
    r = rig(tmp_path, supervisor)
    with supervisor.stopped():
        [attempt] = r.feed(LINE)
    assert attempt is not None and attempt.outcome.value == "verifying", attempt
    assert supervisor.running()
    text = r.explain()
    assert "skip (confirming)" in text and "probing the fault before anything runs" in text
    assert "act (ok) " in text and "confirmed: tcpserver is not running (supervisor: tcpserver" in text
    assert "#1 restart: verifying" in text
    # The wording of issue 14: headline, then host/service/pattern, target and change.
    [started] = r.said(NoticeKind.FIX_STARTED)
    assert started.startswith("fix #1 started\nhost ") and "· service app · pattern redis-connection-refused" in started
    assert started.endswith("target: unit:supervisor:tcpserver\nchange: restart(service=tcpserver)"), started
    assert probes(r) == ["confirmed"]


def test_a_running_program_is_left_alone_and_the_notice_says_why(supervisor: Supervisor, tmp_path: Path) -> None:
    r = rig(tmp_path, supervisor)
    pid = supervisor.pid()
    assert r.feed(LINE) == [None]
    why = (
        f"tcpserver is RUNNING and 127.0.0.1:{supervisor.port} accepts connections:"
        " the client's configuration is at fault"
    )
    assert r.said(NoticeKind.REFUTED) == [
        f"redis-connection-refused: not fixing incident #1, the fault is not there: {why}"
    ]
    # A storm of the same line: the refutation is held, not probed again, and said once.
    r.feed(LINE, LINE, LINE)
    r.feed(LINE)
    assert probes(r) == ["refuted"]
    assert len(r.said(NoticeKind.REFUTED)) == 1
    assert supervisor.pid() == pid
    text = r.explain()
    assert "notify (refuted) ×4 " in text and why in text  # the storm's lines, one decision
    assert "skip (confirming) 0s ago" in text  # the first line, which asked for the probe
    assert r.history().startswith("Fix attempts: 0 total")
    assert r.said(NoticeKind.FIX_STARTED) == []


def test_lines_while_a_probe_runs_start_no_second_probe(supervisor: Supervisor, tmp_path: Path) -> None:
    r = rig(tmp_path, supervisor)
    first = r.engine.ingest_buffer(f"{LINE}\n".encode(), "app", "app.log")
    [probe] = first.jobs
    assert isinstance(probe, ProbeJob)
    assert r.engine.ingest_buffer(f"{LINE}\n{LINE}\n".encode(), "app", "app.log").jobs == []
    assert "skip (confirming) ×3 " in r.explain()
    assert r.run([probe]) == [None]
    assert probes(r) == ["refuted"]


def test_after_the_hold_the_next_line_probes_again(supervisor: Supervisor, tmp_path: Path) -> None:
    r = rig(tmp_path, supervisor, confirm_interval="30s")
    assert r.feed(LINE) == [None]
    r.clock.advance(31)
    with supervisor.stopped():
        [attempt] = r.feed(LINE)
    assert probes(r) == ["refuted", "confirmed"]
    assert attempt is not None and attempt.outcome.value == "verifying"
    assert supervisor.running()


def test_without_a_probe_to_ask_the_threshold_counts(tmp_path: Path) -> None:
    """``command`` has no probe: unknown, so one line is not enough, as without ``confirm``."""
    r = Rig(
        tmp_path,
        [{**redis_down(), "remediation": [{"action": "command", "params": {"command": "ok"}}]}],
    )
    assert r.feed(LINE) == [None]
    assert "skip (threshold) " in r.explain() and "command has no confirmation probe; 1/2 in 60s" in r.explain()
    [attempt] = r.feed(LINE)
    assert attempt is not None and attempt.outcome.value == "verifying"
    assert probes(r) == ["unknown"]  # the second line counted; it did not probe again
    assert "act (ok) " in r.explain() and "unknown: command has no confirmation probe; command(command=ok)" in (
        r.explain()
    )


ENV_MISSING = "FileNotFoundError: [Errno 2] No such file or directory: '/srv/app/.env'"


def env_rig(tmp_path: Path) -> tuple[Rig, Path]:
    app = tmp_path / "app"
    app.mkdir()
    (app / ".env.example").write_text("MODEL=local\n")
    pattern = {
        "id": "config-env-file-missing",
        "severity": "high",
        "regex": r"FileNotFoundError: \[Errno 2\] No such file or directory: '(?P<path>(?:[^']*/)?\.env)'",
        "remediation": [{"action": "restore_file", "params": {"file": "env"}}],
        "threshold": 1,
        "cooldown": 600,
        "approval": "ask",
        "confirm": True,
        "examples": [ENV_MISSING],
    }
    files = {"files": {"env": {"path": str(app / ".env"), "template": str(app / ".env.example")}}}
    return Rig(tmp_path, [pattern], actions={"restore_file": files}), app / ".env"


def test_an_ask_pattern_probes_before_it_asks(tmp_path: Path) -> None:
    r, env = env_rig(tmp_path)
    assert r.feed(ENV_MISSING) == [None]
    assert r.said(NoticeKind.APPROVAL) == [
        f"config-env-file-missing wants to run restore_file(file=env)\nconfirmed: {env}: missing"
    ]
    assert not env.exists()


def test_an_ask_pattern_does_not_ask_about_a_fault_that_is_not_there(tmp_path: Path) -> None:
    r, env = env_rig(tmp_path)
    env.write_text("MODEL=mine\n")
    assert r.feed(ENV_MISSING) == [None]
    assert r.said(NoticeKind.APPROVAL) == []
    assert r.said(NoticeKind.REFUTED) == [
        f"config-env-file-missing: not fixing incident #1, the fault is not there:"
        f" {env} exists and parses as env: nothing to restore"
    ]
    assert env.read_text() == "MODEL=mine\n"


@pytest.fixture
def daemon(supervisor: Supervisor, tmp_path: Path) -> Iterator[Daemon]:
    """``healer run`` tailing ``logs/app.log``, its Redis pattern's service the supervisord program."""
    cfg = base_config(tmp_path, actions={"restart": supervisor.restart_settings(stay_up=0.2)})
    cfg["engine"]["verify_window"] = 60
    d = Daemon(tmp_path, cfg, {"patterns": [redis_down()]}).start()
    yield d
    if d.alive():
        d.stop()


def test_the_daemon_restarts_a_stopped_program_on_one_line(
    supervisor: Supervisor, daemon: Daemon, tmp_path: Path
) -> None:
    with supervisor.stopped():
        append(tmp_path / "logs" / "app.log", LINE)
        assert wait_for(supervisor.running, 20), daemon.tail()
        assert wait_for(lambda: "#1 restart: verifying" in daemon.cli("explain", "1").stdout, 20), daemon.tail()
    assert "confirmed: tcpserver is not running" in daemon.cli("explain", "1").stdout


def test_the_daemon_leaves_a_running_program_alone_and_says_why(
    supervisor: Supervisor, daemon: Daemon, tmp_path: Path
) -> None:
    pid = supervisor.pid()
    append(tmp_path / "logs" / "app.log", LINE)
    assert wait_for(lambda: "notify (refuted)" in daemon.cli("explain", "1").stdout, 20), daemon.tail()
    text = daemon.cli("explain", "1").stdout
    assert f"tcpserver is RUNNING and 127.0.0.1:{supervisor.port} accepts connections" in text
    assert "Fix attempts:" not in text
    assert daemon.cli("history").stdout.startswith("Fix attempts: 0 total")
    assert supervisor.pid() == pid
    notices = [line for line in daemon.log_text().splitlines() if '"kind": "refuted"' in line]
    assert len(notices) == 1 and "not fixing incident #1, the fault is not there: tcpserver is RUNNING" in notices[0]


def test_a_hostile_value_is_escalated_by_the_probe_before_anyone_is_asked(tmp_path: Path) -> None:
    pattern = {
        "id": "missing-module",
        "severity": "high",
        "regex": r"No module named '(?P<module>[^']+)'",
        "remediation": [{"action": "pip_install", "params": {"module": "{module}"}}],
        "threshold": 1,
        "approval": "ask",
        "confirm": True,
        "examples": ["No module named 'yaml'"],
    }
    pip = {"python": sys.executable, "allowed": ["PyYAML"]}
    r = Rig(tmp_path, [pattern], actions={"pip_install": pip})
    assert r.feed("ModuleNotFoundError: No module named '--index-url=http://evil.invalid/x'") == [None]
    assert r.said(NoticeKind.APPROVAL) == []
    [security] = r.said(NoticeKind.ESCALATION)
    assert security.startswith(
        "SECURITY: missing-module: pattern missing-module: parameter module refused the value"
        " '--index-url=http://evil.invalid/x': looks like a command-line option."
    ), security
    assert "escalate (hostile_input)" in r.explain()
    assert r.history().startswith("Fix attempts: 0 total")
