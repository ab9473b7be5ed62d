"""Text for every use case's result: the CLI prints it and the bot sends it.

One renderer per result, so ``healer errors`` and "show errors" never
disagree. Text quoted from logs, webhooks and tool output goes through
``quote``, which each front end chooses for its medium: HTML escaping for
Telegram, :func:`healer.app.text.terminal` for a terminal. What healer
writes itself (pattern ids, enum values, numbers) is not quoted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from healer.app.results import (
    ErrorSummary,
    ExplainResult,
    FixReport,
    HealthResult,
    HistoryResult,
    JobOutcome,
    LineExplanation,
    SettleReport,
    StatusResult,
    Would,
)
from healer.app.text import Quote, ago, short, span, terminal
from healer.core.enums import Outcome, Reason, SettleStatus
from healer.core.records import FixAttempt
from healer.remedy.preconditions import CheckVerdict
from healer.store.db import CheckRecord

_SEV_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
_SETTLED = frozenset(Outcome) - {Outcome.RUNNING, Outcome.VERIFYING, Outcome.UNDOING}


def _sev_sorted(d: Mapping[str, int]) -> Sequence[tuple[str, int]]:
    return sorted(d.items(), key=lambda kv: _SEV_ORDER.get(kv[0], 9))


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M UTC")


def _errors_head(s: ErrorSummary, severity_label: str) -> list[str]:
    lines = [
        f"Errors in the last {span(s.window)}: {s.total_events} events, {s.incidents} incidents, "
        f"{s.fixable} fixable automatically"
    ]
    if s.by_severity:
        lines.append(f"{severity_label}: " + ", ".join(f"{k} {v}" for k, v in _sev_sorted(s.by_severity)))
    return lines


def errors_text(s: ErrorSummary, quote: Quote = terminal) -> str:
    lines = _errors_head(s, "By severity")
    if s.by_pattern:
        lines.append("By type:")
        for pid, n in sorted(s.by_pattern.items(), key=lambda kv: -kv[1])[:15]:
            lines.append(f"  {n:>6}  {quote(pid)}  ({s.tags.get(pid, 'notify only')})")
    if s.recent:
        lines.append("Incidents:")
        for inc in s.recent:
            src = f" sources={'+'.join(inc.sources)}" if len(inc.sources) > 1 else ""
            prio = s.priorities.get(inc.id)
            tag = f" {prio.value}" if prio is not None else ""
            lines.append(
                f"  #{inc.id}{tag} [{inc.severity.value}] {inc.status.value} ×{inc.count}{src} "
                f"{quote(inc.pattern_id)}: {quote(short(inc.message, 100))}"
            )
    return "\n".join(lines)


def health_text(h: HealthResult, quote: Quote = terminal) -> str:
    host = h.host
    lines = ["Host health"]
    for d in host.disks:
        if d.error:
            lines.append(f"  disk {quote(d.mount)}: error {quote(d.error)}")
        else:
            flag = "" if d.ok else "  ⚠"
            lines.append(f"  disk {quote(d.mount)}: {d.percent:.1f}% used, {d.free_bytes / 2**30:.1f} GiB free{flag}")
    lines.append(f"  memory {host.memory_percent:.1f}%, swap {host.swap_percent:.1f}%")
    lines.append(
        f"  load {host.load[0]:.2f} {host.load[1]:.2f} {host.load[2]:.2f} on {host.cpus} CPUs, "
        f"cpu {host.cpu_percent:.0f}%"
    )
    for svc in host.services:
        lines.append(f"  service {quote(svc.name)}: {'up' if svc.up else 'DOWN'} ({quote(svc.detail)})")
    lines += _errors_head(h.errors, "  by severity")
    lines.append(
        f"Kill switch: {'ON (no fixes run)' if h.kill_switch else 'off'}; "
        f"circuit breaker: {'OPEN (notify only)' if h.breaker_open else 'closed'}"
    )
    if h.recent:
        lines.append("Recent incidents:")
        for inc in h.recent:
            lines.append(
                f"  #{inc.id} [{inc.severity.value}] {inc.status.value} ×{inc.count} "
                f"{quote(inc.pattern_id)} ({ago(inc.last_seen, h.now)})"
            )
    if host.warnings:
        lines.append("Warnings: " + "; ".join(quote(w) for w in host.warnings))
    return "\n".join(lines)


def _revert(a: FixAttempt, now: float) -> str:
    """A timed revert (a model fallback going back to the primary): when it ran, or when it is due."""
    if a.reverted_at is not None:
        return f", reverted {ago(a.reverted_at, now)}"
    if a.revert_at is not None and a.outcome in (Outcome.VERIFYING, Outcome.SUCCEEDED):
        return f", reverts in {span(a.revert_at - now)}" if a.revert_at > now else ", revert due"
    return ""


def history_text(h: HistoryResult, quote: Quote = terminal) -> str:
    total = sum(h.outcomes.values())
    done = sum(n for o, n in h.outcomes.items() if o in _SETTLED)
    ok = h.outcomes.get(Outcome.SUCCEEDED, 0)
    rate = f"{100 * ok / done:.0f}%" if done else "n/a"
    lines = [f"Fix attempts: {total} total, {ok} succeeded, success rate {rate}"]
    if h.outcomes:
        lines.append("By outcome: " + ", ".join(f"{o.value} {n}" for o, n in sorted(h.outcomes.items())))
    for a in h.attempts:
        lines.append(
            f"  #{a.id} incident #{a.incident_id} {' → '.join(a.actions)}: {a.outcome.value} "
            f"({ago(a.started, h.now)}){_revert(a, h.now)} {quote(short(a.detail, 100))}"
        )
    if h.decisions:
        lines.append("Recent decisions:")
        for d in h.decisions:
            times = f" ×{d.count}" if d.count > 1 else ""
            lines.append(
                f"  #{d.id} incident #{d.incident_id} {quote(d.pattern_id)}: {d.verdict.value} "
                f"({d.reason.value}){times} {quote(short(d.detail, 80))}"
            )
    return "\n".join(lines)


def explain_text(x: ExplainResult, quote: Quote = terminal) -> str:
    """Everything healer knows and did about one incident, in order."""
    story = x.story
    if story is None:
        return f"No incident #{x.incident_id}."
    inc, now = story.incident, x.now
    lines = [
        f"Incident #{inc.id} [{inc.severity.value}] {inc.status.value}: pattern {quote(inc.pattern_id)}",
        f"  seen {inc.count}× from {'+'.join(inc.sources)}, first {ago(inc.first_seen, now)}, "
        f"last {ago(inc.last_seen, now)}",
        f"  last message: {quote(short(inc.message, 300))}",
    ]
    if x.triage is not None:
        lines.insert(1, f"  priority {x.triage.text()}")
    if story.events:
        lines.append("Recent events:")
        for ev in story.events[-5:]:
            lines.append(f"  {ago(ev.ts, now)} {ev.source} {quote(ev.origin)}: {quote(short(ev.message, 160))}")
            if ev.lines > 1 or ev.evidence:
                also = f"; also matched (evidence, no incident): {quote(', '.join(ev.evidence))}" if ev.evidence else ""
                lines.append(f"    one event of {ev.lines} lines{also}")
            if ev.elided:
                lines.append(
                    f"    and {ev.elided} more lines like it just before, in the same batch"
                    f" (file offsets {ev.elided_offsets}): counted, not stored one by one"
                )
    lines.append("Decisions:")
    for d in story.decisions:
        times = f" ×{d.count}" if d.count > 1 else ""
        lines.append(
            f"  #{d.id} {d.verdict.value} ({d.reason.value}){times} {ago(d.ts, now)} {quote(short(d.detail, 100))}"
        )
    lines.extend(_checks_lines(x.checks, now, quote))
    if story.attempts:
        lines.append("Fix attempts:")
        for a in story.attempts:
            lines.append(
                f"  #{a.id} {' → '.join(a.actions)}: {a.outcome.value}{_revert(a, now)} — {quote(short(a.detail, 200))}"
            )
            for st in a.steps:
                lines.append(f"      {st.action}: {st.outcome.value} {quote(short(st.detail, 120))}")
    return "\n".join(lines)


def _checks_lines(checks: Sequence[CheckRecord], now: float, quote: Quote) -> list[str]:
    """The newest few evaluations of the fix's preconditions, each verdict on its own line."""
    if not checks:
        return []
    lines = ["Preconditions (checked before each fix):"]
    for c in checks[-3:]:
        lines.append(f"  {ago(c.ts, now)}, for decision #{c.decision_id}:")
        for raw in c.verdicts:
            v = CheckVerdict.from_json(raw)
            lines.append(f"    {quote(short(v.line(), 200))}")
        for why in c.reviews:
            lines.append(f"    needs approval: {quote(short(why, 300))}")
    return lines


def status_text(s: StatusResult) -> str:
    breaker = "closed"
    if s.breaker_open:
        breaker = "OPEN — notify only" + (f" until {_clock(s.breaker_until)}" if s.breaker_until else "")
    c = s.counts
    return "\n".join(
        [
            "Status",
            f"Kill switch: {'ON — no fixes run' if s.kill_switch else 'off'} "
            "(change it in the config file; healer reloads it)",
            f"Circuit breaker: {breaker}",
            f"Dry run: {'on' if s.dry_run else 'off'}",
            f"Patterns: {s.patterns}; open incidents: {c.open_incidents}; "
            f"waiting for approval: {c.pending_approvals}; fixes running: {c.active_attempts}",
            *(
                f"Pattern file rejected: {r.error} ("
                + (f"its last good version, {r.kept} patterns, stays in force" if r.kept is not None else "not loaded")
                + ")"
                for r in s.rejected
            ),
        ]
    )


_REFUSED = {
    Reason.KILL_SWITCH: "the kill switch is ON in the config",
    Reason.DRY_RUN: "dry run is on in the config (healer only records what it would run)",
}


def outcomes_text(outcomes: Sequence[JobOutcome], quote: Quote = terminal) -> str:
    ok = failed = other = 0
    lines = []
    for o in outcomes:
        a, chain = o.attempt, " → ".join(o.actions)
        if a is None:
            other += 1
            lines.append(f"  • incident #{o.incident_id} {chain}: no attempt — {quote(o.note)}")
            continue
        if a.outcome is Outcome.RUNNING:
            other += 1
            lines.append(f"  • fix #{a.id} incident #{a.incident_id} {chain}: still running")
            continue
        if a.outcome in (Outcome.SUCCEEDED, Outcome.VERIFYING):
            ok += 1
            word = "succeeded" if a.outcome is Outcome.SUCCEEDED else "succeeded (verifying)"
        else:
            failed += 1
            word = a.outcome.value
        lines.append(
            f"  • fix #{a.id} incident #{a.incident_id} {' → '.join(a.actions)}: {word} — {quote(short(a.detail, 200))}"
        )
    head = f"Fixes: {len(outcomes)} attempted, {ok} succeeded, {failed} failed"
    if other:
        head += f", {other} other"
    return "\n".join([head, *lines])


def fix_text(r: FixReport, quote: Quote = terminal) -> str:
    if r.refused is not None:
        return f"Nothing was run: {_REFUSED.get(r.refused, r.refused.value)}."
    if not r.decisions:
        return "Nothing to fix: no open incident has an automatic fix."
    lines = []
    acted = {o.incident_id for o in r.outcomes}
    held = [d for d in r.decisions if d.incident_id not in acted]
    if held:
        lines.append("Not run:" if r.outcomes else "Nothing was run:")
        lines += [
            f"  incident #{d.incident_id} {quote(d.pattern_id)}: {d.verdict.value} ({d.reason.value}) "
            f"{quote(short(d.detail, 120))}"
            for d in held
        ]
    if r.outcomes:
        lines.insert(0, outcomes_text(r.outcomes, quote))
    return "\n".join(lines)


def _after_block(r: SettleReport) -> str:
    """What happens next to an approved fix a guardrail stopped: said so nobody waits for it."""
    reason = r.decision.reason if r.decision is not None else None
    again = "it will ask again the next time the error fires"
    if reason is Reason.BUDGET:
        return f"{again} once the hourly fix budget allows"
    if reason is Reason.CIRCUIT_OPEN and r.breaker_until is not None:
        return f"{again} after the circuit breaker closes at {_clock(r.breaker_until)}"
    if reason is Reason.IN_PROGRESS:
        return f"{again} after the fix in progress has finished"
    if reason in (Reason.MAX_ATTEMPTS, Reason.FAILED_BEFORE):
        return "it is escalated to a human and will not be retried automatically"
    return again


def settle_answer(r: SettleReport) -> str:
    """The short answer to a button press (Telegram shows it as a toast)."""
    if r.refused is not None or r.status is SettleStatus.KILL_SWITCH:
        return "Kill switch is ON: nothing ran." if r.refused is not Reason.DRY_RUN else "Dry run is on: nothing ran."
    if r.status is SettleStatus.DONE:
        return "Already decided."
    if r.status is SettleStatus.MISSING:
        return "Unknown approval."
    if r.status is SettleStatus.EXPIRED:
        return "Expired: nothing ran."
    if not r.approve:
        return "Rejected."
    if r.status is SettleStatus.BLOCKED:
        return "Approved, but not run: " + (r.decision.reason.value if r.decision else "blocked")
    return "Approved: running the fix."


def settle_text(r: SettleReport, who: str, quote: Quote = terminal) -> str:
    """The note appended to an approval message (and printed by ``healer approve``)."""
    if r.refused is not None or r.status is SettleStatus.KILL_SWITCH:
        why = _REFUSED.get(r.refused or Reason.KILL_SWITCH, "")
        return f"Approved by {quote(who)}, but {why}: nothing ran."
    if r.status is SettleStatus.EXPIRED:
        return "⌛ Expired: nothing ran."
    if r.status in (SettleStatus.DONE, SettleStatus.MISSING):
        return settle_answer(r)
    if not r.approve:
        return (
            f"❌ Rejected by {quote(who)}: nothing ran. If the error fires again, healer asks again"
            " (not before the pattern's cooldown); set approval: never in the pattern to stop asking."
        )
    if r.status is SettleStatus.BLOCKED:
        d = r.decision
        what = f"{d.reason.value} — {quote(short(d.detail, 160))}" if d is not None else "a guardrail stopped it"
        return f"Approved by {quote(who)}, but not run: {what}; {_after_block(r)}."
    if not r.outcomes:
        return f"✅ Approved by {quote(who)}: running…"
    return f"✅ Approved by {quote(who)}.\n" + outcomes_text(r.outcomes, quote)


_WOULD = {
    Would.RUN: "would run",
    Would.ASK: "would ask for approval",
    Would.REFUSE: "would be refused",
    Would.NOTIFY: "would notify only",
}


def line_text(x: LineExplanation, quote: Quote = terminal, no_match: str = "No pattern matches that text.") -> str:
    if not x.hits:
        return no_match
    lines = [f"That matches {len(x.hits)} pattern(s) (explained only; nothing was run):"]
    for h in x.hits:
        lines.append(f"• {quote(h.pattern_id)} [{h.severity.value}] {quote(short(h.description, 200))}")
        lines.append(f"  line: {quote(h.line[:200])}")
        if h.fix:
            lines.append(f"  fix: {quote(h.fix)}")
        lines.append(f"  here it {_WOULD[h.would]}: {quote(h.why)}")
        if h.groups:
            lines.append("  captured: " + ", ".join(f"{quote(k)}={quote(v[:80])}" for k, v in h.groups.items()))
    return "\n".join(lines)
