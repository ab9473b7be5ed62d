"""``restore_file``: put back a missing or broken file from its template (``.env`` from ``.env.example``).

Restoring is only safe when there is nothing to lose, so by default a file
that exists and is non-empty is left alone and the step is refused. With
``overwrite_broken: true`` a file that fails its format check (YAML/JSON that
does not parse, a .env with a line that is not ``KEY=value``) is backed up
byte for byte and then replaced; a file that parses is never overwritten.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import structlog
import yaml
from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from healer.core.enums import AuditKind, Confirm
from healer.core.errors import ActionError, ActionRefused
from healer.remedy import files
from healer.remedy.base import Action, ActionContext, Confirmation, VerifyResult, register
from healer.remedy.common import pick
from healer.settings.fields import AbsPath, ActionModel, Flag, Model, required
from healer.settings.validation import Problem, validate_model

log = structlog.get_logger("healer.remedy.builtin.restore_file")

_ENV_LINE = re.compile(r"^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=.*$|^\s*(?:#.*)?$")


def broken_reason(data: bytes, fmt: str) -> str | None:
    """Why ``data`` is not a usable file of ``fmt``, or None when it looks fine."""
    if not data.strip():
        return "empty"
    try:
        body = data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    if fmt == "yaml":
        try:
            yaml.safe_load(body)
        except yaml.YAMLError as exc:
            return f"YAML does not parse: {str(exc).splitlines()[0]}"
    elif fmt == "json":
        try:
            json.loads(body)
        except ValueError as exc:
            return f"JSON does not parse: {exc}"
    elif fmt == "env":
        for n, line in enumerate(body.splitlines(), 1):
            if not _ENV_LINE.match(line):
                return f"line {n} is not KEY=value"
    return None


def _mode(raw: Any) -> int | None:
    if isinstance(raw, str):
        try:
            raw = int(raw, 8)
        except ValueError:
            raise ValueError("expected an octal string like '0640'") from None
    if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 0o7777):
        raise ValueError("expected an octal string like '0640'")
    return raw


class RestoreSpec(Model):
    path: AbsPath
    template: AbsPath
    # Default: guessed from the path's name (.env, .yaml, .json), else "none".
    format: Literal["env", "yaml", "json", "none"] = Field(default="", validate_default=True)
    overwrite_broken: Flag = False
    mode: Annotated[int | None, BeforeValidator(_mode)] = None

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, v: Any, info: ValidationInfo) -> Any:
        path = info.data.get("path")
        return v or (_guess_format(path) if path is not None else "none")

    @model_validator(mode="after")
    def _consistent(self) -> RestoreSpec:
        if self.path == self.template:
            raise ValueError("path and template are the same file")
        if self.overwrite_broken and self.format == "none":
            raise Problem("overwrite_broken", "needs a format (env, yaml, json) to tell a broken file")
        return self


class RestoreSettings(ActionModel):
    files: Annotated[Mapping[str, RestoreSpec], required("list the files: {name: {path, template}}")] = {}


def _guess_format(path: Path) -> str:
    if path.suffix in (".yaml", ".yml"):
        return "yaml"
    if path.suffix == ".json":
        return "json"
    if path.name == ".env" or path.suffix == ".env":
        return "env"
    return "none"


class RestoreState(TypedDict):
    file: str
    path: str
    template: str
    format: str
    existed: bool
    reason: str
    backup: str | None
    change: files.FileChange


@register
class RestoreFileAction(Action[RestoreSettings, RestoreState]):
    name = "restore_file"
    reversible = True
    param_keys = frozenset({"file"})

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], where: str) -> RestoreSettings:
        return validate_model(RestoreSettings, raw, where)

    @staticmethod
    def _spec(ctx: ActionContext, settings: RestoreSettings) -> tuple[str, RestoreSpec]:
        return pick(settings.files, ctx.params.get("file", ""), "actions.restore_file.files", param="file")

    def _target(self, ctx: ActionContext, settings: RestoreSettings) -> str:
        return f"file:{self._spec(ctx, settings)[1].path}"

    @staticmethod
    def _template(spec: RestoreSpec) -> files.Snapshot:
        snap = files.read(spec.template)
        if snap is None:
            raise ActionRefused(f"template {spec.template} is missing")
        return snap

    @staticmethod
    def _decide(spec: RestoreSpec, current: files.Snapshot | None) -> str:
        """ "missing", or why the present file is broken; refuses when it is present and usable."""
        if current is None:
            return "missing"
        if not current.data.strip():
            return "empty"
        reason = broken_reason(current.data, spec.format) if spec.overwrite_broken else None
        if reason is None:
            raise ActionRefused(
                f"{spec.path} exists and is not empty; left alone"
                + ("" if spec.overwrite_broken else " (set overwrite_broken: true to replace broken files)")
            )
        return reason

    def _check(self, ctx: ActionContext, settings: RestoreSettings) -> None:
        _, spec = self._spec(ctx, settings)
        self._template(spec)
        self._decide(spec, files.read(spec.path))

    def _apply(self, ctx: ActionContext, settings: RestoreSettings) -> RestoreState:
        fname, spec = self._spec(ctx, settings)
        template = self._template(spec)
        # Read once; the decision, the backup and the undo identity all come from this snapshot.
        current = files.read(spec.path)
        reason = self._decide(spec, current)
        # A broken file keeps its own mode and owner; a new one is healer's, never the template's.
        meta = current.meta if current is not None else files.FileMeta.ours()
        if spec.mode is not None:
            meta = files.FileMeta(spec.mode, meta.uid, meta.gid)
        backup = None
        if current is not None:
            backup = files.backup(
                current, ctx.state_dir / "backups", label=f"incident{ctx.incident_id}", now=ctx.clock.now()
            )
        try:
            staged = files.stage(spec.path, template.data, meta)
        except FileNotFoundError:
            raise ActionRefused(f"{spec.path.parent} does not exist; healer restores files, not directories") from None
        state = RestoreState(
            file=fname,
            path=str(spec.path),
            template=str(spec.template),
            format=spec.format,
            existed=current is not None,
            reason=reason,
            backup=None if backup is None else str(backup),
            change=files.record(spec.path, backup, current, staged, template.data),
        )
        try:
            staged.commit_after(lambda: ctx.checkpoint(state), current)
        except OSError as exc:
            raise ActionError(f"{spec.path}: restore failed ({exc})") from None
        ctx.audit(AuditKind.RESTORE_FILE, {k: state[k] for k in ("path", "template", "reason", "backup")})
        log.info("file_restored", path=str(spec.path), template=str(spec.template), reason=reason)
        return state

    def _verify(self, ctx: ActionContext, settings: RestoreSettings, state: RestoreState) -> VerifyResult:
        path = Path(state["path"])
        try:
            snap = files.read(path)
        except (OSError, ActionRefused) as exc:
            return VerifyResult(False, f"{path}: {exc}")
        if snap is None:
            return VerifyResult(False, f"{path} is gone after restore")
        if files.sha256(snap.data) != state["change"]["sha_after"]:
            return VerifyResult(False, f"{path} changed after restore")
        reason = broken_reason(snap.data, state["format"]) if state["format"] != "none" else None
        if reason and reason != "empty":
            return VerifyResult(False, f"{path} restored but the template itself is broken: {reason}")
        return VerifyResult(True, f"{path} restored from {state['template']}")

    def _confirm(self, ctx: ActionContext, settings: RestoreSettings) -> Confirmation:
        """CONFIRMED when the file is missing, empty or does not parse; REFUTED when it is there and parses.

        A broken file is a real fault even without ``overwrite_broken``: the
        step's own check then refuses it and says which key would allow it.
        """
        _, spec = self._spec(ctx, settings)
        current = files.read(spec.path)  # a symlink or a huge file is refused: UNKNOWN, and the check refuses it
        if current is None:
            return Confirmation(Confirm.CONFIRMED, f"{spec.path}: missing")
        reason = broken_reason(current.data, spec.format) if spec.format != "none" else None
        if not current.data.strip():
            reason = "empty"
        if reason is not None:
            return Confirmation(Confirm.CONFIRMED, f"{spec.path}: {reason}")
        kind = f"parses as {spec.format}" if spec.format != "none" else "is not empty"
        return Confirmation(Confirm.REFUTED, f"{spec.path} exists and {kind}: nothing to restore")

    def undo(self, ctx: ActionContext, state: RestoreState) -> None:
        done = files.undo(
            state["change"], ctx.state_dir / "backups", label=f"incident{ctx.incident_id}", now=ctx.clock.now()
        )
        if done.kept is not None:
            ctx.audit(AuditKind.RESTORE_FILE_UNDO_CONFLICT, {"path": state["path"], "kept": str(done.kept)})
        ctx.audit(AuditKind.RESTORE_FILE_UNDO, {"path": state["path"], "backup": state["backup"], "note": done.note})
        log.info("restore_file_undone", path=state["path"], note=done.note)
