"""Settling an approval through the facade: a blocked fix says which guardrail stopped it; a runnable one runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.bot_rig import make_healer
from support.engine import make_engine

from healer.app.reports import settle_text
from healer.core.enums import Reason, SettleStatus, SourceName, Verdict

ASK = {
    "id": "ask",
    "regex": r"ASKME (?P<what>\w+)",
    "remediation": [{"action": "command", "params": {"command": "ok"}}],
    "approval": "ask",
    "cooldown": 0,
}
AUTO = {**ASK, "id": "auto", "regex": r"AUTO (?P<what>\w+)", "approval": "auto"}
ACTIONS = {"command": {"commands": {"ok": {"argv": ["true"]}}}}


def _pending(tmp: Path, **over: Any) -> tuple[Any, int]:
    engine = make_engine(tmp, [ASK, AUTO], ACTIONS, **over)
    result = engine.ingest_buffer(b"ASKME now\n", "app", "app.log", SourceName.FILE)
    (decision,) = [d for d in result.decisions if d.verdict is Verdict.ASK]
    return engine, decision.id


def test_a_blocked_approval_says_which_guardrail_stopped_it(tmp_path: Path) -> None:
    engine, did = _pending(tmp_path, engine={"verify_window": 1, "fix_budget_per_hour": 1, "breaker_failures": 9})
    engine.ingest_buffer(b"AUTO spends-the-budget\n", "app", "app.log", SourceName.FILE)
    report = make_healer(engine).settle(did, True, "cli")
    assert report.status is SettleStatus.BLOCKED and report.decision is not None
    assert report.decision.reason is Reason.BUDGET and not report.outcomes
    assert "not run: budget — 1 fixes in the last hour" in settle_text(report, "cli")


def test_a_runnable_approval_runs_it(tmp_path: Path) -> None:
    engine, did = _pending(tmp_path)
    report = make_healer(engine).settle(did, True, "cli")
    assert report.status is SettleStatus.OK and len(report.outcomes) == 1
    assert settle_text(report, "cli").startswith("✅ Approved by cli.\nFixes: 1 attempted, 1 succeeded")


def test_a_pasted_line_says_what_the_policy_would_rule(tmp_path: Path) -> None:
    """The same gate as the engine's decisions: notify only, then the kill switch, then dry run."""
    notify = {"id": "quiet", "regex": r"QUIET (?P<what>\w+)", "approval": "never"}

    def would(**over: Any) -> dict[str, tuple[str, str]]:
        engine = make_engine(tmp_path, [AUTO, notify], ACTIONS, **over)
        hits = make_healer(engine).explain_line("AUTO x QUIET y", "telegram:1").hits
        return {h.pattern_id: (h.would.value, h.why) for h in hits}

    assert would()["quiet"][1] == "notify only: the pattern has no automatic fix"
    assert would()["auto"][1].startswith("runs automatically")
    assert would(kill_switch=True)["auto"][1] == "the kill switch is on"
    assert would(dry_run=True)["auto"][1] == "dry run is on: healer only records what it would run"
    assert would(kill_switch=True)["quiet"][1].startswith("notify only")
    probed = {**AUTO, "id": "probed", "regex": r"PROBED (?P<what>\w+)", "threshold": {"count": 5, "window": 60}}
    engine = make_engine(tmp_path, [{**probed, "confirm": True}], ACTIONS)
    [hit] = make_healer(engine).explain_line("PROBED x", "telegram:1").hits
    assert (hit.would.value, hit.why) == ("run", "runs at the first match once a probe confirms the fault")
