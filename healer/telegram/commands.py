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

DEFAULT_WINDOW = 3600.0
MAX_WINDOW = 30 * 86400.0

# Every accepted phrase, already normalised (lower case, single spaces, no slash).
_PHRASES: dict[str, str] = {
    "health": "health",
    "health check": "health",
    "healthcheck": "health",
    "check health": "health",
    "host health": "health",
    "how is the host": "health",
    "errors": "errors",
    "error": "errors",
    "show errors": "errors",
    "show error": "errors",
    "show me errors": "errors",
    "show me the errors": "errors",
    "list errors": "errors",
    "fix": "fix",
    "fix errors": "fix",
    "fix error": "fix",
    "fix it": "fix",
    "fix all": "fix",
    "fix everything": "fix",
    "history": "history",
    "show history": "history",
    "fix history": "history",
    "status": "status",
    "kill switch": "status",
    "killswitch": "status",
    "kill-switch": "status",
    "breaker": "status",
    "circuit breaker": "status",
    "help": "help",
    "start": "help",
    "commands": "help",
    "?": "help",
    "explain": "explain",
    "explain incident": "explain",
}

# Commands that accept a trailing argument, and how the argument looks.
_WINDOW_RE = re.compile(
    r"^(?:in |for |from |of )?(?:the )?(?:last |past )?(\d+(?:\.\d+)?)\s*"
    r"(s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?|d|days?)$"
)
_ID_RE = re.compile(r"^(?:incident )?#?(\d{1,12})$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

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
    name: str  # health|errors|fix|history|status|help|explain|match|bad
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
    seconds = float(m.group(1)) * _UNITS[m.group(2)[0]]
    if seconds <= 0:
        return None
    return min(seconds, MAX_WINDOW)


def _lookup(phrase: str, fuzzy: bool) -> str | None:
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
        return Command("help")
    words = t.split(" ")
    # Exact phrases first, then typo-tolerant ones: "show errors 6h" must not
    # be read as a misspelt "show errors".
    for fuzzy in (False, True):
        name = _lookup(t, fuzzy)
        if name == "explain":
            return Command("bad", text="which incident? e.g. explain 12")
        if name is not None:
            return Command(name)
        # Longest known phrase first, then its argument: "show errors 6h", "explain #12".
        for cut in range(min(len(words) - 1, 3), 0, -1):
            head, arg = " ".join(words[:cut]), " ".join(words[cut:])
            cmd = _lookup(head, fuzzy)
            if cmd == "errors":
                window = parse_window(arg)
                if window is not None:
                    return Command("errors", window=window)
            elif cmd == "explain":
                m = _ID_RE.match(arg)
                if m is not None:
                    return Command("explain", incident=int(m.group(1)))
                if head == "explain" and len(words) <= 3:
                    return Command("bad", text=f"{arg!r} is not an incident number; e.g. explain 12")
    return Command("match", text=raw)
