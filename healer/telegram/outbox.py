"""The one way a message leaves: a bounded queue drained by one task, with backoff.

Healing must never wait on Telegram. Putting a message in the outbox never
blocks and never fails; when the queue is full the oldest message is dropped
and counted, so memory stays bounded during a long outage and the newest
news (which says most about now) is kept. One task sends, in order, and
retries a message until it goes or Telegram refuses it for good; it waits
for :attr:`Outbox.ready` (set once the bot is connected) before each try.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from telegram import InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

log = structlog.get_logger("healer.telegram.outbox")

OUTBOX_MAX = 1000
SEND_BACKOFF_MAX = 5.0  # while the API is down, one try every few seconds is cheap and recovers fast


@dataclass(frozen=True, slots=True)
class Outgoing:
    chat_id: int
    text: str  # HTML, already escaped
    markup: InlineKeyboardMarkup | None = None


Send = Callable[[Outgoing], Awaitable[object]]


class Outbox:
    def __init__(self, send: Send, maxsize: int = OUTBOX_MAX) -> None:
        self._send = send
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=maxsize)
        self.ready = asyncio.Event()
        self.dropped = 0

    def qsize(self) -> int:
        return self._queue.qsize()

    def empty(self) -> bool:
        return self._queue.empty()

    def take(self) -> Outgoing:
        """The oldest queued message, without sending it (tests look at what would go)."""
        out = self._queue.get_nowait()
        self._queue.task_done()
        return out

    def put(self, out: Outgoing) -> None:
        """Bounded: when full, the oldest message goes. Never blocks, never raises."""
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.take()
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("telegram_outbox_full", dropped=self.dropped, size=self._queue.maxsize)
        self._queue.put_nowait(out)

    async def drain(self, seconds: float) -> None:
        """At shutdown: give queued messages a moment to leave (only if they can)."""
        if not self.ready.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), seconds)

    async def run(self) -> None:
        """The only place that sends: in order, each retried until it goes or is refused."""
        while True:
            out = await self._queue.get()
            try:
                await self._deliver(out)
            finally:
                self._queue.task_done()

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
