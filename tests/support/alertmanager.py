"""A real Prometheus Alertmanager (Debian's ``prometheus-alertmanager``) on a free port.

Started with a config given as a mapping (JSON is YAML: no YAML writer
needed) or as the text of one of the route trees in docs/, alerts are posted
to its v2 API as Prometheus would, and it delivers to whatever webhook
receivers the config names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

AM_BIN = shutil.which("prometheus-alertmanager") or (
    "/usr/bin/prometheus-alertmanager" if os.access("/usr/bin/prometheus-alertmanager", os.X_OK) else None
)
AMTOOL = shutil.which("amtool")
needs_alertmanager = pytest.mark.skipif(
    AM_BIN is None,
    reason="prometheus-alertmanager missing: apt-get install -y prometheus-alertmanager "
    "(listed in .ci/apt-packages.txt)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fast(config_text: str) -> str:
    """A documented route tree with every wait cut to 1s, so a test does not sit out ``group_wait: 30s``."""
    return re.sub(r"(group_wait|group_interval):\s*\S+", r"\1: 1s", config_text)


class Alertmanager:
    def __init__(self, tmp: Path, config: Mapping[str, Any] | str) -> None:
        assert AM_BIN is not None
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = tmp / "alertmanager.yml"
        self.config.write_text(config if isinstance(config, str) else json.dumps(config))
        self.log_path = tmp / "alertmanager.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [
                AM_BIN,
                f"--config.file={self.config}",
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
                raise AssertionError("alertmanager did not start: " + self.log_path.read_text())
            time.sleep(0.1)

    def post_alert(self, labels: Mapping[str, str], starts: datetime, ends: datetime | None = None) -> None:
        alert: dict[str, object] = {
            "labels": dict(labels),
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
        terminate(self.proc)
        self.log.close()


def terminate(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after ``timeout``: a server we started must not outlive its test."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def webhook_receiver(name: str, url: str, credentials: str) -> dict[str, Any]:
    return {
        "name": name,
        "webhook_configs": [
            {"url": url, "send_resolved": True, "http_config": {"authorization": {"credentials": credentials}}}
        ],
    }
