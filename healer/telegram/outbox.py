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
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from telegram import InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

log = structlog.get_logger("healer.telegram.outbox")

OUTBOX_MAX = 1000
SEND_BACKOFF_MAX = 5.0  # while the API is down, one try every few seconds is cheap and recovers fast


class Lane(enum.Enum):
    PRIORITY = "priority"  # never dropped, sent first
    BULK = "bulk"  # bounded, oldest dropped


@dataclass(frozen=True, slots=True)
class Outgoing:
    chat_id: int
    text: str  # HTML, already escaped
    markup: InlineKeyboardMarkup | None = None
    lane: Lane = Lane.BULK
    asks: int | None = None  # the decision an approval message asks about: its buttons go when it expires


Send = Callable[[Outgoing], Awaitable[object]]


class Outbox:
    def __init__(self, send: Send, maxsize: int = OUTBOX_MAX) -> None:
        self._send = send
        self._maxsize = maxsize
        self._priority: deque[Outgoing] = deque()
        self._bulk: deque[Outgoing] = deque()
        self._waiting = asyncio.Event()  # set while anything is queued
        self._idle = asyncio.Event()  # set while nothing is queued or being sent
        self._idle.set()
        self.ready = asyncio.Event()
        self.dropped = 0

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
        if out.lane is Lane.PRIORITY:
            self._priority.append(out)
        else:
            if len(self._bulk) >= self._maxsize:
                self._bulk.popleft()
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
        while True:
            await self.ready.wait()
            try:
                await self._send(out)
                return
            except RetryAfter as exc:  # AIORateLimiter already retried; wait what Telegram asks
                wait = exc.retry_after
                seconds = wait if isinstance(wait, int | float) else wait.total_seconds()
                log.warning("telegram_rate_limited", retry_after=seconds)
                await asyncio.sleep(float(seconds) + 0.1)
            except BadRequest as exc:  # malformed: retrying cannot help; say so and move on
                log.error("telegram_send_rejected", chat=out.chat_id, error=str(exc))
                return
            except Forbidden as exc:  # the bot was blocked or removed from the chat
                log.warning("telegram_send_forbidden", chat=out.chat_id, error=str(exc))
                return
            except (NetworkError, OSError) as exc:
                log.warning("telegram_send_failed", error=f"{type(exc).__name__}: {exc}", retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, SEND_BACKOFF_MAX)
            except TelegramError as exc:
                log.error("telegram_send_error", chat=out.chat_id, error=f"{type(exc).__name__}: {exc}")
                return
