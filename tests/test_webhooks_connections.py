"""Issue 19 #5: half-sent requests cannot hold the listener's file descriptors.

Real sockets against a real ``WebhookServer``: 1,100 clients each send half a
request line and wait. The server keeps at most ``max_connections`` of them,
answers the rest 503 at once, closes the held ones when their header deadline
passes, and a signed delivery then gets through.
"""

from __future__ import annotations

import asyncio
import os
import resource
from pathlib import Path

from support.webhooks import serving, settings

DATA = Path(__file__).parent / "data" / "webhooks"
CLIENTS = 1100
CAP = 64
GT = "gt-token"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _half_request(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /webhooks/glitchtip HTTP/1.1\r\nHost: x\r\nContent-")  # ...and never the rest
    await writer.drain()
    return reader, writer


async def test_half_open_flood_is_capped_and_timed_out() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= CLIENTS + CAP + 200, f"RLIMIT_NOFILE {soft} too low for this test's own client sockets"
    ws = settings({}, {"HEALER_GLITCHTIP_TOKEN": GT})
    async with serving(ws, max_connections=CAP, header_timeout=1.0) as h:
        before = _open_fds()
        conns = [await _half_request(h.server.port) for _ in range(CLIENTS)]
        await asyncio.sleep(0)  # let the server see the last connections
        held = len(h.server.guard.open)
        assert held <= CAP, held
        # Our 1,100 client sockets plus what the server holds: never 1,100 server-side descriptors.
        server_side = _open_fds() - before - CLIENTS
        assert server_side <= CAP + 8, server_side
        # The connections over the cap were told so and closed, not left hanging.
        refused = [r for r, _ in conns[CAP + 10 :]]
        answers = await asyncio.gather(*(asyncio.wait_for(r.read(), 10) for r in refused))
        assert all(a.startswith(b"HTTP/1.1 503") for a in answers), answers[:3]
        # The held ones are cut when their header deadline passes (read() sees EOF).
        held_readers = [r for r, _ in conns[:CAP]]
        await asyncio.gather(*(asyncio.wait_for(r.read(), 10) for r in held_readers))
        assert h.server.guard.expired >= CAP - 10
        for _, w in conns:
            w.close()
        # And the listener still serves a real delivery.
        status, text = await h.post(f"/webhooks/glitchtip/{GT}", (DATA / "glitchtip.json").read_bytes())
        assert status == 200, text
