"""The bot in-process with the real PTB client and the fake Bot API: outbox, buttons, approvals, usage.

The bot is built as the daemon builds it (facade, settings, clock, serial
executor, ``every``), never from a daemon; periodic jobs are run by the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import pytest
from support.bot_rig import CHAT, Rig, plain, running_bot
from support.telegram_daemon import ASK, AUTO

from healer.core.enums import IncidentStatus, Reason, Severity, Verdict
from healer.core.notices import Notice, NoticeKind
from healer.core.records import Decision, Incident
from healer.telegram.app import approval_keyboard
from healer.telegram.outbox import OUTBOX_MAX, Outbox, Outgoing

NOTIFY = {
    "id": "tg-medium",
    "severity": "medium",
    "regex": r"MEDIUM failure (?P<what>\w+)",
    "approval": "never",
    "examples": ["MEDIUM failure x"],
}


async def _nothing(out: Outgoing) -> None:
    raise AssertionError("not sent in this test")


async def test_outbox_drops_oldest_when_full() -> None:
    box = Outbox(_nothing)
    for i in range(OUTBOX_MAX + 5):
        box.put(Outgoing(1, f"m{i}"))
    assert box.qsize() == OUTBOX_MAX
    assert box.dropped == 5
    assert box.take().text == "m5"


def test_callback_data_fits_64_bytes() -> None:
    kb = approval_keyboard(10**18 - 1)
    for row in kb.inline_keyboard:
        for b in row:
            assert isinstance(b.callback_data, str) and len(b.callback_data.encode()) <= 64


async def _approval(rig: Rig) -> dict[str, Any]:
    call = await rig.wait(
        lambda: next((c for c in rig.fake.sent(CHAT) if "Approval needed" in str(c.params.get("text"))), None),
        "an approval request",
    )
    return dict(call.params["_result"])


async def test_approval_blocked_by_budget_says_why_and_what_next(tmp_path: Path) -> None:
    async with running_bot(tmp_path, [ASK, AUTO], engine={"fix_budget_per_hour": 1}) as rig:
        await rig.ingest("ASKME failure now")
        msg = await _approval(rig)
        assert [b["callback_data"] for row in msg["reply_markup"]["inline_keyboard"] for b in row][0].startswith("ap:")
        await rig.ingest("AUTO failure spends-the-budget")  # the hour's one fix goes to another incident
        rig.fake.press(CHAT, msg, msg["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
        edit = await rig.wait(lambda: [t for t in rig.edits() if "not run" in t], "the blocked approval")
        text = plain(edit[-1])
        assert "Approved by @ops, but not run: budget — 1 fixes in the last hour" in text, text
        assert "it will ask again the next time the error fires once the hourly fix budget allows" in text
        assert "0 attempted" not in text
        toast = rig.fake.calls_of("answerCallbackQuery")[-1].params["text"]
        assert toast == "Approved, but not run: budget"
        # The history agrees: one attempt (the automatic fix), none for the approval.
        assert "Fix attempts: 1 total" in await rig.ask("history", "Fix attempts")


async def test_approval_runs_and_the_message_says_the_outcome(tmp_path: Path) -> None:
    async with running_bot(tmp_path, [ASK]) as rig:
        await rig.ingest("ASKME failure now")
        msg = await _approval(rig)
        rig.fake.press(CHAT, msg, msg["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
        edit = await rig.wait(lambda: [t for t in rig.edits() if "Fixes:" in t], "the outcome")
        assert "✅ Approved by @ops." in edit[-1] and "Fixes: 1 attempted, 1 succeeded, 0 failed" in edit[-1]
        rig.fake.press(CHAT, msg, msg["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
        await rig.wait(lambda: len(rig.fake.calls_of("answerCallbackQuery")) >= 2, "the second answer")
        assert rig.fake.calls_of("answerCallbackQuery")[-1].params["text"] == "Already decided."


async def test_errors_with_a_bad_window_answers_with_usage(tmp_path: Path) -> None:
    async with running_bot(tmp_path, [NOTIFY]) as rig:
        text = await rig.ask("/errors banana", "usage")
        assert (
            plain(text)
            == "'banana': usage: /errors [window], e.g. /errors 6h or show errors 30m (s, m, h or d; default 1h)"
        )
        assert "Errors in the last 6h" in await rig.ask("/errors 6h", "Errors in the last")


async def test_digest_and_health_come_from_the_hosts_scheduler(tmp_path: Path) -> None:
    async with running_bot(tmp_path, [NOTIFY]) as rig:
        assert set(rig.jobs) == {"telegram-digest", "telegram-updates", "telegram-flood"}  # no health job, no JobQueue
        await rig.ingest("MEDIUM failure one")
        await rig.wait(lambda: rig.bot.router.digest_ids(), "the incident routed to the digest")
        assert not any("tg-medium" in t for t in rig.fake.texts(CHAT))
        await rig.tick("telegram-digest")
        call = await rig.wait(lambda: rig.fake.texts(CHAT), "the digest")
        assert "Digest: 1 incident(s)" in call[-1] and "tg-medium" in call[-1]
        # A HEALTH notice the service sends is rendered at once, whatever its severity.
        rig.bot.notify(Notice(NoticeKind.HEALTH, Severity.LOW, "Host health back within thresholds after 5m"))
        await rig.wait(lambda: [t for t in rig.fake.texts(CHAT) if "Host health back" in t], "the health notice")


async def test_approval_notice_goes_to_every_notify_chat_with_buttons(tmp_path: Path) -> None:
    async with running_bot(tmp_path, [NOTIFY]) as rig:
        inc = Incident(3, "fp", "p", Severity.HIGH, IncidentStatus.OPEN, "svc", "m", 1, 0.0, 0.0)
        d = Decision(42, 3, "p", Verdict.ASK, Reason.APPROVAL, 0.0)
        rig.bot.notify(Notice(NoticeKind.APPROVAL, Severity.LOW, "p wants to run x", incident=inc, decision=d))
        call = await rig.wait(lambda: rig.fake.sent(CHAT), "the approval request")
        datas = [b["callback_data"] for row in call[-1].params["reply_markup"]["inline_keyboard"] for b in row]
        assert datas == ["ap:42", "rj:42"]


async def test_notify_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def routing_bug(*args: object) -> NoReturn:
        raise RuntimeError("a routing bug")

    async with running_bot(tmp_path, [NOTIFY]) as rig:
        monkeypatch.setattr(rig.bot.router, "route", routing_bug)
        rig.bot.notify(Notice(NoticeKind.HEALTH, Severity.HIGH, "lost to the bug"))  # returns, does not raise
        monkeypatch.undo()
        # The bot is not wedged by it: the next notice is delivered, and only that one.
        inc = Incident(3, "fp", "p", Severity.HIGH, IncidentStatus.OPEN, "svc", "m", 1, 0.0, 0.0)
        d = Decision(42, 3, "p", Verdict.ASK, Reason.APPROVAL, 0.0)
        rig.bot.notify(Notice(NoticeKind.APPROVAL, Severity.LOW, "p wants to run x", incident=inc, decision=d))
        await rig.wait(lambda: rig.fake.sent(CHAT), "the notice after the bug")
        texts = rig.fake.texts(CHAT)
        assert len(texts) == 1 and "lost to the bug" not in texts[0], texts
