"""A fix killed mid-step is not "verified" on restart just because its step checkpointed.

``command`` checkpoints its argv *before* starting the process (so undo knows
what ran), and with no ``verify`` argv its verify is "exited 0". A daemon
killed while that process ran used to be recovered as "succeeded: every step
verified" although the command never finished. Recovery must treat a step
whose ``apply`` did not return as interrupted, and undo.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest
from support.engine import make_engine

from healer.core.clock import FakeClock
from healer.core.enums import AuditKind, Outcome
from healer.core.jobs import FixJob
from healer.core.proc import ProcResult, Runner
from healer.engine.engine import Engine

PATTERN = {
    "id": "slow-fix",
    "regex": r"SLOW-FIX (?P<what>[a-z]+)",
    "remediation": [{"action": "command", "params": {"command": "slow"}}],
    "cooldown": 0,
}
ACTIONS = {"command": {"commands": {"slow": {"argv": ["sleep", "5"]}}}}


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no except Exception catches it."""


class DyingRunner(Runner):
    def run(self, argv: Sequence[str], **kw: object) -> ProcResult:
        raise Killed()


class OkRunner(Runner):
    def run(self, argv: Sequence[str], **kw: object) -> ProcResult:
        res = ProcResult(tuple(argv), 0, "", "", 0.0)
        self.history.append(res)
        return res


def _job(engine: Engine) -> FixJob:
    res = engine.ingest_buffer(b"ERROR SLOW-FIX disk\n", "app", "test")
    jobs = [j for j in res.jobs if isinstance(j, FixJob)]
    assert jobs, res.decisions
    return jobs[0]


def test_command_killed_mid_run_is_not_recovered_as_succeeded(tmp_path: Path) -> None:
    clock = FakeClock()
    engine = make_engine(tmp_path, [PATTERN], ACTIONS, clock=clock, runner=DyingRunner())
    with pytest.raises(Killed):
        engine.run_fix(_job(engine))
    [running] = engine.store.attempts()
    assert running.outcome is Outcome.RUNNING
    saved = engine.store.attempt_record(running.id)
    assert saved is not None and saved.undo_state, "the command checkpointed before it started"
    # Restart: a fresh engine on the same store.
    engine2 = make_engine(tmp_path, [PATTERN], ACTIONS, clock=clock, runner=OkRunner(), store=engine.store)
    [(aid, outcome)] = engine2.recover()
    assert outcome is not Outcome.SUCCEEDED
    [recovered] = engine.store.audit_entries(AuditKind.FIX_RECOVERED)
    assert recovered.detail == {"attempt": aid, "outcome": outcome.value}


def test_completed_step_recovers_into_a_fresh_verify_window(tmp_path: Path) -> None:
    """Killed after apply returned (e.g. during the verify window bookkeeping): verify decides."""
    clock = FakeClock()
    engine = make_engine(tmp_path, [PATTERN], ACTIONS, clock=clock, runner=OkRunner())
    job = _job(engine)

    def die(*a: object, **k: object) -> NoReturn:
        raise Killed()

    with pytest.MonkeyPatch.context() as mp:  # the kill lands inside finish_attempt, after the steps ran
        mp.setattr(engine.store, "finish_attempt", die)
        with pytest.raises(Killed):
            engine.run_fix(job)
    engine2 = make_engine(tmp_path, [PATTERN], ACTIONS, clock=clock, runner=OkRunner(), store=engine.store)
    [(_aid, outcome)] = engine2.recover()
    # Every step verified: it is watched for a full window again, not declared succeeded on the spot.
    assert outcome is Outcome.VERIFYING
