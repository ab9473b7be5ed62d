"""One daemon in charge (issue 14 §4): the CLI through the control socket, the state lock.

Real ``healer run`` processes, the real python-telegram-bot client against the
fake Bot API, and the ``healer`` CLI as an operator runs it beside them.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.daemon import HEALER, Daemon, base_config
from support.fake_telegram import FakeTelegram
from support.telegram_daemon import CHAT, Healer

from healer.core.enums import AuditKind


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    f = FakeTelegram().start()
    try:
        yield f
    finally:
        f.stop()


def _approval(h: Healer) -> tuple[dict[str, Any], str]:
    call = h.fake.wait_text("Approval needed", CHAT, timeout=15)
    msg = dict(call.params["_result"])
    decision = msg["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(":")[1]
    return msg, decision


def test_cli_approves_through_the_running_daemon_and_the_message_loses_its_buttons(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    h = Healer(tmp_path, fake)
    try:
        h.wait(lambda: h.fake.calls_of("getUpdates"), "the bot to poll", timeout=60)
        h.append("ASKME failure db")
        msg, decision = _approval(h)
        res = h.cli("approve", decision)
        assert res.returncode == 0, res.stdout + res.stderr
        user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
        assert res.stdout.startswith(f"decision #{decision}: ✅ Approved by cli:{user}."), res.stdout
        assert "Fixes: 1 attempted, 1 succeeded" in res.stdout, res.stdout
        # The daemon ran it (its history has the attempt) and edited the chat's approval message.
        edits = h.wait(
            lambda: [c for c in fake.calls_of("editMessageText") if int(c.params["message_id"]) == msg["message_id"]],
            "the approval message to be edited",
        )
        last = edits[-1].params
        assert int(last["chat_id"]) == CHAT and "reply_markup" not in last, last
        assert "Approval needed" in last["text"] and f"Approved by cli:{user}" in last["text"], last["text"]
        assert "Fix attempts: 1 total" in h.history()
        again = h.cli("approve", decision)
        assert again.returncode == 1 and "Already decided." in again.stdout, again.stdout
    finally:
        h.stop()


def test_status_and_health_report_the_daemons_kill_switch_with_its_override(tmp_path: Path, fake: FakeTelegram) -> None:
    h = Healer(tmp_path, fake, env={"HEALER__KILL_SWITCH": "true"})
    try:
        h.wait(lambda: h.fake.calls_of("getUpdates"), "the bot to poll", timeout=60)
        plain_env = {k: v for k, v in h.env.items() if not k.startswith("HEALER__")}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*HEALER, "-c", str(h.config), *args], capture_output=True, text=True, timeout=60, env=plain_env
            )

        live = cli("status")
        assert live.returncode == 0, live.stderr
        assert "Kill switch: ON — no fixes run" in live.stdout, live.stdout
        assert f"(live from the running daemon, pid {h.proc.pid if h.proc else 0})" in live.stdout
        assert "kill_switch (set by HEALER__KILL_SWITCH from environment)" in live.stdout, live.stdout
        assert "\nTelegram: 0 queued, 0 dropped" in live.stdout, live.stdout
        health = cli("health")
        assert "\nKill switch: ON" in health.stdout, health.stdout
        assert "live from the running daemon" in health.stdout
        files = cli("status", "--offline")
        assert "Kill switch: off" in files.stdout, files.stdout
        assert files.stdout.rstrip().endswith(
            "(--offline: read from the config file and the store, not from the running daemon)"
        )
        sock = Path(tmp_path / "state" / "control.sock")
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    finally:
        h.stop()
    assert not (tmp_path / "state" / "control.sock").exists()  # a clean stop leaves no socket behind


def test_without_a_daemon_actions_say_so_and_offer_offline_reads_say_they_read_files(tmp_path: Path) -> None:
    d = Daemon(tmp_path, base_config(tmp_path))  # configured, never started
    state = tmp_path / "state"
    res = d.cli("approve", "1")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.splitlines() == [
        f"error: no healer daemon is running on state directory {state} (no control socket at {state}/control.sock).",
        f"To do it in this process instead, run: healer -c {d.config} approve 1 --offline",
        "(the fix then runs here, and Telegram is not told: an approval message keeps its buttons)",
    ]
    fix = d.cli("fix")
    assert fix.returncode == 2 and f"healer -c {d.config} fix --offline" in fix.stderr
    offline = d.cli("fix", "--offline")
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.strip() == "Nothing to fix: no open incident has an automatic fix."
    status = d.cli("status")
    assert status.returncode == 0 and "Kill switch: off" in status.stdout
    assert status.stdout.rstrip().splitlines()[-1] == (
        f"(no healer daemon is running on state directory {state} (no control socket at {state}/control.sock): "
        "read from the config file and the store instead; the kill switch is the file's)"
    )


def test_a_second_daemon_on_the_same_state_refuses_naming_the_first(tmp_path: Path) -> None:
    first = Daemon(tmp_path, base_config(tmp_path)).start()
    try:
        assert first.proc is not None
        second = subprocess.run(
            [*HEALER, "-c", str(first.config), "run"], capture_output=True, text=True, timeout=60, env=first.env
        )
        assert second.returncode == 2
        out = second.stdout + second.stderr
        assert f"another healer daemon (pid {first.proc.pid}) is running on state directory {tmp_path / 'state'}" in out
        assert first.alive()  # the first one is untouched and still answers
        assert f"pid {first.proc.pid}" in first.cli("status").stdout
        assert [e.detail["pid"] for e in first.store.audit(AuditKind.DAEMON_STARTED)] == [first.proc.pid]
    finally:
        first.stop()
    # The lock goes with its holder: the next daemon starts.
    again = Daemon(tmp_path, base_config(tmp_path))
    again.starts = first.starts
    again.start()
    try:
        assert again.alive() and os.path.exists(tmp_path / "state" / "healer.lock")
    finally:
        again.stop()
