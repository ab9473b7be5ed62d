"""Sentry integration-platform webhooks → Events.

Sentry posts one JSON object per delivery; ``Sentry-Hook-Resource`` names its
shape. We turn the three alerting shapes (``event_alert``, ``issue``,
``metric_alert``; plus the closely related ``error``) into Events whose
``message`` reads like the line Python itself would log, e.g.
``redis.exceptions.ConnectionError: Error 111 connecting ...``. That is the
point of the normalisation: the same regex patterns that fire on a log file
fire on the Sentry alert for the same failure, so one pattern file covers both.

Other resources (``installation``, ``comment`` ...) are accepted and yield no
events: answering 400 would make Sentry mark the integration as failing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from healer.core.enums import Severity, SourceName
from healer.core.errors import WebhookError
from healer.core.records import Event
from healer.core.stamps import iso_time
from healer.sources.webhooks.common import (
    clean,
    get_dict,
    get_list,
    get_str,
    header,
    loads_object,
    severity_of,
    str_fields,
)

SOURCE = SourceName.SENTRY
DEFAULT_MAX_DEPTH = 32
_BUILTIN_MODULES = frozenset({"", "builtins", "__builtin__", "exceptions"})
_PROJECT_IN_URL = re.compile(r"/projects/[^/]+/([^/]+)/")


def parse(body: bytes, headers: Mapping[str, str], now: float, max_depth: int = DEFAULT_MAX_DEPTH) -> list[Event]:
    """Parse one Sentry delivery. Raises ``WebhookError(400)`` when it is malformed."""
    doc = loads_object(body, max_depth)
    data = doc.get("data")
    if not isinstance(data, dict):
        raise WebhookError(400, "sentry: 'data' object missing")
    action = get_str(doc, "action", limit=64)
    resource = header(headers, "Sentry-Hook-Resource").strip().lower() or _guess_resource(data)
    if resource == "event_alert":
        return [_from_event(data, "event", resource, action, now)]
    if resource == "error":
        return [_from_event(data, "error", resource, action, now)]
    if resource == "issue":
        return [_from_issue(data, action, now)]
    if resource == "metric_alert":
        return [_from_metric(data, action, now)]
    return []


def _guess_resource(data: Mapping[str, Any]) -> str:
    """Older relays drop the resource header; the data key names the shape."""
    for key, resource in (("event", "event_alert"), ("issue", "issue"), ("metric_alert", "metric_alert")):
        if isinstance(data.get(key), dict):
            return resource
    return ""


def exception_line(exc_type: str, exc_value: str, module: str = "") -> str:
    """``module.Type: value`` the way CPython's traceback prints it.

    Sentry stores ``type`` and ``module`` apart; the log line (and so the
    pattern) has them joined unless the class is a builtin.
    """
    qualified = exc_type
    if module not in _BUILTIN_MODULES and "." not in exc_type:
        qualified = f"{module}.{exc_type}"
    if exc_value:
        return f"{qualified}: {exc_value}" if qualified else exc_value
    return qualified


def _top_frame(frames: list[Any]) -> Mapping[str, Any]:
    """The innermost in-app frame: where *our* code was when it failed.

    Sentry lists frames oldest first, so the last in-app one is the top.
    """
    dict_frames = [f for f in frames if isinstance(f, dict)]
    for frame in reversed(dict_frames):
        if frame.get("in_app") is True:
            return frame
    return dict_frames[-1] if dict_frames else {}


def _project_from_url(url: str) -> str:
    m = _PROJECT_IN_URL.search(url)
    return m.group(1) if m else ""


def _from_event(data: Mapping[str, Any], key: str, resource: str, action: str, now: float) -> Event:
    ev = data.get(key)
    if not isinstance(ev, dict):
        raise WebhookError(400, f"sentry {resource}: 'data.{key}' object missing")
    values = [v for v in get_list(ev, "exception", "values") if isinstance(v, dict)]
    exc = values[-1] if values else {}  # the last value is the one that was raised
    exc_type = get_str(exc, "type", limit=256)
    exc_value = get_str(exc, "value")
    title = get_str(ev, "title") or get_str(ev, "message") or get_str(ev, "logentry", "formatted")
    message = exception_line(exc_type, exc_value, get_str(exc, "module", limit=256)) if exc_type else title
    if not message:
        raise WebhookError(400, f"sentry {resource}: event has neither exception nor title")
    frame = _top_frame(get_list(exc, "stacktrace", "frames"))
    issue_id = get_str(ev, "issue_id", limit=64) or get_str(ev, "group_id", limit=64)
    event_id = get_str(ev, "event_id", limit=64)
    level = get_str(ev, "level", limit=32)
    fields = str_fields(
        {
            "resource": resource,
            "action": action,
            "culprit": get_str(ev, "culprit"),
            "level": level,
            "exception_type": exc_type,
            "environment": get_str(ev, "environment", limit=128),
            "release": get_str(ev, "release", limit=256),
            "file": get_str(frame, "filename") or get_str(frame, "abs_path"),
            "line": get_str(frame, "lineno", limit=16),
            "function": get_str(frame, "function", limit=256),
            "issue_id": issue_id,
            "event_id": event_id,
            "platform": get_str(ev, "platform", limit=32),
            "rule": get_str(data, "triggered_rule", limit=256),
        }
    )
    url = get_str(ev, "url", limit=1024)
    service = get_str(ev, "project_slug", limit=128) or _project_from_url(url) or SOURCE
    return Event(
        source=SOURCE,
        service=service,
        message=clean(message),
        ts=now,
        origin=f"sentry:{resource}",
        fields=MappingProxyType(fields),
        severity=severity_of(level),
        link=get_str(ev, "web_url", limit=1024) or get_str(ev, "issue_url", limit=1024),
        source_id=f"{issue_id}:{event_id}" if issue_id or event_id else "",
        happened=iso_time(get_str(ev, "datetime", limit=64)),  # the event's own time (Sentry's ISO-8601)
    )


def _from_issue(data: Mapping[str, Any], action: str, now: float) -> Event:
    issue = data.get("issue")
    if not isinstance(issue, dict):
        raise WebhookError(400, "sentry issue: 'data.issue' object missing")
    issue_id = get_str(issue, "id", limit=64)
    meta = get_dict(issue, "metadata")
    exc_type = get_str(meta, "type", limit=256)
    exc_value = get_str(meta, "value")
    # The title is Sentry's own "Type: value" line and may carry the module
    # ("redis.exceptions.ConnectionError: ..."), which metadata.type lacks.
    title = get_str(issue, "title")
    message = title or exception_line(exc_type, exc_value)
    if not message or not issue_id:
        raise WebhookError(400, "sentry issue: 'id' and 'title' are required")
    level = get_str(issue, "level", limit=32)
    fields = str_fields(
        {
            "resource": "issue",
            "action": action,
            "culprit": get_str(issue, "culprit"),
            "level": level,
            "exception_type": exc_type,
            "file": get_str(meta, "filename"),
            "function": get_str(meta, "function", limit=256),
            "users": get_str(issue, "userCount", limit=16),
            "count": get_str(issue, "count", limit=16),
            "issue_id": issue_id,
            "short_id": get_str(issue, "shortId", limit=64),
            "status": get_str(issue, "status", limit=32),
            "substatus": get_str(issue, "substatus", limit=32),
            "platform": get_str(issue, "platform", limit=32),
            "project": get_str(issue, "project", "slug", limit=128),
        }
    )
    # No event id here. The action is part of the id so that "resolved" after
    # "created" is not dropped as a re-delivery; lastSeen separates a second
    # resolve/unresolve cycle of the same issue.
    source_id = f"{issue_id}:{action}:{get_str(issue, 'lastSeen', limit=64)}"
    return Event(
        source=SOURCE,
        service=get_str(issue, "project", "slug", limit=128) or SOURCE,
        message=clean(message),
        ts=now,
        origin="sentry:issue",
        fields=MappingProxyType(fields),
        severity=severity_of(level),
        link=get_str(issue, "web_url", limit=1024) or get_str(issue, "permalink", limit=1024),
        source_id=source_id,
        resolved=action == "resolved",
    )


_METRIC_SEVERITY: Mapping[str, Severity] = {
    "critical": Severity.CRITICAL,
    "warning": Severity.MEDIUM,
    "resolved": Severity.LOW,
}


def _from_metric(data: Mapping[str, Any], action: str, now: float) -> Event:
    alert = data.get("metric_alert")
    if not isinstance(alert, dict):
        raise WebhookError(400, "sentry metric_alert: 'data.metric_alert' object missing")
    alert_id = get_str(alert, "id", limit=64)
    rule = get_str(alert, "alert_rule", "name", limit=256) or get_str(alert, "title", limit=256)
    message = get_str(data, "description_text") or get_str(data, "description_title") or rule
    if not message:
        raise WebhookError(400, "sentry metric_alert: no description or rule name")
    fields = str_fields(
        {
            "resource": "metric_alert",
            "action": action,
            "alertname": rule,
            "title": get_str(data, "description_title", limit=256),
            "alert_rule_id": get_str(alert, "alert_rule", "id", limit=64),
            "aggregate": get_str(alert, "alert_rule", "aggregate", limit=512),
            "metric_alert_id": alert_id,
            "date_started": get_str(alert, "date_started", limit=64),
        }
    )
    return Event(
        source=SOURCE,
        service=get_str(alert, "alert_rule", "projects", 0, limit=128) or SOURCE,
        message=clean(message),
        ts=now,
        origin="sentry:metric_alert",
        fields=MappingProxyType(fields),
        severity=_METRIC_SEVERITY.get(action),
        link=get_str(data, "web_url", limit=1024),
        source_id=f"metric:{alert_id}:{action}" if alert_id else "",
        resolved=action == "resolved",
    )
