#!/usr/bin/env python3
"""Generate a realistic, reproducible Python-app log for matcher benchmarks.

    python bench/genlog.py --lines 1000000 --seed 42 --out bench/data/app.log
    python bench/genlog.py --ere > bench/patterns.ere

About 1 % of the lines belong to error events, and the events are built from
the ``examples`` of the bundled patterns (``patterns/*.yaml``), so every
family the daemon knows about shows up, in proportion, next to the INFO/DEBUG
noise it must ignore. Python exceptions are written as real multi-line
tracebacks (header, indented ``File`` frames, exception line), the way they
land in a log file.

``--ere`` prints the bundled regexes in GNU ``grep -E`` syntax, one per line,
so a plain ``grep -E -c -f bench/patterns.ere LOG`` is a baseline to compare
the matcher against. ``ignore`` regexes are *not* applied there (grep -f has
no per-pattern negation); see ``ere_ignores`` for per-pattern use.

Only the standard library, PyYAML and google-re2 (both healer dependencies)
are used, so the generator runs from the healer venv with no extras.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
PATTERNS_DIR = REPO / "patterns"

# Share of all lines that belong to error events (header + frames + error).
ERROR_SHARE = 0.01
# Lines are built and written in chunks: one join + one write per chunk keeps
# the per-line cost at a few list appends, which is what makes 1M lines fast.
CHUNK = 50_000
# Start of the synthetic clock; fixed so the output depends only on the seed.
EPOCH = 1_714_564_800  # 2024-05-01T12:00:00Z


# --------------------------------------------------------------------------
# Patterns


@dataclass(frozen=True)
class Pattern:
    id: str
    family: str  # the YAML file stem: rate_limit, git, ...
    regex: str
    ignore: tuple[str, ...]
    examples: tuple[str, ...]
    counter_examples: tuple[str, ...]


def load_patterns(directory: Path = PATTERNS_DIR) -> list[Pattern]:
    """Read the bundled pattern files directly with yaml.safe_load.

    Deliberately independent of healer's own loader so the benchmark input
    does not change when the loader does.
    """
    out: list[Pattern] = []
    for path in sorted(directory.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for p in doc.get("patterns") or []:
            # An example spanning lines (an assembled multi-line event) is no single log line.
            examples = (e if isinstance(e, str) else e["line"] for e in p.get("examples") or ())
            out.append(
                Pattern(
                    id=p["id"],
                    family=path.stem,
                    regex=p["regex"],
                    ignore=tuple(p.get("ignore") or ()),
                    examples=tuple(e for e in examples if "\n" not in e),
                    counter_examples=tuple(e for e in p.get("counter_examples") or () if "\n" not in e),
                )
            )
    return out


# --------------------------------------------------------------------------
# RE2 -> GNU ERE

_CLASS_ESCAPES = {
    "d": "[0-9]",
    "D": "[^0-9]",
    "s": "[[:space:]]",
    "S": "[^[:space:]]",
    "w": "[[:alnum:]_]",
    "W": "[^[:alnum:]_]",
    # A newline joins the lines of an assembled multi-line event; grep sees one line at a
    # time, where such an alternative can never match: "$^" (end, then start) matches nothing.
    "n": "$^",
}
# GNU grep -E understands these escapes with the same meaning as RE2.
_PASS_ESCAPES = set(".()[]{}*+?|^$\\/-'\"b<>:=,_ ")


def to_ere(regex: str) -> str:
    """Translate one RE2/Python regex, as used in patterns, to GNU ERE.

    Supports the subset the bundled patterns use; anything else raises
    ValueError rather than emitting an ERE that silently means something
    different (which would make the grep baseline lie).
    """
    out: list[str] = []
    i, n = 0, len(regex)
    while i < n:
        c = regex[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValueError(f"trailing backslash in {regex!r}")
            e = regex[i + 1]
            if e in _CLASS_ESCAPES:
                out.append(_CLASS_ESCAPES[e])
            elif e in _PASS_ESCAPES:
                out.append("\\" + e)
            else:
                raise ValueError(f"unsupported escape \\{e} in {regex!r}")
            i += 2
        elif c == "[":
            # Copy the bracket expression verbatim; a backslash inside one is
            # a literal in POSIX but an escape in RE2, so refuse it.
            j = i + 1
            if j < n and regex[j] == "^":
                j += 1
            if j < n and regex[j] == "]":
                j += 1
            body = regex[i:j]
            while j < n and regex[j] != "]":
                if regex.startswith("\\n", j):
                    # grep reads one line at a time: a newline is never there to match or exclude.
                    j += 2
                    continue
                if regex[j] == "\\":
                    raise ValueError(f"backslash inside [...] in {regex!r}")
                k = j + 1
                if regex.startswith("[:", j):  # POSIX class, e.g. [:space:]
                    k = regex.index(":]", j + 2) + 2
                body += regex[j:k]
                j = k
            if j >= n:
                raise ValueError(f"unterminated [...] in {regex!r}")
            out.append(body + "]")
            i = j + 1
        elif c == "(":
            if regex.startswith("(?:", i):
                out.append("(")
                i += 3
            elif regex.startswith("(?P<", i):
                out.append("(")
                i = regex.index(">", i) + 1
            elif regex.startswith("(?", i):
                raise ValueError(f"unsupported group/flag syntax in {regex!r}")
            else:
                out.append("(")
                i += 1
        elif c in "*+?}" and i + 1 < n and regex[i + 1] == "?":
            raise ValueError(f"non-greedy quantifier in {regex!r}")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def ere_lines(patterns: list[Pattern]) -> list[str]:
    return [to_ere(p.regex) for p in patterns]


def ere_ignores(pattern: Pattern) -> list[str]:
    """A pattern's ignore regexes in ERE, for `grep -E -e RX | grep -v -E -e IGN`."""
    return [to_ere(r) for r in pattern.ignore]


# --------------------------------------------------------------------------
# Log content

LOGGERS = (
    "app", "app.api", "app.api.routes", "app.worker", "app.worker.jobs",
    "app.db", "app.cache", "app.llm.client", "app.scheduler", "app.auth",
    "uvicorn.access", "uvicorn.error", "httpx", "urllib3.connectionpool",
    "celery.worker", "sqlalchemy.engine", "apscheduler.scheduler",
)  # fmt: skip
# Level mix for noise: mostly INFO, a fair bit of DEBUG, a little WARNING.
NOISE_LEVELS = ("INFO",) * 12 + ("DEBUG",) * 6 + ("WARNING",)

PATHS = ("/api/v1/items", "/api/v1/users/{n}", "/health", "/api/v1/orders/{n}/items",
         "/metrics", "/api/v1/search?q=widget&page={n}", "/static/app.{h}.js")  # fmt: skip
METHODS = ("GET",) * 6 + ("POST", "PUT", "DELETE")

NOISE_TEMPLATES = (
    '{ip}:{port} - "{method} {path} HTTP/1.1" {status} {size} {ms}ms ua="Mozilla/5.0 (X11; Linux x86_64)"',
    "request_id={h} user_id={n} {method} {path} completed status={status} duration_ms={ms} bytes={size}",
    "job {h} picked up by worker-{w} queue=default attempt=1 eta=None args=({n},) kwargs={{}}",
    "job {h} finished in {ms}ms result=ok rows_processed={n} queue=default worker=worker-{w}",
    "SELECT items.id, items.name, items.price FROM items WHERE items.owner_id = %(owner_id)s LIMIT {w}",
    "cache hit key=user:{n}:profile ttl={w}s size={size}B hit_ratio=0.{ms} node=cache-{w}",
    "cache miss key=session:{h} fetching from db took {ms}ms, stored with ttl=300s",
    'HTTP Request: POST https://api.example.com/v1/chat/completions "HTTP/1.1 200 OK" in {ms}ms',
    "llm call model=primary prompt_tokens={n} completion_tokens={size} latency_ms={ms} cached=False",
    "rate limit headroom {w}/100 for tenant {h}, next window in {ms}ms",
    "retry timeout set to {w}s for upstream api.example.com (attempt 1 of 3), backoff=exponential",
    "imported module yaml version 6.0.1 from /srv/app/.venv/lib/python3.11/site-packages",
    "scheduler tick: {w} jobs due, next run at +{ms}ms, misfire_grace_time=30s, coalesce=True",
    "Starting new HTTPS connection (1): api.example.com:443 pool_maxsize={w} block=False",
    "session {h} refreshed for user_id={n}, expires_in=3600s, scopes=read,write",
    "health check ok: db={ms}ms cache={w}ms disk_free=61% load=0.{w}{w} uptime={n}s",
    "config reloaded from /etc/app/config.yaml: {w} keys changed, feature_flags=beta,search",
    "connection pool stats: size={w} checked_out={w} overflow=0 checked_in={n} timeout=30s",
)
NOISE_POOL = 20_000

FRAMES = (
    ("/srv/app/.venv/lib/python3.11/site-packages/starlette/routing.py", "handle"),
    ("/srv/app/app/api/routes.py", "get_items"),
    ("/srv/app/app/worker/jobs.py", "run_job"),
    ("/srv/app/app/services/client.py", "call_upstream"),
    ("/srv/app/app/db/session.py", "connect"),
    ("/srv/app/app/settings.py", "load_settings"),
    ("/usr/lib/python3.11/asyncio/tasks.py", "wait_for"),
)
SOURCE_LINES = (
    "return await self.app(scope, receive, send)",
    "result = client.fetch(item_id, timeout=settings.timeout)",
    "rows = session.execute(query).fetchall()",
    "raise exc",
    "response.raise_for_status()",
    "value = self._cache[key]",
)

# Exception lines of Python libraries become tracebacks; Node, git and
# coreutils output stays a single prefixed line.
_PY_EXC = re.compile(r"^(?:[a-z_][a-z0-9_]*\.)*[A-Z][A-Za-z0-9]*(?:Error|Exception|Timeout)(?::|$)")
_NOT_PY = ("ECONNREFUSED", "ENOSPC", "FetchError")
# Error events for the traceback family end in an exception no other family
# knows about, so only the header matches.
GENERIC_EXCEPTIONS = (
    "ValueError: invalid literal for int() with base 10: 'abc'",
    "ZeroDivisionError: division by zero",
    "IndexError: list index out of range",
    "RuntimeError: Event loop is closed",
    "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
)


def _is_python_exception(line: str) -> bool:
    return bool(_PY_EXC.match(line)) and not any(t in line for t in _NOT_PY)


def _noise_pool(rng: random.Random) -> list[str]:
    """Pre-render noise bodies once; per-line work is then a pool pick."""
    hexd = "0123456789abcdef"
    pool = []
    for _ in range(NOISE_POOL):
        t = rng.choice(NOISE_TEMPLATES)
        n = rng.randint(1, 99999)
        h = "".join(rng.choices(hexd, k=12))
        pool.append(
            t.format(
                ip=f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                port=rng.randint(30000, 60000),
                method=rng.choice(METHODS),
                path=rng.choice(PATHS).format(n=n, h=h[:8]),
                status=rng.choice((200,) * 20 + (201, 204, 301, 304, 404)),
                size=rng.randint(80, 40000),
                ms=rng.randint(1, 999),
                n=n,
                h=h,
                w=rng.randint(1, 64),
            )
        )
    return pool


_LEVEL_PREFIX = re.compile(r"^(?:DEBUG|INFO|WARNING|ERROR)[: ]+")


def _safe_counter_examples(patterns: list[Pattern]) -> list[str]:
    """Counter examples that no bundled pattern matches (after ignores).

    They are the near-misses each family was tested against, which makes
    them the most useful noise; a counter example of one pattern that
    another pattern legitimately matches is left out.
    """
    import re2  # noqa: PLC0415 - only needed when generating a log

    compiled = [(re2.compile(p.regex), [re2.compile(i) for i in p.ignore]) for p in patterns]
    out = []
    for p in patterns:
        for line in p.counter_examples:
            if "\n" in line or not line.strip():
                continue
            hit = any(rx.search(line) and not any(i.search(line) for i in ign) for rx, ign in compiled)
            if not hit:
                # Drop a leading level word: the generator adds its own prefix.
                out.append(_LEVEL_PREFIX.sub("", line.strip()))
    return out


@dataclass
class _Event:
    family: str
    lines: list[str]  # unprefixed; the first gets the log prefix


class _Family:
    """A family's events, grouped by pattern, handed out round-robin.

    Cycling patterns first and examples second means every pattern shows up
    after as many events as the family has patterns, so even a 100k-line log
    exercises every bundled regex.
    """

    def __init__(self) -> None:
        self.by_pattern: list[list[_Event]] = []
        self.turn = 0

    def next(self) -> _Event:
        group = self.by_pattern[self.turn % len(self.by_pattern)]
        ev = group[(self.turn // len(self.by_pattern)) % len(group)]
        self.turn += 1
        return ev


def _build_events(patterns: list[Pattern], rng: random.Random) -> dict[str, _Family]:
    families: dict[str, _Family] = {}
    for p in patterns:
        fam = families.setdefault(p.family, _Family())
        if p.family == "traceback":
            # The header alone is not an event: end in exceptions no other
            # family knows about, so only the header matches.
            group = [_Event(p.family, _traceback(g, rng)) for g in GENERIC_EXCEPTIONS]
        else:
            group = [_Event(p.family, _traceback(ex, rng) if _is_python_exception(ex) else [ex]) for ex in p.examples]
        if group:
            fam.by_pattern.append(group)
    return {k: v for k, v in families.items() if v.by_pattern}


def _traceback(exc_line: str, rng: random.Random) -> list[str]:
    lines = ["Unhandled exception in request handler", "Traceback (most recent call last):"]
    for path, func in rng.sample(FRAMES, rng.randint(2, 4)):
        lines.append(f'  File "{path}", line {rng.randint(12, 900)}, in {func}')
        lines.append(f"    {rng.choice(SOURCE_LINES)}")
    lines.append(exc_line)
    return lines


def generate(lines: int, seed: int, out, patterns: list[Pattern] | None = None) -> dict:
    """Write `lines` log lines to the binary file `out`; return a summary."""
    rng = random.Random(seed)
    patterns = load_patterns() if patterns is None else patterns
    pool = _noise_pool(rng) + _safe_counter_examples(patterns) * 20
    events = _build_events(patterns, rng)
    families = sorted(events)
    all_events = [e for f in families for g in events[f].by_pattern for e in g]
    mean_event = sum(len(e.lines) for e in all_events) / len(all_events)
    p_event = ERROR_SHARE / mean_event

    loggers = LOGGERS
    # "[pid req-id]" context, as structlog/uvicorn setups often add.
    contexts = [f"[{rng.randint(1000, 65000)} req={rng.getrandbits(40):010x}]" for _ in range(4096)]
    levels = NOISE_LEVELS
    per_family_lines: Counter[str] = Counter()
    per_family_events: Counter[str] = Counter()
    written = total_bytes = 0
    t_ms = 0
    sec_cache = (-1, "")

    while written < lines:
        n = min(CHUNK, lines - written)
        bodies = rng.choices(pool, k=n)
        lvl = rng.choices(levels, k=n)
        lgr = rng.choices(loggers, k=n)
        gaps = rng.choices(range(0, 25), k=n)
        draws = [rng.random() for _ in range(n)]
        ctx = rng.choices(contexts, k=n)
        buf: list[str] = []
        i = 0
        while i < n:
            t_ms += gaps[i]
            sec = t_ms // 1000
            if sec != sec_cache[0]:
                sec_cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(EPOCH + sec)))
            ts = f"{sec_cache[1]}.{t_ms % 1000:03d}Z"
            if draws[i] < p_event:
                fam = families[int(draws[i] / p_event * len(families))]
                ev = events[fam].next()
                room = n - i
                ev_lines = ev.lines[:room]  # an event never spills across chunks
                buf.append(f"{ts} ERROR {ctx[i]} {lgr[i]}: {ev_lines[0]}")
                buf.extend(ev_lines[1:])
                per_family_events[fam] += 1
                per_family_lines[fam] += len(ev_lines)
                i += len(ev_lines)
            else:
                buf.append(f"{ts} {lvl[i]} {ctx[i]} {lgr[i]}: {bodies[i]}")
                i += 1
        buf.append("")
        data = "\n".join(buf).encode()
        out.write(data)
        total_bytes += len(data)
        written += n
    return {
        "lines": written,
        "bytes": total_bytes,
        "error_lines": dict(sorted(per_family_lines.items())),
        "error_events": dict(sorted(per_family_events.items())),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, help="output file (default: stdout)")
    ap.add_argument("--ere", action="store_true", help="print the bundled patterns as grep -E regexes and exit")
    args = ap.parse_args(argv)

    if args.ere:
        sys.stdout.write("\n".join(ere_lines(load_patterns())) + "\n")
        return 0

    t0 = time.perf_counter()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("wb") as fh:
            summary = generate(args.lines, args.seed, fh)
    else:
        summary = generate(args.lines, args.seed, sys.stdout.buffer)
    dt = time.perf_counter() - t0

    err_total = sum(summary["error_lines"].values())
    print(
        f"genlog: {summary['lines']} lines, {summary['bytes']} bytes "
        f"({summary['bytes'] / max(summary['lines'], 1):.0f} B/line), "
        f"{err_total} error-event lines ({100 * err_total / max(summary['lines'], 1):.2f} %), {dt:.2f}s",
        file=sys.stderr,
    )
    for fam, count in summary["error_lines"].items():
        print(f"  {fam:<16} {count:>7} lines {summary['error_events'][fam]:>6} events", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
