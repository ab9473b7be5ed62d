"""Helpers shared by the webhook parsers: bounded JSON and safe extraction.

Everything a sender posts is hostile. ``json.loads`` recurses once per nesting
level, so a body of ``[[[[...`` ten thousand deep raises ``RecursionError``
(or worse, on some builds, exhausts the C stack). We therefore measure the
depth first with a flat scan that never recurses, and only then decode.
The extraction helpers never raise on a wrong type: a field of the wrong shape
reads as missing, so a parser decides for itself whether that is fatal (400)
or tolerable (a lenient event).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Mapping
from itertools import accumulate, count
from typing import Any

from healer.core.enums import Severity
from healer.core.errors import WebhookError

# A whole JSON string token, escapes included (possessive: no backtracking).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NON_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DELTA = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
# A webhook with more arrays/objects than this is not an alert; the cap also
# bounds the cost of the depth scan and of json.loads.
MAX_CONTAINERS = 50_000
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")

MAX_TEXT = 4096  # longest string kept from a payload; messages are log-line sized


def _skeleton(body: bytes) -> bytes:
    """The document's brackets outside strings, as 2 (open) and 0 (close).

    Strings are cut out (a split on quotes when there are no escapes, else one
    regex pass), the rest is reduced with ``bytes.translate``: all at C speed.
    Scanning bytes is sound for UTF-8: a multi-byte character never contains
    an ASCII byte.
    """
    outside = _STRING.sub(b"", body) if b"\\" in body else b"".join(body.split(b'"')[0::2])
    return outside.translate(None, _NON_BRACKETS).translate(_DELTA)


def _depth(skeleton: bytes) -> int:
    # Depth after k brackets is prefix_sum(k) - k; accumulate/map/max run in C.
    return max(map(operator.sub, accumulate(skeleton), count(1)), default=0)


def json_depth(body: bytes) -> int:
    """Deepest bracket nesting of a JSON document: no recursion, no per-byte Python loop."""
    return _depth(_skeleton(body))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_bounded(body: bytes, max_depth: int) -> Any:
    """Decode ``body`` as strict UTF-8 JSON no deeper than ``max_depth``.

    Raises ``WebhookError(400)`` for invalid UTF-8, nesting beyond the limit,
    bad JSON, and the non-standard ``NaN``/``Infinity`` constants.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise WebhookError(400, f"body is not valid UTF-8 (byte {err.start})") from None
    # Few brackets cannot nest deeply: the common case skips the scan entirely.
    if body.count(b"[") + body.count(b"{") > max_depth:
        skeleton = _skeleton(body)
        if skeleton.count(2) > MAX_CONTAINERS:
            raise WebhookError(400, f"more than {MAX_CONTAINERS} JSON arrays/objects")
        if _depth(skeleton) > max_depth:
            raise WebhookError(400, f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:
        raise WebhookError(400, f"body is not valid JSON: {str(err)[:120]}") from None


def loads_object(body: bytes, max_depth: int) -> Mapping[str, Any]:
    """Like ``loads_bounded`` but the top level must be a JSON object."""
    data = loads_bounded(body, max_depth)
    if not isinstance(data, dict):
        raise WebhookError(400, "top-level JSON value must be an object")
    return data


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """Replace control characters and line breaks with spaces, and cap the length.

    Line breaks would let a sender forge extra "log lines" in messages and
    notifications; every source hands the matcher single-line text.
    """
    text = _CONTROL.sub(" ", text)
    if len(text) > limit:
        text = text[:limit] + "…"
    return text


def get(obj: Any, *path: str | int) -> Any:
    """Walk ``path`` through dicts and lists; any mismatch yields ``None``."""
    cur = obj
    for key in path:
        if isinstance(key, int):
            if not isinstance(cur, list) or not -len(cur) <= key < len(cur):
                return None
            cur = cur[key]
        else:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(key)
    return cur


def get_str(obj: Any, *path: str | int, default: str = "", limit: int = MAX_TEXT) -> str:
    """The value at ``path`` as a cleaned string; numbers are formatted, the rest is ``default``."""
    val = get(obj, *path)
    if isinstance(val, bool):
        return default
    if isinstance(val, str):
        return clean(val, limit)
    if isinstance(val, int | float):
        return str(val)
    return default


def get_dict(obj: Any, *path: str | int) -> Mapping[str, Any]:
    val = get(obj, *path)
    return val if isinstance(val, dict) else {}


def get_list(obj: Any, *path: str | int) -> list[Any]:
    val = get(obj, *path)
    return val if isinstance(val, list) else []


def header(headers: Mapping[str, str], name: str) -> str:
    """Case-insensitive header lookup that works on a plain ``dict`` too."""
    val = headers.get(name)
    if val is None:
        lname = name.lower()
        for key, value in headers.items():
            if key.lower() == lname:
                val = value
                break
    return val if isinstance(val, str) else ""


def str_fields(pairs: Mapping[str, Any]) -> dict[str, str]:
    """Keep only non-empty string-ish values, cleaned; drop the rest."""
    out: dict[str, str] = {}
    for key, value in pairs.items():
        if not isinstance(key, str) or isinstance(value, bool):
            continue
        if isinstance(value, str | int | float) and str(value) != "":
            out[clean(key, 128)] = clean(str(value), 1024)
    return out


_LEVELS: Mapping[str, Severity] = {
    "fatal": Severity.CRITICAL,
    "critical": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "error": Severity.HIGH,
    "high": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "warn": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "info": Severity.LOW,
    "low": Severity.LOW,
    "debug": Severity.LOW,
    "none": Severity.LOW,
}


def severity_of(level: str) -> Severity | None:
    """Map a sender's level word onto healer's four severities; unknown → None."""
    return _LEVELS.get(level.strip().lower())
