"""Check 1: install.sh on a fresh Debian gives a service that starts under the real systemd."""

from __future__ import annotations

import pytest
from support.systemd_rig import CONFIG, Rig

pytestmark = pytest.mark.slow


def test_install_starts_active_running_after_ready(rig: Rig) -> None:
    assert "healer enabled and started" in rig.installed.stdout, rig.installed.stdout
    props = rig.box.show("healer", "Type", "ActiveState", "SubState", "StatusText", "UnitFileState", "NRestarts")
    # Type=notify: systemd leaves a unit "activating" until READY=1 arrives, so running means READY=1 came.
    assert props["Type"] == "notify"
    assert (props["ActiveState"], props["SubState"]) == ("active", "running"), props
    assert props["UnitFileState"] == "enabled"
    assert props["NRestarts"] == "0"
    status = rig.box.run(["systemctl", "status", "--no-pager", "healer"]).stdout
    assert "Active: active (running)" in status, status

    (ready,) = rig.events("daemon_ready")
    assert ready["state_dir"] == "/var/lib/healer", ready
    assert ready["level"] == "info"
    assert props["StatusText"], "READY=1 carries a STATUS= line"


def test_state_config_and_secrets_where_the_readme_says(rig: Rig) -> None:
    stat = rig.box.run(
        ["stat", "-c", "%n %U:%G %a", "/var/lib/healer", "/var/lib/healer/healer.db", "/etc/healer", CONFIG,
         "/etc/healer/healer.env"]
    ).stdout.split("\n")  # fmt: skip
    assert stat[:5] == [
        "/var/lib/healer healer:healer 750",
        "/var/lib/healer/healer.db healer:healer 600",
        "/etc/healer root:healer 750",
        f"{CONFIG} root:healer 640",
        "/etc/healer/healer.env root:root 600",
    ]


def test_install_twice_changes_nothing(rig: Rig) -> None:
    pid = rig.main_pid()
    again = Rig.run_install(rig.box)
    assert "up to date" in again.stdout, again.stdout
    assert "installed /" not in again.stdout, again.stdout
    assert rig.main_pid() == pid, "a second install.sh restarted the daemon"
