"""In-process engines on a real store and an injected clock.

``make_engine`` builds from a settings mapping (fault and hostile-input tests); ``build`` writes a
config and a pattern file and loads them through the real ruleset loader, as the daemon does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from healer.app.ruleset import load_ruleset, typed_settings
from healer.core.batch import Chunk
from healer.core.clock import Clock, FakeClock
from healer.core.enums import SourceName
from healer.core.jobs import FixJob, IngestResult
from healer.core.proc import Runner
from healer.core.records import FixAttempt
from healer.engine.engine import Engine
from healer.remedy.registry import step_checker
from healer.rules.patterns import Pattern, build_pattern
from healer.settings.load import validate
from healer.store.db import Store


def make_settings(tmp: Path, actions: Mapping[str, Any] | None = None, **over: Any) -> Any:
    raw: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "patterns_dirs": [str(tmp)],
        "telegram": {"token_env": "HEALER_TEST_NO_TOKEN"},
        "engine": {"verify_window": 1, "fix_budget_per_hour": 100000, "breaker_failures": 100000},
        "actions": dict(actions or {}),
    }
    raw.update(over)
    return typed_settings(validate(raw, str(tmp / "config.yaml"), {}))


def make_engine(
    tmp: Path,
    patterns: Sequence[Mapping[str, Any]],
    actions: Mapping[str, Any] | None = None,
    *,
    clock: Clock | None = None,
    runner: Runner | None = None,
    store: Store | None = None,
    **over: Any,
) -> Engine:
    settings = make_settings(tmp, actions, **over)
    built: list[Pattern] = [
        build_pattern(dict(p), "test.yaml", i, step_checker(settings.actions)) for i, p in enumerate(patterns)
    ]
    st = store or Store(tmp / "state" / "healer.db")
    return Engine(settings, built, st, clock=clock or FakeClock(), runner=runner or Runner())


def build(tmp: Path, patterns: list[dict[str, Any]], **cfg: Any) -> tuple[Engine, FakeClock]:
    (tmp / "patterns").mkdir(parents=True, exist_ok=True)
    (tmp / "patterns" / "p.yaml").write_text(yaml.safe_dump({"patterns": patterns}))
    config = {
        "state_dir": str(tmp / "state"),
        "patterns_dirs": [str(tmp / "patterns")],
        "engine": {"verify_window": 10, "fix_budget_per_hour": 100, "breaker_failures": 100},
        "actions": {"command": {"commands": {"ok": ["true"], "fail": ["false"]}}},
        "telegram": {"token_env": "HEALER_TEST_NONE"},
    }
    for k, v in cfg.items():
        if isinstance(v, dict) and isinstance(config.get(k), dict):
            config[k] = {**config[k], **v}  # type: ignore[dict-item]  # config mixes str and dict values
        else:
            config[k] = v
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    rules = load_ruleset(tmp / "config.yaml")
    assert rules.pattern_errors == (), rules.pattern_errors
    clock = FakeClock()
    return Engine(
        rules.settings, rules.patterns, Store(tmp / "state" / "healer.db"), clock=clock, runner=Runner()
    ), clock


def pat(pid: str = "boom", **over: Any) -> dict[str, Any]:
    p = {
        "id": pid,
        "severity": "high",
        "regex": "BOOM (?P<what>[a-z]+)",
        "remediation": [{"action": "command", "params": {"command": "ok"}}],
        "threshold": 1,
        "cooldown": 0,
        "max_attempts": 3,
        "approval": "auto",
        "examples": ["BOOM x"],
    }
    p.update(over)
    return p


def feed(engine: Engine, *lines: str) -> IngestResult:
    return engine.ingest_buffer(
        "".join(line + "\n" for line in lines).encode(), "app", "test.log", source=SourceName.FILE
    )


def reasons(engine: Engine) -> list[tuple[str, str, int]]:
    return [(d.verdict.value, d.reason.value, n) for d, n in engine.store.decision_counts()]


def run_jobs(engine: Engine, res: IngestResult) -> list[FixAttempt | None]:
    return [engine.run_job(j) for j in res.jobs]


def run_fix(engine: Engine, res: IngestResult) -> FixAttempt:
    """Run the one job of ``res``, which must be a fix that starts, and return its attempt."""
    [job] = res.jobs
    assert isinstance(job, FixJob), job
    attempt = engine.run_job(job)
    assert attempt is not None, "the fix did not start"
    return attempt


def chunk_sink(engine: Engine) -> Callable[[Chunk], None]:
    """A FileTailer sink into ``engine``, as the daemon's file source wires one (the result is not the tailer's)."""

    def sink(chunk: Chunk) -> None:
        engine.ingest_chunk(chunk)

    return sink
