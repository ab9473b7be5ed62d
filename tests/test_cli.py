"""The CLI as a user runs it: real subprocesses, real files, exit codes and output."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from daemon_helpers import TEST_PATTERNS, base_config, write_config

from healer.core.errors import StoreError
from healer.store.db import SCHEMA_VERSION, Store

ROOT = Path(__file__).resolve().parent.parent


def healer(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "healer.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)  # fmt: skip


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    (tmp_path / "patterns").mkdir()
    (tmp_path / "patterns" / "test.yaml").write_text(yaml.safe_dump(TEST_PATTERNS))
    return write_config(tmp_path / "config.yaml", base_config(tmp_path))


def test_check_ok_and_errors(cfg: Path, tmp_path: Path) -> None:
    ok = healer("check", "-c", str(cfg))
    assert ok.returncode == 0, ok.stderr
    assert "2 patterns" in ok.stdout
    (tmp_path / "patterns" / "bad.yaml").write_text("patterns:\n  - id: x\n    regex: '('\n")
    bad = healer("check", "-c", str(cfg))
    assert bad.returncode == 2
    assert "bad.yaml:2 [x]" in bad.stderr
    cfg.write_text("kill_switch: 3\n")
    assert healer("check", "-c", str(cfg)).returncode == 2


def test_example_config_checks_clean() -> None:
    r = healer("check", "-c", str(ROOT / "config.example.yaml"))
    assert r.returncode == 0, r.stderr


def test_test_pattern_examples_and_log(tmp_path: Path) -> None:
    r = healer("test-pattern", str(ROOT / "patterns"))
    assert r.returncode == 0, r.stdout
    assert "0 failures" in r.stdout
    log = tmp_path / "app.log"
    log.write_text(
        "INFO all good\n"
        "ModuleNotFoundError: No module named 'yaml'\n"
        "OSError: [Errno 28] No space left on device\n"
        "DEBUG retry timeout set to 30s\n"
        "ModuleNotFoundError: No module named 'cv2'\n"
    )
    r = healer("test-pattern", str(ROOT / "patterns"), "--log", str(log))
    assert "Lines: 5" in r.stdout
    counts = {line.split()[1]: int(line.split()[0]) for line in r.stdout.splitlines() if line[:10].strip().isdigit()}
    assert counts["missing-module"] == 2
    assert sum(v for k, v in counts.items() if k.startswith("disk")) >= 1
    assert "| ModuleNotFoundError: No module named 'cv2'" in r.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("patterns:\n  - id: a\n    regex: 'x'\n    examples: ['y']\n")
    r = healer("test-pattern", str(broken))
    assert r.returncode == 1 and "example does not match" in r.stdout


def test_replay_json_is_a_dry_run(cfg: Path, tmp_path: Path) -> None:
    log = tmp_path / "old.log"
    log.write_text("".join(f"ERROR BOOM disk {i}\n" for i in range(50)) + "INFO fine\nERROR BOOM net\nLINE 7")
    r = healer("-c", str(cfg), "replay", str(log), "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    summary = rows[-1]["summary"]
    assert summary["lines"] == 53 and summary["matches"] == 52 and summary["incidents"] == 3
    boom = {row["count"]: row for row in rows[:-1] if row["pattern"] == "boom"}
    assert boom[50]["reason"] == "dry_run" and "would run command(command=ok)" in boom[50]["would"]
    assert not (tmp_path / "state").exists(), "replay must not touch the daemon's store"


def test_history_errors_explain_on_empty_and_filled_store(cfg: Path, tmp_path: Path) -> None:
    r = healer("-c", str(cfg), "history")
    assert r.returncode == 0 and "0 total" in r.stdout
    healer("-c", str(cfg), "replay", str(cfg), "--state", str(tmp_path / "state"))
    log = tmp_path / "x.log"
    log.write_text("ERROR BOOM disk\n")
    healer("-c", str(cfg), "replay", str(log), "--state", str(tmp_path / "state"))
    r = healer("-c", str(cfg), "errors", "--since", "1h")
    assert "1 events, 1 incidents" in r.stdout and "boom" in r.stdout
    r = healer("-c", str(cfg), "explain", "1")
    assert "Incident #1" in r.stdout and "skip (dry_run)" in r.stdout
    assert "No incident #99" in healer("-c", str(cfg), "explain", "99").stdout


def test_health_prints_real_figures(cfg: Path) -> None:
    import psutil

    r = healer("-c", str(cfg), "health")
    assert r.returncode == 0, r.stderr
    assert "disk /:" in r.stdout and "memory" in r.stdout and "load" in r.stdout
    pct = psutil.disk_usage("/").percent
    shown = float(r.stdout.split("disk /: ")[1].split("%")[0])
    assert abs(shown - pct) < 2


def test_store_schema_version_and_pruning(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    s = Store(db)
    assert s.query("SELECT version FROM schema_version")[0][0] == SCHEMA_VERSION
    assert s.query("PRAGMA journal_mode")[0][0] == "wal"
    now = time.time()
    with s.tx() as c:
        for i in range(10):
            c.execute("INSERT INTO events (ts, source, service, origin, message, pattern_id, incident_id)"
                      " VALUES (?, 'file', 's', 'o', 'm', 'p', 1)", (now - 86400 * (10 - i),))  # fmt: skip
    assert s.prune(now, retention_days=5, max_events=3) == 7
    s.close()
    con = sqlite3.connect(db)
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer than this healer"):
        Store(db)
