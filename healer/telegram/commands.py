"""Turn what a person types into one command, forgivingly.

People on call type "health check", "/health", "Health?", "show errors 6h",
"/errors@healer_bot 30m" or "histroy" from a phone. One parser maps all of
them to the same :class:`Command`, so slash commands and plain phrases can
never drift apart. Anything that is not a command is handed back as
``match``: the bot then treats it as a pasted log line and explains which
pattern it hits (it never acts on it).

The parser is pure (no I/O), which keeps it cheap to test exhaustively.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from enum import StrEnum

from healer.settings.types import parse_duration


class CommandName(StrEnum):
    """What a message asks for; ``MATCH`` is a pasted log line, ``BAD`` a command with a bad argument."""

    HEALTH = "health"
    ERRORS = "errors"
    FIX = "fix"
    HISTORY = "history"
    STATUS = "status"
    HELP = "help"
    EXPLAIN = "explain"
    MATCH = "match"
    BAD = "bad"


DEFAULT_WINDOW = 3600.0
MAX_WINDOW = 30 * 86400.0

# Every accepted phrase, already normalised (lower case, single spaces, no slash).
_PHRASES: dict[str, CommandName] = {
    "health": CommandName.HEALTH,
    "health check": CommandName.HEALTH,
    "healthcheck": CommandName.HEALTH,
    "check health": CommandName.HEALTH,
    "host health": CommandName.HEALTH,
    "how is the host": CommandName.HEALTH,
    "errors": CommandName.ERRORS,
    "error": CommandName.ERRORS,
    "show errors": CommandName.ERRORS,
    "show error": CommandName.ERRORS,
    "show me errors": CommandName.ERRORS,
    "show me the errors": CommandName.ERRORS,
    "list errors": CommandName.ERRORS,
    "fix": CommandName.FIX,
    "fix errors": CommandName.FIX,
    "fix error": CommandName.FIX,
    "fix it": CommandName.FIX,
    "fix all": CommandName.FIX,
    "fix everything": CommandName.FIX,
    "history": CommandName.HISTORY,
    "show history": CommandName.HISTORY,
    "fix history": CommandName.HISTORY,
    "status": CommandName.STATUS,
    "kill switch": CommandName.STATUS,
    "killswitch": CommandName.STATUS,
    "kill-switch": CommandName.STATUS,
    "breaker": CommandName.STATUS,
    "circuit breaker": CommandName.STATUS,
    "help": CommandName.HELP,
    "start": CommandName.HELP,
    "commands": CommandName.HELP,
    "?": CommandName.HELP,
    "explain": CommandName.EXPLAIN,
    "explain incident": CommandName.EXPLAIN,
}

# Commands that accept a trailing argument, and how the argument looks.
_WINDOW_RE = re.compile(
    r"^(?:in |for |from |of )?(?:the )?(?:last |past )?(\d+(?:\.\d+)?)\s*"
    r"(s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?|d|days?)$"
)
_ID_RE = re.compile(r"^(?:incident )?#?(\d{1,12})$")

USAGE: dict[CommandName, str] = {
    CommandName.ERRORS: "usage: /errors [window], e.g. /errors 6h or show errors 30m (s, m, h or d; default 1h)",
    CommandName.EXPLAIN: "usage: /explain <incident number>, e.g. /explain 12",
    CommandName.HEALTH: "usage: /health (no argument)",
    CommandName.FIX: "usage: /fix (no argument): runs the fixes healer may run for open incidents",
    CommandName.HISTORY: "usage: /history (no argument)",
    CommandName.STATUS: "usage: /status (no argument)",
    CommandName.HELP: "usage: /help",
}

BOT_COMMANDS: tuple[tuple[str, str], ...] = (
    ("health", "host health: disks, memory, load, recent errors"),
    ("errors", "errors by type, e.g. /errors 6h"),
    ("fix", "run the fixes healer is allowed to run for open incidents"),
    ("history", "recent fix attempts and decisions"),
    ("status", "kill switch and circuit breaker"),
    ("explain", "everything about one incident, e.g. /explain 12"),
    ("help", "what I understand"),
)

HELP_TEXT = (
    "I understand (plain words or slash commands):\n"
    "• health check — /health\n"
    "• show errors [6h] — /errors [6h]\n"
    "• fix errors — /fix\n"
    "• history — /history\n"
    "• status / kill switch — /status\n"
    "• explain 12 — /explain 12\n"
    "• help — /help\n"
    "Paste an error line and I will tell you which pattern it matches and what the fix would be "
    "(I do not act on pasted text)."
)


@dataclass(frozen=True, slots=True)
class Command:
    name: CommandName
    window: float = DEFAULT_WINDOW  # errors: how far back, seconds
    incident: int = 0  # explain: which incident
    text: str = ""  # match: the original text; bad: what was wrong


def normalise(text: str) -> str:
    """Lower case, no leading slash or @botname, single spaces, no trailing ?!. ."""
    t = " ".join(text.strip().split()).lower()
    if t.startswith("/"):
        t = t[1:]
        head, _, rest = t.partition(" ")
        head = head.split("@", 1)[0]
        t = f"{head} {rest}".strip()
    t = t.rstrip("?!. ") or ("?" if text.strip().endswith("?") else "")
    return t.replace("_", " ")


def parse_window(arg: str) -> float | None:
    """'6h', '30 min', 'last 2 days' -> seconds; None if it is not a window."""
    m = _WINDOW_RE.match(arg.strip())
    if m is None:
        return None
    # The phrase is forgiving; the value goes through the one duration grammar.
    seconds = parse_duration(f"{m.group(1)}{m.group(2)[0]}")
    if seconds <= 0:
        return None
    return min(seconds, MAX_WINDOW)


def _lookup(phrase: str, fuzzy: bool) -> CommandName | None:
    if phrase in _PHRASES:
        return _PHRASES[phrase]
    # Typos: "helth", "histroy", "show erors". A high cutoff and an equal word
    # count keep pasted log lines from being mistaken for commands.
    if fuzzy and len(phrase) >= 4:
        n = phrase.count(" ")
        close = difflib.get_close_matches(phrase, [k for k in _PHRASES if k.count(" ") == n], n=1, cutoff=0.8)
        if close:
            return _PHRASES[close[0]]
    return None


def parse(text: str) -> Command:
    raw = text.strip()
    t = normalise(raw)
    if not t:
        return Command(CommandName.HELP)
    words = t.split(" ")
    # Exact phrases first, then typo-tolerant ones: "show errors 6h" must not
    # be read as a misspelt "show errors".
    for fuzzy in (False, True):
        name = _lookup(t, fuzzy)
        if name is CommandName.EXPLAIN:
            return Command(CommandName.BAD, text="which incident? e.g. explain 12")
        if name is not None:
            return Command(name)
        # Longest known phrase first, then its argument: "show errors 6h", "explain #12".
        for cut in range(min(len(words) - 1, 3), 0, -1):
            head, arg = " ".join(words[:cut]), " ".join(words[cut:])
            cmd = _lookup(head, fuzzy)
            if cmd is CommandName.ERRORS:
                window = parse_window(arg)
                if window is not None:
                    return Command(CommandName.ERRORS, window=window)
            elif cmd is CommandName.EXPLAIN:
                m = _ID_RE.match(arg)
                if m is not None:
                    return Command(CommandName.EXPLAIN, incident=int(m.group(1)))
                if head == "explain" and len(words) <= 3:
                    return Command(CommandName.BAD, text=f"{arg!r} is not an incident number; e.g. explain 12")
    # A command word with an argument it cannot take ("/errors banana", "errors banana") gets
    # that command's usage. Longer plain text is a pasted line ("Error connecting to db ...").
    head_cmd = _lookup(words[0], False)
    if head_cmd is not None and (raw.startswith("/") or len(words) == 2):
        return Command(CommandName.BAD, text=f"{' '.join(words[1:])!r}: {USAGE[head_cmd]}")
    return Command(CommandName.MATCH, text=raw)
