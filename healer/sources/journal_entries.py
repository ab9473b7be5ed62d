"""One journal entry as an Event: the pure mapping the journald follower applies to every entry."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from healer.core.enums import Severity, SourceName
from healer.core.records import Event

SOURCE = SourceName.JOURNALD
MESSAGE_LIMIT = 16_384


def severity_of_priority(priority: int | None) -> Severity:
    """syslog PRIORITY 0-2 (emerg, alert, crit) → critical, 3 err → high, 4 warning → medium."""
    if priority is None:
        return Severity.LOW
    if priority <= 2:
        return Severity.CRITICAL
    if priority == 3:
        return Severity.HIGH
    if priority == 4:
        return Severity.MEDIUM
    return Severity.LOW


def text_of(value: Any) -> str:
    """A journal JSON field as text.

    journalctl writes a field as a string, as a list of byte values when it is
    not valid UTF-8 or has control characters, as a list of such values when a
    field repeats (we keep the first), and as ``null`` when it is too large.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list) and value:
        if all(isinstance(b, int) and 0 <= b < 256 for b in value):
            return bytes(value).decode("utf-8", "replace")
        return text_of(value[0])
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def entry_to_event(entry: Mapping[str, Any], service: str) -> Event | None:
    """One journal entry (journalctl JSON or a ``systemd.journal`` dict) → Event.

    Entries without a MESSAGE yield ``None``; their cursor still counts.
    """
    message = text_of(entry.get("MESSAGE")).replace("\x00", " ").rstrip("\n")
    if not message:
        return None
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + "…"
    try:
        priority: int | None = int(text_of(entry.get("PRIORITY")))
    except ValueError:
        priority = None
    raw_ts = entry.get("__REALTIME_TIMESTAMP")
    if isinstance(raw_ts, datetime):  # systemd.journal converts it
        ts = raw_ts.timestamp()
    else:
        try:
            ts = int(text_of(raw_ts)) / 1_000_000
        except ValueError:
            ts = 0.0
    unit = text_of(entry.get("_SYSTEMD_UNIT")) or text_of(entry.get("UNIT"))
    fields = {
        "unit": unit,
        "priority": "" if priority is None else str(priority),
        "syslog_identifier": text_of(entry.get("SYSLOG_IDENTIFIER")),
        "pid": text_of(entry.get("_PID")),
    }
    return Event(
        source=SOURCE,
        service=service,
        message=message,
        ts=ts,
        origin=f"journald:{unit}" if unit else SOURCE,
        fields=MappingProxyType({k: v for k, v in fields.items() if v}),
        severity=severity_of_priority(priority),
        source_id=text_of(entry.get("__CURSOR")),
        happened=ts if ts > 0 else None,  # the journal's own time: a backlog read late is still old
    )
