"""GlitchTip webhooks → Events.

GlitchTip posts a Slack-compatible body: ``text`` plus ``attachments[]`` with
``title`` (the exception line), ``title_link`` (the issue), ``text`` (the
culprit) and ``fields[]`` of ``{title, value}``. Versions differ in which
fields they send and some send only ``text``, so parsing is lenient: one Event
per attachment that has a title, else one Event from ``text``; only a body
with neither is refused.

``source_id`` stays empty on purpose: GlitchTip sends no delivery id, and the
issue link alone would make the store drop every later alert for an issue
that keeps failing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from healer.core.enums import SourceName
from healer.core.errors import WebhookError
from healer.core.records import Event
from healer.sources.webhooks.common import clean, get_list, get_str, loads_object, severity_of, str_fields

SOURCE = SourceName.GLITCHTIP
DEFAULT_MAX_DEPTH = 32
_ISSUE_IN_URL = re.compile(r"/issues/(\d+)")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def _key(title: str) -> str:
    """ "Server Name" → "server_name", so patterns select on predictable keys."""
    return _NON_WORD.sub("_", title.lower()).strip("_")[:64]


def parse(body: bytes, headers: Mapping[str, str], now: float, max_depth: int = DEFAULT_MAX_DEPTH) -> list[Event]:
    """Parse one GlitchTip delivery. Raises ``WebhookError(400)`` when nothing usable is in it."""
    doc = loads_object(body, max_depth)
    text = get_str(doc, "text")
    attachments = [att for att in get_list(doc, "attachments") if isinstance(att, dict)]
    events = [ev for att in attachments if (ev := _from_attachment(att, text, now)) is not None]
    if events:
        return events
    if text:
        return [Event(source=SOURCE, service=SOURCE, message=text, ts=now, origin="glitchtip")]
    raise WebhookError(400, "glitchtip: neither 'attachments[].title' nor 'text' present")


def _from_attachment(att: Mapping[str, Any], summary: str, now: float) -> Event | None:
    title = get_str(att, "title")
    if not title:
        return None
    extra: dict[str, Any] = {}
    for item in get_list(att, "fields"):
        name = _key(get_str(item, "title", limit=128))
        if name and name not in extra:
            extra[name] = get_str(item, "value", limit=1024)
    link = get_str(att, "title_link", limit=1024)
    m = _ISSUE_IN_URL.search(link)
    level = str(extra.get("level", ""))
    fields = str_fields(
        {
            **extra,
            "culprit": get_str(att, "text"),
            "issue_id": m.group(1) if m else "",
            "summary": summary,
        }
    )
    return Event(
        source=SOURCE,
        service=str(extra.get("project") or SOURCE),
        message=clean(title),
        ts=now,
        origin="glitchtip",
        fields=MappingProxyType(fields),
        severity=severity_of(level) if level else None,
        link=link,
    )
