"""The webhook receiver: an aiohttp application inside the daemon's loop.

Why aiohttp rather than a hand-written HTTP server: request parsing (chunked
bodies, keep-alive, header limits, slow clients) is exactly where hand-written
code gets exploitable, and aiohttp enforces body limits (``client_max_size``)
and runs on the daemon's own asyncio loop via ``AppRunner``, so there is no
second thread and no locking around the sink.

Connections are capped and must send their headers in time
(:mod:`.connections`). Order of checks per request: declared size (413) →
content type (415) → read body with a timeout (413/408) → authentication
(401) → rate limit (429) → bounded JSON parse (400) → dedup → sink. The rate
limit is charged only *after* authentication: unsigned junk from a peer (say
the TLS proxy's 127.0.0.1) must never use up the bucket a signed Sentry
delivery from that peer needs, because Sentry does not retry a 429. Refusals
are answered with a short plain-text reason and audited per peer per minute
(:mod:`.refusals`). The sink's own failure is answered 503 so that the sender
retries rather than the alert being lost.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web

from healer.core.batch import EventBatch
from healer.core.clock import Clock, SystemClock
from healer.core.enums import AuditKind, SourceName
from healer.core.errors import WebhookError
from healer.core.records import Event
from healer.settings.webhooks import WebhookSettings
from healer.sources.base import Audit, Sink, SourceContext
from healer.sources.webhooks import alertmanager, auth, glitchtip, sentry
from healer.sources.webhooks.connections import ConnectionGuard, GuardedSite
from healer.sources.webhooks.ownhost import HostFilter
from healer.sources.webhooks.refusals import RefusalLog

log = structlog.get_logger("healer.sources.webhooks")

READ_TIMEOUT = 10.0  # seconds to receive a body; slow senders are cut off
HEADER_TIMEOUT = 10.0  # seconds for a request's headers, from connect or from the previous response
KEEPALIVE_TIMEOUT = 15.0  # an idle keep-alive connection is closed after this
MAX_CONNECTIONS = 256  # open at once; far below RLIMIT_NOFILE, far above what three senders need
DEDUP_SIZE = 4096  # alert keys remembered; Alertmanager re-sends every repeat_interval
RATE_KEYS = 1024  # distinct (source, peer) buckets kept
NOT_OURS_LISTED = 20  # alerts named in one "not ours" audit row; the count says how many there were
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


Parse = Callable[[bytes, Mapping[str, str], float, int], list[Event]]


class WebhookServer:
    """Receives Sentry, GlitchTip and Alertmanager webhooks and hands Events to the sink.

    A :class:`~healer.sources.base.Source`: ``start(sink)`` binds
    ``settings.host:settings.port`` (port 0 picks a free one, read back from
    ``.port``); ``stop()`` closes the listener and waits for in-flight
    requests. Senders retry, so there is no checkpoint. ``own_host`` is the
    healer's ``host``: with ``alertmanager.host_labels`` set, alerts about
    another host are audited as not ours and never reach the sink.
    """

    name = "webhooks"
    checkpoint_key = None

    def __init__(
        self,
        settings: WebhookSettings,
        audit: Audit | None = None,
        *,
        clock: Clock | None = None,
        max_connections: int = MAX_CONNECTIONS,
        header_timeout: float = HEADER_TIMEOUT,
        own_host: str = "",
    ) -> None:
        self.settings = settings
        # A renamed host changes which alerts are ours: a reload must rebuild the receiver.
        self.spec = (settings, own_host)
        self.audit = audit
        self.owner = HostFilter.of(own_host, settings.alertmanager)
        self.sink: Sink | None = None
        self.clock = clock or SystemClock()
        self.port = 0
        self.guard = ConnectionGuard(max_connections, header_timeout)
        self.refusals = RefusalLog(audit, self.clock.now)
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

    async def start(self, sink: Sink) -> None:
        self.sink = sink
        if self._runner is not None:
            return
        runner = web.AppRunner(
            self.make_app(), access_log=None, handle_signals=False, keepalive_timeout=KEEPALIVE_TIMEOUT
        )
        await runner.setup()
        site = GuardedSite(runner, self.settings.host, self.settings.port, self.guard)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = site.port
        self._warn_unconfigured()
        log.info("webhooks_listening", host=self.settings.host, port=self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("webhooks_stopped", port=self.port)
        self.refusals.close()

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
        self.refusals.refused(
            {
                "source": source,
                "status": status,
                "reason": reason,
                "path": _safe_path(request.path),
                "remote": request.remote or "",
            }
        )
        return web.Response(status=status, text=reason + "\n")

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Turn router refusals (404/405) into audited answers and bugs into a 500."""
        self.guard.request_started(request.transport)
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
        finally:
            self.guard.request_done(request.transport)

    async def _receive(self, request: web.Request) -> bytes:
        """Size, type and read checks shared by every POST route: cheap, and before any parsing."""
        s = self.settings
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

    async def _deliver(self, source: str, events: list[Event], not_ours: int = 0) -> web.Response:
        """Hand ``events`` to the sink as one batch; the caller holds the sink lock."""
        if events:
            try:
                assert self.sink is not None  # routes are only served after start(sink)
                await self.sink(EventBatch(tuple(events)))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook_sink_failed", source=source, events=len(events))
                return web.Response(status=503, text="could not store events, retry later\n")
        log.info("webhook_accepted", source=source, events=len(events), not_ours=not_ours)
        return web.json_response(
            {"accepted": len(events), "not_ours": not_ours} if not_ours else {"accepted": len(events)}
        )

    async def _handle(
        self,
        request: web.Request,
        source: SourceName,
        check: Callable[[bytes], None],
        parse: Parse,
        *,
        dedup: bool = False,
    ) -> web.Response:
        s = self.settings
        try:
            body = await self._receive(request)
            check(body)
            # Charged only now: a refused signature never spends a signed sender's tokens.
            if not self._rate.allow(source, request.remote or "", self.clock.monotonic()):
                raise WebhookError(429, f"rate limit of {s.rate_per_minute}/min exceeded")
            events = parse(body, request.headers, self.clock.now(), s.max_depth)
        except WebhookError as err:
            return self._refuse(request, source, err.status, err.reason)
        # Check, deliver and remember under the sink lock, so two concurrent
        # re-deliveries of the same alert group cannot both get through.
        async with self._sink_lock:
            fresh = self._fresh(events) if dedup else events
            ours, foreign = self._split(fresh)
            response = await self._deliver(source, ours, len(foreign))
            if foreign and response.status == 200:
                self._record_not_ours(foreign)
            if dedup and response.status == 200:
                # Remember only what the sink took, so a failed delivery is retried.
                for ev in fresh:
                    if ev.source_id:
                        self._seen.add(_alert_key(ev))
        return response

    def _fresh(self, events: list[Event]) -> list[Event]:
        """Alertmanager re-sends every group each repeat_interval: drop what was delivered already."""
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
        return fresh

    def _split(self, events: list[Event]) -> tuple[list[Event], list[tuple[Event, str]]]:
        """This host's alerts, and the others' with the label that names their host."""
        if self.owner is None:
            return events, []
        ours: list[Event] = []
        foreign: list[tuple[Event, str]] = []
        for ev in events:
            why = self.owner.not_ours(ev.fields) if ev.source == SourceName.ALERTMANAGER else None
            if why is None:
                ours.append(ev)
            else:
                foreign.append((ev, why))
        return ours, foreign

    def _record_not_ours(self, foreign: list[tuple[Event, str]]) -> None:
        """One audit row per delivery (not per alert): in a fleet every healer sees every group."""
        alerts = [
            {"alertname": ev.fields.get("alertname", ""), "status": ev.fields.get("status", ""), "host": why}
            for ev, why in foreign[:NOT_OURS_LISTED]
        ]
        log.info("alertmanager_not_ours", alerts=len(foreign), first=alerts[0]["host"])
        if self.audit is not None:
            self.audit(
                AuditKind.ALERT_NOT_OURS, {"source": SourceName.ALERTMANAGER, "count": len(foreign), "alerts": alerts}
            )

    # -- routes --------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _sentry(self, request: web.Request) -> web.Response:
        s = self.settings.sentry

        def check(body: bytes) -> None:
            auth.verify_sentry(body, request.headers, s.secret, s.max_age, self.clock.now())

        return await self._handle(request, SourceName.SENTRY, check, sentry.parse)

    async def _glitchtip(self, request: web.Request) -> web.Response:
        token = request.match_info.get("token")

        def check(body: bytes) -> None:
            auth.verify_glitchtip(token, request.headers, self.settings.glitchtip.token)

        return await self._handle(request, SourceName.GLITCHTIP, check, glitchtip.parse)

    async def _alertmanager(self, request: web.Request) -> web.Response:
        am = self.settings.alertmanager

        def check(body: bytes) -> None:
            auth.verify_alertmanager(request.headers, am.bearer, am.basic_user, am.basic_password)

        return await self._handle(request, SourceName.ALERTMANAGER, check, alertmanager.parse, dedup=True)


def from_settings(settings: WebhookSettings | None, ctx: SourceContext, own_host: str = "") -> list[WebhookServer]:
    if settings is None or not settings.enabled:
        return []
    return [WebhookServer(settings, ctx.audit, clock=ctx.clock, own_host=own_host)]
