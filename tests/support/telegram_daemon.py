"""The daemon with Telegram on: ``healer run`` as a real subprocess talking to the fake Bot API.

Built on :class:`support.daemon.DaemonProcess` (the one daemon harness); adds the config with
a bot section, the test patterns, and the chat-side helpers (type a message, wait for a reply).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from support.daemon import DaemonProcess, StoreView
from support.fake_telegram import FakeTelegram

CHAT = 111
STRANGER = 666

# Waits for a human: also the in-process bot tests' pattern.
ASK: dict[str, Any] = {
    "id": "tg-ask",
    "description": "Fixable, but only after a human says so.",
    "severity": "high",
    "regex": r"ASKME failure (?P<what>\w+)",
    "remediation": [{"action": "command", "params": {"command": "ok"}}],
    "approval": "ask",
    "cooldown": 0,
    "examples": ["ASKME failure now"],
}

PATTERNS = {
    "patterns": [
        {
            "id": "tg-alpha",
            "description": "Alpha broke (notify only).",
            "severity": "high",
            "regex": r"ALPHA failure (?P<what>\w+)",
            "approval": "never",
            "examples": ["ALPHA failure now"],
        },
        {
            "id": "tg-beta",
            "description": "Beta broke (medium, digest).",
            "severity": "medium",
            "regex": r"BETA failure (?P<what>\w+)",
            "approval": "never",
            "examples": ["BETA failure now"],
        },
        {
            "id": "tg-fixme",
            "description": "Fixable by a harmless command.",
            "severity": "high",
            "regex": r"FIXME failure (?P<what>\w+)",
            "remediation": [{"action": "command", "params": {"command": "ok"}}],
            "approval": "auto",
            "cooldown": 0,
            "examples": ["FIXME failure now"],
        },
        ASK,
    ]
}


class Healer(DaemonProcess):
    """One daemon process plus its fake Bot API, log file and store (read through :class:`StoreView`)."""

    def __init__(
        self,
        tmp: Path,
        fake: FakeTelegram,
        engine: dict[str, Any] | None = None,
        health: dict[str, Any] | None = None,
        telegram: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        *,
        extra: dict[str, Any] | None = None,
        patterns: list[dict[str, Any]] | None = None,
    ) -> None:
        """``extra``: top-level config keys set over the defaults; ``patterns``: added to the test patterns."""
        self.tmp = tmp
        self.fake = fake
        self.log_file = tmp / "app.log"
        self.log_file.write_text("")
        (tmp / "patterns").mkdir()
        listed = {"patterns": [*PATTERNS["patterns"], *(patterns or [])]}
        (tmp / "patterns" / "test.yaml").write_text(yaml.safe_dump(listed))
        cfg: dict[str, Any] = {
            "state_dir": str(tmp / "state"),
            "patterns_dirs": [str(tmp / "patterns")],
            "log_level": "info",
            "sources": {"files": [{"path": str(self.log_file), "service": "app"}]},
            "engine": {"verify_window": 0.5, **(engine or {})},
            "telegram": {
                "base_url": fake.base_url,
                "allowed_chat_ids": [CHAT],
                "digest_interval": 1,
                "update_interval": 1,
                "health_interval": 1,
                **(telegram or {}),
            },
            "actions": {"command": {"commands": {"ok": {"argv": ["true"]}}}},
        }
        if health:
            cfg["health"] = health
        cfg.update(extra or {})
        config = tmp / "healer.yaml"
        config.write_text(yaml.safe_dump(cfg))
        self.store = StoreView(tmp / "state" / "healer.db")
        super().__init__(config, tmp / "daemon.log", {"HEALER_TELEGRAM_TOKEN": fake.token, **(env or {})}, cwd=tmp,
                         new_session=False)  # fmt: skip
        self.start()

    def daemon_log(self) -> str:
        return self.log_text()

    def append(self, *lines: str) -> None:
        with self.log_file.open("a") as f:
            f.write("".join(line + "\n" for line in lines))

    def wait(self, pred: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.alive(), f"daemon died:\n{self.daemon_log()[-3000:]}"
            got = pred()
            if got:
                return got
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}\nsent: {self.fake.texts()!r}\n{self.daemon_log()[-3000:]}")

    def connected(self) -> None:
        # Generous: a loaded CI machine may take long to start a Python daemon; polling is what is checked.
        self.wait(lambda: self.fake.calls_of("getUpdates"), "the bot to poll", timeout=60.0)

    def ask(self, text: str, needle: str, chat: int = CHAT, timeout: float = 10.0) -> str:
        """Type ``text`` in ``chat``; return the first later reply containing ``needle``."""
        before = len(self.fake.sent(chat))
        self.fake.send_text(chat, text)
        call = self.fake.wait_text(needle, chat, timeout=timeout, after=before)
        return str(call.params["text"])

    def history(self) -> str:
        """``healer history``, as an operator runs it beside the daemon."""
        res = self.cli("history")
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout

    def attempts(self) -> int:
        """How many fix attempts ``healer history`` reports."""
        first = self.history().splitlines()[0]
        assert first.startswith("Fix attempts: "), first
        return int(first.split()[2])


AUTO: dict[str, Any] = {
    **ASK,
    "id": "tg-auto",
    "regex": r"AUTO failure (?P<what>\w+)",
    "approval": "auto",
    "examples": ["AUTO failure x"],
}
FLOOD: dict[str, Any] = {
    "id": "tg-flood",
    "description": "Notify only, and every line is a different incident.",
    "severity": "high",
    "regex": r"FLOOD failure (?P<what>[a-z]+)",
    "approval": "never",
    "examples": ["FLOOD failure now"],
}


def words(n: int) -> list[str]:
    """``n`` distinct letter-only words (digits and hex would be masked into one fingerprint)."""
    letters = "ghijklmnopqrstuvwxyz"
    return ["".join(w) for w in itertools.islice(itertools.product(letters, repeat=4), n)]
