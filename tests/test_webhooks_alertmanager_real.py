"""A real Prometheus Alertmanager delivering to the real webhook server.

Alertmanager is started with a tiny config (group_wait/group_interval 1s) whose
webhook receiver points at our server on a free port, alerts are posted to its
v2 API, and we wait for the Events (firing, then resolved) at our sink. This
proves the receiver against what Alertmanager actually sends, headers and all,
not against our idea of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.webhooks import Received, serving, settings

from healer.sources.webhooks.server import WebhookServer

AM_BIN = shutil.which("prometheus-alertmanager") or (
    "/usr/bin/prometheus-alertmanager" if os.access("/usr/bin/prometheus-alertmanager", os.X_OK) else None
)
pytestmark = pytest.mark.skipif(
    AM_BIN is None,
    reason="prometheus-alertmanager missing: apt-get install -y prometheus-alertmanager "
    "(listed in .ci/apt-packages.txt)",
)
TOKEN = "am-real-token-789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def server() -> AsyncIterator[tuple[WebhookServer, Received]]:
    async with serving(settings({}, {"HEALER_ALERTMANAGER_TOKEN": TOKEN})) as client:
        yield client.server, client.got


class Alertmanager:
    def __init__(self, tmp: Path, target: str, credentials: str) -> None:
        assert AM_BIN is not None
        self.port = free_port()
        config = tmp / "alertmanager.yml"
        config.write_text(
            json.dumps(  # JSON is YAML; no YAML writer needed
                {
                    "route": {
                        "receiver": "healer",
                        "group_by": ["alertname"],
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [
                        {
                            "name": "healer",
                            "webhook_configs": [
                                {
                                    "url": target,
                                    "send_resolved": True,
                                    "http_config": {"authorization": {"credentials": credentials}},
                                }
                            ],
                        }
                    ],
                }
            )
        )
        self.log = open(tmp / "alertmanager.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                AM_BIN,
                f"--config.file={config}",
                f"--storage.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(self.base + "/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError("alertmanager did not start: " + (tmp / "alertmanager.log").read_text())
            time.sleep(0.1)

    def post_alert(self, labels: dict[str, str], starts: datetime, ends: datetime | None = None) -> None:
        alert: dict[str, object] = {
            "labels": labels,
            "annotations": {"summary": f"{labels['alertname']} on {labels.get('instance', '?')}"},
            "startsAt": starts.isoformat().replace("+00:00", "Z"),
            "generatorURL": "http://prometheus.test:9090/graph?g0.expr=up",
        }
        if ends is not None:
            alert["endsAt"] = ends.isoformat().replace("+00:00", "Z")
        req = urllib.request.Request(
            self.base + "/api/v2/alerts",
            data=json.dumps([alert]).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def am_factory(tmp_path: Path) -> Iterator[Callable[[str, str], Alertmanager]]:
    started: list[Alertmanager] = []

    def make(target: str, credentials: str) -> Alertmanager:
        am = Alertmanager(tmp_path, target, credentials)
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
