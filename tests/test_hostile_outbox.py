"""Issue 19 #8: an incident flood must not hide an approval or delay /status.

The attack: 3,000 distinct high-severity notify-only lines right after an
approval request. The old single 1,000-slot outbox dropped 2,000 messages
oldest first, the approval among them, and /status waited behind the rest.
Here the real bot (PTB client, router, outbox) talks to the fake Bot API,
the lines go through the real engine and store, and the outbox is held
closed (``ready`` cleared, as while the API is unreachable) until everything
is queued, so the order the fake server sees is the order the outbox chose.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from support.bot_rig import CHAT, running_bot
from support.telegram_daemon import ASK, FLOOD, words

from healer.telegram.outbox import OUTBOX_MAX
from healer.telegram.router import FLOOD_WINDOW, NEW_PER_WINDOW

LINES = 3000


async def test_flood_after_an_approval_request_the_approval_and_status_go_first(tmp_path: Path) -> None:
    async with running_bot(tmp_path, [ASK, FLOOD]) as rig:
        box = rig.bot.outbox
        box.ready.clear()  # the API is "away": everything below queues
        await rig.ingest("FLOOD failure before")  # the sender holds this one while it waits
        await rig.ingest("ASKME failure now", *(f"FLOOD failure {w}" for w in words(LINES)))
        await rig.wait(lambda: rig.bot.router.summarised >= LINES - NEW_PER_WINDOW, "the flood to be routed")
        queued = box.qsize()
        rig.fake.send_text(CHAT, "/status")
        await rig.wait(lambda: box.qsize() > queued, "the /status reply to be queued")
        box.ready.set()

        await rig.wait(
            lambda: next((c for c in rig.fake.sent(CHAT) if "Telegram:" in str(c.params["text"])), None), "/status"
        )
        # The flood's summary comes at the window's end, in the same FIFO lane as the flood's single notices:
        # once it has arrived, every notice queued before it has been sent (the queue being empty is not
        # enough: the sender may still hold its last message in flight).
        rig.clock.advance(FLOOD_WINDOW)
        await rig.tick("telegram-flood")
        summary = await asyncio.to_thread(rig.fake.wait_text, "more new incident", CHAT, 10.0)
        # Judged on everything sent by then: how many flood notices left before /status was answered
        # depends on the machine's load, their order relative to it does not.
        sent = rig.fake.sent(CHAT)
        texts = [str(c.params["text"]) for c in sent]
        approval = next(i for i, t in enumerate(texts) if "Approval needed" in t)
        status = next(i for i, t in enumerate(texts) if "Telegram:" in t)
        flood = [i for i, t in enumerate(texts) if "tg-flood" in t and "before" not in t and "more new" not in t]
        # Delivered, with its buttons, before any message of the flood; and /status as well.
        assert sent[approval].params.get("reply_markup"), "the approval lost its buttons"
        assert flood and approval < flood[0]
        assert status < flood[0]
        assert box.dropped == 0

        # The flood itself: a few announced one by one, the rest in one summary at the window's end.
        assert len(flood) <= NEW_PER_WINDOW
        total = int(str(summary.params["text"]).split("<b>")[1].split(" ")[0])
        assert total + len(flood) >= LINES  # every flood incident is announced or counted
        assert "send <b>errors</b> for the list" in summary.params["text"]
        assert len(rig.fake.sent(CHAT)) < 3 * NEW_PER_WINDOW  # thousands of lines, a screenful of messages


async def test_replies_are_never_dropped_however_full_the_bulk_lane(tmp_path: Path) -> None:
    async with running_bot(tmp_path, [FLOOD]) as rig:
        box = rig.bot.outbox
        box.ready.clear()
        for i in range(OUTBOX_MAX + 2000):  # bulk messages far beyond the bulk lane's bound
            rig.bot.router._send(f"bulk {i}", None)  # noqa: SLF001  (the router's own send: the bulk path)
        # The sender holds the oldest survivor while it waits for the API; the lane keeps the rest.
        await rig.wait(lambda: box.qsize() == OUTBOX_MAX - 1, "the sender to take one")
        rig.fake.send_text(CHAT, "/status")
        await rig.wait(lambda: box.qsize() == OUTBOX_MAX, "the reply beside a full bulk lane")
        assert box.dropped == 2000
        box.ready.set()
        reply = await asyncio.to_thread(rig.fake.wait_text, "Telegram:", CHAT, 10.0)
        assert rig.fake.sent(CHAT).index(reply) <= 1  # at most the one message the sender held
