"""Triage P0-P3 as a table (the pure rule), then as a user reads it: `healer explain`, `healer errors`, `fix` order."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.engine import build, feed, pat

from healer.core.enums import Criticality, Priority, Severity
from healer.engine.triage import Triage, triage
from healer.settings.triage import ServiceSettings, TriageSettings

RULES = TriageSettings(window=3600, frequent=10)
SERVICES = {
    "shop": ServiceSettings(criticality=Criticality.CRITICAL),
    "batch": ServiceSettings(criticality=Criticality.LOW),
    "web": ServiceSettings(),
}

# (severity, matches in the window, service, priority, why)
TABLE = [
    (Severity.CRITICAL, 1, "web", Priority.P0, ("critical severity",)),
    (Severity.HIGH, 1, "web", Priority.P1, ("high severity",)),
    (Severity.MEDIUM, 1, "unknown-service", Priority.P2, ("medium severity",)),
    (Severity.LOW, 1, "web", Priority.P3, ("low severity",)),
    (Severity.HIGH, 10, "web", Priority.P0, ("high severity", "10+ matches in 3600s")),
    (Severity.HIGH, 9, "web", Priority.P1, ("high severity",)),
    (Severity.HIGH, 1, "shop", Priority.P0, ("high severity", "service shop is critical")),
    (Severity.MEDIUM, 10, "shop", Priority.P0, ("medium severity", "10+ matches in 3600s", "service shop is critical")),
    (Severity.MEDIUM, 1, "batch", Priority.P3, ("medium severity", "service batch is low")),
    (Severity.LOW, 1, "batch", Priority.P3, ("low severity", "service batch is low")),  # clamped
    (Severity.CRITICAL, 50, "shop", Priority.P0,
     ("critical severity", "50+ matches in 3600s", "service shop is critical")),
    (Severity.CRITICAL, 1, "batch", Priority.P1, ("critical severity", "service batch is low")),
]  # fmt: skip


@pytest.mark.parametrize(("severity", "matches", "service", "priority", "why"), TABLE)
def test_triage_table(severity: Severity, matches: int, service: str, priority: Priority, why: tuple[str, ...]) -> None:
    assert triage(severity, matches, service, SERVICES, RULES) == Triage(priority, why)


def healer_cli(tmp: Path, *args: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "healer.cli", "-c", str(tmp / "config.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_priority_rises_as_the_incident_grows_in_explain_and_errors(tmp_path: Path) -> None:
    engine, clock = build(
        tmp_path, [pat(severity="medium", approval="never")], services={"app": {"criticality": "critical"}}
    )
    clock.set(time.time())  # the CLI reads the window back from the wall clock
    feed(engine, "BOOM x")
    assert "  priority P1 (medium severity; service app is critical)" in healer_cli(tmp_path, "explain", "1")
    feed(engine, *["BOOM x"] * 9)
    out = healer_cli(tmp_path, "explain", "1")
    assert "  priority P0 (medium severity; 10+ matches in 3600s; service app is critical)" in out
    assert "  #1 P0 [medium] open" in healer_cli(tmp_path, "errors")


def test_fix_errors_works_the_most_urgent_incident_first(tmp_path: Path) -> None:
    low = pat("low", severity="low", regex="LOW (?P<what>[a-z]+)", examples=["LOW x"], threshold=5)
    engine, _ = build(tmp_path, [low, pat("high", severity="high", threshold=5)], engine={"fix_budget_per_hour": 1})
    feed(engine, "LOW a")  # incident 1 (P3), below its threshold: nothing runs yet
    feed(engine, "BOOM b")  # incident 2 (P1)
    result = engine.fix_open("tester")
    assert [(d.incident_id, d.verdict.value, d.reason.value) for d in result.decisions] == [
        (2, "act", "ok"),  # the one fix the budget allows goes to the P1 ...
        (1, "skip", "budget"),  # ... though the P3 is older
    ]


def test_triage_ask_at_makes_a_p0_fix_ask(tmp_path: Path) -> None:
    engine, _ = build(tmp_path, [pat(severity="critical")], triage={"ask_at": "P0"})
    res = feed(engine, "BOOM x")
    assert res.jobs == []
    [d] = res.decisions
    assert (d.verdict.value, d.reason.value, d.detail) == ("ask", "priority", "a P0 incident: triage.ask_at is P0")
