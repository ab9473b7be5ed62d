"""Issue 12 §5: a really full disk is cleaned with the open-file check on, beside processes that cannot be inspected.

The cleanup runs as root without CAP_SYS_PTRACE (``setpriv``), in the host's
own mount namespace: every full-capability root process (this test, a file
holder it starts, PID 1) is then uninspectable to it and can see the
directory, as a sandbox's PID 1 is to root on the hosts of the issue. Files
go only under a kernel write lease; a file such a process holds stays, and
one held by an inspectable process (same credentials as the cleanup) stays
by inode as before. Without CAP_LEASE, on files it does not own, the kernel
cannot answer either: the cleanup refuses, naming the processes and what to
do, and deletes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("setpriv", "mount", "umount")),
    reason="needs root (a tmpfs, dropping CAP_SYS_PTRACE) and util-linux setpriv",
)

CLEANER = r"""
import json, sys
from pathlib import Path

from healer.core.errors import ActionRefused
from healer.remedy import openfiles
from healer.remedy.base import ActionContext
from healer.remedy.builtin.disk_cleanup import DiskCleanupAction

mnt, work = Path(sys.argv[1]), Path(sys.argv[2])
settings = DiskCleanupAction.parse_settings(
    {"dirs": [str(mnt)], "rules": [{"glob": "*.gz", "older_than": "7d"}],
     "max_delete_bytes": "6M", "min_free_percent": 50},
    "actions.disk_cleanup",
)
ctx = ActionContext(incident_id=1, attempt_id=1, pattern_id="t", params={}, settings=settings, state_dir=work)
action = DiskCleanupAction()
hidden = [h.pid for h in openfiles.scan({mnt.stat().st_dev}).blocking]
try:
    state = action.apply(ctx)
except ActionRefused as exc:
    print(json.dumps({"refused": str(exc), "hidden": hidden}))
else:
    print(json.dumps({"state": state, "verify": action.verify(ctx, state).detail, "hidden": hidden}))
"""
HOLD = "import sys, time; f = open(sys.argv[1]); print('holding', flush=True); time.sleep(300)"
OLD = time.time() - 30 * 86400
NO_PTRACE = ("setpriv", "--bounding-set", "-sys_ptrace", "--inh-caps", "-sys_ptrace")


@pytest.fixture
def full(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB tmpfs filled to ENOSPC with old archives; the first two are the oldest."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True, timeout=10)
    try:
        i = 0
        try:
            while True:
                (mnt / f"old-{i}.gz").write_bytes(b"z" * (512 * 1024))
                os.utime(mnt / f"old-{i}.gz", (OLD + i, OLD + i))
                i += 1
        except OSError:
            pass  # ENOSPC: the disk is full
        assert shutil.disk_usage(mnt).free < 512 * 1024
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=10)


def holder(path: Path, *prefix: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*prefix, sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "holding\n"
    return proc


def clean(mnt: Path, tmp_path: Path, *drop: str) -> dict[str, Any]:
    script = tmp_path / "cleaner.py"
    script.write_text(CLEANER)
    argv = [*NO_PTRACE[:2], "-sys_ptrace" + "".join(f",-{c}" for c in drop),
            *NO_PTRACE[3:4], "-sys_ptrace" + "".join(f",-{c}" for c in drop),
            sys.executable, str(script), str(mnt), str(tmp_path / "state")]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def test_full_tmpfs_is_cleaned_with_the_check_on_and_no_held_file_is_deleted(full: Path, tmp_path: Path) -> None:
    unseen = holder(full / "old-0.gz")  # full capabilities: the cleanup cannot look into it
    seen = holder(full / "old-1.gz", *NO_PTRACE)  # the cleanup's own credentials: inspectable
    try:
        report = clean(full, tmp_path)
    finally:
        for proc in (unseen, seen):
            proc.kill()
            proc.wait()
    assert "refused" not in report, report
    hidden = report["hidden"]
    assert isinstance(hidden, list) and unseen.pid in hidden and seen.pid not in hidden
    state = report["state"]
    assert isinstance(state, dict)
    assert (full / "old-0.gz").exists() and (full / "old-1.gz").exists()
    assert state["skipped"]["open_unseen"] == 1 and state["skipped"]["open"] == 1, state["skipped"]
    assert 0 < state["freed_bytes"] <= 6 * 1024 * 1024
    assert str(full / "old-2.gz") in {r["path"] for r in state["removed"]}
    assert report["verify"].startswith(f"{full}: "), report["verify"]
    assert shutil.disk_usage(full).free * 2 >= shutil.disk_usage(full).total
    # Named: the first of them, with what /proc still tells about each.
    assert state["hidden_processes"][0].startswith(f"pid {hidden[0]} ("), state["hidden_processes"]


def test_without_leases_the_refusal_names_the_hidden_processes_and_deletes_nothing(full: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in full.iterdir())
    for p in full.iterdir():
        os.chown(p, 65534, 65534)  # not ours: a lease needs CAP_LEASE
    report = clean(full, tmp_path, "lease")
    refused = report["refused"]
    assert isinstance(refused, str), report
    hidden = report["hidden"]
    assert isinstance(hidden, list) and hidden
    assert refused.startswith(f"cannot tell which files are open: pid {hidden[0]} ("), refused
    assert f"could not be inspected and may see {full}" in refused
    assert "no file lease: Permission denied" in refused
    assert "give healer CAP_SYS_PTRACE" in refused and "with CAP_LEASE it can ask the kernel per file" in refused
    assert "set actions.disk_cleanup.require_open_check: false" in refused
    assert sorted(p.name for p in full.iterdir()) == before
