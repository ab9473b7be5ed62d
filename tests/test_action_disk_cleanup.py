"""disk_cleanup on a real temp tree, and on a real full tmpfs when we may mount one."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.actions import Recorder, make_ctx

from healer.core.enums import Confirm
from healer.core.errors import ActionRefused, ParamError
from healer.core.proc import Runner
from healer.remedy import openfiles
from healer.remedy.builtin.disk_cleanup import DiskCleanupAction, DiskState

OLD = time.time() - 30 * 86400


def old(path: Path, data: bytes = b"x" * 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (OLD, OLD))
    return path


def settings(root: Path, **extra: object):
    raw = {
        "dirs": [str(root)],
        "rules": [{"glob": "*.log.[0-9]*", "older_than": "7d"}, {"glob": "*.gz", "older_than": "7d"}],
        "max_delete_bytes": "1G",
        "min_free_percent": 1,
        **extra,
    }
    return DiskCleanupAction.parse_settings(raw, "actions.disk_cleanup")


def test_only_old_closed_files_inside_root_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    outside = tmp_path / "precious"
    removable = [old(root / "app.log.1"), old(root / "sub" / "app.log.2.gz"), old(root / "x.gz")]
    fresh = root / "app.log.3"
    fresh.parent.mkdir(exist_ok=True)
    fresh.write_bytes(b"new")
    current = old(root / "app.log")  # no rule matches the live log
    target = old(outside / "secret.gz")
    (root / "link.gz").symlink_to(target)  # a link to an old file outside
    os.symlink(outside, root / "linkdir.log.1")  # a link to a directory outside
    held = old(root / "held.log.1")
    fh = open(held, "ab")  # open for writing by this process
    try:
        rec = Recorder()
        ctx = make_ctx(settings(root), {}, tmp_path / "s", recorder=rec)
        action = DiskCleanupAction()
        assert not action.reversible
        action.check(ctx)
        state = action.apply(ctx)
    finally:
        fh.close()
    removed = {r["path"] for r in state["removed"]}
    assert removed == {str(p) for p in removable}
    assert state["freed_bytes"] == 300
    assert all(r["bytes"] == 100 for r in state["removed"])
    for p in removable:
        assert not p.exists()
    assert fresh.exists() and current.exists() and held.exists() and target.exists()
    assert (root / "link.gz").is_symlink()
    assert state["skipped"]["open"] == 1
    assert rec.checkpoints and len(rec.checkpoints[0]["planned"]) == 3
    assert sorted(d["path"] for k, d in rec.audit if k == "delete") == sorted(removed)
    assert action.verify(ctx, state).ok


def test_cap_limits_bytes_per_run_oldest_first(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    files = [old(root / f"a.log.{i}", b"y" * 1000) for i in range(5)]
    for i, f in enumerate(files):
        os.utime(f, (OLD - i * 100, OLD - i * 100))  # a.log.4 is the oldest
    state = DiskCleanupAction().apply(make_ctx(settings(root, max_delete_bytes=2500), {}, tmp_path / "s"))
    assert [r["path"] for r in state["removed"]] == [str(files[4]), str(files[3])]
    assert state["skipped"]["cap"] == 3


def test_refusals_and_settings(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    root.mkdir()
    with pytest.raises(ActionRefused):
        DiskCleanupAction().check(make_ctx(settings(root), {"dir": "/etc"}, tmp_path))
    with pytest.raises(ParamError, match=r"^actions.disk_cleanup.dirs"):
        DiskCleanupAction.parse_settings({"dirs": ["/"], "rules": []}, "actions.disk_cleanup")
    with pytest.raises(ParamError, match="older_than"):
        DiskCleanupAction.parse_settings(
            {"dirs": ["/var/log/x"], "rules": [{"glob": "*"}], "max_delete_bytes": 1, "min_free_bytes": 1},
            "actions.disk_cleanup",
        )
    with pytest.raises(ParamError, match="threshold"):
        DiskCleanupAction.parse_settings(
            {"dirs": ["/var/log/x"], "rules": [{"glob": "*", "older_than": "1d"}], "max_delete_bytes": "1G"},
            "actions.disk_cleanup",
        )


def test_journal_vacuum_goes_through_runner(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    root.mkdir()
    runner = Runner()
    s = settings(root, journal_vacuum_size="200M", journalctl="/bin/true")
    state = DiskCleanupAction().apply(make_ctx(s, {}, tmp_path, runner=runner))
    assert runner.history[-1].argv == ("/bin/true", f"--vacuum-size={200 * 1024 * 1024}")
    assert state["journal"] is not None and state["journal"]["rc"] == 0


def test_probe_compares_the_real_free_space_with_the_bound(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    root.mkdir()
    vfs = os.statvfs(root)
    free = vfs.f_bavail * vfs.f_frsize
    above = settings(root, min_free_percent=None, min_free_bytes=free + (1 << 30))
    found = DiskCleanupAction().confirm(make_ctx(above, {}, tmp_path / "s"))
    assert found.status is Confirm.CONFIRMED
    assert found.detail.startswith(f"{root} ") and found.detail.endswith(f"bytes free < {free + (1 << 30)}")
    below = settings(root, min_free_percent=None, min_free_bytes=max(1, free // 2))
    found = DiskCleanupAction().confirm(make_ctx(below, {}, tmp_path / "s"))
    assert found.status is Confirm.REFUTED
    assert found.detail.startswith(f"{root}: ") and found.detail.endswith(": above the free-space bound")
    gone = settings(tmp_path / "nowhere")
    found = DiskCleanupAction().confirm(make_ctx(gone, {}, tmp_path / "s"))
    assert (found.status, found.detail) == (Confirm.UNKNOWN, "none of the configured dirs exists")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (need root/CAP_SYS_ADMIN): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False, timeout=10)


def test_real_full_disk_is_freed(tmpfs: Path, tmp_path: Path) -> None:
    chunk = b"z" * (512 * 1024)
    i = 0
    try:
        while True:
            old(tmpfs / "archive" / f"old-{i}.gz", chunk)
            i += 1
    except OSError:
        pass  # ENOSPC: the disk is full
    (tmpfs / "live.log").write_bytes(b"")
    s = settings(tmpfs, min_free_percent=50, max_delete_bytes="6M")
    action = DiskCleanupAction()
    ctx = make_ctx(s, {}, tmp_path / "s")
    nothing_done: DiskState = {
        "roots": [str(tmpfs)], "planned": [], "removed": [], "freed_bytes": 0, "skipped": {},
        "uninspected_processes": 0, "cleared_processes": [], "hidden_processes": [], "journal": None,
        "reversible": True,
    }  # fmt: skip
    assert not action.verify(ctx, nothing_done).ok
    assert action.confirm(ctx).status is Confirm.CONFIRMED
    state = action.apply(ctx)
    assert state["freed_bytes"] <= 6 * 1024 * 1024
    result = action.verify(ctx, state)
    assert result.ok, result.detail
    assert (tmpfs / "live.log").exists()
    assert action.confirm(ctx).status is Confirm.REFUTED


def test_processes_nobody_may_inspect_are_named_and_files_go_only_under_a_lease(tmp_path: Path) -> None:
    """Issue 12 §5: as root, with the check on, beside whatever this host hides even from root (here PID 1)."""
    root = tmp_path / "logs"
    victim = old(root / "app.log.1")
    held = old(root / "held.log.1")
    hold = "import sys, time; f = open(sys.argv[1]); print('holding', flush=True); time.sleep(300)"
    child = subprocess.Popen([sys.executable, "-c", hold, str(held)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "holding\n"
        hidden = openfiles.scan({root.stat().st_dev}).blocking
        state = DiskCleanupAction().apply(make_ctx(settings(root), {}, tmp_path))
    finally:
        child.kill()
        child.wait()
    assert not victim.exists() and held.exists()
    assert state["skipped"]["open"] == 1
    assert state["hidden_processes"][:1] == [h.describe() for h in hidden[:1]]
    for h in state["hidden_processes"][:-1]:
        assert re.fullmatch(r"pid [0-9]+ \(.+\)", h), h


def test_a_lease_sees_any_opener_and_its_break_does_not_kill_us(tmp_path: Path) -> None:
    path = old(tmp_path / "app.log.1")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert openfiles.sole_opener(fd)
        assert openfiles.still_sole(fd)
        # An open elsewhere waits for the lease; the break is signalled with a signal ignored by default.
        opener = subprocess.Popen([sys.executable, "-c", "import sys; open(sys.argv[1]).close()", str(path)])
        while openfiles.still_sole(fd):
            assert opener.poll() is None
            time.sleep(0.01)
        openfiles.release(fd)
        assert opener.wait(timeout=30) == 0
    finally:
        os.close(fd)
    with open(path) as other:
        fd = os.open(path, os.O_RDONLY)
        try:
            assert not openfiles.sole_opener(fd), other
        finally:
            os.close(fd)


def test_symlinked_parent_of_a_root_is_refused_and_nothing_is_deleted_where_it_points(tmp_path: Path) -> None:
    """Issue 19 #10: replace /srv/app/logs (here app/logs) by a link; healer must not clean where it points."""
    elsewhere = tmp_path / "elsewhere" / "logs"
    precious = old(elsewhere / "db.log.1")
    app = tmp_path / "app"
    app.mkdir()
    (app / "logs").symlink_to(elsewhere)
    s = settings(app / "logs")
    with pytest.raises(ActionRefused, match="symlink"):
        DiskCleanupAction().check(make_ctx(s, {}, tmp_path / "s"))
    with pytest.raises(ActionRefused, match="symlink"):
        DiskCleanupAction().apply(make_ctx(s, {}, tmp_path / "s"))
    # A link higher up (the app dir itself) is refused the same way.
    real_app = tmp_path / "real-app"
    old(real_app / "logs" / "app.log.1")
    (tmp_path / "app2").symlink_to(real_app)
    with pytest.raises(ActionRefused, match="app2 is a symlink"):
        DiskCleanupAction().apply(make_ctx(settings(tmp_path / "app2" / "logs"), {}, tmp_path / "s"))
    assert precious.exists() and (real_app / "logs" / "app.log.1").exists()


def test_files_renamed_away_mid_cleanup_are_skipped_as_vanished(tmp_path: Path) -> None:
    """The rename race ends as "vanished", not an unhandled FileNotFoundError that fails the fix."""
    root = tmp_path / "logs"
    moved = old(root / "a.log.1")
    subdir_file = old(root / "sub" / "b.log.1")
    replaced = old(root / "c.log.1")
    kept = old(root / "d.log.1")
    rec = Recorder()

    def race(state: object) -> None:
        # Runs after the plan is made and before the first unlink: the attacker's window.
        moved.rename(tmp_path / "a.elsewhere")
        (root / "sub").rename(tmp_path / "sub.elsewhere")
        replaced.unlink()
        replaced.write_bytes(b"a new file under the old name")

    ctx = make_ctx(settings(root), {}, tmp_path / "s", recorder=rec)
    ctx = dataclasses.replace(ctx, checkpoint=race)
    state = DiskCleanupAction().apply(ctx)
    assert [r["path"] for r in state["removed"]] == [str(kept)]
    assert state["skipped"]["vanished"] == 3
    assert (tmp_path / "a.elsewhere").exists() and (tmp_path / "sub.elsewhere" / subdir_file.name).exists()
    assert replaced.read_bytes() == b"a new file under the old name"
