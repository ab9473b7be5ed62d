"""The one way a message leaves: two queues drained by one task, with backoff.

Healing must never wait on Telegram. Putting a message in the outbox never
blocks and never fails. There are two lanes:

* ``Lane.PRIORITY``: approvals, escalations, fix results, the breaker, health
  and command replies, the messages a person may have to act on. Never
  dropped, always sent before anything in the other lane. It stays small by
  construction: approvals and fixes are bounded by the hourly budget, replies
  by the people allowed to ask.
* ``Lane.BULK``: incident notices, digests, "still firing". Bounded; when full
  the oldest is dropped and counted, so memory stays bounded during a long
  outage and the newest news is kept. An incident flood lands here (and the
  router already summarises most of it), so it can never push out an approval
  or make ``/status`` wait behind it (issue 19 #8).

One task sends and retries a message until it goes or Telegram refuses it for
good; it waits for :attr:`Outbox.ready` (set once the bot is connected)
before each try.

Both lanes are kept on disk too (:class:`healer.store.outbox.OutboxStore`,
``outbox.db`` in the state dir) when the daemon gives a store: a message is
written before ``put`` returns and deleted only after Telegram's OK, so a
restart (or a kill) during an outage resumes with what was queued, in order.
"No duplicates" means: a message Telegram confirmed is never sent again, and
one Telegram refused is retried only as long as it stays queued. The one
message that can reach a person twice is the one whose send was under way
when the process died (or whose OK was lost on the wire): nobody can know
whether Telegram showed it, so it is sent again, once, starting with
:data:`REPEAT_MARK`. At-least-once, never silently lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import structlog
from telegram import InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from healer.core.clock import Clock, SystemClock
from healer.core.errors import HealerError
from healer.store.outbox import OutboxStore, QueuedMessage

log = structlog.get_logger("healer.telegram.outbox")

OUTBOX_MAX = 1000
SEND_BACKOFF_MAX = 5.0  # while the API is down, one try every few seconds is cheap and recovers fast
REPEAT_MARK = "↻ (resent after a restart; you may have seen this already)\n"


class Lane(enum.Enum):
    PRIORITY = "priority"  # never dropped, sent first
    BULK = "bulk"  # bounded, oldest dropped


@dataclass(frozen=True, slots=True)
class Outgoing:
    chat_id: int
    text: str  # HTML, already escaped
    markup: InlineKeyboardMarkup | None = None
    lane: Lane = Lane.BULK
    decision: int | None = None  # an approval request: where it lands is remembered, to edit it later
    row: int = 0  # its row in the stored queue (0: not stored)
    repeat: bool = False  # its send was under way when the last process stopped


Send = Callable[[Outgoing], Awaitable[object]]


def _markup_json(markup: InlineKeyboardMarkup | None) -> str:
    return "" if markup is None else markup.to_json()


def _from_row(r: QueuedMessage) -> Outgoing:
    markup = InlineKeyboardMarkup.de_json(json.loads(r.markup), None) if r.markup else None
    return Outgoing(r.chat_id, r.text, markup, Lane(r.lane), r.decision_id, r.id, r.inflight)


class Outbox:
    def __init__(
        self, send: Send, maxsize: int = OUTBOX_MAX, *, store: OutboxStore | None = None, clock: Clock | None = None
    ) -> None:
        self._send = send
        self._store = store
        self._clock = clock or SystemClock()
        self._maxsize = maxsize
        self._priority: deque[Outgoing] = deque()
        self._bulk: deque[Outgoing] = deque()
        self._waiting = asyncio.Event()  # set while anything is queued
        self._idle = asyncio.Event()  # set while nothing is queued or being sent
        self._idle.set()
        self.ready = asyncio.Event()
        self.dropped = 0

    def restore(self) -> int:
        """At start-up: queue again what the last process left unsent, in its order; returns how many."""
        if self._store is None:
            return 0
        try:
            rows = self._store.pending()
        except HealerError as exc:
            log.error("telegram_outbox_unreadable", error=str(exc))
            return 0
        for r in rows:
            out = _from_row(r)
            (self._priority if out.lane is Lane.PRIORITY else self._bulk).append(out)
        while len(self._bulk) > self._maxsize:
            self._forget(self._bulk.popleft())
            self.dropped += 1
        if rows:
            self._idle.clear()
            self._waiting.set()
            repeats = sum(1 for r in rows if r.inflight)
            log.info("telegram_outbox_restored", queued=self.qsize(), maybe_repeated=repeats)
        return len(rows)

    def _stored(self, call: Callable[[], object]) -> None:
        """A write to the stored queue; a failing disk costs the restart guarantee, never the message."""
        try:
            call()
        except HealerError as exc:
            log.warning("telegram_outbox_store_failed", error=str(exc))

    def _forget(self, out: Outgoing) -> None:
        if self._store is not None and out.row:
            store = self._store
            self._stored(lambda: store.drop(out.row))

    def qsize(self) -> int:
        return len(self._priority) + len(self._bulk)

    def empty(self) -> bool:
        return self.qsize() == 0

    def take(self) -> Outgoing:
        """The message that would go next, without sending it: priority first, then the oldest.

        Raises IndexError when empty (tests look at what would go)."""
        out = self._priority.popleft() if self._priority else self._bulk.popleft()
        if self.empty():
            self._waiting.clear()
        return out

    def put(self, out: Outgoing) -> None:
        """Never blocks, never raises; a full bulk lane drops its oldest message."""
        if self._store is not None and not out.row:
            try:
                row = self._store.add(
                    out.lane.value, out.chat_id, out.text, _markup_json(out.markup), out.decision, self._clock.now()
                )
                out = replace(out, row=row)
            except HealerError as exc:
                log.warning("telegram_outbox_store_failed", error=str(exc))
        if out.lane is Lane.PRIORITY:
            self._priority.append(out)
        else:
            if len(self._bulk) >= self._maxsize:
                self._forget(self._bulk.popleft())
                self.dropped += 1
                if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                    log.warning("telegram_outbox_full", dropped=self.dropped, size=self._maxsize)
            self._bulk.append(out)
        self._idle.clear()
        self._waiting.set()

    async def drain(self, seconds: float) -> None:
        """At shutdown: give queued messages a moment to leave (only if they can)."""
        if not self.ready.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), seconds)

    async def run(self) -> None:
        """The only place that sends: priority first, each retried until it goes or is refused."""
        while True:
            await self._waiting.wait()
            out = self.take()
            try:
                await self._deliver(out)
            finally:
                if self.empty():
                    self._idle.set()

    async def _deliver(self, out: Outgoing) -> None:
        delay = 0.5
        store = self._store if out.row else None
        if out.repeat:
            out = replace(out, text=REPEAT_MARK + out.text)

        def settle(call: Callable[[OutboxStore], object]) -> None:
            if store is not None:
                self._stored(lambda: call(store))

        while True:
            await self.ready.wait()
            # Set while the request is out: a process that dies now cannot know whether it was shown.
            settle(lambda st: st.trying(out.row))
            try:
                sent = await self._send(out)
                got = getattr(sent, "message_id", None)
                message_id, now = (got if isinstance(got, int) else None), self._clock.now()
                settle(lambda st: st.sent(out.row, message_id, now))  # noqa: B023 - called at once, in this turn
                return
            except RetryAfter as exc:  # AIORateLimiter already retried; wait what Telegram asks
                settle(lambda st: st.failed(out.row))
                wait = exc.retry_after
                seconds = wait if isinstance(wait, int | float) else wait.total_seconds()
                log.warning("telegram_rate_limited", retry_after=seconds)
                await asyncio.sleep(float(seconds) + 0.1)
            except BadRequest as exc:  # malformed: retrying cannot help; say so and move on
                settle(lambda st: st.drop(out.row))
                log.error("telegram_send_rejected", chat=out.chat_id, error=str(exc))
                return
            except Forbidden as exc:  # the bot was blocked or removed from the chat
                settle(lambda st: st.drop(out.row))
                log.warning("telegram_send_forbidden", chat=out.chat_id, error=str(exc))
                return
            except (NetworkError, OSError) as exc:
                if not isinstance(exc, TimedOut):  # a timeout may have been shown: it stays "under way"
                    settle(lambda st: st.failed(out.row))
                log.warning("telegram_send_failed", error=f"{type(exc).__name__}: {exc}", retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, SEND_BACKOFF_MAX)
            except TelegramError as exc:
                settle(lambda st: st.drop(out.row))
                log.error("telegram_send_error", chat=out.chat_id, error=f"{type(exc).__name__}: {exc}")
                return
