"""A log of ordinary noise: healthy tools' real output and an app's INFO lines. Nothing happens."""

from __future__ import annotations

import subprocess
import sys

from support.scenario import Scenario, git, record, tree_digest

# What a healthy app and its deploy job print on a normal day, much of it naming the things patterns look for.
APP = """
import logging
from http.server import BaseHTTPRequestHandler

logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s", level=logging.DEBUG)
log = logging.getLogger("shop")
log.info("config loaded from /srv/shop/config.yaml")
log.info("connected to redis at localhost:6379")
log.debug("registered handler for RateLimitError")
log.info("rate limit headroom 42/100")
log.info("disk usage 42%% on /")
log.debug("checking whether module 'yaml' is importable")
log.info("loaded environment from /srv/shop/.env")
for status in (200, 201, 304, 429, 404):
    # The app's own access log: its clients being limited by it is not the app being limited.
    log.info('127.0.0.1:50412 - "POST /v1/chat HTTP/1.1" %d %s', status, BaseHTTPRequestHandler.responses[status][0])
log.warning("slow request: GET /orders took 1.2s")
log.info("shutting down after 12 jobs")
"""


def test_a_noise_only_log_changes_nothing(sc: Scenario) -> None:
    (sc.app_dir / ".env.example").write_text("OPENAI_MODEL=gpt-4o\n")
    (sc.app_dir / ".env").write_text("OPENAI_MODEL=gpt-4o\n")
    git(sc.app_dir, "init", "-q")
    (sc.app_dir / ".gitignore").write_text("logs/\n.env\n")
    git(sc.app_dir, "add", "-A")
    git(sc.app_dir, "commit", "-qm", "init")
    sc.configure(fallback={"openai": "gpt-4o-mini"})
    sc.write_app(APP)
    sc.start()
    before = tree_digest(sc.app_dir, skip=lambda p: p.name == "app.log")
    sc.mark()
    assert sc.run_app() == 0
    with sc.log.open("a") as fh:  # the deploy job's and pip's real, successful output
        fh.write(git(sc.app_dir, "status").stdout)
        fh.write(git(sc.app_dir, "log", "--oneline").stdout)
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "show", "pyyaml"]
        fh.write(subprocess.run(pip, capture_output=True, text=True, timeout=60).stdout)
    lines = len(sc.log.read_text().splitlines())
    seconds = sc.caught_up(sc.log)
    errors = sc.out("errors", "--since", "10m")
    assert "0 events, 0 incidents" in errors, errors
    assert "Fix attempts: 0 total" in sc.history()
    harmed = tree_digest(sc.app_dir, skip=lambda p: p.name == "app.log") != before
    assert not harmed and lines > 20
    assert seconds < 10
    record("noise-only log", "nothing happened", harmed, None, "none")
