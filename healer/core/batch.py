"""What a source hands the engine: a chunk of file lines with the offset to persist after them.

It lives in core so the engine can ingest it without importing any source.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Offset:
    """What the store persists per followed path, to resume exactly after a restart.

    ``inode``/``dev`` say which file the position belongs to (after a rename
    rotation it may be the rotated file); ``head_hash`` guards against inode
    reuse and copytruncate, which keep the inode but replace the content.
    """

    path: str
    inode: int
    dev: int
    position: int
    head_hash: str


@dataclass(frozen=True, slots=True)
class Chunk:
    """Zero or more complete lines from one file, plus the offset to persist after them."""

    path: str
    service: str
    data: bytes
    start: int
    offset: Offset
    cut_lines: int
    rotated: bool
