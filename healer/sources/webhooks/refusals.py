"""Refused webhook requests, counted per peer per minute (issue 19 #7).

One audit row per refusal let 8 clients write 28,665 rows in 20 s, kept for
30 days. Now the first refusal of a peer in a minute is logged and audited at
once (an operator still sees the first bad delivery immediately), and the rest
of that minute is one summary row with the count per status, written when the
minute is over (at the peer's next refusal, at the next refusal of anyone after
the minute, or when the receiver stops). Memory is bounded by ``max_peers``.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from healer.core.enums import AuditKind

log = structlog.get_logger("healer.sources.webhooks")

Audit = Callable[[AuditKind, Mapping[str, object]], None]
KIND = AuditKind.WEBHOOK_REFUSED


@dataclass
class _Tally:
    minute: int
    statuses: Counter[int] = field(default_factory=Counter)
    last: Mapping[str, object] = field(default_factory=dict)


class RefusalLog:
    def __init__(self, audit: Audit | None, now: Callable[[], float], max_peers: int = 1024) -> None:
        self.audit = audit
        self.now = now
        self.max_peers = max_peers
        self._tallies: OrderedDict[str, _Tally] = OrderedDict()

    def refused(self, info: Mapping[str, object]) -> None:
        peer = str(info.get("remote", ""))
        minute = int(self.now() // 60)
        self._flush(before=minute)
        tally = self._tallies.get(peer)
        if tally is None:
            self._tallies[peer] = _Tally(minute)
            while len(self._tallies) > self.max_peers:
                self._write(*self._tallies.popitem(last=False))
            log.warning(KIND, **info)
            self._emit({**info, "count": 1, "first": True})
            return
        # Not the first this minute: counted for the summary row.
        tally.statuses[int(str(info.get("status", 0)))] += 1
        tally.last = info

    def close(self) -> None:
        """Write every pending summary (the receiver stops)."""
        self._flush(before=None)

    def _flush(self, before: int | None) -> None:
        for peer in [p for p, t in self._tallies.items() if before is None or t.minute < before]:
            self._write(peer, self._tallies.pop(peer))

    def _write(self, peer: str, tally: _Tally) -> None:
        n = sum(tally.statuses.values())
        if n == 0:
            return
        statuses = {str(k): v for k, v in sorted(tally.statuses.items())}
        log.warning("webhook_refused_summary", remote=peer, count=n, statuses=statuses)
        self._emit({**tally.last, "remote": peer, "count": n, "statuses": statuses, "minute": tally.minute * 60})

    def _emit(self, data: Mapping[str, object]) -> None:
        if self.audit is None:
            return
        try:
            self.audit(KIND, data)
        except Exception:  # an audit failure must not turn a 4xx into a crash
            log.exception("webhook_audit_failed")
