"""Helpers shared by the action tests: a context that records audit and checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from healer.core.clock import SystemClock
from healer.core.proc import Runner
from healer.remedy.base import ActionContext


class Recorder:
    def __init__(self) -> None:
        self.audit: list[tuple[str, dict[str, Any]]] = []
        self.checkpoints: list[dict[str, Any]] = []

    def on_audit(self, kind: str, data: Mapping[str, object]) -> None:
        self.audit.append((kind, dict(data)))

    def on_checkpoint(self, state: Mapping[str, object]) -> None:
        self.checkpoints.append(dict(state))


def make_ctx(
    settings: Any,
    params: Mapping[str, str],
    state_dir: Path,
    *,
    runner: Runner | None = None,
    recorder: Recorder | None = None,
    incident_id: int = 7,
    clock: Any = None,
) -> ActionContext:
    rec = recorder or Recorder()
    return ActionContext(
        incident_id=incident_id,
        attempt_id=1,
        pattern_id="test-pattern",
        params=dict(params),
        settings=settings,
        runner=runner or Runner(),
        state_dir=state_dir,
        clock=clock or SystemClock(),
        audit=rec.on_audit,
        checkpoint=rec.on_checkpoint,
    )
