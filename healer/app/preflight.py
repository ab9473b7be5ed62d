"""What ``healer check`` verifies beyond the files' own validity: that the daemon could run with them.

The state directory must be writable by the user the check runs as: under
systemd, ``ExecStartPre=healer check`` runs as the service's user inside
the unit's sandbox, so a ``state_dir`` that ``ProtectSystem=strict`` makes
read-only (``/etc/healer/state`` from a copied example) fails here, naming
the key, instead of the daemon failing to open its store after start.
A missing directory is judged by its nearest existing parent, which the
daemon would create it in: a directory is made there and removed at once.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from healer.app.ruleset import Ruleset
from healer.core.errors import ConfigError
from healer.settings.schema import Settings

_FIX = "set state_dir to a directory this user can write (under systemd: /var/lib/healer, the unit's StateDirectory=)"


def state_dir_problem(settings: Settings) -> ConfigError | None:
    path = settings.state_dir
    where = settings.source or "config"
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return ConfigError(where, "state_dir", f"{path} cannot be created: {probe} is not a directory", _FIX)
    if probe == path:
        db = path / "healer.db"
        if db.exists() and not os.access(db, os.R_OK | os.W_OK):
            return ConfigError(where, "state_dir", f"{db} is not writable by uid {os.geteuid()}", _FIX)
        try:
            # A real write: access(2) alone says yes to root on a read-only mount's files in some set-ups.
            with tempfile.TemporaryFile(dir=path, prefix=".healer-check-"):
                pass
        except OSError as exc:
            return ConfigError(where, "state_dir", f"{path} is not writable: {exc.strerror}", _FIX)
        return None
    try:
        # What the daemon would do (create a directory there), undone at once.
        os.rmdir(tempfile.mkdtemp(dir=probe, prefix=".healer-check-"))
    except OSError as exc:
        reason = "is on a read-only file system" if _read_only(probe) else f"refuses it: {exc.strerror}"
        return ConfigError(where, "state_dir", f"{path} cannot be created: {probe} {reason}", _FIX)
    return None


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What ``healer check`` prints: ``errors`` on stderr, ``lines`` on stdout; ``ok`` is exit 0."""

    errors: tuple[str, ...]
    lines: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def check_report(rules: Ruleset, path: Path) -> CheckReport:
    """Everything that would stop the daemon doing its job with these files, then the set in effect."""
    from healer.app.coverage import coverage, coverage_text, never_acting
    from healer.app.patternset_text import pattern_set_lines
    from healer.rules.samples import check_examples

    s = rules.settings
    errors: list[str] = []
    unwritable = state_dir_problem(s)
    if unwritable is not None:
        errors.append(f"config error: {unwritable}")
    errors += [f"pattern error: {err}" for err in rules.pattern_errors]
    errors += [
        f"example failure: {f.pattern.file}:{f.pattern.line} [{f.pattern.id}] {f.problem}: {f.line!r}"
        for f in check_examples(rules.patterns)
    ]
    covers = coverage(s, rules.patterns)
    errors += [
        f"pattern error: {c.pattern.file}:{c.pattern.line} [{c.pattern.id}] can never act: {c.detail} "
        "(fix the config, or give the pattern approval: never)"
        for c in never_acting(covers)
    ]
    head = (
        f"config {path}: ok; {len(rules.patterns)} patterns from {len(rules.pattern_files)} files; "
        f"kill_switch={s.kill_switch} dry_run={s.dry_run} telegram={'on' if s.telegram.enabled else 'off'}"
    )
    return CheckReport(tuple(errors), (head, *pattern_set_lines(rules), *coverage_text(covers)))
