"""Every source type, built from the settings in force.

The one list a new source type is added to: a ``from_settings`` in its own
module, one line here, and its settings section. The daemon only ever sees
the resulting ``list[Source]``.
"""

from __future__ import annotations

from healer.settings.schema import Settings
from healer.sources import filesource, journald
from healer.sources.base import Source, SourceContext
from healer.sources.webhooks import server as webhooks


def build_sources(settings: Settings, ctx: SourceContext) -> list[Source]:
    """Construct (never start) the sources ``settings`` asks for; cheap, so a reload may call it to diff."""
    sources: list[Source] = []
    sources.extend(filesource.from_settings(settings.sources, ctx))
    sources.extend(journald.from_settings(settings.sources.journald, ctx))
    sources.extend(webhooks.from_settings(settings.webhooks, ctx, settings.host))
    return sources
