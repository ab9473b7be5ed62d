"""config.example.yaml is the reference: it loads as shipped and names every key the schema accepts."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from healer.app.ruleset import load_ruleset
from healer.remedy.builtin import REGISTRY
from healer.settings.schema import Settings
from healer.settings.validation import INTERNAL_FIELDS

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"
TEXT = EXAMPLE.read_text()


def _model_in(tp: Any) -> type[BaseModel] | None:
    """The model a field holds, directly or inside Annotated / X | None / tuple / Mapping."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _model_in(args[0])
    if origin in (typing.Union, types.UnionType, tuple, list):
        return next((m for m in map(_model_in, args) if m is not None), None)
    if args:  # Mapping[str, X]
        return _model_in(args[-1])
    return None


def schema_keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        if name in INTERNAL_FIELDS or field.exclude or name == "key":
            continue  # set by the loader, secrets from the environment, or the mapping key itself
        key = f"{prefix}.{name}" if prefix else name
        yield key
        sub = _model_in(field.annotation)
        if sub is not None:
            yield from schema_keys(sub, key)


def action_keys() -> Iterator[str]:
    for name, cls in sorted(REGISTRY.items()):
        hints = typing.get_type_hints(cls.parse_settings)
        model = _model_in(hints["return"])
        assert model is not None, name
        yield from schema_keys(model, f"actions.{name}")


def documented(key: str) -> bool:
    leaf = key.rsplit(".", 1)[-1]
    if "." not in key:  # a top-level key: written at the start of a line (maybe commented out)
        return re.search(rf"^(# )?{leaf}:", TEXT, re.MULTILINE) is not None
    return re.search(rf"(?<![\w-]){leaf}:", TEXT) is not None


def test_the_key_walk_sees_nested_sections() -> None:
    keys = set(schema_keys(Settings))
    assert {"engine.verify_window", "sources.files.path", "webhooks.sentry.max_age", "telegram.base_url"} <= keys
    assert "telegram.token" not in keys and "raw" not in keys
    assert "actions.restart.units.verify_tcp" in set(action_keys())


@pytest.mark.parametrize("key", [*schema_keys(Settings), *action_keys()])
def test_example_documents_every_key(key: str) -> None:
    assert documented(key), f"{key} is accepted by the schema but config.example.yaml does not mention it"


def test_example_loads_as_shipped() -> None:
    rules = load_ruleset(EXAMPLE, environ={})
    assert rules.pattern_errors == ()
    assert rules.settings.overrides == ()
