"""An LLM API answering 429 for the primary model: the app's env file gets the fallback, then the primary back."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from support.daemon import StoreView
from support.httpserver import serving
from support.scenario import FAST_ENGINE, Scenario, record, tree_digest, tune, wait

from healer.core.enums import AuditKind

PRIMARY, FALLBACK = "gpt-4o", "gpt-4o-mini"
ENV = f"# shop\nOPENAI_MODEL={PRIMARY}\nOPENAI_BASE_URL=http://127.0.0.1:0/v1\nDEBUG=0\n"
# A worker that handles N jobs; each job is one chat completion with the model its .env names, read per job.
# The real openai SDK (no retries, so a 429 is one quick failure); a failed job is logged with its traceback.
APP = """
import logging, sys
from pathlib import Path
import openai

logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s", level=logging.INFO)
log = logging.getLogger("shop.worker")
for job in range(int(sys.argv[1])):
    env = dict(l.split("=", 1) for l in (Path(__file__).parent / ".env").read_text().splitlines() if "=" in l)
    client = openai.OpenAI(api_key="sk-test", base_url=env["OPENAI_BASE_URL"], max_retries=0)
    try:
        reply = client.chat.completions.create(model=env["OPENAI_MODEL"], messages=[{"role": "user", "content": "hi"}])
        log.info("job %d done by %s", job, reply.model)
    except openai.RateLimitError:
        log.exception("job %d failed", job)
        sys.exit(1) if job == int(sys.argv[1]) - 1 else None
"""


class Api(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint whose account is rate-limited on the primary model only."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["model"] == PRIMARY:
            error = {
                "message": f"Rate limit reached for {PRIMARY} on requests per min (RPM): Limit 3.",
                "type": "requests",
            }
            self.answer(429, {"error": {**error, "param": None, "code": "rate_limit_exceeded"}})
            return
        choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hello"}}
        self.answer(
            200, {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"], "choices": [choice]}
        )

    def answer(self, status: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def api() -> Iterator[str]:
    with serving(Api) as url:
        yield url + "/v1"


def model(sc: Scenario) -> str:
    for line in (sc.app_dir / ".env").read_text().splitlines():
        if line.startswith("OPENAI_MODEL="):
            return line.split("=", 1)[1]
    return ""


def rate_limited(sc: Scenario, api: str, revert_after: float | None = None) -> float:
    """The worker's three jobs get 429s; returns seconds until the .env names the fallback."""
    env = ENV.replace("http://127.0.0.1:0/v1", api)
    (sc.app_dir / ".env").write_text(env)
    (sc.app_dir / ".env.example").write_text(env)
    app = sc.configure(fallback={"openai": FALLBACK})
    assert app["models"] == {"openai": {"key": "OPENAI_MODEL", "fallback": FALLBACK, "primary": PRIMARY}}
    if revert_after is not None:  # healer setup does not ask for it
        tune(sc.config, apps={"shop": {"models": {"openai": {"revert_after": revert_after}}}})
    sc.write_app(APP)
    sc.start()
    sc.mark()
    assert sc.run_app("3") == 1
    assert "openai.RateLimitError: Error code: 429 - Rate limit reached for gpt-4o" in sc.log.read_text()
    return sc.until(lambda: model(sc) == FALLBACK, what=f"OPENAI_MODEL={FALLBACK}")


def test_a_rate_limited_model_is_switched_to_the_apps_fallback(sc: Scenario, api: str) -> None:
    seconds = rate_limited(sc, api)
    others = tree_digest(sc.app_dir, skip=lambda p: p.name in (".env", "app.log"))
    assert (sc.app_dir / ".env").read_text() == ENV.replace("http://127.0.0.1:0/v1", api).replace(
        f"={PRIMARY}\n", f"={FALLBACK}\n"
    )  # only that line changed, comments and order kept
    assert sc.run_app("1") == 0 and f"job 0 done by {FALLBACK}" in sc.log.read_text()
    sc.until_history("set_config: succeeded")
    harmed = tree_digest(sc.app_dir, skip=lambda p: p.name in (".env", "app.log")) != others
    assert not harmed
    record("429 -> fallback model", "healed", harmed, seconds, "succeeded")


REVERT_AFTER = 2.5  # longer than the verify window, as a real revert_after (30m) is


def test_the_primary_model_comes_back_after_revert_after(sc: Scenario, api: str) -> None:
    rate_limited(sc, api, revert_after=REVERT_AFTER)
    seconds = sc.until(lambda: model(sc) == PRIMARY, REVERT_AFTER + FAST_ENGINE["verify_window"] + 2, "primary back")
    assert (sc.app_dir / ".env").read_text() == ENV.replace("http://127.0.0.1:0/v1", api)  # byte for byte
    # Audited, and shown where a user looks: healer history and explain.
    store = StoreView(sc.config.parent / "state" / "healer.db")
    assert wait(lambda: [e.detail for e in store.audit(AuditKind.FIX_REVERTED)]) == [
        {"attempt": 1, "result": "rolled_back"}
    ]
    assert re.search(r"set_config: succeeded \(\d+s ago\), reverted \d+s ago ", sc.history()), sc.history()
    # Every incident: httpx's own INFO line for the 429 may open the (notify-only) generic one first.
    assert re.search(r"#1 set_config: succeeded, reverted \d+s ago — ", sc.explain_all()), sc.explain_all()
    record("429 -> later revert", "reverted", False, seconds, "succeeded, then reverted (history, explain, audit)")
