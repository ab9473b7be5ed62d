"""``command``: run an allowlisted argv. The harmless end-to-end action.

The pattern names a command by its key in ``actions.command.commands``; the
argv itself comes only from the config. Placeholders in the argv may use only
``{pattern}`` and ``{incident}``: never captured groups, and not ``{service}``
either, since a webhook's labels can name the service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from healer.core.errors import ActionError, ActionRefused, ParamError
from healer.remedy.base import (
    JSON,
    Action,
    ActionContext,
    VerifyResult,
    placeholders,
    register,
    render,
)
from healer.settings.fields import Items, Model, Text, Timeout, required
from healer.settings.validation import validate_model

ARGV_VARS = frozenset({"pattern", "incident"})


def _literal_args(argv: tuple[str, ...]) -> tuple[str, ...]:
    for arg in argv:
        bad = placeholders(arg) - ARGV_VARS
        if bad:
            raise ValueError(
                f"placeholder(s) {sorted(bad)} not allowed; "
                f"only {sorted(ARGV_VARS)} (log and webhook text never reaches a command)"
            )
    return argv


Argv = Annotated[Items[Text], AfterValidator(_literal_args)]


class CommandSpec(Model):
    argv: Annotated[Argv, required("give the argv to run, e.g. [systemctl, reload, nginx]")]
    undo: Argv = ()
    verify: Argv = ()
    timeout: Timeout = 60.0


def _shorthand(raw: Any) -> Any:
    """``name: [argv...]`` is short for ``name: {argv: [...]}``."""
    if isinstance(raw, dict):
        return {k: {"argv": v} if isinstance(v, list) else v for k, v in raw.items()}
    return raw


class CommandSettings(Model):
    commands: Annotated[Mapping[str, CommandSpec], BeforeValidator(_shorthand)] = {}


@register
class CommandAction(Action):
    name = "command"
    param_keys = frozenset({"command"})
    required_params = frozenset({"command"})

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], where: str) -> CommandSettings:
        return validate_model(CommandSettings, raw, where)

    @classmethod
    def validate_params(cls, params: Mapping[str, str], settings: Any = None) -> None:
        super().validate_params(params, settings)
        if placeholders(params["command"]):
            raise ParamError("command: the command name must be literal, not taken from the log line")

    def _spec(self, ctx: ActionContext) -> CommandSpec:
        settings: CommandSettings | None = ctx.settings
        name = ctx.params.get("command", "")
        if settings is None or name not in settings.commands:
            raise ActionRefused(f"command {name!r} is not in actions.command.commands")
        return settings.commands[name]

    def _vars(self, ctx: ActionContext) -> dict[str, str]:
        return {
            "pattern": ctx.pattern_id,
            "incident": str(ctx.incident_id),
        }

    def target(self, ctx: ActionContext) -> str:
        return f"command:{ctx.params.get('command', '')}"

    def check(self, ctx: ActionContext) -> None:
        self._spec(ctx)

    def apply(self, ctx: ActionContext) -> JSON:
        spec = self._spec(ctx)
        argv = [render(a, self._vars(ctx)) for a in spec.argv]
        state: JSON = {"argv": argv}
        ctx.checkpoint(state)
        res = ctx.runner.run(argv, timeout=spec.timeout)
        ctx.audit("proc", {"argv": argv, "rc": res.returncode, "output": res.summary(), "duration": res.duration})
        if not res.ok:
            raise ActionError(f"command {argv[0]} exited {res.returncode}: {res.summary(200)}")
        return state

    def verify(self, ctx: ActionContext, state: JSON) -> VerifyResult:
        spec = self._spec(ctx)
        if not spec.verify:
            return VerifyResult(True, "command exited 0")
        argv = [render(a, self._vars(ctx)) for a in spec.verify]
        res = ctx.runner.run(argv, timeout=spec.timeout)
        ctx.audit("proc", {"argv": argv, "rc": res.returncode, "output": res.summary()})
        return VerifyResult(res.ok, f"verify exited {res.returncode}")

    def can_undo(self, ctx: ActionContext, state: JSON) -> bool:
        return bool(self._spec(ctx).undo)

    def undo(self, ctx: ActionContext, state: JSON) -> None:
        spec = self._spec(ctx)
        if spec.undo:
            argv = [render(a, self._vars(ctx)) for a in spec.undo]
            res = ctx.runner.run(argv, timeout=spec.timeout)
            ctx.audit("proc", {"argv": argv, "rc": res.returncode, "output": res.summary()})
            if not res.ok:
                raise ActionError(f"undo {argv[0]} exited {res.returncode}")
