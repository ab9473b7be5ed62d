"""``command``: run an allowlisted argv. The harmless end-to-end action.

The pattern names a command by its key in ``actions.command.commands``; the
argv itself comes only from the config. Placeholders in the argv may use only
``{pattern}`` and ``{incident}``: never captured groups, and not ``{service}``
either, since a webhook's labels can name the service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypedDict

from pydantic import AfterValidator, BeforeValidator

from healer.core.errors import ActionError, ActionRefused, ParamError
from healer.remedy.base import (
    Action,
    ActionContext,
    VerifyResult,
    placeholders,
    register,
    render,
)
from healer.remedy.common import screen_name
from healer.settings.fields import ActionModel, Items, Model, Text, Timeout, required
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


class CommandSettings(ActionModel):
    commands: Annotated[Mapping[str, CommandSpec], BeforeValidator(_shorthand)] = {}


class CommandState(TypedDict):
    argv: list[str]
    # Rendered at apply time and saved, so undo runs what was allowlisted then,
    # even after a reload changed or removed the command.
    undo: list[str]
    timeout: float


@register
class CommandAction(Action[CommandSettings, CommandState]):
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

    @staticmethod
    def _spec(ctx: ActionContext, settings: CommandSettings) -> CommandSpec:
        name = ctx.params.get("command", "")
        if name not in settings.commands:
            screen_name(name, "actions.command.commands", "command")
            raise ActionRefused(f"command {name!r} is not in actions.command.commands")
        return settings.commands[name]

    @staticmethod
    def _render(ctx: ActionContext, argv: tuple[str, ...]) -> list[str]:
        values = {"pattern": ctx.pattern_id, "incident": str(ctx.incident_id)}
        return [render(a, values) for a in argv]

    def admits(self, ctx: ActionContext) -> None:
        self._spec(ctx, self.configured(ctx))

    def undoable(self, ctx: ActionContext) -> bool:
        return bool(self._spec(ctx, self.configured(ctx)).undo)

    def shown_argv(self, ctx: ActionContext) -> tuple[str, ...]:
        return tuple(self._render(ctx, self._spec(ctx, self.configured(ctx)).argv))

    def _target(self, ctx: ActionContext, settings: CommandSettings) -> str:
        return f"command:{ctx.params.get('command', '')}"

    def _check(self, ctx: ActionContext, settings: CommandSettings) -> None:
        self._spec(ctx, settings)

    def _apply(self, ctx: ActionContext, settings: CommandSettings) -> CommandState:
        spec = self._spec(ctx, settings)
        state = CommandState(argv=self._render(ctx, spec.argv), undo=self._render(ctx, spec.undo), timeout=spec.timeout)
        ctx.checkpoint(state)
        res = ctx.run(state["argv"], step="command", timeout=spec.timeout)
        if not res.ok:
            said = res.summary(200)  # a silent failure (false, exit 1) should not end in a dangling ": "
            raise ActionError(f"command {state['argv'][0]} exited {res.returncode}" + (f": {said}" if said else ""))
        return state

    def _verify(self, ctx: ActionContext, settings: CommandSettings, state: CommandState) -> VerifyResult:
        spec = self._spec(ctx, settings)
        if not spec.verify:
            return VerifyResult(True, "command exited 0")
        res = ctx.run(self._render(ctx, spec.verify), step="command_verify", timeout=spec.timeout)
        return VerifyResult(res.ok, f"verify exited {res.returncode}")

    def can_undo(self, ctx: ActionContext, state: CommandState) -> bool:
        return bool(state.get("undo"))

    def undo(self, ctx: ActionContext, state: CommandState) -> None:
        argv = state.get("undo")
        if argv:
            res = ctx.run(argv, step="command_undo", timeout=float(state.get("timeout", 60.0)))
            if not res.ok:
                raise ActionError(f"undo {argv[0]} exited {res.returncode}")
