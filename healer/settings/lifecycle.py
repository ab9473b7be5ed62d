"""The ``lifecycle:`` section: when ``healer patterns`` recommends promoting or demoting a pattern."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from healer.settings.fields import Model


class LifecycleSettings(Model):
    # A shadow pattern with at least this many matches and no "not this" mark is recommended for promotion.
    promote_matches: Annotated[int, Field(strict=True, ge=1)] = 20
    # An active pattern whose (undone + rejected) / (attempted + rejected) fixes is above this is
    # recommended for demotion back to shadow.
    demote_rate: Annotated[float, Field(ge=0, le=1)] = 0.25


__all__ = ["LifecycleSettings"]
