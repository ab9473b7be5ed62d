"""A real Prometheus Alertmanager delivering to the real webhook server.

Alertmanager is started with a tiny config (group_wait/group_interval 1s) whose
webhook receiver points at our server on a free port, alerts are posted to its
v2 API, and we wait for the Events (firing, then resolved) at our sink. This
proves the receiver against what Alertmanager actually sends, headers and all,
not against our idea of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.alertmanager import Alertmanager, needs_alertmanager, webhook_receiver
from support.webhooks import Received, serving, settings

from healer.sources.webhooks.server import WebhookServer

pytestmark = needs_alertmanager
TOKEN = "am-real-token-789"


@pytest.fixture
async def server() -> AsyncIterator[tuple[WebhookServer, Received]]:
    async with serving(settings({}, {"HEALER_ALERTMANAGER_TOKEN": TOKEN})) as client:
        yield client.server, client.got


@pytest.fixture
def am_factory(tmp_path: Path) -> Iterator[Callable[[str, str], Alertmanager]]:
    started: list[Alertmanager] = []

    def make(target: str, credentials: str) -> Alertmanager:
        route = {
            "receiver": "healer",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        }
        am = Alertmanager(tmp_path, {"route": route, "receivers": [webhook_receiver("healer", target, credentials)]})
        started.append(am)
        return am

    yield make
    for am in started:
        am.close()


async def test_real_alertmanager_firing_then_resolved(
    server: tuple[WebhookServer, Received], am_factory: Callable[[str, str], Alertmanager]
) -> None:
    srv, got = server
    am = await asyncio.to_thread(am_factory, f"http://127.0.0.1:{srv.port}/webhooks/alertmanager", TOKEN)
    labels = {"alertname": "RedisDown", "instance": "app-01:9121", "job": "redis", "severity": "critical"}
    starts = datetime.now(UTC) - timedelta(seconds=30)
    await asyncio.to_thread(am.post_alert, labels, starts)
    await got.wait_for(lambda: len(got.events) >= 1)
    firing = got.events[0]
    assert not firing.resolved and firing.fields["status"] == "firing"
    assert firing.fields["alertname"] == "RedisDown" and firing.service == "redis"
    assert firing.message == "RedisDown on app-01:9121" and firing.source_id.count(":") >= 1
    assert firing.link.startswith("http://prometheus.test:9090/")

    await asyncio.to_thread(am.post_alert, labels, starts, datetime.now(UTC) - timedelta(seconds=1))
    await got.wait_for(lambda: any(e.resolved for e in got.events))
    resolved = [e for e in got.events if e.resolved]
    assert resolved[0].fields["alertname"] == "RedisDown"
    assert resolved[0].source_id == firing.source_id  # same fingerprint + startsAt
    assert got.audits == []
    # Firing was delivered once even though Alertmanager may have re-flushed the group.
    assert len([e for e in got.events if not e.resolved]) == 1


async def test_real_alertmanager_wrong_token_is_refused(
    server: tuple[WebhookServer, Received], am_factory: Callable[[str, str], Alertmanager]
) -> None:
    srv, got = server
    am = await asyncio.to_thread(am_factory, f"http://127.0.0.1:{srv.port}/webhooks/alertmanager", "wrong-token")
    await asyncio.to_thread(am.post_alert, {"alertname": "DiskFull", "severity": "warning"}, datetime.now(UTC))
    await got.wait_for(lambda: any(info["status"] == 401 for _, info in got.audits))
    kind, info = got.audits[0]
    assert kind == "webhook_refused" and info["source"] == "alertmanager" and info["reason"] == "bad bearer token"
    await asyncio.sleep(1.5)  # a further group flush must not sneak an event through either
    assert got.events == []
