"""HTML for Telegram, safe against text quoted from logs.

Log lines are hostile: a line can contain ``<a href=...>`` or ``<b>`` and,
sent with ``parse_mode=HTML``, would become a link or break the message (the
Bot API rejects unbalanced tags). Everything that did not come from healer
itself goes through :func:`esc`; the few tags we add are balanced and never
span lines, so line-based truncation keeps a message valid.
"""

from __future__ import annotations

import html
import re

from healer.core.notices import Notice, NoticeKind

# Telegram's limit is 4096 characters after entity parsing; stay well clear.
MAX_CHARS = 3900
MAX_HOST = 64  # a host prefix stays far inside the margin MAX_CHARS keeps below 4096
_PARTIAL_ENTITY = re.compile(r"&[#a-zA-Z0-9]{0,8}$")

_KIND_ICON = {
    NoticeKind.INCIDENT: "🔴",
    NoticeKind.INCIDENT_UPDATE: "🔁",
    NoticeKind.APPROVAL: "🟡",
    NoticeKind.FIX_STARTED: "🛠",
    NoticeKind.FIX_RESULT: "🩹",
    NoticeKind.ESCALATION: "🚨",
    NoticeKind.REFUTED: "🔍",
    NoticeKind.BREAKER: "⛔",
    NoticeKind.HEALTH: "🌡",
    NoticeKind.RESOLVED: "✅",
    NoticeKind.EXPIRED: "⌛",
    NoticeKind.CONFIG: "📝",
}
# Notices whose text starts with its own headline (engine/wording.py): that line is the bold head.
_OWN_HEADLINE = frozenset({NoticeKind.FIX_STARTED, NoticeKind.FIX_RESULT, NoticeKind.EXPIRED})


def esc(text: str) -> str:
    """Escape for Telegram HTML (&, <, >); quotes are harmless outside attributes."""
    return html.escape(text, quote=False)


def bold(text: str) -> str:
    return f"<b>{esc(text)}</b>"


def truncate(text: str, limit: int = MAX_CHARS) -> str:
    """Cut at a line boundary (tags never span lines), never inside an entity."""
    if len(text) <= limit:
        return text
    out: list[str] = []
    size = 0
    for line in text.split("\n"):
        if size + len(line) + 1 > limit - 2:
            if not out:  # a single huge line: cut it, but not in the middle of "&amp;"
                cut = _PARTIAL_ENTITY.sub("", line[: limit - 2])
                out.append(re.sub(r"<[^>]*$", "", cut))
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(out) + "\n…"


def with_host(host: str, text: str) -> str:
    """The host's name in front of a message: the one place it is added (issue 17), so in a group
    shared by several hosts' bots every message says which host it is about."""
    if not host:
        return text
    return f"<b>[{esc(host[:MAX_HOST])}]</b> {text}"


def notice_html(notice: Notice) -> str:
    """One notice as a message: a bold headline, then the (escaped) text."""
    icon = _KIND_ICON.get(notice.kind, "•")
    inc = notice.incident
    if notice.kind in _OWN_HEADLINE:
        first, _, rest = notice.text.partition("\n")
        lines = [f"{icon} {bold(first)}", *([esc(rest)] if rest else [])]
        if notice.link:
            lines.append(esc(notice.link))
        return truncate("\n".join(lines))
    if notice.kind is NoticeKind.INCIDENT and inc is not None:
        p = f"{notice.priority.value} " if notice.priority is not None else ""
        head = f"{icon} <b>New incident #{inc.id}</b> [{p}{esc(inc.severity.value)}] {esc(inc.pattern_id)}"
    elif notice.kind is NoticeKind.APPROVAL and inc is not None:
        head = f"{icon} <b>Approval needed</b> for incident #{inc.id} [{esc(notice.severity.value)}]"
    elif inc is not None:
        head = f"{icon} <b>{esc(notice.kind.value.replace('_', ' '))}</b> incident #{inc.id}"
    else:
        head = f"{icon} <b>{esc(notice.kind.value.replace('_', ' '))}</b> [{esc(notice.severity.value)}]"
    lines = [head, esc(notice.text)]
    if notice.link:
        lines.append(esc(notice.link))
    return truncate("\n".join(lines))
