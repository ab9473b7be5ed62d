"""Bounded connections for the webhook listener (issue 19 #5).

aiohttp closes an *idle* keep-alive connection (``keepalive_timeout``) but has
no deadline for a request's headers and no cap on connections: 1,100 clients
that send half a request line each and wait held 1,100 file descriptors until
``RLIMIT_NOFILE`` ran out and fixes failed with EMFILE. Two guards fix that:

* at most ``max_connections`` open at once; one more is answered 503 and closed
  at once, so it costs a file descriptor for microseconds, not for ever;
* every connection must deliver a request's headers within
  ``header_timeout`` of connecting or of its previous response (the handler
  marks the moment through :meth:`ConnectionGuard.request_started`), or it is
  closed. The body then has its own read timeout in the server.

The guard wraps aiohttp's per-connection protocol rather than replacing it:
parsing stays aiohttp's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class _Guarded(asyncio.Protocol):
    """Delegates to aiohttp's protocol, adding the header deadline and the count."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.guard.open[transport] = self
        self.arm()
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        if self.transport is not None:
            self.guard.open.pop(self.transport, None)
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def arm(self) -> None:
        self.disarm()
        self._timer = asyncio.get_running_loop().call_later(self.guard.header_timeout, self._expire)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self.guard.expired += 1
        if self.transport is not None:
            self.transport.abort()


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_BUSY)
        transport.close()


class ConnectionGuard:
    """Counts open connections and holds their header deadlines."""

    def __init__(self, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open: dict[asyncio.Transport, _Guarded] = {}
        self.refused = 0
        self.expired = 0

    def factory(self, server: web.Server) -> asyncio.Protocol:
        if len(self.open) >= self.max_connections:
            self.refused += 1
            return _Refused()
        inner: Any = server()  # aiohttp's RequestHandler for this connection
        return _Guarded(self, inner)

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        """The headers are in: the body's own timeout takes over."""
        conn = self.open.get(transport) if isinstance(transport, asyncio.Transport) else None
        if conn is not None:
            conn.disarm()

    def request_done(self, transport: asyncio.BaseTransport | None) -> None:
        """The response is out: the next request's headers must come within the deadline too."""
        conn = self.open.get(transport) if isinstance(transport, asyncio.Transport) else None
        if conn is not None:
            conn.arm()


class GuardedSite(web.TCPSite):
    """``TCPSite`` whose connections go through a :class:`ConnectionGuard`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard) -> None:
        super().__init__(runner, host, port, reuse_address=True)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        guard = self.guard
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: guard.factory(server), self._host, self._port, reuse_address=self._reuse_address
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
