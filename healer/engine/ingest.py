"""From a batch of lines or events to recorded events, incidents and decisions, in ONE transaction.

The offset or cursor of the batch commits with what its lines produced, so
a crash replays a batch entirely or not at all. Returns the jobs decisions
asked for (run a fix, undo a fix that did not hold) and the notices to send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from healer.core.batch import Chunk
from healer.core.enums import AuditKind, Outcome, PatternMode, SourceName, Trigger
from healer.core.jobs import IngestResult, UndoJob
from healer.core.notices import Notice, NoticeKind
from healer.core.records import Event, Incident
from healer.core.stamps import leading_time
from healer.engine.decisions import Decider
from healer.engine.evidence import grace_for, recurrence
from healer.engine.triage import incident_triage
from healer.engine.wiring import Wiring
from healer.rules.fingerprint import fingerprint
from healer.rules.matcher import LineHit
from healer.rules.patterns import Pattern
from healer.store.db import EventRow, Tx

Extra = Callable[[Tx], None]

# A storm's lines of one incident in one batch are stored as this many rows at most: the first
# SAMPLE - 1 lines and the last, which stands for itself and every line elided between them
# (``count`` in the store, their file positions in its fields). Counts, windows and thresholds stay
# exact; the incident's decision is taken once per batch with all of them.
SAMPLE = 16


class Ingestor:
    def __init__(self, w: Wiring, decider: Decider) -> None:
        self.w = w
        self.decider = decider

    def chunk(self, chunk: Chunk) -> IngestResult:
        """A file chunk: events, decisions and the file offset commit together."""
        now = self.w.clock.now()
        source = SourceName.FILE
        events = self._text_events(chunk.data, source, chunk.service, chunk.path, now, chunk.start)
        o = chunk.offset

        def save_offset(db: Tx) -> None:
            self.w.store.save_offset(db, o.path, o.inode, o.dev, o.position, o.head_hash, now)

        result = self._ingest(events, now, save_offset, base=chunk.start)
        if self.w.metrics is not None:
            self.w.metrics.lines_read.labels(source=source).inc(chunk.data.count(b"\n"))
        return result

    def buffer(self, data: bytes, service: str, origin: str, source: SourceName, base: int = 0) -> IngestResult:
        """Lines with no offset to keep: ``healer replay`` and tests. ``base``: the offset of ``data`` in its file."""
        now = self.w.clock.now()
        return self._ingest(self._text_events(data, source, service, origin, now, base), now, None, base=base)

    def _text_events(
        self, data: bytes, source: SourceName, service: str, origin: str, now: float, base: int
    ) -> list[tuple[Event, LineHit]]:
        """One event per line or assembled multi-line event that a pattern for this source matched.

        The winner is the event's one hit (one incident per fault); the other
        patterns that matched are recorded with the event as ``evidence``, and a
        multi-line event keeps the file offsets of its first and last line.
        """
        out = []
        for tev in self.w.matcher.events(data):
            mine = [h for h in tev.hits if h.pattern.selects(source, service, {})]
            best, evidence = tev.pick(mine)
            if best is None:
                continue
            fields: dict[str, str] = {}
            if evidence:
                fields["evidence"] = " ".join(dict.fromkeys(evidence))
            if tev.lines > 1:
                first, last = str(base + tev.start), str(base + tev.last)
                fields.update(first_offset=first, last_offset=last, lines=str(tev.lines))
            out.append((self._line_event(source, service, best.line, origin, now, fields), best))
        return out

    @staticmethod
    def _line_event(
        source: SourceName, service: str, line: str, origin: str, now: float, fields: dict[str, str]
    ) -> Event:
        """A log line read now; when it starts with a timestamp, that is when it happened."""
        return Event(source, service, line, now, origin, fields, happened=leading_time(line))

    def events(self, events: Iterable[Event], cursor: tuple[str, str] | None) -> IngestResult:
        """Journald entries, webhook alerts, pasted lines: matched one by one, fields and all."""
        now = self.w.clock.now()
        pairs: list[tuple[Event, LineHit]] = []
        resolved: list[Event] = []
        for ev in events:
            if ev.resolved:
                resolved.append(ev)
                continue
            for h in self.w.matcher.match_text(ev.message):
                if h.pattern.selects(ev.source, ev.service, ev.fields):
                    pairs.append((ev, h))

        def extra(db: Tx) -> None:
            store = self.w.store
            for ev in resolved:
                for inc_id in store.resolve_by_source_id(db, ev.source, ev.source_id, now):
                    store.audit_in(db, AuditKind.INCIDENT_RESOLVED, ev.source, {"incident": inc_id}, now)
            if cursor is not None:
                store.save_cursor(db, cursor[0], cursor[1], now)

        return self._ingest(pairs, now, extra, grouped=False)

    def _ingest(
        self,
        pairs: Sequence[tuple[Event, LineHit]],
        now: float,
        extra: Extra | None,
        grouped: bool = True,
        base: int = 0,
    ) -> IngestResult:
        """Lines of a file batch group by fingerprint; events (each with its own sender id) do not.

        ``base``: the file offset of the batch, so an elided line's position can be named.
        """
        store = self.w.store
        result = IngestResult(matched=len(pairs))
        groups: dict[str, tuple[Pattern, list[Event], LineHit, list[int]]] = {}
        singles: list[tuple[str, Pattern, Event, LineHit]] = []
        # A fingerprint depends on the pattern, its groups and the event's service, source and host:
        # a storm's lines share them, so each distinct one is hashed once per batch.
        memo: dict[tuple[object, ...], str] = {}
        for ev, hit in pairs:
            key = (hit.pattern.id, ev.service, ev.source, ev.fields.get("host", ""), *hit.groups.items())
            fp = memo.get(key) or memo.setdefault(key, fingerprint(hit.pattern, hit.groups, ev))
            if not grouped:
                singles.append((fp, hit.pattern, ev, hit))
            elif fp in groups:
                g = groups[fp]
                g[1].append(ev)
                g[3].append(base + hit.start)
                groups[fp] = (g[0], g[1], hit, g[3])  # the group's fix uses its newest line's captures
            else:
                groups[fp] = (hit.pattern, [ev], hit, [base + hit.start])
        with store.tx() as db:
            for fp, (pattern, evs, hit, where) in groups.items():
                summary = hit.focus if "\n" in hit.line else None
                rows, repeats = _sample(evs, where)
                rec = store.record_group(db, pattern.id, fp, pattern.severity, rows, hit.groups, summary, repeats)
                fresh = rec.new_incident or rec.reopened
                self._after_record(db, rec.incident, fresh, pattern, hit, evs, now, result)
            for fp, pattern, ev, hit in singles:
                rec1 = store.record_event(db, EventRow(ev, pattern.id, fp, pattern.severity, hit.groups))
                if rec1.duplicate:
                    continue
                fresh = rec1.new_incident or rec1.reopened
                self._after_record(db, rec1.incident, fresh, pattern, hit, [ev], now, result)
            if extra is not None:
                extra(db)
        result.events = len(pairs)
        self.w.emit(result.notices)
        if self.w.metrics is not None:
            for _, hit in pairs:
                self.w.metrics.matches.labels(pattern=hit.pattern.id).inc()
            for d in result.decisions:
                self.w.metrics.decisions.labels(verdict=d.verdict.value, reason=d.reason.value).inc()
            for n in result.notices:
                if n.kind is NoticeKind.INCIDENT and n.priority is not None:
                    mode = PatternMode.SHADOW if n.shadow else PatternMode.ACTIVE
                    self.w.metrics.incidents_opened.labels(priority=n.priority.value, mode=mode.value).inc()
        return result

    def _after_record(
        self,
        db: Tx,
        inc: Incident,
        fresh: bool,
        pattern: Pattern,
        hit: LineHit,
        evs: Sequence[Event],
        now: float,
        result: IngestResult,
    ) -> None:
        ev, n = evs[-1], len(evs)
        if fresh:
            shadow = self.decider.mode(db, pattern) is PatternMode.SHADOW
            text = ("[shadow] " if shadow else "") + f"{pattern.id}: {hit.focus[:300]}"
            priority = incident_triage(self.w.store, db, inc, self.w.settings, now).priority
            kind, sev = NoticeKind.INCIDENT, pattern.severity
            result.notices.append(Notice(kind, sev, text, incident=inc, link=ev.link, priority=priority, shadow=shadow))
        undo = self._verify_window_breach(db, inc, evs, now)
        if undo is not None:
            result.jobs.append(undo)
        self.decider.decide_and_record(db, inc, pattern, hit.groups, ev.service, now, Trigger.AUTO, result, n)

    def _verify_window_breach(self, db: Tx, inc: Incident, evs: Sequence[Event], now: float) -> UndoJob | None:
        """The incident came back while its fix was being watched: the fix failed.

        Only on evidence (``evidence.py``): an event that happened after the
        fix finished plus its grace. The backlog and the in-flight tail of
        the old fault are recorded with the incident but undo nothing.
        """
        store = self.w.store
        active = store.active_attempt(db, inc.id)
        if active is None or active.outcome is not Outcome.VERIFYING:
            return None
        if active.verify_until is not None and active.verify_until < now:
            return None
        finished = active.finished if active.finished is not None else now
        found = recurrence(evs, finished, grace_for(self.w.settings, active.actions), now)
        if found is None:
            return None
        reason = found.detail()
        # UNDOING keeps the target locked until the rollback has run, so no new fix overlaps it.
        if not store.set_outcome(db, active.id, Outcome.UNDOING, reason, now, expect=Outcome.VERIFYING):
            return None
        return UndoJob(active.id, reason)


def _sample(evs: list[Event], where: list[int]) -> tuple[list[Event], list[int] | None]:
    """At most SAMPLE rows for one fingerprint's lines; the last row counts the elided ones (see SAMPLE)."""
    if len(evs) <= SAMPLE:
        return evs, None
    elided = len(evs) - SAMPLE
    last = evs[-1]
    fields = {**last.fields, "elided": str(elided), "elided_offsets": f"{where[SAMPLE - 1]}-{where[-2]}"}
    rows = [*evs[: SAMPLE - 1], replace(last, fields=fields)]
    return rows, [1] * (SAMPLE - 1) + [elided + 1]
