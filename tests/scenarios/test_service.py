"""A stopped Redis under supervisord (restarted), and one that keeps dying (escalated as flapping)."""

from __future__ import annotations

import fcntl
import re
import sys
from collections.abc import Iterator

import pytest
from support.scenario import Scenario, Supervisor, port_open, record, tune

# The bundled redis patterns count only the default port on loopback as this host's Redis.
PORT = 6379
STAY_UP = 0.5
GRACE = 0.2
# A Redis stand-in that speaks enough RESP for redis-py's PING; with an argument it dies after that many seconds.
SERVER = f"""
import os, re, socket, sys, threading

def reply(cmd):
    if cmd == b"HELLO":
        return b"%1\\r\\n$5\\r\\nproto\\r\\n:3\\r\\n"
    return b"+PONG\\r\\n" if cmd == b"PING" else b"+OK\\r\\n"

def serve(c):
    with c:
        while data := c.recv(65536):
            # Each command is an array whose first bulk string is its name.
            for name in re.findall(rb"\\*[0-9]+\\r\\n\\$[0-9]+\\r\\n([A-Za-z]+)", data):
                c.sendall(reply(name.upper()))

if len(sys.argv) > 1:
    threading.Timer(float(sys.argv[1]), lambda: os._exit(1)).start()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", {PORT}))
s.listen()
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""
# The app: one request that needs Redis; an uncaught ConnectionError prints redis-py's real traceback.
# The client does not retry (redis-py's default backs off for seconds), so one request is one quick failure.
APP = f"""
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
redis.Redis(host="127.0.0.1", port={PORT}, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)).ping()
print("INFO order stored")
"""


@pytest.fixture
def redis_port() -> Iterator[None]:
    """The default Redis port, one scenario at a time; skipped when something else holds it."""
    with open("/tmp/healer-scenarios-6379.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if port_open(PORT):
            pytest.skip(f"127.0.0.1:{PORT} is taken by another process; the bundled redis patterns need that port")
        yield


def redis_under_supervisord(sc: Scenario, *server_args: str) -> Supervisor:
    (sc.tmp / "redis.py").write_text(SERVER)
    args = " ".join(server_args)
    program = f"command={sys.executable} {sc.tmp / 'redis.py'} {args}\nautostart=false\nautorestart=false\nstartsecs=0"
    return sc.supervisor({"redis": program})


def fast_redis(sc: Scenario, sv: Supervisor) -> None:
    """supervisorctl's path; a short stay_up (default 3 s) and grace (default 10 s) keep the suite quick."""
    actions = {"restart": {**sv.settings()["restart"], "verify_grace": GRACE}}
    tune(sc.config, actions=actions, apps={"shop": {"redis": {"stay_up": STAY_UP}}})


def run_requests(sc: Scenario, n: int) -> None:
    for _ in range(n):
        assert sc.run_app() == 1


def test_a_stopped_redis_is_restarted_and_serves_again(sc: Scenario, redis_port: None) -> None:
    sv = redis_under_supervisord(sc)
    app = sc.configure(supervisor_conf=sv.conf)
    assert app["redis"] == {"supervisor": "redis", "address": f"127.0.0.1:{PORT}"}
    fast_redis(sc, sv)
    sc.write_app(APP)
    sc.start()
    assert sv.state("redis") == "STOPPED"
    sc.mark()
    # One user's request fails: with confirm: the probe (Redis is down) replaces counting lines, so healer acts at
    # the first; a second request could already find Redis back (and succeed) on a fast daemon.
    run_requests(sc, 1)
    assert "Error 111 connecting to 127.0.0.1:6379. Connection refused." in sc.log.read_text()
    seconds = sc.until(lambda: port_open(PORT) and sv.state("redis") == "RUNNING", what="redis serving")
    assert sc.run_app() == 0  # what the user sees: the next request works
    sc.until_history("restart: succeeded")
    record("service stopped (redis)", "healed", False, seconds, "succeeded")


LIFETIME = STAY_UP * 5  # up long enough to pass the stay_up probe (on an idle host), dead inside the window
WATCH = 6.0  # this scenario's verify window: the death and the next requests fall inside it
FAILED = re.compile(r"By outcome: failed (\d+)")


def failed_fixes(sc: Scenario) -> int:
    m = FAILED.search(sc.history())
    return int(m.group(1)) if m else 0


def until_it_dies_again(sc: Scenario, failed: int) -> float:
    """A request fails; the restart it leads to does not hold: seconds until ``failed`` fixes are recorded failed.

    Either Redis dies within the restart's own ``stay_up`` probe (a busy host is slow to probe it), or it
    passes the probe, dies inside the verify window and the next request is the evidence.
    """
    run_requests(sc, 1)
    sc.until(lambda: failed_fixes(sc) >= failed or "restart: verifying" in sc.history(), what="a restart")
    if failed_fixes(sc) < failed:
        sc.until(lambda: not port_open(PORT), what="redis dead again")
        run_requests(sc, 1)
    return sc.until(lambda: failed_fixes(sc) >= failed, what=f"{failed} restart(s) failed")


def restart_that_dies(sc: Scenario) -> float:
    """Redis is restarted and dies; seconds until that is recorded (one failed request each time: with
    confirm: the first line acts, so a second request could already find Redis restarted)."""
    sv = redis_under_supervisord(sc, str(LIFETIME))
    sc.configure(supervisor_conf=sv.conf)
    fast_redis(sc, sv)
    tune(sc.config, engine={"verify_window": WATCH})
    sc.write_app(APP)
    sc.start()
    sc.mark()
    return until_it_dies_again(sc, 1)


def test_a_restart_that_does_not_hold_is_recorded_as_failed(sc: Scenario, redis_port: None) -> None:
    seconds = restart_that_dies(sc)
    history = sc.history()
    assert "0 succeeded" in history and "By outcome: failed 1" in history, history
    explained = sc.explain_all()
    assert "incident recurred after the fix" in explained or "; the fix did not hold" in explained, explained
    record("service dies after restart", "not healed", False, seconds, "failed (did not hold)")


def test_a_redis_that_keeps_dying_is_escalated_as_flapping(sc: Scenario, redis_port: None) -> None:
    restart_that_dies(sc)
    # Still down: a fix that did not hold is tried again at once, not after the pattern's 300 s cooldown.
    until_it_dies_again(sc, 2)
    seconds = sc.until_history("escalate (flapping)")
    history = sc.history()
    assert "redis-connection-refused: skip (cooldown)" not in history, history
    assert "Fix attempts: 2 total, 0 succeeded" in history, history
    explained = sc.explain_all()
    assert "the fix held only briefly 2 times in a row (flapping)" in explained, explained
    assert sc.run_app() == 1
    sc.caught_up(sc.log)
    assert "Fix attempts: 2 total" in sc.history()  # escalated: no third restart
    record("service flapping (redis)", "escalated", False, seconds, "failed x2, escalated (flapping)")


# A worker pool's burst: every job fails on the stopped Redis and logs redis-py's real traceback.
STORM = f"""
import logging
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
client = redis.Redis(host="127.0.0.1", port={PORT}, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
for job in range(300):
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        logging.getLogger("shop.worker").exception("job %d failed", job)
"""


def test_an_error_storm_is_one_incident_and_one_restart(sc: Scenario, redis_port: None) -> None:
    sv = redis_under_supervisord(sc)
    sc.configure(supervisor_conf=sv.conf)
    fast_redis(sc, sv)
    sc.write_app(STORM)
    sc.start()
    sc.mark()
    assert sc.run_app() == 0
    seconds = sc.until(lambda: port_open(PORT) and sv.state("redis") == "RUNNING", what="redis serving")
    # The jobs after the restart succeed: how many failed depends on how fast it came.
    failed = sc.log.read_text().count("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    sc.caught_up(sc.log)
    sc.until_history("restart: succeeded")
    errors = sc.out("errors", "--since", "10m")
    assert f"{failed:>8}  redis-connection-refused  (auto-fix)" in errors, errors
    incidents = [line for line in errors.splitlines() if "redis-connection-refused:" in line]
    assert len(incidents) == 1, errors
    assert "Fix attempts: 1 total, 1 succeeded" in sc.history()
    record(f"error storm ({failed} failed jobs)", "healed", False, seconds, "succeeded (1 incident, 1 fix)")
