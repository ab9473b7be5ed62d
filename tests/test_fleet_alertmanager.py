"""One Alertmanager, three healers: each acts only on its own host's alerts (issue 17).

Both documented route trees (docs/fleet/alertmanager-*.yml) run as shipped in
the real Alertmanager, only the healers' addresses, the token files and the
waits rewritten; three real webhook receivers, each with its own ``host``,
take what it delivers.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.alertmanager import AMTOOL, Alertmanager, fast, needs_alertmanager
from support.waiting import eventually
from support.webhooks import Client, serving, settings

from healer.core.enums import AuditKind
from healer.settings.webhooks import AlertmanagerSettings
from healer.sources.webhooks.ownhost import HostFilter

DOCS = Path(__file__).resolve().parent.parent / "docs" / "fleet"
HOSTS = ("web-1", "web-2", "web-3")
LABELS = ["host", "hostname", "instance"]


def token(host: str) -> str:
    return f"am-token-{host}"


def am_filter(host: str, **am: object) -> HostFilter:
    f = HostFilter.of(host, AlertmanagerSettings.model_validate({"host_labels": LABELS, **am}))
    assert f is not None
    return f


def test_no_host_labels_means_every_alert_is_ours() -> None:
    assert HostFilter.of("web-1", AlertmanagerSettings()) is None


@pytest.mark.parametrize(
    "labels",
    [
        {"host": "web-1"},
        {"host": "WEB-1"},
        {"instance": "web-1:9100"},
        {"instance": "web-1.example.com:9100"},
        {"hostname": "web-1.example.com."},
        {"instance": "10.0.0.5:9100"},  # an alias
        {"instance": "[fd00::5]:9100"},  # an alias
        {"host": "web-1", "instance": "10.9.9.9:9100"},  # host is tried first and decides
    ],
)
def test_alerts_about_this_host(labels: dict[str, str]) -> None:
    assert am_filter("web-1", host_aliases=["10.0.0.5", "fd00::5"]).not_ours(labels) is None


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        ({"host": "web-2"}, "host=web-2"),
        ({"instance": "web-10:9100"}, "instance=web-10:9100"),
        ({"instance": "web-1x.example.com"}, "instance=web-1x.example.com"),
        ({"host": "web-2", "instance": "web-1:9100"}, "host=web-2"),
        ({"alertname": "QuorumLost"}, "no host/hostname/instance label"),
    ],
)
def test_alerts_about_another_host(labels: dict[str, str], why: str) -> None:
    assert am_filter("web-1").not_ours(labels) == why


def test_unlabelled_alerts_accepted_when_asked() -> None:
    assert am_filter("web-1", accept_unlabelled=True).not_ours({"alertname": "QuorumLost"}) is None
    assert am_filter("web-1", accept_unlabelled=True).not_ours({"host": "web-2"}) == "host=web-2"


@pytest.mark.skipif(AMTOOL is None, reason="amtool missing (Debian prometheus-alertmanager)")
@pytest.mark.parametrize("name", ["alertmanager-per-host.yml", "alertmanager-broadcast.yml"])
def test_documented_route_trees_pass_amtool(name: str) -> None:
    assert AMTOOL is not None
    done = subprocess.run([AMTOOL, "check-config", str(DOCS / name)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


Fleet = dict[str, Client]


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    async with AsyncExitStack() as stack:
        clients: Fleet = {}
        for host in HOSTS:
            ws = settings(
                {"alertmanager": {"host_labels": LABELS, "accept_unlabelled": host == "web-3"}},
                {"HEALER_ALERTMANAGER_TOKEN": token(host)},
            )
            clients[host] = await stack.enter_async_context(serving(ws, own_host=host))
        yield clients


def documented(name: str, tmp: Path, fleet: Fleet) -> str:
    """The route tree from docs/, pointed at this machine's three receivers."""
    text = fast((DOCS / name).read_text())
    for host, client in fleet.items():
        (tmp / f"{host}.token").write_text(token(host))
        text = text.replace(f"http://{host}:9321", client.base)
        text = text.replace(f"/etc/alertmanager/healer-{host}.token", str(tmp / f"{host}.token"))
    assert "9321" not in text and "/etc/alertmanager" not in text
    return text


def webhook_notifications(am: Alertmanager) -> int:
    """How many webhook notifications Alertmanager has sent, from its own /metrics."""
    with urllib.request.urlopen(am.base + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    m = re.search(r'^alertmanager_notifications_total\{integration="webhook"[^}]*\} (\S+)$', text, re.MULTILINE)
    return int(float(m.group(1))) if m else 0


ALERTS = [
    {"alertname": "RedisDown", "host": "web-1", "instance": "web-1:9121", "job": "redis"},
    {"alertname": "DiskFull", "host": "web-2", "instance": "web-2:9100", "job": "node"},
    {"alertname": "NginxDown", "host": "db-9", "instance": "db-9:9113", "job": "nginx"},  # no healer on db-9
    {"alertname": "HealerDown", "host": "web-2", "instance": "web-2:9322", "job": "healer"},  # to people
]


def received(fleet: Fleet) -> dict[str, list[str]]:
    return {host: sorted(ev.fields["alertname"] for ev in c.events) for host, c in fleet.items()}


def not_ours(client: Client) -> list[str]:
    return sorted(
        f"{a['alertname']} {a['host']}"
        for kind, info in client.audits
        if kind == AuditKind.ALERT_NOT_OURS
        for a in info["alerts"]  # type: ignore[attr-defined]
    )


async def start_am(tmp: Path, text: str, am_started: list[Alertmanager]) -> Alertmanager:
    am = await asyncio.to_thread(Alertmanager, tmp / "am", text)
    am_started.append(am)
    return am


@pytest.fixture
def am_started() -> Iterator[list[Alertmanager]]:
    started: list[Alertmanager] = []
    yield started
    for am in started:
        am.close()


async def post_all(am: Alertmanager, alerts: list[dict[str, str]]) -> None:
    starts = datetime.now(UTC) - timedelta(seconds=30)
    for labels in alerts:
        await asyncio.to_thread(am.post_alert, labels, starts)


async def settled(am: Alertmanager, expected: int, fleet: Fleet, pred: Callable[[], bool]) -> None:
    """Until what we expect arrived and Alertmanager says it sent exactly ``expected`` webhooks."""
    await eventually(pred, 20, lambda: f"received={received(fleet)}")
    await eventually(lambda: webhook_notifications(am) >= expected, 10, lambda: str(webhook_notifications(am)))
    assert webhook_notifications(am) == expected


@needs_alertmanager
async def test_route_per_host_delivers_each_alert_to_its_own_healer(
    fleet: Fleet, tmp_path: Path, am_started: list[Alertmanager]
) -> None:
    am = await start_am(tmp_path, documented("alertmanager-per-host.yml", tmp_path, fleet), am_started)
    await post_all(am, ALERTS)
    want = {"web-1": ["RedisDown"], "web-2": ["DiskFull"], "web-3": []}
    await settled(am, 2, fleet, lambda: received(fleet) == want)
    assert received(fleet) == want
    assert all(not_ours(c) == [] for c in fleet.values())  # the route tree did the sorting


@needs_alertmanager
async def test_every_healer_receives_the_group_and_acts_on_its_own_host_only(
    fleet: Fleet, tmp_path: Path, am_started: list[Alertmanager]
) -> None:
    am = await start_am(tmp_path, documented("alertmanager-broadcast.yml", tmp_path, fleet), am_started)
    quorum = {"alertname": "QuorumLost", "job": "etcd"}  # about the fleet, not one host
    await post_all(am, [*ALERTS, quorum])
    # Only web-3 accepts unlabelled alerts; db-9's alert is nobody's.
    want = {"web-1": ["RedisDown"], "web-2": ["DiskFull"], "web-3": ["QuorumLost"]}
    groups = len(ALERTS) - 1 + 1  # HealerDown goes to people, QuorumLost to every healer
    await settled(am, 3 * groups, fleet, lambda: received(fleet) == want and len(not_ours(fleet["web-1"])) == 3)
    assert received(fleet) == want
    assert not_ours(fleet["web-1"]) == [
        "DiskFull host=web-2",
        "NginxDown host=db-9",
        "QuorumLost no host/hostname/instance label",
    ]
    assert not_ours(fleet["web-3"]) == ["DiskFull host=web-2", "NginxDown host=db-9", "RedisDown host=web-1"]
    for host, client in fleet.items():
        for ev in client.events:
            assert ev.fields.get("host", host) == host
