"""Pure-function tests of the webhook parsers, auth helpers and settings."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from healer.core.enums import Severity
from healer.core.errors import ConfigError, WebhookError
from healer.settings.webhooks import WebhookSettings
from healer.sources.webhooks import alertmanager, auth, glitchtip, sentry
from healer.sources.webhooks.common import json_depth, loads_bounded

DATA = Path(__file__).parent / "data" / "webhooks"
NOW = 1_800_000_000.0


def body(name: str) -> bytes:
    return (DATA / name).read_bytes()


# -- common ------------------------------------------------------------------


def test_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
    assert json_depth(b'"\\"[[["') == 0
    assert json_depth(b'[1, {"a": [{}]}, "]]]]"]') == 4  # escapes-free split path
    assert json_depth(b'[1, {"a\\"]]": [{}]}, "]]\\\\"]') == 4  # regex path with escapes
    assert json_depth(b"") == 0


def test_loads_bounded_rejects_deep_nesting_without_recursion() -> None:
    deep = b"[" * 40_000 + b"]" * 40_000
    with pytest.raises(WebhookError) as ei:
        loads_bounded(deep, 32)
    assert ei.value.status == 400 and "deeper" in ei.value.reason
    with pytest.raises(WebhookError) as ei:
        loads_bounded(b"[" + b"[]," * 60_000 + b"[]]", 32)
    assert ei.value.status == 400 and "arrays/objects" in ei.value.reason
    assert isinstance(loads_bounded(b"[" * 32 + b"]" * 32, 32), list)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 1_000_000,
        b"[" * 500_000 + b"]" * 500_000,
        b"[" + b"[]," * 49_000 + b"[]]" + b" " * 800_000,
        b'["' + b'a", "' * 200_000 + b'"]',
        b'["' + b'\\"[", "' * 100_000 + b'"]',
    ],
    ids=["open", "deep", "wide", "strings", "escapes"],
)
def test_hostile_megabyte_is_cheap(body: bytes) -> None:
    """A 1 MB body must not block the event loop for long, whatever its shape."""
    import time

    t = time.perf_counter()
    try:
        loads_bounded(body, 32)
    except WebhookError:
        pass
    assert time.perf_counter() - t < 0.5


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe{}", b'{"a": NaN}', b"{", b"", b'{"a": "\xc3"}'],
)
def test_loads_bounded_rejects_garbage(raw: bytes) -> None:
    with pytest.raises(WebhookError) as ei:
        loads_bounded(raw, 32)
    assert ei.value.status == 400


# -- sentry ------------------------------------------------------------------


def test_sentry_event_alert() -> None:
    [ev] = sentry.parse(body("sentry-event_alert.json"), {"Sentry-Hook-Resource": "event_alert"}, NOW)
    assert ev.source == "sentry"
    assert ev.message == "ModuleNotFoundError: No module named 'requests'"
    assert ev.fields["exception_type"] == "ModuleNotFoundError"
    assert ev.fields["culprit"] == "app.worker in <module>"
    assert ev.fields["file"] == "app/worker.py" and ev.fields["line"] == "3"
    assert ev.fields["environment"] == "production" and ev.fields["release"] == "api@1.4.2"
    assert ev.fields["resource"] == "event_alert" and ev.fields["action"] == "triggered"
    assert ev.source_id == "4512345678:a9f3c2d1e0b84f6d9e2c1b0a98765432"
    assert ev.link.startswith("https://sentry.example/organizations/acme/issues/4512345678/")
    assert ev.severity is Severity.HIGH and not ev.resolved
    assert ev.service == "api"  # from the project slug in the event URL
    assert ev.ts == NOW


def test_sentry_event_alert_builds_python_style_line_and_top_in_app_frame() -> None:
    [ev] = sentry.parse(body("sentry-event_alert-redis.json"), {"sentry-hook-resource": "event_alert"}, NOW)
    assert ev.message == (
        "redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379. Connection refused."
    )
    assert ev.fields["file"] == "app/cache.py" and ev.fields["line"] == "42"


def test_sentry_issue_created_and_resolved() -> None:
    [ev] = sentry.parse(body("sentry-issue.json"), {"Sentry-Hook-Resource": "issue"}, NOW)
    assert ev.message.startswith("redis.exceptions.ConnectionError: Error 111")
    assert ev.fields["users"] == "12" and ev.fields["issue_id"] == "4512345679"
    assert ev.fields["exception_type"] == "ConnectionError" and ev.fields["file"] == "app/cache.py"
    assert ev.link == "https://sentry.example/organizations/acme/issues/4512345679/"
    assert ev.service == "api" and not ev.resolved
    [done] = sentry.parse(body("sentry-issue-resolved.json"), {"Sentry-Hook-Resource": "issue"}, NOW)
    assert done.resolved and done.source_id != ev.source_id


def test_sentry_metric_alert_and_resolved() -> None:
    [ev] = sentry.parse(body("sentry-metric_alert.json"), {"Sentry-Hook-Resource": "metric_alert"}, NOW)
    assert ev.message == "1.8% crash rate in the last 5 minutes"
    assert ev.fields["alertname"] == "Error rate above 1%"
    assert ev.severity is Severity.CRITICAL and not ev.resolved
    assert ev.link.endswith("/alerts/rules/details/3/")
    [done] = sentry.parse(body("sentry-metric_alert-resolved.json"), {}, NOW)  # resource guessed
    assert done.resolved


def test_sentry_unknown_resource_is_accepted_without_events() -> None:
    raw = json.dumps({"action": "created", "data": {"installation": {}}}).encode()
    assert sentry.parse(raw, {"Sentry-Hook-Resource": "installation"}, NOW) == []


@pytest.mark.parametrize(
    "doc",
    [
        {"action": "created"},
        {"data": []},
        {"data": {"issue": "x"}, "action": "created"},
        {"data": {"event": {"exception": {"values": "no"}}}},
    ],
)
def test_sentry_missing_fields_are_400(doc: object) -> None:
    with pytest.raises(WebhookError) as ei:
        sentry.parse(json.dumps(doc).encode(), {"Sentry-Hook-Resource": "issue"}, NOW)
    assert ei.value.status == 400


def test_sentry_hostile_text_is_cleaned() -> None:
    doc = json.loads(body("sentry-issue.json"))
    doc["data"]["issue"]["title"] = "Boom\nFAKE LOG LINE\x00" + "x" * 10_000
    [ev] = sentry.parse(json.dumps(doc).encode(), {"Sentry-Hook-Resource": "issue"}, NOW)
    assert "\n" not in ev.message and "\x00" not in ev.message and len(ev.message) < 5000


# -- glitchtip ---------------------------------------------------------------


def test_glitchtip_attachment() -> None:
    [ev] = glitchtip.parse(body("glitchtip.json"), {}, NOW)
    assert ev.message.startswith("OSError: [Errno 28] No space left on device")
    assert ev.service == "api"
    assert ev.fields["environment"] == "production" and ev.fields["server_name"] == "app-01"
    assert ev.fields["release"] == "api@1.4.2" and ev.fields["culprit"] == "app.cache.write"
    assert ev.fields["issue_id"] == "88" and ev.link == "https://glitchtip.example/acme/issues/88"


def test_glitchtip_lenient_text_only_and_empty() -> None:
    [ev] = glitchtip.parse(body("glitchtip-text-only.json"), {}, NOW)
    assert "ValueError: bad input" in ev.message
    with pytest.raises(WebhookError):
        glitchtip.parse(b'{"attachments": [{"fields": 3}]}', {}, NOW)


# -- alertmanager ------------------------------------------------------------


def test_alertmanager_mixed_batch() -> None:
    firing, resolved = alertmanager.parse(body("alertmanager-v4.json"), {}, NOW)
    assert firing.message == "Redis on app-01 is down"
    assert firing.fields["alertname"] == "RedisDown" and firing.fields["status"] == "firing"
    assert firing.fields["instance"] == "app-01:9121"
    assert firing.severity is Severity.CRITICAL and firing.service == "redis" and not firing.resolved
    assert firing.source_id == "1a30ba71cca2921f:2026-11-22T10:15:03.123Z"
    assert firing.link.startswith("http://prometheus.example:9090/")
    assert resolved.resolved and resolved.severity is Severity.MEDIUM
    assert resolved.fields["mountpoint"] == "/" and resolved.service == "alertmanager"


@pytest.mark.parametrize(
    ("label", "sev"),
    [
        ("critical", Severity.CRITICAL),
        ("error", Severity.HIGH),
        ("high", Severity.HIGH),
        ("warning", Severity.MEDIUM),
        ("info", Severity.LOW),
        ("bogus", None),
    ],
)
def test_alertmanager_severity_map(label: str, sev: Severity | None) -> None:
    doc = {"version": "4", "alerts": [{"labels": {"alertname": "A", "severity": label, "service": "web"}}]}
    [ev] = alertmanager.parse(json.dumps(doc).encode(), {}, NOW)
    assert ev.severity is sev and ev.service == "web" and ev.message == "A"


@pytest.mark.parametrize("doc", [{"version": "4"}, {"alerts": {}}, {"alerts": [1]}, {"alerts": [{"labels": {}}]}])
def test_alertmanager_malformed(doc: object) -> None:
    with pytest.raises(WebhookError) as ei:
        alertmanager.parse(json.dumps(doc).encode(), {}, NOW)
    assert ei.value.status == 400


# -- auth --------------------------------------------------------------------


def test_sentry_signature_checks() -> None:
    raw = body("sentry-issue.json")
    sig = auth.sentry_signature(raw, "s3cret")
    headers = {"Sentry-Hook-Signature": sig, "Sentry-Hook-Timestamp": str(int(NOW))}
    auth.verify_sentry(raw, headers, "s3cret", 300, NOW)
    for bad in (
        {},
        {"Sentry-Hook-Signature": "0" * 64, "Sentry-Hook-Timestamp": str(int(NOW))},
        {"Sentry-Hook-Signature": "é", "Sentry-Hook-Timestamp": str(int(NOW))},
        {"Sentry-Hook-Signature": sig, "Sentry-Hook-Timestamp": str(int(NOW - 301))},
        {"Sentry-Hook-Signature": sig, "Sentry-Hook-Timestamp": "nan"},
        {"Sentry-Hook-Signature": sig},
    ):
        with pytest.raises(WebhookError) as ei:
            auth.verify_sentry(raw, bad, "s3cret", 300, NOW)
        assert ei.value.status == 401
    auth.verify_sentry(raw, {"Sentry-Hook-Signature": sig}, "s3cret", 0, NOW)  # age check off
    with pytest.raises(WebhookError):
        auth.verify_sentry(raw, {"Sentry-Hook-Signature": sig}, "", 0, NOW)  # no secret: closed


def test_alertmanager_auth_schemes() -> None:
    basic = "Basic " + base64.b64encode(b"am:pw").decode()
    auth.verify_alertmanager({"Authorization": "Bearer tok"}, "tok", None, "")
    auth.verify_alertmanager({"Authorization": basic}, "", "am", "pw")
    for hdr in ("Bearer nope", "Basic !!!", "Basic " + base64.b64encode(b"am:no").decode(), "Digest x", ""):
        with pytest.raises(WebhookError) as ei:
            auth.verify_alertmanager({"Authorization": hdr}, "tok", "am", "pw")
        assert ei.value.status == 401


def test_glitchtip_auth() -> None:
    auth.verify_glitchtip("t0k", {}, "t0k")
    auth.verify_glitchtip(None, {"x-healer-token": "t0k"}, "t0k")
    for path_token, headers in (("bad", {}), (None, {}), (None, {"X-Healer-Token": "bad"})):
        with pytest.raises(WebhookError):
            auth.verify_glitchtip(path_token, headers, "t0k")


# -- settings ----------------------------------------------------------------


def test_settings_defaults_and_env_resolution() -> None:
    s = WebhookSettings.from_mapping({}, "webhooks", env={})
    assert (s.enabled, s.host, s.port, s.max_body_bytes, s.max_depth, s.rate_per_minute) == (
        False,
        "127.0.0.1",
        9321,
        1_048_576,
        32,
        120,
    )
    assert s.sentry.secret_env == "HEALER_SENTRY_SECRET" and s.sentry.max_age == 300
    env = {"HEALER_SENTRY_SECRET": "Zq9sec", "AM_PW": "Zq9pw", "HEALER_GLITCHTIP_TOKEN": "Zq9gt"}
    s = WebhookSettings.from_mapping(
        {"enabled": True, "port": 0, "alertmanager": {"basic_user": "am", "basic_password_env": "AM_PW"}},
        "webhooks",
        env=env,
    )
    assert (s.sentry.secret, s.glitchtip.token, s.alertmanager.basic_password) == ("Zq9sec", "Zq9gt", "Zq9pw")
    assert "Zq9" not in repr(s)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"port": "80"}, "webhooks.port"),
        ({"port": 70000}, "webhooks.port"),
        ({"enabled": "yes"}, "webhooks.enabled"),
        ({"bogus": 1}, "webhooks.bogus"),
        ({"sentry": {"max_age": -1}}, "webhooks.sentry.max_age"),
        ({"sentry": {"secret": "inline"}}, "webhooks.sentry.secret"),
        ({"alertmanager": {"basic_user": "x"}}, "webhooks.alertmanager.basic_user"),
        ({"glitchtip": []}, "webhooks.glitchtip"),
    ],
)
def test_settings_errors_name_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as ei:
        WebhookSettings.from_mapping(raw, "webhooks", env={})
    assert ei.value.key == key
