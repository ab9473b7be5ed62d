"""Issue 14: every fix outcome told once, with host, service, pattern, target, change, result and undo.

The real daemon, the real python-telegram-bot client and the fake Bot API
(tests/support/telegram_daemon.py); each test asserts the exact text a person
receives, as the Bot API got it (HTML), and the buttons under it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fake_telegram import FakeTelegram
from support.telegram_daemon import CHAT, Healer

HOST = "web-1"
PFX = "<b>[web-1]</b> "  # every message names its host first (issue 17, branch fleetchat)
ACTIONS = {
    "command": {
        "commands": {
            "ok": {"argv": ["true"]},
            "flip": {"argv": ["touch", "{incident}.flag"], "undo": ["rm", "-f", "{incident}.flag"]},
            "fail": {"argv": ["false"]},
        }
    }
}


def pat(pid: str, regex: str, steps: list[str], **kw: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "description": f"{pid} for the outcome tests.",
        "severity": "high",
        "regex": regex,
        "remediation": [{"action": "command", "params": {"command": c}} for c in steps],
        "approval": "auto",
        "cooldown": 0,
        "examples": [regex.replace(r"(?P<what>\w+)", "now")],
        **kw,
    }


PATTERNS = [
    pat("tg-flip", r"FLIP failure (?P<what>\w+)", ["flip"]),
    pat("tg-half", r"HALF failure (?P<what>\w+)", ["flip", "fail"], max_attempts=1),
    pat("tg-nope", r"NOPE failure (?P<what>\w+)", ["nope"], approval="ask"),
]


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    f = FakeTelegram().start()
    yield f
    f.stop()


def _start(tmp_path: Path, fake: FakeTelegram, **extra: Any) -> Healer:
    cfg = {"host": HOST, "actions": ACTIONS, "preconditions": {"retry_every": 1}, **extra}
    return Healer(tmp_path, fake, extra=cfg, patterns=PATTERNS)


@pytest.fixture
def healer(tmp_path: Path, fake: FakeTelegram) -> Iterator[Healer]:
    h = _start(tmp_path, fake)
    try:
        yield h
    finally:
        h.stop()


WHERE1 = "host web-1 · service app · pattern tg-flip · incident #1"
FLIP1 = f"{WHERE1}\ntarget: command:flip\nchange: command(command=flip): touch 1.flag"
WHERE2 = "host web-1 · service app · pattern tg-half · incident #2"
HALF2 = (
    f"{WHERE2}\ntarget: command:flip, command:fail\n"
    "change: command(command=flip): touch 2.flag → command(command=fail): false"
)


def _buttons(call_params: dict[str, Any]) -> list[tuple[str, str]]:
    markup = call_params.get("reply_markup") or {"inline_keyboard": []}
    return [(b["text"], b["callback_data"]) for row in markup["inline_keyboard"] for b in row]


def test_success_is_told_after_the_window_with_an_undo_that_works(healer: Healer) -> None:
    healer.connected()
    healer.append("FLIP failure now")
    started = healer.fake.wait_text("fix #1 started", CHAT).params
    assert started["text"] == f"{PFX}🛠 <b>fix #1 started</b>\n{FLIP1}"
    applied = healer.fake.wait_text("fix #1 applied", CHAT).params
    assert applied["text"] == (
        f"{PFX}🩹 <b>fix #1 applied; watching 0.5s for recurrence</b>\n{FLIP1}\n"
        "next: succeeded if the error stays away, undone if it comes back"
    )
    assert _buttons(applied) == []
    done = healer.fake.wait_text("fix #1 succeeded", CHAT).params
    assert (
        done["text"] == f"{PFX}🩹 <b>fix #1 succeeded: the error stayed away for 0.5s</b>\n{FLIP1}\nundo: healer undo 1"
    )
    assert _buttons(done) == [("↩ Undo", "ud:1")]
    flag = healer.tmp / "1.flag"
    assert flag.exists()  # the fix ran in the daemon's cwd
    healer.fake.press(CHAT, dict(done["_result"]), "ud:1")
    told = healer.fake.wait_text("fix #1 undone by", CHAT).params["text"]
    assert told == f"{PFX}🩹 <b>fix #1 undone by telegram:{CHAT}</b>\n{FLIP1}\nundone: rolled back command"
    assert not flag.exists()
    edit = healer.fake.wait_for(lambda: healer.fake.calls_of("editMessageText"), what="the undone edit")[-1].params
    assert str(edit["text"]).endswith("\n\n—\n↩ Undone by @ops."), edit["text"]
    assert edit.get("reply_markup") is None  # the button is gone: nobody presses twice
    # A second undo has nothing left to put back, and says so (exit 1).
    res = healer.cli("undo", "1")
    assert res.returncode == 1 and res.stdout.strip() == "fix #1 is rolled_back: nothing to undo", res.stdout


def test_busy_fix_is_retried_then_fails_is_undone_and_escalates(healer: Healer) -> None:
    healer.connected()
    healer.append("FLIP failure now", "HALF failure now")  # the second wants the target the first holds
    busy = healer.fake.wait_text("fix not started", CHAT).params["text"]
    assert busy == (
        f"{PFX}🩹 <b>fix not started: target busy (command:flip, command:fail): another fix holds it</b>\n"
        f"{HALF2}\n"
        "next: retried every 1s once the target is free (preconditions.retry_every), through every guardrail"
    )
    retried = healer.fake.wait_text("fix #2 started", CHAT).params["text"]
    assert retried == f"{PFX}🛠 <b>fix #2 started (retry: what blocked it has cleared)</b>\n{HALF2}"
    failed = healer.fake.wait_text("fix #2 failed", CHAT).params
    assert failed["text"] == (
        f"{PFX}🩹 <b>fix #2 failed and was rolled back: command false exited 1</b>\n{HALF2}\n"
        "undone: rolled back command"
    )
    assert _buttons(failed) == []
    assert not (healer.tmp / "2.flag").exists()  # the first step was put back
    esc = healer.fake.wait_text("escalated to a human", CHAT).params["text"]
    assert esc == (
        f"{PFX}🚨 <b>escalation</b> incident #2\n"
        "tg-half: escalated to a human (max_attempts): 1 attempt failed; last: command false exited 1\n"
        f"{WHERE2}\n"
        "next: no more automatic fixes for this incident; look at it, then 'explain 2'"
    )
    texts = healer.fake.texts(CHAT)
    assert texts.index(failed["text"]) < texts.index(esc)  # the result first, then what it led to
    # The structured log of the fix carries incident, attempt and pattern on every line.
    lines = [json.loads(ln) for ln in healer.daemon_log().splitlines() if ln.startswith("{")]
    fix2 = [e for e in lines if e.get("attempt") == 2]
    assert {e["event"] for e in fix2} >= {"fix_started", "fix_finished"}
    assert all(e["incident"] == 2 and e["pattern"] == "tg-half" for e in fix2), fix2


def test_kill_switch_refusal_and_rejection_say_what_happens_next(tmp_path: Path, fake: FakeTelegram) -> None:
    h = _start(tmp_path, fake)
    try:
        h.connected()
        h.append("ASKME failure now")
        call = h.fake.wait_text("Approval needed", CHAT)
        msg = dict(call.params["_result"])
        h.fake.press(CHAT, msg, f"rj:{msg['reply_markup']['inline_keyboard'][0][1]['callback_data'][3:]}")
        edit = h.fake.wait_for(lambda: h.fake.calls_of("editMessageText"), what="the rejection").pop()
        assert str(edit.params["text"]).endswith(
            "\n\n—\n❌ Rejected by @ops: nothing ran. If the error fires again, healer asks again"
            " (not before the pattern's cooldown); set approval: never in the pattern to stop asking."
        ), edit.params["text"]
        assert edit.params.get("reply_markup") is None
    finally:
        h.stop()


def test_unanswered_approval_expires_and_loses_its_buttons(tmp_path: Path, fake: FakeTelegram) -> None:
    h = _start(tmp_path, fake, engine={"verify_window": 0.5, "approval_ttl": 1})
    try:
        h.connected()
        h.append("ASKME failure now")
        asked = h.fake.wait_text("Approval needed", CHAT).params
        assert _buttons(asked) == [("✅ Approve", "ap:1"), ("❌ Reject", "rj:1")]
        told = h.fake.wait_text("expired after", CHAT).params  # the settle sweep runs every 5 s
        assert told["text"] == (
            f"{PFX}⌛ <b>approval #1 expired after 1s unanswered: nothing was run</b>\n"
            "host web-1 · service app · pattern tg-ask\n"
            "next: healer asks again the next time the error fires; 'fix errors' runs it now"
        )
        edit = h.fake.wait_for(lambda: h.fake.calls_of("editMessageText"), what="the expired edit")[-1].params
        assert edit["message_id"] == asked["_result"]["message_id"]
        assert str(edit["text"]).endswith("\n\n—\n⌛ Expired unanswered: nothing ran.")
        assert edit.get("reply_markup") is None
        assert h.attempts() == 0
    finally:
        h.stop()


def test_a_fix_that_cannot_run_here_is_never_offered_for_approval(healer: Healer) -> None:
    healer.connected()
    # A pasted line says it would be refused, and why, before anything fires.
    said = healer.ask("NOPE failure pasted", "tg-nope")
    assert "cannot run here: command: command &#x27;nope&#x27; is not in actions.command.commands" in said or (
        "cannot run here: command: command 'nope' is not in actions.command.commands" in said
    ), said
    healer.append("NOPE failure now")
    told = healer.fake.wait_text("fix not offered", CHAT).params
    assert told["text"] == (
        f"{PFX}🩹 <b>fix not offered: cannot run: command: command 'nope' is not in actions.command.commands</b>\n"
        "host web-1 · service app · pattern tg-nope · incident #1\n"
        "next: set that config key, then 'fix errors'"
    )
    assert _buttons(told) == []
    assert not [t for t in healer.fake.texts(CHAT) if "Approval needed" in t]
    assert healer.attempts() == 0
