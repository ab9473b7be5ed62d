"""Several healer daemons on one machine, each a host of a fleet: own config, state, host name and ports.

Each host's fault is an Alertmanager alert (``RedisDown``) whose fix is the
harmless ``command`` action touching ``<host dir>/fixed``: a file on disk is
what an operator would look at, and it says which healer ran the fix.
``DiskFull`` is the same with ``approval: ask``: its fix (touching
``<host dir>/approved``) runs only after someone presses Approve in the chat.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from support.alertmanager import free_port
from support.daemon import Daemon, base_config

HOST_LABELS = ["host", "hostname", "instance"]

ALERT_PATTERNS = {
    "patterns": [
        {
            "id": "redis_down_alert",
            "severity": "high",
            "regex": r"RedisDown",
            "sources": ["alertmanager"],
            "fields": {"alertname": "RedisDown"},
            "group_by": [],
            "remediation": [{"action": "command", "params": {"command": "fix-redis"}}],
            "threshold": 1,
            "cooldown": 0,
            "max_attempts": 5,
            "approval": "auto",
            "examples": ["RedisDown on web-1:9121"],
        },
        {
            "id": "disk_full_alert",
            "severity": "high",
            "regex": r"DiskFull",
            "sources": ["alertmanager"],
            "fields": {"alertname": "DiskFull"},
            "group_by": [],
            "remediation": [{"action": "command", "params": {"command": "fix-disk"}}],
            "threshold": 1,
            "cooldown": 0,
            "max_attempts": 5,
            "approval": "ask",
            "examples": ["DiskFull on web-1:9100"],
        },
    ]
}


def token(host: str) -> str:
    return f"am-token-{host}"


class FleetHost(Daemon):
    """One host's healer: ``webhook_port`` takes Alertmanager, ``metrics_port`` serves /metrics."""

    def __init__(self, root: Path, host: str, bot_token: str | None = None, **over: Any) -> None:
        tmp = root / host
        tmp.mkdir(parents=True)
        self.host = host
        self.webhook_port = free_port()
        self.metrics_port = free_port()
        self.fixed = tmp / "fixed"
        self.approved = tmp / "approved"
        cfg = base_config(
            tmp,
            host=host,
            webhooks={
                "enabled": True,
                "port": self.webhook_port,
                "alertmanager": {"host_labels": HOST_LABELS},
            },
            metrics={"enabled": True, "port": self.metrics_port},
            actions={
                "command": {
                    "commands": {
                        "fix-redis": {"argv": ["touch", str(self.fixed)]},
                        "fix-disk": {"argv": ["touch", str(self.approved)]},
                    }
                }
            },
        )
        cfg.update(over)
        super().__init__(tmp, cfg, ALERT_PATTERNS)
        self.env["HEALER_ALERTMANAGER_TOKEN"] = token(host)
        if bot_token is not None:  # its own bot: one token per host, or getUpdates answers 409 Conflict
            self.env["HEALER_TELEGRAM_TOKEN"] = bot_token

    @property
    def webhook_base(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}"

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """/metrics as Prometheus reads it: (name, labels) → value."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
        }
