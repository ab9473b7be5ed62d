"""git_sync's protected paths, against a real bare remote and clones through the real engine.

A pull that changes only app code runs as the pattern says (automatically);
one that changes a workflow, a dependency manifest or a secret asks a human
first, whatever the pattern says, and the approval message (and ``healer
explain``) lists the paths. The list is per repository.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from support.engine import build, feed, pat
from support.gitrig import Repos

from healer.core.enums import Outcome, SettleStatus
from healer.core.jobs import FixJob
from healer.core.notices import Notice, NoticeKind
from healer.engine.engine import Engine
from healer.telegram.render import notice_html

SYNC = [{"action": "git_sync", "params": {"repo": "@checkout"}}]


def engine_for(
    tmp: Path, repos: Repos, checkout: dict[str, Any] | None = None, **cfg: Any
) -> tuple[Engine, list[Notice]]:
    engine, _ = build(
        tmp,
        [pat("behind", remediation=SYNC)],
        apps={"app": {"checkout": {"path": str(repos.server), **(checkout or {})}}},
        **cfg,
    )
    notices: list[Notice] = []
    engine.notice = notices.append
    return engine, notices


def decided_fix(engine: Engine) -> FixJob:
    [job] = feed(engine, "BOOM behind").jobs
    assert isinstance(job, FixJob)
    return job


def approvals(notices: list[Notice]) -> list[Notice]:
    return [n for n in notices if n.kind is NoticeKind.APPROVAL]


def test_a_pull_of_app_code_only_runs_automatically(tmp_path: Path, repos: Repos) -> None:
    new = repos.push_change("app.py", "VERSION = 2\n")
    engine, notices = engine_for(tmp_path, repos)
    attempt = engine.run_job(decided_fix(engine))
    assert attempt is not None and attempt.outcome is Outcome.VERIFYING
    assert repos.head() == new
    assert approvals(notices) == []


def test_a_pull_touching_a_workflow_asks_and_lists_it(tmp_path: Path, repos: Repos) -> None:
    old = repos.head()
    repos.push_change("app.py", "VERSION = 2\n")
    new = repos.push_change(".github/workflows/deploy.yml", "on: push\n", "ci: deploy on push")
    engine, notices = engine_for(tmp_path, repos)
    assert engine.run_job(decided_fix(engine)) is None
    assert repos.head() == old  # fetched, never merged
    [ask] = approvals(notices)
    assert ask.text == (
        "behind wants to run git_sync(repo=@checkout)\n"
        f"git_sync {repos.server}: the pull changes protected paths: .github/workflows/deploy.yml"
    )
    assert ".github/workflows/deploy.yml" in notice_html(ask) and "Approval needed" in notice_html(ask)
    explained = subprocess.run(
        [sys.executable, "-m", "healer.cli", "-c", str(tmp_path / "config.yaml"), "explain", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "ask (protected_paths)" in explained
    assert "needs approval: git_sync" in explained and ".github/workflows/deploy.yml" in explained
    # Approved, it runs, and is not asked again.
    assert ask.decision is not None
    settled = engine.settle_approval(ask.decision.id, True, "tester")
    assert settled.status is SettleStatus.OK and settled.job is not None
    attempt = engine.run_job(settled.job)
    assert attempt is not None and attempt.outcome is Outcome.VERIFYING
    assert repos.head() == new
    assert len(approvals(notices)) == 1


def test_every_default_kind_of_protected_path_asks(tmp_path: Path, repos: Repos) -> None:
    for path in ("requirements-prod.txt", "web/package-lock.json", "config/secrets.yaml", "deploy/app.service"):
        repos.push_change(path, "x\n")
    engine, notices = engine_for(tmp_path, repos)
    assert engine.run_job(decided_fix(engine)) is None
    [ask] = approvals(notices)
    assert (
        "protected paths: config/secrets.yaml, deploy/app.service, requirements-prod.txt, web/package-lock.json"
        in ask.text
    )


def test_the_app_block_sets_the_repositorys_own_list(tmp_path: Path, repos: Repos) -> None:
    repos.push_change("Dockerfile", "FROM python:3.12\n")
    engine, notices = engine_for(tmp_path, repos, {"protected": ["migrations/"]})
    attempt = engine.run_job(decided_fix(engine))  # Dockerfile is a default, not in this list
    assert attempt is not None and attempt.outcome is Outcome.VERIFYING and approvals(notices) == []
    # A second host with the same list, behind by a migration: that one asks.
    repos.push_change("migrations/0002_drop_users.sql", "DROP TABLE users;\n")
    second = tmp_path / "second"
    second.mkdir()
    engine2, notices2 = engine_for(second, repos, {"protected": ["migrations/"]})
    assert engine2.run_job(decided_fix(engine2)) is None
    [ask] = approvals(notices2)
    assert "protected paths: migrations/0002_drop_users.sql" in ask.text


def test_an_empty_list_protects_nothing(tmp_path: Path, repos: Repos) -> None:
    new = repos.push_change(".github/workflows/ci.yml", "on: push\n")
    engine, notices = engine_for(tmp_path, repos, {"protected": []})
    attempt = engine.run_job(decided_fix(engine))
    assert attempt is not None and attempt.outcome is Outcome.VERIFYING
    assert repos.head() == new and approvals(notices) == []


def test_the_actions_section_sets_it_too(tmp_path: Path, repos: Repos) -> None:
    repos.push_change("security/policy.md", "no\n")
    engine, _ = build(
        tmp_path,
        [pat("behind", remediation=[{"action": "git_sync", "params": {"repo": "site"}}])],
        actions={"git_sync": {"repos": {"site": {"path": str(repos.server), "protected": ["security/"]}}}},
    )
    notices: list[Notice] = []
    engine.notice = notices.append
    assert engine.run_job(decided_fix(engine)) is None
    [ask] = approvals(notices)
    assert "protected paths: security/policy.md" in ask.text


def test_one_approval_message_lists_a_precondition_warning_and_the_protected_paths(
    tmp_path: Path, repos: Repos
) -> None:
    repos.push_change("pyproject.toml", "[project]\nname = 'shop'\n")
    engine, notices = engine_for(
        tmp_path,
        repos,
        preconditions={"defaults": [{"check": "max_load", "below": 0, "minutes": 1, "severity": "warning"}]},
    )
    assert engine.run_job(decided_fix(engine)) is None
    [ask] = approvals(notices)
    lines = ask.text.split("\n")
    assert lines[:4] == [
        "behind wants to run git_sync(repo=@checkout)",
        f"git_sync {repos.server}: the pull changes protected paths: pyproject.toml",
        "precondition warnings: max_load(< 0)",
        "Preconditions:",
    ]
    assert lines[4].startswith("  FAILED max_load(< 0) [warning]: 1-minute load ")
    assert len(lines) == 5
    print(notice_html(ask))  # the closing note's example


def test_explain_shows_the_priority_the_preconditions_and_the_protected_paths(tmp_path: Path, repos: Repos) -> None:
    repos.push_change(".github/workflows/ci.yml", "on: push\n")
    lock, maintenance = tmp_path / "DEPLOYING", tmp_path / "MAINTENANCE"
    maintenance.write_text("until 18:00\n")
    checks = [
        {"check": "no_file", "path": str(lock)},
        {"check": "no_file", "path": str(maintenance), "severity": "warning"},
    ]
    engine, notices = engine_for(
        tmp_path, repos, preconditions={"defaults": checks}, services={"app": {"criticality": "critical"}}
    )
    assert engine.run_job(decided_fix(engine)) is None
    [ask] = approvals(notices)
    assert f"protected paths: .github/workflows/ci.yml\nprecondition warnings: no_file({maintenance})" in ask.text
    explained = subprocess.run(
        [sys.executable, "-m", "healer.cli", "-c", str(tmp_path / "config.yaml"), "explain", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    lines = explained.splitlines()
    assert lines[1] == "  priority P0 (high severity; service app is critical)", explained
    assert f"    ok no_file({lock}) [critical]: {lock} is absent" in lines, explained
    assert f"    FAILED no_file({maintenance}) [warning]: {maintenance} exists" in lines, explained
    assert (
        f"    needs approval: git_sync {repos.server}: the pull changes protected paths: .github/workflows/ci.yml"
        in (lines)
    ), explained
    print(explained)  # the closing note's example


def approve(engine: Engine, ask: Notice) -> FixJob:
    assert ask.decision is not None
    settled = engine.settle_approval(ask.decision.id, True, "tester")
    assert settled.status is SettleStatus.OK and settled.job is not None
    return settled.job


def test_a_pattern_that_asks_before_the_fetch_asks_again_with_the_paths(tmp_path: Path, repos: Repos) -> None:
    new = repos.push_change("Dockerfile", "FROM python:3.12\n")
    engine, _ = build(
        tmp_path,
        [pat("behind", remediation=SYNC, approval="ask")],
        apps={"app": {"checkout": {"path": str(repos.server)}}},
    )
    notices: list[Notice] = []
    engine.notice = notices.append
    assert feed(engine, "BOOM behind").jobs == []
    [first] = approvals(notices)
    assert "protected" not in first.text  # asked at decision time: nothing was fetched yet
    assert engine.run_job(approve(engine, first)) is None
    [_, second] = approvals(notices)
    assert "the pull changes protected paths: Dockerfile" in second.text
    attempt = engine.run_job(approve(engine, second))
    assert attempt is not None and attempt.outcome is Outcome.VERIFYING and repos.head() == new
    assert len(approvals(notices)) == 2


def test_a_protected_change_pushed_after_the_approval_asks_again(tmp_path: Path, repos: Repos) -> None:
    repos.push_change(".github/workflows/ci.yml", "on: push\n")
    engine, notices = engine_for(tmp_path, repos)
    assert engine.run_job(decided_fix(engine)) is None
    [first] = approvals(notices)
    job = approve(engine, first)
    repos.push_change("requirements.txt", "requests==2.0\n")  # lands between Approve and the fix
    assert engine.run_job(job) is None
    [_, second] = approvals(notices)
    assert "protected paths: .github/workflows/ci.yml, requirements.txt" in second.text
