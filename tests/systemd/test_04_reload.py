"""Check 4: systemctl reload (SIGHUP) applies a kill-switch change; a bad config on reload keeps the last good one."""

from __future__ import annotations

import pytest
from support.systemd_rig import CONFIG, Rig
from support.waiting import wait_for

pytestmark = pytest.mark.slow

# The live config is a symlink into a directory healer does not watch (as when config
# management owns it), so only SIGHUP, never inotify, can pick up a change to it.
REAL = "/etc/healer/managed/config.yaml"


def test_reload_applies_kill_switch_and_rejects_bad_config(rig: Rig) -> None:
    rig.box.run(["install", "-d", "-m", "0750", "-g", "healer", "/etc/healer/managed"])
    rig.write_config(rig.test_config(), REAL)
    rig.box.run(["ln", "-sfn", REAL, CONFIG])
    try:
        rig.restart()
        pid = rig.main_pid()
        rig.write_config(rig.test_config(kill_switch=True), REAL)
        rig.box.run(["systemctl", "reload", "healer"])
        wait_for(lambda: bool(rig.events("config_reloaded", pid)), 30, lambda: repr(rig.events("config_reloaded")))
        (reloaded,) = rig.events("config_reloaded", pid)
        assert reloaded["why"] == "SIGHUP" and reloaded["kill_switch"] is True, reloaded
        assert "kill_switch" in reloaded["changed"]
        assert "kill switch ON" in rig.box.show("healer", "StatusText")["StatusText"]

        rig.write_config("kill_switch: false\nengine: [not, a, mapping\n", REAL)
        rig.box.run(["systemctl", "reload", "healer"])
        wait_for(lambda: bool(rig.events("config_rejected", pid)), 30, lambda: repr(rig.events("config_rejected")))
        (rejected,) = rig.events("config_rejected", pid)
        assert REAL in rejected["error"] or CONFIG in rejected["error"], rejected
        assert rig.main_pid() == pid and rig.state() == ("active", "running")

        # The last good config (kill switch on) is still in force: a fixable line is only recorded.
        # The file goes back to that good config for the CLI; a symlinked change is never seen
        # without SIGHUP, so the daemon still runs on what it kept.
        rig.write_config(rig.test_config(kill_switch=True), REAL)
        rig.log_line("2026-11-22 10:00:00 ERROR app: HEALER-DEMO: reload check")
        wait_for(lambda: "skip (kill_switch)" in rig.healer("history").stdout, 30, lambda: rig.healer("history").stdout)
    finally:
        rig.box.run(["rm", "-f", CONFIG])
        rig.write_config(rig.test_config())
        rig.restart()
