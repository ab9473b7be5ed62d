"""Pattern lifecycle, shadow to active: what an operator sees in ``healer patterns``, and what changes.

Real parts throughout: pattern files loaded by the real loader, a real SQLite
store, the real engine with an injected clock, the real ``healer`` CLI on the
same store (in-process ``main``), the real router, the real PTB client
against the fake Bot API, and a log written by a real Python program.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.bot_rig import CHAT, plain, running_bot
from support.engine import build, feed, pat, reasons, run_fix, run_jobs
from support.realerrors import closed_port

from healer.cli import main
from healer.core.enums import AuditKind, Outcome, PatternMode
from healer.core.errors import PatternError
from healer.core.jobs import FixJob, UndoJob
from healer.core.notices import NoticeKind
from healer.rules.patterns import load_file
from healer.settings.schema import DEFAULT_PRIORITY_ROUTING, DEFAULT_ROUTING
from healer.telegram.router import Router


def cli(capsys: pytest.CaptureFixture[str], tmp: Path, *args: str) -> tuple[int, str]:
    capsys.readouterr()  # what the engine logged before this command is not its output
    rc = main(["-c", str(tmp / "config.yaml"), *args])
    out = capsys.readouterr()
    return rc, out.out + out.err


def touch_command(tmp: Path) -> dict[str, Any]:
    return {"command": {"commands": {"ok": ["touch", str(tmp / "ran")]}}}


# -- the pattern file -----------------------------------------------------------------------------
def test_a_file_can_default_to_shadow_and_a_pattern_can_say_otherwise(tmp_path: Path) -> None:
    f = tmp_path / "new.yaml"
    f.write_text(
        yaml.safe_dump(
            {"default_mode": "shadow", "patterns": [pat("fresh"), pat("trusted", mode="active", regex="TRUST")]}
        )
    )
    modes = {p.id: p.mode for p in load_file(f)}
    assert modes == {"fresh": PatternMode.SHADOW, "trusted": PatternMode.ACTIVE}
    plain_file = tmp_path / "old.yaml"
    plain_file.write_text(yaml.safe_dump({"patterns": [pat("old")]}))
    assert [p.mode for p in load_file(plain_file)] == [PatternMode.ACTIVE]


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"default_mode": "maybe", "patterns": [pat()]}, "'default_mode' must be active or shadow, got 'maybe'"),
        ({"patterns": [pat(mode="quiet")]}, "'mode' must be active or shadow, got 'quiet'"),
    ],
)
def test_a_bad_mode_names_the_file_and_the_key(tmp_path: Path, doc: dict[str, Any], problem: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(doc))
    with pytest.raises(PatternError) as err:
        load_file(f)
    assert "bad.yaml" in str(err.value) and problem in str(err.value)


# -- shadow: matches, records, never acts, never pages; promotion changes that -------------------------
def test_shadow_records_what_it_would_do_then_promotion_makes_it_act(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine, clock = build(tmp_path, [pat(mode="shadow")], actions=touch_command(tmp_path))
    res = feed(engine, "BOOM a")
    assert res.jobs == []
    assert reasons(engine) == [("skip", "shadow", 1)]
    assert engine.store.last_decision(1).detail == "would act: command(command=ok)"  # type: ignore[union-attr]
    assert not (tmp_path / "ran").exists()
    # Its news never pages at once: the router puts it in the digest (an active one would go now).
    [news] = [n for n in res.notices if n.kind is NoticeKind.INCIDENT]
    assert news.shadow and news.text.startswith("[shadow] boom: ")
    sent: list[str] = []
    router = Router(lambda text, _n: sent.append(text))
    assert router.route(news, DEFAULT_ROUTING, clock.now(), DEFAULT_PRIORITY_ROUTING) == "digest"
    assert sent == []

    rc, out = cli(capsys, tmp_path, "patterns")
    assert rc == 0
    assert "Patterns: 1 (0 active, 1 shadow)" in out
    assert "  shadow        1         1         1         0    0      0        0        0  boom" in out, out
    assert "keep boom in shadow: 1/20 matches before a promotion is recommended" in out

    feed(engine, *["BOOM a"] * 19)
    rc, out = cli(capsys, tmp_path, "patterns")
    assert "promote boom: 20 matches (>= 20), none marked not this (healer patterns promote ID)" in out, out

    rc, out = cli(capsys, tmp_path, "patterns", "promote", "boom", "--why", "20 clean matches")
    assert rc == 0
    assert out.startswith("boom: shadow -> active (audited, kept in the state dir)"), out
    [entry] = engine.store.audit_entries(AuditKind.PATTERN_MODE)
    assert entry.detail == {"pattern": "boom", "mode": "active", "was": "shadow", "why": "20 clean matches"}
    assert entry.actor.startswith("cli")
    # The bundled or own YAML is untouched: the override is in the store.
    assert "mode: shadow" in (tmp_path / "patterns" / "p.yaml").read_text()

    # The same running engine acts at the next match: it reads the mode at every decision.
    clock.advance(1)
    res = feed(engine, "BOOM b")
    assert [type(j) for j in res.jobs] == [FixJob]
    run_fix(engine, res)
    assert (tmp_path / "ran").exists()
    rc, out = cli(capsys, tmp_path, "patterns")
    assert "  active       21         2         1         1    0      0        0        0  boom (operator)" in out, out
    rc, out = cli(capsys, tmp_path, "patterns", "promote", "boom")
    assert out.strip() == "boom is already active; nothing changed"
    assert len(engine.store.audit_entries(AuditKind.PATTERN_MODE)) == 1


def test_not_this_blocks_promotion_and_counts_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine, _ = build(tmp_path, [pat(mode="shadow")], actions=touch_command(tmp_path))
    feed(engine, *["BOOM a"] * 25)
    rc, out = cli(capsys, tmp_path, "mark", "1", "wrong")
    assert rc == 0
    assert out.strip() == (
        "incident #1 marked not this: boom now has 1 wrong mark(s) and will not be recommended for promotion"
    )
    rc, out = cli(capsys, tmp_path, "mark", "1", "wrong")
    assert out.strip() == "incident #1 was already marked not this (boom)"
    rc, out = cli(capsys, tmp_path, "patterns")
    assert "keep boom in shadow: 1 match(es) marked not this" in out and "promote boom" not in out, out
    assert len(engine.store.audit_entries(AuditKind.MARKED_WRONG)) == 1
    rc, out = cli(capsys, tmp_path, "mark", "99", "wrong")
    assert rc == 2 and "no incident #99" in out
    rc, out = cli(capsys, tmp_path, "patterns", "promote", "nope")
    assert rc == 2 and "no pattern 'nope' is loaded; `healer patterns` lists them" in out


def test_an_undone_fix_recommends_demotion_and_demotion_stops_the_fixes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine, clock = build(tmp_path, [pat()], actions=touch_command(tmp_path))
    run_jobs(engine, feed(engine, "BOOM a"))
    clock.advance(6)  # past the fix's grace: the fault is back, the fix did not hold
    res = feed(engine, "BOOM a")
    assert [type(j) for j in res.jobs] == [UndoJob]
    run_jobs(engine, res)
    assert engine.store.attempts()[0].outcome is Outcome.FAILED
    rc, out = cli(capsys, tmp_path, "patterns")
    assert "  active        2         1         0         1    0      1        0        0  boom" in out, out
    assert "demote boom: 1 of 1 fixes undone or rejected (> 25%) (healer patterns demote ID)" in out

    rc, out = cli(capsys, tmp_path, "patterns", "demote", "boom")
    assert out.startswith("boom: active -> shadow"), out
    (tmp_path / "ran").unlink()
    clock.advance(1)
    res = feed(engine, "BOOM c")
    assert res.jobs == [] and not (tmp_path / "ran").exists()
    assert reasons(engine)[-1] == ("skip", "shadow", 1)
    rc, out = cli(capsys, tmp_path, "patterns")
    assert "Patterns: 1 (0 active, 1 shadow)" in out and "boom (operator)" in out


def test_a_rejected_approval_counts_against_the_pattern(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine, clock = build(tmp_path, [pat(approval="ask")], actions=touch_command(tmp_path))
    clock.set(time.time())  # the CLI settles on the wall clock: the question must not have expired there
    [ask] = feed(engine, "BOOM a").decisions
    rc, out = cli(capsys, tmp_path, "reject", str(ask.id))
    assert rc == 0, out
    rc, out = cli(capsys, tmp_path, "patterns")
    assert "  active        1         1         0         0    0      0        1        0  boom" in out, out
    assert "demote boom: 1 of 1 fixes undone or rejected" in out
