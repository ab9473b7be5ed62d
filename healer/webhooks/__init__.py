"""Webhook receiver: Sentry, GlitchTip and Alertmanager deliveries become Events.

Parsers (``sentry``, ``glitchtip``, ``alertmanager``) are pure functions so they
can be tested and fuzzed without a server; ``auth`` checks credentials in
constant time; ``server`` wires both into an aiohttp app on the daemon's loop.
"""

from healer.webhooks.server import WebhookServer
from healer.webhooks.settings import WebhookSettings

__all__ = ["WebhookServer", "WebhookSettings"]
