"""The bot in-process: the real PTB client against the fake Bot API, the real facade, engine and store.

Nothing is mocked: the ruleset is loaded from a real config and pattern
file, the engine writes a real SQLite store, fixes run real commands, and
the bot talks HTTP to :class:`FakeTelegram`. What the test controls is time
(a ``FakeClock``) and the scheduler: ``every`` only records the periodic
jobs, and a test runs one when it wants (``await rig.tick("telegram-digest")``),
so no test sleeps to make a digest happen.

``make_healer`` builds the facade over an engine the way the CLI does (fixes
run inline), for tests that need no bot.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from healer.app.ruleset import Ruleset, load_ruleset
from healer.app.usecases import Healer
from healer.core.clock import FakeClock
from healer.core.enums import SourceName
from healer.core.jobs import Job
from healer.core.records import FixAttempt
from healer.engine.engine import Engine
from healer.settings.schema import TelegramSettings
from healer.store.db import Store
from healer.telegram.app import TelegramBot
from support.fake_telegram import Call, FakeTelegram

CHAT = 111
STRANGER = 666


def make_healer(engine: Engine, rules: Ruleset | None = None) -> Healer:
    """The facade over ``engine`` with fixes run inline, as ``healer fix`` runs them."""
    ruleset = rules or Ruleset(engine.settings, tuple(engine.by_id.values()), (), ())

    def run_inline(jobs: Sequence[Job]) -> list[FixAttempt | None]:
        return [engine.run_job(j) for j in jobs]

    return Healer(lambda: ruleset, engine.store, engine, engine.clock, run_inline)


def write_config(tmp: Path, patterns: list[dict[str, Any]], **over: Any) -> Path:
    (tmp / "patterns").mkdir(exist_ok=True)
    # Through JSON: patterns built from one another share lists, which safe_dump would write as
    # aliases (and deepcopy keeps shared), and pattern files refuse aliases.
    (tmp / "patterns" / "test.yaml").write_text(yaml.safe_dump({"patterns": json.loads(json.dumps(patterns))}))
    cfg: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "patterns_dirs": [str(tmp / "patterns")],
        "actions": {"command": {"commands": {"ok": {"argv": ["true"]}}}},
        "telegram": {"token_env": "HEALER_RIG_NO_TOKEN"},
        **over,
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@dataclass
class Rig:
    fake: FakeTelegram
    bot: TelegramBot
    facade: Healer
    engine: Engine
    store: Store
    clock: FakeClock
    serial: ThreadPoolExecutor
    config: Path
    jobs: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)

    async def ingest(self, *lines: str) -> None:
        """Lines as the tailer hands them over, on the serial executor as in the daemon."""
        data = "".join(line + "\n" for line in lines).encode()
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            self.serial, self.engine.ingest_buffer, data, "app", "app.log", SourceName.FILE
        )
        for job in result.jobs:
            await asyncio.to_thread(self.engine.run_job, job)

    async def tick(self, name: str) -> None:
        await self.jobs[name]()

    async def wait(self, what: Callable[[], Any], label: str, timeout: float = 10.0) -> Any:
        return await asyncio.to_thread(self.fake.wait_for, what, timeout, label)

    async def ask(self, text: str, needle: str, chat: int = CHAT) -> str:
        before = len(self.fake.sent(chat))
        self.fake.send_text(chat, text)
        call: Call = await asyncio.to_thread(self.fake.wait_text, needle, chat, 10.0, before)
        return str(call.params["text"])

    def edits(self) -> list[str]:
        return [str(c.params.get("text", "")) for c in self.fake.calls_of("editMessageText")]


@asynccontextmanager
async def running_bot(tmp: Path, patterns: list[dict[str, Any]], **config: Any) -> AsyncIterator[Rig]:
    fake = FakeTelegram().start()
    path = write_config(tmp, patterns, **config)
    rules = load_ruleset(path)
    assert not rules.pattern_errors, rules.pattern_errors
    # The token is given directly rather than through the environment, so no test leaks it into os.environ.
    telegram = TelegramSettings(
        token=fake.token, base_url=fake.base_url, allowed_chat_ids=(CHAT,), notify_chat_ids=(CHAT,)
    )
    settings = rules.settings.model_copy(update={"telegram": telegram})
    ruleset = replace(rules, settings=settings)
    store = Store(settings.state_dir / "healer.db")
    # Starts at the wall clock so a CLI run on the same store (SystemClock) sees the same "ago".
    clock = FakeClock(float(int(time.time())))
    loop = asyncio.get_running_loop()
    bot_box: list[TelegramBot] = []

    def notice(n: Any) -> None:  # engine threads -> the loop, as the daemon does
        loop.call_soon_threadsafe(bot_box[0].notify, n)

    engine = Engine(settings, rules.patterns, store, clock=clock, notice=notice)
    serial = ThreadPoolExecutor(1, thread_name_prefix="rig-serial")

    def run_jobs(jobs: Sequence[Job]) -> list[FixAttempt | None]:
        return [engine.run_job(j) for j in jobs]

    facade = Healer(lambda: ruleset, store, engine, clock, run_jobs)
    jobs: dict[str, Callable[[], Awaitable[None]]] = {}

    def every(name: str, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        jobs[name] = job

    bot = TelegramBot(facade, lambda: ruleset.settings.telegram, clock=clock, serial=serial, every=every)
    bot_box.append(bot)
    rig = Rig(fake, bot, facade, engine, store, clock, serial, path, jobs)
    await bot.start()
    try:
        await rig.wait(lambda: fake.calls_of("getUpdates"), "the bot to poll")
        yield rig
    finally:
        await bot.stop()
        serial.shutdown(wait=True)
        store.close()
        fake.stop()


def plain(text: str) -> str:
    """A bot message as a person reads it (HTML entities decoded)."""
    return html.unescape(text)
