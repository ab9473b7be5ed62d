"""The webhook receiver: an aiohttp application inside the daemon's loop.

Why aiohttp rather than a hand-written HTTP server: request parsing (chunked
bodies, keep-alive, header limits, slow clients) is exactly where hand-written
code gets exploitable, and aiohttp enforces body limits (``client_max_size``)
and runs on the daemon's own asyncio loop via ``AppRunner``/``TCPSite``, so
there is no second thread and no locking around the sink.

Order of checks, cheapest first, so a flood of junk costs almost nothing:
rate limit (429) → declared size (413) → content type (415) → read body with a
timeout (413/408) → authentication (401) → bounded JSON parse (400) → dedup →
sink. Every refusal is answered with a short plain-text reason and reported to
``audit("webhook_refused", {...})``. The sink's own failure is answered 503 so
that the sender retries rather than the alert being lost.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web

from healer.core.errors import WebhookError
from healer.core.records import Event
from healer.settings.webhooks import WebhookSettings
from healer.sources.webhooks import alertmanager, auth, glitchtip, sentry

log = structlog.get_logger("healer.sources.webhooks")

Sink = Callable[[list[Event]], Awaitable[None]]
Audit = Callable[[str, Mapping[str, object]], None]

READ_TIMEOUT = 10.0  # seconds to receive a body; slow senders are cut off
DEDUP_SIZE = 4096  # alert keys remembered; Alertmanager re-sends every repeat_interval
RATE_KEYS = 1024  # distinct (source, peer) buckets kept
_JSON_TYPES = frozenset({"application/json", "text/json"})


class TokenBucket:
    """Classic token bucket: ``rate_per_minute`` burst, refilled continuously."""

    def __init__(self, rate_per_minute: int, now: float) -> None:
        self.capacity = float(rate_per_minute)
        self.per_second = rate_per_minute / 60.0
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateLimiter:
    """One bucket per (source, peer address), bounded LRU so peers cannot grow memory."""

    def __init__(self, rate_per_minute: int, max_keys: int = RATE_KEYS) -> None:
        self.rate = rate_per_minute
        self.max_keys = max_keys
        self.buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()

    def allow(self, source: str, peer: str, now: float) -> bool:
        key = (source, peer)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(self.rate, now)
            while len(self.buckets) > self.max_keys:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end(key)
        return bucket.take(now)


class SeenLRU:
    """Bounded memory of delivered alert keys (fingerprint, startsAt, status)."""

    def __init__(self, size: int = DEDUP_SIZE) -> None:
        self.size = size
        self.keys: OrderedDict[tuple[str, ...], None] = OrderedDict()

    def __contains__(self, key: tuple[str, ...]) -> bool:
        return key in self.keys

    def add(self, key: tuple[str, ...]) -> None:
        self.keys[key] = None
        self.keys.move_to_end(key)
        while len(self.keys) > self.size:
            self.keys.popitem(last=False)


def _safe_path(path: str) -> str:
    """The request path for logs and audit, with a GlitchTip URL token blanked out."""
    if path.startswith(_GLITCHTIP_TOKENED):
        return _GLITCHTIP_TOKENED + "<token>"
    return path[:200]


_GLITCHTIP_TOKENED = "/webhooks/glitchtip/"


def _alert_key(ev: Event) -> tuple[str, ...]:
    return (ev.source_id, ev.fields.get("status", ""))


class WebhookServer:
    """Receives Sentry, GlitchTip and Alertmanager webhooks and hands Events to ``sink``.

    ``start()`` binds ``settings.host:settings.port`` (port 0 picks a free one,
    read back from ``.port``); ``stop()`` closes the listener and waits for
    in-flight requests.
    """

    def __init__(self, settings: WebhookSettings, sink: Sink, audit: Audit | None = None) -> None:
        self.settings = settings
        self.sink = sink
        self.audit = audit
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._rate = RateLimiter(settings.rate_per_minute)
        self._seen = SeenLRU()
        self._sink_lock = asyncio.Lock()

    def make_app(self) -> web.Application:
        """The aiohttp application; exposed so tests may drive it directly."""
        app = web.Application(client_max_size=self.settings.max_body_bytes, middlewares=[self._guard])
        app.router.add_post("/webhooks/sentry", self._sentry)
        app.router.add_post("/webhooks/glitchtip", self._glitchtip)
        app.router.add_post("/webhooks/glitchtip/{token}", self._glitchtip)
        app.router.add_post("/webhooks/alertmanager", self._alertmanager)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            return
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else self.settings.port
        self._warn_unconfigured()
        log.info("webhooks_listening", host=self.settings.host, port=self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("webhooks_stopped", port=self.port)

    def _warn_unconfigured(self) -> None:
        s = self.settings
        if not s.sentry.secret:
            log.warning("webhook_source_unconfigured", source="sentry", env=s.sentry.secret_env)
        if not s.glitchtip.token:
            log.warning("webhook_source_unconfigured", source="glitchtip", env=s.glitchtip.token_env)
        am = s.alertmanager
        if not am.bearer and not (am.basic_user and am.basic_password):
            log.warning("webhook_source_unconfigured", source="alertmanager", env=am.bearer_env)

    # -- plumbing ------------------------------------------------------------

    def _refuse(self, request: web.Request, source: str, status: int, reason: str) -> web.Response:
        info: dict[str, object] = {
            "source": source,
            "status": status,
            "reason": reason,
            "path": _safe_path(request.path),
            "remote": request.remote or "",
        }
        log.warning("webhook_refused", **info)
        if self.audit is not None:
            try:
                self.audit("webhook_refused", info)
            except Exception:  # an audit failure must not turn a 4xx into a crash
                log.exception("webhook_audit_failed")
        return web.Response(status=status, text=reason + "\n")

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Turn router refusals (404/405) into audited answers and bugs into a 500."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return self._refuse(request, "http", exc.status, exc.reason)
            raise
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook_handler_crashed", path=_safe_path(request.path))
            return web.Response(status=500, text="internal error\n")

    async def _receive(self, request: web.Request, source: str) -> bytes:
        """Rate, size, type and read checks shared by every POST route."""
        s = self.settings
        if not self._rate.allow(source, request.remote or "", time.monotonic()):
            raise WebhookError(429, f"rate limit of {s.rate_per_minute}/min exceeded")
        length = request.content_length
        if length is not None and length > s.max_body_bytes:
            raise WebhookError(413, f"body of {length} bytes exceeds {s.max_body_bytes}")
        if request.content_type not in _JSON_TYPES and not request.content_type.endswith("+json"):
            got = request.content_type[:64]
            raise WebhookError(415, f"content type must be application/json, not {got!r}")
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise WebhookError(413, f"body exceeds {s.max_body_bytes} bytes") from None
        except TimeoutError:
            raise WebhookError(408, f"body not received within {READ_TIMEOUT:g}s") from None

    async def _deliver(
        self, request: web.Request, source: str, events: list[Event], locked: bool = False
    ) -> web.Response:
        """Hand ``events`` to the sink one batch at a time (``locked``: caller holds the lock)."""
        if events:
            try:
                if locked:
                    await self.sink(events)
                else:
                    async with self._sink_lock:
                        await self.sink(events)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook_sink_failed", source=source, events=len(events))
                return web.Response(status=503, text="could not store events, retry later\n")
        log.info("webhook_accepted", source=source, events=len(events))
        return web.json_response({"accepted": len(events)})

    async def _handle(
        self,
        request: web.Request,
        source: str,
        check: Callable[[bytes], None],
        parse: Callable[[bytes, Mapping[str, str], float, int], list[Event]],
    ) -> web.Response:
        try:
            body = await self._receive(request, source)
            check(body)
            events = parse(body, request.headers, time.time(), self.settings.max_depth)
        except WebhookError as err:
            return self._refuse(request, source, err.status, err.reason)
        return await self._deliver(request, source, events)

    # -- routes --------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _sentry(self, request: web.Request) -> web.Response:
        s = self.settings.sentry

        def check(body: bytes) -> None:
            auth.verify_sentry(body, request.headers, s.secret, s.max_age, time.time())

        return await self._handle(request, "sentry", check, sentry.parse)

    async def _glitchtip(self, request: web.Request) -> web.Response:
        token = request.match_info.get("token")

        def check(body: bytes) -> None:
            auth.verify_glitchtip(token, request.headers, self.settings.glitchtip.token)

        return await self._handle(request, "glitchtip", check, glitchtip.parse)

    async def _alertmanager(self, request: web.Request) -> web.Response:
        am = self.settings.alertmanager

        def check(body: bytes) -> None:
            auth.verify_alertmanager(request.headers, am.bearer, am.basic_user, am.basic_password)

        try:
            body = await self._receive(request, "alertmanager")
            check(body)
            events = alertmanager.parse(body, request.headers, time.time(), self.settings.max_depth)
        except WebhookError as err:
            return self._refuse(request, "alertmanager", err.status, err.reason)
        # Check, deliver and remember under the sink lock, so two concurrent
        # re-deliveries of the same group cannot both get through.
        async with self._sink_lock:
            fresh: list[Event] = []
            batch_keys: set[tuple[str, ...]] = set()
            for ev in events:
                key = _alert_key(ev)
                if ev.source_id and (key in self._seen or key in batch_keys):
                    continue
                batch_keys.add(key)
                fresh.append(ev)
            if len(fresh) < len(events):
                log.info("alertmanager_duplicates_dropped", dropped=len(events) - len(fresh))
            response = await self._deliver(request, "alertmanager", fresh, locked=True)
            if response.status == 200:
                # Remember only what the sink took, so a failed delivery is retried.
                for ev in fresh:
                    if ev.source_id:
                        self._seen.add(_alert_key(ev))
        return response
