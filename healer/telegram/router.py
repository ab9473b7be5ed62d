"""Which notices reach a phone, when, and how often.

An error storm must not become a message storm: a thousand identical lines
are one incident, and the person on call wants one message for it, then a
short "still firing" update now and then, not a thousand pings. So the
router remembers every incident it has announced, swallows repeats, and lets
a periodic job (registered on the host's scheduler) ask :meth:`Router.updates` whether an
announced incident has grown since the last word about it.

Incident news routes by the incident's priority (``telegram.priority_routing``:
P0/P1 now, P2 in the digest, P3 not at all); other notices, and incident news
without a priority, by severity (``telegram.routing``): ``immediate`` sends now,
``digest`` collects until the digest job calls :meth:`Router.take_digest`,
``none`` drops. Notices about action taken (fix results, escalations, the
circuit breaker, approvals, health) always go now, whatever the severity:
they are the things a human may have to act on. A notice from a pattern in
shadow mode is never sent at once: at most it waits for the digest.

A flood of *distinct* incidents (3,000 different lines right after an
approval request) is not deduplicated by any of that, so new-incident notices
are also capped: at most ``NEW_PER_WINDOW`` are announced one by one per
``FLOOD_WINDOW`` seconds, and the rest are summarised in one "N more new
incidents: …" message when the window ends (:meth:`Router.flush`, run by a
scheduled job, or the next notice after the window). The outbox sends those
in its bulk lane, behind approvals and replies (issue 19 #8).

The router is synchronous and does no I/O: :meth:`Router.route` is called on
the event loop from ``TelegramBot.notify`` and must return at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from healer.core.notices import Notice, NoticeKind
from healer.telegram.render import bold, esc, notice_html, truncate

ALWAYS_NOW = frozenset(
    {
        NoticeKind.FIX_RESULT,
        NoticeKind.ESCALATION,
        NoticeKind.BREAKER,
        NoticeKind.APPROVAL,
        NoticeKind.HEALTH,
        NoticeKind.EXPIRED,
        NoticeKind.CONFIG,  # an edit that did not take: the person who made it is waiting to know
    }
)
MAX_TRACKED = 500  # incidents remembered for dedup; the least recently active is forgotten first
FORGET_AFTER = 86400.0  # an incident quiet this long is announced again if it comes back
DIGEST_MAX_ITEMS = 40
NEW_PER_WINDOW = 10  # new incidents announced one by one per window; the rest are summarised
FLOOD_WINDOW = 60.0
SUMMARY_MAX_ITEMS = 20

Send = Callable[[str, Notice | None], None]


@dataclass
class _Tracked:
    incident_id: int
    pattern_id: str
    route: str
    sent_count: int  # the count the last message about it showed
    seen_count: int  # the highest count any notice reported
    last_sent: float
    last_active: float


@dataclass
class _Overflow:
    """New incidents of the current window beyond the cap, for the one summary message."""

    total: int = 0
    items: list[str] = field(default_factory=list)  # the first SUMMARY_MAX_ITEMS, as HTML lines


@dataclass
class _DigestItem:
    pattern_id: str
    severity: str
    count: int
    text: str


class Router:
    def __init__(self, send: Send, *, per_window: int = NEW_PER_WINDOW, window: float = FLOOD_WINDOW) -> None:
        self._send = send
        self._per_window = per_window
        self._window = window
        self._window_start = float("-inf")
        self._window_sent = 0
        self._overflow = _Overflow()
        self._tracked: OrderedDict[int, _Tracked] = OrderedDict()
        self._digest: OrderedDict[int, _DigestItem] = OrderedDict()
        self._digest_other: list[str] = []
        self.suppressed = 0  # notices swallowed as repeats, for /status
        self.summarised = 0  # new incidents only counted in a "N more" summary, for /status

    # -- routing -----------------------------------------------------------------------
    def route(
        self, notice: Notice, routing: Mapping[str, str], now: float, by_priority: Mapping[str, str] | None = None
    ) -> str:
        """Send, batch or drop one notice; returns what it did (for logs and tests)."""
        if notice.kind in ALWAYS_NOW and not notice.shadow:
            self._send(notice_html(notice), notice)
            return "immediate"
        how = routing.get(notice.severity.value, "immediate")
        if notice.priority is not None and by_priority is not None:
            how = by_priority.get(notice.priority.value, how)
        if notice.shadow and how == "immediate":
            how = "digest"
        inc = notice.incident
        if notice.kind in (NoticeKind.INCIDENT, NoticeKind.INCIDENT_UPDATE) and inc is not None:
            known = self._tracked.get(inc.id)
            if known is not None and now - known.last_active < FORGET_AFTER:
                known.seen_count = max(known.seen_count, inc.count)
                known.last_active = now
                self._tracked.move_to_end(inc.id)
                if inc.id in self._digest:
                    self._digest[inc.id].count = max(self._digest[inc.id].count, inc.count)
                self.suppressed += 1
                return "dedup"
            if how == "none":
                return "none"
            self._track(_Tracked(inc.id, inc.pattern_id, how, inc.count, inc.count, now, now))
            if how == "digest":
                if len(self._digest) >= MAX_TRACKED:  # a digest of 500 incidents is already unreadable
                    self.suppressed += 1
                    return "dedup"
                self._digest[inc.id] = _DigestItem(inc.pattern_id, inc.severity.value, inc.count, notice.text)
                return "digest"
            return self._announce_new(notice, now)
        if how == "none":
            return "none"
        if how == "digest":
            if len(self._digest_other) < DIGEST_MAX_ITEMS:
                self._digest_other.append(notice_html(notice))
            return "digest"
        self._send(notice_html(notice), notice)
        return "immediate"

    def _announce_new(self, notice: Notice, now: float) -> str:
        """A new incident, announced now unless this window's quota is spent (then summarised)."""
        self.flush(now)
        if self._window_sent < self._per_window:
            self._window_sent += 1
            self._send(notice_html(notice), notice)
            return "immediate"
        inc = notice.incident
        assert inc is not None
        # Summarised, so no "still firing" updates for it either: they would be the flood again.
        self._tracked[inc.id].route = "summary"
        self._overflow.total += 1
        self.summarised += 1
        if len(self._overflow.items) < SUMMARY_MAX_ITEMS:
            self._overflow.items.append(
                f"• #{inc.id} [{esc(inc.severity.value)}] {esc(inc.pattern_id)}: {esc(notice.text[:120])}"
            )
        return "summary"

    def flush(self, now: float) -> bool:
        """End the window if it is over: send the summary of what it held back. True if sent."""
        if now - self._window_start < self._window:
            return False
        self._window_start = now
        self._window_sent = 0
        over, self._overflow = self._overflow, _Overflow()
        if not over.total:
            return False
        lines = [bold(f"{over.total} more new incident(s)") + f" (only {self._per_window} are announced a minute):"]
        lines += over.items
        if over.total > len(over.items):
            lines.append(f"… and {over.total - len(over.items)} more; send <b>errors</b> for the list")
        self._send(truncate("\n".join(lines)), None)
        return True

    def _track(self, t: _Tracked) -> None:
        self._tracked[t.incident_id] = t
        self._tracked.move_to_end(t.incident_id)
        while len(self._tracked) > MAX_TRACKED:
            self._tracked.popitem(last=False)

    # -- periodic work (called from the scheduled jobs) ------------------------------------------
    def watched(self, now: float, interval: float) -> list[int]:
        """Incidents announced at once whose count is worth re-reading from the store."""
        return [
            t.incident_id
            for t in self._tracked.values()
            if t.route == "immediate" and now - t.last_active < max(3600.0, 4 * interval)
        ]

    def updates(self, counts: Mapping[int, int], now: float, interval: float) -> int:
        """Send "still firing" for announced incidents that grew; at most one per interval each."""
        sent = 0
        for inc_id, count in counts.items():
            t = self._tracked.get(inc_id)
            if t is None:
                continue
            if count > t.seen_count:
                t.seen_count = count
                t.last_active = now
            if t.seen_count > t.sent_count and now - t.last_sent >= interval:
                grew = t.seen_count - t.sent_count
                self._send(
                    f"🔁 <b>incident #{inc_id} still firing</b>: {esc(t.pattern_id)}, "
                    f"count {t.seen_count} (+{grew} since the last message)",
                    None,
                )
                t.sent_count = t.seen_count
                t.last_sent = now
                sent += 1
        return sent

    def take_digest(self, counts: Mapping[int, int] | None = None) -> str | None:
        """The pending digest as one message (None if nothing is pending), and reset."""
        if not self._digest and not self._digest_other:
            return None
        counts = counts or {}
        lines = [bold(f"Digest: {len(self._digest)} incident(s), {len(self._digest_other)} other notice(s)")]
        for i, (inc_id, item) in enumerate(self._digest.items()):
            if i >= DIGEST_MAX_ITEMS:
                lines.append(f"… and {len(self._digest) - i} more")
                break
            count = max(item.count, counts.get(inc_id, 0))
            t = self._tracked.get(inc_id)
            if t is not None:
                t.sent_count = t.seen_count = max(t.seen_count, count)
            lines.append(f"• #{inc_id} [{esc(item.severity)}] {esc(item.pattern_id)} ×{count}: {esc(item.text[:200])}")
        lines.extend(self._digest_other)
        self._digest.clear()
        self._digest_other.clear()
        return truncate("\n".join(lines))

    def digest_ids(self) -> list[int]:
        return list(self._digest)
