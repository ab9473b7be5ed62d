"""The Telegram bot: one python-telegram-bot Application on the daemon's event loop.

Driven by hand (``initialize``/``start``/``updater.start_polling`` and the
reverse), the embedding of PTB's starlettebot example: one process, one loop.
The bot gets the ``Healer`` facade and a few callables from its host, never
the daemon:

* ``settings()`` — the Telegram settings in force (a reload swaps them);
* ``serial`` — the executor that serialises decisions with ingestion;
* ``every(name, seconds, job)`` — the host's one scheduler. The digest and
  the "still firing" updates are registered there; PTB's own JobQueue is
  switched off. Host health is not the bot's job: the service runs
  ``HealthWatch`` and the bot renders the HEALTH notices it is sent.

Healing must never depend on Telegram: ``start()`` returns at once and
connects in the background with backoff; ``notify()`` only routes and
enqueues; messages leave through the bounded :class:`Outbox`.

The token is never logged: httpx logs request URLs (which contain it) at
INFO, so httpx/httpcore/telegram loggers are held at WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import structlog
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import InvalidToken, TelegramError
from telegram.ext import AIORateLimiter, Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from healer.app.ports import Every
from healer.app.usecases import Healer
from healer.core.clock import Clock
from healer.core.errors import ConfigError, HealerError
from healer.core.notices import Notice, NoticeKind, Told
from healer.settings.schema import TelegramSettings
from healer.store.outbox import OutboxStore
from healer.telegram.authz import Authz
from healer.telegram.commands import BOT_COMMANDS
from healer.telegram.handlers import Handlers
from healer.telegram.outbox import Lane, Outbox, Outgoing
from healer.telegram.render import truncate, with_host
from healer.telegram.router import ALWAYS_NOW, FLOOD_WINDOW, Router

# A fix's start shares its result's lane, so "started" can never arrive after "succeeded" (the
# lanes are FIFO each, the priority one drained first). Still bounded: fixes are, by the budget.
PRIORITY_LANE = ALWAYS_NOW | {NoticeKind.FIX_STARTED}

log = structlog.get_logger("healer.telegram")

Ctx = ContextTypes.DEFAULT_TYPE
App = Application[Any, Ctx, Any, Any, Any, Any]

CONNECT_BACKOFF_MAX = 30.0
POLL_TIMEOUT = 10  # seconds of long poll per getUpdates
STOP_DRAIN = 3.0  # seconds queued messages get to leave at shutdown
_QUIET_LOGGERS = ("httpx", "httpcore", "telegram", "telegram.ext")


def approval_keyboard(decision_id: int) -> InlineKeyboardMarkup:
    """Approve / Reject buttons; callback data "ap:<id>" stays far below Telegram's 64 bytes."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("✅ Approve", callback_data=f"ap:{decision_id}"),
                InlineKeyboardButton("❌ Reject", callback_data=f"rj:{decision_id}"),
            ]
        ]
    )


def undo_keyboard(attempt_id: int) -> InlineKeyboardMarkup:
    """The Undo button on a reversible fix that worked: "ud:<attempt>", authorised like Approve."""
    return InlineKeyboardMarkup([[InlineKeyboardButton("↩ Undo", callback_data=f"ud:{attempt_id}")]])


def not_this_keyboard(incident_ids: Sequence[int]) -> InlineKeyboardMarkup:
    """One "not this" button per incident ("nt:<id>"): the match was wrong, it counts against its pattern."""
    label = "🚫 Not this" if len(incident_ids) == 1 else "🚫 Not #{}"
    rows = [[InlineKeyboardButton(label.format(i), callback_data=f"nt:{i}")] for i in incident_ids[:NOT_THIS_MAX]]
    return InlineKeyboardMarkup(rows)


NOT_THIS_MAX = 8  # buttons under one digest; the rest can be marked with `healer mark ID wrong`


class TelegramBot:
    def __init__(
        self,
        facade: Healer,
        settings: Callable[[], TelegramSettings],
        *,
        clock: Clock,
        serial: Executor,
        every: Every,
        outbox_path: Path | None = None,
        host: Callable[[], str] = lambda: "",
    ) -> None:
        """``outbox_path``: where the queue is kept across restarts (the daemon's ``outbox.db``); None keeps it
        in memory only."""
        s = settings()
        if not s.token:
            raise ConfigError(s.token_env, "", "telegram is enabled without a token", f"set ${s.token_env} in .env")
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        # A proxy's HTML error page makes PTB log a JSON traceback at ERROR on every retry;
        # the same failure reaches us as NetworkError and is logged once, readably.
        logging.getLogger("telegram.request").setLevel(logging.CRITICAL)
        self.facade = facade
        self._settings = settings
        self._clock = clock
        self._every = every
        self._host = host
        self.router = Router(self._enqueue_notice)
        self._outbox_store = self._open_outbox(outbox_path)
        self.outbox = Outbox(self._send, store=self._outbox_store, clock=clock)
        self.authz = Authz(settings, clock, self._chat_admins)
        self.handlers = Handlers(
            facade,
            settings,
            serial=serial,
            reply=self.reply,
            status_extra=self._status_line,
            authz=self.authz,
            host=host,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._edits: set[asyncio.Task[None]] = set()
        self._polling_errors = 0
        self._token = s.token
        self._intervals = (s.digest_interval, s.update_interval)
        builder = Application.builder().token(s.token).rate_limiter(AIORateLimiter(max_retries=3))
        if s.base_url:
            builder = builder.base_url(s.base_url)
        # No JobQueue: periodic work runs on the host's one scheduler (``every``).
        # Fixes can take a while; one slow "fix errors" must not hold up a button press.
        self.app: App = builder.job_queue(None).concurrent_updates(8).build()
        self.app.add_handler(CallbackQueryHandler(self.handlers.on_callback))
        self.app.add_handler(MessageHandler(filters.UpdateType.MESSAGE, self.handlers.on_message))
        self.app.add_error_handler(self._on_error)

    @staticmethod
    def _open_outbox(path: Path | None) -> OutboxStore | None:
        if path is None:
            return None
        try:
            return OutboxStore(path)
        except HealerError as exc:  # the bot still works; only the restart guarantee is gone
            log.error("telegram_outbox_unavailable", error=str(exc), note="queued messages are kept in memory only")
            return None

    async def _chat_admins(self, chat_id: int) -> frozenset[int]:
        members = await self.app.bot.get_chat_administrators(chat_id)
        return frozenset(m.user.id for m in members)

    @property
    def settings(self) -> TelegramSettings:
        return self._settings()

    @property
    def ready(self) -> asyncio.Event:
        return self.outbox.ready

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Never fails the daemon: connecting happens in the background, with retries."""
        self.outbox.restore()
        self._tasks.append(asyncio.create_task(self.outbox.run(), name="telegram-sender"))
        self._tasks.append(asyncio.create_task(self._connect(), name="telegram-connect"))
        self._schedule()
        base_url = self.settings.base_url or "https://api.telegram.org/bot"  # the token is appended, never shown
        log.info("telegram_starting", allowed=list(self.settings.allowed_chat_ids), base_url=base_url)

    def _schedule(self) -> None:
        s = self.settings
        self._every("telegram-digest", s.digest_interval, self._digest)
        self._every("telegram-updates", s.update_interval, self._updates)
        self._every("telegram-flood", FLOOD_WINDOW, self._flood)

    async def _connect(self) -> None:
        delay = 1.0
        while True:
            try:
                if not self.app.running:
                    await self.app.initialize()  # getMe: proves the token and the URL
                    await self.app.start()  # update processing
                assert self.app.updater is not None
                await self.app.updater.start_polling(
                    timeout=POLL_TIMEOUT,
                    allowed_updates=[Update.MESSAGE, Update.CALLBACK_QUERY],
                    error_callback=self._on_polling_error,
                )
                break
            except InvalidToken:
                log.error("telegram_token_rejected", hint=f"check ${self.settings.token_env} in .env")
                return
            except (TelegramError, OSError, RuntimeError) as exc:
                log.warning("telegram_unreachable", error=f"{type(exc).__name__}: {exc}", retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, CONNECT_BACKOFF_MAX)
        self.outbox.ready.set()
        bot = self.app.bot
        log.info("telegram_connected", bot=bot.username)
        with contextlib.suppress(TelegramError):
            await bot.set_my_commands([BotCommand(c, d) for c, d in BOT_COMMANDS])

    def _on_polling_error(self, error: TelegramError) -> None:
        """PTB's updater retries getUpdates by itself; we only keep the log readable."""
        self._polling_errors += 1
        n = self._polling_errors
        if n <= 3 or n % 100 == 0:
            log.warning("telegram_polling_error", error=f"{type(error).__name__}: {error}", count=n)

    async def stop(self) -> None:
        """Give queued messages a moment to leave, then stop polling and the client."""
        await self.outbox.drain(STOP_DRAIN)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        try:
            if self.app.updater is not None and self.app.updater.running:
                await self.app.updater.stop()
            if self.app.running:
                await self.app.stop()
            await self.app.shutdown()
        except Exception as exc:  # shutting down regardless
            log.warning("telegram_stop_failed", error=str(exc))
        if self._outbox_store is not None:
            self._outbox_store.close()
        log.info("telegram_stopped", unsent=self.outbox.qsize(), dropped=self.outbox.dropped)

    def reconfigure(self) -> None:
        """Config reload: allow-lists and routing are read live; new intervals are re-registered."""
        s = self.settings
        self.handlers.refused_chats.clear()  # an operator who just allowed a chat should not find it muted
        self.handlers.refused_people.clear()
        self.authz.forget()
        self.handlers.hinted_chats.clear()  # the addressing settings may have changed: say it again
        if s.token != self._token:
            log.warning("telegram_token_changed", action="restart healer to use the new token")
        intervals = (s.digest_interval, s.update_interval)
        if intervals != self._intervals:
            self._intervals = intervals
            self._schedule()

    async def _on_error(self, update: object, context: Ctx) -> None:
        """One place for handler errors: log, never raise (the bot keeps serving)."""
        err = context.error
        chat = update.effective_chat.id if isinstance(update, Update) and update.effective_chat else None
        log.error("telegram_handler_error", error=f"{type(err).__name__}: {err}", chat=chat)

    # -- outgoing ------------------------------------------------------------------------------
    def notify(self, notice: Notice) -> None:
        """On the loop thread, for every engine and health notice: route and enqueue, never await."""
        try:
            s = self.settings
            how = self.router.route(notice, s.routing, self._clock.now(), s.priority_routing)
            log.debug("notice_routed", kind=notice.kind.value, severity=notice.severity.value, route=how)
        except Exception as exc:  # a routing bug must not disturb the engine's caller
            log.exception("notice_route_failed", error=str(exc))

    def _enqueue_notice(self, text: str, notice: Notice | None, markup: InlineKeyboardMarkup | None = None) -> None:
        decision = None
        if notice is not None and notice.kind is NoticeKind.APPROVAL and notice.decision is not None:
            decision = notice.decision.id
            markup = approval_keyboard(decision)
        elif notice is not None and notice.attempt is not None and notice.outcome is Told.SUCCEEDED:
            # Only where the wording offered an undo: the fix is reversible.
            aid = notice.attempt.id
            markup = undo_keyboard(aid) if f"undo: healer undo {aid}" in notice.text else None
        elif notice is not None and notice.kind is NoticeKind.INCIDENT and notice.incident is not None:
            markup = not_this_keyboard([notice.incident.id])
        # What a person may have to act on goes first and is never dropped; incident news,
        # digests and flood summaries queue behind it in the bounded lane.
        lane = Lane.PRIORITY if notice is not None and notice.kind in PRIORITY_LANE else Lane.BULK
        for chat_id in self.settings.notify_chat_ids:
            self.outbox.put(Outgoing(chat_id, text, markup, lane, decision))
        if notice is not None and notice.kind is NoticeKind.EXPIRED and notice.decision is not None:
            # The question expired: its messages say so and lose Approve/Reject, so nobody presses a dead
            # button. The same stored record of where each approval landed as a CLI approval uses.
            self._spawn(self._expired(notice.decision.id))

    def reply(self, chat_id: int, text: str) -> None:
        self.outbox.put(Outgoing(chat_id, truncate(text), lane=Lane.PRIORITY))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._edits.add(task)  # a reference until it ends: the loop keeps only weak ones
        task.add_done_callback(self._edits.discard)

    async def _expired(self, decision_id: int) -> None:
        await self.settled(decision_id, "⌛ Expired unanswered: nothing ran.")

    async def _send(self, out: Outgoing) -> object:
        return await self.app.bot.send_message(
            out.chat_id,
            with_host(self._host(), out.text),
            parse_mode=ParseMode.HTML,
            reply_markup=out.markup,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )

    async def settled(self, decision_id: int, note: str) -> int:
        """An approval settled elsewhere (the CLI, through the control socket): every copy of its message gets
        ``note`` (HTML) and loses its buttons, so nobody presses them again. Returns how many were edited."""
        store = self._outbox_store
        if store is None:
            return 0
        try:
            messages = await asyncio.to_thread(store.approval_messages, decision_id)
        except HealerError as exc:
            log.warning("telegram_outbox_store_failed", error=str(exc))
            return 0
        edited = 0
        for m in messages:
            try:
                await self.app.bot.edit_message_text(
                    truncate(f"{with_host(self._host(), m.text)}\n\n—\n{note}"),  # as it was sent
                    chat_id=m.chat_id,
                    message_id=m.message_id,
                    parse_mode=ParseMode.HTML,
                    reply_markup=None,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
                edited += 1
            except TelegramError as exc:
                log.warning("telegram_edit_failed", decision=decision_id, error=str(exc))
        return edited

    def status_line(self) -> str:
        """The bot's queue and suppression figures (the control socket's status shows them)."""
        return self._status_line()

    def _status_line(self) -> str:
        return (
            f"Telegram: {self.outbox.qsize()} queued, {self.outbox.dropped} dropped, "
            f"{self.router.suppressed} repeats suppressed, {self.router.summarised} new incidents summarised"
        )

    # -- periodic (registered with ``every``) -------------------------------------------------------
    async def _counts(self, ids: Sequence[int]) -> dict[int, int]:
        return await asyncio.to_thread(self.facade.incident_counts, ids) if ids else {}

    async def _digest(self) -> None:
        ids = self.router.digest_ids()
        counts = await self._counts(ids)
        text = self.router.take_digest(counts)
        if text is not None:
            # Shadow patterns' news lands here: this is where a wrong match is seen and marked.
            self._enqueue_notice(text, None, not_this_keyboard(ids) if ids else None)

    async def _flood(self) -> None:
        self.router.flush(self._clock.now())

    async def _updates(self) -> None:
        now = self._clock.now()
        interval = self.settings.update_interval
        ids = self.router.watched(now, interval)
        if ids:
            self.router.updates(await self._counts(ids), now, interval)
