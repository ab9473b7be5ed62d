"""Forty heavy patterns that each compile alone but not together (issue 19 #15).

``healer check`` must compile exactly what the daemon compiles: before, it
said ok and the daemon crash-looped at start. Now check fails naming the
reason, the daemon refuses to start with the same message, and a reload
that brings such a set keeps the last good one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from support.daemon import base_config, write_yaml
from support.reload import reloader_for

from healer.core.enums import AuditKind

# Each one is close to RE2's per-pattern memory bound; 40 of them exceed the combined scan's.
HEAVY = "(?:" + "[a-z0-9]{1,40}[-_.]" * 375 + ")end"


def _heavy_file(directory: Path) -> None:
    patterns = [{"id": f"heavy-{i}", "regex": f"id{i} {HEAVY}", "examples": ["x"]} for i in range(40)]
    (directory / "heavy.yaml").write_text(yaml.safe_dump({"patterns": patterns}))


def test_check_refuses_a_set_that_does_not_compile_together(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "config.yaml", base_config(tmp_path))
    _heavy_file(tmp_path / "patterns")
    r = subprocess.run(
        [sys.executable, "-m", "healer.cli", "-c", str(config), "check"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "do not compile together into RE2's combined scan" in r.stderr
    assert "Traceback" not in r.stderr


async def test_a_reload_that_brings_such_a_set_keeps_the_last_good_one(tmp_path: Path) -> None:
    _, r, engine, store = reloader_for(tmp_path)
    rules = r.rules
    _heavy_file(tmp_path / "patterns")
    assert not await r.reload("test")
    assert engine.matcher.patterns == rules.patterns
    [row] = store.audit_entries(AuditKind.CONFIG_REJECTED)
    assert "combined scan" in row.detail["error"]


def test_the_daemon_says_which_keys_env_overrides_beat_the_file(tmp_path: Path) -> None:
    """Issue 19 #13: HEALER__KILL_SWITCH in .env beside the config wins over the file, and the log says so."""
    from support.daemon import Daemon

    (tmp_path / ".env").write_text("HEALER__KILL_SWITCH=true\n")
    d = Daemon(tmp_path, {**base_config(tmp_path), "kill_switch": False}).start()
    try:
        log = d.log_text()
        assert "config_overridden" in log and "kill_switch" in log and ".env" in log
        assert "kill switch ON" in d.cli("status").stdout or "kill_switch=True" in d.cli("check").stdout
    finally:
        d.stop()
