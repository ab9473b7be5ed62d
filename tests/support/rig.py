"""An engine on a fake clock with the real store, runner and ruleset loader, and what a user reads of it.

``healer explain`` and ``healer history`` over its store, and the text of
the notices it sent: the verdict and confirmation tests assert on these.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from healer.app.reports import explain_text, history_text
from healer.app.ruleset import Ruleset, load_ruleset
from healer.app.usecases import Healer
from healer.core.clock import FakeClock
from healer.core.jobs import Job
from healer.core.notices import Notice, NoticeKind
from healer.core.proc import Runner
from healer.core.records import FixAttempt
from healer.engine.engine import Engine
from healer.store.db import Store


class Rig:
    """An engine on a fake clock, the notices it sent, and the CLI's reports over its store."""

    def __init__(self, tmp: Path, patterns: list[dict[str, Any]], **cfg: Any) -> None:
        (tmp / "patterns").mkdir(parents=True, exist_ok=True)
        (tmp / "patterns" / "p.yaml").write_text(yaml.safe_dump({"patterns": patterns}))
        config: dict[str, Any] = {
            "state_dir": str(tmp / "state"),
            "patterns_dirs": [str(tmp / "patterns")],
            "engine": {"verify_window": 60, "fix_budget_per_hour": 100, "breaker_failures": 100},
            "actions": {"command": {"commands": {"ok": ["true"], "fail": ["false"]}}},
            "telegram": {"token_env": "HEALER_TEST_NONE"},
        }
        for k, v in cfg.items():
            config[k] = {**config[k], **v} if isinstance(config.get(k), dict) else v
        (tmp / "config.yaml").write_text(yaml.safe_dump(config))
        rules = load_ruleset(tmp / "config.yaml")
        assert rules.pattern_errors == (), rules.pattern_errors
        self.clock = FakeClock(datetime(2026, 12, 2, 6, 0, 0).timestamp())
        self.notices: list[Notice] = []
        self.engine = Engine(
            rules.settings,
            rules.patterns,
            Store(tmp / "state" / "healer.db"),
            clock=self.clock,
            runner=Runner(),
            notice=self.notices.append,
        )
        ruleset = Ruleset(self.engine.settings, tuple(self.engine.by_id.values()), (), ())
        self.healer = Healer(lambda: ruleset, self.engine.store, self.engine, self.clock, self.run)

    def run(self, jobs: Sequence[Job]) -> list[FixAttempt | None]:
        return [self.engine.run_job(j) for j in jobs]

    def feed(self, *lines: str) -> list[FixAttempt | None]:
        """Lines read from the app's log now; the jobs they cause run at once."""
        res = self.engine.ingest_buffer("".join(x + "\n" for x in lines).encode(), "app", "app.log")
        return self.run(res.jobs)

    def stamp(self, offset: float = 0.0) -> str:
        """A logging-style leading timestamp ``offset`` seconds from the fake now, in local time."""
        return datetime.fromtimestamp(self.clock.now() + offset).strftime("%Y-%m-%d %H:%M:%S,123")

    def explain(self, incident: int = 1) -> str:
        return explain_text(self.healer.explain(incident))

    def history(self) -> str:
        return history_text(self.healer.history())

    def said(self, kind: NoticeKind) -> list[str]:
        return [n.text for n in self.notices if n.kind is kind]
