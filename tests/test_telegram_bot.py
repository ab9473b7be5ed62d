"""Bot pieces that need no server: the bounded outbox, buttons, routing to chats."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from healer.core.enums import IncidentStatus, Outcome, Reason, Severity, Verdict
from healer.core.notices import Notice, NoticeKind
from healer.core.records import Decision, FixAttempt, Incident
from healer.settings.schema import Settings, TelegramSettings
from healer.telegram.bot import OUTBOX_MAX, TelegramBot, _fix_summary, approval_keyboard


def make_bot(**tg: Any) -> TelegramBot:
    telegram = TelegramSettings(token="123:TEST", allowed_chat_ids=(1,), notify_chat_ids=(1, 2), **tg)
    settings = Settings(source="test", state_dir=Path("/nonexistent"), telegram=telegram)
    daemon = SimpleNamespace(rules=SimpleNamespace(settings=settings), clock=SimpleNamespace(now=lambda: 1000.0))
    return TelegramBot(daemon)  # type: ignore[arg-type]


async def test_outbox_drops_oldest_when_full() -> None:
    bot = make_bot()
    for i in range(OUTBOX_MAX + 5):
        bot.reply(1, f"m{i}")
    assert bot.outbox.qsize() == OUTBOX_MAX
    assert bot.dropped == 5
    assert bot.outbox.get_nowait().text == "m5"


async def test_approval_notice_goes_to_every_notify_chat_with_buttons() -> None:
    bot = make_bot()
    inc = Incident(3, "fp", "p", Severity.HIGH, IncidentStatus.OPEN, "svc", "m", 1, 0.0, 0.0)
    d = Decision(42, 3, "p", Verdict.ASK, Reason.APPROVAL, 0.0)
    bot.notify(Notice(NoticeKind.APPROVAL, Severity.LOW, "p wants to run x", incident=inc, decision=d))
    outs = [bot.outbox.get_nowait() for _ in range(bot.outbox.qsize())]
    assert [o.chat_id for o in outs] == [1, 2]
    for o in outs:
        assert o.markup is not None
        datas = [b.callback_data for row in o.markup.inline_keyboard for b in row]
        assert datas == ["ap:42", "rj:42"]


async def test_notify_never_raises() -> None:
    bot = make_bot()
    bot.router.route = None  # type: ignore[assignment]  # a routing bug
    bot.notify(Notice(NoticeKind.HEALTH, Severity.LOW, "x"))


def test_callback_data_fits_64_bytes() -> None:
    kb = approval_keyboard(10**18 - 1)
    for row in kb.inline_keyboard:
        for b in row:
            assert isinstance(b.callback_data, str) and len(b.callback_data.encode()) <= 64


def test_fix_summary_counts() -> None:
    ok = FixAttempt(1, 1, 1, ("command",), Outcome.VERIFYING, 0.0, None, "applied")
    bad = FixAttempt(2, 2, 2, ("command",), Outcome.ROLLED_BACK, 0.0, 1.0, "verify <failed>")
    text = _fix_summary([ok, bad, None, TimeoutError("still running")], 4)
    assert text.startswith("Fixes: 4 attempted, 1 succeeded, 1 failed, 2 other")
    assert "&lt;failed&gt;" in text
