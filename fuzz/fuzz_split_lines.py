"""Fuzz the tailer's pure line splitter, healer.sources.tail.lines.split_lines.

Invariants: no exception; every output line ends in b"\\n"; the new position
never goes backwards nor past the bytes seen; kept bytes are bounded by
max_line; and fed in arbitrary chunks, the lines out equal the lines of the
whole input (over-long lines cut to max_line bytes).

Run: python fuzz/fuzz_split_lines.py -max_total_time=300
"""

from __future__ import annotations

import sys

import atheris
from _common import seed_args

with atheris.instrument_imports():
    from healer.sources.tail.lines import split_lines


def _reference(stream: bytes, max_line: int) -> tuple[list[bytes], int]:
    """Complete lines of ``stream`` (each cut to max_line) and the offset after the last newline."""
    end = stream.rfind(b"\n") + 1
    lines = [ln[:max_line] + b"\n" for ln in stream[:end].split(b"\n")[:-1]] if end else []
    return lines, end


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    max_line = fdp.ConsumeIntInRange(1, 64)
    n_chunks = fdp.ConsumeIntInRange(1, 8)
    sizes = [fdp.ConsumeIntInRange(0, 200) for _ in range(n_chunks)]
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    buf, skipping, scan, pos = b"", False, 0, 0
    out_all: list[bytes] = []
    cuts = 0
    i = 0
    chunks = []
    for s in sizes:
        chunks.append(stream[i : i + s])
        i += s
    chunks.append(stream[i:])
    for chunk in chunks:
        out, new_pos, cut, new_buf, new_skip = split_lines(buf, skipping, chunk, scan, pos, max_line)
        seen = scan + len(chunk)
        assert pos <= new_pos <= seen, (pos, new_pos, seen)
        assert len(out) <= new_pos - pos + cut, (len(out), new_pos, pos, cut)
        assert len(new_buf) <= max_line or not new_skip
        if new_skip:
            assert len(new_buf) == max_line, (new_buf, max_line)
        else:
            assert len(new_buf) <= max_line, (new_buf, max_line)
        if out:
            assert out.endswith(b"\n"), out
            lines = out.split(b"\n")[:-1]
            for ln in lines:
                assert len(ln) <= max_line, (ln, max_line)
        out_all.append(out)
        cuts += cut
        buf, skipping, scan, pos = new_buf, new_skip, seen, new_pos
    want_lines, want_end = _reference(stream, max_line)
    got = b"".join(out_all)
    assert got == b"".join(want_lines), (got, want_lines, max_line, sizes)
    assert pos == want_end, (pos, want_end)
    assert cuts == sum(1 for ln in stream[:want_end].split(b"\n")[:-1] if len(ln) > max_line), cuts


def main() -> None:
    atheris.Setup(seed_args(sys.argv), TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
