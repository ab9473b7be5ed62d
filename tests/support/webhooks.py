"""The one webhook harness: a real ``WebhookServer`` on a free port, what it delivered and audited."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from healer.core.batch import Batch, EventBatch
from healer.core.records import Event
from healer.settings.webhooks import WebhookSettings
from healer.sources.webhooks.server import WebhookServer
from support.waiting import eventually


class Received:
    """The sink and audit a webhook server is started with, recording what reached them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.audits: list[tuple[str, dict[str, object]]] = []
        self.fail_sink = False

    async def sink(self, batch: Batch) -> None:
        assert isinstance(batch, EventBatch), batch
        if self.fail_sink:
            raise RuntimeError("store is down")
        self.events.extend(batch.events)

    def audit(self, kind: str, info: Mapping[str, object]) -> None:
        self.audits.append((kind, dict(info)))

    def refusal_rows(self) -> list[dict[str, object]]:
        return [info for kind, info in self.audits if kind == "webhook_refused"]

    def refused(self, status: int) -> int:
        """Refusals with ``status``, counting the per-minute summary rows by their counts."""
        n = 0
        for info in self.refusal_rows():
            statuses = info.get("statuses")
            if isinstance(statuses, dict):
                n += int(statuses.get(str(status), 0))
            elif info.get("status") == status:
                n += int(str(info.get("count", 1)))
        return n

    async def wait_for(self, pred: Callable[[], bool], timeout: float = 15.0) -> None:
        await eventually(pred, timeout, lambda: f"events={self.events} audits={self.audits}")


def settings(raw: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None) -> WebhookSettings:
    return WebhookSettings.from_mapping({"enabled": True, "port": 0, **(raw or {})}, "webhooks", env=dict(env or {}))


class Client:
    """A started server, its ``Received`` and an HTTP session to talk to it."""

    def __init__(self, server: WebhookServer, got: Received, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.got = got
        self.session = session

    # What the server delivered and audited, read through the client as tests usually do.
    @property
    def events(self) -> list[Event]:
        return self.got.events

    @property
    def audits(self) -> list[tuple[str, dict[str, object]]]:
        return self.got.audits

    @property
    def fail_sink(self) -> bool:
        return self.got.fail_sink

    @fail_sink.setter
    def fail_sink(self, value: bool) -> None:
        self.got.fail_sink = value

    def refused(self, status: int) -> int:
        return self.got.refused(status)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def post(
        self, path: str, data: bytes, headers: Mapping[str, str] | None = None, ctype: str = "application/json"
    ) -> tuple[int, str]:
        hdrs = {"Content-Type": ctype, **(headers or {})}
        async with self.session.post(self.base + path, data=data, headers=hdrs) as resp:
            return resp.status, await resp.text()


@asynccontextmanager
async def serving(
    ws: WebhookSettings, *, audit: bool = True, got: Received | None = None, **kw: Any
) -> AsyncIterator[Client]:
    got = got or Received()
    server = WebhookServer(ws, got.audit if audit else None, **kw)
    await server.start(got.sink)
    session = aiohttp.ClientSession()
    try:
        yield Client(server, got, session)
    finally:
        await session.close()
        await server.stop()
