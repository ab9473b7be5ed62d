"""A fleet on one machine (issue 17): three healer daemons, one real Alertmanager, one real Prometheus,
one Telegram group with the three hosts' bots.

Each daemon is its own host (web-1, web-2, web-3: own config, state, ports).
Alertmanager runs the documented "every healer receives the group" route tree,
so every daemon is sent every alert; faults (RedisDown) are injected on web-1
and web-2 only. Each is fixed by its own healer, never by another, and what an
operator sees says so: the fix's file on disk, ``healer errors`` and
``healer history`` of each host, the "not ours" audit, and the per-host series
of /metrics, also as Prometheus scraped them with docs/fleet/prometheus-healer.yml.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.alertmanager import Alertmanager, fast, free_port, needs_alertmanager, terminate
from support.daemon import wait_for
from support.fake_telegram_group import GROUP_ID, FakeTelegramGroup
from support.fleet import ALERT_PATTERNS, FleetHost, token

from healer.core.enums import AuditKind, Outcome

pytestmark = needs_alertmanager
DOCS = Path(__file__).resolve().parent.parent / "docs" / "fleet"
HOSTS = ("web-1", "web-2", "web-3")
PROMETHEUS = shutil.which("prometheus")
DONE = {Outcome.VERIFYING, Outcome.SUCCEEDED}


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[dict[str, FleetHost]]:
    hosts = {h: FleetHost(tmp_path / "hosts", h) for h in HOSTS}
    try:
        for h in hosts.values():
            h.start()
        yield hosts
    finally:
        for h in hosts.values():
            h.stop()


def broadcast_route_tree(tmp: Path, fleet: dict[str, FleetHost]) -> str:
    text = fast((DOCS / "alertmanager-broadcast.yml").read_text())
    for name, h in fleet.items():
        (tmp / f"{name}.token").write_text(token(name))
        text = text.replace(f"http://{name}:9321", h.webhook_base)
        text = text.replace(f"/etc/alertmanager/healer-{name}.token", str(tmp / f"{name}.token"))
    return text


def has_fixed(h: FleetHost) -> bool:
    return any(a.outcome in DONE for a in h.store.attempts())


class Prometheus:
    """The real server, scraping the fleet with the documented scrape config every second."""

    def __init__(self, tmp: Path, fleet: dict[str, FleetHost]) -> None:
        assert PROMETHEUS is not None
        tmp.mkdir(parents=True, exist_ok=True)
        text = (DOCS / "prometheus-healer.yml").read_text().replace("scrape_interval: 15s", "scrape_interval: 1s")
        text = re.sub(r"rule_files:\n(  - .*\n)+", "", text)
        text = re.sub(r"alerting:\n(  .*\n)+", "", text)
        # The documented targets, pointed at this machine: web-1/web-2 keep their host labels;
        # web-3 has none, so up{} takes its host from the address (here 127.0.0.1: the
        # documented reason to keep address and host setting equal, or to label the target).
        text = text.replace("web-1.example.com:9322", f"127.0.0.1:{fleet['web-1'].metrics_port}")
        text = text.replace("web-2.example.com:9322", f"127.0.0.1:{fleet['web-2'].metrics_port}")
        text = text.replace('"web-3:9322"', f'"127.0.0.1:{fleet["web-3"].metrics_port}"')
        config = tmp / "prometheus.yml"
        config.write_text(text)
        self.port = free_port()
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                body = json.loads(resp.read())
        except OSError:
            return []
        return list(body["data"]["result"])

    def close(self) -> None:
        terminate(self.proc)
        self.log.close()


def test_faults_on_two_hosts_are_fixed_by_their_own_healer_only(fleet: dict[str, FleetHost], tmp_path: Path) -> None:
    am = Alertmanager(tmp_path / "am", broadcast_route_tree(tmp_path, fleet))
    try:
        starts = datetime.now(UTC) - timedelta(seconds=30)
        for host in ("web-1", "web-2"):
            am.post_alert({"alertname": "RedisDown", "host": host, "instance": f"{host}:9121"}, starts)
        for host in ("web-1", "web-2"):
            assert wait_for(lambda: has_fixed(fleet[host]), 20), fleet[host].tail()
        # web-3 was sent both alerts and refused both as not ours.
        web3 = fleet["web-3"]
        assert wait_for(lambda: sum(int(e.detail["count"]) for e in web3.store.audit(AuditKind.ALERT_NOT_OURS)) == 2)
    finally:
        am.close()

    assert fleet["web-1"].fixed.exists() and fleet["web-2"].fixed.exists()
    assert not fleet["web-3"].fixed.exists()
    for host in ("web-1", "web-2"):
        h = fleet[host]
        assert [a.outcome in DONE for a in h.store.attempts()] == [True], f"{host} fixed only its own fault"
        (incident,) = h.store.incidents()
        assert incident.message == f"RedisDown on {host}:9121" and incident.sources == ("alertmanager",)
        errors = h.cli("errors").stdout
        assert "redis_down_alert" in errors, errors
        # Each host's healer saw the other's alert and left it alone.
        other = "web-2" if host == "web-1" else "web-1"
        (row,) = h.store.audit(AuditKind.ALERT_NOT_OURS)
        assert row.detail["alerts"] == [{"alertname": "RedisDown", "status": "firing", "host": f"host={other}"}]
    assert fleet["web-3"].store.incidents() == [] and fleet["web-3"].store.attempts() == []
    assert "redis_down_alert" not in fleet["web-3"].cli("errors").stdout

    # /metrics: every series names its host; the fix counts where it ran.
    for host, h in fleet.items():
        samples = h.scrape()
        assert {dict(labels).get("host") for _, labels in samples} == {host}
        fixed = sum(v for (name, labels), v in samples.items() if name == "healer_fix_attempts_total")
        assert fixed == (1 if host != "web-3" else 0), (host, fixed)


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing: apt-get install -y prometheus")
def test_prometheus_sees_the_fleet_per_host(fleet: dict[str, FleetHost], tmp_path: Path) -> None:
    """The documented scrape config, run by the real Prometheus: ``up`` and healer's series share ``host``."""
    prom = Prometheus(tmp_path / "prom", fleet)
    try:

        def by_host(promql: str) -> dict[str, str]:
            return {r["metric"].get("host", "?"): r["value"][1] for r in prom.query(promql)}

        up = {"web-1": "1", "web-2": "1", "127.0.0.1": "1"}
        assert wait_for(lambda: by_host('up{job="healer"}') == up, 30), by_host('up{job="healer"}')
        # healer's own series keep the name from its config (honor_labels), never exported_host.
        n = str(len(ALERT_PATTERNS["patterns"]))
        own = {"web-1": n, "web-2": n, "web-3": n}
        assert wait_for(lambda: by_host('healer_patterns_loaded{job="healer"}') == own, 10)
        assert prom.query('count({job="healer", exported_host!=""})') == []
        # A healer that stops is down under its host's name: what HealerDown pages about.
        fleet["web-1"].stop()
        assert wait_for(lambda: by_host('up{job="healer"} == 0') == {"web-1": "0"}, 30)
    finally:
        prom.close()


# -- one chat, many hosts ---------------------------------------------------------------------

GROUP = GROUP_ID


def bot_name(host: str) -> str:
    return f"healer_{host.replace('-', '')}_bot"


@pytest.fixture
def chat_fleet(tmp_path: Path) -> Iterator[tuple[FakeTelegramGroup, dict[str, FleetHost]]]:
    """Three hosts, each with its own bot (privacy mode off, as docs/FLEET.md says) in one group.

    web-1 gives the hint for a command that names no host; web-2 and web-3 leave it to web-1."""
    group = FakeTelegramGroup(GROUP)
    tokens = {h: f"{700 + i}:TOKEN-{h}" for i, h in enumerate(HOSTS, 1)}
    for h in HOSTS:
        group.add_bot(tokens[h], bot_name(h), privacy=False)
    group.start()
    hosts: dict[str, FleetHost] = {}
    for h in HOSTS:
        telegram = {
            "base_url": group.base_url,
            "allowed_chat_ids": [GROUP],
            "unaddressed": "hint" if h == "web-1" else "ignore",
            "digest_interval": 3600,
            "update_interval": 3600,
            "health_interval": 3600,
        }
        hosts[h] = FleetHost(tmp_path / "hosts", h, bot_token=tokens[h], telegram=telegram)
    try:
        for fh in hosts.values():
            fh.start()
        polling = lambda: all("getUpdates" in group.bot(bot_name(h)).calls for h in HOSTS)  # noqa: E731
        group.wait_for(polling, "every host's bot to poll")
        yield group, hosts
    finally:
        for fh in hosts.values():
            fh.stop()
        group.write_transcript(tmp_path / "chat-transcript.txt")
        group.stop()


def approval_of(group: FakeTelegramGroup, host: str) -> dict[str, Any]:
    return group.wait_message(bot_name(host), "Approval needed")


def test_one_chat_many_hosts(chat_fleet: tuple[FakeTelegramGroup, dict[str, FleetHost]], tmp_path: Path) -> None:
    group, fleet = chat_fleet
    b1, b2, b3 = (bot_name(h) for h in HOSTS)
    am = Alertmanager(tmp_path / "am", broadcast_route_tree(tmp_path, fleet))
    try:
        starts = datetime.now(UTC) - timedelta(seconds=30)
        # Faults on web-1 and web-2: each fixed by its own healer, each said by its own bot.
        for host in ("web-1", "web-2"):
            am.post_alert({"alertname": "RedisDown", "host": host, "instance": f"{host}:9121"}, starts)
        for host in ("web-1", "web-2"):
            assert wait_for(lambda: has_fixed(fleet[host]), 20), fleet[host].tail()
            new = group.wait_message(bot_name(host), "New incident")
            assert new["text"].startswith(f"[{host}] 🔴 New incident #1 [P1 high] redis_down_alert"), new["text"]
        assert not fleet["web-3"].fixed.exists()

        # Approvals: the same decision number on two hosts, each button acting on its own host only.
        for host in ("web-1", "web-2"):
            am.post_alert({"alertname": "DiskFull", "host": host, "instance": f"{host}:9100"}, starts)
        ask1, ask2 = approval_of(group, "web-1"), approval_of(group, "web-2")
        assert ask1["text"].startswith("[web-1] 🟡 Approval needed") and ask2["text"].startswith("[web-2] 🟡")
        data = [m["reply_markup"]["inline_keyboard"][0][0]["callback_data"] for m in (ask1, ask2)]
        assert data[0] == data[1], data  # "ap:2" on both: the data alone cannot tell the hosts apart
    finally:
        am.close()

    group.press(ask1)  # Approve, under web-1's message: Telegram tells only web-1's bot
    assert wait_for(lambda: fleet["web-1"].approved.exists(), 20), fleet["web-1"].tail()
    group.wait_for(lambda: "Approved by @ops" in group.messages[ask1["message_id"]]["text"], "web-1's edit")
    assert not fleet["web-2"].approved.exists()
    # web-1's message pressed, and the press handed to web-2's bot: refused, nothing runs on web-2.
    group.forge_press(b2, ask1)
    group.wait_for(lambda: "belongs to another host" in group.transcript(), "web-2 to refuse the button")
    assert not fleet["web-2"].approved.exists()
    assert "Approved" not in group.messages[ask2["message_id"]]["text"]
    group.press(ask2)  # web-2's own button
    assert wait_for(lambda: fleet["web-2"].approved.exists(), 20), fleet["web-2"].tail()
    assert not fleet["web-3"].approved.exists() and not fleet["web-3"].fixed.exists()

    # Commands addressed to one host, to all, and to nobody.
    mark = group.mark()
    group.say(f"/health@{b2}")
    assert group.wait_message(b2, "Host health", after=mark)["text"].startswith("[web-2] Host health")
    group.say("health check web-3")
    assert group.wait_message(b3, "Host health", after=mark)["text"].startswith("[web-3] Host health")
    group.say("show errors on all")
    for host in HOSTS:
        errors = group.wait_message(bot_name(host), "Errors in the last 1h", after=mark)["text"]
        assert errors.startswith(f"[{host}] ")
        assert ("redis_down_alert" in errors) == (host != "web-3"), errors
    group.say("/health")  # names nobody: web-1 says how to address a host, once
    hint = group.wait_message(b1, "say which host you mean", after=mark)["text"]
    assert hint.startswith("[web-1] ") and f"/health@{b1}" in hint, hint
    group.say("health")
    group.say("looking at it now")  # people talking: no healer answers
    group.say("fix errors on all")
    for host in HOSTS:  # each runs its own fixes; all its incidents were fixed above
        group.wait_message(bot_name(host), "Nothing to fix", after=mark)
    group.say("status all hosts")  # the last command: once all three answer it, earlier ones are done
    for host in HOSTS:
        assert group.wait_message(bot_name(host), "Circuit breaker", after=mark)["text"].startswith(f"[{host}] Status")

    def after(host: str, needle: str) -> int:
        return sum(1 for m in group.sent_by(bot_name(host)) if m["message_id"] > mark and needle in m["text"])

    assert [after(h, "Host health") for h in HOSTS] == [0, 1, 1]
    assert [after(h, "say which host you mean") for h in HOSTS] == [1, 0, 0]
    assert [after(h, "Errors in the last 1h") for h in HOSTS] == [1, 1, 1]
    assert [after(h, "No pattern matches") for h in HOSTS] == [0, 0, 0]
    assert [after(h, "Nothing to fix") for h in HOSTS] == [1, 1, 1]
    # Every message in the chat starts with its host, and each host's only by its own bot.
    for host in HOSTS:
        for m in group.sent_by(bot_name(host)):
            assert m["text"].startswith(f"[{host}] "), m["text"]
    print(group.transcript())
