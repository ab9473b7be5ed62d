"""The tailer hands out whole multi-line events, exactly once, across reads, restarts and rotation.

Real files and a real (redis-py) traceback; the clock that times the flush is
injected, so nothing sleeps. What is checked is what the engine would get: the
chunks' bytes (every byte of the file once, in order) and that the traceback
arrives in one chunk, so the matcher sees it as one event.
"""

from __future__ import annotations

import os
from pathlib import Path

from support.realerrors import python_stderr

from healer.core.batch import Chunk, Offset
from healer.core.clock import FakeClock
from healer.rules.assemble import Limits
from healer.sources.tail import FileSpec, FileTailer

BEFORE = b"2026-12-02 07:00:00,001 ERROR app: task failed\n"
AFTER = b"2026-12-02 07:00:02,002 INFO app: next request\n"


def traceback_bytes() -> bytes:
    return python_stderr(
        "def cause():\n    raise ConnectionRefusedError(111, 'Connection refused')\n"
        "try:\n    cause()\nexcept OSError as exc:\n    raise RuntimeError('cache unreachable') from exc\n"
    ).encode()


class Sink:
    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.offsets: dict[str, Offset] = {}

    def __call__(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        self.offsets[chunk.path] = chunk.offset

    def data(self) -> bytes:
        return b"".join(c.data for c in self.chunks)

    def chunk_with(self, text: bytes) -> bytes:
        (found,) = [c.data for c in self.chunks if text in c.data]
        return found


def tailer(tmp: Path, sink: Sink, clock: FakeClock, offsets: dict[str, Offset] | None = None) -> FileTailer:
    return FileTailer(
        [FileSpec(str(tmp / "*.log"), "app")],
        offsets or {},
        sink,
        monotonic=clock.monotonic,
        multiline=Limits(),
        flush_after=1.0,
    )


def half_written(tmp: Path) -> tuple[Path, bytes, int, Sink, FakeClock, FileTailer]:
    """A log whose last lines are the first half of a chained traceback, read once."""
    tb = traceback_bytes()
    half = tb.index(b"The above exception")
    log = tmp / "app.log"
    log.write_bytes(BEFORE + tb[:half])
    sink, clock = Sink(), FakeClock()
    t = tailer(tmp, sink, clock)
    t.poll()
    return log, tb, half, sink, clock, t


def test_a_traceback_split_across_reads_is_handed_out_whole(tmp_path: Path) -> None:
    log, tb, half, sink, _, t = half_written(tmp_path)
    assert sink.data() == BEFORE
    assert sink.offsets[str(log)].position == len(BEFORE)  # the start of the unfinished event
    with log.open("ab") as fh:
        fh.write(tb[half:] + AFTER)
    t.poll()
    assert sink.data() == BEFORE + tb + AFTER
    assert sink.chunk_with(b"Traceback").startswith(tb)


def test_a_restart_inside_an_event_reads_it_again_whole_and_once(tmp_path: Path) -> None:
    log, tb, half, sink, clock, t = half_written(tmp_path)
    t.stop()  # the daemon stops (or is killed): only the committed offset survives
    with log.open("ab") as fh:
        fh.write(tb[half:] + AFTER)
    t2 = tailer(tmp_path, sink, clock, offsets=dict(sink.offsets))
    t2.poll()
    assert sink.data() == BEFORE + tb + AFTER  # nothing lost, nothing twice
    assert sink.chunk_with(b"Traceback").startswith(tb)


def test_an_event_at_the_end_goes_out_after_flush_after_of_quiet(tmp_path: Path) -> None:
    tb = traceback_bytes()
    log = tmp_path / "app.log"
    log.write_bytes(BEFORE + tb)
    sink, clock = Sink(), FakeClock()
    t = tailer(tmp_path, sink, clock)
    t.poll()
    assert sink.data() == BEFORE  # a chained exception may still follow
    clock.advance(0.5)
    t.poll()
    assert sink.data() == BEFORE
    clock.advance(0.5)
    t.poll()
    assert sink.data() == BEFORE + tb
    assert sink.offsets[str(log)].position == len(BEFORE + tb)


def test_a_rotation_inside_an_event_loses_nothing(tmp_path: Path) -> None:
    log, tb, half, sink, _, t = half_written(tmp_path)
    os.rename(log, tmp_path / "app.log.1")
    log.write_bytes(AFTER)  # the writer has moved on: the old file is drained for the last time
    t.poll()
    assert sink.data() == BEFORE + tb[:half] + AFTER
    assert sink.chunk_with(b"Traceback") == tb[:half]


def test_without_multiline_every_line_goes_out_at_once(tmp_path: Path) -> None:
    tb = traceback_bytes()
    log = tmp_path / "app.log"
    log.write_bytes(BEFORE + tb)
    sink = Sink()
    t = FileTailer([FileSpec(str(tmp_path / "*.log"), "app")], {}, sink)
    t.poll()
    assert sink.data() == BEFORE + tb
