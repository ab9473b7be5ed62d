"""The daemon's control socket: the CLI asks the running daemon, and the daemon does the work.

``healer approve 5`` run beside a daemon used to settle the approval in the
CLI's own process: the fix ran there, Telegram was never told and the
approval message kept its buttons. Through this socket the daemon settles it,
runs the fix on its own pool, edits every copy of the approval message and
sends the fix's notices; ``status`` and ``health`` answer with the state in
force (the kill switch with the daemon's environment overrides), not the file.

Who may ask: the socket is ``control.sock`` in the state directory (0700),
itself 0600, and every connection's peer credentials (``SO_PEERCRED``) are
checked: only the daemon's own uid and root are served; anyone else is
refused and audited (``control_refused``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from aiohttp import web

from healer.app import reports
from healer.app.usecases import Healer
from healer.core.enums import AuditKind, Outcome, SettleStatus
from healer.service.control_proto import MAX_SUN_PATH, SOCKET_MODE, ControlReply, ControlRequest, Verb, socket_path
from healer.telegram.render import esc

if TYPE_CHECKING:
    from healer.telegram.app import TelegramBot

log = structlog.get_logger("healer.service.control")

T = TypeVar("T")
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(request: web.Request) -> int | None:
    """The connecting process's uid from the kernel (not from anything it sent), or None if unknown."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        _pid, uid, _gid = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
    except OSError:
        return None
    return int(uid)


def _user(uid: int | None) -> str:
    if uid is None:
        return "?"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class Control:
    """The verbs, over the daemon's facade; rendered with the same reports the CLI prints offline."""

    def __init__(
        self,
        facade: Healer,
        *,
        serial: Executor,
        bot: Callable[[], TelegramBot | None],
        overrides: Callable[[], tuple[str, ...]],
    ) -> None:
        self.facade = facade
        self._serial = serial
        self._bot = bot
        self._overrides = overrides
        self.pid = os.getpid()

    async def _serially(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._serial, fn, *args)

    def _reply(self, text: str, code: int = EXIT_OK) -> ControlReply:
        return ControlReply(text, code, self.pid)

    def _live(self) -> str:
        lines = [f"(live from the running daemon, pid {self.pid})"]
        over = self._overrides()
        if over:
            lines.append("Overrides in force (editing these keys in the file changes nothing):")
            lines.extend(f"  {o}" for o in over)
        return "\n".join(lines)

    async def handle(self, req: ControlRequest) -> ControlReply:
        f = self.facade
        match req.verb:
            case Verb.STATUS:
                text = reports.status_text(await asyncio.to_thread(f.status))
                bot = self._bot()
                extra = f"\n{bot.status_line()}" if bot is not None else "\nTelegram: off"
                return self._reply(f"{text}{extra}\n{self._live()}")
            case Verb.HEALTH:
                return self._reply(f"{reports.health_text(await asyncio.to_thread(f.health))}\n{self._live()}")
            case Verb.FIX:
                report = await self._serially(f.request_fixes, req.actor)
                report = await asyncio.to_thread(f.run_fixes, report)
                good = (Outcome.SUCCEEDED, Outcome.VERIFYING)
                failed = [o for o in report.outcomes if o.attempt is not None and o.attempt.outcome not in good]
                return self._reply(reports.fix_text(report), EXIT_FAIL if failed else EXIT_OK)
            case Verb.APPROVE | Verb.REJECT:
                return await self._settle(req.target, req.verb is Verb.APPROVE, req.actor)
            case Verb.UNDO:
                # In the daemon, so the undo's outcome is told in Telegram like every other one.
                ok, text = await self._serially(f.undo, req.target, req.actor)
                return self._reply(text, EXIT_OK if ok else EXIT_FAIL)

    async def _settle(self, decision_id: int, approve: bool, actor: str) -> ControlReply:
        f = self.facade
        report = await self._serially(f.decide_settle, decision_id, approve, actor)
        log.info("control_approval", decision=decision_id, approve=approve, status=report.status.value, actor=actor)
        changed = report.status not in (SettleStatus.DONE, SettleStatus.MISSING)
        bot = self._bot()
        if bot is not None and changed:
            await bot.settled(decision_id, reports.settle_text(report, actor, esc))
        if report.todo:
            report = await asyncio.to_thread(f.finish_settle, report)
            if bot is not None:
                await bot.settled(decision_id, reports.settle_text(report, actor, esc))
        ok = report.status is SettleStatus.OK and report.refused is None
        return self._reply(f"decision #{decision_id}: {reports.settle_text(report, actor)}", EXIT_OK if ok else 1)


class ControlServer:
    def __init__(self, control: Control, state_dir: Path) -> None:
        self.control = control
        self.path = socket_path(state_dir)
        self._runner: web.AppRunner | None = None
        self._uid = os.getuid()

    @web.middleware
    async def _owner_only(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        uid = peer_uid(request)
        if uid not in (self._uid, 0):
            detail = {"uid": uid, "user": _user(uid), "path": request.path}
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.control.facade.audit, AuditKind.CONTROL_REFUSED, f"uid:{uid}", detail)
            log.warning("control_refused", uid=uid)
            refusal = {"text": "not allowed: only the daemon's user may control it", "exit": 2}
            return web.json_response(refusal, status=403)
        request["peer"] = _user(uid)
        return await handler(request)

    async def _verb(self, request: web.Request) -> web.Response:
        try:
            verb = Verb(request.match_info["verb"])
        except ValueError:
            return web.json_response({"text": f"unknown request {request.match_info['verb']!r}", "exit": 2}, status=404)
        try:
            body = await request.json() if request.can_read_body else {}
            target = body.get("target", 0) if isinstance(body, dict) else 0
            if isinstance(target, bool) or not isinstance(target, int):
                raise ValueError("target must be an integer")
        except ValueError as exc:
            return web.json_response({"text": f"bad request: {exc}", "exit": 2}, status=400)
        # The actor is who the kernel says connected; what the client claims is only a label after it.
        claimed = str(body.get("actor", "cli"))[:40] if isinstance(body, dict) else "cli"
        actor = f"{claimed}:{request['peer']}"
        reply = await self.control.handle(ControlRequest(verb, target, actor))
        return web.json_response({"text": reply.text, "exit": reply.exit, "pid": reply.pid})

    async def start(self) -> bool:
        """Bind the socket; False (logged) if it cannot be, and the daemon runs on without it."""
        if len(os.fsencode(self.path)) > MAX_SUN_PATH:
            log.error("control_unavailable", path=str(self.path), error="the state directory's path is too long")
            return False
        app = web.Application(middlewares=[self._owner_only], client_max_size=64 * 1024)
        app.router.add_post("/v1/{verb}", self._verb)
        app.router.add_get("/v1/{verb}", self._verb)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        # We hold the state lock, so a socket file here is a dead daemon's: it would refuse our bind.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        try:
            await web.UnixSite(runner, str(self.path)).start()
            os.chmod(self.path, SOCKET_MODE)
        except OSError as exc:
            await runner.cleanup()
            log.error("control_unavailable", path=str(self.path), error=str(exc))
            return False
        self._runner = runner
        log.info("control_listening", path=str(self.path))
        return True

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
