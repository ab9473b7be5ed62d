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


async def test_a_rejected_pattern_file_is_told_once_and_its_fix_confirmed(tmp_path: Path) -> None:
    """The chat hears of each rejected file (file, line, error, what stays) once, and again when it loads."""
    from support.daemon import TEST_PATTERNS

    from healer.core.notices import Notice, NoticeKind

    (tmp_path / "patterns").mkdir()
    (tmp_path / "patterns" / "test.yaml").write_text(yaml.safe_dump(TEST_PATTERNS))
    config, r, engine, store = reloader_for(tmp_path)
    told: list[Notice] = []
    r.notice = told.append
    own = tmp_path / "patterns" / "test.yaml"
    good = own.read_text()
    own.write_text(good.replace("BOOM (?P<what>", "BOOM ((?P<what>"))
    assert await r.reload("test")
    assert {p.id for p in engine.by_id.values()} == {"boom", "numbered"}, "the last good version stays"
    [notice] = told
    assert notice.kind is NoticeKind.CONFIG
    assert notice.text.startswith(f"Pattern file rejected: {own}:")
    assert "not a valid RE2 regex" in notice.text
    assert notice.text.endswith("Its last good version (2 patterns) stays in force; fix the file and save it again.")
    assert await r.reload("test") and len(told) == 1, "the same error is told once"
    own.write_text(good)
    assert await r.reload("test")
    assert told[-1].text == f"Pattern file {own} loads again: 2 patterns in force."
    kinds = [e.kind for e in reversed(store.audit_entries())]
    assert kinds.count("pattern_file_rejected") == 1 and kinds.count("pattern_file_accepted") == 1
    config.write_text("kill_switch: maybe\n")
    assert not await r.reload("test")
    assert told[-1].text.startswith(f"Config rejected: {config}: kill_switch")
