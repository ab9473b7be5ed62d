"""Preconditions on a real host: lock files, git checkouts, the disk, the clock, a supervisord, commands.

Each check is driven through the real engine (config and pattern files
loaded by the ruleset loader, a real store): a failed critical check blocks
the fix (nothing runs; the next match waits), the retry runs it once the
condition clears; a failed warning asks, and the approval message says why;
``healer explain`` shows every verdict.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.engine import build, feed, pat
from support.gitrig import Repos, git
from support.supervisor_rig import SUPERVISORCTL, SUPERVISORD, Supervisord, supervisord

from healer.core.clock import FakeClock
from healer.core.enums import Outcome, SettleStatus
from healer.core.jobs import FixJob
from healer.core.notices import Notice, NoticeKind
from healer.engine.engine import Engine
from healer.rules.patterns import build_pattern
from healer.service import housekeeping as hk
from healer.service.workers import Workers


@dataclass
class Rig:
    tmp: Path
    engine: Engine
    clock: FakeClock
    notices: list[Notice]

    @property
    def fixed(self) -> bool:
        return (self.tmp / "fixed").exists()

    def match(self) -> list[FixJob]:
        jobs = feed(self.engine, "BOOM x").jobs
        assert all(isinstance(j, FixJob) for j in jobs)
        return [j for j in jobs if isinstance(j, FixJob)]

    def texts(self, kind: NoticeKind) -> list[str]:
        return [n.text for n in self.notices if n.kind is kind]

    def explain(self, incident: int = 1) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "healer.cli", "-c", str(self.tmp / "config.yaml"), "explain", str(incident)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    def retry(self) -> list[FixJob]:
        jobs = self.engine.retry_blocked(self.engine.cleared_blocks()).jobs
        return [j for j in jobs if isinstance(j, FixJob)]


def rig(tmp: Path, checks: list[dict[str, Any]], *, pattern: dict[str, Any] | None = None, **cfg: Any) -> Rig:
    actions = cfg.pop("actions", {})
    commands = {"ok": ["touch", str(tmp / "fixed")], **actions.pop("commands", {})}
    engine, clock = build(
        tmp,
        [pat(**(pattern or {}))],
        actions={"command": {"commands": commands}, **actions},
        preconditions={"defaults": checks},
        **cfg,
    )
    notices: list[Notice] = []
    engine.notice = notices.append
    return Rig(tmp, engine, clock, notices)


def blocked_then_cleared(r: Rig, label: str, clear: Callable[[], None]) -> None:
    """The shared story of a critical check: blocked, waits, still blocked, cleared, retried, fixed."""
    [job] = r.match()
    assert r.engine.run_job(job) is None
    assert not r.fixed
    [waits] = r.texts(NoticeKind.FIX_RESULT)
    assert f"waits: blocked until it clears: {label}" in waits and "retried when it clears" in waits
    assert r.match() == []  # the next match waits on the block instead of probing again
    assert r.retry() == []  # still failing: nothing is decided again
    assert f"FAILED {label} [critical]" in r.explain()
    clear()
    [again] = r.retry()
    attempt = r.engine.run_job(again)
    assert attempt is not None and attempt.outcome is Outcome.VERIFYING
    assert r.fixed
    out = r.explain()
    assert f"ok {label} [critical]" in out and "skip (precondition)" in out


def warned_then_approved(r: Rig, label: str) -> None:
    """The shared story of a warning: the automatic fix becomes a question that says why; approved, it runs."""
    [job] = r.match()
    assert r.engine.run_job(job) is None
    assert not r.fixed
    [ask] = [n for n in r.notices if n.kind is NoticeKind.APPROVAL]
    assert ask.text.startswith("boom wants to run command(command=ok)")
    assert f"\nprecondition warnings: {label}\nPreconditions:\n" in ask.text
    approve_the_warning(r, label)


def approve_the_warning(r: Rig, label: str) -> None:
    """The newest approval message lists the failed warning; approved, the fix runs."""
    ask = [n for n in r.notices if n.kind is NoticeKind.APPROVAL][-1]
    assert f"\n  FAILED {label} [warning]: " in ask.text and ask.decision is not None
    settled = r.engine.settle_approval(ask.decision.id, True, "tester")
    assert settled.status is SettleStatus.OK and settled.job is not None
    attempt = r.engine.run_job(settled.job)
    assert attempt is not None and attempt.outcome is Outcome.VERIFYING
    assert r.fixed


# -- no_file -----------------------------------------------------------------------------------


def test_no_file_blocks_until_the_lock_is_gone(tmp_path: Path) -> None:
    lock = tmp_path / "DEPLOYING"
    lock.write_text("deploy 42\n")
    r = rig(tmp_path, [{"check": "no_file", "path": str(lock)}])
    blocked_then_cleared(r, f"no_file({lock})", lock.unlink)


def test_no_file_warning_asks_and_an_approved_fix_runs(tmp_path: Path) -> None:
    lock = tmp_path / "MAINTENANCE"
    lock.write_text("")
    r = rig(tmp_path, [{"check": "no_file", "path": str(lock), "severity": "warning", "name": "maintenance-lock"}])
    warned_then_approved(r, "maintenance-lock")


def test_passing_checks_let_the_fix_run_and_are_recorded(tmp_path: Path) -> None:
    r = rig(tmp_path, [{"check": "no_file", "path": str(tmp_path / "absent")}])
    [job] = r.match()
    attempt = r.engine.run_job(job)
    assert attempt is not None and attempt.outcome is Outcome.VERIFYING and r.fixed
    assert f"ok no_file({tmp_path / 'absent'}) [critical]: {tmp_path / 'absent'} is absent" in r.explain()


# -- git ---------------------------------------------------------------------------------------


def test_git_branch_is_blocks_off_main_and_clears_on_main(tmp_path: Path, repos: Repos) -> None:
    git(repos.server, "checkout", "-q", "-b", "hotfix")
    # The checkout named through the app's role, as a bundled pattern would.
    r = rig(
        tmp_path,
        [{"check": "git_branch_is", "repo": "@checkout", "branch": "main"}],
        apps={"app": {"checkout": {"path": str(repos.server)}}},
    )
    [job] = r.match()
    assert r.engine.run_job(job) is None
    assert "on branch 'hotfix', expected 'main'" in r.texts(NoticeKind.FIX_RESULT)[0]
    git(repos.server, "checkout", "-q", "main")
    [again] = r.retry()
    assert r.engine.run_job(again) is not None and r.fixed
    assert "ok git_branch_is(@checkout, main) [critical]: on 'main'" in r.explain()


def test_git_clean_except_allows_listed_paths_only(tmp_path: Path, repos: Repos) -> None:
    (repos.server / "debug.log").write_text("noise\n")
    (repos.server / "app.py").write_text("VERSION = 'edited on the server'\n")
    r = rig(
        tmp_path,
        [{"check": "git_clean_except", "repo": "app", "paths": ["*.log"]}],
        actions={"git_sync": {"repos": {"app": {"path": str(repos.server)}}}},
    )
    label = "git_clean_except(app)"

    def restore() -> None:
        git(repos.server, "checkout", "--", "app.py")

    blocked_then_cleared(r, label, restore)
    assert (repos.server / "debug.log").exists()  # the allowed change was never the problem
    assert "local changes outside the allowed paths: app.py" in r.texts(NoticeKind.FIX_RESULT)[0]


# -- the disk, the load, the clock ----------------------------------------------------------------


def test_min_free_blocks_when_the_disk_has_less_than_asked(tmp_path: Path) -> None:
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    r = rig(tmp_path, [{"check": "min_free", "path": str(tmp_path), "bytes": free * 1000}])
    [job] = r.match()
    assert r.engine.run_job(job) is None and not r.fixed
    assert "free, below" in r.texts(NoticeKind.FIX_RESULT)[0]


def test_min_free_inodes_warning_asks(tmp_path: Path) -> None:
    r = rig(
        tmp_path,
        [{"check": "min_free", "path": str(tmp_path), "inodes": 2**62, "severity": "warning", "name": "inodes"}],
    )
    warned_then_approved(r, "inodes")


def test_min_free_within_bounds_runs(tmp_path: Path) -> None:
    r = rig(tmp_path, [{"check": "min_free", "path": str(tmp_path), "bytes": "1K", "inodes": 1}])
    [job] = r.match()
    assert r.engine.run_job(job) is not None and r.fixed


def test_max_load_warning_asks_and_a_high_bound_runs(tmp_path: Path) -> None:
    # The load average is never below 0: this check fails on any host, deterministically.
    r = rig(tmp_path, [{"check": "max_load", "below": 0, "minutes": 1, "severity": "warning"}])
    warned_then_approved(r, "max_load(< 0)")
    other = tmp_path / "other"
    other.mkdir()
    ok = rig(other, [{"check": "max_load", "below": 100000}])
    [job] = ok.match()
    assert ok.engine.run_job(job) is not None and ok.fixed


def test_maintenance_window_blocks_inside_and_clears_after(tmp_path: Path) -> None:
    # FakeClock starts at 2023-11-14 22:13:20 UTC, inside a window opening at 22:00 for an hour.
    r = rig(tmp_path, [{"check": "maintenance_window", "cron": "0 22 * * *", "duration": "1h"}])
    label = "maintenance_window(0 22 * * * for 3600s)"
    blocked_then_cleared(r, label, lambda: r.clock.advance(3600))
    assert "inside the maintenance window (2023-11-14 22:00 UTC until 2023-11-14 23:00 UTC)" in r.explain()
    assert "outside the maintenance window (next opens 2023-11-15 22:00 UTC)" in r.explain()


def test_maintenance_window_in_a_time_zone(tmp_path: Path) -> None:
    # 22:13 UTC is 23:13 in Berlin (CET): a window opening at 23:00 Berlin time is open.
    r = rig(
        tmp_path,
        [{"check": "maintenance_window", "cron": "0 23 * * *", "duration": "30m", "timezone": "Europe/Berlin"}],
    )
    [job] = r.match()
    assert r.engine.run_job(job) is None
    assert "2023-11-14 23:00 CET until 2023-11-14 23:30 CET" in r.texts(NoticeKind.FIX_RESULT)[0]


# -- services (a real supervisord) ---------------------------------------------------------------


@pytest.fixture
def sv(tmp_path: Path) -> Iterator[Supervisord]:
    if not SUPERVISORD.exists():
        pytest.skip(f"supervisord not installed next to {sys.executable}")
    d = tmp_path / "sv"
    d.mkdir()
    with supervisord(d, {"worker": f"{sys.executable} -c 'import time; time.sleep(3600)'"}) as s:
        yield s


def restart_section(sv: Supervisord) -> dict[str, Any]:
    return {
        "manager": "supervisor",
        "supervisor_conf": str(sv.conf),
        "supervisorctl": str(SUPERVISORCTL),
        "units": {"worker": {}},
    }


def test_service_active_blocks_while_the_program_is_stopped(tmp_path: Path, sv: Supervisord) -> None:
    assert sv.ctl("stop", "worker").returncode == 0
    r = rig(tmp_path, [{"check": "service_active", "service": "worker"}], actions={"restart": restart_section(sv)})

    def start() -> None:
        assert sv.ctl("start", "worker").returncode == 0

    blocked_then_cleared(r, "service_active(worker)", start)
    assert "worker (supervisor) is not active" in r.texts(NoticeKind.FIX_RESULT)[0]


def test_service_inactive_asks_while_the_program_runs(tmp_path: Path, sv: Supervisord) -> None:
    r = rig(
        tmp_path,
        [{"check": "service_inactive", "service": "worker", "severity": "warning"}],
        actions={"restart": restart_section(sv)},
    )
    warned_then_approved(r, "service_inactive(worker)")


# -- command_ok ------------------------------------------------------------------------------------


def test_command_ok_blocks_on_a_non_zero_exit_and_clears(tmp_path: Path) -> None:
    healthy = tmp_path / "healthy"
    r = rig(
        tmp_path,
        [{"check": "command_ok", "command": "probe"}],
        actions={"commands": {"probe": ["test", "-e", str(healthy)]}},
    )
    blocked_then_cleared(r, "command_ok(probe)", healthy.touch)
    assert "probe exited 1" in r.texts(NoticeKind.FIX_RESULT)[0]


def test_command_ok_that_hangs_is_cut_at_its_timeout(tmp_path: Path) -> None:
    r = rig(
        tmp_path,
        [{"check": "command_ok", "command": "slow"}],
        actions={"commands": {"slow": {"argv": ["sleep", "30"], "timeout": 0.5}}},
    )
    [job] = r.match()
    assert r.engine.run_job(job) is None
    assert "slow timed out after 0.5s" in r.texts(NoticeKind.FIX_RESULT)[0]


def test_a_check_naming_nothing_allowlisted_blocks_and_says_what_to_add(tmp_path: Path) -> None:
    r = rig(tmp_path, [{"check": "service_active", "service": "nginx"}, {"check": "command_ok", "command": "nope"}])
    [job] = r.match()
    assert r.engine.run_job(job) is None
    text = r.texts(NoticeKind.FIX_RESULT)[0]
    assert "'nginx' is not in actions.restart.units" in text
    assert "'nope' is not in actions.command.commands" in text


# -- where checks come from, and what is refused at load ------------------------------------------


def test_per_action_and_per_pattern_checks_add_to_the_defaults(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in ("A", "B", "C"))
    for f in (a, b, c):
        f.touch()
    engine, _ = build(
        tmp_path,
        [pat(preconditions=[{"check": "no_file", "path": str(c), "name": "pattern-lock"}])],
        preconditions={
            "defaults": [{"check": "no_file", "path": str(a), "name": "host-lock"}],
            "actions": {
                "command": [{"check": "no_file", "path": str(b), "name": "command-lock"}],
                "restart": [{"check": "no_file", "path": "/nonexistent-never-checked", "name": "not-in-chain"}],
            },
        },
    )
    notices: list[Notice] = []
    engine.notice = notices.append
    [job] = feed(engine, "BOOM x").jobs
    assert isinstance(job, FixJob) and engine.run_job(job) is None
    [text] = [n.text for n in notices if n.kind is NoticeKind.FIX_RESULT]
    assert text.index("host-lock") < text.index("command-lock") < text.index("pattern-lock")
    assert "not-in-chain" not in text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"check": "no_such"}], "'preconditions[0]': the check must be one of git_branch_is"),
        ([{"check": "min_free", "path": "/"}], "'preconditions[0].bytes': give bytes"),
        ([{"check": "no_file", "path": "relative/lock"}], "'preconditions[0].path': must be an absolute path"),
        ([{"check": "maintenance_window", "cron": "every night", "duration": "1h"}], "5-field crontab"),
        (
            [{"check": "maintenance_window", "cron": "0 2 * * *", "duration": "1h", "timezone": "Mars/Olympus"}],
            "'preconditions[0].timezone': unknown time zone 'Mars/Olympus'",
        ),
        ([{"check": "no_file", "path": "/x", "severity": "fatal"}], "'preconditions[0].severity'"),
        ([{"check": "max_load", "below": 2, "minute": 1}], "'preconditions[0].minute': unknown key"),
    ],
)
def test_a_bad_check_in_a_pattern_is_refused_naming_the_key(raw: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build_pattern({"id": "p", "regex": "x", "preconditions": raw}, "p.yaml", 1)


def test_a_bad_check_in_the_config_names_the_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("preconditions:\n  defaults:\n    - check: min_free\n      path: /\n")
    r = subprocess.run(
        [sys.executable, "-m", "healer.cli", "-c", str(cfg), "check"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0
    assert "config.yaml" in r.stderr + r.stdout and "preconditions.defaults[0]" in r.stderr + r.stdout


def test_an_asking_pattern_asks_again_once_a_warning_is_found(tmp_path: Path) -> None:
    lock = tmp_path / "MAINTENANCE"
    lock.touch()
    r = rig(
        tmp_path,
        [{"check": "no_file", "path": str(lock), "severity": "warning", "name": "maintenance-lock"}],
        pattern={"approval": "ask"},
    )
    assert r.match() == []
    [first] = [n for n in r.notices if n.kind is NoticeKind.APPROVAL]
    assert first.text == "boom wants to run command(command=ok)" and first.decision is not None
    settled = r.engine.settle_approval(first.decision.id, True, "tester")
    assert settled.job is not None and r.engine.run_job(settled.job) is None  # the approval had not seen it
    assert not r.fixed
    approve_the_warning(r, "maintenance-lock")


async def test_the_daemons_retry_job_runs_a_fix_once_its_lock_is_gone(tmp_path: Path) -> None:
    lock = tmp_path / "DEPLOYING"
    lock.touch()
    r = rig(tmp_path, [{"check": "no_file", "path": str(lock)}])
    workers = Workers(r.engine, asyncio.get_running_loop())
    try:
        [job] = r.match()
        assert r.engine.run_job(job) is None
        await hk.retry_blocked(r.engine, workers)  # still locked: nothing is launched
        assert await workers.drain(10) == 0 and not r.fixed
        lock.unlink()
        await hk.retry_blocked(r.engine, workers)
        await asyncio.sleep(0)  # dispatch hands the jobs to the loop, which starts them on the fix pool
        assert await workers.drain(30) == 0
        assert r.fixed
    finally:
        workers.shutdown()
