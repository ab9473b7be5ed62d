"""The control socket's requests and replies, shared by the daemon's server and the CLI's client.

HTTP over a Unix socket (aiohttp on both ends, already a dependency: no
hand-written framing, and ``curl --unix-socket`` can talk to it):
``POST /v1/<verb>`` with ``{"target": N, "actor": "..."}``, answered with
``{"text": ..., "exit": ..., "pid": ...}``. The daemon renders the text with
the same ``healer.app.reports`` functions the CLI uses offline, so the two
paths print the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

SOCKET_NAME = "control.sock"
SOCKET_MODE = 0o600
MAX_SUN_PATH = 107  # sockaddr_un.sun_path is 108 bytes with the NUL


class Verb(StrEnum):
    STATUS = "status"
    HEALTH = "health"
    APPROVE = "approve"
    REJECT = "reject"
    FIX = "fix"
    UNDO = "undo"  # target: a fix attempt id; served once the daemon has an undo use case


@dataclass(frozen=True, slots=True)
class ControlRequest:
    verb: Verb
    target: int = 0  # a decision id (approve/reject) or an attempt id (undo)
    actor: str = "cli"

    def body(self) -> dict[str, Any]:
        return {"target": self.target, "actor": self.actor}


@dataclass(frozen=True, slots=True)
class ControlReply:
    text: str
    exit: int
    pid: int

    @classmethod
    def of(cls, raw: Any) -> ControlReply:
        if not isinstance(raw, dict):
            raise ValueError(f"not a control reply: {raw!r}")
        return cls(str(raw.get("text", "")), int(raw.get("exit", 1)), int(raw.get("pid", 0)))


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME
