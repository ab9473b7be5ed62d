"""Prometheus Alertmanager webhooks (``version: "4"``) → Events.

One delivery carries a group of alerts that may mix ``firing`` and
``resolved``; each alert becomes its own Event so that a resolved alert can
close its incident while a sibling keeps firing. ``fields`` holds every label
(patterns select on ``alertname``, ``instance``, ``job`` ...) plus ``status``.
Alertmanager re-sends a still-firing group every ``repeat_interval``;
``source_id`` = ``fingerprint:startsAt`` lets the server and the store drop
those repeats.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import structlog

from healer.core.enums import SourceName
from healer.core.errors import WebhookError
from healer.core.records import Event
from healer.core.stamps import iso_time
from healer.sources.webhooks.common import get_dict, get_str, loads_object, severity_of, str_fields

SOURCE = SourceName.ALERTMANAGER
DEFAULT_MAX_DEPTH = 32
log = structlog.get_logger("healer.sources.webhooks")


def parse(body: bytes, headers: Mapping[str, str], now: float, max_depth: int = DEFAULT_MAX_DEPTH) -> list[Event]:
    """Parse one Alertmanager delivery. Raises ``WebhookError(400)`` when malformed."""
    doc = loads_object(body, max_depth)
    version = get_str(doc, "version", limit=16)
    if version and version != "4":
        # Future versions are expected to stay additive; parse, but say so.
        log.warning("alertmanager_unknown_version", version=version)
    alerts = doc.get("alerts")
    if not isinstance(alerts, list):
        raise WebhookError(400, "alertmanager: 'alerts' list missing")
    group_status = get_str(doc, "status", limit=16)
    events: list[Event] = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise WebhookError(400, f"alertmanager: alerts[{i}] is not an object")
        events.append(_from_alert(alert, group_status, i, now))
    return events


def _from_alert(alert: Mapping[str, Any], group_status: str, i: int, now: float) -> Event:
    labels = str_fields(get_dict(alert, "labels"))
    annotations = get_dict(alert, "annotations")
    alertname = labels.get("alertname", "")
    message = get_str(annotations, "summary") or get_str(annotations, "description") or alertname
    if not message:
        raise WebhookError(400, f"alertmanager: alerts[{i}] has no alertname, summary or description")
    status = get_str(alert, "status", limit=16) or group_status or "firing"
    fingerprint = get_str(alert, "fingerprint", limit=64)
    starts_at = get_str(alert, "startsAt", limit=64)
    fields = dict(labels)
    fields["status"] = status
    return Event(
        source=SOURCE,
        service=labels.get("service") or labels.get("job") or SOURCE,
        message=message,
        ts=now,
        origin="alertmanager",
        fields=MappingProxyType(fields),
        severity=severity_of(labels.get("severity", "")),
        link=get_str(alert, "generatorURL", limit=1024),
        source_id=f"{fingerprint}:{starts_at}" if fingerprint else "",
        happened=iso_time(starts_at),  # when the alert began firing, not when it was delivered
        resolved=status == "resolved",
    )
