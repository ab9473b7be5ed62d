"""The file tailer as a :class:`~healer.sources.base.Source`.

:class:`~healer.sources.tail.FileTailer` is torture-tested and stays as it
is: it calls a *synchronous* sink from its own poll thread, in file order, and
offers a chunk again when the sink raises. This adapter bridges that sink to
the daemon's async one: the poll thread waits for the loop to commit the
chunk (``run_coroutine_threadsafe(...).result()``), so the offset still moves
only after the chunk's transaction, and a failed commit re-raises in the poll
thread exactly as before.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from healer.core.batch import Chunk
from healer.rules.assemble import Limits
from healer.settings.schema import SourcesSettings
from healer.sources.base import Checkpoints, Sink, SourceContext
from healer.sources.tail import FileSpec, FileTailer

log = structlog.get_logger("healer.sources.filesource")


@dataclass(frozen=True, slots=True)
class FilesSpec:
    """The settings the tailer reads: a change to any of them restarts it, journald keys do not."""

    files: tuple[tuple[str, str], ...]
    max_line_bytes: int
    max_catchup_age: float
    multiline: Limits | None = None
    flush_after: float = 1.0

    @classmethod
    def of(cls, s: SourcesSettings) -> FilesSpec:
        files = tuple((f.path, f.service) for f in s.files)
        ml = s.multiline
        return cls(files, s.max_line_bytes, s.max_catchup_age, Limits.of(ml), ml.flush_after)


class FileSource:
    name = "files"
    checkpoint_key = "offsets"

    def __init__(self, spec: FilesSpec, ctx: SourceContext) -> None:
        self.spec = spec
        self._checkpoints: Checkpoints = ctx.checkpoints
        self._clock = ctx.clock
        self.tailer: FileTailer | None = None

    async def start(self, sink: Sink) -> None:
        if self.tailer is not None:
            return
        loop = asyncio.get_running_loop()

        def deliver(chunk: Chunk) -> None:
            # On the tailer's poll thread; raising makes the tailer offer the chunk again.
            async def commit() -> None:
                await sink(chunk)

            asyncio.run_coroutine_threadsafe(commit(), loop).result()

        # Offsets are read now, not at construction: on a reload the old tailer has just
        # stopped, and only what its last committed chunk stored is where to resume.
        offsets = self._checkpoints.offsets()
        s = self.spec
        self.tailer = FileTailer(
            [FileSpec(path, service) for path, service in s.files],
            offsets,
            deliver,
            max_line_bytes=s.max_line_bytes,
            max_catchup_age=s.max_catchup_age,
            clock=self._clock.now,
            monotonic=self._clock.monotonic,
            multiline=s.multiline,
            flush_after=s.flush_after,
        )
        self.tailer.start()
        # problems() takes the tailer's lock, which its poll thread holds while it waits for the
        # loop to commit a chunk: asked on the loop, that is a deadlock (seen in the torture suite).
        for problem in await asyncio.to_thread(self.tailer.problems):
            log.warning("source_problem", problem=problem)

    async def stop(self) -> None:
        tailer, self.tailer = self.tailer, None
        if tailer is not None:
            # stop() joins the poll thread, which may be waiting for the loop: never block the loop on it.
            await asyncio.to_thread(tailer.stop)


def from_settings(settings: SourcesSettings, ctx: SourceContext) -> list[FileSource]:
    return [FileSource(FilesSpec.of(settings), ctx)] if settings.files else []
