"""healer as a systemd service would run it: sd_notify, SIGHUP, SIGTERM drain, /metrics.

A real `healer run` subprocess; the test owns the NOTIFY_SOCKET datagram socket
and scrapes /metrics with prometheus_client's own parser.
"""

from __future__ import annotations

import signal
import socket
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from support.daemon import Daemon, append, base_config, wait_for
from support.notify_socket import NotifySocket

from healer.core.enums import AuditKind, Outcome


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sd_notify_ready_watchdog_reload_stopping(tmp_path: Path) -> None:
    with NotifySocket(tmp_path) as ns:
        d = Daemon(tmp_path, base_config(tmp_path))
        d.start(env={"NOTIFY_SOCKET": ns.address, "WATCHDOG_USEC": "400000"})
        ready = ns.wait_for("READY", "1")
        assert "patterns" in ready.get("STATUS", "") and "kill switch off" in ready["STATUS"]
        t0 = time.monotonic()
        ns.wait_for("WATCHDOG", "1")
        ns.wait_for("WATCHDOG", "1")
        assert time.monotonic() - t0 < 2.0  # pinged every 0.2 s, from the loop itself
        d.send(signal.SIGHUP)
        reloading = ns.wait_for("RELOADING", "1")
        assert "MONOTONIC_USEC" in reloading
        ns.wait_for("READY", "1")
        assert d.stop(signal.SIGTERM) == 0
        ns.wait_for("STOPPING", "1")
    assert d.store.audit(AuditKind.DAEMON_STOPPED)


def test_sigterm_during_long_fix_never_leaves_it_running(tmp_path: Path) -> None:
    cfg = base_config(tmp_path)
    cfg["actions"] = {"command": {"commands": {"ok": {"argv": ["sleep", "3"]}}}}
    cfg["engine"] = {"verify_window": 30, "drain_timeout": 10}
    d = Daemon(tmp_path, cfg).start()
    append(tmp_path / "logs" / "app.log", "ERROR BOOM slow")
    assert wait_for(lambda: [a for a in d.store.attempts() if a.outcome is Outcome.RUNNING], 10)
    t0 = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 15
    outcomes = [a.outcome for a in d.store.attempts()]
    assert outcomes and Outcome.RUNNING not in outcomes, outcomes
    assert "daemon_stopped" in d.log_text()


def _sample(text: str, name: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def test_metrics_move_when_lines_match_and_fixes_run(tmp_path: Path) -> None:
    port = free_port()
    cfg = base_config(tmp_path)
    cfg["metrics"] = {"enabled": True, "port": port}
    d = Daemon(tmp_path, cfg).start()
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def scrape() -> str:
            with urllib.request.urlopen(url, timeout=5) as r:
                return str(r.read().decode())

        before = scrape()
        assert _sample(before, "healer_matches_total", pattern="boom") == 0
        assert _sample(before, "healer_patterns_loaded") == 2
        append(tmp_path / "logs" / "app.log", "ERROR BOOM disk", "INFO fine")
        assert wait_for(
            lambda: _sample(scrape(), "healer_fix_attempts_total", action="command", outcome="verifying"), 10
        )
        after = scrape()
        assert _sample(after, "healer_matches_total", pattern="boom") == 1
        assert _sample(after, "healer_lines_read_total", source="file") == 2
        assert _sample(after, "healer_decisions_total", verdict="act", reason="ok") == 1
        assert _sample(after, "healer_kill_switch") == 0
        # Bound to loopback only.
        with socket.socket() as s:
            s.settimeout(1)
            ip = socket.gethostbyname(socket.gethostname())
            if not ip.startswith("127."):
                assert s.connect_ex((ip, port)) != 0
    finally:
        d.stop()
