"""Authorisation matrix for the webhook endpoints, plus the loopback-bind defaults.

Every endpoint x {no auth, wrong auth, replayed/forged, right auth}: only the
right credential delivers events; every refusal is a 401 and is audited as
``webhook_refused``. Huge and deeply nested bodies are refused before parsing.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import pytest

from healer.core.records import Event
from healer.settings.load import validate
from healer.settings.webhooks import WebhookSettings
from healer.sources.webhooks.auth import sentry_signature
from healer.sources.webhooks.server import WebhookServer

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
CASES: list[tuple[str, str, bytes, Mapping[str, str], bool]] = [
    ("sentry-none", "/webhooks/sentry", SENTRY, {"Sentry-Hook-Resource": "issue"}, False),
    ("sentry-wrong-secret", "/webhooks/sentry", SENTRY, _sentry(SENTRY, secret="nope"), False),
    ("sentry-forged-body", "/webhooks/sentry", SENTRY + b" ", _sentry(SENTRY), False),
    ("sentry-replayed-old", "/webhooks/sentry", SENTRY, _sentry(SENTRY, ts=time.time() - 3600), False),
    ("sentry-future", "/webhooks/sentry", SENTRY, _sentry(SENTRY, ts=time.time() + 3600), False),
    ("sentry-nan-ts", "/webhooks/sentry", SENTRY, {**_sentry(SENTRY), "Sentry-Hook-Timestamp": "nan"}, False),
    ("sentry-right", "/webhooks/sentry", SENTRY, _sentry(SENTRY), True),
    ("glitchtip-none", "/webhooks/glitchtip", GLITCH, {}, False),
    ("glitchtip-wrong-path", "/webhooks/glitchtip/wrong", GLITCH, {}, False),
    ("glitchtip-wrong-header", "/webhooks/glitchtip", GLITCH, {"X-Healer-Token": "wrong"}, False),
    ("glitchtip-prefix", "/webhooks/glitchtip/" + GT[:-1], GLITCH, {}, False),
    ("glitchtip-right-path", "/webhooks/glitchtip/" + GT, GLITCH, {}, True),
    ("glitchtip-right-header", "/webhooks/glitchtip", GLITCH, {"X-Healer-Token": GT}, True),
    ("am-none", "/webhooks/alertmanager", ALERT, {}, False),
    ("am-wrong-bearer", "/webhooks/alertmanager", ALERT, {"Authorization": "Bearer nope"}, False),
    ("am-wrong-basic", "/webhooks/alertmanager", ALERT, _basic("am", "nope"), False),
    ("am-wrong-user", "/webhooks/alertmanager", ALERT, _basic("root", "am-pass"), False),
    ("am-scheme", "/webhooks/alertmanager", ALERT, {"Authorization": "Digest x"}, False),
    ("am-right-bearer", "/webhooks/alertmanager", ALERT, {"Authorization": f"Bearer {AM}"}, True),
    ("am-right-basic", "/webhooks/alertmanager", ALERT, _basic("am", "am-pass"), True),
]


class Harness:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.audits: list[tuple[str, dict[str, object]]] = []

    async def sink(self, events: list[Event]) -> None:
        self.events.extend(events)

    def audit(self, kind: str, info: Mapping[str, object]) -> None:
        self.audits.append((kind, dict(info)))


async def _server(h: Harness) -> WebhookServer:
    raw = {
        "enabled": True,
        "port": 0,
        "rate_per_minute": 100000,
        "alertmanager": {"basic_user": "am", "basic_password_env": "AM_PASSWORD"},
    }
    server = WebhookServer(WebhookSettings.from_mapping(raw, "webhooks", env=ENV), h.sink, h.audit)
    await server.start()
    return server


@pytest.mark.parametrize(("name", "path", "body", "headers", "ok"), CASES, ids=[c[0] for c in CASES])
async def test_webhook_auth_matrix(name: str, path: str, body: bytes, headers: Mapping[str, str], ok: bool) -> None:
    h = Harness()
    server = await _server(h)
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"http://127.0.0.1:{server.port}{path}",
                data=body,
                headers={"Content-Type": "application/json", **headers},
            ) as resp,
        ):
            status = resp.status
            text = await resp.text()
    finally:
        await server.stop()
    refused = [i for k, i in h.audits if k == "webhook_refused"]
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
    h = Harness()
    server = await _server(h)
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"http://127.0.0.1:{server.port}/webhooks/alertmanager",
                data=body,
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {AM}"},
            ) as resp,
        ):
            status = resp.status
    finally:
        await server.stop()
    assert status in (400, 413), status
    assert not h.events


def test_listeners_default_to_loopback(tmp_path: Path) -> None:
    s = validate({"webhooks": {"enabled": True}, "metrics": {"enabled": True}}, str(tmp_path / "c.yaml"), {})
    assert s.metrics.host == "127.0.0.1"
    assert s.webhooks.host == "127.0.0.1"


async def test_bound_socket_is_loopback() -> None:
    h = Harness()
    server = await _server(h)
    try:
        assert server._runner is not None
        addrs = server._runner.addresses
        assert addrs and all(a[0] in ("127.0.0.1", "::1") for a in addrs), addrs
    finally:
        await server.stop()
