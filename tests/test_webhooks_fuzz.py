"""Property tests: whatever JSON (or bytes) a sender posts, a parser either
returns Events or raises WebhookError(400). Any other exception would be a 500
from the server, i.e. a sender able to trip a bug on purpose."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from healer.core.errors import WebhookError
from healer.core.records import Event
from healer.sources.webhooks import alertmanager, glitchtip, sentry

PARSERS = (sentry.parse, glitchtip.parse, alertmanager.parse)
KEYS = st.sampled_from(
    [
        "data",
        "event",
        "issue",
        "metric_alert",
        "exception",
        "values",
        "stacktrace",
        "frames",
        "alerts",
        "labels",
        "annotations",
        "attachments",
        "fields",
        "title",
        "text",
        "status",
        "action",
        "id",
        "metadata",
        "in_app",
        "alert_rule",
        "version",
        "fingerprint",
        "startsAt",
        "MESSAGE",
    ]
)
LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
DOCS: st.SearchStrategy[Any] = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS | st.text(max_size=5), children, max_size=5),
    max_leaves=40,
)


def check(body: bytes, resource: str) -> None:
    for parse in PARSERS:
        try:
            events = parse(body, {"Sentry-Hook-Resource": resource}, 1.0)
        except WebhookError as err:
            assert err.status == 400
        else:
            assert isinstance(events, list) and all(isinstance(e, Event) for e in events)
            for ev in events:
                assert all(isinstance(k, str) and isinstance(v, str) for k, v in ev.fields.items())


@settings(max_examples=300, deadline=None)
@given(DOCS, st.sampled_from(["event_alert", "issue", "metric_alert", "error", "installation", ""]))
def test_parsers_never_crash_on_json(doc: Any, resource: str) -> None:
    check(json.dumps(doc).encode(), resource)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_parsers_never_crash_on_bytes(body: bytes) -> None:
    check(body, "issue")
