"""The CLI says what the bot says: the same store, asked through ``healer <command>`` and through Telegram.

The bot runs in-process with the real PTB client against the fake Bot API;
the CLI runs as a subprocess on the same state directory. Each answer is
compared as a person reads it (HTML entities decoded), with only the
seconds of "…s ago" allowed to differ (the two ask a few seconds apart).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from support.bot_rig import Rig, plain, running_bot

FIXABLE = {
    "id": "agree-fix",
    "severity": "high",
    "regex": r"FIXME failure (?P<what>\w+)",
    "remediation": [{"action": "command", "params": {"command": "ok"}}],
    "approval": "auto",
    "cooldown": 0,
    "examples": ["FIXME failure now"],
}
ASK = {**FIXABLE, "id": "agree-ask", "regex": r"ASKME failure (?P<what>\w+)", "approval": "ask",
       "examples": ["ASKME failure now"]}  # fmt: skip
NOTIFY = {"id": "agree-notify", "severity": "medium", "regex": r"NOTE failure (?P<what>\w+)", "approval": "never",
          "examples": ["NOTE failure now"]}  # fmt: skip


def cli(rig: Rig, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "healer.cli", "-c", str(rig.config), *args],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout.rstrip("\n")


def same(text: str) -> str:
    return re.sub(r"\b\d+s ago\b", "Ns ago", plain(text))


async def test_errors_history_explain_status_agree(tmp_path: Path) -> None:
    async with running_bot(tmp_path, [FIXABLE, ASK, NOTIFY]) as rig:
        await rig.ingest(
            "NOTE failure disk <b>1</b>", "NOTE failure disk <b>1</b>", "FIXME failure net", "ASKME failure db"
        )
        await rig.wait(lambda: [t for t in rig.fake.texts() if "Approval needed" in t], "the approval request")

        errors_bot = await rig.ask("/errors 1h", "Errors in the last")
        errors_cli = cli(rig, "errors", "--since", "1h")
        assert "4 events, 3 incidents, 2 fixable automatically" in errors_cli
        assert "agree-notify: NOTE failure disk <b>1</b>" in errors_cli  # as the log said it
        assert same(errors_bot) == same(errors_cli)

        history_bot = await rig.ask("history", "Fix attempts")
        history_cli = cli(rig, "history")
        assert "Fix attempts: 1 total" in history_cli and "command: verifying" in history_cli
        assert same(history_bot) == same(history_cli)

        explain_bot = await rig.ask("explain 1", "Incident #1")
        explain_cli = cli(rig, "explain", "1")
        assert "seen 2× from file" in explain_cli and "notify (notify_only) ×2" in explain_cli
        assert same(explain_bot) == same(explain_cli)

        status_bot = await rig.ask("status", "Kill switch")
        status_cli = cli(rig, "status", "--offline")  # the rig is a bot without a daemon: no control socket
        assert status_cli.endswith("(--offline: read from the config file and the store, not from the running daemon)")
        status_cli = status_cli.rsplit("\n", 1)[0]
        assert "open incidents: 3; waiting for approval: 1; fixes running: 1" in status_cli
        bot_lines = plain(status_bot).splitlines()
        assert bot_lines[-1].startswith("Telegram: ")  # the one line only the bot can know
        assert bot_lines[:-1] == status_cli.splitlines()


async def test_a_blocked_approval_reads_the_same_from_the_cli(tmp_path: Path) -> None:
    """``healer approve`` on a fix the budget blocks says what the button says, and exits 1."""
    async with running_bot(tmp_path, [FIXABLE, ASK], engine={"fix_budget_per_hour": 1}) as rig:
        await rig.ingest("ASKME failure db")
        call = await rig.wait(
            lambda: next((c for c in rig.fake.sent() if "Approval needed" in str(c.params.get("text"))), None),
            "the approval request",
        )
        decision = call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(":")[1]
        await rig.ingest("FIXME failure net")  # the hour's one fix
        argv = [sys.executable, "-m", "healer.cli", "-c", str(rig.config), "approve", decision, "--offline"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, r.stderr
        assert r.stdout.strip() == (
            f"decision #{decision}: Approved by cli (offline), but not run: budget — 1 fixes in the last hour; "
            "it will ask again the next time the error fires once the hourly fix budget allows."
        )
        assert "Fix attempts: 1 total" in cli(rig, "history")
