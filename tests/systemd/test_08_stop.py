"""Check 8: systemctl stop drains a running fix within TimeoutStopSec; the next start has nothing to settle."""

from __future__ import annotations

import pytest
from support.systemd_rig import Rig
from support.waiting import wait_for

pytestmark = pytest.mark.slow


def test_stop_drains_running_fix(rig: Rig) -> None:
    rig.use_test_config()
    pid = rig.main_pid()
    rig.log_line("2026-11-22 10:00:00 ERROR HEALER-SLOW-FIX now")
    slow = [("pattern", "test-slow-fix")]

    def started() -> bool:
        return any(all(r.get(k) == v for k, v in slow) for r in rig.events("fix_started", pid))

    wait_for(started, 30, lambda: repr(rig.events("fix_started", pid)))
    rig.box.run(["systemctl", "stop", "healer"])
    props = rig.box.show("healer", "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    # Result=timeout would mean systemd gave up after TimeoutStopSec and killed it.
    assert props["ActiveState"] == "inactive" and props["Result"] == "success", props
    assert props["ExecMainStatus"] == "0", props
    names = [r["event"] for r in rig.box.journal("healer", f"_PID={pid}")]
    stop_at = names.index("daemon_stopping")
    finished = [r for r in rig.events("fix_finished", pid) if r.get("pattern") == "test-slow-fix"]
    assert finished and finished[-1]["outcome"] in ("verifying", "succeeded"), finished
    assert "drain_timeout" not in names[stop_at:]
    assert names[-1] == "daemon_stopped", names[stop_at:]

    rig.box.run(["systemctl", "start", "healer"])
    rig.wait_running()
    assert rig.events("attempts_recovered", rig.main_pid()) == []
