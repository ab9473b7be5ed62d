"""One fake Bot API serving several bots in one group chat, for the fleet chat test (issue 17).

Like :mod:`support.fake_telegram` it speaks the wire format the real
python-telegram-bot client expects (``/bot<token>/<method>``, ``{"ok": true,
"result": ...}``), but it knows several tokens, each a bot with its own user,
update queue and offsets, and one group (a supergroup) they were all added to.
What a person types in the group is fanned out to the bots the way Telegram
does it (core.telegram.org/bots/features#privacy-mode):

* a bot with privacy mode off receives every message people send;
* with privacy mode on it receives only commands meant for it
  (``/cmd@this_bot``), general commands (``/cmd``) if it was the last bot to
  send a message to the group, messages mentioning ``@this_bot`` and replies to
  its own messages;
* bots never receive other bots' messages, whatever the mode;
* a button press goes only to the bot that sent the message with the buttons.

Telegram stores a message as plain text plus entities, so a bot's HTML is kept
as the text a person reads (tags dropped, entities unescaped), which is also
what ``Message.text`` gives back to the bot when it edits its message.

Every message, edit, button press and toast is recorded in order, with who
said it: :meth:`FakeTelegramGroup.transcript` is the chat as people saw it.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

GROUP_ID = -1001234567890
OPS = {"id": 111, "is_bot": False, "first_name": "Ops", "username": "ops"}
_TEXT_KEYS = {"text", "callback_query_id", "parse_mode", "data"}
_TAG = re.compile(r"<[^>]+>")


def plain(html_text: str) -> str:
    """What a person reads of a message sent with ``parse_mode=HTML``."""
    return html.unescape(_TAG.sub("", html_text))


@dataclass
class FakeBot:
    token: str
    user: dict[str, Any]
    privacy: bool
    updates: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # methods called, in order
    event: asyncio.Event | None = None

    @property
    def username(self) -> str:
        return str(self.user["username"])


class FakeTelegramGroup:
    def __init__(self, chat_id: int = GROUP_ID, title: str = "ops fleet") -> None:
        self.chat = {"id": chat_id, "type": "supergroup", "title": title}
        self.bots: dict[str, FakeBot] = {}  # by token
        self.messages: dict[int, dict[str, Any]] = {}  # by message_id, as Telegram stores them
        self.lines: list[str] = []  # the transcript
        self.last_bot: str | None = None  # who spoke last: gets general commands in privacy mode
        self._ids = itertools.count(1000)
        self._update_ids = itertools.count(500000001)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- set-up ----------------------------------------------------------------------
    def add_bot(self, token: str, username: str, *, privacy: bool = False) -> FakeBot:
        """A bot made with BotFather (``/setprivacy`` → ``privacy``) and added to the group."""
        bot_id = 7_000_000_000 + len(self.bots) + 1
        user = {"id": bot_id, "is_bot": True, "first_name": username, "username": username}
        bot = FakeBot(token, user, privacy, event=asyncio.Event())  # binds to the server's loop on first wait
        self.bots[token] = bot
        return bot

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def start(self) -> FakeTelegramGroup:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._serve())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-telegram-group", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake telegram group did not start")
        return self

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started above

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # -- people ------------------------------------------------------------------------
    def say(self, text: str) -> dict[str, Any]:
        """Ops types ``text`` in the group; each bot gets it if Telegram would give it."""
        msg: dict[str, Any] = {
            "message_id": next(self._ids),
            "from": OPS,
            "chat": self.chat,
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            msg["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
        with self._lock:
            self.messages[msg["message_id"]] = msg
            self.lines.append(f"ops: {text}")
            receivers = [b for b in self.bots.values() if self._sees(b, msg)]
        for bot in receivers:
            self._push(bot, {"message": msg})
        return msg

    def _sees(self, bot: FakeBot, msg: dict[str, Any]) -> bool:
        if not bot.privacy:
            return True
        text = str(msg.get("text", ""))
        name = bot.username.lower()
        if msg.get("entities") and msg["entities"][0]["type"] == "bot_command":
            head = text.split()[0].lower()
            if "@" in head:
                return head.split("@", 1)[1] == name
            return self.last_bot == bot.username
        reply = msg.get("reply_to_message")
        if reply is not None and reply.get("from", {}).get("id") == bot.user["id"]:
            return True
        return f"@{name}" in text.lower()

    def press(self, message: dict[str, Any], button: int = 0) -> None:
        """Ops presses a button under a bot's message: only that bot is told, as Telegram does."""
        owner = next(b for b in self.bots.values() if b.user["id"] == message["from"]["id"])
        self._press(owner, message, button, forged=False)

    def forge_press(self, bot_username: str, message: dict[str, Any], button: int = 0) -> None:
        """The same press delivered to another bot: Telegram never does this; a healer must still refuse it."""
        self._press(self.bot(bot_username), message, button, forged=True)

    def _press(self, bot: FakeBot, message: dict[str, Any], button: int, forged: bool) -> None:
        btn = message["reply_markup"]["inline_keyboard"][0][button]
        author = message["from"]["username"]
        how = f"(forged: delivered to {bot.username}) " if forged else ""
        with self._lock:
            self.lines.append(f"ops: {how}presses [{btn['text']}] under {author}'s message #{message['message_id']}")
        query = {
            "id": f"cbq{next(self._ids)}",
            "from": OPS,
            "message": message,
            "chat_instance": "-42",
            "data": btn["callback_data"],
        }
        self._push(bot, {"callback_query": query})

    def _push(self, bot: FakeBot, update: dict[str, Any]) -> None:
        with self._lock:
            bot.updates.append({"update_id": next(self._update_ids), **update})
        if self._loop is not None and bot.event is not None:
            self._loop.call_soon_threadsafe(bot.event.set)

    # -- inspection --------------------------------------------------------------------
    def bot(self, username: str) -> FakeBot:
        return next(b for b in self.bots.values() if b.username == username)

    def sent_by(self, username: str) -> list[dict[str, Any]]:
        """The messages a bot sent to the group, oldest first, as they are now (edits applied)."""
        uid = self.bot(username).user["id"]
        with self._lock:
            return [m for m in self.messages.values() if m["from"]["id"] == uid]

    def wait_for(self, pred: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = pred()
            if got:
                return got
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; the chat so far:\n{self.transcript()}")

    def wait_message(self, username: str, needle: str, after: int = 0, timeout: float = 20.0) -> dict[str, Any]:
        """The first message from ``username`` (message_id > ``after``) whose text contains ``needle``."""

        def find() -> dict[str, Any] | None:
            return next(
                (m for m in self.sent_by(username) if m["message_id"] > after and needle in m["text"]),
                None,
            )

        found: dict[str, Any] = self.wait_for(find, f"{username} to say {needle!r}", timeout)
        return found

    def said(self, username: str, needle: str) -> list[str]:
        return [m["text"] for m in self.sent_by(username) if needle in m["text"]]

    def mark(self) -> int:
        """The newest message id so far: ``wait_message(after=mark)`` sees only later messages."""
        with self._lock:
            return max(self.messages, default=0)

    def transcript(self) -> str:
        with self._lock:
            return "\n".join(self.lines) + "\n"

    def write_transcript(self, path: Path) -> Path:
        path.write_text(self.transcript())
        return path

    # -- the API ------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, Any]:
        raw: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                raw.update(await request.json())
            else:
                raw.update(dict(await request.post()))
        out: dict[str, Any] = {}
        for k, v in raw.items():
            if isinstance(v, str) and k not in _TEXT_KEYS:
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            out[k] = v
        return out

    async def _handle(self, request: web.Request) -> web.Response:
        bot = self.bots.get(request.match_info["token"])
        if bot is None:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        bot.calls.append(method)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        result = await handler(bot, await self._params(request))
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    async def _m_getMe(self, bot: FakeBot, p: dict[str, Any]) -> Any:
        return {**bot.user, "can_join_groups": True, "can_read_all_group_messages": not bot.privacy}

    async def _m_deleteWebhook(self, bot: FakeBot, p: dict[str, Any]) -> Any:
        return True

    async def _m_setMyCommands(self, bot: FakeBot, p: dict[str, Any]) -> Any:
        return True

    async def _m_answerCallbackQuery(self, bot: FakeBot, p: dict[str, Any]) -> Any:
        if p.get("text"):
            with self._lock:
                self.lines.append(f"{bot.username} (toast to ops): {p['text']}")
        return True

    async def _m_getUpdates(self, bot: FakeBot, p: dict[str, Any]) -> Any:
        offset = int(p.get("offset") or 0)
        deadline = time.monotonic() + min(float(p.get("timeout") or 0), 1.0)
        assert bot.event is not None
        while True:
            with self._lock:
                bot.updates = [u for u in bot.updates if u["update_id"] >= offset]  # confirmed: forgotten
                ready = bot.updates[: int(p.get("limit") or 100)]
                bot.event.clear()
            left = deadline - time.monotonic()
            if ready or left <= 0:
                return ready
            try:
                await asyncio.wait_for(bot.event.wait(), left)
            except TimeoutError:
                pass

    def _chat_of(self, p: dict[str, Any]) -> dict[str, Any] | web.Response:
        if int(p["chat_id"]) != self.chat["id"]:
            return web.json_response({"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
        return self.chat

    async def _m_sendMessage(self, bot: FakeBot, p: dict[str, Any]) -> Any:
        chat = self._chat_of(p)
        if isinstance(chat, web.Response):
            return chat
        text = plain(str(p.get("text", "")))
        msg: dict[str, Any] = {
            "message_id": next(self._ids),
            "from": bot.user,
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        buttons = ""
        if p.get("reply_markup"):
            msg["reply_markup"] = p["reply_markup"]
            row = p["reply_markup"]["inline_keyboard"][0]
            buttons = "\n    " + " ".join(f"[{b['text']} | {b['callback_data']}]" for b in row)
        with self._lock:
            self.messages[msg["message_id"]] = msg
            self.last_bot = bot.username
            self.lines.append(f"{bot.username} (#{msg['message_id']}): {_indent(text)}{buttons}")
        return msg

    async def _m_editMessageText(self, bot: FakeBot, p: dict[str, Any]) -> Any:
        with self._lock:
            msg = self.messages.get(int(p["message_id"]))
            if msg is None or msg["from"]["id"] != bot.user["id"]:
                # Telegram: a bot can edit only its own messages.
                return web.json_response(
                    {"ok": False, "error_code": 400, "description": "Bad Request: message can't be edited"}
                )
            msg = {**msg, "text": plain(str(p.get("text", ""))), "edit_date": int(time.time())}
            msg.pop("reply_markup", None)
            if p.get("reply_markup"):
                msg["reply_markup"] = p["reply_markup"]
            self.messages[msg["message_id"]] = msg
            self.lines.append(f"{bot.username} (edits #{msg['message_id']}): {_indent(msg['text'])}")
        return msg


def _indent(text: str) -> str:
    return text.replace("\n", "\n    ")
