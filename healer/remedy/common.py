"""Small helpers shared by the built-in actions: the allowlist lookup.

Settings parsing is not here: each action's settings are a pydantic model in
its own module, built from the field types in :mod:`healer.settings.fields`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from healer.core.errors import ActionRefused, HostileValue

T = TypeVar("T")

# What an allowlist key can look like (unit, repo, file and dir names). A
# refused value outside this shape is not a name healer does not know but
# text shaped to do something else (``redis; rm -rf /``, ``--upload-pack``).
NAME_SHAPE = re.compile(r"^(?:/|[A-Za-z0-9_])[A-Za-z0-9_./@:+=-]*$", re.ASCII)


def screen_name(wanted: str, where: str, param: str) -> None:
    """Called once ``wanted`` is known not to be in the allowlist ``where``: hostile unless name-shaped."""
    if wanted and not NAME_SHAPE.match(wanted):
        raise HostileValue(param, wanted, f"is not a plain name (refused by {where})")


def pick(allowlist: Mapping[str, T], wanted: str, where: str, *, param: str = "") -> tuple[str, T]:
    """The allowlisted entry a (hostile) param names; with one entry, naming it is optional."""
    if not wanted and len(allowlist) == 1:
        wanted = next(iter(allowlist))
    if wanted not in allowlist:
        screen_name(wanted, where, param or where)
        raise ActionRefused(f"{wanted!r} is not in {where}")
    return wanted, allowlist[wanted]
