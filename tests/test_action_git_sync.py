"""git_sync against a real bare remote and two clones (the ``repos`` fixture, in conftest)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support.actions import Recorder, make_ctx
from support.gitrig import IDENT, Repos, git

from healer.core.enums import Confirm
from healer.core.errors import ActionError, ActionRefused, ParamError
from healer.remedy.builtin.git_sync import GitSyncAction


def settings(r: Repos, **extra: object):
    return GitSyncAction.parse_settings(
        {
            "repos": {"app": {"path": str(r.server), "remote": "origin", "branch": "main", **extra}},
            "timeout": 30,
        },
        "actions.git_sync",
    )


def test_behind_is_fast_forwarded_and_undo_returns(repos: Repos, tmp_path: Path) -> None:
    old = git(repos.server, "rev-parse", "HEAD")
    new = repos.push_change("app.py", "VERSION = 2\n")
    ctx = make_ctx(settings(repos), {"repo": "app"}, tmp_path / "s")
    action = GitSyncAction()
    assert action.target(ctx) == f"repo:{repos.server}"
    action.check(ctx)
    state = action.apply(ctx)
    assert state["old_head"] == old and state["new_head"] == new and state["stash"] is None
    assert git(repos.server, "rev-parse", "HEAD") == new
    assert action.verify(ctx, state).ok
    action.undo(ctx, state)
    assert git(repos.server, "rev-parse", "HEAD") == old
    assert (repos.server / "app.py").read_text() == "VERSION = 1\n"


def test_dirty_tree_is_stashed_with_incident_id_and_kept(repos: Repos, tmp_path: Path) -> None:
    new = repos.push_change("app.py", "VERSION = 2\n")
    (repos.server / "config.txt").write_text("a\nb\nLOCAL EDIT\n")
    (repos.server / ".env").write_text("SECRET=1\n")  # the app's own untracked file (not in .gitignore)
    ctx = make_ctx(settings(repos), {"repo": str(repos.server)}, tmp_path / "s", incident_id=42)
    state = GitSyncAction().apply(ctx)
    assert git(repos.server, "rev-parse", "HEAD") == new
    assert state["stash"] and "healer incident 42" in git(repos.server, "stash", "list")
    assert (repos.server / ".env").read_text() == "SECRET=1\n"  # left where the running app reads it
    # A stash of tracked edits only: the commit, HEAD and the index (a third parent would hold untracked files).
    assert len(git(repos.server, "rev-list", "--parents", "-n1", state["stash"]).split()) == 3
    assert git(repos.server, "show", f"{state['stash']}:config.txt") == "a\nb\nLOCAL EDIT"
    assert GitSyncAction().verify(ctx, state).ok
    GitSyncAction().undo(ctx, state)
    assert "healer incident 42" in git(repos.server, "stash", "list")  # undo never drops it


def test_an_untracked_file_upstream_also_adds_fails_the_sync_and_is_left_as_it_was(
    repos: Repos, tmp_path: Path
) -> None:
    old = git(repos.server, "rev-parse", "HEAD")
    repos.push_change("notes.txt", "upstream\n")
    (repos.server / "notes.txt").write_text("mine, untracked\n")
    ctx = make_ctx(settings(repos), {"repo": "app"}, tmp_path / "s")
    with pytest.raises(ActionError, match="untracked working tree files would be overwritten"):
        GitSyncAction().apply(ctx)
    assert git(repos.server, "rev-parse", "HEAD") == old
    assert (repos.server / "notes.txt").read_text() == "mine, untracked\n"
    assert git(repos.server, "stash", "list") == ""


def test_conflicting_upstream_rolls_back_and_keeps_stash(repos: Repos, tmp_path: Path) -> None:
    # A local, unpushed commit and an upstream commit touch the same line.
    (repos.server / "config.txt").write_text("a\nb\nserver-side\n")
    git(repos.server, "commit", "-q", "-am", "local hotfix")
    local_head = git(repos.server, "rev-parse", "HEAD")
    repos.push_change("config.txt", "a\nb\nupstream-side\n")
    (repos.server / "app.py").write_text("VERSION = 'dirty'\n")  # plus an uncommitted edit
    for strategy in ("ff-only", "merge", "rebase"):
        ctx = make_ctx(settings(repos, strategy=strategy), {"repo": "app"}, tmp_path / "s", incident_id=9)
        with pytest.raises(ActionError) as err:
            GitSyncAction().apply(ctx)
        assert "HEAD is back at" in str(err.value)
        if strategy == "ff-only":  # the first attempt stashed the dirty edit and says where it is
            assert "git stash apply" in str(err.value)
        assert git(repos.server, "rev-parse", "HEAD") == local_head
        assert git(repos.server, "status", "--porcelain") == ""
        assert not (repos.server / ".git" / "MERGE_HEAD").exists()
        assert not (repos.server / ".git" / "rebase-merge").exists()
        assert (repos.server / "config.txt").read_text() == "a\nb\nserver-side\n"
    assert "healer incident 9" in git(repos.server, "stash", "list")
    assert git(repos.server, "show", "stash@{0}:app.py") == "VERSION = 'dirty'"


def test_merge_strategy_merges_divergent_history(repos: Repos, tmp_path: Path) -> None:
    (repos.server / "local.txt").write_text("x\n")
    git(repos.server, "add", "local.txt")
    git(repos.server, "commit", "-q", "-m", "local")
    upstream = repos.push_change("app.py", "VERSION = 3\n")
    ctx = make_ctx(settings(repos, strategy="merge"), {"repo": "app"}, tmp_path / "s")
    state = GitSyncAction().apply(ctx)
    assert state["new_head"] != upstream
    assert GitSyncAction().verify(ctx, state).ok
    # ff-only verify on the same state would say HEAD != upstream
    assert not GitSyncAction().verify(ctx, {**state, "strategy": "ff-only"}).ok


def test_refusals(repos: Repos, tmp_path: Path) -> None:
    with pytest.raises(ActionRefused, match="not in actions.git_sync.repos"):
        GitSyncAction().check(make_ctx(settings(repos), {"repo": "/etc"}, tmp_path))
    git(repos.server, "checkout", "-q", "-b", "feature")
    with pytest.raises(ActionRefused, match="never switches branches"):
        GitSyncAction().check(make_ctx(settings(repos), {"repo": "app"}, tmp_path))
    git(repos.server, "checkout", "-q", "--detach")
    with pytest.raises(ActionRefused, match="detached"):
        GitSyncAction().check(make_ctx(settings(repos), {"repo": "app"}, tmp_path))
    s = GitSyncAction.parse_settings({"repos": {"x": {"path": str(tmp_path)}}}, "actions.git_sync")
    with pytest.raises(ActionRefused, match="not a git checkout"):
        GitSyncAction().check(make_ctx(s, {}, tmp_path))


def test_settings_errors() -> None:
    with pytest.raises(ParamError, match=r"^actions.git_sync.repos.a.strategy"):
        GitSyncAction.parse_settings({"repos": {"a": {"path": "/a", "strategy": "force"}}}, "actions.git_sync")
    with pytest.raises(ParamError, match="remote"):
        GitSyncAction.parse_settings({"repos": {"a": {"path": "/a", "remote": "--upload-pack=x"}}}, "actions.git_sync")
    with pytest.raises(ParamError, match="absolute"):
        GitSyncAction.parse_settings({"repos": {"a": {"path": "rel"}}}, "actions.git_sync")


def test_hooks_and_fsmonitor_of_the_checkout_never_run_and_see_no_secret(
    repos: Repos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19 #2: whoever can write the checkout must not run code as healer, nor read its secrets."""
    monkeypatch.setenv("HEALER_TELEGRAM_TOKEN", "secret-token")
    monkeypatch.setenv("GIT_TRACE", "1")
    loot = tmp_path / "loot"
    loot.mkdir()
    hooks = repos.server / ".git" / "hooks"
    for hook in ("post-merge", "post-checkout", "pre-rebase", "reference-transaction"):
        (hooks / hook).write_text(f"#!/bin/sh\nenv > {loot}/{hook}.env\n")
        (hooks / hook).chmod(0o755)
    fsmonitor = tmp_path / "fsmonitor.sh"
    fsmonitor.write_text(f"#!/bin/sh\nenv > {loot}/fsmonitor.env\nexit 1\n")
    fsmonitor.chmod(0o755)
    git(repos.server, "config", "core.fsmonitor", str(fsmonitor))
    new = repos.push_change("app.py", "VERSION = 2\n")
    (repos.server / "config.txt").write_text("dirty, so status and stash run too\n")
    rec = Recorder()
    ctx = make_ctx(settings(repos), {"repo": "app"}, tmp_path / "s", recorder=rec)
    action = GitSyncAction()
    action.check(ctx)
    state = action.apply(ctx)
    assert action.verify(ctx, state).ok
    action.undo(ctx, state)
    assert state["new_head"] == new
    assert sorted(p.name for p in loot.iterdir()) == []
    # Every git command went through the one audited runner; GIT_TRACE reached none of them.
    git_runs = [d for k, d in rec.audit if k == "proc" and d["argv"][0] == "git"]
    assert {d["step"] for d in git_runs} >= {"git status", "git stash", "git fetch", "git merge", "git reset"}
    assert all("core.hooksPath=/dev/null" in d["argv"] for d in git_runs)
    assert not [d for d in git_runs if "trace:" in d["output"]]


def test_probe_fetches_and_confirms_a_checkout_behind_its_upstream(repos: Repos, tmp_path: Path) -> None:
    old = git(repos.server, "rev-parse", "HEAD")
    repos.push_change("app.py", "VERSION = 2\n")
    repos.push_change("app.py", "VERSION = 3\n")
    found = GitSyncAction().confirm(make_ctx(settings(repos), {"repo": "app"}, tmp_path / "s"))
    assert found.status is Confirm.CONFIRMED
    assert found.detail == f"{repos.server}: HEAD is 2 commit(s) behind origin/main"
    assert git(repos.server, "rev-parse", "HEAD") == old  # the probe fetched, and changed nothing else


def test_probe_refutes_a_checkout_equal_to_its_upstream(repos: Repos, tmp_path: Path) -> None:
    head = git(repos.server, "rev-parse", "HEAD")
    found = GitSyncAction().confirm(make_ctx(settings(repos), {"repo": "app"}, tmp_path / "s"))
    assert found.status is Confirm.REFUTED
    assert found.detail == f"{repos.server}: HEAD {head[:12]} equals origin/main and the tree is clean"


def test_probe_confirms_a_dirty_or_conflicted_checkout(repos: Repos, tmp_path: Path) -> None:
    (repos.server / "config.txt").write_text("a\nb\nLOCAL EDIT\n")
    ctx = make_ctx(settings(repos), {"repo": "app"}, tmp_path / "s")
    found = GitSyncAction().confirm(ctx)
    assert (found.status, found.detail) == (Confirm.CONFIRMED, f"{repos.server}: local changes to config.txt")
    git(repos.server, "commit", "-q", "-am", "local hotfix")
    repos.push_change("config.txt", "a\nb\nupstream-side\n")
    git(repos.server, "fetch", "-q")
    subprocess.run(["git", "merge", "origin/main"], cwd=repos.server, env={**os.environ, **IDENT}, capture_output=True)
    assert (repos.server / ".git" / "MERGE_HEAD").exists()
    found = GitSyncAction().confirm(ctx)
    # Stuck, not confirmed: git_sync can only refuse a merge stopped on conflicts, so a human is needed.
    assert (found.status, found.detail) == (
        Confirm.STUCK,
        f"{repos.server}: a merge is in progress with conflicts in config.txt; git_sync never resolves it",
    )
