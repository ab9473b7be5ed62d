"""``healer replay``: a log through the daemon's engine in dry run, and what it would have done per incident.

The engine is the caller's, in dry run: every guardrail applies and each fix
that would start has its action's own check run (the jobs go to
``run_jobs``, which rehearse them: ``engine.fixes.Fixer.rehearse``). Lines are
cut into blocks as the tailer cuts them. With ``timestamps``, the clock
(``set_clock``) is set to each event's own leading time (``core.stamps``, the
tailer's date detection) before it is ingested, never backwards, so windows,
cooldowns and the budget run on the log's time.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from healer.app.lines import event_blocks, timed_segments
from healer.app.ports import RunJobs
from healer.app.results import ReplayDecision, ReplayIncident, ReplayReport, Would
from healer.app.ruleset import Ruleset
from healer.core.clock import FakeClock
from healer.core.enums import Reason, SourceName, Verdict
from healer.engine.engine import Engine
from healer.rules.assemble import Limits
from healer.store import reads
from healer.store.db import Store

_REHEARSED_WOULD = {
    Reason.DRY_RUN: Would.RUN,
    Reason.DRY_RUN_ASK: Would.ASK,
    Reason.DRY_RUN_REFUSED: Would.REFUSE,
    Reason.SHADOW: Would.SHADOW,
}
_VERDICT_WOULD = {
    Verdict.ACT: Would.RUN,
    Verdict.ASK: Would.ASK,
    Verdict.NOTIFY: Would.NOTIFY,
    Verdict.ESCALATE: Would.ESCALATE,
    Verdict.SKIP: Would.SKIP,
}


def would_of(verdict: Verdict, reason: Reason) -> Would:
    return _REHEARSED_WOULD.get(reason) or _VERDICT_WOULD[verdict]


def replay_log(
    engine: Engine,
    run_jobs: RunJobs,
    fh: BinaryIO,
    service: str,
    origin: str,
    source: SourceName = SourceName.FILE,
    *,
    timestamps: bool = False,
    set_clock: Callable[[float], None] | None = None,
) -> ReplayReport:
    store, sources = engine.store, engine.settings.sources
    limits = Limits.of(sources.multiline)
    lines = matches = cut = base = undated = 0
    clock_at: float | None = None  # the log's time so far: the first line's, then only forward

    def feed(data: bytes, at: int) -> int:
        result = engine.ingest_buffer(data, service, origin, source, at)
        if result.jobs:
            run_jobs(result.jobs)
        return result.matched

    t0 = time.perf_counter()
    for block in event_blocks(fh, sources.max_line_bytes, limits):
        lines += block.lines
        cut += block.cut
        if not (timestamps and set_clock is not None):
            matches += feed(block.data, base)
            base += len(block.data)
            continue
        for seg in timed_segments(block.data, limits):
            if seg.at is not None and (clock_at is None or seg.at > clock_at):
                clock_at = seg.at
                set_clock(seg.at)
            undated += seg.undated
            matches += feed(block.data[seg.start : seg.end], base)
            base += seg.end - seg.start
    elapsed = time.perf_counter() - t0
    incidents = tuple(
        ReplayIncident(
            inc,
            store.last_decision(inc.id),
            tuple(
                ReplayDecision(would_of(d.verdict, d.reason), d.reason, d.count, d.ts, d.detail)
                for d in reads.incident_decisions(store, inc.id)
            ),
        )
        for inc in store.incidents(limit=100_000)
    )
    return ReplayReport(lines, matches, cut, elapsed, incidents, timestamps, undated)


def replay_file(
    rules: Ruleset,
    fh: BinaryIO,
    state: str | None,
    service: str,
    origin: str,
    source: SourceName,
    timestamps: bool,
) -> ReplayReport:
    """The CLI's replay: a store of its own (``state`` to keep it), a fake clock, fix jobs rehearsed inline."""
    rules = replace(rules, settings=rules.settings.model_copy(update={"dry_run": True}))
    with tempfile.TemporaryDirectory(prefix="healer-replay-") as tmp:
        store = Store(Path(state or tmp) / "healer.db")
        clock = FakeClock(time.time())
        engine = Engine(rules.settings, rules.patterns, store, clock=clock)
        # The per-line objects of a batch (events, hits) are acyclic and freed by reference counting;
        # the cycle collector only rescans them over and over while a storm's batch is alive (~20 %
        # of a storm replay's time). Off for the replay of this one-shot command, back on after.
        gc.disable()
        try:
            return replay_log(
                engine,
                lambda jobs: [engine.run_job(j) for j in jobs],
                fh,
                service,
                origin,
                source,
                timestamps=timestamps,
                set_clock=clock.set,
            )
        finally:
            gc.enable()
            store.close()
