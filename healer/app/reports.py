"""Plain-text reports: the CLI prints them and the bot sends them.

One source for both, so ``healer errors`` and "show errors" never disagree.
Text quoted from logs is passed through ``quote`` so a caller can escape it
for its medium (HTML for Telegram, nothing for a terminal).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from healer.app.health import HostHealth
from healer.core.enums import Outcome
from healer.rules.patterns import Pattern
from healer.store.db import Store

Quote = Callable[[str], str]


def _plain(text: str) -> str:
    return text


def _ago(ts: float, now: float) -> str:
    d = max(0.0, now - ts)
    if d < 90:
        return f"{d:.0f}s ago"
    if d < 5400:
        return f"{d / 60:.0f}m ago"
    if d < 129600:
        return f"{d / 3600:.1f}h ago"
    return f"{d / 86400:.1f}d ago"


def short(text: str, n: int = 120) -> str:
    one = " ".join(text.split())
    return one if len(one) <= n else one[: n - 1] + "…"


@dataclass(frozen=True)
class ErrorSummary:
    since: float
    total_events: int
    incidents: int
    fixable: int
    by_pattern: Mapping[str, int]
    by_severity: Mapping[str, int]
    multi_source: int


def error_summary(store: Store, patterns: Mapping[str, Pattern], since: float) -> ErrorSummary:
    rows = store.query(
        "SELECT pattern_id, incident_id, count(*) AS n FROM events WHERE ts >= ? GROUP BY pattern_id, incident_id",
        (since,),
    )
    by_pattern: Counter[str] = Counter()
    by_sev: Counter[str] = Counter()
    incidents = set()
    fixable = set()
    for r in rows:
        by_pattern[r["pattern_id"]] += r["n"]
        p = patterns.get(r["pattern_id"])
        by_sev[p.severity.value if p else "unknown"] += r["n"]
        incidents.add(r["incident_id"])
        if p is not None and p.fixable:
            fixable.add(r["incident_id"])
    multi = 0
    if incidents:
        q = ",".join("?" * len(incidents))
        multi = int(
            store.query(
                f"SELECT count(*) FROM (SELECT incident_id FROM incident_sources WHERE incident_id IN ({q})"  # noqa: S608
                " GROUP BY incident_id HAVING count(*) > 1)",
                tuple(incidents),
            )[0][0]
        )
    return ErrorSummary(since, sum(by_pattern.values()), len(incidents), len(fixable), by_pattern, by_sev, multi)


def errors_report(
    store: Store, patterns: Mapping[str, Pattern], since: float, now: float | None = None, quote: Quote = _plain
) -> str:
    now = time.time() if now is None else now
    s = error_summary(store, patterns, since)
    lines = [
        f"Errors in the last {_span(now - since)}: {s.total_events} events, {s.incidents} incidents, "
        f"{s.fixable} fixable automatically"
    ]
    if s.by_severity:
        lines.append("By severity: " + ", ".join(f"{k} {v}" for k, v in _sev_sorted(s.by_severity)))
    if s.by_pattern:
        lines.append("By type:")
        for pid, n in sorted(s.by_pattern.items(), key=lambda kv: -kv[1])[:15]:
            p = patterns.get(pid)
            tag = (
                "auto-fix"
                if p is not None and p.fixable and p.approval.value == "auto"
                else ("fix on approval" if p is not None and p.fixable else "notify only")
            )
            lines.append(f"  {n:>6}  {quote(pid)}  ({tag})")
    incs = store.incidents(since=since, limit=10)
    if incs:
        lines.append("Incidents:")
        for inc in incs:
            src = f" sources={'+'.join(inc.sources)}" if len(inc.sources) > 1 else ""
            lines.append(
                f"  #{inc.id} [{inc.severity.value}] {inc.status.value} ×{inc.count}{src} "
                f"{quote(inc.pattern_id)}: {quote(short(inc.message, 100))}"
            )
    return "\n".join(lines)


def history_report(store: Store, limit: int = 15, quote: Quote = _plain, now: float | None = None) -> str:
    now = time.time() if now is None else now
    attempts = store.attempts(limit=limit)
    rows = store.query("SELECT outcome, count(*) AS n FROM fix_attempts GROUP BY outcome")
    counts = {r["outcome"]: int(r["n"]) for r in rows}
    done = sum(n for o, n in counts.items() if o not in (Outcome.RUNNING.value, Outcome.VERIFYING.value))
    ok = counts.get(Outcome.SUCCEEDED.value, 0)
    rate = f"{100 * ok / done:.0f}%" if done else "n/a"
    lines = [f"Fix attempts: {sum(counts.values())} total, {ok} succeeded, success rate {rate}"]
    if counts:
        lines.append("By outcome: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for a in attempts:
        lines.append(
            f"  #{a.id} incident #{a.incident_id} {' → '.join(a.actions)}: {a.outcome.value} "
            f"({_ago(a.started, now)}) {quote(short(a.detail, 100))}"
        )
    decisions = store.query(
        "SELECT d.*, i.pattern_id AS pid FROM decisions d JOIN incidents i ON i.id = d.incident_id"
        " ORDER BY d.id DESC LIMIT ?",
        (limit,),
    )
    if decisions:
        lines.append("Recent decisions:")
        for d in decisions:
            times = f" ×{d['count']}" if d["count"] > 1 else ""
            lines.append(
                f"  #{d['id']} incident #{d['incident_id']} {quote(d['pid'])}: {d['verdict']} "
                f"({d['reason']}){times} {quote(short(d['detail'] or '', 80))}"
            )
    return "\n".join(lines)


def health_report(
    health: HostHealth,
    store: Store,
    patterns: Mapping[str, Pattern],
    kill_switch: bool,
    breaker_open: bool,
    now: float | None = None,
    quote: Quote = _plain,
) -> str:
    now = time.time() if now is None else now
    lines = ["Host health"]
    for d in health.disks:
        if d.error:
            lines.append(f"  disk {quote(d.mount)}: error {quote(d.error)}")
        else:
            flag = "" if d.ok else "  ⚠"
            lines.append(f"  disk {quote(d.mount)}: {d.percent:.1f}% used, {d.free_bytes / 2**30:.1f} GiB free{flag}")
    lines.append(f"  memory {health.memory_percent:.1f}%, swap {health.swap_percent:.1f}%")
    lines.append(
        f"  load {health.load[0]:.2f} {health.load[1]:.2f} {health.load[2]:.2f} on {health.cpus} CPUs, "
        f"cpu {health.cpu_percent:.0f}%"
    )
    for s in health.services:
        lines.append(f"  service {quote(s.name)}: {'up' if s.up else 'DOWN'} ({quote(s.detail)})")
    summary = error_summary(store, patterns, now - 1800)
    lines.append(
        f"Errors in the last 30m: {summary.total_events} events, {summary.incidents} incidents, "
        f"{summary.fixable} fixable automatically"
    )
    if summary.by_severity:
        lines.append("  by severity: " + ", ".join(f"{k} {v}" for k, v in _sev_sorted(summary.by_severity)))
    lines.append(
        f"Kill switch: {'ON (no fixes run)' if kill_switch else 'off'}; "
        f"circuit breaker: {'OPEN (notify only)' if breaker_open else 'closed'}"
    )
    incs = store.incidents(limit=5)
    if incs:
        lines.append("Recent incidents:")
        for inc in incs:
            lines.append(
                f"  #{inc.id} [{inc.severity.value}] {inc.status.value} ×{inc.count} "
                f"{quote(inc.pattern_id)} ({_ago(inc.last_seen, now)})"
            )
    if health.warnings:
        lines.append("Warnings: " + "; ".join(quote(w) for w in health.warnings))
    return "\n".join(lines)


def explain_report(store: Store, incident_id: int, quote: Quote = _plain, now: float | None = None) -> str:
    """Everything healer knows and did about one incident, in order."""
    now = time.time() if now is None else now
    inc = store.incident(incident_id)
    if inc is None:
        return f"No incident #{incident_id}."
    lines = [
        f"Incident #{inc.id} [{inc.severity.value}] {inc.status.value}: pattern {quote(inc.pattern_id)}",
        f"  seen {inc.count}× from {'+'.join(inc.sources)}, first {_ago(inc.first_seen, now)}, "
        f"last {_ago(inc.last_seen, now)}",
        f"  last message: {quote(short(inc.message, 300))}",
        "Decisions:",
    ]
    for d in reversed(store.decisions(incident_id, limit=50)):
        lines.append(f"  #{d.id} {d.verdict.value} ({d.reason.value}) {_ago(d.ts, now)} {quote(short(d.detail, 100))}")
    attempts = store.attempts(incident_id=incident_id, limit=20)
    if attempts:
        lines.append("Fix attempts:")
        for a in reversed(attempts):
            lines.append(f"  #{a.id} {' → '.join(a.actions)}: {a.outcome.value} — {quote(short(a.detail, 200))}")
            for st in a.steps:
                lines.append(f"      {st.action}: {st.outcome.value} {quote(short(st.detail, 120))}")
    return "\n".join(lines)


def _span(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:.0f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:.0f}m"


_SEV_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def _sev_sorted(d: Mapping[str, int]) -> Sequence[tuple[str, int]]:
    return sorted(d.items(), key=lambda kv: _SEV_ORDER.get(kv[0], 9))
