"""The stored outbox's promise, in process over a real SQLite file: what "no duplicates" means.

A message Telegram confirmed is never sent again; one Telegram refused stays
queued and goes once; the one whose send was under way when the process died
goes again once, marked as a possible repeat; a full bulk lane forgets on disk
what it dropped in memory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import NetworkError

from healer.core.clock import FakeClock
from healer.store.outbox import OutboxStore
from healer.telegram.outbox import REPEAT_MARK, Lane, Outbox, Outgoing


class Telegram:
    """Answers OK (a message id) or fails, as told; remembers what it showed."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.fail = 0
        self.hang = False

    async def send(self, out: Outgoing) -> object:
        if self.hang:  # the process dies while this request is out
            await asyncio.Event().wait()
        if self.fail:
            self.fail -= 1
            raise NetworkError("Bad Gateway")
        self.shown.append(out.text)

        class Sent:
            message_id = 4000 + len(self.shown)

        return Sent()


async def _drain(box: Outbox) -> None:
    box.ready.set()
    task = asyncio.create_task(box.run())
    await asyncio.wait_for(box.drain(10), 15)
    for _ in range(50):
        if box.empty():
            break
        await asyncio.sleep(0.05)
    task.cancel()


async def test_confirmed_is_never_resent_refused_goes_once_inflight_goes_once_marked(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    clock = FakeClock()
    tg = Telegram()
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("✅ Approve", callback_data="ap:7")]])

    first = OutboxStore(db)
    box = Outbox(tg.send, store=first, clock=clock)
    box.put(Outgoing(1, "one", lane=Lane.BULK))
    box.put(Outgoing(1, "approve?", markup, Lane.PRIORITY, decision=7))
    tg.fail = 2  # two 502s: both stay queued, then go
    await _drain(box)
    assert tg.shown == ["approve?", "one"]
    assert [(m.chat_id, m.message_id) for m in first.approval_messages(7)] == [(1, 4001)]

    # A send under way when the process dies.
    box.put(Outgoing(1, "two"))
    tg.hang = True
    box.ready.set()
    task = asyncio.create_task(box.run())
    for _ in range(100):
        if first.pending() and first.pending()[0].inflight:
            break
        await asyncio.sleep(0.01)
    task.cancel()  # the kill: nothing after the request went out ran
    first.close()

    tg.hang = False
    again = OutboxStore(db)
    box2 = Outbox(tg.send, store=again, clock=clock)
    assert box2.restore() == 1
    await _drain(box2)
    assert tg.shown == ["approve?", "one", REPEAT_MARK + "two"]
    assert again.pending() == []
    again.close()

    third = Outbox(tg.send, store=OutboxStore(db), clock=clock)
    assert third.restore() == 0  # nothing confirmed comes back


async def test_a_full_bulk_lane_forgets_on_disk_what_it_dropped(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "outbox.db")
    box = Outbox(Telegram().send, maxsize=3, store=store)
    for i in range(5):
        box.put(Outgoing(1, f"m{i}"))
    box.put(Outgoing(1, "urgent", lane=Lane.PRIORITY))
    assert box.dropped == 2
    assert [m.text for m in store.pending()] == ["m2", "m3", "m4", "urgent"]
    restored = Outbox(Telegram().send, maxsize=3, store=store)
    assert restored.restore() == 4
    assert restored.take().text == "urgent"  # the priority lane still goes first after a restart
