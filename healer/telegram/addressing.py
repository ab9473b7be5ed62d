"""Is a chat message for this host? One group chat, one bot per host (issue 17).

Every host's healer runs its own bot in one shared group, so every bot (with
privacy mode off, docs/FLEET.md) reads every message and must answer only the
ones meant for it. A message names its host in one of four ways:

* ``/health@web2_healer_bot``: Telegram's own way to address one bot;
* ``@web2_healer_bot health``: a mention of the bot;
* ``health check web-2``, ``fix errors on web-2``, ``web-2: health``: the host's
  name (or an alias) before or after a command;
* ``... all`` / ``... on all hosts``: every healer answers with its own part.

A host name is only taken as an address when what is left is a command: a
pasted log line ending in a word ("connection refused by all") stays a pasted
line. A message naming nobody is :attr:`Target.NONE`; what to do with it is
``telegram.unaddressed`` (:func:`route`). A host word names another host only
in a fleet chat (a group with ``unaddressed`` set to ``hint`` or ``ignore``);
elsewhere "errors banana" is a bad argument, answered with its usage. In a
private chat there is only one bot, so everything not naming another bot is
answered.

Pure: no I/O, no Telegram types, so it is tested exhaustively on strings.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from healer.core.enums import Unaddressed
from healer.telegram.commands import CommandName, parse

ALL_WORDS = frozenset({"all", "everyone", "everybody", "fleet", "all hosts", "every host"})
_JOINERS = frozenset({"on", "for", "at", "from", "@"})
_SLASH_AT = re.compile(r"^/(\w+)@(\w+)\b(.*)$", re.S)
_MENTION = re.compile(r"^@(\w+)[\s,:]+(.+)$", re.S)
_LEADING_HOST = re.compile(r"^([\w.\[\]:-]+?):\s+(.+)$", re.S)
_NOT_COMMANDS = frozenset({CommandName.MATCH, CommandName.BAD})


class Target(enum.Enum):
    MINE = "mine"  # names this host or its bot
    ALL = "all"  # names every host
    OTHER = "other"  # names another host or bot
    NONE = "none"  # names nobody


class Action(enum.Enum):
    ANSWER = "answer"
    HINT = "hint"  # tell the chat how to address a host (the handler says it once per chat)
    ELSEWHERE = "elsewhere"  # private chat, another host named: say which bot to ask
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class Addressed:
    target: Target
    text: str  # the message without its address: what the command parser reads
    by_bot: bool = False  # named a bot (``/cmd@bot``, ``@bot``), not a host word


@dataclass(frozen=True, slots=True)
class Routed:
    action: Action
    text: str


def _bare(name: str) -> str:
    return name.strip().lower().rstrip(".")


def names_of(host: str, aliases: Iterable[str]) -> frozenset[str]:
    """The names this host answers to: ``host``, its short name (``web-1`` of ``web-1.example.com``), aliases."""
    names = {_bare(n) for n in (host, *aliases) if n.strip()}
    names |= {n.split(".", 1)[0] for n in names if "." in n and not n.replace(".", "").isdigit()}
    return frozenset(names)


def _is_command(text: str) -> bool:
    return parse(text).name not in _NOT_COMMANDS


def _whom(word: str, names: frozenset[str]) -> Target:
    w = _bare(word)
    if w in ALL_WORDS:
        return Target.ALL
    return Target.MINE if w in names else Target.OTHER


def _bot(name: str, bot_username: str) -> Target:
    return Target.MINE if bot_username and name.lower() == bot_username.lower() else Target.OTHER


def address(text: str, *, names: frozenset[str], bot_username: str) -> Addressed:
    """Who ``text`` is for, and the command in it without the address."""
    t = text.strip()
    m = _SLASH_AT.match(t)
    if m is not None:
        return Addressed(_bot(m.group(2), bot_username), f"/{m.group(1)}{m.group(3)}", by_bot=True)
    m = _MENTION.match(t)
    if m is not None:
        return Addressed(_bot(m.group(1), bot_username), m.group(2).strip(), by_bot=True)
    if _is_command(t):
        return Addressed(Target.NONE, t)
    m = _LEADING_HOST.match(t)
    if m is not None and _is_command(m.group(2)):
        return Addressed(_whom(m.group(1), names), m.group(2).strip())
    words = t.split()
    for tail in (2, 1):  # "on all hosts" before "on web-2"
        if len(words) <= tail:
            continue
        head, who = words[:-tail], " ".join(words[-tail:]).rstrip("?!.,")
        if tail == 2 and _bare(who) not in ALL_WORDS:
            continue
        if head and head[-1].lower() in _JOINERS:
            head = head[:-1]
        rest = " ".join(head)
        if rest and _is_command(rest):
            if who.startswith("@"):
                return Addressed(_bot(who[1:], bot_username), rest, by_bot=True)
            return Addressed(_whom(who, names), rest)
    return Addressed(Target.NONE, t)


def route(text: str, *, names: frozenset[str], bot_username: str, group: bool, unaddressed: Unaddressed) -> Routed:
    """What this host's bot does with ``text``: answer it (and with which text), hint, or stay quiet."""
    a = address(text, names=names, bot_username=bot_username)
    if a.target in (Target.MINE, Target.ALL):
        return Routed(Action.ANSWER, a.text)
    fleet = group and unaddressed is not Unaddressed.ANSWER
    if a.target is Target.OTHER and not a.by_bot and not fleet:
        # Outside a fleet chat an unknown last word is an argument ("errors banana": its usage),
        # not a host: nothing here says which other hosts exist.
        return Routed(Action.ANSWER, text.strip())
    if a.target is Target.OTHER:
        # In a group another healer answers; in a private chat nobody else can.
        return Routed(Action.IGNORE if group else Action.ELSEWHERE, a.text)
    if not group or unaddressed is Unaddressed.ANSWER:
        return Routed(Action.ANSWER, a.text)
    if unaddressed is Unaddressed.HINT and _is_command(a.text):
        return Routed(Action.HINT, a.text)
    # People talk in a group: a line that is no command, or one another healer hints about, gets silence.
    return Routed(Action.IGNORE, a.text)


def hint_text(host: str, bot_username: str) -> str:
    """Plain text (the caller escapes it): how to address one host or all of them."""
    bot = f"@{bot_username}" if bot_username else "@<bot>"
    return (
        "Several healers share this chat, one per host, so say which host you mean: "
        f'/health{bot} or "health {host}" for this one, "health all" for every host. '
        "Each host's messages start with its name. (I say this once.)"
    )


def elsewhere_text(host: str) -> str:
    return f"This is the healer of {host}; ask that host's own bot, or name {host} (or all)."
