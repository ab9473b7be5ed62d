"""One definition list of patterns, and each tool's file generated from it.

``bench-patterns.tsv`` (id, family, a literal every match contains, regex) is
written in the common subset of POSIX ERE, RE2, PCRE and Perl, so grep, healer,
fail2ban-regex and SEC can run exactly the same patterns. The TSV and the log
generator live in the workplace's shared/ folder beside the repository; they
are run from there, never copied into the project.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from _common import DATA, REPO

# The TSV's families, as healer's pattern schema names them.
FAMILY = {
    "ratelimit": "rate_limit",
    "import": "missing_module",
    "git": "git_error",
    "config": "config_error",
    "attribute": "attribute_error",
    "typeerror": "type_error",
    "timeout": "timeout",
    "redis": "redis_down",
    "disk": "disk_full",
    "traceback": "unknown",
    "postgres": "db_down",
}


@dataclass(frozen=True)
class BenchPattern:
    id: str
    family: str
    literal: str
    regex: str


def shared_dir() -> Path:
    """$HEALER_BENCH_SHARED, else the shared/ folder beside the repository (CI) or above the worktrees."""
    env = os.environ.get("HEALER_BENCH_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared", REPO.parent.parent / "shared", Path("/work/shared")]
    for c in candidates:
        if (c / "reference" / "bench-patterns.tsv").exists() and (c / "bench" / "genlog.py").exists():
            return c
    raise SystemExit(
        "samework: shared/reference/bench-patterns.tsv and shared/bench/genlog.py not found beside the repository; "
        "set HEALER_BENCH_SHARED to the folder that holds them"
    )


def load(tsv: Path) -> list[BenchPattern]:
    # QUOTE_NONE: a literal such as `" 429` starts with a double quote.
    with tsv.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [BenchPattern(r["id"], r["family"], r["required_literal"], r["regex"]) for r in rows]


def widen(patterns: list[BenchPattern], n: int) -> list[BenchPattern]:
    """``n`` patterns: the originals, then variants that can never match (a prefix no log line holds).

    The matched-line count stays that of the originals, so a curve over n is still the same work on
    every tool; only the size of the pattern set grows.
    """
    out = list(patterns)
    k = 0
    while len(out) < n:
        p = patterns[k % len(patterns)]
        tag = f"zzq{k}w"
        out.append(BenchPattern(f"{p.id}v{k}", p.family, tag, f"{tag}{p.regex.lstrip('^')}"))
        k += 1
    return out


def ensure_log(lines: int, seed: int | None = None) -> Path:
    """The shared generator's log, made once and cached under bench/data/ (gitignored)."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"shared-app-{lines}-{seed or 'default'}.log"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        cmd = [sys.executable, str(shared_dir() / "bench" / "genlog.py"), "--lines", str(lines), "--out", str(tmp)]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        tmp.rename(path)
    return path


def write_ere(patterns: list[BenchPattern], path: Path) -> Path:
    path.write_text("".join(p.regex + "\n" for p in patterns))
    return path


def write_healer(patterns: list[BenchPattern], tmp: Path) -> Path:
    """healer's pattern YAML (notify only, no source filter, no ignore) and a config that loads only it.

    Multi-line assembly is off: grep counts lines, so healer must match line by line to do the same work.
    """
    pdir = tmp / "patterns"
    pdir.mkdir(parents=True, exist_ok=True)
    docs = [
        {"id": f"bench-{p.id}", "family": FAMILY[p.family], "description": f"bench {p.id}", "severity": "low",
         "regex": p.regex}
        for p in patterns
    ]  # fmt: skip
    # JSON is YAML: no dumper needed, and no quoting question for backslashes.
    (pdir / "bench.yaml").write_text(json.dumps({"patterns": docs}, indent=1))
    cfg = tmp / "config.yaml"
    cfg.write_text(
        json.dumps(
            {
                "state_dir": str(tmp / "state"),
                "patterns_dirs": [str(pdir)],
                "sources": {"files": [], "multiline": {"enabled": False}},
            }
        )
    )
    return cfg


def write_fail2ban(patterns: list[BenchPattern], path: Path) -> Path:
    # fail2ban-regex rejects a failregex with no failure-id group: the whole pattern is the id.
    body = "\n            ".join("<F-ID>" + p.regex.replace("%", "%%") + "</F-ID>" for p in patterns)
    path.write_text(f"[Definition]\nfailregex = {body}\nignoreregex =\n")
    return path


def write_sec(patterns: list[BenchPattern], path: Path) -> Path:
    # One rule per pattern; `continue=DontCont` (the default) so a line is written once, like grep -c counts it.
    path.write_text(
        "".join(f"type=Single\nptype=RegExp\npattern={p.regex}\ndesc=m\naction=write - $0\n\n" for p in patterns)
    )
    return path
