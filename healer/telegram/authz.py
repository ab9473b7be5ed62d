"""Who may command healer from a chat: per person, not only per chat (issue 14 §3).

Two gates. The chat gate (``telegram.allowed_chat_ids``, in ``handlers``)
decides who may talk to the bot at all and read its reports. This module is
the second gate, for what changes the host: Approve, Reject, Undo and "fix
errors". Any member of an allowed group chat could otherwise approve a fix.

A person may command when, in an allowed chat, they are

* listed in ``telegram.allowed_user_ids``;
* the person of an allowed *private* chat (its id is their user id, so
  listing the chat already named them: single-operator set-ups keep working);
* with ``telegram.allow_chat_admins``, an administrator or the creator of the
  group the command came from, as ``getChatAdministrators`` says. The list is
  cached ``admins_ttl`` seconds per group; when Telegram cannot be asked the
  answer is no (fail closed) and nothing is cached, so the next press asks again.

Pure of the handler's flow on purpose, so the fleet branch's addressing and
this check can change separately.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from telegram.error import TelegramError

from healer.core.clock import Clock
from healer.settings.schema import TelegramSettings

log = structlog.get_logger("healer.telegram.authz")

Admins = Callable[[int], Awaitable[frozenset[int]]]  # a group chat id -> its administrators' user ids
PRIVATE = "private"


class Grant(enum.Enum):
    """Why a person may command (or, for ``NONE``, why not is in :attr:`Verdict.why`)."""

    LISTED = "allowed_user_ids"
    PRIVATE_CHAT = "private chat in allowed_chat_ids"
    CHAT_ADMIN = "administrator of the group (allow_chat_admins)"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Verdict:
    grant: Grant
    why: str = ""

    @property
    def allowed(self) -> bool:
        return self.grant is not Grant.NONE


class Authz:
    def __init__(self, settings: Callable[[], TelegramSettings], clock: Clock, admins: Admins) -> None:
        self._settings = settings
        self._clock = clock
        self._admins = admins
        self._cache: dict[int, tuple[float, frozenset[int]]] = {}

    def forget(self) -> None:
        """A config reload may change who is allowed: ask Telegram again."""
        self._cache.clear()

    async def may_command(self, chat_id: int, chat_type: str, user_id: int | None) -> Verdict:
        s = self._settings()
        if user_id is None:  # a channel post or an anonymous admin: no person to hold to account
            return Verdict(Grant.NONE, "the message has no sender")
        if user_id in s.allowed_user_ids:
            return Verdict(Grant.LISTED)
        if chat_type == PRIVATE and chat_id == user_id and chat_id in s.allowed_chat_ids:
            return Verdict(Grant.PRIVATE_CHAT)
        if chat_type != PRIVATE and s.allow_chat_admins:
            admins = await self._group_admins(chat_id, s.admins_ttl)
            if admins is None:
                return Verdict(Grant.NONE, "the group's administrators could not be read from Telegram; try again")
            if user_id in admins:
                return Verdict(Grant.CHAT_ADMIN)
            return Verdict(Grant.NONE, "not in telegram.allowed_user_ids and not an administrator of this group")
        return Verdict(Grant.NONE, "not in telegram.allowed_user_ids")

    async def _group_admins(self, chat_id: int, ttl: float) -> frozenset[int] | None:
        now = self._clock.monotonic()
        hit = self._cache.get(chat_id)
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        try:
            admins = await self._admins(chat_id)
        except (TelegramError, OSError) as exc:
            log.warning("telegram_admins_unavailable", chat=chat_id, error=f"{type(exc).__name__}: {exc}")
            return None
        self._cache[chat_id] = (now, admins)
        return admins


def refusal_text(user_id: int | None, what: str, why: str) -> str:
    """What the refused person reads (plain text; the caller escapes it)."""
    who = f"user {user_id}" if user_id is not None else "this sender"
    return (
        f"Not allowed: {who} may not {what} ({why}). Reports (health, errors, status, history) still work; "
        "ask the operator to add your user id to telegram.allowed_user_ids."
    )
