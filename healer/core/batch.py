"""What a source hands the daemon: a ``Batch``, either file lines or events.

A file ``Chunk`` carries the offset to persist after its lines; an
``EventBatch`` (journald entries, webhook alerts) carries an optional cursor to
persist with its events. Both commit in the same transaction as what the engine
derives from them, so a crash never loses or doubles a line. They live in core
so the engine can ingest them without importing any source.
"""

from __future__ import annotations

from dataclasses import dataclass

from healer.core.records import Event


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


@dataclass(frozen=True, slots=True)
class Cursor:
    """A journald-style resume point: ``key`` names the source in the store, ``value`` is opaque to healer."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events from one source, plus the cursor to persist with them (None: nothing to resume from)."""

    events: tuple[Event, ...]
    cursor: Cursor | None = None


Batch = Chunk | EventBatch
"""The one thing every source hands its sink."""
