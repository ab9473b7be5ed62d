"""An in-process engine on a real store, for fault and hostile-input tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from healer.app.ruleset import typed_settings
from healer.core.clock import Clock, FakeClock
from healer.core.proc import Runner
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
