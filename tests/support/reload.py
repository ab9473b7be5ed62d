"""A Reloader over a real config, store and engine, as the daemon builds one (no sources, no bot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from healer.app.ruleset import load_ruleset
from healer.core.clock import SystemClock
from healer.engine.engine import Engine
from healer.service.reload import Reloader
from healer.service.sdnotify import Notifier
from healer.store.db import Store
from support.daemon import base_config, write_yaml


def reloader_for(tmp: Path, **over: Any) -> tuple[Path, Reloader, Engine, Store]:
    cfg = base_config(tmp, **over)
    config = write_yaml(tmp / "config.yaml", cfg)
    rules = load_ruleset(config)
    store = Store(tmp / "state" / "healer.db")
    engine = Engine(rules.settings, rules.patterns, store)

    async def swapped(old: object, new: object) -> None:
        return None

    r = Reloader(
        config, rules, engine=engine, store=store, clock=SystemClock(), notifier=Notifier(), status=lambda: "",
        on_swapped=swapped,
    )  # fmt: skip
    return config, r, engine, store
