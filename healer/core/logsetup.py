"""structlog: JSON lines for journald and files, readable output on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _CurrentStderr:
    """``sys.stderr`` as it is when a line is written, not when logging was configured.

    A caller that swaps ``sys.stderr`` (pytest's capture, a CLI run in-process)
    and closes the old one must not leave every later log line writing to a
    closed file.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure(level: str = "info", *, stream: object = None, json: bool | None = None) -> None:
    out = stream or _CurrentStderr()
    as_json = json if json is not None else not (hasattr(out, "isatty") and out.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Libraries (PTB, aiohttp, apscheduler) use stdlib logging; keep them quiet and on the same stream.
    handler = logging.StreamHandler(cast("TextIO", out))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
