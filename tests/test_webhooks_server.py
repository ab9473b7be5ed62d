"""End-to-end tests of the webhook receiver: a real aiohttp server on port 0
and a real HTTP client, so limits, auth and routing are exercised as a sender
would hit them."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.webhooks import Client, serving, settings

from healer.core.clock import FakeClock
from healer.settings.webhooks import WebhookSettings
from healer.sources.webhooks.auth import sentry_signature

DATA = Path(__file__).parent / "data" / "webhooks"
SECRET = "sentry-client-secret"
GT_TOKEN = "glitch-token-123"
AM_TOKEN = "am-bearer-456"
ENV = {
    "HEALER_SENTRY_SECRET": SECRET,
    "HEALER_GLITCHTIP_TOKEN": GT_TOKEN,
    "HEALER_ALERTMANAGER_TOKEN": AM_TOKEN,
    "AM_PASSWORD": "am-pass",
}


def _settings(**overrides: object) -> WebhookSettings:
    raw = {"alertmanager": {"basic_user": "am", "basic_password_env": "AM_PASSWORD"}, **overrides}
    return settings(raw, ENV)


@pytest.fixture
async def h() -> AsyncIterator[Client]:
    async with serving(_settings()) as client:
        yield client


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def sentry_headers(raw: bytes, resource: str, ts: float | None = None) -> dict[str, str]:
    return {
        "Sentry-Hook-Resource": resource,
        "Sentry-Hook-Signature": sentry_signature(raw, SECRET),
        "Sentry-Hook-Timestamp": str(int(time.time() if ts is None else ts)),
        "Request-ID": "a1b2c3",
    }


# -- sentry ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "resource", "resolved"),
    [
        ("sentry-event_alert.json", "event_alert", False),
        ("sentry-issue.json", "issue", False),
        ("sentry-issue-resolved.json", "issue", True),
        ("sentry-metric_alert.json", "metric_alert", False),
        ("sentry-metric_alert-resolved.json", "metric_alert", True),
    ],
)
async def test_sentry_signed_bodies_are_accepted(h: Client, name: str, resource: str, resolved: bool) -> None:
    raw = fixture(name)
    status, text = await h.post("/webhooks/sentry", raw, sentry_headers(raw, resource))
    assert status == 200, text
    assert json.loads(text) == {"accepted": 1}
    [ev] = h.events
    assert ev.source == "sentry" and ev.fields["resource"] == resource and ev.resolved is resolved
    assert h.audits == []


async def test_sentry_bad_or_missing_signature_is_401(h: Client) -> None:
    raw = fixture("sentry-issue.json")
    good = sentry_headers(raw, "issue")
    wrong = {**good, "Sentry-Hook-Signature": sentry_signature(raw, "not-the-secret")}
    missing = {k: v for k, v in good.items() if k != "Sentry-Hook-Signature"}
    # Same JSON document, different bytes: the signature covers the raw body.
    reserialised = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    stale = sentry_headers(raw, "issue", ts=time.time() - 3600)
    for data, headers in ((raw, wrong), (raw, missing), (reserialised, good), (raw, stale)):
        status, text = await h.post("/webhooks/sentry", data, headers)
        assert status == 401, text
    # Millisecond timestamps are understood too.
    ms = {**good, "Sentry-Hook-Timestamp": str(int(time.time() * 1000))}
    assert (await h.post("/webhooks/sentry", raw, ms))[0] == 200
    assert len(h.events) == 1
    h.server.refusals.close()
    assert h.refused(401) == 4
    assert all(info["source"] == "sentry" for info in h.got.refusal_rows())


# -- glitchtip ---------------------------------------------------------------


async def test_glitchtip_token_in_path_or_header(h: Client) -> None:
    raw = fixture("glitchtip.json")
    assert (await h.post(f"/webhooks/glitchtip/{GT_TOKEN}", raw))[0] == 200
    assert (await h.post("/webhooks/glitchtip", raw, {"X-Healer-Token": GT_TOKEN}))[0] == 200
    assert len(h.events) == 2 and h.events[0].source == "glitchtip"
    assert (await h.post("/webhooks/glitchtip", raw))[0] == 401
    assert (await h.post("/webhooks/glitchtip/wrong-token", raw))[0] == 401
    h.server.refusals.close()
    assert len(h.events) == 2 and h.refused(401) == 2
    # The token must never be echoed into the audit trail.
    assert GT_TOKEN not in repr(h.audits)


# -- alertmanager ------------------------------------------------------------

AM_AUTH = {"Authorization": f"Bearer {AM_TOKEN}"}


async def test_alertmanager_auth(h: Client) -> None:
    raw = fixture("alertmanager-v4.json")
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic Zm9vOmJhcg=="}):
        status, text = await h.post("/webhooks/alertmanager", raw, headers)
        assert status == 401, text
    assert h.events == []
    basic = {"Authorization": "Basic " + base64.b64encode(b"am:am-pass").decode()}
    assert (await h.post("/webhooks/alertmanager", raw, basic))[0] == 200
    assert len(h.events) == 2


async def test_alertmanager_mixed_batch_and_dedup(h: Client) -> None:
    raw = fixture("alertmanager-v4.json")
    status, text = await h.post("/webhooks/alertmanager", raw, AM_AUTH)
    assert status == 200 and json.loads(text) == {"accepted": 2}
    firing, resolved = h.events
    assert (firing.fields["alertname"], firing.resolved) == ("RedisDown", False)
    assert (resolved.fields["alertname"], resolved.resolved) == ("DiskAlmostFull", True)
    # Alertmanager re-sends the same group on repeat_interval: dropped.
    status, text = await h.post("/webhooks/alertmanager", raw, AM_AUTH)
    assert status == 200 and json.loads(text) == {"accepted": 0}
    assert len(h.events) == 2
    # The firing alert resolving later is new (same fingerprint+startsAt, new status).
    doc = json.loads(raw)
    doc["alerts"] = [dict(doc["alerts"][0], status="resolved", endsAt="2026-11-22T10:30:00Z")]
    status, _ = await h.post("/webhooks/alertmanager", json.dumps(doc).encode(), AM_AUTH)
    assert status == 200 and h.events[-1].resolved and h.events[-1].fields["alertname"] == "RedisDown"
    assert len(h.events) == 3


async def test_sink_failure_is_503_and_not_remembered(h: Client) -> None:
    raw = fixture("alertmanager-v4.json")
    h.fail_sink = True
    assert (await h.post("/webhooks/alertmanager", raw, AM_AUTH))[0] == 503
    h.fail_sink = False
    # The retry is not mistaken for a duplicate.
    assert (await h.post("/webhooks/alertmanager", raw, AM_AUTH))[0] == 200
    assert len(h.events) == 2


# -- garbage -----------------------------------------------------------------


async def test_garbage_is_refused_and_server_survives(h: Client) -> None:
    tok = f"/webhooks/glitchtip/{GT_TOKEN}"
    cases: list[tuple[str, bytes, dict[str, str], str, int]] = [
        (tok, b"x" * (10 * 1024 * 1024), {}, "application/json", 413),
        (tok, b"[" * 10_000 + b"]" * 10_000, {}, "application/json", 400),
        (tok, b'{"text": "\xff\xfe bad utf8"}', {}, "application/json", 400),
        (tok, fixture("glitchtip.json"), {}, "text/plain", 415),
        (tok, fixture("glitchtip.json"), {}, "application/x-www-form-urlencoded", 415),
        (tok, b'{"attachments": "nope"}', {}, "application/json", 400),
        (tok, b"[1, 2, 3]", {}, "application/json", 400),
        (tok, b"", {}, "application/json", 400),
        ("/webhooks/alertmanager", b'{"version": "4"}', AM_AUTH, "application/json", 400),
        ("/webhooks/alertmanager", b'{"alerts": [{"labels": "x"}]}', AM_AUTH, "application/json", 400),
        ("/webhooks/nope", b"{}", {}, "application/json", 404),
    ]
    for path, data, headers, ctype, want in cases:
        status, text = await h.post(path, data, headers, ctype)
        assert status == want, (path, data[:40], ctype, status, text)
        assert text.strip(), "every refusal carries a reason"
    assert h.events == []
    # One peer, one minute: the first refusal is audited at once, the rest as one summary row.
    assert len(h.got.refusal_rows()) == 1
    h.server.refusals.close()
    assert len(h.got.refusal_rows()) == 2
    assert sum(h.refused(st) for st in {c[4] for c in cases}) == len(cases)
    # Refusals on the tokened GlitchTip URL must not leak the token into the audit.
    assert GT_TOKEN not in repr(h.audits)
    assert h.audits[0][1]["path"] == "/webhooks/glitchtip/<token>"

    # Chunked upload beyond the limit (no Content-Length to check up front).
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    async with h.session.post(h.base + tok, data=chunks(), headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 413
    # After all that, a valid webhook still works and /healthz answers.
    assert (await h.post(tok, fixture("glitchtip.json")))[0] == 200
    assert len(h.events) == 1
    async with h.session.get(h.base + "/healthz") as resp:
        assert resp.status == 200 and (await resp.json()) == {"status": "ok"}


async def test_rate_limit_is_429() -> None:
    async with serving(_settings(rate_per_minute=3)) as h:
        raw = fixture("glitchtip.json")
        statuses = [(await h.post(f"/webhooks/glitchtip/{GT_TOKEN}", raw))[0] for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        h.server.refusals.close()
        assert h.refused(429) == 2
        # Buckets are per source: Alertmanager is not starved by GlitchTip.
        assert (await h.post("/webhooks/alertmanager", fixture("alertmanager-v4.json"), AM_AUTH))[0] == 200


async def test_unsigned_junk_does_not_spend_a_signed_senders_rate() -> None:
    """Issue 19 #6: 130 unsigned POSTs from the proxy's address, then a signed Sentry delivery from it."""
    async with serving(_settings(rate_per_minute=3)) as h:
        raw = fixture("sentry-issue.json")
        junk = [(await h.post("/webhooks/sentry", raw, {"Sentry-Hook-Resource": "issue"}))[0] for _ in range(130)]
        assert set(junk) == {401}
        status, text = await h.post("/webhooks/sentry", raw, sentry_headers(raw, "issue"))
        assert status == 200, text
        assert len(h.events) == 1


async def test_refusals_are_audited_per_peer_per_minute() -> None:
    """Issue 19 #7: a flood of refusals is a first row plus one count per minute, not a row each."""
    clock = FakeClock()
    async with serving(_settings(), clock=clock) as h:
        for _ in range(300):
            assert (await h.post("/webhooks/glitchtip/wrong", b"{}"))[0] == 401
        assert len(h.got.refusal_rows()) == 1  # the first, at once
        clock.advance(60)
        assert (await h.post("/webhooks/nope", b"{}"))[0] == 404  # next minute: the summary is written
        rows = h.got.refusal_rows()
        assert len(rows) == 3, rows
        assert rows[1]["count"] == 299 and rows[1]["statuses"] == {"401": 299}
        assert h.refused(401) == 300 and h.refused(404) == 1


async def test_unconfigured_source_fails_closed() -> None:
    async with serving(settings({}, {}), audit=False) as h:  # no audit callback: must still work
        raw = fixture("sentry-issue.json")
        status, text = await h.post("/webhooks/sentry", raw, sentry_headers(raw, "issue"))
        assert status == 401 and "no client secret" in text
        status, _ = await h.post("/webhooks/alertmanager", fixture("alertmanager-v4.json"), AM_AUTH)
        assert status == 401
        assert h.events == []
