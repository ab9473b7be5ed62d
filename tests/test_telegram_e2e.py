"""The bot end to end: the real daemon as a subprocess, the real PTB client, a fake Bot API.

Each test starts its own fake server and daemon, so no test sees another's
incidents or messages. Conditions are polled with short sleeps and a deadline.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from support.fake_telegram import FakeTelegram
from support.telegram_daemon import CHAT, STRANGER, Healer

from healer.core.enums import AuditKind


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    f = FakeTelegram().start()
    yield f
    f.stop()


def _healer(tmp_path: Path, fake: FakeTelegram, **kw: Any) -> Iterator[Healer]:
    h = Healer(tmp_path, fake, **kw)
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture
def healer(tmp_path: Path, fake: FakeTelegram) -> Iterator[Healer]:
    yield from _healer(tmp_path, fake)


@pytest.fixture
def healer_short_ttl(tmp_path: Path, fake: FakeTelegram) -> Iterator[Healer]:
    yield from _healer(tmp_path, fake, engine={"approval_ttl": 1})


def test_health_check_reports_real_figures(healer: Healer) -> None:
    healer.connected()
    text = healer.ask("Health check", "disk /")
    m = re.search(r"disk /: ([\d.]+)% used", text)
    assert m is not None, text
    assert abs(float(m.group(1)) - psutil.disk_usage("/").percent) < 2.0
    assert "memory" in text
    # The slash form and the bare word give the same report.
    assert "memory" in healer.ask("/health", "disk /")
    # Sent as HTML, link previews off.
    call = healer.fake.sent(CHAT)[-1]
    assert call.params.get("parse_mode") == "HTML"
    assert call.params.get("link_preview_options", {}).get("is_disabled") is True


def test_periodic_health_speaks_only_when_a_threshold_is_crossed(tmp_path: Path, fake: FakeTelegram) -> None:
    h = Healer(tmp_path, fake, health={"disk_threshold": 0.01})  # any real disk is over 0.01 %
    try:
        h.connected()
        fake.wait_text("Host health: disk /", CHAT)
        time.sleep(2.5)  # more health intervals: same warnings, no new message
        assert len([t for t in fake.texts(CHAT) if "Host health:" in t]) == 1
    finally:
        h.stop()


def test_show_errors_lists_three_patterns(healer: Healer) -> None:
    healer.connected()
    healer.append("ALPHA failure one", "BETA failure two", "FIXME failure three")
    healer.wait(lambda: len({i.pattern_id for i in healer.store.incidents()}) == 3, "three incidents")
    text = healer.ask("show errors 6h", "Errors in the last")
    for pid in ("tg-alpha", "tg-beta", "tg-fixme"):
        assert pid in text
    assert "last 6h" in text
    assert "ALPHA failure one" in healer.ask("explain 1", "Incident #1")
    assert "/errors" in healer.ask("/help", "I understand")


def test_fix_errors_runs_the_harmless_action(tmp_path: Path, fake: FakeTelegram) -> None:
    # The pattern fixes itself on sight, so turn that off: the kill switch is on first...
    h = Healer(tmp_path, fake)
    try:
        h.connected()
        cfg = yaml.safe_load(h.config.read_text())
        cfg["kill_switch"] = True
        h.config.write_text(yaml.safe_dump(cfg))
        h.wait(lambda: h.store.audit(AuditKind.CONFIG_CHANGED), "reload")
        h.append("FIXME failure three")
        h.wait(lambda: [i for i in h.store.incidents() if i.pattern_id == "tg-fixme"], "incident")
        assert "nothing was run" in h.ask("fix errors", "kill switch").lower()
        assert h.store.audit(AuditKind.FIX_REFUSED)
        assert h.attempts() == 0
        # ...then off again, and "fix errors" runs the fix and reports it.
        cfg["kill_switch"] = False
        h.config.write_text(yaml.safe_dump(cfg))
        h.wait(lambda: len(h.store.audit(AuditKind.CONFIG_CHANGED)) >= 2, "reload")
        text = h.ask("/fix", "Fixes:")
        assert "1 attempted, 1 succeeded, 0 failed" in text, text
        assert "command" in text
        assert h.attempts() == 1
        assert "Fix attempts: 1 total" in h.ask("history", "Fix attempts")
    finally:
        h.stop()


def _approval_message(h: Healer) -> dict[str, Any]:
    call = h.fake.wait_text("Approval needed", CHAT)
    markup = call.params["reply_markup"]
    datas = [b["callback_data"] for row in markup["inline_keyboard"] for b in row]
    assert datas[0].startswith("ap:") and datas[1].startswith("rj:")
    assert all(len(d.encode()) <= 64 for d in datas)
    return dict(call.params["_result"])


def test_approve_runs_once_then_already_decided(healer: Healer) -> None:
    healer.connected()
    healer.append("ASKME failure now")
    msg = _approval_message(healer)
    data = msg["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    healer.fake.press(CHAT, msg, data)
    healer.wait(lambda: healer.store.attempts(), "the approved fix")
    edits = lambda: [str(c.params.get("text")) for c in healer.fake.calls_of("editMessageText")]  # noqa: E731
    healer.wait(lambda: any("Fixes: 1 attempted, 1 succeeded" in t for t in edits()), "the outcome in the message")
    assert "Fix attempts: 1 total" in healer.ask("history", "Fix attempts")
    n_answers = len(healer.fake.calls_of("answerCallbackQuery"))
    healer.fake.press(CHAT, msg, data)
    healer.wait(lambda: len(healer.fake.calls_of("answerCallbackQuery")) > n_answers, "the second answer")
    answer = healer.fake.calls_of("answerCallbackQuery")[-1].params
    assert "already decided" in answer["text"].lower()
    time.sleep(0.3)
    assert healer.attempts() == 1
    assert all(c.params.get("_ok") for c in healer.fake.calls_of("answerCallbackQuery"))


def test_expired_approval_is_refused(healer_short_ttl: Healer) -> None:
    h = healer_short_ttl
    h.connected()
    h.append("ASKME failure now")
    msg = _approval_message(h)
    time.sleep(1.3)
    h.fake.press(CHAT, msg, msg["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
    h.wait(lambda: h.fake.calls_of("answerCallbackQuery"), "an answer")
    assert "expired" in h.fake.calls_of("answerCallbackQuery")[0].params["text"].lower()
    time.sleep(0.3)
    assert h.attempts() == 0


def test_stranger_is_refused_once_and_audited(healer: Healer) -> None:
    healer.connected()
    healer.append("FIXME failure x")  # fixed automatically: one attempt, whatever the stranger does
    healer.wait(lambda: healer.store.attempts(), "the automatic fix")
    for text in ("fix errors", "/fix", "health check"):
        healer.fake.send_text(STRANGER, text)
    healer.wait(lambda: len(healer.store.audit(AuditKind.TELEGRAM_REFUSED)) == 3, "3 audit entries")
    healer.fake.wait_text("not allowed", STRANGER)
    time.sleep(0.5)
    assert len(healer.fake.sent(STRANGER)) == 1  # one refusal, not one per message
    entries = healer.store.audit(AuditKind.TELEGRAM_REFUSED)
    assert entries and all(e.actor == f"telegram:{STRANGER}" for e in entries)
    assert healer.attempts() == 1
    assert not healer.store.audit(AuditKind.FIX_REQUESTED)
    # A button press from a stranger is answered and refused too.
    healer.fake.press(STRANGER, {"message_id": 1, "date": 0, "chat": {"id": STRANGER, "type": "private"}}, "ap:1")
    healer.wait(lambda: healer.fake.calls_of("answerCallbackQuery"), "an answer to the stranger's press")
    healer.wait(lambda: len(healer.store.audit(AuditKind.TELEGRAM_REFUSED)) == 4, "4th audit entry")


def test_storm_gives_one_message(healer: Healer) -> None:
    healer.connected()
    healer.append(*["ALPHA failure storm"] * 1000)
    healer.wait(lambda: [i for i in healer.store.incidents() if i.count >= 1000], "1000 events")
    healer.fake.wait_text("New incident", CHAT)
    time.sleep(2.5)  # several update/digest intervals
    alpha = [t for t in healer.fake.texts(CHAT) if "tg-alpha" in t]
    assert len([t for t in alpha if "New incident" in t]) == 1, alpha
    assert len(alpha) <= 3, alpha  # the announcement plus at most a couple of "still firing" updates
    assert len([i for i in healer.store.incidents() if i.pattern_id == "tg-alpha"]) == 1


def test_medium_incident_arrives_in_digest(healer: Healer) -> None:
    healer.connected()
    healer.append("BETA failure digest")
    call = healer.fake.wait_text("Digest", CHAT)
    assert "tg-beta" in call.params["text"]
    assert not any("New incident" in t and "tg-beta" in t for t in healer.fake.texts(CHAT))


def test_pasted_error_line_is_explained_not_acted_on(healer: Healer) -> None:
    healer.connected()
    text = healer.ask("FIXME failure pasted <b>bold</b>", "matches")
    assert "tg-fixme" in text and "command(command=ok)" in text
    assert "<b>bold</b>" not in text and "&lt;b&gt;bold" in text  # quoted text escaped
    assert healer.store.audit(AuditKind.CHAT_MATCH)
    assert healer.attempts() == 0


def test_rate_limited_message_still_arrives(healer: Healer) -> None:
    healer.connected()
    healer.fake.fail_sends = 2
    text = healer.ask("status", "Kill switch")
    assert "Circuit breaker" in text
    assert len([c for c in healer.fake.calls_of("sendMessage") if not c.params.get("_ok")]) == 2


def test_api_down_daemon_keeps_healing_and_backlog_arrives(tmp_path: Path, fake: FakeTelegram) -> None:
    fake.down = True  # down before the daemon even starts
    h = Healer(tmp_path, fake)
    try:
        h.wait(lambda: fake.calls_of("getMe"), "a connection attempt")
        h.append("FIXME failure while down")
        h.wait(lambda: h.store.attempts(), "a fix attempt while the API is down")
        assert "daemon_ready" in h.daemon_log()
        assert not fake.sent()
        fake.down = False
        fake.wait_text("New incident", CHAT)
        fake.wait_text("fix #", CHAT)
        # Down again while running: the outbox holds the news and retries until it is back.
        before = len(fake.sent())
        fake.down = True
        h.append("FIXME failure second")
        h.wait(lambda: len(h.store.attempts()) == 2, "a second attempt while down")
        time.sleep(1.0)
        assert len(fake.sent()) == before
        fake.down = False
        fake.wait_text("FIXME failure second", CHAT, after=before)
        fake.wait_text("fix #2", CHAT, after=before)
        assert "123:TEST" not in h.daemon_log()  # the token never reaches the log
    finally:
        h.stop()
