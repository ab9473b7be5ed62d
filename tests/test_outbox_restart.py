"""The stored outbox (issue 14 §3): a daemon killed while Telegram is unreachable loses no notice.

Real daemon, real python-telegram-bot client, the fake Bot API answering 502
to everything. Notices queue (``healer status`` through the control socket
shows how many), the daemon is killed with SIGKILL, Telegram comes back, the
daemon is started again, and every notice reaches the chat exactly once: the
approval still with its buttons.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_telegram import FakeTelegram
from support.telegram_daemon import CHAT, Healer

NOTICES = ("ALPHA failure ghij", "ALPHA failure ghik", "ALPHA failure ghil", "ASKME failure mnop")


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    f = FakeTelegram().start()
    try:
        yield f
    finally:
        f.stop()


def _queued(h: Healer) -> int:
    res = h.cli("status")
    m = re.search(r"^Telegram: (\d+) queued", res.stdout, re.M)
    return int(m.group(1)) if m else -1


def test_notices_queued_during_an_outage_survive_a_kill_and_arrive_once(tmp_path: Path, fake: FakeTelegram) -> None:
    h = Healer(tmp_path, fake)
    try:
        h.wait(lambda: h.fake.calls_of("getUpdates"), "the bot to poll", timeout=60)
        fake.down = True
        h.append(*NOTICES)
        h.wait(lambda: _queued(h) == len(NOTICES), f"{len(NOTICES)} notices queued", timeout=20)
        h.wait(lambda: len(fake.calls_of("sendMessage")) >= 1, "a send to fail while Telegram is down")
        assert fake.sent() == []  # nothing got through
        h.kill()
        fake.down = False
        h.start()
        for line in NOTICES:
            fake.wait_text(line.split()[-1], CHAT, timeout=30)
        h.wait(lambda: _queued(h) == 0, "the queue to drain")
        texts = fake.texts(CHAT)
        for line in NOTICES:
            word = line.split()[-1]
            assert sum(word in t for t in texts) == 1, (word, texts)
        approval = fake.wait_text("Approval needed", CHAT)
        buttons = approval.params["reply_markup"]["inline_keyboard"][0]
        assert [b["text"] for b in buttons] == ["✅ Approve", "❌ Reject"]
        assert "telegram_outbox_restored" in h.daemon_log()
    finally:
        h.stop()
