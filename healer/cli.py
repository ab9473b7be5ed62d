"""The ``healer`` command. It says the same facts the bot says."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from healer import __version__
from healer.app.ruleset import Ruleset, load_ruleset
from healer.core.errors import HealerError
from healer.core.logsetup import configure as configure_logging
from healer.settings.load import resolve_config_path
from healer.settings.types import parse_duration

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_CONFIG = 2


BLOCK_BYTES = 8 << 20


def line_blocks(path: str, size: int = BLOCK_BYTES) -> Iterator[bytes]:
    """A log file in large blocks of whole lines (a last line without newline gets one).

    Big blocks keep the per-call cost of the matcher and of each store
    transaction small next to the scanning itself.
    """
    with open(path, "rb") as fh:
        rest = b""
        while block := fh.read(size):
            cut = block.rfind(b"\n") + 1
            if not cut:
                rest += block
                continue
            yield rest + block[:cut] if rest else block if cut == len(block) else block[:cut]
            rest = block[cut:]
        if rest:
            yield rest + b"\n"


def _rules(args: argparse.Namespace) -> Ruleset:
    return load_ruleset(resolve_config_path(args.config))


def _store(rules: Ruleset):  # type: ignore[no-untyped-def]
    from healer.store.db import Store

    return Store(rules.settings.state_dir / "healer.db")


def cmd_run(args: argparse.Namespace) -> int:
    from healer.service.daemon import run

    return run(resolve_config_path(args.config))


def cmd_check(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.config)
    try:
        rules = load_ruleset(path)
    except HealerError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from healer.rules.patterns import check_examples

    failures = check_examples(rules.patterns)
    for err in rules.pattern_errors:
        print(f"pattern error: {err}", file=sys.stderr)
    for f in failures:
        print(
            f"example failure: {f.pattern.file}:{f.pattern.line} [{f.pattern.id}] {f.problem}: {f.line!r}",
            file=sys.stderr,
        )
    s = rules.settings
    print(
        f"config {path}: ok; {len(rules.patterns)} patterns from {len(rules.pattern_files)} files; "
        f"kill_switch={s.kill_switch} dry_run={s.dry_run} telegram={'on' if s.telegram.enabled else 'off'}"
    )
    return EXIT_CONFIG if rules.pattern_errors or failures else EXIT_OK


def cmd_test_pattern(args: argparse.Namespace) -> int:
    """fail2ban-regex for healer: run examples, or count matches over a real log."""
    from healer.app.ruleset import load_pattern_dirs
    from healer.rules.matcher import Matcher
    from healer.rules.patterns import check_examples

    dirs = [Path(p) for p in args.paths]
    if not dirs:
        try:
            rules = _rules(args)
            dirs = list(rules.settings.patterns_dirs)
            settings = rules.settings.actions
        except HealerError:
            from healer.core.paths import bundled_patterns_dir

            dirs, settings = [bundled_patterns_dir()], {}
    else:
        settings = {}
    res = load_pattern_dirs(dirs, settings)
    for err in res.errors:
        print(f"ERROR {err}")
    failures = check_examples(res.patterns)
    n_examples = sum(len(p.examples) + len(p.counter_examples) for p in res.patterns)
    for f in failures:
        print(f"FAIL {f.pattern.file}:{f.pattern.line} [{f.pattern.id}] {f.problem}: {f.line!r}")
    print(
        f"{len(res.patterns)} patterns, {n_examples} examples checked, {len(failures)} failures, "
        f"{len(res.errors)} bad files"
    )
    if args.log:
        matcher = Matcher(res.patterns)
        counts: Counter[str] = Counter()
        samples: dict[str, list[str]] = {}
        lines = 0
        for data in line_blocks(args.log):
            lines += data.count(b"\n")
            for hit in matcher.scan(data):
                counts[hit.pattern.id] += 1
                samples.setdefault(hit.pattern.id, [])
                if len(samples[hit.pattern.id]) < args.samples:
                    samples[hit.pattern.id].append(hit.line)
        print(f"\nLines: {lines}; matched lines per pattern:")
        for p in res.patterns:
            print(f"  {counts[p.id]:>8}  {p.id}")
            for s in samples.get(p.id, []):
                print(f"            | {s[:160]}")
        print(f"Total matches: {sum(counts.values())}")
    return EXIT_FAIL if failures or res.errors else EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from healer.core.clock import FakeClock
    from healer.engine.engine import Engine
    from healer.store.db import Store

    rules = _rules(args)
    settings = rules.settings.model_copy(update={"dry_run": True})
    tmp = None
    if args.state:
        state = Path(args.state)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="healer-replay-")
        state = Path(tmp.name)
    store = Store(state / "healer.db")
    clock = FakeClock(time.time())
    engine = Engine(settings, rules.patterns, store, clock=clock)
    matches = 0
    lines = 0
    t0 = time.perf_counter()
    for data in line_blocks(args.log):
        # Same count as data.count(b"\n"), ~3x faster: replace() finds newlines with memchr.
        lines += len(data) - len(data.replace(b"\n", b""))
        matches += engine.ingest_buffer(data, args.service, args.log).matched
    elapsed = time.perf_counter() - t0
    incidents = store.incidents(limit=100_000)
    if args.json:
        for inc in incidents:
            last = store.last_decision(inc.id)
            print(
                json.dumps(
                    {
                        "incident": inc.id,
                        "pattern": inc.pattern_id,
                        "severity": inc.severity.value,
                        "count": inc.count,
                        "message": inc.message[:300],
                        "verdict": last.verdict.value if last else None,
                        "reason": last.reason.value if last else None,
                        "would": last.detail if last else "",
                    }
                )
            )
        print(
            json.dumps(
                {
                    "summary": {
                        "lines": lines,
                        "matches": matches,
                        "incidents": len(incidents),
                        "seconds": round(elapsed, 3),
                    }
                }
            )
        )
    else:
        print(f"Replayed {lines} lines in {elapsed:.2f}s: {matches} matches, {len(incidents)} incidents (dry run)")
        for inc in sorted(incidents, key=lambda i: -i.count)[: args.limit]:
            last = store.last_decision(inc.id)
            what = f"{last.verdict.value} ({last.reason.value}) {last.detail}" if last else "-"
            print(f"  #{inc.id} ×{inc.count} [{inc.severity.value}] {inc.pattern_id}: {what}")
    store.close()
    if tmp is not None:
        tmp.cleanup()
    return EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    from healer.app.health import collect
    from healer.app.reports import health_report
    from healer.engine.engine import Engine

    rules = _rules(args)
    store = _store(rules)
    engine = Engine(rules.settings, rules.patterns, store)
    h = collect(rules.settings.health)
    print(health_report(h, store, engine.by_id, rules.settings.kill_switch, engine.breaker_open(time.time())))
    return EXIT_OK


def cmd_errors(args: argparse.Namespace) -> int:
    from healer.app.reports import errors_report

    rules = _rules(args)
    store = _store(rules)
    since = time.time() - parse_duration(args.since)
    print(errors_report(store, {p.id: p for p in rules.patterns}, since))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from healer.app.reports import history_report

    rules = _rules(args)
    print(history_report(_store(rules), limit=args.limit))
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from healer.app.reports import explain_report

    rules = _rules(args)
    print(explain_report(_store(rules), args.incident))
    return EXIT_OK


def cmd_fix(args: argparse.Namespace) -> int:
    from healer.engine.engine import Engine

    rules = _rules(args)
    store = _store(rules)
    engine = Engine(rules.settings, rules.patterns, store)
    if rules.settings.kill_switch:
        print("Kill switch is ON in the config: no fixes run.")
        store.audit("fix_requested", "cli", {"refused": "kill_switch"}, time.time())
        return EXIT_OK
    res = engine.fix_open("cli")
    attempted = ok = failed = 0
    for d in res.decisions:
        print(f"  incident #{d.incident_id} {d.pattern_id}: {d.verdict.value} ({d.reason.value}) {d.detail}")
    for job in res.jobs:
        attempt = engine.run_job(job)
        if attempt is None:
            continue
        attempted += 1
        good = attempt.outcome.value in ("succeeded", "verifying")
        ok += good
        failed += not good
        print(f"  fix #{attempt.id} incident #{attempt.incident_id}: {attempt.outcome.value} {attempt.detail}")
    print(
        f"Attempted {attempted}, succeeded {ok}, failed {failed}; "
        f"{len(res.decisions) - len(res.jobs)} not attempted (see reasons above)"
    )
    return EXIT_OK if failed == 0 else EXIT_FAIL


def cmd_approve(args: argparse.Namespace) -> int:
    from healer.engine.engine import Engine

    rules = _rules(args)
    engine = Engine(rules.settings, rules.patterns, _store(rules))
    settled = engine.settle_approval(args.decision, args.cmd == "approve", "cli")
    status, job = settled.status, settled.job
    why = f" ({settled.decision.reason}: {settled.decision.detail})" if status == "blocked" and settled.decision else ""
    print(f"decision #{args.decision}: {status}{why}")
    if job is not None:
        attempt = engine.run_job(job)
        if attempt is not None:
            print(f"fix #{attempt.id}: {attempt.outcome.value} {attempt.detail}")
    return EXIT_OK if status == "ok" else EXIT_FAIL


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="healer", description="Self-healing daemon for Linux hosts.")
    p.add_argument("--version", action="version", version=f"healer {__version__}")
    p.add_argument("-c", "--config", help="config file (default: $HEALER_CONFIG or /etc/healer/config.yaml)")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name: str, fn: object, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("-c", "--config", default=argparse.SUPPRESS, help="config file")
        sp.set_defaults(fn=fn)
        return sp

    add("run", cmd_run, "run the daemon in the foreground")
    add("check", cmd_check, "validate config and patterns; exit 0, or 2 with the errors")
    tp = add("test-pattern", cmd_test_pattern, "run pattern examples; with --log, count matches in a log")
    tp.add_argument("paths", nargs="*", help="pattern files or directories (default: the configured ones)")
    tp.add_argument("--log", help="a log file to match, like fail2ban-regex")
    tp.add_argument("--samples", type=int, default=3, help="sample lines shown per pattern")
    rp = add("replay", cmd_replay, "run the whole engine in dry run over a log file")
    rp.add_argument("log")
    rp.add_argument("--json", action="store_true", help="one JSON object per incident, then a summary")
    rp.add_argument("--service", default="replay")
    rp.add_argument("--state", help="keep the replay's store in this directory")
    rp.add_argument("--limit", type=int, default=30)
    add("health", cmd_health, "host health report")
    ep = add("errors", cmd_errors, "error report")
    ep.add_argument("--since", default="1h", help="window, e.g. 30m, 6h, 2d (default 1h)")
    add("fix", cmd_fix, "attempt fixes for open incidents, with every guardrail applied")
    hp = add("history", cmd_history, "fix attempts, outcomes and success rate")
    hp.add_argument("--limit", type=int, default=15)
    xp = add("explain", cmd_explain, "everything known and done about one incident")
    xp.add_argument("incident", type=int)
    for verb in ("approve", "reject"):
        ap = add(verb, cmd_approve, f"{verb} a pending fix by decision id")
        ap.add_argument("decision", type=int)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd != "run":
        configure_logging("warning", stream=sys.stderr)
    try:
        rc: int = args.fn(args)
        return rc
    except HealerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
