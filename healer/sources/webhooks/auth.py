"""Authentication of webhook deliveries, all in constant time.

Each sender authenticates differently, and we use the strongest thing each
offers: Sentry signs the raw body (HMAC-SHA256, hex, client secret), GlitchTip
can only carry a secret in its URL (or a header when a proxy adds one), and
Alertmanager's ``http_config`` sends a bearer token or basic auth. Every
comparison goes through ``hmac.compare_digest`` on bytes so the time taken does
not leak how much of a guess was right, and a non-ASCII header cannot raise.
A failure is always ``WebhookError(401, reason)``; the reason never echoes
the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from healer.core.errors import WebhookError
from healer.sources.webhooks.common import header


def tokens_equal(given: str, expected: str) -> bool:
    """Constant-time equality; an empty expected secret never matches."""
    if not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def sentry_signature(body: bytes, secret: str) -> str:
    """The hex HMAC-SHA256 Sentry puts in ``Sentry-Hook-Signature``."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_sentry(body: bytes, headers: Mapping[str, str], secret: str, max_age: float, now: float) -> None:
    """Check the signature of the *raw* body, then the delivery timestamp.

    The HMAC must be computed over the bytes as received: re-serialised JSON
    (other spacing, key order) is a different message and must fail. Sentry
    does not sign ``Sentry-Hook-Timestamp``, so the age check (``max_age`` > 0)
    only stops naive replays of a captured request; it is still worth having.
    """
    if not secret:
        raise WebhookError(401, "sentry receiver has no client secret configured")
    given = header(headers, "Sentry-Hook-Signature").strip().lower()
    if not given:
        raise WebhookError(401, "missing Sentry-Hook-Signature")
    if not tokens_equal(given, sentry_signature(body, secret)):
        raise WebhookError(401, "bad Sentry-Hook-Signature")
    if max_age > 0:
        raw_ts = header(headers, "Sentry-Hook-Timestamp").strip()
        try:
            ts = float(raw_ts)
        except ValueError:
            raise WebhookError(401, "missing or invalid Sentry-Hook-Timestamp") from None
        if ts > 1e11:  # milliseconds: tolerate senders (and relays) that use them
            ts /= 1000.0
        if ts != ts or abs(now - ts) > max_age:  # ts != ts catches NaN
            raise WebhookError(401, f"Sentry-Hook-Timestamp outside {max_age:g}s window")


def verify_glitchtip(path_token: str | None, headers: Mapping[str, str], token: str) -> None:
    """GlitchTip cannot sign or add headers; the secret rides in the URL path.

    ``X-Healer-Token`` is accepted too, for deployments where a proxy adds it.
    """
    if not token:
        raise WebhookError(401, "glitchtip receiver has no token configured")
    given = path_token if path_token else header(headers, "X-Healer-Token")
    if not given:
        raise WebhookError(401, "missing token (use /webhooks/glitchtip/{token} or X-Healer-Token)")
    if not tokens_equal(given, token):
        raise WebhookError(401, "bad token")


def verify_alertmanager(headers: Mapping[str, str], bearer: str, basic_user: str | None, basic_password: str) -> None:
    """Accept either configured scheme: ``Bearer <token>`` or ``Basic``."""
    if not bearer and not (basic_user and basic_password):
        raise WebhookError(401, "alertmanager receiver has no bearer token or basic auth configured")
    auth = header(headers, "Authorization").strip()
    scheme, _, cred = auth.partition(" ")
    scheme = scheme.lower()
    cred = cred.strip()
    if not auth:
        raise WebhookError(401, "missing Authorization header")
    if scheme == "bearer" and bearer:
        if tokens_equal(cred, bearer):
            return
        raise WebhookError(401, "bad bearer token")
    if scheme == "basic" and basic_user and basic_password:
        try:
            decoded = base64.b64decode(cred, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise WebhookError(401, "malformed basic credentials") from None
        user, sep, password = decoded.partition(":")
        # Evaluate both comparisons so timing does not reveal which one failed.
        ok_user = tokens_equal(user, basic_user)
        ok_pass = tokens_equal(password, basic_password)
        if sep and ok_user and ok_pass:
            return
        raise WebhookError(401, "bad basic credentials")
    raise WebhookError(401, f"unsupported Authorization scheme {scheme[:16]!r}")
