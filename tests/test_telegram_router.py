"""Routing, dedup and digest without a network: the router only calls ``send``."""

from __future__ import annotations

import dataclasses

import pytest

from healer.core.enums import IncidentStatus, Priority, Reason, Severity, Verdict
from healer.core.notices import Notice, NoticeKind
from healer.core.records import Decision, Incident
from healer.settings.schema import DEFAULT_PRIORITY_ROUTING
from healer.telegram.render import esc, notice_html, truncate
from healer.telegram.router import Router

ROUTING = {"critical": "immediate", "high": "immediate", "medium": "digest", "low": "none"}


def inc(i: int, sev: Severity = Severity.HIGH, count: int = 1, pid: str = "p") -> Incident:
    return Incident(i, f"fp{i}", pid, sev, IncidentStatus.OPEN, "svc", "boom", count, 0.0, 0.0)


def incident_notice(i: int, sev: Severity = Severity.HIGH, count: int = 1, pid: str = "p") -> Notice:
    return Notice(NoticeKind.INCIDENT, sev, f"{pid}: boom <b>x</b>", incident=inc(i, sev, count, pid))


class Box:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Notice | None]] = []

    def __call__(self, text: str, notice: Notice | None) -> None:
        self.sent.append((text, notice))


def test_storm_is_one_message_then_rate_limited_updates() -> None:
    box = Box()
    r = Router(box)
    for n in range(1, 1001):
        r.route(incident_notice(7, count=n), ROUTING, now=100.0)
    assert len(box.sent) == 1
    assert "New incident #7" in box.sent[0][0]
    assert r.suppressed == 999
    # The count grew: one update per interval, not more.
    assert r.updates({7: 1500}, now=100.5, interval=1.0) == 0
    assert r.updates({7: 1500}, now=101.0, interval=1.0) == 1
    assert "still firing" in box.sent[-1][0] and "count 1500" in box.sent[-1][0]
    assert r.updates({7: 1500}, now=105.0, interval=1.0) == 0  # no growth, no message
    assert r.updates({7: 1501}, now=105.0, interval=1.0) == 1


def test_routing_by_severity() -> None:
    box = Box()
    r = Router(box)
    assert r.route(incident_notice(1, Severity.CRITICAL), ROUTING, 0) == "immediate"
    assert r.route(incident_notice(2, Severity.MEDIUM, pid="m"), ROUTING, 0) == "digest"
    assert r.route(incident_notice(3, Severity.LOW), ROUTING, 0) == "none"
    assert len(box.sent) == 1
    digest = r.take_digest({2: 5})
    assert digest is not None and "#2" in digest and "×5" in digest
    assert r.take_digest() is None


# Incident news routes by its triage, whatever its severity says; a shadow pattern's never pages.
PRIORITY_TABLE = [
    (Severity.LOW, Priority.P0, False, "immediate"),  # a low-severity fault on a critical service, repeating
    (Severity.MEDIUM, Priority.P1, False, "immediate"),
    (Severity.CRITICAL, Priority.P2, False, "digest"),  # a critical pattern on a low-criticality service
    (Severity.HIGH, Priority.P3, False, "none"),
    (Severity.CRITICAL, Priority.P0, True, "digest"),  # shadow: the digest at most
    (Severity.HIGH, Priority.P3, True, "none"),
]


@pytest.mark.parametrize(("sev", "priority", "shadow", "route"), PRIORITY_TABLE)
def test_routing_by_priority(sev: Severity, priority: Priority, shadow: bool, route: str) -> None:
    box = Box()
    notice = dataclasses.replace(incident_notice(1, sev), priority=priority, shadow=shadow)
    assert Router(box).route(notice, ROUTING, 0, DEFAULT_PRIORITY_ROUTING) == route
    assert len(box.sent) == (route == "immediate")
    if box.sent:
        assert f"New incident #1</b> [{priority.value} {sev.value}]" in box.sent[0][0]


def test_action_notices_always_go_now() -> None:
    box = Box()
    r = Router(box)
    d = Decision(9, 1, "p", Verdict.ASK, Reason.APPROVAL, 0.0)
    for kind in (NoticeKind.FIX_RESULT, NoticeKind.ESCALATION, NoticeKind.BREAKER, NoticeKind.HEALTH):
        assert r.route(Notice(kind, Severity.LOW, "x"), ROUTING, 0) == "immediate"
    assert r.route(Notice(NoticeKind.APPROVAL, Severity.LOW, "x", incident=inc(1), decision=d), ROUTING, 0) == (
        "immediate"
    )
    assert len(box.sent) == 5


def test_log_text_is_escaped() -> None:
    html = notice_html(incident_notice(1, pid="<i>p</i>"))
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<i>" not in html
    assert esc('<a href="http://evil">') == '&lt;a href="http://evil"&gt;'


def test_truncate_keeps_entities_whole() -> None:
    text = "&amp;" * 2000
    out = truncate(text, 103)
    assert len(out) <= 105
    body = out.removesuffix("\n…")
    assert body.endswith("&amp;")
    lines = "\n".join(f"<b>{i}</b> line" for i in range(1000))
    out = truncate(lines, 500)
    assert out.count("<b>") == out.count("</b>")
