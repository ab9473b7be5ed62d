"""The daemon's threads: one ingest thread, a small fix pool, and the hops between them and the loop.

Ingestion runs on a single worker thread, which keeps "one sink caller, in
order" true for every source and keeps SQLite writes off the loop. Fixes run
on their own small pool, so a slow ``pip install`` never delays the next
line's decision. :meth:`Workers.ingest` is the one sink every source is
started with.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import structlog

from healer.core.batch import Batch, Chunk
from healer.core.enums import Outcome
from healer.core.jobs import IngestResult, Job
from healer.core.records import FixAttempt
from healer.engine.engine import Engine
from healer.service.metrics import Metrics

log = structlog.get_logger("healer.service.workers")

FIX_THREADS = 4
T = TypeVar("T")


FIX_WAIT = 120.0
"""Seconds "fix errors" or Approve waits for its fixes before answering "still running"."""


class Workers:
    """Owns the executors; ``on_verifying`` hears (on the loop) of each fix that entered its verify window."""

    def __init__(
        self,
        engine: Engine,
        loop: asyncio.AbstractEventLoop,
        *,
        metrics: Metrics | None = None,
        on_verifying: Callable[[FixAttempt], None] | None = None,
    ) -> None:
        self.engine = engine
        self.loop = loop
        self.metrics = metrics
        self.on_verifying = on_verifying
        self.ingest_pool = ThreadPoolExecutor(1, thread_name_prefix="healer-ingest")
        self.fix_pool = ThreadPoolExecutor(FIX_THREADS, thread_name_prefix="healer-fix")
        self.fixes: set[Future[FixAttempt | None]] = set()

    async def in_ingest(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn`` on the ingest thread: serialised with every store write the sources cause."""
        return await self.loop.run_in_executor(self.ingest_pool, fn, *args)

    async def ingest(self, batch: Batch) -> None:
        """The sink of every source: commit the batch with its checkpoint, then launch its jobs."""
        engine = self.engine
        if isinstance(batch, Chunk):
            result = await self.in_ingest(engine.ingest_chunk, batch)
        else:
            if self.metrics is not None:
                for ev in batch.events:
                    self.metrics.events.labels(source=ev.source.value).inc()
            cursor = None if batch.cursor is None else (batch.cursor.key, batch.cursor.value)
            result = await self.in_ingest(engine.ingest_events, list(batch.events), cursor)
        self.dispatch(result)

    def dispatch(self, result: IngestResult) -> None:
        """From any thread: start the result's jobs on the fix pool."""
        if result.jobs:
            self.loop.call_soon_threadsafe(self.launch_jobs, list(result.jobs))

    def launch_jobs(self, jobs: Sequence[Job]) -> list[Future[FixAttempt | None]]:
        futs = []
        for job in jobs:
            fut = self.fix_pool.submit(self._run_job, job)
            self.fixes.add(fut)
            fut.add_done_callback(self.fixes.discard)
            futs.append(fut)
        return futs

    def run_and_wait(self, jobs: Sequence[Job]) -> list[FixAttempt | None]:
        """Run fixes on the fix pool and wait for them, bounded: what "fix errors" and Approve need.

        Called from a worker thread by the use-case facade, never on the loop.
        A fix still running after FIX_WAIT is reported as None ("still running").
        """
        futs = self.launch_jobs(jobs)
        done, _ = concurrent.futures.wait(futs, timeout=FIX_WAIT)
        return [f.result() if f in done and f.exception() is None else None for f in futs]

    def _run_job(self, job: Job) -> FixAttempt | None:
        try:
            attempt = self.engine.run_job(job)
        except Exception as exc:  # an action bug must not kill the fix thread silently
            log.exception("fix_crashed", error=str(exc))
            return None
        listener = self.on_verifying
        if attempt is not None and attempt.outcome is Outcome.VERIFYING and listener and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(listener, attempt)
        return attempt

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` for running fixes; returns how many are still running."""
        pending = list(self.fixes)
        if not pending:
            return 0
        _done, not_done = await asyncio.wait([asyncio.wrap_future(f) for f in pending], timeout=timeout)
        return len(not_done)

    def shutdown(self) -> None:
        self.ingest_pool.shutdown(wait=True)
        self.fix_pool.shutdown(wait=False, cancel_futures=True)
