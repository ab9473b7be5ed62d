"""Is an Alertmanager alert about this host? The fleet filter (issue 17).

In a fleet where every healer receives every alert group, each one must act
only on its own host's alerts, or five healers restart five Redis servers
for one alert. The alert names its host in a label: ``host`` or ``hostname``
when the rule author set one, else ``instance``, the scrape target
(``web-1:9100``). The labels are tried in the configured order and the first
one present decides, so a precise ``host`` label beats an ``instance`` that is
an exporter's address. A value matches when, port and trailing dot removed
and case folded, it is the host's name, one of its aliases, or a fully
qualified name whose first label is the (short) host name.

An alert with none of the labels is a fleet-wide one (``QuorumLost``): only
``accept_unlabelled`` lets a healer act on it, since every healer would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from healer.settings.webhooks import AlertmanagerSettings


def _bare(value: str) -> str:
    """``web-1.example.com.:9100`` → ``web-1.example.com``; ``[::1]:9100`` → ``::1``; a bare IPv6 stays."""
    v = value.strip().lower()
    if v.startswith("["):
        v = v[1:].split("]", 1)[0]
    elif v.count(":") == 1:
        v = v.split(":", 1)[0]
    return v.rstrip(".")


@dataclass(frozen=True, slots=True)
class HostFilter:
    names: frozenset[str]
    labels: tuple[str, ...]
    accept_unlabelled: bool

    @classmethod
    def of(cls, host: str, am: AlertmanagerSettings) -> HostFilter | None:
        """None when no ``host_labels`` are configured: every alert is this host's (one host, one healer)."""
        if not am.host_labels:
            return None
        names = frozenset(_bare(n) for n in (host, *am.host_aliases) if n.strip())
        return cls(names, am.host_labels, am.accept_unlabelled)

    def _ours(self, value: str) -> bool:
        v = _bare(value)
        return v in self.names or ("." in v and v.split(".", 1)[0] in self.names)

    def not_ours(self, fields: Mapping[str, str]) -> str | None:
        """Why the alert is another host's (``instance=web-2:9100``), or None when it is this host's."""
        for label in self.labels:
            value = fields.get(label)
            if value:
                return None if self._ours(value) else f"{label}={value}"
        return None if self.accept_unlabelled else "no " + "/".join(self.labels) + " label"
