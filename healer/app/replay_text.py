"""What ``healer replay`` prints: per incident, what the daemon would have done with it, and how often.

Each incident gets the outcome that matters most first (would run, would
ask, would be refused, would escalate, would be skipped, notify only), with
the count of matches each covered and the reason and detail of the newest
decision of that kind, so "skipped 49 (cooldown: last fix 12s ago)" says
why a storm was one fix and not fifty.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

from healer.app.results import ReplayDecision, ReplayIncident, ReplayReport, Would
from healer.app.text import terminal

_SAY = {
    Would.RUN: "would run",
    Would.ASK: "would ask",
    Would.REFUSE: "would be refused",
    Would.ESCALATE: "would escalate",
    Would.SHADOW: "shadow, never acts",
    Would.SKIP: "would be skipped",
    Would.NOTIFY: "notify only",
}


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "es" if word.endswith(("ch", "x")) else "s")


def incident_lines(r: ReplayIncident, timestamps: bool) -> list[str]:
    """The incident's headline, then one line per outcome: each fix or question on its own, skips by reason."""
    inc = r.incident
    out = [f"  #{inc.id} ×{inc.count} [{inc.severity.value}] {inc.pattern_id}:"]
    for would in r.tally():
        mine = [d for d in r.decisions if d.would is would]
        matches = _plural(sum(d.count for d in mine), "match")
        if would in (Would.RUN, Would.ASK, Would.REFUSE):
            # Each is its own decision: a fix that would start, or a question that would be asked.
            more = " …" if len(mine) > 5 else ""
            when = f" at {', '.join(_when(d.ts) for d in mine[:5])}{more}" if timestamps else ""
            what = "fix" if would is not Would.ASK else "question"
            detail = mine[-1].detail
            for said in ("would run ", "would ask to run ", "would be refused: "):
                detail = detail.removeprefix(said)
            out.append(f"      {_SAY[would]}: {_plural(len(mine), what)} ({matches}){when}: {terminal(detail)}")
            continue
        by_reason: dict[str, list[ReplayDecision]] = {}
        for d in mine:
            by_reason.setdefault(d.reason.value, []).append(d)
        why = ", ".join(
            f"{reason} ×{sum(d.count for d in ds)} (last: {terminal(ds[-1].detail)})"
            for reason, ds in by_reason.items()
        )
        out.append(f"      {_SAY[would]}: {matches}: {why}")
    return out


def replay_text(report: ReplayReport, limit: int) -> Iterator[str]:
    yield (
        f"Replayed {report.lines} lines in {report.seconds:.2f}s: {report.matches} matches, "
        f"{len(report.incidents)} incidents (dry run"
        + (", windows on the lines' own timestamps" if report.timestamps else ", every line read at one instant")
        + ")"
        + (f"; {report.cut} long lines cut" if report.cut else "")
        + (f"; {report.undated} events without a timestamp took the one before" if report.undated else "")
    )
    for r in sorted(report.incidents, key=lambda i: -i.incident.count)[:limit]:
        yield from incident_lines(r, report.timestamps)


def replay_json(report: ReplayReport) -> Iterator[str]:
    for r in report.incidents:
        inc, last = r.incident, r.last
        tally = r.tally()
        row = {
            "incident": inc.id,
            "pattern": inc.pattern_id,
            "severity": inc.severity.value,
            "count": inc.count,
            "message": inc.message[:300],
            "outcome": next(iter(tally), Would.NOTIFY).value,
            "outcomes": {w.value: n for w, n in tally.items()},
            "decisions": [
                {"would": d.would.value, "reason": d.reason.value, "count": d.count, "ts": d.ts, "detail": d.detail}
                for d in r.decisions
            ],
            "verdict": last.verdict.value if last else None,
            "reason": last.reason.value if last else None,
            "would": last.detail if last else "",
        }
        yield json.dumps(row)
    summary = {
        "lines": report.lines,
        "matches": report.matches,
        "incidents": len(report.incidents),
        "cut": report.cut,
        "seconds": round(report.seconds, 3),
        "timestamps": report.timestamps,
        "undated": report.undated,
    }
    yield json.dumps({"summary": summary})
