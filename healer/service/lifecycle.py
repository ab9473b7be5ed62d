"""Start, stop and reload the daemon's sources, all through the one ``Source`` protocol."""

from __future__ import annotations

import contextlib

import structlog

from healer.core.batch import Offset
from healer.core.errors import HealerError
from healer.settings.schema import Settings
from healer.sources.base import Sink, Source, SourceContext
from healer.sources.registry import build_sources
from healer.store.db import Store

log = structlog.get_logger("healer.service.lifecycle")


class StoreCheckpoints:
    """What sources resume from, read from the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def offsets(self) -> dict[str, Offset]:
        return {
            r["path"]: Offset(r["path"], int(r["inode"]), int(r["dev"]), int(r["position"]), r["head_hash"])
            for r in self.store.offsets()
        }

    def cursor(self, key: str) -> str | None:
        return self.store.cursor(key)


class SourceSet:
    def __init__(self, ctx: SourceContext, sink: Sink) -> None:
        self.ctx = ctx
        self.sink = sink
        self.running: list[Source] = []

    async def start(self, settings: Settings) -> None:
        for src in build_sources(settings, self.ctx):
            await self._start(src)

    async def reload(self, settings: Settings) -> list[str]:
        """Restart exactly the sources whose settings changed; returns the names restarted, stopped or added."""
        wanted = build_sources(settings, self.ctx)
        keep_specs = [s.spec for s in wanted]
        touched: list[str] = []
        for src in list(self.running):
            if src.spec not in keep_specs:
                await self._stop(src)
                touched.append(src.name)
        running_specs = [s.spec for s in self.running]
        for src in wanted:
            if src.spec not in running_specs:
                await self._start(src)
                if src.name not in touched:
                    touched.append(src.name)
        return touched

    async def stop(self) -> None:
        for src in reversed(self.running):
            await self._stop(src)

    async def _start(self, src: Source) -> None:
        try:
            await src.start(self.sink)
        except (OSError, HealerError, ValueError, TypeError) as exc:  # each source is optional: the others go on
            log.error("source_unavailable", source=src.name, error=str(exc))
            return
        self.running.append(src)

    async def _stop(self, src: Source) -> None:
        with contextlib.suppress(ValueError):
            self.running.remove(src)
        try:
            await src.stop()
        except Exception as exc:  # stopping one source must not keep the others running
            log.warning("source_stop_failed", source=src.name, error=f"{type(exc).__name__}: {exc}")
