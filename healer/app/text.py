"""Small text helpers every report shares: time spans, shortening, and quoting hostile text.

Text quoted from logs, webhooks and tool output is hostile. Each front end
passes its own ``Quote``: HTML escaping for Telegram, :func:`terminal` for a
terminal, where an ESC or C1 byte would otherwise start a CSI sequence, an
OSC 52 clipboard write, an OSC 8 link or a title change.
"""

from __future__ import annotations

from collections.abc import Callable

Quote = Callable[[str], str]

# C0 controls, DEL and C1 controls, plus the bidirectional overrides that can
# reorder what a terminal shows ("trojan source"): each becomes a visible \\xNN / \\uNNNN.
_UNSAFE = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_TERMINAL = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNSAFE}


def terminal(text: str) -> str:
    """Escape control characters for a terminal; everything else is kept as it is."""
    return text.translate(_TERMINAL)


def short(text: str, n: int = 120) -> str:
    """One line of at most ``n`` characters (whitespace runs become one space)."""
    one = " ".join(text.split())
    return one if len(one) <= n else one[: n - 1] + "…"


def span(seconds: float) -> str:
    """A duration as people say it: 45s, 30m, 6h, 2d."""
    seconds = max(0.0, seconds)
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:.0f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.3g}h"
    if seconds >= 90:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"


def ago(ts: float, now: float) -> str:
    d = max(0.0, now - ts)
    if d < 90:
        return f"{d:.0f}s ago"
    if d < 5400:
        return f"{d / 60:.0f}m ago"
    if d < 129600:
        return f"{d / 3600:.1f}h ago"
    return f"{d / 86400:.1f}d ago"
