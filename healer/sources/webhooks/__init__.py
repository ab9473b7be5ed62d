"""Webhook receiver: Sentry, GlitchTip and Alertmanager deliveries become Events.

Parsers (``sentry``, ``glitchtip``, ``alertmanager``) are pure functions so they
can be tested and fuzzed without a server; ``auth`` checks credentials in
constant time; ``server`` wires both into an aiohttp app on the daemon's loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from healer.settings.webhooks import WebhookSettings

if TYPE_CHECKING:
    from healer.sources.webhooks.server import WebhookServer

__all__ = ["WebhookServer", "WebhookSettings"]


def __getattr__(name: str) -> Any:
    # The server pulls in aiohttp (~0.4 s); loading the config (every CLI call) needs only the settings.
    if name == "WebhookServer":
        from healer.sources.webhooks.server import WebhookServer

        return WebhookServer
    raise AttributeError(name)
