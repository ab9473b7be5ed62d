"""Bundled patterns against what real tools actually print.

Examples written by hand drift from reality (a library rewords its message,
git changes punctuation), so here the real programs produce the errors:
Python itself, git, a full tmpfs, requests/httpx/aiohttp/redis-py/psycopg2
and the OpenAI/Anthropic SDKs against local sockets. Matching uses re2 and
the YAML directly, independent of healer's loader.

Extra packages: tests/requirements-realtools.txt. A missing one fails the
test (ImportError in the subprocess), never skips it.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import re2
import yaml
from support.httpserver import serving
from support.realerrors import git as _git
from support.realerrors import git_env as _git_env

REPO = Path(__file__).resolve().parent.parent
PATTERNS_DIR = REPO / "patterns"
GENLOG = REPO / "bench" / "genlog.py"
ERE_FILE = REPO / "bench" / "patterns.ere"

SEVERITIES = {"critical", "high", "medium", "low"}
APPROVALS = {"auto", "ask", "never"}
SOURCES = {"file", "journald", "sentry", "glitchtip", "alertmanager"}
ACTION_PARAMS = {
    "command": {"command"},
    "restart": {"service", "address", "expect"},
    "pip_install": {"module", "venv"},
    "git_sync": {"repo"},
    "disk_cleanup": {"dir"},
    "set_config": {"file", "key", "value"},
    "restore_file": {"file"},
}
# Params that may carry a {group} placeholder; everything else must be a
# literal name the operator allowlists.
PLACEHOLDER_OK = {("pip_install", "module"), ("restart", "address")}


# --------------------------------------------------------------------------
# Loading and matching


def _load() -> list[dict]:
    out = []
    for path in sorted(PATTERNS_DIR.glob("*.yaml")):
        for p in yaml.safe_load(path.read_text(encoding="utf-8"))["patterns"]:
            out.append({**p, "_file": path.name})
    return out


PATTERNS = _load()
_COMPILED = [(p["id"], re2.compile(p["regex"]), [re2.compile(i) for i in p.get("ignore") or []]) for p in PATTERNS]


# One alternation of every regex (names dropped, RE2 forbids duplicates):
# a single search per line rules out the ~99 % of noise lines, which keeps the
# 100k-line log tests fast despite the per-call cost of the re2 binding.
_ANY = re2.compile("|".join("(?:" + re2.sub(r"\(\?P<[a-z_0-9]+>", "(?:", p["regex"]) + ")" for p in PATTERNS))
_BY_ID = {id_: (rx, ignores) for id_, rx, ignores in _COMPILED}


def _match(pid: str, line: str):
    rx, ignores = _BY_ID[pid]
    m = rx.search(line)
    if m and not any(i.search(line) for i in ignores):
        return m
    return None


def matching_ids(line: str) -> set[str]:
    if not _ANY.search(line):
        return set()
    return {id_ for id_, rx, ignores in _COMPILED if rx.search(line) and not any(i.search(line) for i in ignores)}


def ids_in(text: str) -> set[str]:
    out: set[str] = set()
    for line in text.splitlines():
        out |= matching_ids(line)
    return out


def lines_matching(text: str, pid: str) -> list[str]:
    return [ln for ln in text.splitlines() if pid in matching_ids(ln)]


def _example_line(ex) -> str:
    return ex if isinstance(ex, str) else ex["line"]


# --------------------------------------------------------------------------
# Static checks on every bundled pattern


def test_ids_unique_and_well_formed():
    ids = [p["id"] for p in PATTERNS]
    assert len(ids) == len(set(ids)), "duplicate pattern ids"
    assert all(re2.fullmatch(r"[a-z0-9-]+", i) for i in ids)
    # One file per family, all present.
    assert {p["_file"] for p in PATTERNS} >= {
        "rate_limit.yaml", "missing_module.yaml", "git.yaml", "config.yaml", "python_errors.yaml",
        "network.yaml", "redis.yaml", "database.yaml", "disk.yaml", "traceback.yaml",
    }  # fmt: skip


def _longest_literal(regex: str) -> int:
    """Length of the longest run of literal characters (escapes count)."""
    best = run = 0
    i = 0
    while i < len(regex):
        c = regex[i]
        if c == "\\" and i + 1 < len(regex) and not regex[i + 1].isalnum():
            run += 1
            i += 2
            continue
        if c in "()[]{}|*+?.^$\\":
            best, run = max(best, run), 0
            if c == "[":  # skip the whole class
                i = regex.index("]", i + 2)
            if c == "\\":
                i += 1
        else:
            run += 1
        i += 1
    return max(best, run)


@pytest.mark.parametrize("p", PATTERNS, ids=lambda p: p["id"])
def test_pattern_schema(p):
    assert p["severity"] in SEVERITIES
    assert p["approval"] in APPROVALS
    assert p.get("description")
    assert set(p.get("sources") or SOURCES) <= SOURCES
    # The loader also accepts "threshold: N" (window 60 s) and defaults.
    threshold = p.get("threshold", 1)
    if isinstance(threshold, dict):
        assert threshold.get("count", 1) >= 1 and threshold.get("window", 60) >= 1
    else:
        assert isinstance(threshold, int) and threshold >= 1
    assert p.get("max_attempts", 3) >= 1
    assert p["examples"] and p["counter_examples"], "every pattern needs both"
    rx = re2.compile(p["regex"])  # RE2 rejects backreferences and lookaround
    for ign in p.get("ignore") or []:
        re2.compile(ign)
    # A distinctive literal is what lets RE2's prefilter skip most lines.
    assert _longest_literal(p["regex"]) >= 7, "regex needs a distinctive literal"
    assert not p["regex"].startswith((".*", "\\b", "[")), "start with a literal"
    groups = set(rx.groupindex)
    steps = p.get("remediation") or []
    if p["approval"] == "never":
        assert not steps, "notify-only patterns carry no remediation"
    for step in steps:
        action, params = step["action"], step.get("params") or {}
        assert action in ACTION_PARAMS
        assert set(params) <= ACTION_PARAMS[action]
        for key, value in params.items():
            placeholders = set(re2.findall(r"\{([a-z_]+)\}", str(value)))
            if (action, key) in PLACEHOLDER_OK:
                assert placeholders <= groups
            else:
                assert not placeholders, f"{action}.{key} must be a literal allowlisted name"
    if any(s["action"] in {"git_sync", "pip_install"} for s in steps):
        assert p["approval"] == "ask", "risky actions must ask"


@pytest.mark.parametrize("p", PATTERNS, ids=lambda p: p["id"])
def test_examples_and_counter_examples(p):
    for ex in p["examples"]:
        line = _example_line(ex)
        m = _match(p["id"], line)
        assert m, f"example does not match: {line!r}"
        if isinstance(ex, dict):
            for name, value in (ex.get("groups") or {}).items():
                assert m.group(name) == str(value), (name, line)
    for line in p["counter_examples"]:
        assert not _match(p["id"], line), f"counter example matches: {line!r}"


NOISE = [
    "INFO rate limit headroom 42/100",
    "DEBUG retry timeout set to 30s",
    "INFO imported module yaml",
    "INFO connected to redis at localhost:6379",
    "DEBUG GET /health 200 3ms",
    "INFO config loaded from /etc/app/config.yaml",
    "INFO disk usage 42% on /",
    "WARNING slow query took 1200ms",
    "INFO git pull: Already up to date.",
    "DEBUG connection pool size=10 timeout=30",
]


@pytest.mark.parametrize("line", NOISE)
def test_ordinary_noise_matches_nothing(line):
    assert matching_ids(line) == set()


# --------------------------------------------------------------------------
# Helpers for real tools


def _py(code: str, *, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run code in the test interpreter (python3.11 venv) and capture output."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "LC_ALL": "C", **(env or {})},
    )


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert lines, "no output"
    return lines[-1]


def _assert_tb(res: subprocess.CompletedProcess, pid: str, **groups: str) -> None:
    """The traceback's last line matches pid (with groups); header matches too."""
    assert res.returncode != 0, res.stdout + res.stderr
    last = _last_line(res.stderr)
    m = _match(pid, last)
    assert m, f"{pid} does not match real output {last!r}\n{res.stderr}"
    for name, value in groups.items():
        assert m.group(name) == value
    assert lines_matching(res.stderr, "python-traceback"), res.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Python: missing modules, AttributeError, TypeError, config, timeouts


def test_real_missing_module():
    _assert_tb(_py("import healer_no_such_mod"), "missing-module", module="healer_no_such_mod")
    _assert_tb(_py("import xml.healer_no_such_sub"), "missing-module", module="xml.healer_no_such_sub")


def test_real_cannot_import_name_is_not_missing_module():
    res = _py("from os import healer_no_such_name")
    last = _last_line(res.stderr)
    assert last.startswith("ImportError: cannot import name")
    assert not matching_ids(last) & {"missing-module", "missing-module-importerror"}


def test_real_attribute_and_type_errors():
    _assert_tb(_py("x = None\nx.healer_attr"), "python-attribute-error",
               message="'NoneType' object has no attribute 'healer_attr'")  # fmt: skip
    _assert_tb(_py("1 + 'a'"), "python-type-error", message="unsupported operand type(s) for +: 'int' and 'str'")
    _assert_tb(_py("def f(a):\n    pass\nf(1, 2)"), "python-type-error")


def test_real_config_errors(tmp_path):
    missing = tmp_path / "etc" / "config.yaml"
    _assert_tb(_py(f"open({str(missing)!r})"), "config-file-missing", path=str(missing))
    env = tmp_path / ".env"
    res = _py(f"open({str(env)!r})")
    _assert_tb(res, "config-env-file-missing", path=str(env))
    assert "config-file-missing" not in matching_ids(_last_line(res.stderr))
    # PyYAML prints the problem mark *after* the exception line, so the
    # match is somewhere in the output, not on the last line.
    for doc, kind in (("a: b: c", "scanner.ScannerError"), ("a: [1", "parser.ParserError")):
        res = _py(f"import yaml; yaml.safe_load({doc!r})")
        hits = lines_matching(res.stderr, "config-yaml-syntax")
        assert hits and _match("config-yaml-syntax", hits[0]).group("kind") == kind, res.stderr
    # os.environ["X"] ends in KeyError: 'X'; the heuristic pattern sees that line.
    _assert_tb(_py("import os; os.environ['HEALER_NO_SUCH_VAR']"), "config-env-var-missing", var="HEALER_NO_SUCH_VAR")


def test_real_dotenv_messages(tmp_path):
    # python-dotenv only reports a missing file through logging (INFO, verbose=True).
    code = (
        "import logging, dotenv; logging.basicConfig(level=logging.INFO);"
        f"dotenv.load_dotenv({str(tmp_path / '.env')!r}, verbose=True)"
    )
    res = _py(code)
    hits = lines_matching(res.stderr, "config-dotenv-not-found")
    assert hits, res.stderr
    assert _match("config-dotenv-not-found", hits[0]).group("path") == str(tmp_path / ".env")
    bad = tmp_path / "bad.env"
    bad.write_text("A=1\nthis is not a statement\n")
    res = _py(f"import logging, dotenv; logging.basicConfig(); dotenv.load_dotenv({str(bad)!r})")
    assert lines_matching(res.stderr, "config-dotenv-parse"), res.stderr


def test_real_connection_refused():
    port = _closed_port()
    _assert_tb(_py(f"import socket; socket.create_connection(('127.0.0.1', {port}))"), "net-connection-refused")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections (kernel backlog) but never answers: read timeouts."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()


@pytest.fixture
def full_backlog_server() -> Iterator[int]:
    """A listener whose accept queue is full, so new SYNs are dropped: connect timeouts."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    try:
        yield port
    finally:
        for c in fillers:
            c.close()
        srv.close()


def test_real_timeouts(silent_server, full_backlog_server):
    url_read = f"http://127.0.0.1:{silent_server}/"
    url_conn = f"http://127.0.0.1:{full_backlog_server}/"
    _assert_tb(_py(f"import requests; requests.get({url_read!r}, timeout=0.5)"), "net-requests-timeout",
               kind="ReadTimeout")  # fmt: skip
    _assert_tb(_py(f"import requests; requests.get({url_conn!r}, timeout=0.5)"), "net-requests-timeout",
               kind="ConnectTimeout")  # fmt: skip
    _assert_tb(_py(f"import httpx; httpx.get({url_read!r}, timeout=0.5)"), "net-httpx-timeout", kind="ReadTimeout")
    _assert_tb(_py(f"import httpx; httpx.get({url_conn!r}, timeout=0.5)"), "net-httpx-timeout", kind="ConnectTimeout")
    res = _py(f"import socket; socket.create_connection(('127.0.0.1', {full_backlog_server}), timeout=0.5)")
    _assert_tb(res, "net-timeout-error")


def test_real_asyncio_timeout_matches_only_the_last_line():
    # 3.11 ends with a bare "TimeoutError"; the "raise exceptions.TimeoutError()"
    # source line and urllib3-style names must not add more matches.
    res = _py(
        "import asyncio\nasync def main():\n    await asyncio.wait_for(asyncio.sleep(5), 0.05)\nasyncio.run(main())\n"
    )
    _assert_tb(res, "net-timeout-error")
    assert lines_matching(res.stderr, "net-timeout-error") == [_last_line(res.stderr)]


def test_real_requests_and_httpx_connection_errors():
    port = _closed_port()
    url = f"http://127.0.0.1:{port}/x"
    _assert_tb(_py(f"import requests; requests.get({url!r})"), "net-requests-connection-error",
               host="127.0.0.1", port=str(port))  # fmt: skip
    _assert_tb(_py(f"import httpx; httpx.get({url!r})"), "net-httpx-connect-error")


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_real_redis_refused_and_socket_missing(tmp_path):
    # The local pattern takes host and port; restart compares that address with the app's Redis and
    # refuses a different one, so another port only notifies (tests/test_local_target.py runs that).
    if not _free(6379):
        pytest.skip("something listens on 6379; cannot make redis-py fail on the default port")
    for host in ("localhost", "127.0.0.1"):
        res = _py(f"import redis; redis.Redis(host={host!r}).ping()")
        _assert_tb(res, "redis-connection-refused", host=host, port="6379")
    port = _closed_port()
    res = _py(f"import redis; redis.Redis(host='localhost', port={port}).ping()")
    _assert_tb(res, "redis-connection-refused", host="localhost", port=str(port))
    sock = tmp_path / "redis.sock"
    _assert_tb(_py(f"import redis; redis.Redis(unix_socket_path={str(sock)!r}).ping()"), "redis-socket-missing",
               socket=str(sock))  # fmt: skip


def test_real_psycopg2_refused_and_socket_missing(tmp_path):
    if not _free(5432):
        pytest.skip("something listens on 5432; cannot make psycopg2 fail on the default port")
    for host in ("localhost", "127.0.0.1"):
        res = _py(f"import psycopg2; psycopg2.connect(host={host!r}, connect_timeout=5)")
        hits = lines_matching(res.stderr, "db-postgres-connection-refused")
        assert hits, res.stderr
        m = _match("db-postgres-connection-refused", hits[0])
        assert (m.group("host"), m.group("port")) == (host, "5432")
    # Another port: the local pattern takes it, and restart's address check refuses it (test_local_target.py).
    port = _closed_port()
    res = _py(f"import psycopg2; psycopg2.connect(host='127.0.0.1', port={port}, connect_timeout=5)")
    hits = lines_matching(res.stderr, "db-postgres-connection-refused")
    assert hits, res.stderr
    assert _match("db-postgres-connection-refused", hits[0]).group("port") == str(port)
    res = _py(f"import psycopg2; psycopg2.connect(host={str(tmp_path)!r})")
    assert lines_matching(res.stderr, "db-postgres-socket-missing"), res.stderr
    res = _py(f"import psycopg2; psycopg2.connect(host={str(tmp_path)!r}, port={port})")
    assert lines_matching(res.stderr, "db-postgres-socket-missing"), res.stderr


# --------------------------------------------------------------------------
# HTTP 429 from a local server


class _TooMany(http.server.BaseHTTPRequestHandler):
    def _reply(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps(
            {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached for requests"}}
        ).encode()
        self.send_response(429)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("retry-after", "0")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def http_429() -> Iterator[str]:
    with serving(_TooMany) as url:
        yield url


def test_real_http_429(http_429):
    url = f"{http_429}/v1/x"
    _assert_tb(_py(f"import requests; requests.get({url!r}).raise_for_status()"), "rate-limit-http-429-requests",
               url=url)  # fmt: skip
    # httpx adds a "For more information check: ..." line after the exception.
    res = _py(f"import httpx; httpx.get({url!r}).raise_for_status()")
    hits = lines_matching(res.stderr, "rate-limit-http-429-httpx")
    assert hits and _match("rate-limit-http-429-httpx", hits[0]).group("url") == url, res.stderr
    code = (
        "import asyncio, aiohttp\n"
        "async def main():\n"
        "    async with aiohttp.ClientSession() as s:\n"
        f"        async with s.get({url!r}) as r:\n"
        "            r.raise_for_status()\n"
        "asyncio.run(main())\n"
    )
    _assert_tb(_py(code), "rate-limit-aiohttp-429")


def test_real_openai_and_anthropic_rate_limit(http_429):
    res = _py(
        f"import openai; c = openai.OpenAI(api_key='x', base_url='{http_429}/v1', max_retries=0)\n"
        "c.chat.completions.create(model='m', messages=[{'role': 'user', 'content': 'hi'}])\n"
    )
    _assert_tb(res, "rate-limit-openai")
    assert not _match("rate-limit-generic", _last_line(res.stderr)), "openai line must open one incident"
    res = _py(
        f"import anthropic; c = anthropic.Anthropic(api_key='x', base_url='{http_429}', max_retries=0)\n"
        "c.messages.create(model='m', max_tokens=5, messages=[{'role': 'user', 'content': 'hi'}])\n"
    )
    _assert_tb(res, "rate-limit-anthropic")
    assert not _match("rate-limit-generic", _last_line(res.stderr))


# --------------------------------------------------------------------------
# git


@pytest.fixture
def diverged(tmp_path) -> tuple[Path, dict]:
    """Clone b of a bare origin, with a local commit conflicting with origin's."""
    env = _git_env(tmp_path)
    _git(tmp_path, env, "init", "-q", "--bare", "-b", "main", "origin.git")
    _git(tmp_path, env, "clone", "-q", "origin.git", "a")
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "settings.py").write_text("base\n")
    _git(a, env, "add", "settings.py")
    _git(a, env, "commit", "-qm", "base")
    _git(a, env, "push", "-q", "origin", "HEAD:main")
    _git(tmp_path, env, "clone", "-q", "origin.git", "b")
    (a / "settings.py").write_text("from a\n")
    _git(a, env, "commit", "-qam", "a")
    _git(a, env, "push", "-q")
    (b / "settings.py").write_text("from b\n")
    _git(b, env, "commit", "-qam", "b")
    return b, env


def test_real_git_clean_pull_matches_nothing(tmp_path):
    env = _git_env(tmp_path)
    _git(tmp_path, env, "init", "-q", "--bare", "-b", "main", "origin.git")
    _git(tmp_path, env, "clone", "-q", "origin.git", "a")
    a = tmp_path / "a"
    (a / "f").write_text("x\n")
    _git(a, env, "add", "f")
    _git(a, env, "commit", "-qm", "x")
    _git(a, env, "push", "-q", "origin", "HEAD:main")
    _git(tmp_path, env, "clone", "-q", "origin.git", "b")
    (a / "f").write_text("y\n")
    _git(a, env, "commit", "-qam", "y")
    _git(a, env, "push", "-q")
    out = _git(tmp_path / "b", env, "pull", "--ff-only")
    assert "Fast-forward" in out
    assert ids_in(out) == set(), out


def test_real_git_ff_only_on_diverged(diverged):
    b, env = diverged
    out = _git(b, env, "pull", "--ff-only", check=False)
    assert lines_matching(out, "git-not-fast-forward"), out


def test_real_git_merge_conflict_and_stuck_index(diverged):
    b, env = diverged
    out = _git(b, env, "pull", "--no-rebase", check=False)
    hits = lines_matching(out, "git-merge-conflict")
    assert hits, out
    assert _match("git-merge-conflict", hits[0]).group("kind") == "content"
    assert lines_matching(out, "git-automatic-merge-failed"), out
    # Conflict markers in the file are what the sync would have to undo.
    assert "<<<<<<<" in (b / "settings.py").read_text()
    # The stuck state: later commands fail until someone resolves it.
    _git(b, env, "branch", "other", check=False)
    out = _git(b, env, "checkout", "other", check=False)
    assert lines_matching(out, "git-unresolved-index"), out
    out = _git(b, env, "pull", "--no-rebase", check=False)
    assert lines_matching(out, "git-unresolved-index"), out


def test_real_git_local_changes_overwritten(diverged):
    b, env = diverged
    _git(b, env, "fetch", "-q")
    (b / "settings.py").write_text("uncommitted edit\n")
    out = _git(b, env, "merge", "origin/main", check=False)
    hits = lines_matching(out, "git-local-changes-overwritten")
    assert hits and _match("git-local-changes-overwritten", hits[0]).group("op") == "merge", out


def test_real_git_unrelated_histories(diverged, tmp_path):
    _, env = diverged
    c = tmp_path / "c"
    _git(tmp_path, env, "init", "-q", "-b", "main", "c")
    (c / "z").write_text("z\n")
    _git(c, env, "add", "z")
    _git(c, env, "commit", "-qm", "z")
    out = _git(c, env, "pull", "--no-rebase", str(tmp_path / "origin.git"), "main", check=False)
    assert lines_matching(out, "git-unrelated-histories"), out


def test_real_git_resolve_host(tmp_path):
    # .invalid never resolves (RFC 6761); proxies are stripped in _git_env.
    env = _git_env(tmp_path)
    out = _git(tmp_path, env, "ls-remote", "https://healer-no-such-host.invalid/app.git", check=False)
    hits = lines_matching(out, "git-resolve-host")
    assert hits, out
    assert _match("git-resolve-host", hits[0]).group("host") == "healer-no-such-host.invalid"


# --------------------------------------------------------------------------
# Disk full on a real 1 MiB tmpfs


@pytest.fixture
def tiny_tmpfs(tmp_path) -> Iterator[Path]:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        reason = f"cannot mount a 1 MiB tmpfs (need root/CAP_SYS_ADMIN): {res.stderr.strip()}"
        print(reason)
        pytest.skip(reason)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_real_disk_full(tiny_tmpfs):
    target = tiny_tmpfs / "fill.bin"
    code = (
        f"with open({str(target)!r}, 'wb') as f:\n    while True:\n        f.write(b'x' * 65536)\n        f.flush()\n"
    )
    res = _py(code)
    _assert_tb(res, "disk-no-space-left")
    assert "[Errno 28]" in _last_line(res.stderr)
    # coreutils say it in their own words; the same literal catches them.
    if shutil.which("dd"):
        res = subprocess.run(
            ["dd", "if=/dev/zero", f"of={tiny_tmpfs / 'dd.bin'}", "bs=64k", "count=64"],
            capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"},
        )  # fmt: skip
        assert lines_matching(res.stderr, "disk-no-space-left"), res.stderr
    target.unlink()
    (tiny_tmpfs / "dd.bin").unlink(missing_ok=True)
    code = (
        "import sqlite3\n"
        f"c = sqlite3.connect({str(tiny_tmpfs / 'db.sqlite')!r}); c.execute('create table t(x)')\n"
        "while True:\n"
        "    c.execute('insert into t values (randomblob(100000))'); c.commit()\n"
    )
    _assert_tb(_py(code), "disk-sqlite-full")


# --------------------------------------------------------------------------
# bench: genlog and the grep -E baseline


def _genlog(out: Path, lines: int, seed: int = 42) -> None:
    subprocess.run(
        [sys.executable, str(GENLOG), "--lines", str(lines), "--seed", str(seed), "--out", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def test_patterns_ere_is_up_to_date():
    res = subprocess.run([sys.executable, str(GENLOG), "--ere"], capture_output=True, text=True, check=True)
    assert res.stdout == ERE_FILE.read_text(), "regenerate: python bench/genlog.py --ere > bench/patterns.ere"
    assert len(res.stdout.splitlines()) == len(PATTERNS)


@pytest.fixture(scope="module")
def small_log(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("genlog") / "app.log"
    _genlog(out, 100_000)
    return out


def test_genlog_is_deterministic(small_log, tmp_path):
    again = tmp_path / "again.log"
    _genlog(again, 100_000)
    assert again.read_bytes() == small_log.read_bytes()


def test_genlog_exercises_every_pattern(small_log):
    text = small_log.read_text()
    lines = text.splitlines()
    assert len(lines) == 100_000
    seen = ids_in(text)
    assert {p["id"] for p in PATTERNS} - seen == set()
    matched = sum(1 for ln in lines if matching_ids(ln))
    # ~1 % of lines belong to error events, but only the header and the
    # exception line of a traceback match, not its File/source lines.
    assert 0.002 < matched / len(lines) < 0.02


def _grep_count(args: list[str], log: Path) -> int:
    res = subprocess.run(["grep", "-E", "-c", *args, str(log)], capture_output=True, text=True,
                         env={**os.environ, "LC_ALL": "C"})  # fmt: skip
    assert res.returncode in (0, 1), res.stderr
    return int(res.stdout)


def test_grep_ere_counts_equal_re2(small_log):
    """grep -E -f patterns.ere counts the lines any *regex* matches.

    grep has no per-pattern ignore, so this total is compared with re2
    without ignores; ignores are checked per pattern below.
    """
    lines = small_log.read_text().splitlines()
    want = sum(1 for ln in lines if _ANY.search(ln))
    assert _grep_count(["-f", str(ERE_FILE)], small_log) == want


def test_grep_ere_per_pattern_counts_with_ignores(small_log, tmp_path):
    lines = small_log.read_text().splitlines()
    sys.path.insert(0, str(GENLOG.parent))
    try:
        import genlog  # noqa: PLC0415 - bench/ is not a package
    finally:
        sys.path.remove(str(GENLOG.parent))
    env = {**os.environ, "LC_ALL": "C"}
    per_id: Counter[str] = Counter()
    for ln in lines:
        per_id.update(matching_ids(ln))
    for pat in genlog.load_patterns():
        want = per_id[pat.id]
        hits = subprocess.run(["grep", "-E", "-e", genlog.to_ere(pat.regex), str(small_log)],
                              capture_output=True, text=True, env=env).stdout  # fmt: skip
        for ign in genlog.ere_ignores(pat):
            hits = subprocess.run(["grep", "-v", "-E", "-e", ign], input=hits,
                                  capture_output=True, text=True, env=env).stdout  # fmt: skip
        assert len(hits.splitlines()) == want, pat.id
