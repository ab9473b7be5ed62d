"""``restore_file``: put back a missing or broken file from its template (``.env`` from ``.env.example``).

Restoring is only safe when there is nothing to lose, so by default a file
that exists and is non-empty is left alone and the step is refused. With
``overwrite_broken: true`` a file that fails its format check (YAML/JSON that
does not parse, a .env with a line that is not ``KEY=value``) is backed up
byte for byte and then replaced; a file that parses is never overwritten.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
import yaml
from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from healer.core.errors import ActionError, ActionRefused
from healer.remedy.atomic import FileMeta, atomic_write, backup_file, file_meta, restore_backup, sha256
from healer.remedy.base import JSON, Action, ActionContext, VerifyResult, register
from healer.remedy.common import pick
from healer.settings.fields import AbsPath, Flag, Model, required
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


class RestoreSettings(Model):
    files: Annotated[Mapping[str, RestoreSpec], required("list the files: {name: {path, template}}")] = {}


def _guess_format(path: Path) -> str:
    if path.suffix in (".yaml", ".yml"):
        return "yaml"
    if path.suffix == ".json":
        return "json"
    if path.name == ".env" or path.suffix == ".env":
        return "env"
    return "none"


@register
class RestoreFileAction(Action):
    name = "restore_file"
    needs_root = False
    reversible = True
    param_keys = frozenset({"file"})

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], where: str) -> RestoreSettings:
        return validate_model(RestoreSettings, raw, where)

    def _spec(self, ctx: ActionContext) -> tuple[str, RestoreSpec]:
        settings: RestoreSettings | None = ctx.settings
        if settings is None:
            raise ActionRefused("restore_file has no settings (actions.restore_file.files)")
        return pick(settings.files, ctx.params.get("file", ""), "actions.restore_file.files")

    def target(self, ctx: ActionContext) -> str:
        try:
            return f"file:{self._spec(ctx)[1].path}"
        except ActionRefused:
            return f"restore_file:{ctx.params.get('file', '')}"

    def _decide(self, spec: RestoreSpec) -> str | None:
        """None when the file is missing (restore), a reason when it is present but broken."""
        if spec.path.is_symlink():
            raise ActionRefused(f"{spec.path} is a symlink; left alone")
        if not spec.path.exists():
            return None
        if not spec.path.is_file():
            raise ActionRefused(f"{spec.path} exists and is not a regular file; left alone")
        data = spec.path.read_bytes()
        if not data.strip():
            return "empty"
        reason = broken_reason(data, spec.format) if spec.overwrite_broken else None
        if reason is None:
            raise ActionRefused(
                f"{spec.path} exists and is not empty; left alone"
                + ("" if spec.overwrite_broken else " (set overwrite_broken: true to replace broken files)")
            )
        return reason

    def check(self, ctx: ActionContext) -> None:
        _, spec = self._spec(ctx)
        if not spec.template.is_file() or spec.template.is_symlink():
            raise ActionRefused(f"template {spec.template} is missing or not a regular file")
        self._decide(spec)

    def apply(self, ctx: ActionContext) -> JSON:
        fname, spec = self._spec(ctx)
        self.check(ctx)
        reason = self._decide(spec)
        data = spec.template.read_bytes()
        tmeta = file_meta(spec.template)
        assert tmeta is not None
        old_meta = file_meta(spec.path)
        # The new file takes the old file's mode/owner if there was one, else the template's.
        meta = old_meta or FileMeta(spec.mode if spec.mode is not None else tmeta.mode, tmeta.uid, tmeta.gid)
        if spec.mode is not None:
            meta = FileMeta(spec.mode, meta.uid, meta.gid)
        backup = None
        if old_meta is not None:
            backup = str(
                backup_file(
                    spec.path,
                    ctx.state_dir / "backups",
                    label=f"incident{ctx.incident_id}",
                    now=ctx.clock.now(),
                )
            )
        state: JSON = {
            "file": fname,
            "path": str(spec.path),
            "template": str(spec.template),
            "existed": old_meta is not None,
            "reason": reason or "missing",
            "backup": backup,
            "old_meta": None if old_meta is None else vars(old_meta),
            "sha_after": sha256(data),
        }
        ctx.checkpoint(state)
        try:
            spec.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(spec.path, data, meta=meta)
        except OSError as exc:
            raise ActionError(f"{spec.path}: restore failed ({exc})") from None
        ctx.audit("restore_file", {k: state[k] for k in ("path", "template", "reason", "backup")})
        log.info("file_restored", path=str(spec.path), template=str(spec.template), reason=state["reason"])
        return state

    def verify(self, ctx: ActionContext, state: JSON) -> VerifyResult:
        path = Path(state["path"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            return VerifyResult(False, f"{path}: {exc}")
        if sha256(data) != state["sha_after"]:
            return VerifyResult(False, f"{path} changed after restore")
        spec = ctx.settings.files[state["file"]]
        reason = broken_reason(data, spec.format) if spec.format != "none" else None
        if reason and reason != "empty":
            return VerifyResult(False, f"{path} restored but the template itself is broken: {reason}")
        return VerifyResult(True, f"{path} restored from {state['template']}")

    def undo(self, ctx: ActionContext, state: JSON) -> None:
        path = Path(state["path"])
        if state.get("backup"):
            m = state["old_meta"]
            restore_backup(state["backup"], path, FileMeta(int(m["mode"]), int(m["uid"]), int(m["gid"])))
            ctx.audit("restore_file_undo", {"path": str(path), "restored": state["backup"]})
            return
        if not path.exists():
            return
        if sha256(path.read_bytes()) != state["sha_after"]:
            kept = backup_file(path, ctx.state_dir / "backups", label=f"incident{ctx.incident_id}-pre-undo")
            ctx.audit("restore_file_undo_conflict", {"path": str(path), "kept": str(kept)})
        os.unlink(path)
        ctx.audit("restore_file_undo", {"path": str(path), "removed": True})
        log.info("restored_file_removed", path=str(path))
