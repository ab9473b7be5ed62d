"""Reload in process, on real config files, a real store and a real engine.

The kill switch must be in force before anything expensive happens (issue 19
#12), a bad file keeps the last good config, and a reload restarts exactly the
sources whose settings changed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import yaml
from support.daemon import write_yaml
from support.reload import reloader_for

from healer.core.batch import Batch
from healer.core.clock import SystemClock
from healer.core.enums import AuditKind
from healer.service import reload as reload_mod
from healer.service.lifecycle import SourceSet, StoreCheckpoints
from healer.service.reload import changed_keys
from healer.sources.base import SourceContext


def test_the_audit_diff_is_bounded_on_an_alias_bomb_shape() -> None:
    """40 levels of {a: x, b: x}: 2^40 paths if walked naively; the diff stops and says so."""
    old: dict[str, Any] = {"leaf": 1}
    new: dict[str, Any] = {"leaf": 2}
    for _ in range(40):
        old, new = {"a": old, "b": old}, {"a": new, "b": new}
    t0 = time.monotonic()
    keys = changed_keys(old, new)
    assert time.monotonic() - t0 < 5
    assert keys[-1].startswith("<diff stopped after")


def test_a_plain_diff_names_the_keys() -> None:
    assert changed_keys({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 0}) == ["a.c", "d"]


async def test_the_kill_switch_is_in_force_before_the_diff_runs(tmp_path: Path, monkeypatch: Any) -> None:
    config, r, engine, store = reloader_for(tmp_path)
    seen: list[bool] = []

    def diff(old: object, new: object) -> list[str]:
        seen.append(engine.settings.kill_switch)
        return ["kill_switch"]

    monkeypatch.setattr(reload_mod, "changed_keys", diff)
    write_yaml(config, {**yaml.safe_load(config.read_text()), "kill_switch": True})
    assert await r.reload("test")
    assert seen == [True]
    assert engine.settings.kill_switch and r.rules.settings.kill_switch
    [row] = store.audit_entries(AuditKind.CONFIG_CHANGED)
    assert row.detail["kill_switch"] is True


async def test_a_bad_file_keeps_the_last_good_config(tmp_path: Path) -> None:
    config, r, engine, store = reloader_for(tmp_path)
    before = engine.settings
    config.write_text("engine: {verify_window: [not, a, duration]}\n")
    assert not await r.reload("test")
    assert engine.settings is before and r.rules.settings is before
    [row] = store.audit_entries(AuditKind.CONFIG_REJECTED)
    assert "verify_window" in row.detail["error"]


async def test_a_reload_restarts_only_the_sources_whose_settings_changed(tmp_path: Path) -> None:
    webhooks = {"enabled": True, "port": 0, "rate_per_minute": 60}
    config, r, engine, store = reloader_for(tmp_path, webhooks=webhooks)
    got: list[Batch] = []

    async def sink(batch: Batch) -> None:
        got.append(batch)

    sources = SourceSet(SourceContext(StoreCheckpoints(store), SystemClock()), sink)
    await sources.start(r.rules.settings)
    try:
        files, hooks = sources.running
        assert (files.name, hooks.name) == ("files", "webhooks")
        # Only the webhook section changes: the tailer keeps running untouched.
        write_yaml(config, {**yaml.safe_load(config.read_text()), "webhooks": {**webhooks, "rate_per_minute": 5}})
        assert await r.reload("test")
        assert await sources.reload(r.rules.settings) == ["webhooks"]
        assert sources.running[0] is files and sources.running[1] is not hooks
        # Nothing changed: nothing restarts.
        assert await sources.reload(r.rules.settings) == []
        # A file source change restarts the tailer, which still delivers lines.
        cfg = yaml.safe_load(config.read_text())
        cfg["sources"]["max_line_bytes"] = 4096
        write_yaml(config, cfg)
        assert await r.reload("test")
        assert await sources.reload(r.rules.settings) == ["files"]
        (tmp_path / "logs" / "app.log").write_text("ERROR BOOM disk\n")
        for _ in range(200):
            if got:
                break
            await asyncio.sleep(0.05)
        assert got and b"BOOM disk" in getattr(got[0], "data", b"")
    finally:
        await sources.stop()
    assert sources.running == []
