"""Authorisation matrix for the webhook endpoints, plus the loopback-bind defaults.

Every endpoint x {no auth, wrong auth, replayed/forged, right auth}: only the
right credential delivers events; every refusal is a 401 and is audited as
``webhook_refused``. Huge and deeply nested bodies are refused before parsing.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from support.webhooks import serving, settings

from healer.settings.load import validate
from healer.settings.webhooks import WebhookSettings
from healer.sources.webhooks.auth import sentry_signature

DATA = Path(__file__).parent / "data" / "webhooks"
SECRET = "s3cret-sentry"
GT = "gt-token-xyz"
AM = "am-bearer-abc"
ENV = {
    "HEALER_SENTRY_SECRET": SECRET,
    "HEALER_GLITCHTIP_TOKEN": GT,
    "HEALER_ALERTMANAGER_TOKEN": AM,
    "AM_PASSWORD": "am-pass",
}
SENTRY = (DATA / "sentry-issue.json").read_bytes()
GLITCH = (DATA / "glitchtip.json").read_bytes()
ALERT = (DATA / "alertmanager-v4.json").read_bytes()


def _sentry(body: bytes, *, secret: str = SECRET, ts: float | None = None) -> dict[str, str]:
    return {
        "Sentry-Hook-Resource": "issue",
        "Sentry-Hook-Signature": sentry_signature(body, secret),
        "Sentry-Hook-Timestamp": str(int(time.time() if ts is None else ts)),
    }


def _basic(user: str, pw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


# (name, path, body, headers, expect_ok)
# Headers are made when the case runs, not at collection: a signed timestamp must be fresh (the server
# allows 300 s), and a whole suite takes longer than that to reach this file.
CASES: list[tuple[str, str, bytes, Callable[[], Mapping[str, str]], bool]] = [
    ("sentry-none", "/webhooks/sentry", SENTRY, lambda: {"Sentry-Hook-Resource": "issue"}, False),
    ("sentry-wrong-secret", "/webhooks/sentry", SENTRY, lambda: _sentry(SENTRY, secret="nope"), False),
    ("sentry-forged-body", "/webhooks/sentry", SENTRY + b" ", lambda: _sentry(SENTRY), False),
    ("sentry-replayed-old", "/webhooks/sentry", SENTRY, lambda: _sentry(SENTRY, ts=time.time() - 3600), False),
    ("sentry-future", "/webhooks/sentry", SENTRY, lambda: _sentry(SENTRY, ts=time.time() + 3600), False),
    ("sentry-nan-ts", "/webhooks/sentry", SENTRY, lambda: {**_sentry(SENTRY), "Sentry-Hook-Timestamp": "nan"}, False),
    ("sentry-right", "/webhooks/sentry", SENTRY, lambda: _sentry(SENTRY), True),
    ("glitchtip-none", "/webhooks/glitchtip", GLITCH, lambda: {}, False),
    ("glitchtip-wrong-path", "/webhooks/glitchtip/wrong", GLITCH, lambda: {}, False),
    ("glitchtip-wrong-header", "/webhooks/glitchtip", GLITCH, lambda: {"X-Healer-Token": "wrong"}, False),
    ("glitchtip-prefix", "/webhooks/glitchtip/" + GT[:-1], GLITCH, lambda: {}, False),
    ("glitchtip-right-path", "/webhooks/glitchtip/" + GT, GLITCH, lambda: {}, True),
    ("glitchtip-right-header", "/webhooks/glitchtip", GLITCH, lambda: {"X-Healer-Token": GT}, True),
    ("am-none", "/webhooks/alertmanager", ALERT, lambda: {}, False),
    ("am-wrong-bearer", "/webhooks/alertmanager", ALERT, lambda: {"Authorization": "Bearer nope"}, False),
    ("am-wrong-basic", "/webhooks/alertmanager", ALERT, lambda: _basic("am", "nope"), False),
    ("am-wrong-user", "/webhooks/alertmanager", ALERT, lambda: _basic("root", "am-pass"), False),
    ("am-scheme", "/webhooks/alertmanager", ALERT, lambda: {"Authorization": "Digest x"}, False),
    ("am-right-bearer", "/webhooks/alertmanager", ALERT, lambda: {"Authorization": f"Bearer {AM}"}, True),
    ("am-right-basic", "/webhooks/alertmanager", ALERT, lambda: _basic("am", "am-pass"), True),
]


def _settings() -> WebhookSettings:
    raw = {"rate_per_minute": 100000, "alertmanager": {"basic_user": "am", "basic_password_env": "AM_PASSWORD"}}
    return settings(raw, ENV)


@pytest.mark.parametrize(("name", "path", "body", "headers", "ok"), CASES, ids=[c[0] for c in CASES])
async def test_webhook_auth_matrix(
    name: str, path: str, body: bytes, headers: Callable[[], Mapping[str, str]], ok: bool
) -> None:
    async with serving(_settings()) as client:
        status, text = await client.post(path, body, headers())
    h = client.got
    refused = h.refusal_rows()
    if ok:
        assert status == 200, (status, text)
        assert h.events and not refused
    else:
        assert status == 401, (status, text)
        assert not h.events
        assert len(refused) == 1 and refused[0]["status"] == 401, h.audits
        assert GT not in json.dumps(h.audits) and SECRET not in json.dumps(h.audits)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("huge", b'{"a": "' + b"x" * (2 << 20) + b'"}'),
        ("deep", b"[" * 100_000 + b"]" * 100_000),
        ("deep-objects", b'{"a":' * 5000 + b"1" + b"}" * 5000),
    ],
)
async def test_hostile_bodies_with_valid_auth_are_refused(name: str, body: bytes) -> None:
    async with serving(_settings()) as client:
        status, _ = await client.post("/webhooks/alertmanager", body, {"Authorization": f"Bearer {AM}"})
    h = client.got
    assert status in (400, 413), status
    assert not h.events


def test_listeners_default_to_loopback(tmp_path: Path) -> None:
    s = validate({"webhooks": {"enabled": True}, "metrics": {"enabled": True}}, str(tmp_path / "c.yaml"), {})
    assert s.metrics.host == "127.0.0.1"
    assert s.webhooks.host == "127.0.0.1"


async def test_bound_socket_is_loopback() -> None:
    async with serving(_settings()) as client:
        runner = client.server._runner
        assert runner is not None
        addrs = runner.addresses
        assert addrs and all(a[0] in ("127.0.0.1", "::1") for a in addrs), addrs
