"""healer's /metrics endpoint: served on the loop, parseable, and moving."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from healer.app.ruleset import load_ruleset
from healer.core.clock import FakeClock
from healer.engine.engine import Engine
from healer.service.metrics import Metrics, measure_loop_lag, serve
from healer.store.db import Store

COUNTERS = {
    "healer_lines_read": ["source"],
    "healer_events": ["source"],
    "healer_matches": ["pattern"],
    "healer_fix_attempts": ["action", "outcome"],
    "healer_decisions": ["verdict", "reason"],
    "healer_config_reloads": ["result"],
    "healer_incidents_opened": ["priority", "mode"],
}
GAUGES = [
    "healer_incidents_open",
    "healer_kill_switch",
    "healer_circuit_open",
    "healer_loop_lag_seconds",
    "healer_last_reload_timestamp_seconds",
    "healer_last_reload_success",
    "healer_patterns_loaded",
]


def _scrape(port: int) -> tuple[str, dict[str, float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        ctype = resp.headers["Content-Type"]
        text = resp.read().decode()
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items()))
            samples[key] = s.value
    return ctype, samples


async def _scrape_async(port: int) -> tuple[str, dict[str, float]]:
    # urllib blocks; the server runs on this very loop, so scrape from a thread.
    return await asyncio.to_thread(_scrape, port)


def test_many_instances_do_not_collide():
    a, b = Metrics(), Metrics()
    a.matches.labels(pattern="p").inc()
    assert b"healer_matches_total" in a.render()
    assert b'pattern="p"' not in b.render()


def test_families_and_types():
    m = Metrics("web-1")
    fams = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    for name, labels in COUNTERS.items():
        assert fams[name].type == "counter", name
    for name in GAUGES:
        assert fams[name].type == "gauge", name
    # Label names are part of the contract with the alert rules.
    m.fix_attempts.labels(action="restart", outcome="failed").inc()
    m.decisions.labels(verdict="act", reason="ok").inc()
    text = m.render().decode()
    assert 'healer_fix_attempts_total{action="restart",host="web-1",outcome="failed"} 1.0' in text
    assert 'healer_decisions_total{host="web-1",reason="ok",verdict="act"} 1.0' in text


async def test_serve_scrape_and_counters_move():
    m = Metrics("web-1")
    server = await serve(m, "127.0.0.1", 0)
    try:
        assert server.port > 0
        ctype, before = await _scrape_async(server.port)
        assert ctype.startswith("text/plain")
        assert "healer_incidents_open|host=web-1" in before

        m.lines_read.labels(source="app").inc(5)
        m.events.labels(source="app").inc()
        m.matches.labels(pattern="redis_down").inc(2)
        m.fix_attempts.labels(action="restart", outcome="succeeded").inc()
        m.incidents_open.set(3)
        m.circuit_open.set(1)
        m.patterns_loaded.set(12)
        m.record_reload(False, 1700000000.0)

        _, after = await _scrape_async(server.port)
        assert after["healer_lines_read_total|host=web-1|source=app"] == 5
        assert after["healer_events_total|host=web-1|source=app"] == 1
        assert after["healer_matches_total|host=web-1|pattern=redis_down"] == 2
        assert after["healer_fix_attempts_total|action=restart|host=web-1|outcome=succeeded"] == 1
        assert after["healer_config_reloads_total|host=web-1|result=failure"] == 1
        assert after["healer_incidents_open|host=web-1"] == 3
        assert after["healer_circuit_open|host=web-1"] == 1
        assert after["healer_patterns_loaded|host=web-1"] == 12
        assert after["healer_last_reload_success|host=web-1"] == 0
        assert after["healer_last_reload_timestamp_seconds|host=web-1"] == 1700000000.0

        m.lines_read.labels(source="app").inc()
        _, again = await _scrape_async(server.port)
        assert again["healer_lines_read_total|host=web-1|source=app"] == 6
    finally:
        await server.stop()


async def test_label_values_are_escaped():
    m = Metrics()
    m.matches.labels(pattern='we"ird\\\nid').inc()
    fams = list(text_string_to_metric_families(m.render().decode()))
    (fam,) = [f for f in fams if f.name == "healer_matches"]
    (sample,) = [s for s in fam.samples if s.name.endswith("_total")]
    assert sample.labels["pattern"] == 'we"ird\\\nid'


async def test_stop_releases_port():
    m = Metrics()
    server = await serve(m, "127.0.0.1", 0)
    port = server.port
    await server.stop()
    with pytest.raises(OSError):
        await asyncio.to_thread(_scrape, port)


async def test_only_metrics_path_served():
    m = Metrics()
    server = await serve(m, port=0)
    try:
        assert server.host == "127.0.0.1"

        def get(path):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
                    return r.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert await asyncio.to_thread(get, "/") == 404
    finally:
        await server.stop()


async def test_loop_lag_records_overshoot():
    m = Metrics()
    await measure_loop_lag(m, 0.01, iterations=2)
    assert 0 <= m.loop_lag._value.get() < 0.5

    async def blocker():
        await asyncio.sleep(0.005)
        import time

        time.sleep(0.2)  # blocks the loop: exactly what the gauge must see

    task = asyncio.create_task(blocker())
    await measure_loop_lag(m, 0.01, iterations=1)
    await task
    assert m.loop_lag._value.get() >= 0.15


# -- state gauges are read at scrape time ------------------------------------------------------


def _failing_engine(tmp: Path) -> tuple[Engine, FakeClock]:
    """A real engine over a real store whose one fix always fails: two failures trip the breaker."""
    (tmp / "patterns").mkdir()
    pattern = {
        "id": "boom",
        "severity": "high",
        "regex": "BOOM (?P<what>[a-z]+)",
        "remediation": [{"action": "command", "params": {"command": "fail"}}],
        "threshold": 1,
        "cooldown": 0,
        "max_attempts": 5,
        "approval": "auto",
        "examples": ["BOOM x"],
    }
    (tmp / "patterns" / "p.yaml").write_text(yaml.safe_dump({"patterns": [pattern]}))
    config = {
        "state_dir": str(tmp / "state"),
        "patterns_dirs": [str(tmp / "patterns")],
        "engine": {"breaker_failures": 2, "breaker_cooldown": 600, "fix_budget_per_hour": 100},
        "actions": {"command": {"commands": {"fail": ["false"]}}},
        "telegram": {"token_env": "HEALER_TEST_NONE"},
    }
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    rules = load_ruleset(tmp / "config.yaml")
    clock = FakeClock()
    return Engine(rules.settings, rules.patterns, Store(tmp / "state" / "healer.db"), clock=clock), clock


def _gauges(m: Metrics) -> dict[str, float]:
    return {s.name: s.value for f in text_string_to_metric_families(m.render().decode()) for s in f.samples}


def test_circuit_open_goes_back_to_0_when_the_breaker_closes(tmp_path: Path) -> None:
    """The bug: the gauge was pushed only when the breaker tripped, so it stayed 1 and the alert fired for ever."""
    engine, clock = _failing_engine(tmp_path)
    m = Metrics()
    kill_switch = [False]
    m.bind(engine.store, clock, lambda: kill_switch[0], lambda: len(engine.by_id))
    assert _gauges(m)["healer_circuit_open"] == 0
    for what in ("a", "b"):
        for job in engine.ingest_buffer(f"BOOM {what}\n".encode(), "app", "test.log").jobs:
            engine.run_job(job)
        clock.advance(1)
    assert engine.breaker_open(clock.now())
    g = _gauges(m)
    assert g["healer_circuit_open"] == 1
    assert g["healer_incidents_open"] == 2
    assert g["healer_patterns_loaded"] == 1
    clock.advance(601)  # past breaker_cooldown: nothing else happens, only the time passes
    assert not engine.breaker_open(clock.now())
    assert _gauges(m)["healer_circuit_open"] == 0
    # The kill switch gauge follows the settings in force, with no one pushing it.
    assert _gauges(m)["healer_kill_switch"] == 0
    kill_switch[0] = True
    assert _gauges(m)["healer_kill_switch"] == 1


def test_every_series_carries_the_host_in_force_at_scrape_time() -> None:
    """The fleet view groups by host: every sample has it, and a reload that renames the host shows at once."""
    m = Metrics()
    host = ["web-1"]
    m.bind(_NoState(), FakeClock(), lambda: False, lambda: 3, lambda: host[0])
    m.matches.labels(pattern="redis_down").inc()
    m.record_reload(True, 1.0)

    def hosts() -> set[str]:
        fams = text_string_to_metric_families(m.render().decode())
        return {s.labels.get("host", "<none>") for f in fams for s in f.samples}

    assert hosts() == {"web-1"}
    host[0] = "web-2"
    assert hosts() == {"web-2"}
    text = m.render().decode()
    assert 'healer_matches_total{host="web-2",pattern="redis_down"} 1.0' in text
    assert 'healer_patterns_loaded{host="web-2"} 3.0' in text


class _NoState:
    def count_open_incidents(self) -> int:
        return 0

    def breaker_open_until(self) -> float | None:
        return None


def test_incidents_are_counted_by_priority_and_mode(tmp_path: Path) -> None:
    """A real engine over a real store: each new incident's triage, and whether its pattern is in shadow."""
    (tmp_path / "patterns").mkdir()
    patterns = [
        {"id": "loud", "severity": "high", "regex": "LOUD", "group_by": ["match", "service"], "examples": ["LOUD"]},
        {"id": "quiet", "severity": "low", "regex": "QUIET", "mode": "shadow", "examples": ["QUIET"]},
    ]
    (tmp_path / "patterns" / "p.yaml").write_text(yaml.safe_dump({"patterns": patterns}))
    config = {
        "state_dir": str(tmp_path / "state"),
        "patterns_dirs": [str(tmp_path / "patterns")],
        "services": {"shop": {"criticality": "critical"}},
        "telegram": {"token_env": "HEALER_TEST_NONE"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    rules = load_ruleset(tmp_path / "config.yaml")
    m = Metrics()
    engine = Engine(
        rules.settings, rules.patterns, Store(tmp_path / "state" / "healer.db"), clock=FakeClock(), metrics=m
    )
    engine.ingest_buffer(b"LOUD\nQUIET\n", "app", "app.log")
    engine.ingest_buffer(b"LOUD\n", "shop", "shop.log")
    g = {
        (s.labels.get("priority"), s.labels.get("mode")): s.value
        for f in text_string_to_metric_families(m.render().decode())
        for s in f.samples
        if s.name == "healer_incidents_opened_total"
    }
    assert g == {("P1", "active"): 1.0, ("P3", "shadow"): 1.0, ("P0", "active"): 1.0}


def test_outcomes_count_what_the_person_was_told(tmp_path: Path) -> None:
    """healer_outcomes{outcome} moves where the notice is emitted: two failed fixes, then the breaker's escalation."""
    engine, clock = _failing_engine(tmp_path)
    m = Metrics()
    engine.metrics = m
    for what in ("a", "b"):
        for job in engine.ingest_buffer(f"BOOM {what}\n".encode(), "app", "test.log").jobs:
            engine.run_job(job)
        clock.advance(1)
    g = {
        s.labels["outcome"]: s.value
        for f in text_string_to_metric_families(m.render().decode())
        for s in f.samples
        if s.name == "healer_outcomes_total"
    }
    assert g == {"failed": 2, "escalated": 1}, g  # the second failure trips the breaker: one escalation
