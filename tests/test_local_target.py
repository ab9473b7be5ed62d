"""Issue 13 §2: the bundled Redis/PostgreSQL restarts act only on this host's service, on its own port.

Real client lines (redis-py, libpq before 14) through the real engine with the bundled
patterns and an app whose Redis/PostgreSQL listen on their configured addresses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from healer.app.ruleset import load_ruleset
from healer.cli import main
from healer.core.clock import FakeClock
from healer.core.enums import Outcome, SourceName
from healer.core.jobs import FixJob, ProbeJob
from healer.core.proc import Runner
from healer.engine.engine import Engine
from healer.store.db import Store

REDIS_6380 = "redis.exceptions.ConnectionError: Error 111 connecting to localhost:6380. Connection refused."
COMPOSE = "web_1  | redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379. Connection refused."
COMPOSE_HOST = "kombu.exceptions.OperationalError: Error 111 connecting to redis:6379. Connection refused."
# libpq before 14: the host is on the line after the error (assembled into one event).
LIBPQ_DB_HOST = (
    "psycopg2.OperationalError: could not connect to server: Connection refused\n"
    '\tIs the server running on host "db" (172.18.0.2) and accepting\n'
    "\tTCP/IP connections on port 5432?"
)


def config(tmp: Path) -> Path:
    path = tmp / "config.yaml"
    app = {
        "redis": {"unit": "redis-server.service", "address": "127.0.0.1:6379"},
        "postgres": {"unit": "postgresql.service", "address": "127.0.0.1:5432"},
    }
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp / "state"),
                "engine": {"fix_budget_per_hour": 100, "breaker_failures": 100},
                "telegram": {"token_env": "HEALER_TEST_NONE"},
                "apps": {"shop": app},
            }
        )
    )
    return path


def engine_for(path: Path) -> Engine:
    rules = load_ruleset(path, environ={})
    assert rules.pattern_errors == ()
    return Engine(
        rules.settings, rules.patterns, Store(path.parent / "state" / "healer.db"), clock=FakeClock(), runner=Runner()
    )


def test_a_local_redis_on_another_port_is_refused_with_the_reason(tmp_path: Path) -> None:
    engine = engine_for(config(tmp_path))
    res = engine.ingest_buffer(f"{REDIS_6380}\n{REDIS_6380}\n".encode(), "shop", "shop.log", source=SourceName.FILE)
    [job] = [j for j in res.jobs if isinstance(j, FixJob | ProbeJob)]
    attempt = engine.run_job(job)
    assert attempt is not None and attempt.outcome is Outcome.REFUSED
    assert attempt.detail.endswith(
        "the line names localhost:6380, but redis-server.service listens on 127.0.0.1:6379: "
        "not this host's service; notify only"
    )


def replay(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    log = tmp_path / "app.log"
    log.write_text(text + "\n" + text + "\n")
    assert main(["-c", str(config(tmp_path)), "replay", str(log)]) == 0
    return capsys.readouterr().out


def test_a_compose_container_line_only_notifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = replay(tmp_path, COMPOSE, capsys)
    assert (
        "] redis-refused-other:\n      notify only: 2 matches: notify_only ×2 (last: pattern has no automatic fix)"
        in out
    )
    assert "restart" not in out


def test_a_redis_on_a_container_host_only_notifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = replay(tmp_path, COMPOSE_HOST, capsys)
    assert (
        "] redis-refused-other:\n      notify only: 2 matches: notify_only ×2 (last: pattern has no automatic fix)"
        in out
    )
    assert "restart" not in out


def test_old_libpq_with_another_host_on_the_next_line_only_notifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = replay(tmp_path, LIBPQ_DB_HOST, capsys)
    told = "notify only: 2 matches: notify_only ×2 (last: pattern has no automatic fix)"
    assert f"] db-postgres-refused-other:\n      {told}" in out
    assert "restart" not in out
