"""Which paths concern the tailer, and the watchdog glue that wakes it when one changes.

watchdog calls :class:`Handler` on its observer thread.  That thread never
reads a file: it only classifies the event (:func:`matches_glob`) and wakes the
poll thread, which does every read.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("healer.sources.tail")


@dataclass(frozen=True, slots=True)
class FileSpec:
    """A glob of log files and the service their lines belong to."""

    glob: str
    service: str


@dataclass(frozen=True, slots=True)
class Glob:
    spec: FileSpec
    pattern: str  # absolute
    literal: bool
    static_dir: str  # longest directory prefix without glob magic


def make_glob(spec: FileSpec) -> Glob:
    pattern = os.path.abspath(os.path.expanduser(spec.glob))
    return Glob(spec, pattern, not glob.has_magic(pattern), static_dir(pattern))


def static_dir(pattern: str) -> str:
    parts = os.path.dirname(pattern).split(os.sep)
    keep: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        keep.append(part)
    return os.sep.join(keep) or os.sep


def nearest_existing_dir(path: str) -> str:
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def glob_match(path: str, pattern: str) -> bool:
    """Whether ``path`` matches a glob pattern segment by segment (``*`` never crosses ``/``)."""
    pp = path.split(os.sep)
    gp = pattern.split(os.sep)
    return len(pp) == len(gp) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(pp, gp, strict=True))


def matches_glob(path: str, is_directory: bool, globs: Sequence[Glob]) -> bool:
    """Whether an event at ``path`` may change what ``globs`` match (a file, or a directory on the way)."""
    for g in globs:
        if is_directory and (g.static_dir == path or g.static_dir.startswith(path.rstrip(os.sep) + os.sep)):
            return True
        if glob_match(path, g.pattern) or (is_directory and glob_match(path, os.path.dirname(g.pattern))):
            return True
    return False


class Handler:
    """watchdog event handler: runs on the observer thread, only classifies and wakes."""

    def __init__(self, on_event: Callable[[Sequence[str], bool, bool], None]) -> None:
        self._on_event = on_event

    def dispatch(self, event: Any) -> None:
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if event.dest_path else ""
        structural = event.event_type != "modified"
        self._on_event((src, dest), structural, bool(event.is_directory))


def update_watches(
    observer: Any, handler: Handler, globs: Sequence[Glob], watches: dict[str, tuple[Any, tuple[int, int]]]
) -> None:
    """Watch each glob's directory, or its nearest existing ancestor until it exists.

    Called under the poll lock after every glob rescan, with the observer running; a directory that was
    deleted and recreated gets a fresh watch (the old inotify watch died with it).
    """
    from watchdog.events import (
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileModifiedEvent,
        FileMovedEvent,
    )

    wanted: set[str] = set()
    for g in globs:
        wanted.add(nearest_existing_dir(g.static_dir))
        if not g.literal and glob.has_magic(os.path.dirname(g.pattern)):
            wanted.update(d for d in glob.glob(os.path.dirname(g.pattern)) if os.path.isdir(d))
        else:
            wanted.add(nearest_existing_dir(os.path.dirname(g.pattern)))
    for d, (watch, ident) in list(watches.items()):
        try:
            st = os.stat(d)
            alive = (st.st_ino, st.st_dev) == ident
        except OSError:
            alive = False
        if d not in wanted or not alive:
            with contextlib.suppress(Exception):
                observer.unschedule(watch)
            del watches[d]
    event_filter = [
        FileModifiedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileMovedEvent,
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
    ]
    for d in sorted(wanted - watches.keys()):
        try:
            st = os.stat(d)
            watch = observer.schedule(handler, d, recursive=False, event_filter=event_filter)
        except Exception as err:
            log.debug("tail_watch_failed", directory=d, error=str(err))
            continue
        watches[d] = (watch, (st.st_ino, st.st_dev))
