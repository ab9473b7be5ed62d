"""The ``healer`` command. It says the same facts the bot says.

Every report command builds the ``Healer`` facade and prints what its
renderer in ``healer.app.reports`` makes of the result: the same functions
the bot uses. Bad input (a duration that is not one, a file that is not
there) is one line on stderr and exit 2, never a traceback; log text is
printed with control characters escaped, because a log line must not be
able to drive the operator's terminal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from healer import __version__
from healer.core.errors import HealerError, InputError

if TYPE_CHECKING:
    from healer.app.ruleset import Ruleset
    from healer.app.usecases import Healer
    from healer.core.jobs import Job
    from healer.core.records import FixAttempt
    from healer.service.control_proto import Verb
    from healer.settings.schema import Settings
    from healer.store.db import Store

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2  # bad config or bad input: the operator must change something
EXIT_CONFIG = EXIT_USAGE


UsageError = InputError  # input the CLI cannot use: printed as one line, exit 2


# The settings schema, the action registry and structlog cost most of a second to import: every
# command imports what it needs when it runs, so `healer --help` and a usage error pay none of it.


def load_ruleset(path: Path, environ: Mapping[str, str] | None = None) -> Ruleset:
    from healer.app.ruleset import load_ruleset as load

    return load(path, environ)


def resolve_config_path(config: str | None) -> Path:
    from healer.settings.load import resolve_config_path as resolve

    return resolve(config)


def parse_duration(text: str) -> float:
    from healer.settings.types import parse_duration as parse

    return parse(text)


def open_log(path: str) -> AbstractContextManager[BinaryIO]:
    from healer.app.lines import open_log as opener

    return opener(path)


def _rules(args: argparse.Namespace) -> Ruleset:
    return load_ruleset(resolve_config_path(args.config))


def _store(rules: Ruleset) -> Store:
    from healer.store.db import Store

    return Store(rules.settings.state_dir / "healer.db")


def _healer(rules: Ruleset, store: Store) -> Healer:
    """The facade over this command's store; the engine (and its matcher) is built only if a use case needs it."""
    from healer.app.usecases import Healer
    from healer.core.clock import SystemClock
    from healer.engine.engine import Engine

    clock = SystemClock()
    healer: Healer

    def run_inline(jobs: Sequence[Job]) -> list[FixAttempt | None]:
        return [healer.engine.run_job(j) for j in jobs]

    def engine() -> Engine:
        return Engine(rules.settings, rules.patterns, store, clock=clock)

    healer = Healer(lambda: rules, store, engine, clock, run_inline)
    return healer


def _duration(text: str, option: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: {exc}") from None


def _count(text: str, least: int = 1) -> int:
    """An argparse type: a whole number >= ``least`` (``--limit``, ``--samples``)."""
    if not text.isdigit() or int(text) < least:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number, {least} or more")
    return int(text)


def _listed(text: str) -> int:
    """Replay's ``--limit``: 0 lists no incident, only the summary (the benchmarks time just that)."""
    return _count(text, 0)


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
    from healer.app.preflight import check_report

    report = check_report(rules, path)
    for line in report.errors:
        print(line, file=sys.stderr)
    print("\n".join(report.lines))
    return EXIT_OK if report.ok else EXIT_CONFIG


def cmd_setup(args: argparse.Namespace) -> int:
    """Inspect an app directory, show the app block, and merge it into the config (checked before it is written)."""
    from healer.app import setup
    from healer.app.setup_merge import merged_problem, parse_fallbacks

    root = Path(args.dir)
    if not root.is_dir():
        raise UsageError(f"setup {args.dir!r}: not a directory")
    path = resolve_config_path(args.config)
    try:
        fallbacks = parse_fallbacks(args.fallback)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    conf = Path(args.supervisor_conf) if args.supervisor_conf else None
    found = setup.inspect(root, name=args.name, fallbacks=fallbacks, supervisor_conf=conf)
    if not args.yes and sys.stdin.isatty():
        for key, provider in found.ask.items():
            model = input(f"fallback model for {key} ({provider}) on a rate limit (empty: none): ").strip()
            if model:
                fallbacks[provider] = model
        if found.ask:
            found = setup.inspect(root, name=args.name, fallbacks=fallbacks, supervisor_conf=conf)
    timings = {
        "stay_up": None if args.stay_up is None else _duration(args.stay_up, "--stay-up"),
        "revert_after": None if args.revert_after is None else _duration(args.revert_after, "--revert-after"),
        "grace": None if args.restart_grace is None else _duration(args.restart_grace, "--restart-grace"),
    }
    setup.set_timings(found, **timings)
    print(setup.block_text(found), end="")
    for note in found.notes:
        print(f"note: {note}")
    problem = merged_problem(path, found)
    if problem is not None:
        print(f"config error: the merged config would not load: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    print(setup.write_app(path, found))
    return EXIT_OK


def cmd_test_pattern(args: argparse.Namespace) -> int:
    """fail2ban-regex for healer: run examples, or count matches over a real log."""
    from healer.app import patterntest
    from healer.app.ruleset import load_pattern_dirs
    from healer.core.paths import BUNDLED, bundled_patterns_dir
    from healer.rules.assemble import Limits
    from healer.rules.samples import check_examples
    from healer.settings.schema import SourcesSettings

    dirs = [bundled_patterns_dir() if p == BUNDLED else Path(p) for p in args.paths]
    sources = SourcesSettings()
    config: Settings | None = None
    if not dirs:
        try:
            rules = _rules(args)
            dirs = list(rules.settings.patterns_dirs)
            config = rules.settings
            sources = rules.settings.sources
        except HealerError:
            dirs = [bundled_patterns_dir()]
    res = load_pattern_dirs(dirs, config.actions if config else {}, config)
    for err in res.errors:
        print(f"ERROR {err}", file=sys.stderr if args.json else sys.stdout)
    failures = check_examples(res.patterns)
    n_examples = sum(len(p.examples) + len(p.counter_examples) for p in res.patterns)
    for f in failures:
        print(
            f"FAIL {f.pattern.file}:{f.pattern.line} [{f.pattern.id}] {f.problem}: {f.line!r}",
            file=sys.stderr if args.json else sys.stdout,
        )
    print(
        f"{len(res.patterns)} patterns, {n_examples} examples checked, {len(failures)} failures, "
        f"{len(res.errors)} bad files",
        file=sys.stderr if args.json else sys.stdout,  # --json keeps stdout one verdict per line
    )
    limits = Limits.of(sources.multiline)
    if args.log:
        with open_log(args.log) as fh:
            if args.json:
                out = patterntest.verdicts_json(fh, res.patterns, sources.max_line_bytes, limits)
            else:
                out = patterntest.match_counts(fh, res.patterns, sources.max_line_bytes, limits, args.samples)
            for line in out:
                print(line)
    gate: list[str] = []
    if args.corpus:
        lines, gate = patterntest.score_corpus(Path(args.corpus), res.patterns)
        print("\n".join(lines))
    return EXIT_FAIL if failures or res.errors or gate else EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """The daemon's engine, in dry run, over a log file: lines are file events, cut as the tailer cuts them."""
    from healer.app.replay import replay_file
    from healer.app.replay_text import replay_json, replay_text
    from healer.core.enums import SourceName

    rules = _rules(args)
    with open_log(args.log) as fh:
        report = replay_file(rules, fh, args.state, args.service, args.log, SourceName(args.source), args.timestamps)
    for line in replay_json(report) if args.json else replay_text(report, args.limit):
        print(line)
    return EXIT_OK


def _report(args: argparse.Namespace) -> Healer:
    rules = _rules(args)
    return _healer(rules, _store(rules))


def _act(args: argparse.Namespace, verb: Verb, target: int, offline: Callable[[], int]) -> int:
    from healer.service.control_client import act

    return act(resolve_config_path(args.config), args, verb, target, offline)


def _read(args: argparse.Namespace, verb: Verb, offline: Callable[[], int]) -> int:
    from healer.service.control_client import read

    return read(resolve_config_path(args.config), args, verb, offline)


def cmd_health(args: argparse.Namespace) -> int:
    from healer.app.reports import health_text
    from healer.service.control_proto import Verb

    def offline() -> int:
        print(health_text(_report(args).health()))
        return EXIT_OK

    return _read(args, Verb.HEALTH, offline)


def cmd_errors(args: argparse.Namespace) -> int:
    from healer.app.reports import errors_text

    window = _duration(args.since, "--since")
    print(errors_text(_report(args).errors(window)))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from healer.app.reports import history_text

    print(history_text(_report(args).history(args.limit)))
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from healer.app.reports import explain_text

    result = _report(args).explain(args.incident)
    print(explain_text(result))
    return EXIT_OK if result.story is not None else EXIT_FAIL


def cmd_status(args: argparse.Namespace) -> int:
    from healer.app.reports import status_text
    from healer.service.control_proto import Verb

    def offline() -> int:
        print(status_text(_report(args).status()))
        return EXIT_OK

    return _read(args, Verb.STATUS, offline)


def cmd_fix(args: argparse.Namespace) -> int:
    from healer.app.reports import fix_text
    from healer.core.enums import Outcome
    from healer.service.control_proto import Verb

    def offline() -> int:
        report = _report(args).fix_open("cli")
        print(fix_text(report))
        good = (Outcome.SUCCEEDED, Outcome.VERIFYING)
        failed = [o for o in report.outcomes if o.attempt is not None and o.attempt.outcome not in good]
        return EXIT_FAIL if failed else EXIT_OK

    return _act(args, Verb.FIX, 0, offline)


def cmd_approve(args: argparse.Namespace) -> int:
    from healer.app.reports import settle_text
    from healer.core.enums import SettleStatus
    from healer.service.control_proto import Verb

    def offline() -> int:
        report = _report(args).settle(args.decision, args.cmd == "approve", "cli (offline)")
        print(f"decision #{args.decision}: {settle_text(report, 'cli (offline)')}")
        return EXIT_OK if report.status is SettleStatus.OK and report.refused is None else EXIT_FAIL

    return _act(args, Verb(args.cmd), args.decision, offline)


def cmd_undo(args: argparse.Namespace) -> int:
    from healer.service.control_proto import Verb

    def offline() -> int:
        ok, text = _report(args).undo(args.attempt, "cli (offline)")
        print(text)
        return EXIT_OK if ok else EXIT_FAIL

    return _act(args, Verb.UNDO, args.attempt, offline)


def _operator() -> str:
    """Who ran the command, for the audit entry (``cli:<login>``)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def cmd_patterns(args: argparse.Namespace) -> int:
    """List every pattern with its mode, figures and recommendation; ``promote``/``demote`` ID change its mode."""
    from healer.app.lifecycle import patterns_text
    from healer.core.enums import PatternMode

    healer = _stated(args)
    if args.verb is None:
        print(patterns_text(healer.patterns()))
        return EXIT_OK
    if args.id is None:
        raise UsageError(f"healer patterns {args.verb} needs a pattern id")
    mode = PatternMode.ACTIVE if args.verb == "promote" else PatternMode.SHADOW
    print(healer.set_mode(args.id, mode, _operator(), args.why or ""))
    return EXIT_OK


def cmd_mark(args: argparse.Namespace) -> int:
    from healer.app.lifecycle import mark_text

    print(mark_text(_stated(args).mark_wrong(args.incident, _operator())))
    return EXIT_OK


def _stated(args: argparse.Namespace) -> Healer:
    """The facade over ``--state DIR``'s store (a replay's), else the config's ``state_dir``."""
    from healer.store.db import Store

    rules = _rules(args)
    return _healer(rules, Store(Path(args.state) / "healer.db") if args.state else _store(rules))


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
    su = add("setup", cmd_setup, "inspect an app directory and add its apps: block to the config")
    su.add_argument("dir", help="the app's directory (venv, checkout, .env, logs)")
    su.add_argument("--name", help="the app's name (default: the directory's name)")
    su.add_argument("--supervisor-conf", help="supervisord.conf to look for the app's program in")
    su.add_argument(
        "--fallback",
        action="append",
        default=[],
        metavar="PROVIDER=MODEL",
        help="the model to switch to on a rate limit, e.g. openai=gpt-4o-mini (repeatable)",
    )
    su.add_argument("--stay-up", help="how long a restarted service must stay up to count as fixed, e.g. 5s")
    su.add_argument("--revert-after", help="when a fallback model goes back to the primary, e.g. 1h")
    su.add_argument("--restart-grace", help="a restart's verify grace (actions.restart.verify_grace), e.g. 10s")
    su.add_argument("--yes", action="store_true", help="ask nothing; leave out what cannot be inferred")
    tp = add("test-pattern", cmd_test_pattern, "run pattern examples; with --log, count matches in a log")
    tp.add_argument(
        "paths", nargs="*", help="pattern files or directories, or 'bundled' (default: the configured ones)"
    )
    tp.add_argument("--log", help="a log file to match, like fail2ban-regex")
    tp.add_argument("--samples", type=_count, default=3, help="sample lines shown per pattern")
    tp.add_argument("--json", action="store_true", help="with --log: one JSON verdict per input line (see README)")
    tp.add_argument(
        "--corpus", help="a labelled corpus directory (tests/data/corpus format): precision and recall per family"
    )
    rp = add("replay", cmd_replay, "run the whole engine in dry run over a log file")
    rp.add_argument("log")
    rp.add_argument("--json", action="store_true", help="one JSON object per incident, then a summary")
    rp.add_argument("--service", default="replay", help="the service name the lines are tagged with")
    rp.add_argument("--source", default="file", choices=["file", "journald"],
                    help="the source the lines count as for patterns with sources: (default file)")  # fmt: skip
    rp.add_argument("--state", help="keep the replay's store in this directory")
    rp.add_argument("--timestamps", action="store_true",
                    help="windows and cooldowns on the lines' own timestamps, as the daemon read them")  # fmt: skip
    rp.add_argument("--limit", type=_listed, default=30, help="incidents listed (0: only the summary)")
    offline = "do it in this process, not through the running daemon (Telegram is not told)"
    reads = "read the config file and the store, not the running daemon's live state"
    add("health", cmd_health, "host health report").add_argument("--offline", action="store_true", help=reads)
    ep = add("errors", cmd_errors, "error report")
    ep.add_argument("--since", default="1h", help="window, e.g. 30m, 6h, 2d (default 1h)")
    st = add("status", cmd_status, "kill switch, dry run, circuit breaker and what is open or waiting")
    st.add_argument("--offline", action="store_true", help=reads)
    fx = add("fix", cmd_fix, "attempt fixes for open incidents, with every guardrail applied")
    fx.add_argument("--offline", action="store_true", help=offline)
    hp = add("history", cmd_history, "fix attempts, outcomes and success rate")
    hp.add_argument("--limit", type=_count, default=15)
    xp = add("explain", cmd_explain, "everything known and done about one incident")
    xp.add_argument("incident", type=int)
    up = add("undo", cmd_undo, "put back a fix that worked, by attempt id (shown as 'undo: healer undo N')")
    up.add_argument("attempt", type=int)
    up.add_argument("--offline", action="store_true", help=offline)
    pp = add("patterns", cmd_patterns, "every pattern's mode and figures; promote or demote one (shadow/active)")
    pp.add_argument("verb", nargs="?", choices=["promote", "demote"], help="promote: shadow -> active; demote back")
    pp.add_argument("id", nargs="?", help="the pattern id to promote or demote")
    pp.add_argument("--why", help="recorded with the audit entry")
    pp.add_argument("--state", help="read this store's directory instead of state_dir (e.g. a replay's --state)")
    mp = add("mark", cmd_mark, "mark an incident's match wrong ('not this'): it counts against promotion")
    mp.add_argument("incident", type=int)
    mp.add_argument("verdict", choices=["wrong"], help="wrong: the pattern should not have matched this")
    mp.add_argument("--state", help="mark in this store's directory instead of state_dir (e.g. a replay's --state)")
    for verb in ("approve", "reject"):
        ap = add(verb, cmd_approve, f"{verb} a pending fix by decision id")
        ap.add_argument("decision", type=int)
        ap.add_argument("--offline", action="store_true", help=offline)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd != "run":
        from healer.core.logsetup import configure as configure_logging

        configure_logging("warning", stream=sys.stderr)
    try:
        rc: int = args.fn(args)
        return rc
    except HealerError as exc:  # config or input the operator must fix: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
