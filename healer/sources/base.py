"""What every source is to the daemon: something started with a sink and stopped.

fail2ban calls this a backend. A source turns the outside world (a log file,
the journal, an HTTP POST) into :data:`~healer.core.batch.Batch` values and
awaits ``sink(batch)`` for each; the sink returns once the batch and its
checkpoint (file offset or journal cursor) are committed, and raises when they
are not, so the source offers the batch again (or answers 503) instead of
losing it. That one contract is why the daemon can start, stop and reload
every source the same way, and why a new source is one module here plus its
settings, registered in :mod:`healer.sources.registry`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from healer.core.batch import Batch, Offset
from healer.core.clock import Clock
from healer.core.enums import AuditKind

Sink = Callable[[Batch], Awaitable[None]]
"""Commit one batch (events and checkpoint in one transaction); raise to have it offered again."""

Audit = Callable[[AuditKind, Mapping[str, object]], None]
"""Record a security-relevant event (``kind``, details) in the store's audit trail."""


class Checkpoints(Protocol):
    """Where a source resumes from: what the store committed with the last batch."""

    def offsets(self) -> Mapping[str, Offset]: ...

    def cursor(self, key: str) -> str | None: ...


class Source(Protocol):
    """One input of the daemon.

    ``spec`` is the settings value the source was built from; a reload
    restarts the source exactly when its spec changed. ``checkpoint_key``
    names what the store keeps for it (None: the source keeps nothing, as the
    webhook receiver, whose senders retry).
    """

    @property
    def name(self) -> str: ...

    @property
    def checkpoint_key(self) -> str | None: ...

    @property
    def spec(self) -> object: ...

    async def start(self, sink: Sink) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a source factory may use besides its settings."""

    checkpoints: Checkpoints
    clock: Clock
    audit: Audit | None = None
