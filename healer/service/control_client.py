"""The CLI's end of the control socket: ask the running daemon, or say plainly that none runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from healer.core.errors import HealerError
from healer.service import statelock
from healer.service.control_proto import ControlReply, ControlRequest, Verb, socket_path
from healer.settings.load import load_settings

EXIT_USAGE = 2

TIMEOUT = 900.0  # an approved fix runs before the answer comes: as long as the longest fix may take


class NoDaemon(HealerError):
    """Nothing answers on the control socket; the message says why and what the state dir is."""


async def _ask(path: Path, req: ControlRequest) -> ControlReply:
    connector = aiohttp.UnixConnector(path=str(path))
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.post(f"http://healer/v1/{req.verb.value}", json=req.body()) as resp,
    ):
        return ControlReply.of(await resp.json(content_type=None))


def ask(state_dir: Path, req: ControlRequest) -> ControlReply:
    """The daemon's answer, or :class:`NoDaemon` naming the state directory and what was found there."""
    path = socket_path(state_dir)
    try:
        return asyncio.run(_ask(path, req))
    except (aiohttp.ClientConnectorError, FileNotFoundError, ConnectionRefusedError) as exc:
        pid = statelock.holder(state_dir)
        if pid is not None:
            raise NoDaemon(
                f"a healer daemon (pid {pid}) holds state directory {state_dir}, but its control socket "
                f"{path} does not answer ({exc.__class__.__name__}); see its log"
            ) from None
        raise NoDaemon(
            f"no healer daemon is running on state directory {state_dir} (no control socket at {path})"
        ) from None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise HealerError(f"the daemon's control socket {path} failed: {type(exc).__name__}: {exc}") from None


def _ask_config(config: Path, verb: Verb, target: int = 0) -> ControlReply:
    return ask(load_settings(config).state_dir, ControlRequest(verb, target))


def act(config: Path, args: argparse.Namespace, verb: Verb, target: int, offline: Callable[[], int]) -> int:
    """An action the daemon must do (so Telegram is told); in the CLI's process only when asked with --offline."""
    if args.offline:
        return offline()
    try:
        reply = _ask_config(config, verb, target)
    except NoDaemon as exc:
        again = f"healer -c {config} {args.cmd}{f' {target}' if target else ''} --offline"
        print(
            f"error: {exc}.\nTo do it in this process instead, run: {again}\n"
            "(the fix then runs here, and Telegram is not told: an approval message keeps its buttons)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(reply.text)
    return reply.exit


def read(config: Path, args: argparse.Namespace, verb: Verb, offline: Callable[[], int]) -> int:
    """A report: the daemon's live state when one runs; otherwise the files, and it says so."""
    note = "(--offline: read from the config file and the store, not from the running daemon)"
    if not args.offline:
        try:
            reply = _ask_config(config, verb)
        except NoDaemon as exc:
            note = f"({exc}: read from the config file and the store instead; the kill switch is the file's)"
        else:
            print(reply.text)
            return reply.exit
    rc = offline()
    print(note)
    return rc
