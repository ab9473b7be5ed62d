"""Turn pydantic's validation errors into the one message shape healer prints.

``config.yaml: engine.verify_windw: unknown key (known keys here: approval_ttl, …)``:
the file, the full dotted key path (dict keys and ``[i]`` list indexes), the
problem, and what to do. Every settings model (the config's sections, each
action's ``actions.<name>`` section, the webhook block) goes through
:func:`validate_model`, so an operator reads the same shape everywhere.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from healer.core.errors import ParamError

M = TypeVar("M", bound=BaseModel)

# Fields a loader sets itself; never accepted from a file, never listed as known keys.
INTERNAL_FIELDS = frozenset({"source", "raw", "overrides"})


class SettingsInvalid(ParamError):
    """One invalid key of a settings section, already worded for the operator."""

    def __init__(self, key: str, problem: str, fix: str = "") -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        super().__init__(f"{key}: {problem}" + (f" ({fix})" if fix else ""))


class Problem(ValueError):
    """Raised by a model-level validator about one key below it: ``Problem("units", "must not be empty")``.

    Pydantic locates a model validator's error at the model; this says which key it is about,
    so the message still names the full key path.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(problem)


def key_path(prefix: str, loc: Sequence[int | str]) -> str:
    """``("files", 0, "path")`` under ``sources`` -> ``sources.files[0].path``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part and part.endswith("]"):
            continue  # pydantic's name for a validator step ("function-after[...]"), not a key
        else:
            out = f"{out}.{part}" if out else part
    return out


def _unwrap(tp: Any) -> Any:
    """The model or container type behind ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that the key path ``loc`` points into, to list its known keys."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
            continue
        args = typing.get_args(tp)
        origin = typing.get_origin(tp)
        if origin in (dict, Mapping, typing.Mapping) and len(args) == 2:
            tp = args[1]
        elif origin in (tuple, list) and args:
            tp = args[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def known_keys(model: type[BaseModel]) -> str:
    return ", ".join(sorted(set(model.model_fields) - INTERNAL_FIELDS))


def _got(err: ErrorDetails) -> str:
    value = err.get("input")
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(err: ErrorDetails, model: type[BaseModel], prefix: str) -> SettingsInvalid:
    """One pydantic error -> key, problem, fix."""
    loc = err["loc"]
    key = key_path(prefix, loc)
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        fix = f"known keys here: {known_keys(parent)}" if parent is not None else "remove it"
        return SettingsInvalid(key, "unknown key", fix)
    if kind == "missing":
        return SettingsInvalid(key, "missing", "this key is required; see config.example.yaml")
    if kind in ("value_error", "assertion_error"):
        # Our own validators word the whole problem (and its fix); drop pydantic's prefix.
        cause = ctx.get("error")
        if isinstance(cause, Problem):
            return SettingsInvalid(key_path(key, cause.key.split(".")), cause.problem)
        return SettingsInvalid(key, str(cause if cause is not None else err["msg"]))
    plain = {
        "bool_type": "expected true or false",
        "bool_parsing": "expected true or false",
        "int_type": "expected a whole number",
        "int_parsing": "expected a whole number",
        "int_from_float": "expected a whole number",
        "float_type": "expected a number",
        "float_parsing": "expected a number",
        "finite_number": "expected a finite number",
        "string_type": "expected a string",
        "list_type": "expected a list",
        "tuple_type": "expected a list",
        "dict_type": "expected a mapping of keys",
        "model_type": "expected a mapping of keys",
        "model_attributes_type": "expected a mapping of keys",
    }
    if kind in plain:
        return SettingsInvalid(key, f"{plain[kind]}, got {_got(err)}")
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), "")
        return SettingsInvalid(key, f"expected a number {sign} {bound}, got {_got(err)}")
    if kind == "literal_error":
        return SettingsInvalid(key, f"unknown value {_got(err)}", f"use {ctx.get('expected', '')}")
    if kind in ("string_too_short", "too_short"):
        return SettingsInvalid(key, "must not be empty")
    return SettingsInvalid(key, f"{err['msg']}, got {_got(err)}")


def first_problem(exc: ValidationError, model: type[BaseModel], prefix: str) -> SettingsInvalid:
    # An unknown key first: a typo'd key is usually why another one is "missing".
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = describe(errors[0], model, prefix)
    if len(errors) == 1:
        return first
    more = f"and {len(errors) - 1} more problem(s) after it"
    return SettingsInvalid(first.key, first.problem, f"{first.fix}; {more}" if first.fix else more)


def validate_model(model: type[M], raw: Any, prefix: str, context: Mapping[str, Any] | None = None) -> M:
    """``model`` validated from ``raw`` (the section at dotted key ``prefix``); SettingsInvalid otherwise."""
    try:
        return model.model_validate({} if raw is None else raw, context=dict(context) if context else None)
    except ValidationError as exc:
        raise first_problem(exc, model, prefix) from None
