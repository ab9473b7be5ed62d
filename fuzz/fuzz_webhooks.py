"""Fuzz the three webhook parsers: any body, any headers -> Events or WebhookError, nothing else.

Run: python fuzz/fuzz_webhooks.py -max_total_time=300
The first input byte picks the parser, the next chunk is a Sentry-Hook-Resource
header value, the rest is the body. tests/data/webhooks seeds the corpus.
"""

from __future__ import annotations

import logging
import sys

import atheris
import structlog
from _common import ROOT, seed_args

with atheris.instrument_imports():
    from healer.core.errors import WebhookError
    from healer.core.records import Event
    from healer.sources.webhooks import alertmanager, glitchtip, sentry

# Parsers warn about odd-but-valid input (unknown versions); at 7k execs/s that is just noise.
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))

PARSERS = (sentry.parse, glitchtip.parse, alertmanager.parse)
RESOURCES = ("", "issue", "event_alert", "metric_alert", "error", "installation", "\x00", "ISSUE ")


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    parser = PARSERS[data[0] % len(PARSERS)]
    resource = RESOURCES[(data[0] // 3) % len(RESOURCES)]
    headers = {"Sentry-Hook-Resource": resource, "Content-Type": "application/json"} if resource else {}
    body = data[1:]
    try:
        events = parser(body, headers, 1_700_000_000.0)
    except WebhookError:
        return
    assert isinstance(events, list)
    for ev in events:
        assert isinstance(ev, Event), type(ev)


def main() -> None:
    argv = seed_args(sys.argv, ROOT / "fuzz" / "corpus" / "webhooks")
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
