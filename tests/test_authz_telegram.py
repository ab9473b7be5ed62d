"""Telegram authorisation matrix: every bot command and both approval buttons,
from the allowed chat and from a chat that is not allowed.

One real ``healer run`` daemon and the fake Bot API for the whole matrix. Pass:
the allowed chat is acted on; the stranger gets exactly one refusal message
whatever it sends, each attempt is audited as ``telegram_refused``, its button
presses are answered "Not allowed." and settle nothing, and no fix attempt
results from it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fake_telegram import FakeTelegram
from support.telegram_daemon import CHAT, STRANGER, Healer

from healer.core.enums import AuditKind

# (what the person types, a needle in the allowed chat's answer)
COMMANDS = [
    ("health check", "disk /"),
    ("show errors", "Errors in the last"),
    ("history", ""),
    ("status", "Kill switch"),
    ("explain 1", "Incident #1"),
    ("help", "I understand"),
    ("ASKME failure pasted", "matches"),
    ("fix errors", ""),
]


@pytest.fixture
def healer(tmp_path: Path) -> Iterator[Healer]:
    fake = FakeTelegram().start()
    h = Healer(tmp_path, fake)
    try:
        yield h
    finally:
        h.stop()
        fake.stop()


def _approvals(h: Healer, n: int) -> list[dict[str, Any]]:
    calls = h.fake.wait_for(
        lambda: (c := [c for c in h.fake.sent(CHAT) if "Approval needed" in str(c.params.get("text"))])[n - 1 :] and c,
        15,
        f"{n} approval requests",
    )
    return [dict(c.params["_result"]) for c in calls[:n]]


def _buttons(msg: dict[str, Any]) -> tuple[str, str]:
    approve, reject = (b["callback_data"] for row in msg["reply_markup"]["inline_keyboard"] for b in row)
    assert approve.startswith("ap:") and reject.startswith("rj:")
    return approve, reject


def _refusals(h: Healer) -> list[tuple[str, dict[str, Any]]]:
    return [(e.actor, dict(e.detail)) for e in h.store.audit(AuditKind.TELEGRAM_REFUSED)]


def test_allowed_chat_is_served_stranger_is_refused_for_every_command_and_button(healer: Healer) -> None:
    h = healer
    h.connected()
    h.append("ASKME failure one", "ASKME failure two")  # two incidents, each waiting for a human
    one, two = _approvals(h, 2)
    assert h.attempts() == 0

    # -- the stranger: every command, then Approve and Reject on both requests ----------------
    for text, _ in COMMANDS:
        h.fake.send_text(STRANGER, text)
    n_answers = len(h.fake.calls_of("answerCallbackQuery"))
    # Telegram puts the message a button hangs under in the callback, so a stranger's press
    # comes from the stranger's own chat, carrying the real decisions' button data.
    # (Authorisation is per chat: any member of an allowed group chat may press.)
    own = {"message_id": 1, "date": 0, "chat": {"id": STRANGER, "type": "private"}, "text": "x"}
    for msg in (one, two):
        for data in _buttons(msg):
            h.fake.press(STRANGER, own, data)
    expected = len(COMMANDS) + 4
    h.wait(lambda: len(_refusals(h)) >= expected, f"{expected} telegram_refused audit rows", timeout=15)
    h.wait(lambda: len(h.fake.calls_of("answerCallbackQuery")) >= n_answers + 4, "answers to the 4 presses")
    time.sleep(0.7)  # room for any (wrong) extra reply or fix to show up
    rows = _refusals(h)
    assert len(rows) == expected, rows
    assert all(actor == f"telegram:{STRANGER}" for actor, _ in rows)
    assert sorted(d["what"] for _, d in rows) == ["button"] * 4 + ["message"] * len(COMMANDS)
    assert {d["text"] for _, d in rows if d["what"] == "message"} == {t for t, _ in COMMANDS}
    stranger_texts = h.fake.texts(STRANGER)
    assert len(stranger_texts) == 1 and "not allowed" in stranger_texts[0], stranger_texts
    answers = [c.params["text"] for c in h.fake.calls_of("answerCallbackQuery")[n_answers:]]
    assert answers == ["Not allowed."] * 4, answers
    assert h.attempts() == 0, "a fix attempt resulted from the stranger"
    for kind in (AuditKind.FIX_REQUESTED, AuditKind.CHAT_MATCH, AuditKind.APPROVAL):
        assert not h.store.audit(kind), kind
    assert not h.fake.calls_of("editMessageText"), "a stranger's press changed an approval message"
    assert not [t for t in h.fake.texts(CHAT) if "not allowed" in t.lower()]
    print(f"stranger: {expected} attempts -> {expected} audit rows, 1 refusal message, 0 fix attempts")

    # -- the allowed chat: Approve one request, Reject the other ----------------------------------
    approve_one, _ = _buttons(one)
    _, reject_two = _buttons(two)
    h.fake.press(CHAT, one, approve_one)
    h.wait(lambda: len(h.store.attempts()) == 1, "the approved fix")
    h.fake.press(CHAT, two, reject_two)
    edits = lambda: [str(c.params.get("text")) for c in h.fake.calls_of("editMessageText")]  # noqa: E731
    h.wait(lambda: any("Rejected by" in t for t in edits()), "the rejection in the message")
    h.wait(lambda: any("Fixes: 1 attempted, 1 succeeded" in t for t in edits()), "the approved outcome")
    time.sleep(0.3)
    assert h.attempts() == 1  # the rejected one ran nothing

    # -- the allowed chat: every command gets its answer ------------------------------------------
    for text, needle in COMMANDS:
        before = len(h.fake.sent(CHAT))
        h.fake.send_text(CHAT, text)
        call = h.fake.wait_text(needle, CHAT, timeout=15, after=before)
        assert "not allowed" not in str(call.params["text"]).lower()
    assert h.store.audit(AuditKind.CHAT_MATCH)  # the pasted line, explained
    assert len(_refusals(h)) == expected  # nothing from the allowed chat was refused
    assert len(h.fake.texts(STRANGER)) == 1
    print(f"allowed: {len(COMMANDS)} commands answered, 1 approved (ran), 1 rejected (nothing ran)")
