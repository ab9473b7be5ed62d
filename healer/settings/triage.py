"""The ``services:`` and ``triage:`` sections: what the P0-P3 triage (``healer.engine.triage``) reads."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from healer.core.enums import Criticality, Priority
from healer.settings.fields import Duration, Model


class ServiceSettings(Model):
    """``services.<name>``: ``<name>`` is an incident's service (an app's name, a log's ``service``)."""

    criticality: Criticality = Criticality.NORMAL


class TriageSettings(Model):
    # An incident with at least ``frequent`` matches in the last ``window`` is one step more urgent.
    window: Annotated[Duration, Field(ge=1)] = 3600.0
    frequent: Annotated[int, Field(strict=True, ge=2)] = 10
    # A fix of an incident at this priority or a more urgent one always asks a human (unset: never).
    ask_at: Priority | None = None


__all__ = ["ServiceSettings", "TriageSettings"]
