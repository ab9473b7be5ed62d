"""Check 2: ExecStartPre=healer check keeps a broken config from starting; the journal names file and key."""

from __future__ import annotations

import pytest
import yaml
from support.systemd_rig import CONFIG, Rig

pytestmark = pytest.mark.slow


def test_broken_config_does_not_start_and_journal_names_file_and_key(rig: Rig) -> None:
    cfg = yaml.safe_load(yaml.safe_dump(rig.example))
    cfg["engine"]["verify_windw"] = 30  # a typo of verify_window
    rig.write_config(cfg)
    cursor = rig.box.run(["journalctl", "-n0", "--show-cursor", "-q"]).stdout.split("cursor: ")[-1].strip()
    try:
        res = rig.box.run(["systemctl", "restart", "healer"], check=False)
        assert res.returncode != 0, res.stdout + res.stderr
        props = rig.box.show("healer", "ActiveState", "Result", "ExecMainPID")
        # failed, or activating (auto-restart) under Restart=on-failure: never active.
        assert props["ActiveState"] in ("failed", "activating"), props
        assert props["Result"] == "exit-code" and props["ExecMainPID"] == "0", props
        log = rig.box.run(["journalctl", "-u", "healer", "--no-pager", f"--after-cursor={cursor}"]).stdout
        assert f"{CONFIG}: engine.verify_windw: unknown key" in log, log
        # The check ran, not the daemon: ExecStartPre failed before any ExecStart.
        assert "ExecStartPre" in rig.box.run(["systemctl", "status", "--no-pager", "healer"], check=False).stdout
        assert "daemon_ready" not in log
    finally:
        rig.box.run(["systemctl", "stop", "healer"], check=False)
        rig.write_config(rig.example)
        rig.restart()
