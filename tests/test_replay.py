"""``healer replay`` says what the daemon would have done: thresholds, cooldowns, questions, refusals.

The log is written by the stdlib ``logging`` module with its default time
format (each record's time set to the hour it stands for), as an app writes
one; the CLI runs as a user runs it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from support.daemon import write_config

PATTERNS = {
    "patterns": [
        {
            "id": "redis-down",
            "severity": "high",
            "regex": r"ConnectionError: Error 111 connecting to (?P<host>[a-z]+)",
            "group_by": ["host"],
            "threshold": {"count": 3, "window": 60},
            "cooldown": "1h",
            "remediation": [{"action": "command", "params": {"command": "ok"}}],
            "examples": ["redis.exceptions.ConnectionError: Error 111 connecting to cache:6379"],
        },
        {
            "id": "asks",
            "regex": r"disk quota nearly full",
            "approval": "ask",
            "remediation": [{"action": "command", "params": {"command": "ok"}}],
            "examples": ["WARNING disk quota nearly full"],
        },
        {
            "id": "unit-gone",
            "regex": r"unit (?P<unit>[a-z]+) crashed",
            "remediation": [{"action": "restart", "params": {"service": "{unit}"}}],
            "examples": ["unit web crashed"],
        },
    ]
}
DAY = "2026-11-30"


def at(hms: str) -> float:
    return datetime.fromisoformat(f"{DAY} {hms}").timestamp()


def write_log(path: Path, records: list[tuple[str, int, str]]) -> None:
    """A log as ``logging`` writes it: '2026-11-30 08:00:00,000 ERROR app: ...', each record at its own time."""
    logger = logging.getLogger(f"replay-test-{path.name}")
    logger.propagate = False
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s app: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for hms, level, message in sorted(records):
            record = logger.makeRecord(logger.name, level, __file__, 0, message, (), None)
            record.created = at(hms)
            record.msecs = 0
            logger.handle(record)
    finally:
        handler.close()
        logger.removeHandler(handler)


def healer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "healer.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    (tmp_path / "patterns").mkdir()
    (tmp_path / "patterns" / "p.yaml").write_text(yaml.safe_dump(PATTERNS))
    return write_config(
        tmp_path / "config.yaml",
        {
            "state_dir": str(tmp_path / "state"),
            "patterns_dirs": [str(tmp_path / "patterns")],
            "actions": {
                "command": {"commands": {"ok": {"argv": ["true"]}}},
                "restart": {"units": {"web": {"unit": "web.service"}}},
            },
        },
    )


def day_log(path: Path) -> Path:
    """Seven hours of an app's log: INFO every 5 minutes, Redis errors scattered, then in bursts."""
    redis = "redis.exceptions.ConnectionError: Error 111 connecting to cache:6379. Connection refused."
    records = [(f"{h:02d}:{m:02d}:00", logging.INFO, "GET /health 200") for h in range(8, 15) for m in range(0, 60, 5)]
    # Scattered: three in the day, never three in a minute; the daemon would not have acted.
    records += [(t, logging.ERROR, redis) for t in ("08:10:07", "09:40:31", "11:20:02")]
    # A burst: the third within 60 s is where the daemon would have run the fix.
    records += [(t, logging.ERROR, redis) for t in ("13:00:00", "13:00:10", "13:00:20", "13:00:30", "13:00:40")]
    # Back 30 minutes later, inside the hour's cooldown; and again once it is over.
    records += [(t, logging.ERROR, redis) for t in ("13:30:00", "13:30:05", "13:30:09")]
    records += [(t, logging.ERROR, redis) for t in ("14:30:00", "14:30:05", "14:30:09")]
    records += [(t, logging.WARNING, "disk quota nearly full") for t in ("10:15:00", "10:16:00")]
    records += [("12:00:00", logging.ERROR, "unit db crashed")]
    write_log(path, records)
    return path


def test_replay_with_timestamps_gives_the_daemons_decisions(cfg: Path, tmp_path: Path) -> None:
    log = day_log(tmp_path / "app.log")
    assert log.read_text().splitlines()[0] == "2026-11-30 08:00:00,000 INFO app: GET /health 200"
    r = healer("-c", str(cfg), "replay", str(log), "--timestamps")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("Replayed 101 lines") and "17 matches, 3 incidents" in out[0], out
    assert "windows on the lines' own timestamps" in out[0]
    redis = out[out.index("  #1 ×14 [high] redis-down:") + 1 :][:2]
    assert redis == [
        f"      would run: 2 fixes (2 matches) at {DAY} 13:00:20, {DAY} 14:30:09: command(command=ok)",
        "      would be skipped: 12 matches: threshold ×9 (last: 2/3 in 60s), cooldown ×3 (last: last fix 1789s ago)",
    ], out
    asks = out[out.index("  #2 ×2 [medium] asks:") + 1 :][:2]
    assert asks == [
        f"      would ask: 1 question (1 match) at {DAY} 10:15:00: command(command=ok)",
        "      would be skipped: 1 match: approval ×1 (last: waiting for approval)",
    ], out
    unit = out[out.index("  #3 ×1 [medium] unit-gone:") + 1]
    assert unit == (
        f"      would be refused: 1 fix (1 match) at {DAY} 12:00:00: "
        "restart: service 'db' is not in actions.restart.units; it will not be restarted"
    ), out


def test_replay_without_timestamps_reads_every_line_at_once(cfg: Path, tmp_path: Path) -> None:
    """The same log read in one go: the scattered errors meet the threshold, the later bursts are one fix."""
    log = day_log(tmp_path / "app.log")
    r = healer("-c", str(cfg), "replay", str(log), "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    by_pattern = {row["pattern"]: row for row in rows[:-1]}
    assert by_pattern["redis-down"]["outcomes"] == {"run": 14}
    assert by_pattern["redis-down"]["outcome"] == "run"
    assert by_pattern["unit-gone"]["outcome"] == "refuse"
    assert rows[-1]["summary"]["timestamps"] is False
    assert time.time() - by_pattern["redis-down"]["decisions"][0]["ts"] < 300, "read now, not at the log's time"
    stamped = healer("-c", str(cfg), "replay", str(log), "--json", "--timestamps")
    rows = [json.loads(line) for line in stamped.stdout.splitlines()]
    redis = next(row for row in rows if row.get("pattern") == "redis-down")
    assert redis["outcomes"] == {"run": 2, "skip": 12}
    runs = [d["ts"] for d in redis["decisions"] if d["would"] == "run"]
    assert runs == [at("13:00:20"), at("14:30:09")]
