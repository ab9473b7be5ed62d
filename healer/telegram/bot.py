"""The Telegram bot: commands in, notices out, on the daemon's own event loop.

Built on python-telegram-bot v22, driven by hand (``initialize``/``start``/
``updater.start_polling`` and the reverse) inside the daemon's running loop:
one process, one loop, and PTB's JobQueue as the only scheduler for the
digest, the "still firing" updates and the periodic health check.

Healing must never depend on Telegram. So:

* ``start()`` returns at once; connecting (getMe, deleteWebhook, polling)
  happens in a background task that retries with backoff, so a Bot API that
  is down at boot costs nothing but a log line.
* ``notify()`` (called on the loop for every engine notice) only routes and
  enqueues. Messages leave through one bounded queue drained by one task
  that retries with backoff; when the queue is full the oldest message is
  dropped and counted, so memory stays bounded during a long outage and the
  backlog is delivered, within Telegram's limits (AIORateLimiter), once the
  API is back.
* Everything that touches SQLite or psutil runs in a thread.

Security: only ``allowed_chat_ids`` may run commands or press buttons. Any
other chat gets one refusal (then silence) and every attempt is audited.
Everything quoted from logs is HTML-escaped, and link previews are off.

The token is never logged: httpx logs request URLs (which contain it) at
INFO, so httpx/httpcore/telegram/apscheduler loggers are held at WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from healer.app.health import collect
from healer.app.reports import errors_report, explain_report, health_report, history_report
from healer.core.enums import Outcome, Severity
from healer.core.notices import Notice, NoticeKind
from healer.core.records import FixAttempt
from healer.settings.schema import TelegramSettings
from healer.telegram.commands import BOT_COMMANDS, HELP_TEXT, Command, parse
from healer.telegram.render import bold, esc, truncate
from healer.telegram.router import Router

if TYPE_CHECKING:
    from healer.core.jobs import IngestResult
    from healer.service.daemon import Daemon
    from healer.store.db import Store

log = structlog.get_logger("healer.telegram")

T = TypeVar("T")
Ctx = ContextTypes.DEFAULT_TYPE
App = Application[Any, Ctx, Any, Any, Any, Any]

OUTBOX_MAX = 1000
SEND_BACKOFF_MAX = 5.0  # while the API is down, one try every few seconds is cheap and recovers fast
CONNECT_BACKOFF_MAX = 30.0
POLL_TIMEOUT = 10  # seconds of long poll per getUpdates
FIX_WAIT = 120.0  # how long "fix errors" or Approve waits for fixes before answering "still running"
MAX_REFUSED_REMEMBERED = 10_000
_CALLBACK_RE = re.compile(r"^(ap|rj):(\d{1,18})$")
_QUIET_LOGGERS = ("httpx", "httpcore", "telegram", "telegram.ext", "apscheduler")


@dataclass(slots=True)
class Outgoing:
    chat_id: int
    text: str  # HTML, already escaped
    markup: InlineKeyboardMarkup | None = None


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


class TelegramBot:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        s = self.settings
        if not s.token:
            raise ValueError("telegram is enabled without a token")
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        # A proxy's HTML error page makes PTB log a JSON traceback at ERROR on every retry;
        # the same failure reaches us as NetworkError and is logged once, readably.
        logging.getLogger("telegram.request").setLevel(logging.CRITICAL)
        self.router = Router(self._enqueue_notice)
        self.outbox: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=OUTBOX_MAX)
        self.dropped = 0
        self.refused_chats: set[int] = set()
        self.ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._polling_errors = 0
        self._last_warnings: tuple[str, ...] = ()
        self._intervals = (s.digest_interval, s.update_interval, s.health_interval)
        self._token = s.token
        builder = Application.builder().token(s.token).rate_limiter(AIORateLimiter(max_retries=3))
        if s.base_url:
            builder = builder.base_url(s.base_url)
        # Fixes can take a while; one slow "fix errors" must not hold up a button press.
        self.app: App = builder.concurrent_updates(8).build()
        self.app.add_handler(CallbackQueryHandler(self._on_callback))
        self.app.add_handler(MessageHandler(filters.UpdateType.MESSAGE, self._on_message))
        self.app.add_error_handler(self._on_error)

    # -- helpers --------------------------------------------------------------------------
    @property
    def settings(self) -> TelegramSettings:
        assert self.daemon.rules is not None
        return self.daemon.rules.settings.telegram

    @property
    def store(self) -> Store:
        assert self.daemon.store is not None
        return self.daemon.store

    def _now(self) -> float:
        return self.daemon.clock.now()

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def _in_ingest(self, fn: Callable[..., T], *args: Any) -> T:
        """Engine calls that record decisions share the ingest thread, so they serialise with ingestion."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.daemon.ingest_pool, fn, *args)

    async def _audit(self, kind: str, actor: str, detail: dict[str, Any]) -> None:
        try:
            await self._in_thread(self.store.audit, kind, actor, detail, self._now())
        except Exception as exc:  # a busy or full database must not take the bot down
            log.warning("audit_failed", kind=kind, error=str(exc))

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Never fails the daemon: connecting happens in the background, with retries."""
        self._tasks.append(asyncio.create_task(self._sender(), name="telegram-sender"))
        self._tasks.append(asyncio.create_task(self._connect(), name="telegram-connect"))
        log.info("telegram_starting", allowed=list(self.settings.allowed_chat_ids), base_url=self._safe_base_url())

    def _safe_base_url(self) -> str:
        return self.settings.base_url or "https://api.telegram.org/bot"  # the token is appended, never shown

    async def _connect(self) -> None:
        delay = 1.0
        while True:
            try:
                if not self.app.running:
                    await self.app.initialize()  # getMe: proves the token and the URL
                    await self.app.start()  # update processing and the JobQueue
                    self._schedule_jobs()
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
        self._started = True
        self.ready.set()
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
        """Give queued messages a moment to leave, then stop polling, jobs and the client."""
        if self.ready.is_set() and not self.outbox.empty():
            deadline = time.monotonic() + 3.0
            while not self.outbox.empty() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
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
        log.info("telegram_stopped", unsent=self.outbox.qsize(), dropped=self.dropped)

    def reconfigure(self) -> None:
        """Config reload: allow-lists and routing are read live; intervals need new jobs."""
        s = self.settings
        self.refused_chats.clear()  # an operator who just allowed a chat should not find it muted
        if s.token != self._token:
            log.warning("telegram_token_changed", action="restart healer to use the new token")
        intervals = (s.digest_interval, s.update_interval, s.health_interval)
        if intervals != self._intervals:
            self._intervals = intervals
            if self.app.running:
                self._schedule_jobs()

    def _schedule_jobs(self) -> None:
        jq = self.app.job_queue
        if jq is None:  # PTB installed without [job-queue]
            log.error("telegram_no_job_queue", hint="install python-telegram-bot[job-queue]")
            return
        for job in jq.jobs():
            job.schedule_removal()
        s = self.settings
        jq.run_repeating(self._digest_job, s.digest_interval, first=s.digest_interval, name="digest")
        jq.run_repeating(self._update_job, s.update_interval, first=s.update_interval, name="updates")
        jq.run_repeating(self._health_job, s.health_interval, first=min(5.0, s.health_interval), name="health")

    # -- outgoing ------------------------------------------------------------------------------
    def notify(self, notice: Notice) -> None:
        """On the loop thread, for every engine notice: route and enqueue, never await."""
        try:
            how = self.router.route(notice, self.settings.routing, self._now())
            log.debug("notice_routed", kind=notice.kind.value, severity=notice.severity.value, route=how)
        except Exception as exc:  # a routing bug must not disturb the engine's caller
            log.exception("notice_route_failed", error=str(exc))

    def _enqueue_notice(self, text: str, notice: Notice | None) -> None:
        markup = None
        if notice is not None and notice.kind is NoticeKind.APPROVAL and notice.decision is not None:
            markup = approval_keyboard(notice.decision.id)
        for chat_id in self.settings.notify_chat_ids:
            self._enqueue(Outgoing(chat_id, text, markup))

    def _enqueue(self, out: Outgoing) -> None:
        """Bounded: when full, the oldest message goes (the newest says most about now)."""
        if self.outbox.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.outbox.get_nowait()
                self.outbox.task_done()
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("telegram_outbox_full", dropped=self.dropped, size=OUTBOX_MAX)
        self.outbox.put_nowait(out)

    def reply(self, chat_id: int, text: str) -> None:
        self._enqueue(Outgoing(chat_id, truncate(text)))

    async def _sender(self) -> None:
        """The only place that sends: in order, retried with backoff until it goes or is refused."""
        while True:
            out = await self.outbox.get()
            try:
                await self._deliver(out)
            finally:
                self.outbox.task_done()

    async def _deliver(self, out: Outgoing) -> None:
        delay = 0.5
        while True:
            await self.ready.wait()
            try:
                await self.app.bot.send_message(
                    out.chat_id,
                    out.text,
                    parse_mode=ParseMode.HTML,
                    reply_markup=out.markup,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
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

    # -- incoming ------------------------------------------------------------------------------
    async def _on_error(self, update: object, context: Ctx) -> None:
        """One place for handler and job errors: log, never raise (the bot keeps serving)."""
        err = context.error
        chat = update.effective_chat.id if isinstance(update, Update) and update.effective_chat else None
        log.error("telegram_handler_error", error=f"{type(err).__name__}: {err}", chat=chat)

    async def _allowed(self, update: Update) -> bool:
        """Allowed chats pass; anyone else is audited every time and told no exactly once."""
        chat = update.effective_chat
        user = update.effective_user
        if chat is not None and chat.id in self.settings.allowed_chat_ids:
            return True
        chat_id = chat.id if chat is not None else 0
        query = update.callback_query
        msg = update.effective_message
        detail: dict[str, Any] = {
            "chat_id": chat_id,
            "user_id": user.id if user else None,
            "username": user.username if user else None,
            "what": "button" if query is not None else "message",
            "text": ((query.data if query is not None else (msg.text if msg is not None else None)) or "")[:200],
        }
        await self._audit("telegram_refused", f"telegram:{chat_id}", detail)
        log.warning("telegram_refused", chat=chat_id, user=detail["user_id"], what=detail["what"])
        if query is not None:
            with contextlib.suppress(TelegramError):
                await query.answer("Not allowed.", show_alert=False)
        if chat_id and chat_id not in self.refused_chats:
            if len(self.refused_chats) >= MAX_REFUSED_REMEMBERED:
                self.refused_chats.clear()
            self.refused_chats.add(chat_id)
            self.reply(
                chat_id,
                f"This chat is not allowed to control healer (chat id {chat_id}). "
                "Ask the operator to add it to telegram.allowed_chat_ids.",
            )
        return False

    async def _on_message(self, update: Update, context: Ctx) -> None:
        if not await self._allowed(update):
            return
        msg = update.effective_message
        chat = update.effective_chat
        if msg is None or chat is None:
            return
        if not msg.text:
            self.reply(chat.id, "I only understand text. Send <b>help</b>.")
            return
        user_id = update.effective_user.id if update.effective_user else chat.id
        cmd = parse(msg.text)
        log.info("telegram_command", chat=chat.id, command=cmd.name)
        try:
            answer = await self.run_command(cmd, f"telegram:{user_id}", chat.id)
        except Exception as exc:  # the person asking deserves an answer, not silence
            log.exception("telegram_command_failed", command=cmd.name, error=str(exc))
            answer = f"{esc(cmd.name)} failed: {esc(type(exc).__name__)}: {esc(str(exc)[:300])}"
        self.reply(chat.id, answer)

    async def run_command(self, cmd: Command, actor: str, chat_id: int) -> str:
        """One command to one HTML answer (long-running ones also send progress to ``chat_id``)."""
        d = self.daemon
        assert d.engine is not None and d.rules is not None
        engine, store, now = d.engine, self.store, self._now()
        if cmd.name == "help":
            return esc(HELP_TEXT)
        if cmd.name == "bad":
            return esc(cmd.text)
        if cmd.name == "health":
            s = d.rules.settings

            def report() -> str:
                h = collect(s.health)
                return health_report(h, store, engine.by_id, s.kill_switch, engine.breaker_open(now), now, quote=esc)

            return await self._in_thread(report)
        if cmd.name == "errors":
            return await self._in_thread(errors_report, store, engine.by_id, now - cmd.window, now, esc)
        if cmd.name == "history":
            return await self._in_thread(history_report, store, 15, esc, now)
        if cmd.name == "explain":
            return await self._in_thread(explain_report, store, cmd.incident, esc, now)
        if cmd.name == "status":
            return await self._in_thread(self._status, now)
        if cmd.name == "fix":
            return await self._fix(actor, chat_id)
        return await self._explain_match(cmd.text, actor)

    def _status(self, now: float) -> str:
        d = self.daemon
        assert d.engine is not None and d.rules is not None
        s = d.rules.settings
        breaker = d.engine.breaker_open(now)
        n_open = len(self.store.incidents(status=["open"], limit=10_000))
        return "\n".join(
            [
                bold("Status"),
                f"Kill switch: {'ON — no fixes run' if s.kill_switch else 'off'} "
                "(change it in the config file; healer reloads it)",
                f"Circuit breaker: {'OPEN — notify only' if breaker else 'closed'}",
                f"Dry run: {'on' if s.dry_run else 'off'}",
                f"Patterns: {len(d.engine.by_id)}; open incidents: {n_open}",
                f"Telegram: {self.outbox.qsize()} queued, {self.dropped} dropped, "
                f"{self.router.suppressed} repeats suppressed",
            ]
        )

    async def _fix(self, actor: str, chat_id: int) -> str:
        d = self.daemon
        assert d.engine is not None and d.rules is not None
        engine = d.engine
        if d.rules.settings.kill_switch:
            await self._audit("fix_refused", actor, {"reason": "kill_switch"})
            return "Kill switch is ON in the config: nothing was run."
        result: IngestResult = await self._in_ingest(engine.fix_open, actor)
        jobs = [j for j in result.jobs if hasattr(j, "decision")]
        if not jobs:
            if not result.decisions:
                return "Nothing to fix: no open incident has an automatic fix."
            lines = ["Nothing was run:"]
            lines += [
                f"  incident #{dec.incident_id} {esc(dec.pattern_id)}: {dec.verdict.value} ({dec.reason.value}) "
                f"{esc(dec.detail[:120])}"
                for dec in result.decisions
            ]
            return "\n".join(lines)
        self.reply(chat_id, f"Running {len(jobs)} fix(es)…")
        attempts = await self._run_jobs(result.jobs)
        return _fix_summary(attempts, len(jobs))

    async def _run_jobs(self, jobs: Sequence[Any]) -> list[FixAttempt | BaseException | None]:
        futs = [asyncio.wrap_future(f) for f in self.daemon.launch_jobs(list(jobs))]
        if not futs:
            return []
        _done, pending = await asyncio.wait(futs, timeout=FIX_WAIT)
        out: list[FixAttempt | BaseException | None] = []
        for f in futs:
            if f in pending:
                out.append(TimeoutError("still running"))
            elif f.exception() is not None:
                out.append(f.exception())
            else:
                out.append(f.result())
        return out

    async def _explain_match(self, text: str, actor: str) -> str:
        d = self.daemon
        assert d.engine is not None
        hits = d.engine.matcher.match_text(text[:4096])
        await self._audit("chat_match", actor, {"text": text[:300], "patterns": [h.pattern.id for h in hits]})
        if not hits:
            return "No pattern matches that text, and it is not a command. Send <b>help</b> for what I understand."
        lines = [bold(f"That matches {len(hits)} pattern(s) (explained only; nothing was run):")]
        for h in hits:
            p = h.pattern
            if p.fixable:
                steps = " → ".join(
                    f"{st.action}({', '.join(f'{k}={v}' for k, v in st.params.items())})" for st in p.steps
                )
                fix = f"fix: {esc(steps)} ({'asks for approval first' if p.approval.value == 'ask' else 'automatic'})"
            else:
                fix = "no automatic fix (notify only)"
            lines.append(f"• <b>{esc(p.id)}</b> [{p.severity.value}] {esc(p.description.strip()[:200])}")
            lines.append(f"  line: {esc(h.line[:200])}")
            lines.append(f"  {fix}")
            groups = {k: v for k, v in h.groups.items() if k != "match"}
            if groups:
                lines.append("  captured: " + ", ".join(f"{esc(k)}={esc(v[:80])}" for k, v in groups.items()))
        return "\n".join(lines)

    # -- buttons -----------------------------------------------------------------------------------
    async def _on_callback(self, update: Update, context: Ctx) -> None:
        query = update.callback_query
        if query is None:
            return
        if not await self._allowed(update):  # answers the query itself
            return
        answered = False

        async def answer(text: str) -> None:
            nonlocal answered
            if not answered:
                answered = True
                with contextlib.suppress(TelegramError):
                    await query.answer(text)

        try:
            m = _CALLBACK_RE.match(query.data or "")
            if m is None:
                await answer("Unknown button.")
                return
            approve = m.group(1) == "ap"
            decision_id = int(m.group(2))
            user = update.effective_user
            who = f"@{user.username}" if user and user.username else f"user {user.id if user else '?'}"
            actor = f"telegram:{user.id if user else 0}"
            assert self.daemon.engine is not None
            settled = await self._in_ingest(self.daemon.engine.settle_approval, decision_id, approve, actor)
            status, job = settled.status, settled.job  # BLOCKED (settled.decision says why): H3 renders it
            log.info("telegram_approval", decision=decision_id, approve=approve, status=status, actor=actor)
            if status == "done":
                await answer("Already decided.")
                return
            if status == "missing":
                await answer("Unknown approval.")
                return
            if status == "expired":
                await answer("Expired: nothing ran.")
                await self._edit(query.message, "⌛ Expired: nothing ran.")
                return
            if status == "kill_switch":
                await answer("Kill switch is ON: nothing ran.")
                await self._edit(query.message, f"Approved by {esc(who)}, but the kill switch is ON: nothing ran.")
                return
            if not approve:
                await answer("Rejected.")
                await self._edit(query.message, f"❌ Rejected by {esc(who)}.")
                return
            await answer("Approved: running the fix.")
            await self._edit(query.message, f"✅ Approved by {esc(who)}: running…")
            attempts = await self._run_jobs([job] if job is not None else [])
            await self._edit(query.message, f"✅ Approved by {esc(who)}.\n" + _fix_summary(attempts, len(attempts)))
        finally:
            await answer("Done.")

    async def _edit(self, message: Any, note: str) -> None:
        """Append ``note`` to the approval message and drop its buttons, so nobody presses twice."""
        if not isinstance(message, Message):
            return
        original = message.text or ""
        base = original.split("\n\n—\n", 1)[0]
        try:
            await message.edit_text(
                truncate(f"{esc(base)}\n\n—\n{note}"),
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except TelegramError as exc:
            log.warning("telegram_edit_failed", error=str(exc))

    # -- jobs (PTB JobQueue) --------------------------------------------------------------------------
    def _counts(self, ids: Sequence[int]) -> dict[int, int]:
        out = {}
        for i in ids:
            inc = self.store.incident(i)
            if inc is not None:
                out[i] = inc.count
        return out

    async def _digest_job(self, context: Ctx) -> None:
        ids = self.router.digest_ids()
        counts = await self._in_thread(self._counts, ids) if ids else {}
        text = self.router.take_digest(counts)
        if text is not None:
            self._enqueue_notice(text, None)

    async def _update_job(self, context: Ctx) -> None:
        now = self._now()
        interval = self.settings.update_interval
        ids = self.router.watched(now, interval)
        if ids:
            counts = await self._in_thread(self._counts, ids)
            self.router.updates(counts, now, interval)

    async def _health_job(self, context: Ctx) -> None:
        """Speak only when a threshold is crossed (or cleared), not every interval."""
        assert self.daemon.rules is not None
        h = await self._in_thread(collect, self.daemon.rules.settings.health)
        warnings = tuple(h.warnings)
        if warnings == self._last_warnings:
            return
        previous, self._last_warnings = self._last_warnings, warnings
        if warnings:
            text = "Host health: " + "; ".join(warnings)
            self.router.route(Notice(NoticeKind.HEALTH, Severity.HIGH, text), self.settings.routing, self._now())
        elif previous:
            text = "Host health back within thresholds (was: " + "; ".join(previous) + ")"
            self.router.route(Notice(NoticeKind.HEALTH, Severity.LOW, text), self.settings.routing, self._now())


def _fix_summary(attempts: Sequence[FixAttempt | BaseException | None], n_jobs: int) -> str:
    ok = failed = other = 0
    lines = []
    for a in attempts:
        if isinstance(a, BaseException):
            other += 1
            lines.append(f"  • {esc(type(a).__name__)}: {esc(str(a)[:200])}")
        elif a is None:
            other += 1
            lines.append("  • no attempt was made (refused before starting; see history)")
        else:
            if a.outcome in (Outcome.SUCCEEDED, Outcome.VERIFYING):
                ok += 1
                word = "succeeded" if a.outcome is Outcome.SUCCEEDED else "succeeded (verifying)"
            else:
                failed += 1
                word = a.outcome.value
            lines.append(
                f"  • fix #{a.id} incident #{a.incident_id} {esc(' → '.join(a.actions))}: {word} — "
                f"{esc(a.detail[:200])}"
            )
    head = f"Fixes: {n_jobs} attempted, {ok} succeeded, {failed} failed"
    if other:
        head += f", {other} other"
    return "\n".join([head, *lines])
