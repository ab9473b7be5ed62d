"""What the application layer asks of whoever hosts it (the daemon, the CLI, a test).

Callables, not classes: the daemon passes bound methods of its own workers
and scheduler, the CLI passes plain functions, tests pass recorders. Nothing
here imports the service layer, which is what keeps the arrows pointing one
way (the front ends get these, never the daemon).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from healer.app.ruleset import Ruleset
from healer.core.jobs import Job
from healer.core.records import FixAttempt

Rules = Callable[[], Ruleset]
"""The ruleset in force now (a reload swaps it; callers read it once per use case)."""

RunJobs = Callable[[Sequence[Job]], list[FixAttempt | None]]
"""Run fix/undo jobs and wait for them (bounded): one result per job, in order.

``None`` for a job that made no attempt (refused, target busy, an undo) or that
is still running when the wait ends. The daemon submits to its fix pool; the
CLI runs the jobs inline.
"""

Every = Callable[[str, float, Callable[[], Awaitable[None]]], None]
"""Register a periodic coroutine on the host's one scheduler: ``every(name, seconds, job)``.

Registering a name again replaces its schedule (a reload that changes an
interval re-registers). The first run is one interval after registration.
"""
