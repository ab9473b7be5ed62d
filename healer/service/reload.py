"""Config reload: watch the files, load in full, swap, then describe what changed.

A reload (config file change or SIGHUP) loads the new config and patterns in
full, off the loop, before anything changes; a bad config is logged, audited,
told to the chat and ignored, and the last good ruleset stays in force. A bad
pattern file alone keeps its own last good version the same way (the other
files' edits still apply); it is audited and told once, with its file, line
and error, and told again when it loads. Reloads are debounced (an
editor's save is several filesystem events) and serialised (a slow reload can
never apply an older file after a newer one).

Issue 19 #12: the kill switch must never wait on a diff. A load that succeeds
is swapped in at once (cheap equality checks decide whether anything changed);
only then is the key-by-key diff for the audit row computed, in a thread and
with a bound on the nodes it visits, so a YAML alias bomb that survived the
loader can cost at most a truncated audit detail, never a stuck loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import structlog

from healer.app.ruleset import Ruleset, load_ruleset
from healer.core.clock import Clock
from healer.core.enums import AuditKind, Severity
from healer.core.errors import HealerError
from healer.core.notices import Notice, NoticeKind, NoticeSink
from healer.engine.engine import Engine
from healer.service.metrics import Metrics
from healer.service.sdnotify import Notifier
from healer.store.db import Store

log = structlog.get_logger("healer.service.reload")

RELOAD_DEBOUNCE = 0.15
CHANGE_EVENTS = frozenset({"modified", "created", "moved", "deleted", "closed"})
DIFF_BUDGET = 20_000
"""Nodes the audit diff may visit; past it the diff says so instead of walking on."""


class Reloader:
    """Owns the ruleset in force (``rules``) and every change to it after start-up."""

    def __init__(
        self,
        config_path: Path,
        rules: Ruleset,
        *,
        engine: Engine,
        store: Store,
        clock: Clock,
        notifier: Notifier,
        status: Callable[[], str],
        on_swapped: Callable[[Ruleset, Ruleset], Awaitable[None]],
        metrics: Metrics | None = None,
        notice: NoticeSink | None = None,
    ) -> None:
        self.config_path = config_path
        self.rules = rules
        self.engine = engine
        self.store = store
        self.clock = clock
        self.notifier = notifier
        self.status = status
        self.on_swapped = on_swapped
        self.metrics = metrics
        self.notice = notice
        self._config_bad = False  # the last reload's config was rejected: say so when it loads again
        self._lock = asyncio.Lock()
        self._handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[bool]] = set()

    def request(self, why: str) -> None:
        """On the loop: reload soon, once per burst of events."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = asyncio.get_running_loop().call_later(RELOAD_DEBOUNCE, self._spawn, why)

    def _spawn(self, why: str) -> None:
        task = asyncio.create_task(self.reload(why))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        for t in self._tasks:
            t.cancel()

    async def reload(self, why: str) -> bool:
        async with self._lock:
            return await self._reload(why)

    async def _reload(self, why: str) -> bool:
        self.notifier.reloading()
        try:
            new = await asyncio.to_thread(load_ruleset, self.config_path, None, self.rules)
        except HealerError as exc:
            log.error("config_rejected", why=why, error=str(exc), keeping="last good config")
            self.store.audit(AuditKind.CONFIG_REJECTED, "daemon", {"why": why, "error": str(exc)}, self.clock.now())
            if self.metrics is not None:
                self.metrics.record_reload(False, self.clock.now())
            self._tell(f"Config rejected: {exc}\nThe last good config stays in force; fix the file and save it again.")
            self._config_bad = True
            self.notifier.ready(self.status())
            return False
        if self._config_bad:
            self._config_bad = False
            self._tell(f"Config {self.config_path} loads again.")
        self._pattern_files(self.rules, new)
        old = self.rules
        if new.settings == old.settings and pattern_key(old) == pattern_key(new):
            log.debug("config_unchanged", why=why)
            self.notifier.ready(self.status())
            return True
        # Swap first: the kill switch (and every other setting) is in force from here on.
        self.rules = new
        self.engine.reconfigure(new.settings, new.patterns)
        if self.metrics is not None:
            self.metrics.record_reload(True, self.clock.now())
        changed = await asyncio.to_thread(changed_keys, old.settings.raw, new.settings.raw)
        self.store.audit(
            AuditKind.CONFIG_CHANGED,
            "daemon",
            {
                "why": why,
                "keys": changed,
                "kill_switch": new.settings.kill_switch,
                "patterns": len(new.patterns),
                "pattern_errors": [str(e) for e in new.pattern_errors],
            },
            self.clock.now(),
        )
        log.info(
            "config_reloaded",
            why=why,
            changed=changed,
            kill_switch=new.settings.kill_switch,
            patterns=len(new.patterns),
        )
        await self.on_swapped(old, new)
        self.notifier.ready(self.status())
        return True

    def _tell(self, text: str) -> None:
        if self.notice is not None:
            self.notice(Notice(NoticeKind.CONFIG, Severity.HIGH, text))

    def _pattern_files(self, old: Ruleset, new: Ruleset) -> None:
        """Audit, log and tell each pattern file newly rejected, and each rejected one that loads again."""
        now = self.clock.now()
        kept = {k.path: k.patterns for k in new.kept}
        before = {e.path: str(e) for e in old.pattern_errors}
        after = {e.path: e for e in new.pattern_errors}
        for path, err in after.items():
            if before.get(path) == str(err):
                continue  # said already
            n = kept.get(path)
            keeps = (
                f"its last good version ({n} patterns) stays in force"
                if n is not None
                else "none of its patterns are loaded"
            )
            log.error("pattern_file_rejected", error=str(err), keeping=keeps)
            detail = {"file": path, "line": err.line, "pattern": err.pattern_id, "error": err.problem, "kept": n}
            self.store.audit(AuditKind.PATTERN_FILE_REJECTED, "daemon", detail, now)
            self._tell(f"Pattern file rejected: {err}\n{keeps[0].upper()}{keeps[1:]}; fix the file and save it again.")
        loaded = {f.path: len(f.patterns) for f in new.loads}
        for path in before.keys() - after.keys():
            n = loaded.get(path)
            if n is None:
                continue  # removed, not fixed: its patterns are gone with it
            log.info("pattern_file_accepted", file=path, patterns=n)
            self.store.audit(AuditKind.PATTERN_FILE_ACCEPTED, "daemon", {"file": path, "patterns": n}, now)
            self._tell(f"Pattern file {path} loads again: {n} patterns in force.")


def pattern_key(rules: Ruleset) -> tuple[object, ...]:
    return tuple((p.id, p.regex, p.file, p.line, p.steps, p.approval) for p in rules.patterns) + tuple(
        str(e) for e in rules.pattern_errors
    )


def changed_keys(old: object, new: object, budget: int = DIFF_BUDGET) -> list[str]:
    """Dotted keys whose values differ, walking at most ``budget`` nodes."""
    out: list[str] = []
    left = [budget]

    def walk(a: object, b: object, prefix: str) -> None:
        left[0] -= 1
        if left[0] < 0:
            return
        if not isinstance(a, Mapping) or not isinstance(b, Mapping):
            if a != b:
                out.append(prefix or ".")
            return
        for k in sorted(set(a) | set(b), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in a or k not in b:
                out.append(key)
            else:
                walk(a[k], b[k], key)

    walk(old, new, "")
    if left[0] < 0:
        out.append(f"<diff stopped after {budget} nodes>")
    return out


class ConfigWatcher:
    """watchdog on the config's directory and the patterns dirs; ``on_change`` runs on the observer thread."""

    def __init__(self, config_path: Path, patterns_dirs: tuple[Path, ...], on_change: Callable[[], None]) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        watched = {str(config_path), str(config_path.parent / ".env")}
        conf_dir = str(config_path.parent)
        dirs = {conf_dir} | {str(d.resolve()) for d in patterns_dirs if d.is_dir()}

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                # A read (opened / closed_no_write) is not a change: reloading on it cost
                # ~0.6 s of CPU each time anything read a pattern file.
                if event.event_type not in CHANGE_EVENTS:
                    return
                paths = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
                if paths & watched or any(
                    p.endswith((".yaml", ".yml")) and str(Path(p).parent) in dirs - {conf_dir} for p in paths if p
                ):
                    on_change()

        self._observer = Observer()
        handler = Handler()
        for directory in dirs:
            self._observer.schedule(handler, directory, recursive=False)
        self._observer.daemon = True

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._observer.stop()
