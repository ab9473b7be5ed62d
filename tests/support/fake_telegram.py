"""A fake Telegram Bot API server for end-to-end tests of the bot.

It speaks the real wire format (``POST /bot<token>/<method>``, form or JSON
parameters, ``{"ok": true, "result": ...}`` answers, Message objects with
message_id/date/chat/from/text) so the real python-telegram-bot client runs
against it unmodified: the daemon is started with ``telegram.base_url`` set
to :attr:`FakeTelegram.base_url`.

It runs aiohttp on its own event loop in a background thread, so a test can
drive it synchronously while the daemon runs as a separate process. Every
call is recorded; updates (text messages, button presses) can be injected;
the next N ``sendMessage`` calls can be answered with 429 RetryAfter; and the
whole API can be "down" (502 for every call). A negative chat id is a
supergroup (as Telegram numbers them); ``admins`` lists, per group, the user
ids ``getChatAdministrators`` answers with.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {"id": 987654321, "is_bot": True, "first_name": "healer", "username": "healer_test_bot"}
# Parameters that are free text and must not be JSON-decoded ("123" stays a string).
_TEXT_KEYS = {"text", "callback_query_id", "parse_mode", "data"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    ts: float = field(default_factory=time.time)


class FakeTelegram:
    def __init__(self, token: str = "123:TEST") -> None:
        self.token = token
        self.calls: list[Call] = []
        self.down = False
        self.fail_sends = 0  # answer 429 to this many more sendMessage calls
        self.retry_after = 1
        self.admins: dict[int, list[int]] = {}  # group chat id -> administrators' user ids
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(800000001)
        self._message_ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._new_update: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def start(self) -> FakeTelegram:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._serve())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-telegram", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake telegram did not start")
        return self

    async def _serve(self) -> None:
        self._new_update = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp types _server as optional; started above

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

    # -- injection -------------------------------------------------------------------
    def _push(self, update: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            update = {"update_id": next(self._update_ids), **update}
            self._updates.append(update)
        loop, ev = self._loop, self._new_update
        if loop is not None and ev is not None:
            loop.call_soon_threadsafe(ev.set)
        return update

    def send_text(self, chat_id: int, text: str, user_id: int | None = None) -> dict[str, Any]:
        """A user types ``text`` in chat ``chat_id`` (private chat: user id = chat id)."""
        user = {"id": user_id or chat_id, "is_bot": False, "first_name": "Ops", "username": "ops"}
        msg: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": user,
            "chat": _chat(chat_id),
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            cmd = text.split()[0]
            msg["entities"] = [{"offset": 0, "length": len(cmd), "type": "bot_command"}]
        return self._push({"message": msg})

    def press(self, chat_id: int, message: dict[str, Any], data: str, user_id: int | None = None) -> dict[str, Any]:
        """A user presses an inline button carrying ``data`` under ``message`` (a sent Message dict)."""
        user = {"id": user_id or chat_id, "is_bot": False, "first_name": "Ops", "username": "ops"}
        return self._push(
            {
                "callback_query": {
                    "id": f"cbq{next(self._message_ids)}",
                    "from": user,
                    "message": message,
                    "chat_instance": "-1234567890123456789",
                    "data": data,
                }
            }
        )

    # -- inspection --------------------------------------------------------------------
    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def sent(self, chat_id: int | None = None) -> list[Call]:
        """Successful sendMessage calls (the ones a user would see)."""
        with self._lock:
            return [
                c
                for c in self.calls
                if c.method == "sendMessage"
                and c.params.get("_ok")
                and (chat_id is None or int(c.params.get("chat_id", 0)) == chat_id)
            ]

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [str(c.params.get("text", "")) for c in self.sent(chat_id)]

    def wait_for(self, pred: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = pred()
            if got:
                return got
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; sent so far: {self.texts()!r}")

    def wait_text(self, needle: str, chat_id: int | None = None, timeout: float = 10.0, after: int = 0) -> Call:
        """The first successful sendMessage (index >= ``after``) whose text contains ``needle``."""

        def find() -> Call | None:
            for c in self.sent(chat_id)[after:]:
                if needle.lower() in str(c.params.get("text", "")).lower():
                    return c
            return None

        found: Call = self.wait_for(find, timeout, f"a message containing {needle!r}")
        return found

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
        method = request.match_info["method"]
        params = await self._params(request)
        call = Call(method, params)
        with self._lock:
            self.calls.append(call)
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        if self.down:
            return web.Response(status=502, text="Bad Gateway")
        if method == "sendMessage" and self.fail_sends > 0:
            self.fail_sends -= 1
            return web.json_response(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {self.retry_after}",
                    "parameters": {"retry_after": self.retry_after},
                },
                status=429,
            )
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        result = await handler(params)
        params["_ok"] = True
        call.params = params
        return web.json_response({"ok": True, "result": result})

    async def _m_getMe(self, p: dict[str, Any]) -> Any:
        return {
            **BOT_USER,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _m_deleteWebhook(self, p: dict[str, Any]) -> Any:
        return True

    async def _m_setMyCommands(self, p: dict[str, Any]) -> Any:
        return True

    async def _m_getMyCommands(self, p: dict[str, Any]) -> Any:
        return []

    async def _m_answerCallbackQuery(self, p: dict[str, Any]) -> Any:
        return True

    async def _m_getUpdates(self, p: dict[str, Any]) -> Any:
        offset = int(p.get("offset") or 0)
        timeout = min(float(p.get("timeout") or 0), 1.0)
        limit = int(p.get("limit") or 100)
        deadline = time.monotonic() + timeout
        assert self._new_update is not None
        while True:
            with self._lock:
                # Confirming with offset forgets earlier updates, as Telegram does.
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = self._updates[:limit]
                self._new_update.clear()
            left = deadline - time.monotonic()
            if ready or left <= 0 or self.down:
                return ready
            try:
                await asyncio.wait_for(self._new_update.wait(), left)
            except TimeoutError:
                pass

    def _message(self, p: dict[str, Any]) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": BOT_USER,
            "chat": _chat(int(p["chat_id"])),
            "date": int(time.time()),
            "text": str(p.get("text", "")),
        }
        if p.get("reply_markup"):
            msg["reply_markup"] = p["reply_markup"]
        return msg

    async def _m_getChatAdministrators(self, p: dict[str, Any]) -> Any:
        chat = int(p["chat_id"])
        return [
            {"status": "administrator" if i else "creator", "is_anonymous": False,
             "user": {"id": uid, "is_bot": False, "first_name": f"Admin{uid}"},
             **({"can_be_edited": False, "can_manage_chat": True, "can_delete_messages": True,
                 "can_manage_video_chats": True, "can_restrict_members": True, "can_promote_members": False,
                 "can_change_info": True, "can_invite_users": True, "can_post_stories": False,
                 "can_edit_stories": False, "can_delete_stories": False} if i else {})}
            for i, uid in enumerate(self.admins.get(chat, []))
        ]  # fmt: skip

    async def _m_sendMessage(self, p: dict[str, Any]) -> Any:
        msg = self._message(p)
        p["_result"] = msg
        return msg

    async def _m_editMessageText(self, p: dict[str, Any]) -> Any:
        msg = self._message(p)
        msg["message_id"] = int(p["message_id"])
        msg["edit_date"] = int(time.time())
        return msg


def _chat(chat_id: int) -> dict[str, Any]:
    """A private chat for a positive id, a supergroup for a negative one (Telegram's numbering)."""
    if chat_id < 0:
        return {"id": chat_id, "type": "supergroup", "title": "Ops team"}
    return {"id": chat_id, "type": "private", "first_name": "Ops"}
