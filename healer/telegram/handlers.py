"""What the bot does with a message or a button press: authorise, parse, call a use case, render.

Thin on purpose: every fact comes from the ``Healer`` facade and every text
from ``healer.app.reports`` (HTML-escaped with :func:`esc`), so the bot says
what ``healer <command>`` prints. Use cases that record decisions (fix,
approve/reject) run on the daemon's ``serial`` executor, serialised with
ingestion; running the fixes and every read run in a worker thread, never
on the event loop.

Security: only ``allowed_chat_ids`` may run commands or press buttons. Any
other chat gets one refusal (then silence) and every attempt is audited.
Pressing a button or "fix errors" also needs a person who may command
(:mod:`healer.telegram.authz`); a refusal is audited as ``command_refused``.

Fleet (issue 17): several hosts' bots share one group. :meth:`Handlers.addressed`
(the one hook, rules in :mod:`healer.telegram.addressing`) drops what names
another host, and a button is only acted on when this bot sent its message: the
decision ids of two hosts are both small integers, so ``ap:3`` alone must never be
enough for web-2 to run web-1's approval.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import structlog
from telegram import LinkPreviewOptions, Message, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from healer.app import reports
from healer.app.lifecycle import mark_text
from healer.app.usecases import Healer
from healer.core.enums import AuditKind, SettleStatus
from healer.core.errors import HealerError
from healer.settings.schema import TelegramSettings
from healer.telegram import addressing
from healer.telegram.addressing import Action
from healer.telegram.authz import Authz, refusal_text
from healer.telegram.commands import HELP_TEXT, Command, CommandName, parse
from healer.telegram.render import esc, truncate

log = structlog.get_logger("healer.telegram.handlers")

T = TypeVar("T")
Ctx = ContextTypes.DEFAULT_TYPE
Reply = Callable[[int, str], None]

HISTORY_LIMIT = 15
MAX_REFUSED_REMEMBERED = 10_000
NO_MATCH = "No pattern matches that text, and it is not a command. Send <b>help</b> for what I understand."
_CALLBACK_RE = re.compile(r"^(ap|rj|ud):(\d{1,18})$")
# The buttons that change anything, and what a refusal names them; "not this" is among them because it feeds the
# figures that promote or demote a pattern.
_BUTTON_VERBS = {"ap:": "approve fixes", "rj:": "reject fixes", "ud:": "undo fixes", "nt:": "mark matches wrong"}
_NOT_THIS_RE = re.compile(r"^nt:(\d{1,18})$")  # "not this" on an incident notice: nt:<incident id>
_GROUPS = frozenset({"group", "supergroup"})


class Handlers:
    def __init__(
        self,
        facade: Healer,
        settings: Callable[[], TelegramSettings],
        *,
        serial: Executor,
        reply: Reply,
        status_extra: Callable[[], str],
        authz: Authz,
        host: Callable[[], str] = lambda: "",
    ) -> None:
        self.facade = facade
        self.authz = authz
        self._settings = settings
        self._host = host
        self._serial = serial
        self._reply = reply
        self._status_extra = status_extra
        self.refused_chats: set[int] = set()
        self.refused_people: set[tuple[int, int]] = set()  # (chat, user) told once that they may not command
        self.hinted_chats: set[int] = set()  # groups told once how to address a host

    async def _serially(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._serial, fn, *args)

    async def _audit(self, kind: AuditKind, actor: str, detail: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(self.facade.audit, kind, actor, detail)
        except Exception as exc:  # a busy or full database must not take the bot down
            log.warning("audit_failed", kind=kind.value, error=str(exc))

    # -- who may -------------------------------------------------------------------------
    async def allowed(self, update: Update) -> bool:
        """Allowed chats pass; anyone else is audited every time and told no exactly once."""
        chat = update.effective_chat
        user = update.effective_user
        if chat is not None and chat.id in self._settings().allowed_chat_ids:
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
        await self._audit(AuditKind.TELEGRAM_REFUSED, f"telegram:{chat_id}", detail)
        log.warning("telegram_refused", chat=chat_id, user=detail["user_id"], what=detail["what"])
        if query is not None:
            with contextlib.suppress(TelegramError):
                await query.answer("Not allowed.", show_alert=False)
        if chat_id and chat_id not in self.refused_chats:
            if len(self.refused_chats) >= MAX_REFUSED_REMEMBERED:
                self.refused_chats.clear()
            self.refused_chats.add(chat_id)
            self._reply(
                chat_id,
                f"This chat is not allowed to control healer (chat id {chat_id}). "
                "Ask the operator to add it to telegram.allowed_chat_ids.",
            )
        return False

    async def may_command(self, update: Update, what: str) -> bool:
        """The person gate for approve, reject, undo and fix; every refusal is audited."""
        chat, user = update.effective_chat, update.effective_user
        if chat is None:
            return False
        user_id = user.id if user is not None else None
        verdict = await self.authz.may_command(chat.id, chat.type, user_id)
        if verdict.allowed:
            return True
        detail: dict[str, Any] = {
            "chat_id": chat.id,
            "chat_type": chat.type,
            "user_id": user_id,
            "username": user.username if user else None,
            "what": what,
            "why": verdict.why,
        }
        await self._audit(AuditKind.COMMAND_REFUSED, f"telegram:{user_id}", detail)
        log.warning("telegram_command_refused", chat=chat.id, user=user_id, what=what, why=verdict.why)
        text = refusal_text(user_id, what, verdict.why)
        query = update.callback_query
        if query is not None:
            with contextlib.suppress(TelegramError):
                await query.answer(text[:200], show_alert=True)
        elif (chat.id, user_id or 0) not in self.refused_people:
            if len(self.refused_people) >= MAX_REFUSED_REMEMBERED:
                self.refused_people.clear()
            self.refused_people.add((chat.id, user_id or 0))
            self._reply(chat.id, esc(text))
        return False

    # -- messages ------------------------------------------------------------------------
    async def on_message(self, update: Update, context: Ctx) -> None:
        if not await self.allowed(update):
            return
        msg = update.effective_message
        chat = update.effective_chat
        if msg is None or chat is None:
            return
        if not msg.text:
            self._reply(chat.id, "I only understand text. Send <b>help</b>.")
            return
        text = self.addressed(msg.text, chat.id, chat.type in _GROUPS, context.bot.username or "")
        if text is None:
            return
        user_id = update.effective_user.id if update.effective_user else chat.id
        cmd = parse(text)
        log.info("telegram_command", chat=chat.id, command=cmd.name.value)
        if cmd.name is CommandName.FIX and not await self.may_command(update, "run fixes"):
            return
        try:
            answer = await self.run_command(cmd, f"telegram:{user_id}", chat.id)
        except Exception as exc:  # the person asking deserves an answer, not silence
            log.exception("telegram_command_failed", command=cmd.name.value, error=str(exc))
            answer = f"{esc(cmd.name.value)} failed: {esc(type(exc).__name__)}: {esc(str(exc)[:300])}"
        self._reply(chat.id, answer)

    def addressed(self, text: str, chat_id: int, group: bool, bot_username: str) -> str | None:
        """The command text if this host should answer ``text``, else None (after a hint, once per chat)."""
        s, host = self._settings(), self._host()
        names = addressing.names_of(host, s.aliases)
        routed = addressing.route(text, names=names, bot_username=bot_username, group=group, unaddressed=s.unaddressed)
        match routed.action:
            case Action.ANSWER:
                return routed.text
            case Action.HINT if chat_id not in self.hinted_chats:
                self.hinted_chats.add(chat_id)
                self._reply(chat_id, esc(addressing.hint_text(host, bot_username)))
            case Action.ELSEWHERE:
                self._reply(chat_id, esc(addressing.elsewhere_text(host)))
        log.debug("telegram_not_for_us", chat=chat_id, action=routed.action.value)
        return None

    async def run_command(self, cmd: Command, actor: str, chat_id: int) -> str:
        """One command to one HTML answer (``fix`` also says "Running…" to ``chat_id`` first)."""
        f = self.facade
        match cmd.name:
            case CommandName.HELP:
                return esc(HELP_TEXT)
            case CommandName.BAD:
                return esc(cmd.text)
            case CommandName.HEALTH:
                return reports.health_text(await asyncio.to_thread(f.health), esc)
            case CommandName.ERRORS:
                return reports.errors_text(await asyncio.to_thread(f.errors, cmd.window), esc)
            case CommandName.HISTORY:
                return reports.history_text(await asyncio.to_thread(f.history, HISTORY_LIMIT), esc)
            case CommandName.EXPLAIN:
                return reports.explain_text(await asyncio.to_thread(f.explain, cmd.incident), esc)
            case CommandName.STATUS:
                status = reports.status_text(await asyncio.to_thread(f.status))
                return esc(status + "\n" + self._status_extra())
            case CommandName.FIX:
                report = await self._serially(f.request_fixes, actor)
                if report.todo:
                    self._reply(chat_id, f"Running {len(report.todo)} fix(es)…")
                    report = await asyncio.to_thread(f.run_fixes, report)
                return reports.fix_text(report, esc)
            case CommandName.MATCH:
                explained = await asyncio.to_thread(f.explain_line, cmd.text, actor)
                return reports.line_text(explained, esc, no_match=NO_MATCH)

    # -- buttons -----------------------------------------------------------------------
    async def on_callback(self, update: Update, context: Ctx) -> None:
        query = update.callback_query
        if query is None:
            return
        if not await self.allowed(update):  # answers the query itself
            return
        answered = False

        async def answer(text: str) -> None:
            nonlocal answered
            if not answered:
                answered = True
                with contextlib.suppress(TelegramError):
                    await query.answer(text)

        verb = _BUTTON_VERBS.get((query.data or "")[:3])
        if verb is not None and not await self.may_command(update, verb):
            return  # answered with the reason
        try:
            if not _sent_by(query.message, context.bot.id):
                log.warning("telegram_foreign_button", data=(query.data or "")[:64])
                await answer("That button belongs to another host's healer; nothing was done here.")
                return
            wrong = _NOT_THIS_RE.match(query.data or "")
            if wrong is not None:
                await self._not_this(query.message, int(wrong.group(1)), update, answer)
                return
            m = _CALLBACK_RE.match(query.data or "")
            if m is None:
                await answer("Unknown button.")
                return
            approve = m.group(1) == "ap"
            decision_id = int(m.group(2))
            user = update.effective_user
            who = f"@{user.username}" if user and user.username else f"user {user.id if user else '?'}"
            actor = f"telegram:{user.id if user else 0}"
            if m.group(1) == "ud":  # Undo: the same authorisation as Approve (may_command above)
                ok, text = await self._serially(self.facade.undo, decision_id, actor)
                await answer("Undone." if ok else text.split("\n", 1)[0])
                if ok:
                    await _edit(query.message, f"↩ Undone by {esc(who)}.")
                return
            report = await self._serially(self.facade.decide_settle, decision_id, approve, actor)
            log.info("telegram_approval", decision=decision_id, approve=approve, status=report.status.value)
            await answer(reports.settle_answer(report))
            if report.status in (SettleStatus.DONE, SettleStatus.MISSING):
                return  # nothing changed: the message keeps what it says
            await _edit(query.message, reports.settle_text(report, who, esc))
            if report.todo:
                report = await asyncio.to_thread(self.facade.finish_settle, report)
                await _edit(query.message, reports.settle_text(report, who, esc))
        finally:
            await answer("Done.")

    async def _not_this(
        self, message: object, incident_id: int, update: Update, answer: Callable[[str], Awaitable[None]]
    ) -> None:
        """The "not this" button: the match was wrong (``healer mark INCIDENT wrong``), counted once."""
        user = update.effective_user
        try:
            marked = await self._serially(self.facade.mark_wrong, incident_id, f"telegram:{user.id if user else 0}")
        except HealerError as exc:
            await answer(str(exc)[:180])
            return
        await answer("Marked: not this." if marked.new else "Already marked.")
        if marked.new:
            await _edit(message, mark_text(marked, esc))


def _sent_by(message: object, bot_id: int) -> bool:
    """False when the button's message is visibly another bot's (a message too old to see passes:
    Telegram itself only delivers a press to the bot that sent the buttons)."""
    author = message.from_user if isinstance(message, Message) else None
    return author is None or author.id == bot_id


async def _edit(message: object, note: str) -> None:
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
