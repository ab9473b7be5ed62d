"""Storm torture: SIGKILL the real daemon while one file receives an error storm.

Every line of a storm matches one incident, so each batch is stored as a bounded
sample whose last row counts the elided lines (healer.engine.ingest.SAMPLE). After
kills at random moments, the store must still account for every line exactly
once: the incident's count, the events' ``count`` sum and the lines the sample
rows stand for all equal what was written.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from support.daemon import DaemonProcess, integrity, ro_query, write_yaml

from torture.test_crash_rotation import _recorded

pytestmark = pytest.mark.torture


def _config(tmp: Path) -> Path:
    (tmp / "patterns").mkdir()
    write_yaml(
        tmp / "patterns" / "torture.yaml",
        {
            "patterns": [
                {
                    "id": "torture-err",
                    "severity": "low",
                    "regex": r"TORTURE-ERR n=(?P<file>[abc]):(?P<num>\d+)",
                    "group_by": [],
                    "threshold": 1,
                    "approval": "never",
                    "examples": ["x TORTURE-ERR n=a:1 y"],
                }
            ]
        },
    )
    return write_yaml(
        tmp / "config.yaml",
        {
            "state_dir": str(tmp / "state"),
            "patterns_dirs": [str(tmp / "patterns")],
            "sources": {"files": [{"path": str(tmp / "logs" / "a.log"), "service": "svc-a"}]},
            "telegram": {"token_env": "HEALER_TEST_NO_TOKEN"},
            "log_level": "info",
        },
    )


def test_sigkill_during_a_storm_loses_and_duplicates_nothing(tmp_path: Path, long_mode: bool) -> None:
    kills_wanted = 30 if long_mode else 5
    seed = int(os.environ.get("HEALER_TORTURE_SEED", str(random.SystemRandom().randrange(1 << 30))))
    rng = random.Random(seed)
    (tmp_path / "logs").mkdir()
    cfg = _config(tmp_path)
    db = tmp_path / "state" / "healer.db"
    log = tmp_path / "logs" / "a.log"
    daemon = DaemonProcess(cfg, tmp_path / "daemon.log")
    written = 0

    def burst(n: int) -> None:
        nonlocal written
        lines = "".join(f"2026-01-01 00:00:00 ERROR torture: TORTURE-ERR n=a:{written + i} pad\n" for i in range(n))
        with log.open("a") as fh:
            fh.write(lines)
        written += n

    daemon.start()
    daemon.wait_ready()
    for _ in range(kills_wanted):
        burst(rng.randrange(2_000, 20_000))  # the daemon is reading this when it is killed
        time.sleep(rng.uniform(0.0, 0.4))
        daemon.kill()
        assert integrity(db) == "ok"
        burst(rng.randrange(100, 5_000))  # lines pile up while healer is down
        daemon.start()
        daemon.wait_ready()
    want = {("a", i) for i in range(written)}
    deadline = time.monotonic() + 90
    got = _recorded(db)
    while time.monotonic() < deadline and set(got) != want:
        time.sleep(0.3)
        got = _recorded(db)
    rc = daemon.stop()
    got = _recorded(db)
    rows = ro_query(db, "SELECT count(*), coalesce(sum(count), 0) FROM events")[0]
    (incident_count,) = ro_query(db, "SELECT sum(count) FROM incidents")[0]
    summary = f"storm torture seed={seed} kills={kills_wanted} written={written} rows={rows[0]} counted={rows[1]}"
    print(summary)
    assert rc == 0, daemon.tail()
    lost = sorted(want - set(got))
    dup = sorted(k for k, c in got.items() if c > 1)
    assert not lost, f"{summary}; first lost: {lost[:10]}\n{daemon.tail()}"
    assert not dup, f"{summary}; first duplicated: {dup[:10]}"
    assert set(got) == want
    assert rows[1] == written == incident_count, summary
    assert rows[0] < written / 10, f"{summary}: the storm was not sampled"
