"""Fair ingestion: a flooded file cannot hold back a quiet file's new line (no head-of-line blocking).

Proved by order and counts, never by time: one poll with a flood of 1 MiB queued on
one file and one line on another must hand out the quiet line within the first
chunks, and still every flood line exactly once, in order.
"""

from __future__ import annotations

from pathlib import Path

from healer.core.batch import Chunk, Offset
from healer.sources.tail import FileSpec, FileTailer

CHUNK = 4096


class Sink:
    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.offsets: dict[str, Offset] = {}

    def __call__(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        self.offsets[chunk.path] = chunk.offset


def test_a_quiet_files_line_is_handed_out_within_the_first_chunks_of_a_flood(tmp_path: Path) -> None:
    flood, quiet = tmp_path / "a-flood.log", tmp_path / "b-quiet.log"
    flood.write_bytes(b"")
    quiet.write_bytes(b"")
    sink = Sink()
    t = FileTailer([FileSpec(str(tmp_path / "*.log"), "svc")], sink.offsets, sink, chunk_bytes=CHUNK)
    t.poll()  # both followed, at their (empty) ends
    lines = [b"2026-01-01 00:00:00 ERROR flood n=%d padding padding padding\n" % i for i in range(20_000)]
    with flood.open("ab") as fh:
        fh.write(b"".join(lines))
    with quiet.open("ab") as fh:
        fh.write(b"2026-01-01 00:00:01 ERROR the quiet file's one line\n")
    t.poll()
    t.poll()  # a poll ends after MAX_ROUNDS turns and asks for the next one, which reads the rest
    t.stop()
    data = [c for c in sink.chunks if c.data]
    order = [Path(c.path).name for c in data]
    assert len(order) > 200, "the flood should take many chunks"
    assert order.index("b-quiet.log") <= 2, order[:10]
    got = b"".join(c.data for c in data if c.path == str(flood))
    assert got == b"".join(lines)
    assert [c.data for c in data if c.path == str(quiet)] == [b"2026-01-01 00:00:01 ERROR the quiet file's one line\n"]
