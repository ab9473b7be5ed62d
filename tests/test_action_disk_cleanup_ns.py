"""Issue 12 §5: disk_cleanup as root with processes it cannot inspect, on a real tmpfs in a real mount namespace.

The cleanup runs in a child process that has its own mount namespace (where
the tmpfs is mounted, invisible to the rest of the host) and no
CAP_SYS_PTRACE, so every full-capability root process outside (this test
process, a ``sleep`` it starts, and on this sandbox PID 1) cannot be
inspected by it, exactly as on the hosts of the issue. Those processes live
in a namespace where the tmpfs is not mounted: evidence that they cannot hold
its files, so they must not block the cleanup, and the report names them. A
file the cleanup's own namespace holds open (an inspectable process) is still
protected. Then a full-capability process is put *into* the cleanup's
namespace (``nsenter``) holding one file open: it could see the files and
cannot be inspected, so it is named and each file goes only under a kernel
write lease: the one it holds stays, a closed one goes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "setpriv", "nsenter", "mount")),
    reason="needs root (mount namespaces, tmpfs, dropping CAP_SYS_PTRACE) and util-linux unshare/setpriv/nsenter",
)

INNER = r"""
import json, os, subprocess, sys, time
from pathlib import Path

from healer.core.errors import ActionRefused
from healer.remedy import openfiles
from healer.remedy.base import ActionContext
from healer.remedy.builtin.disk_cleanup import DiskCleanupAction

work, mnt = Path(sys.argv[1]), Path(sys.argv[2])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
old = time.time() - 30 * 86400
for name in ("free.log.1", "held.log.1"):
    (mnt / name).write_bytes(b"x" * 1000)
    os.utime(mnt / name, (old, old))
# An inspectable process (our own child, same credentials) holds one file open.
holder = subprocess.Popen([sys.executable, "-c", "import sys, time; f = open(sys.argv[1]); time.sleep(300)",
                           str(mnt / "held.log.1")])
while not any(os.path.realpath(f"/proc/{holder.pid}/fd/{fd}") == str(mnt / "held.log.1")
              for fd in os.listdir(f"/proc/{holder.pid}/fd")):
    time.sleep(0.01)
settings = DiskCleanupAction.parse_settings(
    {"dirs": [str(mnt)], "rules": [{"glob": "*.log.[0-9]*", "older_than": "7d"}],
     "max_delete_bytes": "1M", "min_free_percent": 1},
    "actions.disk_cleanup",
)

def run():
    ctx = ActionContext(incident_id=1, attempt_id=1, pattern_id="t", params={}, settings=settings,
                        state_dir=work / "state")
    try:
        state = DiskCleanupAction().apply(ctx)
    except ActionRefused as exc:
        return {"refused": str(exc)}
    # The state lists the first cleared processes; the scan itself has them all.
    cleared = openfiles.scan({os.stat(mnt).st_dev}).cleared
    return {"removed": [r["path"] for r in state["removed"]], "skipped": state["skipped"],
            "shown": state["cleared_processes"], "cleared": [f"{h.describe()}: {h.evidence}" for h in cleared],
            "hidden": state["hidden_processes"]}

first = run()
for name in ("late.log.1", "late.log.2"):
    (mnt / name).write_bytes(b"y")
    os.utime(mnt / name, (old, old))
(work / "ready").write_text(str(os.getpid()))
while not (work / "go").exists():
    time.sleep(0.01)
second = run()
holder.kill()
print(json.dumps({"first": first, "second": second,
                  "left": sorted(p.name for p in mnt.iterdir())}))
"""


def test_uninspectable_processes_elsewhere_do_not_block_and_one_that_can_see_the_dir_is_named(
    tmp_path: Path,
) -> None:
    outside = subprocess.Popen(["sleep", "300"])  # full capabilities, the host's mount namespace
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "inner.py"
    script.write_text(INNER)
    inner = subprocess.Popen(
        [
            *("unshare", "--mount", "--propagation", "private"),
            *("setpriv", "--bounding-set", "-sys_ptrace", "--inh-caps", "-sys_ptrace"),
            *(sys.executable, str(script), str(tmp_path), str(mnt)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    intruder = None
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists():
            assert inner.poll() is None, inner.communicate()
            assert time.monotonic() < deadline, "inner cleanup never got ready"
            time.sleep(0.02)
        inner_pid = int((tmp_path / "ready").read_text())
        # A full-capability process inside the cleanup's namespace: it can see the tmpfs, and holds a file.
        hold = "import sys, time; f = open(sys.argv[1]); print('holding', flush=True); time.sleep(300)"
        intruder = subprocess.Popen(
            ["nsenter", f"--mount=/proc/{inner_pid}/ns/mnt", sys.executable, "-c", hold, str(mnt / "late.log.1")],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert intruder.stdout is not None and intruder.stdout.readline() == "holding\n"
        (tmp_path / "go").write_text("")
        out, err = inner.communicate(timeout=60)
    finally:
        for proc in (outside, intruder, inner):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert inner.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    first, second = report["first"], report["second"]
    # Nothing outside the namespace blocked the cleanup; the free file went, the held one stayed.
    assert first["removed"] == [str(mnt / "free.log.1")], first
    assert first["skipped"]["open"] == 1
    cleared = "\n".join(first["cleared"])
    assert f"pid {outside.pid} (sleep, exe unreadable)" in cleared, cleared
    assert f"pid {os.getpid()} (" in cleared
    assert "another mount namespace" in cleared
    assert first["shown"][0] in first["cleared"]
    assert first["hidden"] == []
    # The intruder can see the directory and cannot be inspected: named, and the kernel's lease decides per file.
    assert "refused" not in second, second
    assert [h for h in second["hidden"] if h.startswith(f"pid {intruder.pid} (")], second
    assert not [h for h in second["hidden"] if h.startswith(f"pid {outside.pid} ")]
    assert second["removed"] == [str(mnt / "late.log.2")], second
    assert second["skipped"]["open_unseen"] == 1 and second["skipped"]["open"] == 1
    assert report["left"] == ["held.log.1", "late.log.1"]
