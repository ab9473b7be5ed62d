"""The log-file tailer, in pieces with one job each.

:mod:`.tailer` (the :class:`FileTailer` and its scanning), :mod:`.drain`
(reading one followed file into the sink), :mod:`.rotation` (finding where a
rotated file went), :mod:`.watch` (which paths concern us; the watchdog glue),
:mod:`.wakeup` (cross-thread signalling), :mod:`.reader` (per-file state) and
:mod:`.lines` (pure line splitting and head hashing).
"""

from healer.sources.tail.lines import head_hash
from healer.sources.tail.tailer import FileTailer
from healer.sources.tail.watch import FileSpec

__all__ = ["FileSpec", "FileTailer", "head_hash"]
