"""Small helpers shared by the built-in actions: the allowlist lookup.

Settings parsing is not here: each action's settings are a pydantic model in
its own module, built from the field types in :mod:`healer.settings.fields`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from healer.core.errors import ActionRefused

T = TypeVar("T")


def pick(allowlist: Mapping[str, T], wanted: str, where: str) -> tuple[str, T]:
    """The allowlisted entry a (hostile) param names; with one entry, naming it is optional."""
    if not wanted and len(allowlist) == 1:
        wanted = next(iter(allowlist))
    if wanted not in allowlist:
        raise ActionRefused(f"{wanted!r} is not in {where}")
    return wanted, allowlist[wanted]
