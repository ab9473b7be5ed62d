"""The base model and the small field types the settings sections share.

``Model`` is frozen and forbids unknown keys: a typo is an error, never a
silently ignored key. A model validated with a context (``{"base": <config
dir>, "env": {...}}``) is being read from a file: relative paths resolve
against the config's directory and secret fields refuse any value, because
secrets come from the environment only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sized
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationInfo

from healer.core.paths import BUNDLED, bundled_patterns_dir
from healer.settings.types import ByteSize, Duration
from healer.settings.validation import Problem


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionModel(Model):
    """An ``actions.<name>`` section: every action's own settings plus what the engine reads of each.

    ``verify_grace``: how long after a fix of this action a matching line
    still counts as the tail of the old fault (backlog, in-flight
    requests), not as a recurrence. Unset: ``engine.verify_grace`` or the
    action's own default, whichever is longer.
    """

    verify_grace: Duration | None = None


def from_file(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and "base" in info.context


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {raw!r}")
    if "\x00" in raw or "\n" in raw:
        raise ValueError("must not contain NUL or newline")
    return raw


def _nonempty(raw: str) -> str:
    if not raw:
        raise ValueError("must not be empty")
    return raw


def _number(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ValueError(f"expected a finite number, got {raw!r}")
    return float(raw)


T = TypeVar("T")
S = TypeVar("S", bound=Sized)


def required(hint: str) -> AfterValidator:
    """A validator refusing an empty list or mapping, with ``hint`` saying what to list."""

    def check(value: S) -> S:
        if not value:
            raise ValueError(f"must not be empty; {hint}")
        return value

    return AfterValidator(check)


def name_entries(entries: Any, under: str, defaults: Callable[[str], Mapping[str, Any]]) -> Any:
    """Give each entry of a named mapping (``units: {redis: {...}}``) its ``key`` and key-based defaults.

    ``key`` is the entry's name in the mapping, so it is never a setting itself.
    Anything that is not a mapping of mappings is left for the model to refuse.
    Use it as the mapping field's own before-validator (errors are located at the field).
    """
    if not isinstance(entries, dict):
        return entries
    out = {}
    for key, spec in entries.items():
        spec = {} if spec is None else spec
        if isinstance(spec, dict):
            if "key" in spec:
                raise Problem(f"{key}.key", f"not a setting; the entry's name is its key under {under}")
            spec = {**defaults(key), **spec, "key": key}
        out[key] = spec
    return out


def _list(raw: Any) -> Any:
    # A YAML set or a mapping would be iterated into a tuple; only a sequence says "a list".
    if not isinstance(raw, list | tuple):
        raise ValueError(f"expected a list, got {raw!r}")
    return raw


def _abs_path(raw: Any) -> Path:
    p = Path(_text(raw))
    if not p.is_absolute():
        raise ValueError(f"must be an absolute path, got {raw!r}")
    return p


def _rel_path(raw: Any, info: ValidationInfo) -> Path:
    """A path from the file, relative to the config's directory; ``~`` expanded."""
    p = Path(os.path.expanduser(raw if isinstance(raw, Path) else _text(raw)))
    if p.is_absolute() or not from_file(info):
        return p
    base: Path = info.context["base"]  # type: ignore[index]  # from_file checked the context
    return base / p


def _refuse_secret(raw: Any, info: ValidationInfo) -> Any:
    if from_file(info):
        raise ValueError("secrets never go in the YAML; put it in .env beside the config and name it in the *_env key")
    return raw


Text = Annotated[str, BeforeValidator(_text)]
"""A string without NUL or newline (it may reach an argv or a log line)."""
Name = Annotated[str, BeforeValidator(_text), AfterValidator(_nonempty)]
"""A non-empty ``Text``."""
Flag = StrictBool
"""``true`` or ``false`` only: ``1`` and ``"yes"`` are refused, not guessed."""
Number = Annotated[float, BeforeValidator(_number)]
"""A finite number (int or float, not a bool)."""
AbsPath = Annotated[Path, BeforeValidator(_abs_path)]
"""An absolute path (action targets: no guessing which directory is meant)."""
RelPath = Annotated[Path, BeforeValidator(_rel_path)]
"""A path; relative ones resolve against the config file's directory."""


def _rel_path_text(raw: Any, info: ValidationInfo) -> str:
    return str(_rel_path(raw, info))


def _pattern_dir(raw: Any, info: ValidationInfo) -> Path:
    return bundled_patterns_dir() if raw == BUNDLED else _rel_path(raw, info)


RelPathText = Annotated[str, BeforeValidator(_rel_path_text)]
"""A ``RelPath`` kept as text, for globs like ``./logs/*.log``."""
PatternDir = Annotated[Path, BeforeValidator(_pattern_dir)]
"""A ``RelPath``, or the word ``bundled``: the patterns shipped with healer (``./bundled`` is a directory)."""
Secret = Annotated[str, BeforeValidator(_refuse_secret), Field(repr=False, exclude=True)]
"""Filled from the environment by the loader; refused when written in the file."""
Items = Annotated[tuple[T, ...], BeforeValidator(_list)]
"""A YAML list, held as a tuple (frozen)."""
Timeout = Annotated[Duration, Field(gt=0)]
"""Seconds > 0: a timeout of 0 would kill every process at once."""
Port = Annotated[int, Field(strict=True, ge=0, le=65535)]

__all__ = [
    "AbsPath",
    "ByteSize",
    "Duration",
    "Flag",
    "Items",
    "Model",
    "Name",
    "Number",
    "PatternDir",
    "Port",
    "RelPath",
    "RelPathText",
    "Secret",
    "Text",
    "Timeout",
    "from_file",
    "name_entries",
    "required",
]
