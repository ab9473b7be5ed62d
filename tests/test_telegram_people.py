"""Who may command healer (issue 14 §3): per person as well as per chat.

One real daemon, the fake Bot API, a private chat and a group chat both
allowed. Approve and Reject are pressed by an allowed user in the group, by a
stranger in the allowed group, by the group's administrator (with
``allow_chat_admins``), and from a stranger's own chat. Read-only commands stay
per chat; every refusal is audited.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fake_telegram import Call, FakeTelegram
from support.telegram_daemon import CHAT, STRANGER, Healer

from healer.core.enums import AuditKind

GROUP = -1001234
ALICE = 222  # in telegram.allowed_user_ids
ADMIN = 333  # an administrator of GROUP
MEMBER = 444  # just a member of GROUP


@pytest.fixture
def healer(tmp_path: Path) -> Iterator[Healer]:
    fake = FakeTelegram().start()
    fake.admins[GROUP] = [999, ADMIN]
    telegram = {"allowed_chat_ids": [CHAT, GROUP], "allowed_user_ids": [ALICE], "allow_chat_admins": True}
    h = Healer(tmp_path, fake, telegram=telegram)
    try:
        h.wait(lambda: h.fake.calls_of("getUpdates"), "the bot to poll", timeout=60)
        yield h
    finally:
        h.stop()
        fake.stop()


def _approval(h: Healer, incident: int) -> tuple[dict[str, Any], str]:
    call = h.fake.wait_text(f"Approval needed</b> for incident #{incident} ", GROUP, timeout=15)
    msg = dict(call.params["_result"])
    data = msg["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    return msg, data.split(":")[1]


def _answer(h: Healer, before: int) -> Call:
    got = h.wait(lambda: h.fake.calls_of("answerCallbackQuery")[before:], "the button to be answered")
    return got[0]


def _press(h: Healer, chat: int, msg: dict[str, Any], data: str, user: int) -> Call:
    before = len(h.fake.calls_of("answerCallbackQuery"))
    h.fake.press(chat, msg, data, user_id=user)
    return _answer(h, before)


def test_only_allowed_people_may_approve_and_reject(healer: Healer) -> None:
    h = healer
    h.append("ASKME failure alpha")
    msg, decision = _approval(h, 1)

    # A stranger in the allowed group: told why, audited, nothing settled.
    ans = _press(h, GROUP, msg, f"ap:{decision}", MEMBER)
    assert ans.params.get("show_alert") is True
    assert ans.params["text"].startswith(
        f"Not allowed: user {MEMBER} may not approve fixes (not in telegram.allowed_user_ids "
        "and not an administrator of this group)."
    ), ans.params["text"]
    ans = _press(h, GROUP, msg, f"rj:{decision}", MEMBER)
    assert ans.params["text"].startswith(f"Not allowed: user {MEMBER} may not reject fixes")
    # Undo and "not this" change things too: the same gate as Approve.
    ans = _press(h, GROUP, msg, f"ud:{decision}", MEMBER)
    assert ans.params["text"].startswith(f"Not allowed: user {MEMBER} may not undo fixes")
    ans = _press(h, GROUP, msg, "nt:1", MEMBER)
    assert ans.params["text"].startswith(f"Not allowed: user {MEMBER} may not mark matches wrong")
    # A stranger's own chat is stopped at the chat gate (a press reports the chat its message is in).
    theirs = {**msg, "chat": {"id": STRANGER, "type": "private", "first_name": "Eve"}}
    ans = _press(h, STRANGER, theirs, f"ap:{decision}", STRANGER)
    assert ans.params["text"] == "Not allowed."
    assert h.attempts() == 0
    assert h.fake.calls_of("editMessageText") == []

    refused = h.store.audit(AuditKind.COMMAND_REFUSED)
    assert sorted((e.detail["user_id"], e.detail["what"]) for e in refused) == [
        (MEMBER, "approve fixes"),
        (MEMBER, "mark matches wrong"),
        (MEMBER, "reject fixes"),
        (MEMBER, "undo fixes"),
    ]
    assert h.store.audit(AuditKind.MARKED_WRONG) == []
    assert {e.detail["chat_id"] for e in refused} == {GROUP}
    assert [e.detail["chat_id"] for e in h.store.audit(AuditKind.TELEGRAM_REFUSED)] == [STRANGER]

    # The listed user approves in the group: it runs and the message says who.
    ans = _press(h, GROUP, msg, f"ap:{decision}", ALICE)
    assert ans.params["text"] == "Approved: running the fix."
    edit = h.wait(lambda: h.fake.calls_of("editMessageText"), "the approval message to be edited")
    assert "Approved by @ops" in edit[-1].params["text"]
    h.wait(lambda: h.attempts() == 1, "the approved fix to run")

    # The group's administrator may reject (allow_chat_admins), a member still may not.
    h.append("ASKME failure beta")
    msg2, decision2 = _approval(h, 2)
    ans = _press(h, GROUP, msg2, f"rj:{decision2}", ADMIN)
    assert ans.params["text"] == "Rejected."
    assert (
        "Rejected by @ops"
        in h.wait(
            lambda: [
                c for c in h.fake.calls_of("editMessageText") if int(c.params["message_id"]) == msg2["message_id"]
            ],
            "the rejection edit",
        )[-1].params["text"]
    )


def test_reads_stay_per_chat_and_fix_needs_a_person(healer: Healer) -> None:
    h = healer
    before = len(h.fake.sent(GROUP))
    h.fake.send_text(GROUP, "status", user_id=MEMBER)
    assert "Kill switch" in h.fake.wait_text("Kill switch", GROUP, after=before).params["text"]
    before = len(h.fake.sent(GROUP))
    h.fake.send_text(GROUP, "fix errors", user_id=MEMBER)
    text = h.fake.wait_text("Not allowed", GROUP, after=before).params["text"]
    assert text.split("</b> ", 1)[-1].startswith(  # after the host prefix
        f"Not allowed: user {MEMBER} may not run fixes (not in telegram.allowed_user_ids"
    ), text
    h.fake.send_text(GROUP, "fix errors", user_id=MEMBER)  # told once; the second is audited only
    h.wait(lambda: len(h.store.audit(AuditKind.COMMAND_REFUSED)) == 2, "both refusals audited")
    h.fake.send_text(GROUP, "fix errors", user_id=ALICE)
    assert "Nothing to fix" in h.fake.wait_text("Nothing to fix", GROUP, after=before).params["text"]
    assert sum("Not allowed" in t for t in h.fake.texts(GROUP)) == 1
