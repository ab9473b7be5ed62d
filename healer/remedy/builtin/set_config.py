"""``set_config``: set one allowlisted key to one allowlisted value in a ``.env`` or YAML file.

The motivating fix is a model fallback: on HTTP 429 set ``MODEL=local-fallback``
and put it back later (``revert_after``). File, key and value may come from the
log line, so all three are looked up in the config allowlist; nothing outside
it is ever written.

``.env`` files are edited line by line so comments, ordering and every other
line survive byte for byte. YAML files go through ``safe_load``/``safe_dump``,
which drops comments and may reflow the file: that is the price of not
writing a YAML editor; undo still restores the exact original bytes from the
backup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import structlog
import yaml
from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from healer.core.enums import AuditKind
from healer.core.errors import ActionError, ActionRefused
from healer.remedy import files
from healer.remedy.base import Action, ActionContext, VerifyResult, register
from healer.remedy.common import pick, screen_name
from healer.settings.fields import AbsPath, ActionModel, Duration, Model, required
from healer.settings.validation import Problem, validate_model

log = structlog.get_logger("healer.remedy.builtin.set_config")

ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$", re.ASCII)
YAML_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", re.ASCII)
# Values written unquoted into a .env; anything else gets quoted.
ENV_BARE = re.compile(r"^[A-Za-z0-9_./:@+,=-]*$", re.ASCII)
Scalar = str | int | float | bool


def scalar_text(value: Scalar) -> str:
    """How a param (always text) names a config value: YAML booleans read as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _allowed_values(raw: Any) -> Any:
    if not isinstance(raw, list) or not raw:
        raise ValueError("expected a non-empty list of allowed values")
    for v in raw:
        if isinstance(v, dict | list) or v is None:
            raise ValueError(f"allowed values must be scalars, got {v!r}")
    return tuple(raw)


class FileSpec(Model):
    path: AbsPath
    # Default: yaml for .yaml/.yml, else env.
    format: Literal["env", "yaml"] = Field(default="", validate_default=True)
    keys: Annotated[
        Mapping[str, Annotated[tuple[Scalar, ...], BeforeValidator(_allowed_values)]],
        required("list the keys healer may set, e.g. {MODEL: [local-fallback]}"),
    ]
    revert_after: Duration | None = None

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, v: Any, info: ValidationInfo) -> Any:
        path = info.data.get("path")
        return v or ("yaml" if path is not None and path.suffix in (".yaml", ".yml") else "env")

    @field_validator("keys", mode="after")
    @classmethod
    def _keys(cls, v: Mapping[str, tuple[Scalar, ...]], info: ValidationInfo) -> Mapping[str, tuple[Scalar, ...]]:
        fmt = info.data.get("format", "env")
        for key, values in v.items():
            if not (ENV_KEY if fmt == "env" else YAML_KEY).match(key):
                raise Problem(key, f"{key!r} is not a valid {fmt} key name")
            for value in values:
                if fmt == "env" and any(c in str(value) for c in "\n\r\"'\\$`\x00"):
                    raise Problem(key, f"value {value!r} has a quote, backslash, $, ` or newline")
        return v


class SetConfigSettings(ActionModel):
    files: Annotated[Mapping[str, FileSpec], required("list the files: {name: {path, format, keys}}")]

    @model_validator(mode="before")
    @classmethod
    def _default_revert(cls, raw: Any) -> Any:
        """A top-level ``revert_after`` is the default of every file that sets none."""
        if not isinstance(raw, dict) or not isinstance(raw.get("files"), dict):
            return raw
        raw = dict(raw)
        default = raw.pop("revert_after", None)
        if default:
            raw["files"] = {
                name: {"revert_after": default, **spec} if isinstance(spec, dict) else spec
                for name, spec in raw["files"].items()
            }
        return raw


# ---------------------------------------------------------------- .env editing


def _env_quote(value: str, quote: str) -> str:
    if quote:
        return f"{quote}{value}{quote}"
    return value if ENV_BARE.match(value) else f'"{value}"'


def _env_line_re(key: str) -> re.Pattern[str]:
    return re.compile(rf"^(\s*(?:export\s+)?{re.escape(key)}\s*=\s*)(.*?)(\r?\n)?$")


def env_get(data: str, key: str) -> str | None:
    """The last assignment wins, as in every .env loader."""
    found: str | None = None
    pat = _env_line_re(key)
    for line in data.splitlines(keepends=True):
        m = pat.match(line)
        if m:
            found = _env_unquote(m.group(2))
    return found


def _env_unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    # An unquoted value ends at an inline comment.
    return raw.split(" #", 1)[0].rstrip()


def env_set(data: str, key: str, value: str) -> str:
    """Rewrite only the last ``KEY=`` line (keeping ``export``, quoting style, line ending)."""
    lines = data.splitlines(keepends=True)
    pat = _env_line_re(key)
    for i in range(len(lines) - 1, -1, -1):
        m = pat.match(lines[i])
        if m:
            old = m.group(2).strip()
            quote = old[0] if len(old) >= 2 and old[0] == old[-1] and old[0] in "\"'" else ""
            lines[i] = f"{m.group(1)}{_env_quote(value, quote)}{m.group(3) or ''}"
            return "".join(lines)
    sep = "" if not data or data.endswith("\n") else "\n"
    return f"{data}{sep}{key}={_env_quote(value, '')}\n"


# ---------------------------------------------------------------- YAML editing


def _yaml_load(data: str, path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(data) if data.strip() else {}
    except yaml.YAMLError as exc:
        raise ActionError(f"{path}: not valid YAML ({exc}); fix it or restore it before setting keys") from None
    if not isinstance(doc, dict):
        raise ActionError(f"{path}: the top level is not a mapping; cannot set a key in it")
    return doc


def yaml_get(doc: Mapping[str, Any], key: str) -> Any:
    node: Any = doc
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def yaml_set(doc: dict[str, Any], key: str, value: Scalar, path: Path) -> None:
    parts = key.split(".")
    node: Any = doc
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ActionError(f"{path}: {part!r} in {key!r} is not a mapping; cannot set a key under it")
        node = nxt
    node[parts[-1]] = value


class SetConfigState(TypedDict):
    file: str
    path: str
    format: str
    key: str
    old_value: str | None
    new_value: str
    changed: bool
    backup: str | None
    revert_at: float | None
    change: NotRequired[files.FileChange]  # set when the file was written


@register
class SetConfigAction(Action[SetConfigSettings, SetConfigState]):
    name = "set_config"
    reversible = True
    default_grace = 30.0  # requests already sent with the old value (an LLM model's 429s) still fail
    param_keys = frozenset({"file", "key", "value"})
    required_params = frozenset({"key", "value"})

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], where: str) -> SetConfigSettings:
        return validate_model(SetConfigSettings, raw, where)

    # ------------------------------------------------------------ lookups

    @staticmethod
    def _resolve(ctx: ActionContext, settings: SetConfigSettings) -> tuple[str, FileSpec, str, Scalar]:
        """File, key and value from the (hostile) params, each found in the allowlist or refused."""
        fname, spec = pick(settings.files, ctx.params.get("file", ""), "actions.set_config.files", param="file")
        key = ctx.params.get("key", "")
        if key not in spec.keys:
            screen_name(key, f"actions.set_config.files.{fname}.keys", "key")
            raise ActionRefused(f"key {key!r} is not allowlisted for file {fname!r}")
        wanted = ctx.params.get("value", "")
        for allowed in spec.keys[key]:
            if scalar_text(allowed) == wanted:
                return fname, spec, key, allowed
        raise ActionRefused(f"value {wanted!r} is not allowlisted for {fname}:{key}")

    def admits(self, ctx: ActionContext) -> None:
        self._resolve(ctx, self.configured(ctx))

    def _target(self, ctx: ActionContext, settings: SetConfigSettings) -> str:
        return f"file:{pick(settings.files, ctx.params.get('file', ''), 'actions.set_config.files')[1].path}"

    @staticmethod
    def _read(path: Path) -> files.Snapshot:
        snap = files.read(path)
        if snap is None:
            raise ActionRefused(f"{path} does not exist; restore it first (restore_file)")
        return snap

    def _check(self, ctx: ActionContext, settings: SetConfigSettings) -> None:
        _, spec, _, _ = self._resolve(ctx, settings)
        self._read(spec.path)

    @staticmethod
    def _current(fmt: str, path: Path, data: bytes, key: str) -> str | None:
        body = data.decode("utf-8")
        if fmt == "env":
            return env_get(body, key)
        value = yaml_get(_yaml_load(body, path), key)
        return None if value is None else scalar_text(value)

    @staticmethod
    def _render(spec: FileSpec, data: bytes, key: str, value: Scalar) -> bytes:
        body = data.decode("utf-8")
        if spec.format == "env":
            return env_set(body, key, scalar_text(value)).encode("utf-8")
        doc = _yaml_load(body, spec.path)
        yaml_set(doc, key, value, spec.path)
        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True).encode("utf-8")

    # ------------------------------------------------------------ run

    def _apply(self, ctx: ActionContext, settings: SetConfigSettings) -> SetConfigState:
        fname, spec, key, value = self._resolve(ctx, settings)
        # Read once, through one O_NOFOLLOW descriptor; the backup and the edit use these bytes.
        before = self._read(spec.path)
        try:
            old = self._current(spec.format, spec.path, before.data, key)
        except UnicodeDecodeError as exc:
            raise ActionError(f"{spec.path}: not UTF-8 ({exc})") from None
        state = SetConfigState(
            file=fname,
            path=str(spec.path),
            format=spec.format,
            key=key,
            old_value=old,
            new_value=scalar_text(value),
            changed=False,
            backup=None,
            revert_at=None,
        )
        if old == scalar_text(value):
            ctx.audit(AuditKind.SET_CONFIG, {**state, "note": "already set; nothing written"})
            return state
        new = self._render(spec, before.data, key, value)
        now = ctx.clock.now()
        backup = files.backup(before, ctx.state_dir / "backups", label=f"incident{ctx.incident_id}", now=now)
        staged = files.stage(spec.path, new, before.meta)
        state["changed"] = True
        state["backup"] = str(backup)
        state["change"] = files.record(spec.path, backup, before, staged, new)
        state["revert_at"] = (now + spec.revert_after) if spec.revert_after else None
        try:
            # The backup exists and the state names it before the file changes.
            staged.commit_after(lambda: ctx.checkpoint(state), before)
        except OSError as exc:
            raise ActionError(f"{spec.path}: write failed ({exc}); original untouched, backup {backup}") from None
        ctx.audit(AuditKind.SET_CONFIG, {k: state[k] for k in ("path", "key", "old_value", "new_value", "backup")})
        log.info("config_set", path=str(spec.path), key=key, value=scalar_text(value), backup=str(backup))
        return state

    def _verify(self, ctx: ActionContext, settings: SetConfigSettings, state: SetConfigState) -> VerifyResult:
        path = Path(state["path"])
        try:
            now = self._current(state["format"], path, self._read(path).data, state["key"])
        except (OSError, UnicodeDecodeError, ActionError) as exc:
            return VerifyResult(False, f"{path}: unreadable after write ({exc})")
        ok = now == state["new_value"]
        return VerifyResult(ok, f"{state['key']}={now!r} in {path}")

    def undo(self, ctx: ActionContext, state: SetConfigState) -> None:
        if not state.get("changed"):
            return
        change = state.get("change")
        if change is None:
            raise ActionError(
                f"cannot undo {state['path']}: no file checkpoint saved; restore {state['backup']} by hand"
            )
        done = files.undo(change, ctx.state_dir / "backups", label=f"incident{ctx.incident_id}", now=ctx.clock.now())
        if done.kept is not None:
            ctx.audit(AuditKind.SET_CONFIG_UNDO_CONFLICT, {"path": state["path"], "kept": str(done.kept)})
            log.warning("undo_over_foreign_edit", path=state["path"], kept=str(done.kept))
        ctx.audit(AuditKind.SET_CONFIG_UNDO, {"path": state["path"], "backup": state["backup"], "note": done.note})
        log.info("config_restored", path=state["path"], backup=state["backup"], note=done.note)


__all__ = ["SetConfigAction", "SetConfigSettings", "env_get", "env_set"]
