"""Issue 19 #9: distinct notify-only lines must not grow the store (or the log) without bound.

The attack: 1M distinct notify-only lines gave 1M open incidents and 1M
decisions, and pruning removed only fixed/resolved incidents. Here 100k
distinct lines go through the real engine into a real SQLite store; pruning
with an injected clock bounds the incidents to ``engine.max_incidents`` and,
past retention, removes the notify-only ones altogether, while the incident
with a fix still verifying and the one awaiting approval survive (and the
approval still settles). The engine logs incident notices at a bounded rate.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog
from support.bot_rig import write_config
from support.telegram_daemon import ASK, AUTO, FLOOD, words

from healer.app.ruleset import load_ruleset
from healer.core.clock import FakeClock
from healer.core.enums import IncidentStatus, Outcome, SettleStatus, SourceName
from healer.engine.engine import Engine
from healer.store.db import Store

pytestmark = pytest.mark.slow

LINES = 100_000
CAP = 1_000
DAY = 86400.0


def test_100k_distinct_notify_only_incidents_are_bounded_and_the_live_ones_survive(tmp_path: Path) -> None:
    engine_cfg = {"max_incidents": CAP, "verify_window": 40 * DAY, "approval_ttl": 40 * DAY}
    rules = load_ruleset(write_config(tmp_path, [ASK, AUTO, FLOOD], engine=engine_cfg))
    store = Store(rules.settings.state_dir / "healer.db")
    clock = FakeClock(1_800_000_000.0)
    engine = Engine(rules.settings, rules.patterns, store, clock=clock)
    try:
        # The oldest incidents are the two a person still cares about: first in line for any cap.
        asked = engine.ingest_buffer(b"ASKME failure now\n", "app", "app.log", SourceName.FILE)
        assert not asked.jobs
        (job,) = engine.ingest_buffer(b"AUTO failure now\n", "app", "app.log", SourceName.FILE).jobs
        attempt = engine.run_job(job)
        assert attempt is not None and attempt.outcome is Outcome.VERIFYING
        (pending,) = [d for d in store.decisions() if d.pattern_id == "tg-ask" and d.verdict.value == "ask"]

        clock.advance(60)
        data = "".join(f"FLOOD failure {w}\n" for w in words(LINES)).encode()
        with structlog.testing.capture_logs() as logs:
            engine.ingest_buffer(data, "app", "app.log", SourceName.FILE)
        assert store.count_open_incidents() == LINES + 2
        notices = [e for e in logs if e["event"] == "notice"]
        assert len(notices) <= 50, "one log line per distinct incident: the log grows like the store"

        # The cap: the oldest disposable incidents go; the two live ones are older still, and stay.
        clock.advance(3600)
        assert store.prune_incidents(clock.now(), 7, CAP) == LINES + 2 - CAP
        assert store.count_open_incidents() == CAP
        assert store.incident(pending.incident_id) is not None
        assert store.incident(attempt.incident_id) is not None
        assert len(store.decisions(limit=10 * CAP)) <= CAP + 2  # the decisions went with their incidents
        # The approval's button still works after the prune.
        settled = engine.settle_approval(pending.id, True, "@ops")
        assert settled.status is SettleStatus.OK

        # Retention: 31 days on, every notify-only incident is gone; the fix still verifying is not.
        clock.advance(31 * DAY)
        store.prune_incidents(clock.now(), 7, CAP)
        left = store.incidents(status=[IncidentStatus.OPEN.value], limit=10 * CAP)
        assert {i.pattern_id for i in left} <= {"tg-ask", "tg-auto"}
        assert store.incident(attempt.incident_id) is not None
    finally:
        store.close()


def test_the_cap_takes_notify_only_incidents_before_one_with_a_fix_history(tmp_path: Path) -> None:
    failing = {**AUTO, "id": "g-fails", "regex": r"BROKEN failure (?P<what>\w+)"}
    failing["remediation"] = [{"action": "command", "params": {"command": "no"}}]
    actions = {"command": {"commands": {"ok": {"argv": ["true"]}, "no": {"argv": ["false"]}}}}
    rules = load_ruleset(write_config(tmp_path, [failing, FLOOD], actions=actions, engine={"max_incidents": 100}))
    store = Store(rules.settings.state_dir / "healer.db")
    clock = FakeClock(1_800_000_000.0)
    engine = Engine(rules.settings, rules.patterns, store, clock=clock)
    try:
        (job,) = engine.ingest_buffer(b"BROKEN failure now\n", "app", "app.log", SourceName.FILE).jobs
        attempt = engine.run_job(job)
        assert attempt is not None and attempt.outcome is Outcome.FAILED
        clock.advance(60)
        data = "".join(f"FLOOD failure {w}\n" for w in words(300)).encode()
        engine.ingest_buffer(data, "app", "app.log", SourceName.FILE)
        assert store.prune_incidents(clock.now(), 7, 100) == 201
        # The oldest incident, but the one whose failed fix a person may still want to read: kept.
        assert store.incident(attempt.incident_id) is not None
        assert len(store.incidents(limit=1000)) == 100
    finally:
        store.close()
